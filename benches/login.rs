//! nymgate's own work per OIDC callback, without the network: the IdP's RS256 ID token checked
//! (openidconnect: signature, iss, aud, exp, iat, nonce; then nbf, azp, sub), the stable subject
//! and account number, the claim policy and guard, and the EdDSA token minted for the platform.
//! Run: `cargo bench --bench login`.

use criterion::{criterion_group, criterion_main, Criterion};
use nymgate::config::Config;
use nymgate::mint::{Algorithm, Minter, SigningKey, TokenRequest};
use nymgate::pseudonym::keyring::Keyring;
use nymgate::pseudonym::Pseudonymizer;
use nymgate::verify::oidc_rp::{check_id_token, verify_id_token};
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

#[path = "support/signed_id_token.rs"]
mod signed_id_token;

/// The claims of a pupil's ID token as a school IdP sends them.
fn pupil_claims(now: i64) -> serde_json::Value {
    json!({
        "iss": ISSUER, "aud": "nymgate-school-a", "sub": "idp-subject-alice-7f3a9c", "exp": now + 300,
        "iat": now, "nonce": "n-0S6_WzA2Mj", "email": "alice.andersson@school-a.example",
        "email_verified": true, "name": "Alice Andersson", "given_name": "Alice",
        "family_name": "Andersson", "roles": ["Student"], "school_code": "SCH-A-01",
    })
}

fn bench(c: &mut Criterion) {
    let now = nymgate::clock::unix_now();
    let (id_token, keys) = signed_id_token::sign(&pupil_claims(now as i64));
    let rules = signed_id_token::rules("nymgate-school-a", ISSUER);
    let config = Config::parse(CONFIG).unwrap();
    let mut keyring = Keyring::default();
    keyring.new_scope("school-a", 0).unwrap();
    let pseudonymizer = Pseudonymizer::new(&config, keyring).unwrap();
    let minter =
        Minter::new("https://learn.example/nymgate", SigningKey::generate(Algorithm::EdDSA).0, vec![]);

    let callback = || {
        let identity = verify_id_token(&rules, &keys, &id_token, "n-0S6_WzA2Mj", now as i64).unwrap();
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
