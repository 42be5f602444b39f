//! nymgate's own work per OIDC callback, without the network: the IdP's RS256 ID token checked
//! (openidconnect: signature, iss, aud, exp, iat, nonce; then nbf, azp, sub), the stable subject
//! and account number, the claim policy and guard, and the EdDSA token minted for the platform.
//! Run: `cargo bench --features unverified-identity --bench login`.

use std::str::FromStr;
use std::time::Duration;

use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion};
use nymgate::config::Config;
use nymgate::login::jwks::IdpKeys;
use nymgate::login::oidc_rp::{check_id_token, IdTokenRules};
use nymgate::mint::{Algorithm, Minter, SigningKey, TokenRequest};
use nymgate::pseudonym::identity::VerifiedIdentity;
use nymgate::pseudonym::keyring::Keyring;
use nymgate::pseudonym::Pseudonymizer;
use openidconnect::core::{CoreIdToken, CoreJwsSigningAlgorithm};
use serde_json::json;

const ISSUER: &str = "https://idp.school-a.example";
const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
cert_file = "unused"
key_file = "unused"
[pseudonyms]
keyring_file = "unused"
[[tenants]]
id = "school-a"
idp = "oidc"
issuer = "https://idp.school-a.example"
policy = { role_from = ["roles"], role_map = { "Student" = "student" }, school_from = ["school_code"], school_map = { "SCH-A-01" = "school-a-01" } }
"#;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An RS256 ID token as a school IdP signs it, and the IdP's JWKS.
fn idp_token(now: i64) -> (String, IdpKeys) {
    let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let public = key.public_key();
    let jwks = json!({"keys": [{
        "kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    }]});
    let header = b64(br#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#);
    let payload = b64(&serde_json::to_vec(&json!({
        "iss": ISSUER, "aud": "nymgate-school-a", "sub": "idp-subject-alice-7f3a9c", "exp": now + 300,
        "iat": now, "nonce": "n-0S6_WzA2Mj", "email": "alice.andersson@school-a.example",
        "email_verified": true, "name": "Alice Andersson", "given_name": "Alice",
        "family_name": "Andersson", "roles": ["Student"], "school_code": "SCH-A-01",
    }))
    .unwrap());
    let input = format!("{header}.{payload}");
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(&RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), input.as_bytes(), &mut signature)
        .unwrap();
    let keys = IdpKeys::parse(jwks.to_string().as_bytes(), &[CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
    (format!("{input}.{}", b64(&signature)), keys.unwrap())
}

fn bench(c: &mut Criterion) {
    let now = nymgate::clock::unix_now();
    let (token, keys) = idp_token(now as i64);
    let id_token = CoreIdToken::from_str(&token).unwrap();
    let algorithms = [CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256];
    let rules = IdTokenRules {
        client_id: "nymgate-school-a",
        issuer: ISSUER,
        algorithms: &algorithms,
        clock_skew: Duration::from_secs(60),
    };
    let config = Config::parse(CONFIG).unwrap();
    let mut keyring = Keyring::default();
    keyring.new_scope("school-a", 0).unwrap();
    let pseudonymizer = Pseudonymizer::new(&config, keyring).unwrap();
    let minter =
        Minter::new("https://learn.example/nymgate", SigningKey::generate(Algorithm::EdDSA).0, vec![]);

    let callback = || {
        let claims = check_id_token(&rules, &keys, &id_token, "n-0S6_WzA2Mj", now as i64).unwrap();
        let identity = VerifiedIdentity::unverified_for_benchmarks(ISSUER, &claims);
        let login = pseudonymizer
            .pseudonymize("school-a", &identity, nymgate::pseudonym::Sector::Primary, now)
            .unwrap();
        let request =
            TokenRequest { audience: "learning-platform", nonce: Some("p-nonce"), now, lifetime_secs: 300 };
        minter.mint(&login, &request)
    };
    assert!(callback().split('.').count() == 3);

    c.bench_function("id_token_check_rs256", |b| {
        b.iter(|| check_id_token(&rules, &keys, &id_token, "n-0S6_WzA2Mj", now as i64).unwrap())
    });
    c.bench_function("callback_work_verify_pseudonymize_mint", |b| b.iter(callback));
}

criterion_group!(benches, bench);
criterion_main!(benches);
