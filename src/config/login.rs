//! The login sections: `[login]` (nymgate's own face toward the browser and the platform) and
//! each tenant's `[tenants.oidc]` (nymgate as a relying party of the school's IdP).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::SecretSource;
use super::{Algorithm, RequiredSignatures};

/// How the platform receives a login (shared/PRODUCT.md, "Who uses it").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoginOutput {
    /// nymgate is the platform's OIDC provider (`/nymgate/.well-known/openid-configuration`).
    #[default]
    Provider,
    /// nymgate keeps a sealed session cookie and adds a signed JWT header to every proxied
    /// request, for a platform with no login of its own.
    AssertionHeader,
    /// nymgate is the platform's SAML IdP (`[login.saml_idp]`, docs/SAML_OUT.md), for a
    /// platform that accepts only SAML.
    Saml,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// The origin browsers use, `https://learn.example` (no path). nymgate's issuer is this
    /// plus `/nymgate`, and its IdP callback is `{public_url}/nymgate/callback`.
    pub public_url: String,
    /// The secret that seals login cookies. Replicas must share it. Without it each process
    /// draws a random one: fine for one instance, and pending logins end at a restart.
    #[serde(default)]
    pub seal_secret: Option<SecretSource>,
    #[serde(default)]
    pub output: LoginOutput,
    /// How long a browser has from login start to the IdP's answer.
    #[serde(default = "defaults::flow_lifetime", with = "humantime_serde")]
    pub flow_lifetime: Duration,
    /// How long a nymgate session lasts (assertion-header mode).
    #[serde(default = "defaults::session_lifetime", with = "humantime_serde")]
    pub session_lifetime: Duration,
    #[serde(default)]
    pub signing: SigningConfig,
    /// Lifetime of ID tokens and access tokens nymgate issues to the platform.
    #[serde(default = "defaults::token_lifetime", with = "humantime_serde")]
    pub token_lifetime: Duration,
    /// Lifetime of an authorization code (RFC 6749 §4.1.2 recommends at most 10 minutes).
    #[serde(default = "defaults::code_lifetime", with = "humantime_serde")]
    pub code_lifetime: Duration,
    /// The platform's registered clients (provider output).
    #[serde(default)]
    pub clients: Vec<PlatformClientConfig>,
    #[serde(default)]
    pub assertion: AssertionConfig,
    /// nymgate as one SAML service provider for every SAML tenant.
    #[serde(default)]
    pub saml: Option<SamlSpConfig>,
    /// nymgate as a SAML IdP toward SAML-only platforms (docs/SAML_OUT.md).
    #[serde(default)]
    pub saml_idp: Option<SamlIdpConfig>,
    /// Failed-attempt blocking (docs/LOGIN.md, "Blocking").
    #[serde(default)]
    pub blocking: BlockingConfig,
}

/// `[login.saml]`: nymgate's SAML service provider (docs/SAML.md).
/// `[login.blocking]`: after `max_failures` failed logins within `window` (per client, per
/// tenant), the client is refused every login endpoint for `block_for`, with 429.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockingConfig {
    #[serde(default = "defaults::blocking_enabled")]
    pub enabled: bool,
    #[serde(default = "defaults::max_failed_logins")]
    pub max_failures: u32,
    #[serde(default = "defaults::blocking_window", with = "humantime_serde")]
    pub window: Duration,
    #[serde(default = "defaults::block_for", with = "humantime_serde")]
    pub block_for: Duration,
    /// Networks never counted nor blocked (monitoring, a test rig). A school's NAT is better
    /// served by its tenant's `max_failed_logins`, which keeps a brake on it.
    #[serde(default)]
    pub allowlist: Vec<ipnet::IpNet>,
}

