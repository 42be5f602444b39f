//! SAML out (issue 10): nymgate as the SAML IdP of a SAML-only platform. The platform is a real
//! SP, npm `@node-saml/node-saml` 5.1 in its strict defaults (tests/peers/saml_platform.mjs); the
//! schools are SimpleSAMLphp (SAML in) and oidc-provider (OIDC in). Whatever came in, the
//! platform gets a Response nymgate wrote and signed twice, with the account number as its
//! persistent NameID and nothing personal in it.

mod common;
/// Issue 26's strict reading of the platform's requests.
#[path = "saml_out/strict.rs"]
mod strict;

use common::login::{Options, SamlIdpKind, World};
use serde_json::Value;

const PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";

/// What every successful platform login must show: node-saml accepted the Response, the NameID
/// is the account number of the audit line, the attributes are the pseudonymous ones, a copy
/// changed after signing and a replay were refused, and nothing personal reached the platform.
fn assert_pseudonymous_login(world: &World, result: &Value, tenant: &str) {
    assert!(result["error"].is_null(), "{}\nlast audit line: {}", result["error"], world.last_login());
    let profile = &result["profile"];
    let audit = world.last_login();
    assert_eq!((audit["outcome"].as_str(), audit["tenant"].as_str()), (Some("ok"), Some(tenant)), "{audit}");
    assert_eq!(profile["nameID"], audit["account_number"], "{profile}");
    assert_eq!(profile["nameIDFormat"], PERSISTENT);
    assert_eq!(profile["tenant"], tenant, "{profile}");
    assert_eq!(profile["role"], "student", "{profile}");
    assert_eq!(profile["urn:oid:1.3.6.1.4.1.5923.1.1.1.1"], "student", "{profile}");
    assert_eq!(result["relay_state"], "platform-state-42");
    let tampered = result["tampered_error"].as_str().unwrap_or_default();
    assert!(
        tampered.to_lowercase().contains("signature"),
        "a changed response was not refused for its signature: {result}"
    );
    assert!(!result["replay_error"].is_null(), "the same response was accepted twice");
    let xml = result["xml"].as_str().unwrap();
    // A fresh document of nymgate's: its own issuer, no trace of the school's XML.
    assert!(xml.contains("/nymgate/idp</saml:Issuer>"), "{xml}");
    assert_eq!(xml.matches("<ds:Signature ").count(), 2, "{xml}");
    world.assert_no_personal_values(&[("platform's received SAML response", xml)]);
}

/// With SimpleSAMLphp as the school, node-saml (strict) accepts nymgate's Response, and so
/// does PyPI python3-saml in strict mode (both signatures wanted, Destination checked); both
/// refuse a copy changed after signing.
#[test]
fn simplesamlphp_school_to_strict_node_saml_and_python3_saml_platforms() {
    let world = World::start(Options {
        saml: Some(SamlIdpKind::SimpleSamlPhp),
        saml_out: true,
        ..Options::default()
    });
    let result = world.saml_platform_login("school-s", true, Some((">student<", ">teacher<")));
    assert_pseudonymous_login(&world, &result, "school-s");
    // The school's own entity ID never reaches the platform.
    let school_issuer = world.saml.as_ref().unwrap().entity_id.clone();
    let xml = result["xml"].as_str().unwrap();
    assert!(!xml.contains(&school_issuer));

    let checked = python3_saml(&world, xml, (">student<", ">teacher<"));
    assert_eq!(checked["valid"], true, "{checked}");
    assert_eq!(checked["name_id"], result["profile"]["nameID"]);
    assert_eq!(checked["name_id_format"], PERSISTENT);
    assert_eq!(checked["attributes"]["tenant"], serde_json::json!(["school-s"]));
    assert_eq!(checked["attributes"]["role"], serde_json::json!(["student"]));
    assert_eq!(checked["tampered_valid"], false, "{checked}");
    let error = checked["tampered_error"].as_str().unwrap_or_default().to_lowercase();
    assert!(error.contains("signature"), "{checked}");
}

