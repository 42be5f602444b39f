//! nymgate's own work on a login's identity: stable subject, account number (HMAC), claim
//! policy and guard, on an identity nymgate's OIDC verifier checked (a token signed here). The
//! HMAC alone is no longer a benchmark of its own: the derivation is crate-private (the
//! pseudonymizer's only login entry takes a verified identity), and it is inside every
//! `pseudonymize_typical_login`. Run: `cargo bench --bench pseudonym`.

use criterion::{criterion_group, criterion_main, Criterion};
use nymgate::config::Config;
use nymgate::pseudonym::keyring::Keyring;
use nymgate::pseudonym::Pseudonymizer;
use nymgate::verify::identity::VerifiedIdentity;
use nymgate::verify::oidc_rp::verify_id_token;

#[path = "support/signed_id_token.rs"]
mod signed_id_token;

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
idp = "entra"
issuer = "9188040d-6c67-4c5b-b112-36a304b66dad"
policy = { preset = "entra", school_from = ["school"], school_map = { "21648755" = "school-a" } }
"#;

fn typical_entra_login() -> VerifiedIdentity {
    // The claims an Entra ID token and userinfo carry for a pupil, with app roles and a school.
    let claims = serde_json::json!({
        "iss": "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
        "aud": "6cb04018-a3f5-46a7-b995-940c78f5aef3", "exp": 1795994100, "iat": 1795990500,
        "nbf": 1795990500, "nonce": "n-0S6_WzA2Mj", "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "tid": "9188040d-6c67-4c5b-b112-36a304b66dad", "oid": "00000000-0000-0000-66f3-3332eca7ea81",
        "email": "alice.andersson@school-a.example", "preferred_username": "alice.andersson@school-a.example",
        "name": "Alice Andersson", "given_name": "Alice", "family_name": "Andersson",
        "roles": ["Student"], "school": "21648755"
    });
    let issuer = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0";
    let (token, keys) = signed_id_token::sign(&claims);
    let rules = signed_id_token::rules("6cb04018-a3f5-46a7-b995-940c78f5aef3", issuer);
    verify_id_token(&rules, &keys, &token, "n-0S6_WzA2Mj", 1_795_990_600).unwrap()
}

fn bench(c: &mut Criterion) {
    let config = Config::parse(CONFIG).unwrap();
    let mut keyring = Keyring::default();
    keyring.new_scope("school-a", 0).unwrap();
    let pseudonymizer = Pseudonymizer::new(&config, keyring).unwrap();
    let identity = typical_entra_login();
    assert_eq!(
        pseudonymizer
            .pseudonymize("school-a", &identity, nymgate::pseudonym::Sector::Primary, 0)
            .unwrap()
            .school
            .as_deref(),
        Some("school-a")
    );

    // The canonical issuer (issue 26): made once per login, for the issuer check.
    c.bench_function("canonical_issuer", |b| {
        b.iter(|| {
            nymgate::config::issuer::canonical_issuer(std::hint::black_box(
                "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
            ))
        })
    });
    c.bench_function("pseudonymize_typical_login", |b| {
        b.iter(|| {
            pseudonymizer.pseudonymize("school-a", &identity, nymgate::pseudonym::Sector::Primary, 0).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
