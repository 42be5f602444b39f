//! An ID token as a school's IdP (or anyone who can reach the token response) sends it: the
//! compact JWS parsed by openidconnect, then every check nymgate makes without the network
//! (`check_id_token`: signature, algorithm, iss, aud, azp, exp, iat, nbf, nonce, sub). Nothing
//! may panic; anything accepted must carry the expected issuer and a subject. Seeds: tokens
//! signed with the key of fuzz/id-token-jwks.json (its private half was discarded).
#![no_main]
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use nymgate::verify::jwks::IdpKeys;
use nymgate::verify::oidc_rp::{check_id_token, IdTokenRules};
use openidconnect::core::{CoreIdToken, CoreJwsSigningAlgorithm};

const ALGORITHMS: [CoreJwsSigningAlgorithm; 2] =
    [CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, CoreJwsSigningAlgorithm::EcdsaP256Sha256];

static KEYS: LazyLock<IdpKeys> = LazyLock::new(|| {
    IdpKeys::parse(include_bytes!("../id-token-jwks.json"), &ALGORITHMS).expect("the seeds' JWKS")
});

/// The seeds' clock: 2026-11-25T10:00:00Z.
const NOW: i64 = 1_795_600_800;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(token) = CoreIdToken::from_str(text.trim()) else { return };
    let rules = IdTokenRules {
        client_id: "nymgate-school-a",
        issuer: "https://idp.school-a.example",
        algorithms: &ALGORITHMS,
        clock_skew: Duration::from_secs(60),
    };
    if let Ok(claims) = check_id_token(&rules, &KEYS, &token, "n-fuzz", NOW) {
        assert_eq!(claims.get("iss").and_then(|v| v.as_str()), Some("https://idp.school-a.example"));
        assert!(claims.get("sub").and_then(|v| v.as_str()).is_some_and(|s| !s.is_empty()));
    }
});
