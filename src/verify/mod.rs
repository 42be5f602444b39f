//! The verifiers: the only door from what a school's IdP sent to a [`identity::VerifiedIdentity`].
//!
//! - SAML: [`saml_acs`] checks a posted Response against the strict profile and the tenant's
//!   pinned keys (SAML Core §2-3, Bindings §3.5, XML-DSig); [`xml_bounds`] bounds every document
//!   before it is parsed; [`saml_metadata`] reads (and verifies) an IdP's signed metadata.
//! - OIDC: [`oidc_rp`] is the relying party (discovery, code exchange with PKCE, RFC 9207 `iss`,
//!   the ID token per OIDC Core §3.1.3.7, userinfo); [`jwks`] reads an IdP's keys and
//!   [`key_cache`] keeps them with bounded refetches.
//! - [`identity`]: the verified identity itself. Its constructors are `pub(in crate::verify)`,
//!   so the compiler, not a convention, keeps every other module from making one: a flow, the
//!   pseudonymizer or a benchmark gets one only from a verifier that checked a signature. (The
//!   crate's own unit tests of the floors above have a `#[cfg(test)]` constructor, which no
//!   binary, benchmark, fuzz target or integration test can reach.)
//! - [`vocabulary`]: what an IdP chose to name (claims, attributes, OAuth error codes) in
//!   nymgate's own spelling, so no IdP byte reaches a log line, a metric label or a page.
//!
//! This floor names only config and the helpers below it (tests/layers.rs); the pseudonymizer
//! and the login flows sit above and take what it returns.

pub mod identity;
pub mod jwks;
pub mod key_cache;
pub mod oidc_rp;
pub mod saml_acs;
pub mod saml_metadata;
pub mod vocabulary;
pub mod xml_bounds;