/// With oidc-provider as the school, node-saml (strict) accepts nymgate's Response, and Debian
/// `samlsign` verifies both its signatures; each refuses a changed copy, and node-saml a
/// changed account number at the next login, which is the same person's number.
#[test]
fn oidc_provider_school_to_strict_node_saml_and_samlsign() {
    let world = World::start(Options { saml_out: true, ..Options::default() });
    let result = world.saml_platform_login("school-a", true, Some((">student<", ">teacher<")));
    assert_pseudonymous_login(&world, &result, "school-a");

    let xml = result["xml"].as_str().unwrap();
    let assertion_id = xml
        .split("<saml:Assertion ")
        .nth(1)
        .unwrap()
        .split("ID=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let (root, log) = samlsign_verifies(&world, xml, None);
    assert!(root, "samlsign refused the Response's signature: {log}");
    let (assertion, log) = samlsign_verifies(&world, xml, Some(assertion_id));
    assert!(assertion, "samlsign refused the Assertion's signature: {log}");
    let changed = xml.replace(">student<", ">teacher<");
    assert_ne!(changed, xml);
    assert!(!samlsign_verifies(&world, &changed, None).0, "samlsign accepted a changed Response");
    assert!(
        !samlsign_verifies(&world, &changed, Some(assertion_id)).0,
        "samlsign accepted a changed Assertion"
    );

    let number = result["profile"]["nameID"].as_str().unwrap().to_owned();
    let again = world.saml_platform_login("school-a", true, Some((&number, "NYM0-AAAA-AAAA-AAAA-AAAA")));
    assert_eq!(again["profile"]["nameID"], result["profile"]["nameID"], "{again}");
    let error = again["tampered_error"].as_str().unwrap_or_default().to_lowercase();
    assert!(error.contains("signature"), "a changed account number was not refused: {again}");
}

#[test]
fn unsigned_authn_request_from_a_signing_platform_is_refused() {
    let world = World::start(Options { saml_out: true, ..Options::default() });
    let result = world.saml_platform_login("school-a", false, None);
    assert!(result["error"].as_str().unwrap_or_default().contains("no SAMLResponse form"), "{result}");
    let audit = world.last_login();
    assert_eq!(
        (audit["outcome"].as_str(), audit["reason"].as_str()),
        (Some("failed"), Some("authn_request_unsigned")),
        "{audit}"
    );
}

#[test]
fn idp_metadata_names_the_sso_service_and_the_signing_certificate() {
    let world = World::start(Options { saml_out: true, ..Options::default() });
    let xml = world.node_eval(&format!(
        "const r = await fetch({:?}); console.log(r.headers.get('content-type') + '\\n' + await r.text());",
        world.url("/nymgate/idp/metadata")
    ));
    assert!(xml.starts_with("application/samlmetadata+xml"), "{xml}");
    assert!(xml.contains(&format!("Location=\"{}\"", world.url("/nymgate/idp/sso"))), "{xml}");
    // The intercepted platform may send unsigned requests: the metadata does not claim that
    // every request must be signed (the node-saml platform's still must, by its pinned key).
    assert!(xml.contains("WantAuthnRequestsSigned=\"false\""), "{xml}");
    let cert = std::fs::read_to_string(world.dir.path().join("saml-out.pem")).unwrap();
    let der: String = cert.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(xml.contains(&der), "{xml}");
    // Signed by nymgate's IdP key: opensaml's samlsign verifies the root's signature, and
    // refuses a copy whose SSO address was changed.
    let document = xml.split_once('\n').unwrap().1;
    let (ok, said) = samlsign_verifies(&world, document, None);
    assert!(ok, "samlsign refused nymgate's metadata: {said}");
    let changed = document.replace("/nymgate/idp/sso", "/elsewhere/sso");
    assert!(!samlsign_verifies(&world, &changed, None).0, "samlsign took a changed copy");
    assert!(document.contains("validUntil=\"") && document.contains("cacheDuration=\"PT6H\""), "{document}");
}

/// The InResponseTo of nymgate's Response (the platform's request ID).
/// PyPI python3-saml (OneLogin) in strict mode validates the Response nymgate posted to the
/// node-saml platform, and a copy with `tamper` applied.
fn python3_saml(world: &World, xml: &str, tamper: (&str, &str)) -> Value {
    world.python3_saml(xml, common::login::SAML_PLATFORM, common::login::SAML_PLATFORM_ACS, Some(tamper))
}

/// Debian opensaml-tools' `samlsign` verifies the signature of the document's root, or of the
/// element with `id`, against nymgate's certificate.
fn samlsign_verifies(world: &World, xml: &str, id: Option<&str>) -> (bool, String) {
    let path = world.dir.path();
    let file = path.join("samlsign-input.xml");
    std::fs::write(&file, xml).unwrap();
    let mut command = std::process::Command::new("samlsign");
    command.arg("-c").arg(path.join("saml-out.pem")).arg("-f").arg(&file);
    if let Some(id) = id {
        command.args(["-id", id]);
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("samlsign did not run (Debian package opensaml-tools): {e}"));
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The platform behind nymgate whose ACS nymgate intercepts, and what it answered.
struct InterceptedPlatform {
    url: String,
    _process: common::login::Peer,
    _dir: tempfile::TempDir,
}

impl InterceptedPlatform {
    fn start() -> InterceptedPlatform {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("unused.json");
        std::fs::write(&config, "{}").unwrap();
        let (url, process) =
            common::login::start_node_peer(dir.path(), "saml_platform_server.mjs", &config, "platform.log");
        InterceptedPlatform { url, _process: process, _dir: dir }
    }

    fn call(&self, world: &World, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body
            .map(|b| format!(", body: {:?}, headers: {{'content-type': 'application/json'}}", b.to_string()));
        let out = world.node_eval(&format!(
            "const r = await fetch({:?}, {{method: {method:?}{}}}); console.log(await r.text());",
            format!("{}{path}", self.url),
            body.unwrap_or_default()
        ));
        serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("the platform answered no JSON: {out}"))
    }
}

/// A response from the samlify school to the intercepted platform (its audience, its ACS
/// behind nymgate, its request), signed as `sign` says.
fn school_response_to_platform(world: &World, request_id: &str, sign: &str) -> String {
    use common::saml::ResponseFields;
    let acs = world.url("/saml/acs");
    let mut fields = ResponseFields::for_flow(world.school(), None);
    fields.in_response_to = Some(request_id.to_owned());
    fields.destination = Some(acs.clone());
    fields.recipient = acs;
    fields.audience = common::login::SAML_INTERCEPTED.to_owned();
    world.saml_sign(&fields.xml(), sign, "idp", None)
}

/// nymgate in front of the node-saml platform whose ACS (`/saml/acs`) it intercepts, the
/// platform configured to trust nymgate's IdP certificate, and a SAML school signing with
/// `school`.
fn intercepted_world(school: SamlIdpKind) -> (InterceptedPlatform, World) {
    let platform = InterceptedPlatform::start();
    let world = World::start(Options {
        saml: Some(school),
        saml_out: true,
        upstream: Some(platform.url.clone()),
        ..Options::default()
    });
    let idp_cert = std::fs::read_to_string(world.dir.path().join("saml-out.pem")).unwrap();
    let configure = serde_json::json!({
        "idp_cert": idp_cert,
        "entity_id": common::login::SAML_INTERCEPTED,
        "acs_url": world.url("/saml/acs"),
        "sso_url": world.url("/nymgate/idp/sso"),
    });
    assert_eq!(platform.call(&world, "POST", "/configure", Some(configure))["ok"], true);
    (platform, world)
}

#[test]
fn interception_replaces_the_schools_response_before_the_platform_sees_it() {
    let (platform, world) = intercepted_world(SamlIdpKind::Samlify);
    let request_id = platform.call(&world, "GET", "/start", None)["id"].as_str().unwrap().to_owned();

    // The school answers the platform's request; the POST goes through nymgate.
    let school_xml = school_response_to_platform(&world, &request_id, "both");
    let answer = world.post_acs_at(&world.url("/saml/acs"), None, &school_xml);
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen: Value = serde_json::from_str(&answer.body).unwrap_or_else(|_| panic!("{answer:?}"));
    assert_eq!(seen["ok"], true, "node-saml (strict) refused nymgate's response: {seen}");
    let audit = world.last_login();
    assert_eq!(
        (audit["outcome"].as_str(), audit["tenant"].as_str()),
        (Some("ok"), Some("school-s")),
        "{audit}"
    );
    assert_eq!(seen["profile"]["nameID"], audit["account_number"], "{seen}");
    assert_eq!(seen["profile"]["inResponseTo"], request_id.as_str(), "{seen}");
    assert_eq!(seen["profile"]["role"], "student", "{seen}");
    let xml = seen["xml"].as_str().unwrap();
    assert!(xml.contains("/nymgate/idp</saml:Issuer>") && !xml.contains(&world.school().entity_id), "{xml}");

    // The same school response again: refused by nymgate, never forwarded.
    let replay = world.post_acs_at(&world.url("/saml/acs"), None, &school_xml);
    assert_eq!(replay.status, 400, "{replay:?}");
    assert_eq!(world.last_login()["reason"], "saml_replayed");
    // A school response whose signature does not verify: refused, never forwarded.
    let request_id = platform.call(&world, "GET", "/start", None)["id"].as_str().unwrap().to_owned();
    let forged = school_response_to_platform(&world, &request_id, "both").replace(">student<", ">faculty<");
    let refused = world.post_acs_at(&world.url("/saml/acs"), None, &forged);
    assert_eq!(refused.status, 400, "{refused:?}");
    let received = platform.call(&world, "GET", "/received", None);
    assert_eq!(received.as_array().unwrap().len(), 1, "only nymgate's one response reached the platform");
    world.assert_no_personal_values(&[("platform's received bytes", &received.to_string())]);
    // Counted under the school, and timed step by step: the two refusals stopped at verify.
    let metrics = world.metrics();
    assert_eq!(sample(&metrics, "nymgate_tenant_logins_total{tenant=\"school-s\",outcome=\"ok\"}"), 1.0);
    assert_eq!(login_steps(&metrics), [3.0, 1.0, 1.0, 1.0], "{metrics}");
}

/// The value of one series in a metrics page.
fn sample(metrics: &str, series: &str) -> f64 {
    let value = metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' '));
    value.unwrap_or_else(|| panic!("no {series} in {metrics}")).parse().unwrap()
}

