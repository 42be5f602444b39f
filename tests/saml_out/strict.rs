//! SAML out read strictly (issue 26), through real peers: the platform is node-saml
//! (tests/peers/saml_platform.mjs), the schools oidc-provider (tests/peers/oidc_idp.mjs, whose
//! `/__test/last_authorization` hook says what nymgate asked of it) and pysaml2
//! (tests/peers/saml_idp_pysaml2.py, whose `/authn-request` reads nymgate's AuthnRequest).
//! Part of the `saml_out` test target (tests/saml_out.rs).

use super::*;

const EMAIL_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

/// What node-saml made of a status Response: no login, and the status nymgate signed.
fn assert_status_answer(result: &Value, second_level: &str) {
    let xml = result["xml"].as_str().unwrap_or_else(|| panic!("no Response reached the platform: {result}"));
    assert!(xml.contains(&format!("urn:oasis:names:tc:SAML:2.0:status:{second_level}")), "{xml}");
    assert!(!xml.contains("Assertion"), "a status answer carries no Assertion: {xml}");
    assert_eq!(xml.matches("<ds:Signature ").count(), 1, "{xml}");
    assert!(result["profile"].is_null(), "{result}");
}

/// ForceAuthn from the platform reaches an OIDC school as `prompt=login` (OIDC Core §3.1.2.1),
/// and the login goes on as any other; without it, no prompt is sent.
#[test]
fn force_authn_reaches_an_oidc_school_as_prompt_login() {
    let world = World::start(Options { saml_out: true, ..Options::default() });
    let plain = world.saml_platform_login("school-a", true, Some((">student<", ">teacher<")));
    assert!(plain["error"].is_null(), "{plain}");
    let asked = world.idp.hook(&world, "last_authorization", serde_json::json!({}));
    assert!(asked["prompt"].is_null(), "{asked}");

    let forced = world.saml_platform_login_with(
        serde_json::json!({"tenant": "school-a", "force_authn": true}),
        true,
        Some((">student<", ">teacher<")),
    );
    let asked = world.idp.hook(&world, "last_authorization", serde_json::json!({}));
    assert_eq!(asked["prompt"], "login", "{asked}");
    // And `max_age=0`, so the ID token must say when the pupil authenticated (`auth_time`).
    assert_eq!(asked["max_age"], "0", "{asked}");
    assert_pseudonymous_login(&world, &forced, "school-a");
    assert_eq!(forced["profile"]["nameID"], plain["profile"]["nameID"], "the same pupil, the same number");
}

/// A school that answers ForceAuthn with a session it already had (on a shared classroom
/// device, possibly the previous pupil's) is refused: the ID token's `auth_time` is older than
/// the login, and the platform gets no Response.
#[test]
fn force_authn_answered_from_an_old_session_by_an_oidc_school_is_refused() {
    let world = World::start(Options { saml_out: true, ..Options::default() });
    world.idp.hook(&world, "tamper", serde_json::json!({"mode": "stale_auth_time"}));
    let forced = world.saml_platform_login_with(
        serde_json::json!({"tenant": "school-a", "force_authn": true}),
        true,
        None,
    );
    assert!(forced["xml"].is_null(), "the platform got a Response: {forced}");
    let audit = world.last_login();
    assert_eq!(
        (audit["outcome"].as_str(), audit["reason"].as_str()),
        (Some("failed"), Some("auth_not_fresh"))
    );
}

