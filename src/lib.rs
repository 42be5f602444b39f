//! nymgate: a pseudonymizing SSO gateway. It is a TLS reverse proxy in front of a learning
//! platform; it will complete every school login, swap personal identifiers for an HMAC-derived
//! account number, and forward only what the tenant's policy allows. This crate holds the
//! library; the `nymgate` command (`src/main.rs`, one module per command under `src/cli/`) is a
//! thin layer over its public API.
//!
//! # Map, by floor
//! Each floor imports only itself and the floors below it; `tests/layers.rs` reads `src/` and
//! fails on an upward import. Bottom to top:
//! - **Leaves** (import nothing): [`clock`] (the time and its RFC 3339 forms), [`target`] (the
//!   canonical request target every rule decides on), [`public_hosts`] (host matching).
//! - **Config**: [`config`], the TOML file read field by field (every problem at once, by its
//!   dotted path) and checked as `serve` checks it; the types it names live there.
//! - **Helpers**: [`secret`] (secrets that never print), [`seal`] (AEAD cookies any replica
//!   opens), [`certs`], [`tls`], [`tls_stream`] (rustls's unbuffered API, buffers freed while
//!   parked), [`client_hello`] (the first flight judged before rustls), [`conn_io`],
//!   [`conn_bounds`] (a deadline in every state), [`framing`] (one judgement of HTTP/1.1
//!   framing), [`sanitize`], [`form_scan`], [`body`], [`client_ip`] (reduced at once),
//!   [`store`] (single-use claims, memory or Redis), [`audit`], [`metrics`],
//!   [`metrics_format`], [`metrics_login`], [`metrics_process`], [`telemetry`], [`alert`],
//!   [`idp_http`] (the outbound HTTPS client), [`admin_address`], [`web`] (the responses,
//!   cookies and escaping nymgate's own endpoints share).
//! - **Verify**: [`verify`], the only door: the SAML verifier (`saml_acs`, with `xml_bounds`
//!   and `saml_metadata`) and the OIDC verifier (`oidc_rp`, with `jwks` and `key_cache`), and
//!   the [`verify::identity::VerifiedIdentity`] only they can build; `vocabulary` spells what
//!   an IdP names in nymgate's own words.
//! - **Pseudonym**: [`pseudonym`] (account numbers, the keyring, the claim policy and the guard;
//!   its only login entry takes a verified identity) and [`retention`] (the few values a
//!   customer requires kept, sealed and bound, with replicas' key versions and offboarding).
//! - **Login**: [`login`] (the flows; its `mod.rs` maps its rooms) and [`mint`] (what the
//!   platform receives, below the flows: the token signer, the OIDC provider face, the SAML IdP
//!   face, the sessions and their signed header; its `mod.rs` maps its rooms).
//! - **Pipeline**: [`gateway`] (the composition root: everything below built from a config, at
//!   start and per reload, errors naming their field), [`pipeline`] (the request path top to
//!   bottom: a per-request context, then admit, nymgate's own endpoint, interception or the
//!   platform's body, sanitize, forward, answer and log), [`upstream`] (nymgate's HTTP/1.1
//!   client to the platform), [`upgrade`], [`echo`], [`server`] (listeners, workers,
//!   connections, background jobs), [`parking`], [`listener`], [`reload`].
//! - **Tools**: [`demo`], [`loadtest`]. The CLI (`src/main.rs`, `src/cli/`) is the binary's.
//!
//! # Threat model (the whole gateway)
//! Every byte from a client, an IdP, the platform, Redis or the retention database is hostile,
//! names and error codes included: none reaches a log line, a metric label or a page as it came.
//! - **Clients** may smuggle a second request past the proxy (conflicting framing), confuse
//!   routing with Host, pose as a trusted proxy in `X-Forwarded-For`, assert an identity through
//!   a header the platform trusts, exhaust connections or memory, or stall: each gets a generic
//!   4xx/5xx with a reference id, and every resource a connection holds has a bound and a
//!   deadline (docs/CONNECTIONS.md).
//! - **Logins** may be forged, replayed, mixed up between schools or IdPs, or carry personal
//!   values where the platform would keep them: only a response verified against the tenant's
//!   pinned keys becomes a verified identity, each assertion and code is claimed once on every
//!   replica, and the platform receives an account number, a role and what the policy allows,
//!   guarded against personal values (docs/LOGIN.md, docs/SAML.md, docs/PSEUDONYMS.md).
//! - **Operators and databases**: keys and records are written under a lock, atomically, and
//!   survive a crash; an erased record stays erased on disk; a record changed in the database
//!   is refused as tampered; every attempt is audited, and the audit log fails closed
//!   (docs/RETENTION.md).
//! - **The platform** is trusted to be the platform, not to be well-behaved: its errors,
//!   timeouts and oddities become 502/504, and its bytes are never read as the next request's.

#![forbid(unsafe_code)]

pub mod admin_address;
pub mod alert;
pub mod audit;
pub mod body;
pub mod certs;
pub mod client_hello;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod conn_bounds;
pub mod conn_io;
pub mod demo;
pub mod echo;
pub mod form_scan;
pub mod framing;
pub mod gateway;
pub mod idp_http;
pub mod listener;
pub mod loadtest;
pub mod login;
pub mod metrics;
pub mod metrics_format;
pub mod metrics_login;
pub mod metrics_process;
pub mod mint;
pub mod parking;
pub mod pipeline;
pub mod pseudonym;
pub mod public_hosts;
pub mod reload;
pub mod retention;
pub mod sanitize;
pub mod seal;
pub mod secret;
pub mod server;
pub mod store;
pub mod target;
pub mod telemetry;
pub mod tls;
pub mod tls_stream;
pub mod upgrade;
pub mod upstream;
pub mod verify;
pub mod web;