impl Default for BlockingConfig {
    fn default() -> Self {
        BlockingConfig {
            enabled: defaults::blocking_enabled(),
            max_failures: defaults::max_failed_logins(),
            window: defaults::blocking_window(),
            block_for: defaults::block_for(),
            allowlist: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlSpConfig {
    /// Default: `{public_url}/nymgate/saml`.
    #[serde(default)]
    pub entity_id: Option<String>,
    /// The SP signing certificate (PEM) published in the metadata (`nymgate certs saml --out DIR`).
    pub cert_file: PathBuf,
    /// Its RSA key, PKCS#8 PEM, mode 0600.
    pub key_file: PathBuf,
}

/// `[login.saml_idp]`: nymgate as the platform's SAML IdP. Its Responses are written afresh from
/// the pseudonymous login and signed with this key, Assertion and Response both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlIdpConfig {
    /// Default: `{public_url}/nymgate/idp`.
    #[serde(default)]
    pub entity_id: Option<String>,
    /// The signing certificate (PEM) the platform trusts (`nymgate certs saml --out DIR`).
    pub cert_file: PathBuf,
    /// Its key, PKCS#8 PEM, mode 0600: RSA, or P-256 for `ecdsa-sha256`.
    pub key_file: PathBuf,
    /// `rsa-sha256` (default), `rsa-sha512` or `ecdsa-sha256`.
    #[serde(default = "defaults::saml_idp_signature_algorithm")]
    pub signature_algorithm: String,
    /// How long an Assertion may be presented (its NotOnOrAfter).
    #[serde(default = "defaults::saml_idp_assertion_lifetime", with = "humantime_serde")]
    pub assertion_lifetime: Duration,
    /// The platforms (SAML service providers) nymgate answers.
    #[serde(default)]
    pub service_providers: Vec<SamlServiceProviderConfig>,
}

/// One `[[login.saml_idp.service_providers]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlServiceProviderConfig {
    /// The SP's entity ID: the Issuer of its AuthnRequests and the Audience of nymgate's
    /// Assertions.
    pub entity_id: String,
    /// Where nymgate posts its Responses (HTTP-POST binding). An AuthnRequest naming another
    /// ACS is refused.
    pub acs_url: String,
    /// The SP's signing certificates (PEM, RSA). When set, its AuthnRequests must be signed by
    /// one of them (HTTP-Redirect query signature or enveloped XML signature over POST).
    #[serde(default)]
    pub certificate_files: Vec<PathBuf>,
    /// Allow IdP-initiated logins for this SP (`/nymgate/idp/init`). Off: a response then
    /// always answers one of the SP's own requests.
    #[serde(default)]
    pub idp_initiated: bool,
    /// Send this SP's users to this tenant without the school chooser.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Interception mode: `acs_url` is a path of this site, proxied to the platform, where the
    /// schools' IdPs post their responses to the platform. nymgate verifies each one (as its own
    /// ACS would, with this SP as the audience) and forwards its own Response in its place; the
    /// school's never reaches the platform.
    #[serde(default)]
    pub intercept: bool,
    /// The pseudonym sector of this platform: its persistent NameIDs are pairwise (SAML Core
    /// §8.3.7), so two platforms get unlinkable account numbers for one pupil unless they name
    /// the same sector. Unset: the primary sector (today's numbers); only one platform may
    /// leave it unset (config/identity.rs).
    #[serde(default)]
    pub sector: Option<String>,
}

/// A tenant's SAML IdP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlTenantConfig {
    /// The IdP's SingleSignOnService location for the HTTP-Redirect binding. Taken from the
    /// metadata when one is configured and this is not.
    #[serde(default)]
    pub sso_url: Option<String>,
    /// The IdP's signing certificates (PEM files). Only these keys are trusted; a key in a
    /// response's KeyInfo never is. When set, they replace the metadata's keys (pinning).
    #[serde(default)]
    pub certificate_files: Vec<PathBuf>,
    /// The IdP's SAML metadata, from a file (re-read every `metadata_refresh`)...
    #[serde(default)]
    pub metadata_file: Option<PathBuf>,
    /// ...or a URL (https, or http on loopback), fetched at first use and every
    /// `metadata_refresh`; a failed refresh keeps the last copy until its validUntil. For a
    /// federation, use its per-entity (MDQ) URL: responses are limited to 1 MiB.
    #[serde(default)]
    pub metadata_url: Option<String>,
    /// The federation's metadata signing certificates: when set, metadata is accepted only
    /// with a valid signature by one of them over the whole document.
    #[serde(default)]
    pub metadata_signing_certificate_files: Vec<PathBuf>,
    #[serde(default = "defaults::metadata_refresh", with = "humantime_serde")]
    pub metadata_refresh: Duration,
    /// Extra CA certificates (PEM) for an https `metadata_url`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Ask for this NameID format (e.g. persistent); default: the IdP's choice.
    #[serde(default)]
    pub name_id_format: Option<String>,
    /// Accept IdP-initiated (unsolicited) responses. Off: they have no InResponseTo to bind.
    #[serde(default)]
    pub allow_unsolicited: bool,
    /// Which signatures a response must carry: `either` (default; a Response signature covers
    /// its Assertion), `assertion`, `response` or `both`.
    #[serde(default)]
    pub required_signatures: RequiredSignatures,
    /// Accept RSA-SHA1, SHA-1 digests and RSA keys under 2048 bits (each use is logged). Off.
    #[serde(default)]
    pub allow_weak_algorithms: bool,
    #[serde(default = "defaults::clock_skew", with = "humantime_serde")]
    pub clock_skew: Duration,
    /// Sign the AuthnRequest (HTTP-Redirect binding, Bindings §3.4.4.1), as nymgate's SP
    /// metadata announces (`AuthnRequestsSigned="true"`). On by default. Off saves an RSA-2048
    /// signature per login start (about 0.3 ms, a third of nymgate's CPU per SAML login;
    /// BENCHMARKS.md §5), only for an IdP that does not require signed requests: the
    /// Response's signature, not the request's, is what protects the login.
    #[serde(default = "defaults::sign_authn_requests")]
    pub sign_authn_requests: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    #[serde(default = "defaults::signing_alg")]
    pub alg: Algorithm,
    /// PKCS#8 PEM (`nymgate keys signing --out FILE`), mode 0600. Without it each process
    /// draws a key: tokens then verify only against that process's JWKS.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Keys still published in the JWKS after a rotation, until their tokens have expired.
    #[serde(default)]
    pub previous_key_files: Vec<PathBuf>,
}