/// The same for a SAML school: nymgate's AuthnRequest carries ForceAuthn, and a Response whose
/// AuthnInstant is older than the login is refused; one authenticated now goes through.
#[test]
fn force_authn_answered_from_an_old_session_by_a_saml_school_is_refused() {
    let world =
        World::start(Options { saml: Some(SamlIdpKind::Pysaml2), saml_out: true, ..Options::default() });
    let answer = |authn_instant: u64| {
        let (flow, asked) =
            request_at_the_saml_school(&world, &format!("_req-{authn_instant}"), r#"ForceAuthn="true""#);
        assert_eq!(asked["force_authn"], "true", "{asked}");
        let fields = common::saml::ResponseFields::for_flow(world.school(), Some(&flow));
        let xml = fields.xml().replace(
            &format!(r#"AuthnInstant="{}""#, fields.issue_instant),
            &format!(r#"AuthnInstant="{}""#, common::saml::instant(authn_instant)),
        );
        let signed = world.saml_sign(&xml, "both", "idp", None);
        (world.post_acs(Some(&flow), &signed), world.last_login())
    };
    let (page, audit) = answer(common::saml::now() - 3600);
    assert_eq!(page.status, 400, "{page:?}");
    assert_eq!(
        (audit["reason"].as_str(), audit["tenant"].as_str()),
        (Some("auth_not_fresh"), Some("school-s"))
    );
    let (page, audit) = answer(common::saml::now());
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(audit["outcome"], "ok", "{audit}");
}

/// IsPassive reaches an OIDC school as `prompt=none`; oidc-provider, with no session in this
/// browser, answers `login_required`, and the platform gets a signed Responder/NoPassive that
/// node-saml accepts as such (a profile of null), not nymgate's failure page.
#[test]
fn is_passive_reaches_an_oidc_school_as_prompt_none_and_login_required_is_no_passive() {
    let world = World::start(Options { saml_out: true, ..Options::default() });
    let result = world.saml_platform_login_with(
        serde_json::json!({"tenant": "school-a", "passive": true}),
        true,
        None,
    );
    let asked = world.idp.hook(&world, "last_authorization", serde_json::json!({}));
    assert_eq!(asked["prompt"], "none", "{asked}");
    assert!(result["error"].is_null(), "node-saml refused the NoPassive answer: {result}");
    assert_status_answer(&result, "NoPassive");
    assert_eq!(result["relay_state"], "platform-state-42");
    let audit = world.last_login();
    assert_eq!((audit["outcome"].as_str(), audit["reason"].as_str()), (Some("failed"), Some("no_passive")));
    assert_eq!(audit["tenant"], "school-a", "{audit}");
    // ForceAuthn and IsPassive together can't be asked of an OIDC school (`none` stands
    // alone): NoPassive at once, and the school is not asked at all.
    assert_eq!(world.idp.hook(&world, "last_authorization", serde_json::json!({}))["prompt"], Value::Null);
    let both = world.saml_platform_login_with(
        serde_json::json!({"tenant": "school-a", "passive": true, "force_authn": true}),
        true,
        None,
    );
    assert!(both["error"].is_null(), "{both}");
    assert_status_answer(&both, "NoPassive");
    assert_eq!(world.last_login()["reason"], "no_passive");
    let asked = world.idp.hook(&world, "last_authorization", serde_json::json!({}));
    assert_eq!(asked, serde_json::json!({}), "the school was asked: {asked}");
}

/// ForceAuthn and IsPassive reach a SAML school in nymgate's own AuthnRequest, as pysaml2 reads
/// it; without them, neither attribute is sent.
#[test]
fn force_authn_reaches_a_saml_school_as_force_authn() {
    let world =
        World::start(Options { saml: Some(SamlIdpKind::Pysaml2), saml_out: true, ..Options::default() });
    let sso = world.school().sso_url.clone();
    let sent = |extra: Value| {
        let mut settings = serde_json::json!({"tenant": "school-s", "stop_at": sso});
        for (name, value) in extra.as_object().unwrap() {
            settings[name] = value.clone();
        }
        let result = world.saml_platform_login_with(settings, true, None);
        let url = result["stopped_at"].as_str().unwrap_or_else(|| panic!("{result}")).to_owned();
        world.saml_read_request(&url)
    };
    let plain = sent(serde_json::json!({}));
    assert_eq!(
        (plain["force_authn"].clone(), plain["is_passive"].clone()),
        (Value::Null, Value::Null),
        "{plain}"
    );
    assert_eq!(plain["destination"], sso.as_str());
    let forced = sent(serde_json::json!({"force_authn": true}));
    assert_eq!(forced["force_authn"], "true", "{forced}");
    assert!(forced["is_passive"].is_null(), "{forced}");
    let passive = sent(serde_json::json!({"passive": true}));
    assert_eq!(passive["is_passive"], "true", "{passive}");
    assert!(passive["force_authn"].is_null(), "{passive}");
}

/// IsPassive when the school is not known yet: choosing it would be a page, so the platform
/// gets NoPassive at once (SAML Core §3.2.2.2), signed, with its RelayState.
#[test]
fn a_passive_request_without_a_known_school_is_answered_no_passive() {
    let world = World::start(Options { saml_out: true, ..Options::default() });
    let result =
        world.saml_platform_login_with(serde_json::json!({"tenant": null, "passive": true}), true, None);
    assert!(result["error"].is_null(), "node-saml refused the NoPassive answer: {result}");
    assert_status_answer(&result, "NoPassive");
    assert_eq!(result["relay_state"], "platform-state-42");
    let asked = world.idp.hook(&world, "last_authorization", serde_json::json!({}));
    assert_eq!(asked, serde_json::json!({}), "no school was asked");
    let audit = world.last_login();
    assert_eq!((audit["outcome"].as_str(), audit["reason"].as_str()), (Some("failed"), Some("no_passive")));
}

/// A NameIDPolicy nymgate can't honour (emailAddress; an affiliation's SPNameQualifier) is
/// answered with a signed Requester/InvalidNameIDPolicy (SAML Core §3.4.1.1), which node-saml
/// reports as the IdP's status error; the school is never asked. Persistent, unspecified and no
/// Format at all log in.
#[test]
fn an_unhonourable_name_id_policy_is_answered_with_invalid_name_id_policy() {
    let world = World::start(Options { saml_out: true, ..Options::default() });
    for extra in [
        serde_json::json!({"identifier_format": EMAIL_FORMAT}),
        serde_json::json!({"sp_name_qualifier": "https://affiliation.example"}),
    ] {
        let mut settings = serde_json::json!({"tenant": "school-a"});
        for (name, value) in extra.as_object().unwrap() {
            settings[name] = value.clone();
        }
        let result = world.saml_platform_login_with(settings, true, None);
        let error = result["error"].as_str().unwrap_or_default();
        assert!(error.contains("Requester error: InvalidNameIDPolicy"), "{extra}: {result}");
        assert_status_answer(&result, "InvalidNameIDPolicy");
        assert_eq!(world.last_login()["reason"], "invalid_name_id_policy", "{extra}");
    }
    let asked = world.idp.hook(&world, "last_authorization", serde_json::json!({}));
    assert_eq!(asked, serde_json::json!({}), "no school was asked");
    for format in [Value::Null, "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified".into()] {
        let settings = serde_json::json!({"tenant": "school-a", "identifier_format": format});
        let result = world.saml_platform_login_with(settings, true, Some((">student<", ">teacher<")));
        assert_pseudonymous_login(&world, &result, "school-a");
    }
}

/// node-saml's signed AuthnRequest, sent again after it was answered: refused on the second
/// presentation (its ID is claimed in the shared store), with a 4xx.
#[test]
fn a_replayed_authn_request_is_refused() {
    let world = World::start(Options { saml_out: true, ..Options::default() });
    let result = world.saml_platform_login_with(
        serde_json::json!({"tenant": "school-a", "replay_request": true}),
        true,
        Some((">student<", ">teacher<")),
    );
    assert_eq!(result["replay_status"], 400, "{result}");
    let audit = world.last_login();
    assert_eq!(
        (audit["outcome"].as_str(), audit["reason"].as_str()),
        (Some("failed"), Some("authn_request_replayed")),
        "{audit}"
    );
    // The first presentation logged in as usual.
    assert_eq!(result["profile"]["tenant"], "school-a", "{result}");
}

/// The Redirect binding's query for the signing platform's AuthnRequest `xml`, signed with its
/// key by node's crypto (RSA-SHA256 over `SAMLRequest=…&SigAlg=…`, Bindings §3.4.4.1).
fn signed_redirect_query(world: &World, xml: &str) -> String {
    let request = form_encode(&[("SAMLRequest", &deflate_base64(xml))]);
    let sig_alg = form_encode(&[("SigAlg", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")]);
    let signed = format!("{request}&{sig_alg}");
    let key = world.dir.path().join("saml-platform-key.pem");
    let signature = world.node_eval(&format!(
        "import {{ sign }} from 'node:crypto'; import {{ readFileSync }} from 'node:fs';
console.log(sign('sha256', Buffer.from({signed:?}), readFileSync({key:?}, 'utf8')).toString('base64'));",
        key = key.to_str().unwrap()
    ));
    format!("{signed}&{}", form_encode(&[("Signature", signature.trim())]))
}

/// Signed requests missing Destination or of another Version, and a RelayState past 80 bytes,
/// are refused with their own reason and a 4xx; the same signed request with Destination and
/// Version 2.0 passes, so the signature is not what fails.
#[test]
fn signed_requests_without_destination_or_of_another_version_are_refused() {
    let world = World::start(Options { saml_out: true, ..Options::default() });
    let xml = |id: &str, attributes: &str| {
        format!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" IssueInstant="{now}"{attributes} AssertionConsumerServiceURL="{acs}"><saml:Issuer>{sp}</saml:Issuer></samlp:AuthnRequest>"#,
            now = common::saml::instant(common::saml::now()),
            acs = common::login::SAML_PLATFORM_ACS,
            sp = common::login::SAML_PLATFORM,
        )
    };
    let sso = world.url("/nymgate/idp/sso");
    let destination = format!(r#" Destination="{sso}""#);
    let status = |query: &str| get_status(&world, &format!("{sso}?{query}&tenant=school-a"));
    let good = signed_redirect_query(&world, &xml("_good", &format!(r#" Version="2.0"{destination}"#)));
    assert_eq!(status(&good), 303);
    let cases = [
        ("authn_request_no_destination", xml("_nodest", r#" Version="2.0""#)),
        ("authn_request_version", xml("_v11", &format!(r#" Version="1.1"{destination}"#))),
        ("authn_request_version", xml("_v21", &format!(r#" Version="2.1"{destination}"#))),
        ("authn_request_version", xml("_vsp", &format!(r#" Version="2.0 "{destination}"#))),
    ];
    for (reason, request) in cases {
        assert_eq!(status(&signed_redirect_query(&world, &request)), 400, "{reason}");
        assert_eq!(world.last_login()["reason"], reason);
    }
    // RelayState is signed with the request; past 80 bytes it is refused before anything else.
    let long = form_encode(&[("RelayState", &"r".repeat(81))]);
    assert_eq!(status(&format!("{good}&{long}")), 400);
    assert_eq!(world.last_login()["reason"], "saml_relay_state");
}

/// nymgate's own Response (IdP-initiated, to the intercepted platform), posted to the
/// intercepted ACS twice: forwarded the first time, refused the second, and the platform
/// received it once.
#[test]
fn nymgates_own_response_posted_twice_to_an_intercepted_acs_is_refused_the_second_time() {
    let (platform, world) = idp_initiated_world();
    let sp = url_encode(common::login::SAML_INTERCEPTED);
    let acs = world.url("/saml/acs");
    let page = world.browse(&world.url(&format!("/nymgate/idp/init?sp={sp}&tenant=school-a")), Some(&acs));
    let response = page["form"]["SAMLResponse"].as_str().unwrap_or_else(|| panic!("{page}")).to_owned();
    let form = form_encode(&[("SAMLResponse", &response)]);
    let content_type = "application/x-www-form-urlencoded";
    let (status, body) = send(&world, "POST", &acs, content_type, &form);
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body}"));
    assert_eq!(seen["ok"], true, "{seen}");
    let (status, body) = send(&world, "POST", &acs, content_type, &form);
    assert_eq!(status, 400, "{body}");
    assert_eq!(world.last_login()["reason"], "saml_replayed");
    let received = platform.call(&world, "GET", "/received", None);
    assert_eq!(received.as_array().unwrap().len(), 1, "the platform got nymgate's Response once: {received}");
}

/// A passive request of the (unsigned) intercepted platform, sent on to the pysaml2 school with
/// IsPassive; the school answers with a signed Responder/NoPassive, and the platform gets
/// nymgate's own signed NoPassive for its request (Debian `samlsign` verifies it), not
/// nymgate's failure page.
#[test]
fn a_saml_schools_no_passive_reaches_the_platform_as_no_passive() {
    use base64::Engine;
    let world =
        World::start(Options { saml: Some(SamlIdpKind::Pysaml2), saml_out: true, ..Options::default() });
    let (flow, asked) = request_at_the_saml_school(&world, "_req-passive", r#"IsPassive="true""#);
    assert_eq!(asked["is_passive"], "true", "{asked}");
    let request_id = flow.request_id.clone();
    let answer = format!(
        r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_school-status" Version="2.0" IssueInstant="{now}" Destination="{acs}" InResponseTo="{request_id}"><saml:Issuer>{issuer}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:NoPassive"/></samlp:StatusCode></samlp:Status></samlp:Response>"#,
        now = common::saml::instant(common::saml::now()),
        acs = world.school().acs_url,
        issuer = world.school().entity_id,
    );
    let signed = world.saml_sign(&answer, "response", "idp", None);
    let page = world.post_acs(Some(&flow), &signed);
    assert_eq!(page.status, 200, "{page:?}");
    let field = page.body.split("name=\"SAMLResponse\" value=\"").nth(1).unwrap().split('"').next().unwrap();
    let xml = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(field).unwrap()).unwrap();
    assert!(xml.contains("urn:oasis:names:tc:SAML:2.0:status:NoPassive"), "{xml}");
    assert!(xml.contains(r#"InResponseTo="_req-passive""#), "{xml}");
    assert!(xml.contains(&format!(r#"Destination="{}""#, world.url("/saml/acs"))), "{xml}");
    assert!(!xml.contains(&world.school().entity_id), "{xml}");
    let (verifies, log) = samlsign_verifies(&world, &xml, None);
    assert!(verifies, "samlsign refused the NoPassive Response's signature: {log}");
    let audit = world.last_login();
    assert_eq!((audit["reason"].as_str(), audit["tenant"].as_str()), (Some("no_passive"), Some("school-s")));
}

/// A request that names its person (`<saml:Subject>`) gets the signed status
/// Requester/RequestUnsupported: nymgate would log in whoever signs in, not that person.
#[test]
fn authn_request_naming_a_subject_is_answered_request_unsupported() {
    use base64::Engine;
    let world = World::start(Options { saml_out: true, ..Options::default() });
    let request = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_req-subject" Version="2.0" IssueInstant="{now}" AssertionConsumerServiceURL="{acs}"><saml:Issuer>{sp}</saml:Issuer><saml:Subject><saml:NameID>v1-AAAA-BBBB-CCCC-DDDD</saml:NameID></saml:Subject></samlp:AuthnRequest>"#,
        now = common::saml::instant(common::saml::now()),
        acs = world.url("/saml/acs"),
        sp = common::login::SAML_INTERCEPTED,
    );
    let query = form_encode(&[("SAMLRequest", &deflate_base64(&request)), ("tenant", "school-a")]);
    let page = world.browse(&world.url(&format!("/nymgate/idp/sso?{query}")), Some(&world.url("/saml/acs")));
    let field = page["form"]["SAMLResponse"].as_str().unwrap_or_else(|| panic!("no status form: {page}"));
    let xml = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(field).unwrap()).unwrap();
    assert!(xml.contains("urn:oasis:names:tc:SAML:2.0:status:RequestUnsupported"), "{xml}");
    assert!(!xml.contains("Assertion"), "{xml}");
    let audit = world.last_login();
    assert_eq!(
        (audit["outcome"].as_str(), audit["reason"].as_str()),
        (Some("failed"), Some("request_unsupported"))
    );
    // The school was never asked.
    assert_eq!(world.idp.hook(&world, "last_authorization", serde_json::json!({})), serde_json::json!({}));
}

/// The intercepted (unsigned) platform's AuthnRequest with `attributes` (`ForceAuthn="true"`,
/// `IsPassive="true"`), sent through nymgate to the pysaml2 school: the browser's flow at the
/// school (its cookies, nymgate's RelayState and AuthnRequest ID) and nymgate's request to the
/// school as pysaml2 read it.
fn request_at_the_saml_school(world: &World, id: &str, attributes: &str) -> (common::saml::SamlFlow, Value) {
    let request = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{sso}" {attributes} AssertionConsumerServiceURL="{acs}"><saml:Issuer>{sp}</saml:Issuer></samlp:AuthnRequest>"#,
        now = common::saml::instant(common::saml::now()),
        sso = world.url("/nymgate/idp/sso"),
        acs = world.url("/saml/acs"),
        sp = common::login::SAML_INTERCEPTED,
    );
    let query = form_encode(&[("SAMLRequest", &deflate_base64(&request)), ("tenant", "school-s")]);
    let school_sso = world.school().sso_url.clone();
    let sent = world.browse(&world.url(&format!("/nymgate/idp/sso?{query}")), Some(&school_sso));
    let url = sent["url"].as_str().unwrap().to_owned();
    let asked = world.saml_read_request(&url);
    let relay_state = openidconnect::url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "RelayState")
        .map(|(_, value)| value.into_owned())
        .unwrap();
    let request_id = asked["id"].as_str().unwrap().to_owned();
    (common::saml::SamlFlow { jar: sent["jar"].clone(), relay_state, request_id }, asked)
}
