//! The SAML ACS's own work for one login: the strict profile and the signature check of a
//! typical response (7.5 KB, fourteen attributes, the Assertion signed, as ADFS sends them; a
//! fuzz seed signed by samlify), then the pseudonym, the policy and the guard, then nymgate's
//! EdDSA token. Also the check of a response signed twice (Response and Assertion, 6.7 KB), and
//! the refusal of a 121 KB response with 12,000 attributes on one element (issue 27).
//! Network, TLS and the flow cookie are not in it. BENCHMARKS.md §4 has the figures.

use criterion::{criterion_group, criterion_main, Criterion};
use nymgate::config::Config;
use nymgate::mint::{Algorithm, Minter, SigningKey, TokenRequest};
use nymgate::pseudonym::keyring::Keyring;
use nymgate::pseudonym::Pseudonymizer;
use nymgate::verify::saml_acs::{self, Expected, IdpTrust, RequiredSignatures};

const IDP: &str = "https://idp.school-s.example/saml";
const TYPICAL: &str = include_str!("../fuzz/seeds/saml_response/samlify-assertion-typical.xml");
const SIGNED_TWICE: &str = include_str!("../fuzz/seeds/saml_response/samlify-both.xml");
const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
cert_file = "unused"
key_file = "unused"
[pseudonyms]
keyring_file = "unused"
[[tenants]]
id = "school-s"
idp = "saml"
issuer = "https://idp.school-s.example/saml"
policy = { role_from = ["urn:oid:1.3.6.1.4.1.5923.1.1.1.1"], role_map = { "student" = "student" } }
"#;

fn bench(c: &mut Criterion) {
    let cert = include_bytes!("../fuzz/saml-idp.pem").to_vec();
    let trust = IdpTrust::new(IDP, &[cert], RequiredSignatures::Either, false, 60, false).unwrap();
    let expected = Expected {
        sp_entity_id: "https://learn.example/nymgate/saml",
        acs_url: "https://learn.example/nymgate/saml/acs",
        request_id: Some("_req1"),
        now: nymgate::clock::parse_instant("2026-11-25T10:01:00Z").unwrap(),
        relay_in_response_to: false,
    };
    let config = Config::parse(CONFIG).unwrap();
    let mut keyring = Keyring::default();
    keyring.new_scope("school-s", 0).unwrap();
    let pseudonymizer = Pseudonymizer::new(&config, keyring).unwrap();
    let minter =
        Minter::new("https://learn.example/nymgate", SigningKey::generate(Algorithm::EdDSA).0, vec![]);

    let acs = || {
        let verified = saml_acs::verify(TYPICAL, &trust, &expected).unwrap();
        let login = pseudonymizer
            .pseudonymize("school-s", &verified.identity, nymgate::pseudonym::Sector::Primary, expected.now)
            .unwrap();
        let request = TokenRequest {
            audience: "learning-platform",
            nonce: Some("p-nonce"),
            now: expected.now,
            lifetime_secs: 300,
        };
        minter.mint(&login, &request)
    };
    assert_eq!(acs().split('.').count(), 3);

    c.bench_function("saml_verify_typical_7k_one_signature", |b| {
        b.iter(|| saml_acs::verify(TYPICAL, &trust, &expected).unwrap())
    });
    c.bench_function("saml_verify_7k_two_signatures", |b| {
        b.iter(|| saml_acs::verify(SIGNED_TWICE, &trust, &expected).unwrap())
    });
    c.bench_function("saml_acs_work_verify_pseudonymize_mint", |b| b.iter(acs));
    // Issue 27's hostile document: 12,000 attributes on one element in 121 KB, refused by the
    // XML bounds before the parser (the parser alone took a quarter of a second on it).
    let many: String = (0..12_000).map(|i| format!(" a{i}=\"x\"")).collect();
    let hostile = format!("<samlp:Response xmlns:samlp=\"{}\"{many}/>", saml_acs::SAMLP);
    c.bench_function("saml_refuse_121k_12000_attributes", |b| {
        b.iter(|| saml_acs::verify(&hostile, &trust, &expected).is_err())
    });
    let verified = saml_acs::verify(TYPICAL, &trust, &expected).unwrap();
    let login = pseudonymizer
        .pseudonymize("school-s", &verified.identity, nymgate::pseudonym::Sector::Primary, expected.now)
        .unwrap();
    let request = TokenRequest {
        audience: "learning-platform",
        nonce: Some("p-nonce"),
        now: expected.now,
        lifetime_secs: 300,
    };
    c.bench_function("mint_eddsa_token", |b| b.iter(|| minter.mint(&login, &request)));
    c.bench_function("saml_pseudonymize_typical", |b| {
        b.iter(|| {
            pseudonymizer
                .pseudonymize(
                    "school-s",
                    &verified.identity,
                    nymgate::pseudonym::Sector::Primary,
                    expected.now,
                )
                .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
