//! nymgate: a pseudonymizing SSO gateway. It is a TLS reverse proxy in front of a learning
//! platform; it will complete every school login, swap personal identifiers for an HMAC-derived
//! account number, and forward only what the tenant's policy allows. This crate holds the
//! library; the `nymgate` command (`src/main.rs`, one module per command under `src/cli/`) is a
//! thin layer over its public API.
//!
//! # Map
//! - [`config`]: the TOML file, refused on unknown fields, validated into one immutable struct.
//! - [`server`]: listeners, connection cap, TLS handshake, HTTP/1.1 or HTTP/2 by ALPN, idle
//!   timeout, drain on SIGTERM; the admin and redirect listeners. [`parking`]: each worker's
//!   idle HTTP/1.1 connections, waiting for their clients without a task each.
//! - [`tls`]: rustls (aws-lc-rs) with a certificate that reloads without a restart.
//!   [`tls_stream`]: the public listener's TLS stream on rustls's unbuffered API, whose buffers
//!   nymgate owns and frees while a connection is parked. [`client_hello`]: the client's first
//!   flight judged before rustls (a ClientHello over 16 KiB is refused) and left in the kernel
//!   until it is complete.
//! - [`proxy`]: the request pipeline, top to bottom: framing and Host checks, client IP,
//!   sanitize, forward, sanitize the response, count and log.
//! - [`target`]: the canonical request target (path, query names) every rule decides on.
//! - [`sanitize`]: hop-by-hop and identity headers, nymgate's forwarding headers, query policy.
//! - [`client_ip`]: `X-Forwarded-For` over trusted proxies, and reduction (truncate, hash, drop).
//! - [`body`]: streamed client bodies with a read-gap timeout.
//! - [`framing`]: watches HTTP/1.1 framing for the Content-Length + Transfer-Encoding case.
//! - [`upstream`]: nymgate's HTTP/1.1 client to the platform, a pool per worker, each request
//!   driven in its own task. [`echo`]: the built-in echo platform.
//! - [`pseudonym`]: account numbers (HMAC under a scope key), the keyring, the stable-subject
//!   ladder, the claim policy and the guard. Only a `VerifiedIdentity` goes in.
//! - [`metrics`], [`telemetry`]: Prometheus metrics and the tracing log.
//! - [`seal`]: AEAD-sealed values for cookies (pending logins, sessions), any replica opens them.
//! - [`certs`]: development certificates. [`secret`]: secrets that never print.
//!
//! # Threat model (the proxy layer)
//! Every client byte is hostile. A client may try to smuggle a second request past the proxy
//! (conflicting framing), confuse routing with its Host, pose as a trusted proxy in
//! `X-Forwarded-For`, assert an identity through a header the platform trusts, exhaust
//! connections or memory, or stall reads. nymgate answers each with a generic 4xx/5xx and a
//! reference id, logs the detail without personal values, and never forwards what it refused.
//! The platform is trusted to be the platform, not to be well-behaved: its errors and timeouts
//! become 502/504.

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
pub mod proxy;
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