/// How many logins each step (verify, pseudonymize, mint, commit) was timed for.
fn login_steps(metrics: &str) -> [f64; 4] {
    ["verify", "pseudonymize", "mint", "commit"]
        .map(|step| sample(metrics, &format!("nymgate_login_step_duration_seconds_count{{step=\"{step}\"}}")))
}

#[test]
fn interception_refuses_a_response_for_another_audience() {
    let platform = InterceptedPlatform::start();
    let world = World::start(Options {
        saml: Some(SamlIdpKind::Samlify),
        saml_out: true,
        upstream: Some(platform.url.clone()),
        ..Options::default()
    });
    // A response the school made for nymgate's own SP (or any other), replayed at the platform.
    let mut fields = common::saml::ResponseFields::for_flow(world.school(), None);
    fields.in_response_to = Some("_platform-request".into());
    let xml = world.saml_sign(&fields.xml(), "both", "idp", None);
    let answer = world.post_acs_at(&world.url("/saml/acs"), None, &xml);
    assert_eq!(answer.status, 400, "{answer:?}");
    let reason = world.last_login()["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.starts_with("saml_"), "{reason}");
    assert_eq!(platform.call(&world, "GET", "/received", None), serde_json::json!([]));
}

#[test]
fn the_school_chooser_carries_the_platforms_request() {
    let world = World::start(Options { saml_out: true, ..Options::default() });
    let result = world.saml_platform_login_with(
        serde_json::json!({"tenant": null, "choose": "school-a"}),
        true,
        Some((">student<", ">teacher<")),
    );
    assert_eq!(result["chooser_status"], 200, "{result}");
    assert_pseudonymous_login(&world, &result, "school-a");
}

/// nymgate in front of the node-saml platform whose ACS it intercepts, the platform trusting
/// nymgate's IdP certificate and taking a Response without InResponseTo (IdP-initiated).
fn idp_initiated_world() -> (InterceptedPlatform, World) {
    let platform = InterceptedPlatform::start();
    let world =
        World::start(Options { saml_out: true, upstream: Some(platform.url.clone()), ..Options::default() });
    let configure = serde_json::json!({
        "idp_cert": std::fs::read_to_string(world.dir.path().join("saml-out.pem")).unwrap(),
        "entity_id": common::login::SAML_INTERCEPTED,
        "acs_url": world.url("/saml/acs"),
        "sso_url": world.url("/nymgate/idp/sso"),
        "validate_in_response_to": "ifPresent",
    });
    assert_eq!(platform.call(&world, "POST", "/configure", Some(configure))["ok"], true);
    (platform, world)
}

#[test]
fn idp_initiated_login_reaches_the_intercepted_platform_through_nymgate() {
    // The platform's process lives as long as the test.
    let (_platform, world) = idp_initiated_world();
    let sp: String = url_encode(common::login::SAML_INTERCEPTED);
    // nymgate's own Response is posted by the browser to the intercepted ACS, which forwards it
    // once it verifies; the platform's answer comes back through nymgate.
    let page = world.browse(
        &world.url(&format!("/nymgate/idp/init?sp={sp}&tenant=school-a&RelayState=%2Fcourses")),
        None,
    );
    let seen: Value =
        serde_json::from_str(page["body"].as_str().unwrap_or_default()).unwrap_or_else(|_| panic!("{page}"));
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["profile"]["nameID"], world.last_login()["account_number"]);
    assert!(seen["profile"]["inResponseTo"].is_null(), "{seen}");
    assert_eq!(seen["relay_state"], "/courses");
    world.assert_no_personal_values(&[("platform's received bytes", &seen.to_string())]);
    // One login (the school's, at nymgate's callback): its Response passing the intercepted
    // ACS is no second one.
    assert_eq!(login_steps(&world.metrics()), [1.0, 1.0, 1.0, 1.0]);

    // A platform that does not allow IdP-initiated logins gets none.
    let sp = url_encode(common::login::SAML_PLATFORM);
    let refused = world.browse(&world.url(&format!("/nymgate/idp/init?sp={sp}&tenant=school-a")), None);
    assert_eq!(refused["status"], 400, "{refused}");
    assert_eq!(world.last_login()["reason"], "idp_initiated_not_allowed");
}

