//! Building and signing nymgate's SAML Response for a platform (issue 10, BENCHMARKS.md §7):
//! the Assertion signed, then the Response around it, with an RSA-2048 key (the default) and a
//! P-256 key (`signature_algorithm = "ecdsa-sha256"`); and reading a platform's signed
//! HTTP-Redirect AuthnRequest.

use criterion::{criterion_group, criterion_main, Criterion};
use nymgate::mint::saml_idp::{SamlIdp, SignatureAlgorithm, SpRequest, SpSettings};
use nymgate::pseudonym::policy::Role;
use nymgate::pseudonym::PseudonymousLogin;

const SP: &str = "https://platform.example/saml";

fn idp(algorithm: SignatureAlgorithm, sp_cert: Option<&str>) -> SamlIdp {
    let rcgen_algorithm = match algorithm {
        SignatureAlgorithm::EcdsaSha256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        _ => &rcgen::PKCS_RSA_SHA256,
    };
    let (cert, key) =
        nymgate::certs::generate_saml_signing_cert_for("https://learn.example/nymgate/idp", rcgen_algorithm)
            .unwrap();
    let certificates = sp_cert.map(|c| vec![c.as_bytes().to_vec()]).unwrap_or_default();
    let sp = SpSettings { certificates, ..SpSettings::new(SP, &format!("{SP}/acs")) };
    SamlIdp::new(
        "https://learn.example/nymgate/idp".into(),
        "https://learn.example/nymgate/idp/sso".into(),
        cert.as_bytes(),
        key.as_bytes(),
        algorithm,
        300,
        vec![sp],
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    // The number's shape is all the SAML Response needs (the derivation is the pseudonymizer's).
    let login = PseudonymousLogin {
        tenant: "school-a".into(),
        sub: nymgate::pseudonym::AccountNumber::parse("v1-7QX2-M9RA-4HVE-T0BZ").unwrap(),
        nym_ver: 1,
        sub_prev: None,
        nym_src: None,
        role: Role::Student,
        school: Some("SCH-A-01".into()),
        municipality: Some("0180".into()),
        removed: vec![],
    };
    let request = SpRequest::new(SP, Some("_req1".into()), None);
    let now = nymgate::clock::unix_now();
    for (name, algorithm) in
        [("rsa_sha256", SignatureAlgorithm::RsaSha256), ("ecdsa_sha256", SignatureAlgorithm::EcdsaSha256)]
    {
        let idp = idp(algorithm, None);
        assert!(idp.response(&login, &request, now).is_ok());
        c.bench_function(&format!("saml_out_response_{name}"), |b| {
            b.iter(|| idp.response(&login, &request, now).unwrap())
        });
    }

    // A platform's signed Redirect AuthnRequest, made by nymgate's own SP code.
    let (sp_cert, sp_key) = nymgate::certs::generate_saml_signing_cert(SP).unwrap();
    let idp = idp(SignatureAlgorithm::RsaSha256, Some(&sp_cert));
    let platform =
        nymgate::login::saml_sp::SamlSp::new(SP, &format!("{SP}/acs"), sp_cert.as_bytes(), sp_key.as_bytes())
            .unwrap();
    let target = nymgate::login::saml_sp::SamlIdp {
        tenant: "t".into(),
        entity_id: idp.entity_id.clone(),
        sso_url: idp.sso_url.clone(),
        name_id_format: None,
        sign_requests: true,
    };
    let (url, _) = platform.login_url(&target, "relay", now);
    let query = url.split_once('?').unwrap().1.to_owned();
    assert!(idp.read_redirect(&query, now).is_ok());
    c.bench_function("saml_out_read_signed_redirect_authn_request", |b| {
        b.iter(|| idp.read_redirect(&query, now).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
