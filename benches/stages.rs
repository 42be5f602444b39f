//! The login stages not in the other benches: the sealed flow cookie every login writes at its
//! start and opens at its end (AES-256-GCM, seal.rs), and the SAML login start, whose
//! AuthnRequest nymgate signs with its RSA-2048 SP key (HTTP-Redirect binding, saml_sp.rs).
//! BENCHMARKS.md §3 and §4 have the callback's and the ACS's own work; §5 the whole login.

use criterion::{criterion_group, criterion_main, Criterion};
use nymgate::clock::unix_now;
use nymgate::login::saml_sp::{SamlIdp, SamlSp};
use nymgate::seal::Sealer;
use nymgate::secret::Secret;

const SP: &str = "https://learn.example/nymgate/saml";

fn bench(c: &mut Criterion) {
    let sealer = Sealer::new(&Secret::new(vec![7; 32]), &[]);
    // A pending OIDC login as the flow cookie holds it: tenant, issuer, nonce, PKCE verifier,
    // return path (about 300 bytes of JSON).
    let flow = format!(
        r#"{{"tenant":"school-a","issuer":"https://login.microsoftonline.com/{}/v2.0","nonce":"{}","verifier":"{}","return_to":"/courses/42"}}"#,
        "9".repeat(36),
        "n".repeat(32),
        "v".repeat(64)
    );
    let expires = unix_now() + 600;
    c.bench_function("seal_flow_cookie", |b| b.iter(|| sealer.seal("flow", flow.as_bytes(), expires)));
    let sealed = sealer.seal("flow", flow.as_bytes(), expires);
    c.bench_function("open_flow_cookie", |b| b.iter(|| sealer.open("flow", &sealed, unix_now()).unwrap()));

    let (cert, key) = nymgate::certs::generate_saml_signing_cert(SP).unwrap();
    let sp = SamlSp::new(SP, &format!("{SP}/acs"), cert.as_bytes(), key.as_bytes()).unwrap();
    let idp = SamlIdp {
        tenant: "school-s".into(),
        entity_id: "https://idp.school-s.example/saml".into(),
        sso_url: "https://idp.school-s.example/sso".into(),
        name_id_format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into()),
        sign_requests: true,
    };
    c.bench_function("saml_login_start_signed_authn_request", |b| {
        b.iter(|| sp.login_url(&idp, "relay-state-of-43-characters-aaaaaaaaaaaaa", unix_now()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