fn url_encode(value: &str) -> String {
    value.replace(':', "%3A").replace('/', "%2F")
}

#[test]
fn a_signed_post_binding_authn_request_is_accepted_and_a_changed_one_refused() {
    let world = World::start(Options { saml_out: true, ..Options::default() });
    let result = world.saml_platform_login_with(
        serde_json::json!({"tenant": "school-a", "binding": "post"}),
        true,
        Some((">student<", ">teacher<")),
    );
    let request = result["request_xml"].as_str().unwrap_or_default();
    assert!(
        request.contains("<ds:Signature") || request.contains("<Signature"),
        "node-saml did not sign: {request}"
    );
    assert_pseudonymous_login(&world, &result, "school-a");

    // The same signed request with its ACS URL changed: the signature no longer holds.
    use base64::Engine;
    let changed = request.replace(common::login::SAML_PLATFORM_ACS, "https://platform.example/saml/other");
    assert_ne!(changed, request);
    let form = format!(
        "SAMLRequest={}&tenant=school-a",
        url_encode(&base64::engine::general_purpose::STANDARD.encode(changed))
            .replace('+', "%2B")
            .replace('=', "%3D")
    );
    let out = world.node_eval(&format!(
        "const r = await fetch({:?}, {{method: 'POST', redirect: 'manual', body: {form:?}, headers: {{'content-type': 'application/x-www-form-urlencoded'}}}}); console.log(r.status);",
        world.url("/nymgate/idp/sso")
    ));
    assert_eq!(out.trim(), "400", "{out}");
    assert_eq!(world.last_login()["reason"], "authn_request_signature");

    // node-saml's default SHA-1 digest: refused as a weak algorithm.
    let sha1 = world.saml_platform_login_with(
        serde_json::json!({"tenant": "school-a", "binding": "post", "digest": "sha1"}),
        true,
        None,
    );
    assert!(sha1["error"].as_str().unwrap_or_default().contains("no SAMLResponse form"), "{sha1}");
    assert_eq!(world.last_login()["reason"], "authn_request_signature");
}