impl Default for SigningConfig {
    fn default() -> Self {
        Self { alg: defaults::signing_alg(), key_file: None, previous_key_files: Vec::new() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformClientConfig {
    pub client_id: String,
    pub client_secret: SecretSource,
    /// Exact matches only (RFC 9700 §4.1.3).
    pub redirect_uris: Vec<String>,
    /// The pseudonym sector of this platform (OIDC Core §8.1): platforms in different sectors
    /// get unlinkable account numbers for one pupil. Unset: the primary sector, whose numbers
    /// are the ones nymgate made before sectors; only one platform may leave it unset
    /// (config/identity.rs).
    #[serde(default)]
    pub sector: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionConfig {
    /// The header the platform reads; any copy from a client is removed.
    #[serde(default = "defaults::assertion_header")]
    pub header: String,
    /// The `aud` of the assertion.
    #[serde(default = "defaults::assertion_audience")]
    pub audience: String,
    #[serde(default = "defaults::assertion_lifetime", with = "humantime_serde")]
    pub lifetime: Duration,
    /// Send a browser without a session to the login page instead of passing it on anonymous.
    #[serde(default)]
    pub require_login: bool,
}

impl Default for AssertionConfig {
    fn default() -> Self {
        Self {
            header: defaults::assertion_header(),
            audience: defaults::assertion_audience(),
            lifetime: defaults::assertion_lifetime(),
            require_login: false,
        }
    }
}

/// A tenant's OIDC IdP: nymgate is an ordinary confidential client of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcTenantConfig {
    /// The issuer to discover. Default: the tenant's `issuer`; for Entra ID
    /// `https://login.microsoftonline.com/{issuer}/v2.0`; for Google `https://accounts.google.com`.
    /// Entra's multi-tenant form (`…/organizations/v2.0`, whose metadata says
    /// `…/{tenantid}/v2.0`) is accepted: the tenant's directory id is put in.
    #[serde(default)]
    pub discovery_url: Option<String>,
    /// The IdP's endpoints, for an IdP without discovery. When given, nothing is discovered and
    /// the tenant's `issuer` is the exact `iss` expected.
    #[serde(default)]
    pub endpoints: Option<OidcEndpoints>,
    pub client_id: String,
    pub client_secret: SecretSource,
    #[serde(default = "defaults::oidc_scopes")]
    pub scopes: Vec<String>,
    /// JWS algorithms the IdP may sign ID tokens with. Asymmetric only.
    #[serde(default = "defaults::oidc_algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default = "defaults::clock_skew", with = "humantime_serde")]
    pub clock_skew: Duration,
    /// Also read claims from the userinfo endpoint (its `sub` must match the ID token's).
    #[serde(default)]
    pub userinfo: bool,
    /// Claims that must have exactly this value, for example `{ hd = "school.example" }` for a
    /// Google Workspace domain.
    #[serde(default)]
    pub required_claims: BTreeMap<String, String>,
    /// The CA bundle for the IdP's TLS; default: the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How old the IdP's keys (its JWKS) may be when an ID token is verified: older ones are
    /// refetched first, so a key the IdP removed stops being accepted within this time. The
    /// keys are shared by every tenant of the same IdP (same JWKS URI and `ca_file`); each
    /// tenant's own value applies to its logins. When the IdP can't be reached the last keys
    /// serve for 15 minutes more (docs/LOGIN.md).
    #[serde(default = "defaults::jwks_refresh", with = "humantime_serde")]
    pub jwks_refresh: Duration,
    /// An ID token whose `kid` is unknown refetches the JWKS at once (the IdP rotated), unless
    /// a fetch of that IdP's JWKS was tried this recently, for any of its tenants (so forged
    /// kids can't make nymgate hammer the IdP). Also how often a failing JWKS is retried.
    #[serde(default = "defaults::jwks_refetch_interval", with = "humantime_serde")]
    pub jwks_refetch_interval: Duration,
    /// How long discovery is cached before a refresh (the keys follow `jwks_refresh`).
    #[serde(default = "defaults::metadata_ttl", with = "humantime_serde")]
    pub metadata_ttl: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcEndpoints {
    pub authorization: String,
    pub token: String,
    pub jwks: String,
    #[serde(default)]
    pub userinfo: Option<String>,
    #[serde(default)]
    pub end_session: Option<String>,
    /// Whether the IdP sends the RFC 9207 `iss` parameter (then it is required).
    #[serde(default)]
    pub iss_parameter: bool,
}

pub mod defaults {
    use std::time::Duration;

    use crate::config::Algorithm;

    pub fn flow_lifetime() -> Duration {
        Duration::from_secs(600)
    }
    pub fn session_lifetime() -> Duration {
        Duration::from_secs(8 * 3600)
    }
    pub fn token_lifetime() -> Duration {
        Duration::from_secs(300)
    }
    pub fn code_lifetime() -> Duration {
        Duration::from_secs(60)
    }
    pub fn signing_alg() -> Algorithm {
        Algorithm::EdDSA
    }
    pub fn assertion_header() -> String {
        "x-nymgate-assertion".to_owned()
    }
    pub fn assertion_audience() -> String {
        "platform".to_owned()
    }
    pub fn assertion_lifetime() -> Duration {
        Duration::from_secs(60)
    }
    /// Only what the stable subject needs; a policy that reads more asks for more.
    pub fn oidc_scopes() -> Vec<String> {
        vec!["openid".to_owned()]
    }
    pub fn oidc_algorithms() -> Vec<String> {
        vec!["RS256".to_owned()]
    }
    pub fn clock_skew() -> Duration {
        Duration::from_secs(60)
    }
    pub fn saml_idp_signature_algorithm() -> String {
        "rsa-sha256".to_owned()
    }
    /// Long enough for a slow browser's POST, short enough that a leaked one soon expires.
    pub fn saml_idp_assertion_lifetime() -> Duration {
        Duration::from_secs(300)
    }
    pub fn sign_authn_requests() -> bool {
        true
    }
    /// Short enough that a removed key is soon refused everywhere; long enough that the IdP
    /// sees one JWKS request per IdP every few minutes, whatever the number of logins.
    pub fn jwks_refresh() -> Duration {
        Duration::from_secs(5 * 60)
    }
    /// A rotated key waits at most this long; a burst of forged kids costs one fetch per this.
    pub fn jwks_refetch_interval() -> Duration {
        Duration::from_secs(5)
    }
    pub fn metadata_ttl() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn blocking_enabled() -> bool {
        true
    }
    /// Enough for a pupil who mistypes and retries; far too few for guessing or replaying.
    pub fn max_failed_logins() -> u32 {
        20
    }
    pub fn blocking_window() -> Duration {
        Duration::from_secs(600)
    }
    pub fn block_for() -> Duration {
        Duration::from_secs(900)
    }
    /// SAML metadata: federations republish daily and sign for a week or more.
    pub fn metadata_refresh() -> Duration {
        Duration::from_secs(6 * 3600)
    }
}

/// The asymmetric JWS algorithms a tenant may allow (RFC 7518 §3.1, RFC 8037). HS* is never
/// accepted: a symmetric key shared with an IdP is the algorithm-confusion attack's door.
pub const ALLOWED_IDP_ALGORITHMS: &[&str] =
    &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];
