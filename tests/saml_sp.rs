//! nymgate's SAML service provider against a real IdP: SimpleSAMLphp requires signed
//! AuthnRequests from nymgate's SP (validate.authnrequest) and accepts ours over the
//! HTTP-Redirect binding; a request altered after signing is refused.

mod common;

use common::saml::{pem_to_b64, SimpleSamlPhp};
use nymgate::login::saml_sp::{SamlIdp, SamlSp};
use serde_json::json;

const ENTITY: &str = "https://localhost:8443/nymgate/saml";
const ACS: &str = "https://localhost:8443/nymgate/saml/acs";

fn setup(dir: &std::path::Path) -> (SamlSp, SimpleSamlPhp, SamlIdp) {
    let (cert, key) = nymgate::certs::generate_saml_signing_cert(ENTITY).unwrap();
    let sp = SamlSp::new(ENTITY, ACS, cert.as_bytes(), key.as_bytes()).unwrap();
    let description = json!({"entity_id": ENTITY, "acs_url": ACS, "cert_b64": pem_to_b64(&cert)});
    let users = json!({"student:x": {"uid": ["s-1001"], "eduPersonAffiliation": ["student"]}});
    let ssp = SimpleSamlPhp::start(dir, &description, &users);
    let idp = SamlIdp {
        tenant: "school-s".into(),
        entity_id: format!("{}/saml2/idp/metadata.php", ssp.base_url),
        sso_url: ssp.sso_url(),
        name_id_format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into()),
        sign_requests: true,
    };
    (sp, ssp, idp)
}

/// GET on the IdP; returns (status, Location, body).
async fn get(ssp: &SimpleSamlPhp, url: &str) -> (u16, String, String) {
    use http_body_util::BodyExt;
    use hyper_util::rt::TokioIo;
    let path = url.strip_prefix(&ssp.base_url).unwrap();
    let tcp = tokio::net::TcpStream::connect(ssp.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let request =
        http::Request::get(path).header("host", ssp.addr.to_string()).body(nymgate::body::empty()).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let location =
        response.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, location, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn simplesamlphp_accepts_nymgates_signed_authn_request() {
    let dir = tempfile::tempdir().unwrap();
    let (sp, ssp, idp) = setup(dir.path());
    let (url, _id) = sp.login_url(&idp, "relay-1", nymgate::clock::unix_now());
    let (status, location, body) = get(&ssp, &url).await;
    assert!(
        (300..400).contains(&status) && location.contains("loginuserpass"),
        "expected the login form, got {status} {location}\n{body}\n{}",
        SimpleSamlPhp::log(dir.path())
    );
}

#[tokio::test]
async fn simplesamlphp_refuses_an_authn_request_altered_after_signing() {
    let dir = tempfile::tempdir().unwrap();
    let (sp, ssp, idp) = setup(dir.path());
    let (url, _id) = sp.login_url(&idp, "relay-1", nymgate::clock::unix_now());
    let tampered = url.replace("RelayState=relay-1", "RelayState=relay-2");
    assert_ne!(tampered, url);
    // SimpleSAMLphp answers its error page with status 200; its log says why.
    let (_status, location, body) = get(&ssp, &tampered).await;
    assert!(!location.contains("loginuserpass"), "a tampered request must not reach the login form");
    assert!(body.contains("Unhandled exception"), "{body}");
    assert!(SimpleSamlPhp::log(dir.path()).contains("Unable to validate signature on query string"));
    // And without the signature at all.
    let unsigned = &url[..url.find("&Signature=").unwrap()];
    let (_status, location, body) = get(&ssp, unsigned).await;
    assert!(!location.contains("loginuserpass") && body.contains("Unhandled exception"), "unsigned accepted");
    assert!(
        SimpleSamlPhp::log(dir.path()).contains("no signature found"),
        "{}",
        SimpleSamlPhp::log(dir.path())
    );
}

#[tokio::test]
async fn nymgate_serves_its_sp_metadata_for_school_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (cert, key) = nymgate::certs::generate_saml_signing_cert(ENTITY).unwrap();
    nymgate::certs::write(&path.join("saml-sp.pem"), cert.as_bytes(), 0o644).unwrap();
    nymgate::certs::write(&path.join("saml-sp-key.pem"), key.as_bytes(), 0o600).unwrap();
    let (idp_cert, _) = nymgate::certs::generate_saml_signing_cert("idp").unwrap();
    std::fs::write(path.join("idp.pem"), idp_cert).unwrap();
    let mut ring = nymgate::pseudonym::keyring::Keyring::default();
    ring.new_scope("school-s", 0).unwrap();
    ring.save(&path.join("keyring.toml")).unwrap();
    let gw = common::Gateway::start_in(
        dir,
        r#"
[pseudonyms]
keyring_file = "keyring.toml"
[login]
public_url = "https://learn.example"
output = "assertion_header"
[login.saml]
cert_file = "saml-sp.pem"
key_file = "saml-sp-key.pem"
[[tenants]]
id = "school-s"
idp = "saml"
issuer = "https://idp.school-s.example/saml"
[tenants.saml]
sso_url = "https://idp.school-s.example/sso"
certificate_files = ["idp.pem"]
"#,
    )
    .await;
    let mut h1 = gw.h1().await;
    let response = h1.send(common::get("/nymgate/saml/metadata").body(common::empty()).unwrap()).await;
    assert_eq!(response.headers()["content-type"], "application/samlmetadata+xml");
    let xml = common::text(response).await;
    assert!(xml.contains(r#"entityID="https://learn.example/nymgate/saml""#), "{xml}");
    assert!(xml.contains(r#"Location="https://learn.example/nymgate/saml/acs""#), "{xml}");
    assert!(xml.contains(&pem_to_b64(&cert)), "the SP certificate is published");
}