/// A platform AuthnRequest over HTTP-Redirect, unsigned, from the intercepted platform (which
/// does not sign), with `edit` applied to its XML; the status nymgate answered.
fn redirect_request(world: &World, edit: impl FnOnce(String) -> String) -> u64 {
    use std::io::Write;
    let xml = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_req-audit" Version="2.0" IssueInstant="{now}" Destination="{sso}" AssertionConsumerServiceURL="{acs}" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml:Issuer>{sp}</saml:Issuer></samlp:AuthnRequest>"#,
        now = common::saml::instant(common::saml::now()),
        sso = world.url("/nymgate/idp/sso"),
        acs = world.url("/saml/acs"),
        sp = common::login::SAML_INTERCEPTED,
    );
    let mut deflater = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflater.write_all(edit(xml).as_bytes()).unwrap();
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(deflater.finish().unwrap());
    let query = format!(
        "SAMLRequest={}&tenant=school-a",
        url_encode(&encoded).replace('+', "%2B").replace('=', "%3D")
    );
    get_status(world, &world.url(&format!("/nymgate/idp/sso?{query}")))
}

fn get_status(world: &World, url: &str) -> u64 {
    let out = world.node_eval(&format!(
        "const r = await fetch({url:?}, {{redirect: 'manual'}}); console.log(r.status);"
    ));
    out.trim().parse().unwrap_or_else(|_| panic!("no status: {out}"))
}

