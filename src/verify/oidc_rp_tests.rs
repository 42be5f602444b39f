//! Unit tests of oidc_rp.rs that need no IdP.

use super::*;
use crate::verify::jwks::IdpKeys;

/// The id_token fuzz target's seeds: the valid ones pass every check at the seeds' time, so
/// the fuzzer starts from accepted tokens; the expired and unsigned ones do not.
#[test]
fn the_fuzz_seeds_check_as_expected() {
    use std::str::FromStr;
    let algorithms = [CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256];
    let keys = IdpKeys::parse(include_bytes!("../../fuzz/id-token-jwks.json"), &algorithms).unwrap();
    let rules = IdTokenRules {
        client_id: "nymgate-school-a",
        issuer: "https://idp.school-a.example",
        algorithms: &algorithms,
        clock_skew: Duration::from_secs(60),
    };
    let check = |name: &str, text: &str| {
        let token = CoreIdToken::from_str(text.trim()).map_err(|_| format!("{name}: unparsable"))?;
        check_id_token(&rules, &keys, &token, "n-fuzz", 1_795_600_800).map_err(|e| e.reason().to_owned())
    };
    let valid = check("valid", include_str!("../../fuzz/seeds/id_token/valid.jwt")).unwrap();
    assert_eq!(valid["sub"], "s-1001");
    // A second audience that nymgate does not trust (OIDC Core §3.1.3.7 step 3).
    let extra_audience = check("azp_nbf", include_str!("../../fuzz/seeds/id_token/azp_nbf.jwt"));
    assert_eq!(extra_audience.unwrap_err(), "bad_audience");
    let expired = check("expired", include_str!("../../fuzz/seeds/id_token/expired.jwt"));
    assert_eq!(expired.unwrap_err(), "bad_time");
    assert!(check("alg_none", include_str!("../../fuzz/seeds/id_token/alg_none.jwt")).is_err());
}

/// A tenant's OIDC IdP as the config builds it (shared with oidc_discovery.rs's tests).
pub(super) fn idp(kind: IdpKind, issuer: &str, discovery_url: Option<&str>) -> OidcIdp {
    std::env::set_var("NYMGATE_TEST_OIDC_SECRET", "a-client-secret-of-length");
    let tenant: TenantConfig = toml::from_str(&format!(
        r#"id = "t"
idp = "{}"
issuer = "{issuer}"
[oidc]
client_id = "nymgate"
client_secret = {{ env = "NYMGATE_TEST_OIDC_SECRET" }}
{}"#,
        match kind {
            IdpKind::Entra => "entra",
            IdpKind::Google => "google",
            _ => "oidc",
        },
        discovery_url.map(|u| format!("discovery_url = \"{u}\"")).unwrap_or_default()
    ))
    .unwrap();
    let caches = Arc::new(KeyCaches::default());
    OidcIdp::new(&tenant, tenant.oidc.as_ref().unwrap(), "https://learn.example/nymgate/callback", &caches)
        .unwrap()
}

#[test]
fn hs256_is_not_an_allowed_idp_algorithm() {
    assert!(!crate::config::login::ALLOWED_IDP_ALGORITHMS.iter().any(|a| a.starts_with("HS")));
}

#[test]
fn only_invalid_grant_is_a_refused_code() {
    use openidconnect::core::CoreErrorResponseType;
    use openidconnect::StandardErrorResponse;
    let response = |error: CoreErrorResponseType| StandardErrorResponse::new(error, None, None);
    assert_eq!(
        oauth_error_code(&response(CoreErrorResponseType::InvalidGrant)).as_deref(),
        Some("invalid_grant")
    );
    assert_eq!(
        oauth_error_code(&response(CoreErrorResponseType::InvalidClient)).as_deref(),
        Some("invalid_client")
    );
    assert_eq!(OidcError::CodeRefused.reason(), "code_refused");
}