/// A change made to a request's XML.
type Edit = Box<dyn Fn(String) -> String>;

#[test]
fn refused_authn_requests_are_audited_with_their_reason() {
    let world = World::start(Options { saml_out: true, ..Options::default() });
    let reason = |world: &World| world.last_login()["reason"].as_str().unwrap_or_default().to_owned();
    // The well-formed request passes (to the school's IdP), so each edit below is what fails.
    assert_eq!(redirect_request(&world, |xml| xml), 303);
    let acs = world.url("/saml/acs");
    let cases: [(&str, u64, Edit); 6] = [
        (
            "authn_request_malformed",
            400,
            Box::new(|xml: String| xml.replace("AuthnRequest", "LogoutRequest")),
        ),
        (
            "authn_request_malformed",
            400,
            Box::new(|xml: String| xml.replace("_req-audit", "1-not-an-ncname")),
        ),
        ("unknown_service_provider", 404, Box::new(|xml: String| xml.replace("/intercepted<", "/stranger<"))),
        (
            "authn_request_acs",
            400,
            Box::new(move |xml: String| xml.replace(&acs, "https://evil.example/acs")),
        ),
        (
            "authn_request_destination",
            400,
            Box::new(|xml: String| xml.replace("/nymgate/idp/sso", "/elsewhere")),
        ),
        (
            "authn_request_time",
            400,
            Box::new(|xml: String| {
                let old = common::saml::instant(common::saml::now() - 3600);
                let now = xml.split("IssueInstant=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
                xml.replace(&now, &old)
            }),
        ),
    ];
    for (expected, status, edit) in cases {
        assert_eq!(redirect_request(&world, edit), status, "{expected}");
        assert_eq!(reason(&world), expected);
    }
    assert_eq!(get_status(&world, &world.url("/nymgate/idp/sso?SAMLRequest=%25%25%25")), 400);
    assert_eq!(reason(&world), "authn_request_encoding");
    assert_eq!(get_status(&world, &world.url("/nymgate/idp/continue?request=forged&tenant=school-a")), 400);
    assert_eq!(reason(&world), "bad_sp_request");
}

/// One request from a browser-like client (node's fetch), by any method, with a body as given.
fn send(world: &World, method: &str, url: &str, content_type: &str, body: &str) -> (u16, String) {
    let path = world.dir.path().join("send-body.txt");
    std::fs::write(&path, body).unwrap();
    let has_body = !matches!(method, "GET" | "HEAD");
    let out = world.node_eval(&format!(
        r#"import {{ readFileSync }} from 'node:fs';
const body = {has_body} ? readFileSync({path:?}, 'utf8') : undefined;
const r = await fetch({url:?}, {{method: {method:?}, redirect: 'manual', body, headers: {{'content-type': {content_type:?}}}}});
console.log(JSON.stringify({{status: r.status, body: await r.text()}}));"#,
        path = path.to_str().unwrap(),
    ));
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("no answer: {out}"));
    (v["status"].as_u64().unwrap() as u16, v["body"].as_str().unwrap().to_owned())
}

fn deflate_base64(xml: &str) -> String {
    use base64::Engine;
    use std::io::Write;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(xml.as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(encoder.finish().unwrap())
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut form = openidconnect::url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        form.append_pair(name, value);
    }
    form.finish()
}

/// issue 25, "Interception by exact path and by method": a school's signed response sent to
/// the intercepted ACS under any spelling of its path is verified and replaced (node-saml, which
/// trusts only nymgate's key, accepts what arrives); sent by any other method, in a query
/// (plain or deflated), as an artifact, or in the query beside a good form, it is refused and
/// nothing of it reaches the platform, whose every received request is scanned.
#[test]
fn interception_by_any_spelling_and_method_never_passes_a_school_response() {
    interception_by_any_spelling_and_method(SamlIdpKind::Samlify);
}

/// The same with the school's responses signed by pysaml2 (xmlsec1), a second SAML stack.
#[test]
fn interception_by_any_spelling_and_method_never_passes_a_pysaml2_response() {
    interception_by_any_spelling_and_method(SamlIdpKind::Pysaml2);
}

fn interception_by_any_spelling_and_method(school: SamlIdpKind) {
    use base64::Engine;
    let (platform, world) = intercepted_world(school);
    let fresh = || {
        let id = platform.call(&world, "GET", "/start", None)["id"].as_str().unwrap().to_owned();
        school_response_to_platform(&world, &id, "both")
    };
    let form = "application/x-www-form-urlencoded";

    // Every spelling of the path: verified and replaced, and what the platform accepted is
    // nymgate's response.
    let spellings = [
        "/saml/acs/",
        "/SAML/ACS",
        "//saml//acs",
        "/saml/./acs",
        "/x/../saml/acs",
        "/saml/%61cs",
        "/saml/acs;jsessionid=1",
    ];
    for path in spellings {
        let encoded = base64::engine::general_purpose::STANDARD.encode(fresh());
        let (status, body) =
            send(&world, "POST", &world.url(path), form, &form_encode(&[("SAMLResponse", &encoded)]));
        assert_eq!(status, 200, "{path}: {body}");
        let seen: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: {body}"));
        assert_eq!(seen["ok"], true, "{path}: the platform did not get nymgate's response: {seen}");
        assert_eq!(world.last_login()["outcome"], "ok", "{path}");
    }

    // Every other way: refused by nymgate, never forwarded.
    let xml = fresh();
    let plain = base64::engine::general_purpose::STANDARD.encode(&xml);
    let deflated = deflate_base64(&xml);
    let query = |name: &str, value: &str| form_encode(&[(name, value)]);
    let good_form =
        form_encode(&[("SAMLResponse", &base64::engine::general_purpose::STANDARD.encode(fresh()))]);
    // (method, path, content type, body, the login's audited reason; None: not a login, the
    // proxy's own refusal).
    let refused: Vec<(&str, String, &str, String, Option<&str>)> = vec![
        (
            "GET",
            format!("/saml/acs?{}", query("SAMLResponse", &plain)),
            form,
            String::new(),
            Some("saml_message_in_query"),
        ),
        (
            "GET",
            format!("/saml/acs?{}", query("SAMLResponse", &deflated)),
            form,
            String::new(),
            Some("saml_message_in_query"),
        ),
        (
            "GET",
            format!("/SAML/acs/?{}", query("samlresponse", &plain)),
            form,
            String::new(),
            Some("saml_message_in_query"),
        ),
        (
            "GET",
            format!("/saml/acs?{}", query("SAMLart", "AAQAAMh48/1oXIM")),
            form,
            String::new(),
            Some("saml_message_in_query"),
        ),
        (
            "POST",
            "/saml/acs".into(),
            form,
            query("SAMLart", "AAQAAMh48/1oXIM"),
            Some("saml_artifact_not_supported"),
        ),
        ("PUT", "/saml/acs".into(), form, query("SAMLResponse", &plain), Some("saml_binding_not_supported")),
        (
            "PATCH",
            "/saml/acs".into(),
            form,
            query("SAMLResponse", &plain),
            Some("saml_binding_not_supported"),
        ),
        (
            "DELETE",
            "/saml/acs".into(),
            form,
            query("SAMLResponse", &plain),
            Some("saml_binding_not_supported"),
        ),
        (
            "POST",
            format!("/saml/acs?{}", query("SAMLResponse", &plain)),
            form,
            good_form.clone(),
            Some("saml_message_in_query"),
        ),
        (
            "POST",
            "/saml/acs".into(),
            "multipart/form-data; boundary=b",
            format!(
                "--b\r\nContent-Disposition: form-data; name=\"SAMLResponse\"\r\n\r\n{plain}\r\n--b--\r\n"
            ),
            Some("missing_saml_response"),
        ),
        // The defence in depth on every other path: a response in any query, or in a form body
        // of any encoding (form_scan.rs).
        ("GET", format!("/elsewhere?{}", query("SAMLResponse", &plain)), form, String::new(), None),
        ("POST", "/elsewhere".into(), form, query("SAMLResponse", &plain), None),
        ("POST", "/elsewhere".into(), "text/plain", format!("SAMLResponse={plain}"), None),
        // By value, under any name and type: JSON, and a form whose field is named otherwise.
        ("POST", "/api/sso".into(), "application/json", format!("{{\"response\":\"{plain}\"}}"), None),
        ("POST", "/elsewhere".into(), form, query("payload", &plain), None),
        (
            "POST",
            "/elsewhere".into(),
            "application/x-www-form-urlencoded; charset=utf-16",
            query("a", "b"),
            None,
        ),
        (
            "POST",
            "/elsewhere".into(),
            "multipart/form-data; boundary=b",
            format!(
                "--b\r\nContent-Disposition: form-data; name=\"SAMLResponse\"\r\n\r\n{plain}\r\n--b--\r\n"
            ),
            None,
        ),
    ];
    for (method, path, content_type, body, reason) in &refused {
        let logins = world.audit().len();
        let (status, answer) = send(&world, method, &world.url(path), content_type, body);
        assert!((400..500).contains(&status), "{method} {path}: {status} {answer}");
        match reason {
            Some(reason) => assert_eq!(world.last_login()["reason"], *reason, "{method} {path}"),
            None => assert_eq!(world.audit().len(), logins, "{method} {path}: not a login"),
        }
    }
    // What nymgate would relay into its own Response is checked as anything that leaves: a
    // RelayState past 80 bytes, or carrying the pupil's email, is refused.
    let email = common::login::ALICE.iter().find(|(k, _)| *k == "email").unwrap().1;
    for (relay_state, reason) in
        [("r".repeat(81), "saml_relay_state"), (format!("next={email}"), "guard_tripped")]
    {
        let encoded = base64::engine::general_purpose::STANDARD.encode(fresh());
        let body = form_encode(&[("SAMLResponse", &encoded), ("RelayState", &relay_state)]);
        let (status, answer) = send(&world, "POST", &world.url("/saml/acs"), form, &body);
        assert!((400..500).contains(&status), "{relay_state}: {status} {answer}");
        assert_eq!(world.last_login()["reason"], reason, "{relay_state}");
    }
    let requests = platform.call(&world, "GET", "/requests", None);
    let requests = requests.as_array().unwrap();
    assert_eq!(
        requests.len(),
        spellings.len(),
        "only nymgate's replaced responses reached the platform: {requests:?}"
    );
    for request in requests {
        assert_eq!(
            (request["method"].as_str(), request["url"].as_str()),
            (Some("POST"), Some("/saml/acs")),
            "{request}"
        );
    }
    let school = &world.school().entity_id;
    let text = serde_json::to_string(requests).unwrap();
    assert!(!text.contains(school.as_str()), "a school's response reached the platform");
    world.assert_no_personal_values(&[("platform's received requests", &text)]);
}
