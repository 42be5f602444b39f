//! SAML logins end to end (issue 5): real IdPs (SimpleSAMLphp with its login form; samlify
//! signing with xml-crypto) → nymgate's ACS → the platform; and every SAML attack of
//! shared/SECURITY.md as a named test, each built from a response the real IdP signed and then
//! mutated the way the attack does. Every refusal must be a 4xx with the reason in the audit
//! log, no session, and no personal value anywhere.

mod common;

use common::login::{Options, SamlIdpKind, World, ALICE};
use common::saml::{instant, now, AcsAnswer, ResponseFields, SamlFlow, SAMLIFY_ENTITY};
use serde_json::{json, Value};

fn world_with(options: Options) -> World {
    World::start(Options { saml: Some(SamlIdpKind::Samlify), provider: false, ..options })
}

fn samlify_world() -> World {
    world_with(Options::default())
}

fn alice(kind: &str) -> &'static str {
    ALICE.iter().find(|(k, _)| *k == kind).unwrap().1
}

/// The account number nymgate must give `subject` at the samlify school, computed apart from
/// the login path.
fn account_number(world: &World, subject: &str) -> String {
    let ring = nymgate::pseudonym::keyring::Keyring::load(&world.dir.path().join("keyring.toml")).unwrap();
    let key = ring.scope("school-s").unwrap().current();
    common::account_number::primary(key, SAMLIFY_ENTITY, subject)
}

/// A login flow and alice's correct answer to it, signed as asked.
fn signed(world: &World, sign: &str, edit: impl FnOnce(&mut ResponseFields)) -> (SamlFlow, String) {
    let flow = world.saml_begin();
    let mut fields = ResponseFields::for_flow(world.school(), Some(&flow));
    edit(&mut fields);
    let xml = world.saml_sign(&fields.xml(), sign, "idp", None);
    (flow, xml)
}

fn accepted(world: &World, answer: &AcsAnswer) -> Value {
    assert_eq!(answer.status, 303, "{answer:?}\n{}", refusals(world));
    assert!(answer.session_cookie(), "{answer:?}");
    let audit = world.last_login();
    assert_eq!(
        (audit["outcome"].as_str(), audit["protocol"].as_str()),
        (Some("ok"), Some("saml")),
        "{audit}"
    );
    world.assert_no_personal_values(&[("redirect", &answer.location)]);
    audit
}

fn refused(world: &World, answer: &AcsAnswer, status: u16, reason: &str) {
    assert_eq!(answer.status, status, "expected {reason}: {answer:?}\n{}", refusals(world));
    assert!(!answer.session_cookie(), "a refused login must not open a session");
    assert!(answer.body.contains("reference"), "the generic page with a reference: {}", answer.body);
    let audit = world.last_login();
    assert_eq!(audit["outcome"], "failed", "{audit}");
    assert_eq!(audit["protocol"], "saml", "{audit}");
    assert_eq!(audit["reason"], reason, "{audit}\n{}", refusals(world));
    world.assert_no_personal_values(&[("error page", &answer.body)]);
}

fn refusals(world: &World) -> String {
    world
        .log()
        .lines()
        .filter(|l| l.contains("login refused") || l.contains("login failed"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---- the XML surgery attacks need ------------------------------------------------------------

/// The byte range of the first `<{tag} …>…</{tag}>` at or after `from` (no nesting of the same
/// tag in a genuine response).
fn element(xml: &str, tag: &str, from: usize) -> std::ops::Range<usize> {
    let start = from + xml[from..].find(&format!("<{tag}")).unwrap_or_else(|| panic!("no <{tag} in {xml}"));
    let close = format!("</{tag}>");
    let end = start + xml[start..].find(&close).unwrap() + close.len();
    start..end
}

fn assertion(xml: &str) -> std::ops::Range<usize> {
    element(xml, "saml:Assertion", 0)
}

/// The Response's own Signature (before the Assertion).
fn response_signature(xml: &str) -> std::ops::Range<usize> {
    let range = element(xml, "ds:Signature", 0);
    assert!(range.start < assertion(xml).start, "the response is not signed");
    range
}

fn assertion_signature(xml: &str) -> std::ops::Range<usize> {
    element(xml, "ds:Signature", assertion(xml).start)
}

/// Mallory's version of an assertion: her NameID, a fresh ID, no signature.
fn evil(assertion_xml: &str, id: &str) -> String {
    let mut text = assertion_xml.to_owned();
    if let Some(start) = text.find("<ds:Signature") {
        let end = text.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
        text.replace_range(start..end, "");
    }
    let old_id = between(&text, " ID=\"", "\"").to_owned();
    text.replace(&old_id, id).replace(alice("sub"), "mallory")
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).unwrap() + open.len();
    &text[start..start + text[start..].find(close).unwrap()]
}

fn insert(xml: &str, at: usize, what: &str) -> String {
    format!("{}{what}{}", &xml[..at], &xml[at..])
}

fn attack(sign: &str, mutate: impl FnOnce(&str) -> String, reason: &str) {
    let world = samlify_world();
    let (flow, xml) = signed(&world, sign, |_| {});
    let mutated = mutate(&xml);
    assert_ne!(mutated, xml, "the mutation changed nothing");
    let answer = world.post_acs(Some(&flow), &mutated);
    refused(&world, &answer, 400, reason);
}

// ---- logins that must work -------------------------------------------------------------------

#[test]
fn samlify_signed_login_reaches_the_platform_pseudonymously() {
    let world = samlify_world();
    for sign in ["both", "assertion", "response"] {
        let (flow, xml) = signed(&world, sign, |_| {});
        let answer = world.post_acs(Some(&flow), &xml);
        let audit = accepted(&world, &answer);
        assert_eq!(audit["account_number"], account_number(&world, alice("sub")), "{sign}: {audit}");
        assert_eq!(audit["tenant"], "school-s");
        // The browser's next request reaches the platform with nymgate's signed header only.
        let session = answer.set_cookie.iter().find(|c| c.starts_with("__Host-nymgate-session=")).unwrap();
        let cookie = session.split(';').next().unwrap();
        let body = world.node_eval(&format!(
            "const r = await fetch({:?}, {{headers: {{cookie: {cookie:?}}}}}); console.log(await r.text());",
            world.url("/echo")
        ));
        let seen: nymgate::echo::Echo = serde_json::from_str(body.trim()).unwrap();
        let token = seen.headers.iter().find(|(k, _)| k == "x-nymgate-assertion").map(|(_, v)| v.clone());
        let token = token.expect("the assertion header reached the platform");
        let payload = token.split('.').nth(1).unwrap();
        let payload =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap();
        let claims: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(claims["sub"], account_number(&world, alice("sub")), "{claims}");
        assert_eq!((claims["tenant"].as_str(), claims["role"].as_str()), (Some("school-s"), Some("student")));
        world.assert_no_personal_values(&[("platform's received bytes", &body)]);
    }
}

#[test]
fn simplesamlphp_login_reaches_the_platform_pseudonymously() {
    let world = World::start(Options { saml: Some(SamlIdpKind::SimpleSamlPhp), ..Options::default() });
    let extra = json!({"extra_auth_params": {"tenant": "school-s"}});
    let first = world.platform_login(extra.clone());
    let claims = &first["id_token_claims"];
    assert_eq!(claims["tenant"], "school-s", "{first}");
    assert_eq!(claims["role"], "student", "{first}");
    let allowed =
        ["sub", "tenant", "role", "nym_ver", "iss", "aud", "exp", "iat", "jti", "nonce", "auth_time"];
    for name in claims.as_object().unwrap().keys() {
        assert!(allowed.contains(&name.as_str()), "unexpected claim {name} in {claims}");
    }
    let audit = world.last_login();
    assert_eq!(
        (audit["protocol"].as_str(), audit["outcome"].as_str()),
        (Some("saml"), Some("ok")),
        "{audit}"
    );
    assert_eq!(claims["sub"], audit["account_number"]);
    // The same person gets the same account number at the next login.
    let second = world.platform_login(extra);
    assert_eq!(second["id_token_claims"]["sub"], claims["sub"]);
    world.assert_no_personal_values(&[
        ("platform's received bytes", &first["received"].to_string()),
        ("platform's received bytes", &second["received"].to_string()),
    ]);
}

#[test]
fn simplesamlphp_login_with_the_assertion_header() {
    let world = World::start(Options {
        saml: Some(SamlIdpKind::SimpleSamlPhp),
        provider: false,
        ..Options::default()
    });
    let page = world.browse(&world.url("/nymgate/login/school-s?return_to=/echo"), None);
    assert_eq!(page["status"], 200, "{page}");
    let body = page["body"].as_str().unwrap();
    let seen: nymgate::echo::Echo =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("the echo platform's JSON: {e}: {body}"));
    assert!(seen.headers.iter().any(|(k, _)| k == "x-nymgate-assertion"), "{body}");
    assert_eq!(world.last_login()["protocol"], "saml");
    world.assert_no_personal_values(&[("platform's received bytes", body)]);
}

type Mutation = fn(&str) -> String;

/// A response SimpleSAMLphp signed for this browser, caught before the browser posts it.
fn simplesamlphp_response(world: &World) -> (SamlFlow, String) {
    let acs = world.school().acs_url.clone();
    let page = world.browse(&world.url("/nymgate/login/school-s"), Some(&acs));
    let form = &page["form"];
    let xml = String::from_utf8(
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            form["SAMLResponse"].as_str().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let flow = SamlFlow {
        jar: page["jar"].clone(),
        relay_state: form["RelayState"].as_str().unwrap().to_owned(),
        request_id: String::new(),
    };
    (flow, xml)
}

#[test]
fn simplesamlphp_signed_response_wrapped_or_tampered_is_refused() {
    let world = World::start(Options {
        saml: Some(SamlIdpKind::SimpleSamlPhp),
        provider: false,
        ..Options::default()
    });
    let mutations: [(&str, Mutation); 3] = [
        ("xsw3", |xml| insert(xml, assertion(xml).start, &evil(&xml[assertion(xml)], "_evil"))),
        ("xsw7", |xml| {
            let original = xml[assertion(xml)].to_owned();
            let mut mutated = xml.to_owned();
            mutated.replace_range(assertion(xml), &evil(&original, "_evil"));
            let at = mutated.find("<samlp:Status>").unwrap();
            insert(&mutated, at, &format!("<samlp:Extensions>{original}</samlp:Extensions>"))
        }),
        ("tampered", |xml| {
            xml.replacen("urn:oid:1.3.6.1.4.1.5923.1.1.1.1\"", "urn:oid:1.3.6.1.4.1.5923.1.1.1.7\"", 1)
        }),
    ];
    for (name, mutate) in mutations {
        let (flow, xml) = simplesamlphp_response(&world);
        let mutated = mutate(&xml);
        assert_ne!(mutated, xml, "{name} changed nothing");
        let answer = world.post_acs(Some(&flow), &mutated);
        let reason = if name == "tampered" { "saml_signature_invalid" } else { "saml_structure" };
        refused(&world, &answer, 400, reason);
    }
    // The genuine response, caught the same way, is accepted.
    let (flow, xml) = simplesamlphp_response(&world);
    accepted(&world, &world.post_acs(Some(&flow), &xml));
}

#[test]
fn comment_injection_reads_the_whole_value() {
    // The classic: Mallory owns "…7f3a9c.mallory"; a reader of only the first text node would
    // take it for Alice's "…7f3a9c". nymgate reads all the text: Mallory stays Mallory.
    let world = samlify_world();
    let injected = format!("{}<!---->.mallory", alice("sub"));
    let (flow, xml) = signed(&world, "both", |f| f.name_id = injected.clone());
    assert!(xml.contains(&injected), "the comment is inside the signed NameID");
    let audit = accepted(&world, &world.post_acs(Some(&flow), &xml));
    assert_eq!(audit["account_number"], account_number(&world, &format!("{}.mallory", alice("sub"))));
    assert_ne!(audit["account_number"], account_number(&world, alice("sub")));
}

#[test]
fn comment_injection_text_appended_after_signing_breaks_the_digest() {
    attack(
        "both",
        |xml| xml.replacen("</saml:NameID>", "<![CDATA[.x]]></saml:NameID>", 1),
        "saml_signature_invalid",
    );
    attack(
        "assertion",
        |xml| xml.replacen("</saml:NameID>", "<!---->x</saml:NameID>", 1),
        "saml_signature_invalid",
    );
}

// ---- XML signature wrapping (Somorovsky et al. 2012; SAMLRaider's XSW1–8) --------------------

#[test]
fn xsw1_signed_response_copied_into_its_own_signature() {
    attack(
        "response",
        |xml| {
            let signature = response_signature(xml);
            let original = xml.to_owned();
            let mut copy = original.clone();
            copy.replace_range(signature.clone(), "");
            let root_id = between(&original, " ID=\"", "\"").to_owned();
            let mut evil_root =
                original.replacen(&root_id, "_evil-response", 1).replace(alice("sub"), "mallory");
            let end = evil_root.find("</ds:Signature>").unwrap();
            evil_root.insert_str(end, &copy);
            evil_root
        },
        "saml_structure",
    );
}

#[test]
fn xsw2_signed_response_detached_before_the_signature() {
    attack(
        "response",
        |xml| {
            let signature = response_signature(xml);
            let mut copy = xml.to_owned();
            copy.replace_range(signature.clone(), "");
            let root_id = between(xml, " ID=\"", "\"").to_owned();
            let evil_root = xml.replacen(&root_id, "_evil-response", 1).replace(alice("sub"), "mallory");
            let at = evil_root.find("<ds:Signature").unwrap();
            insert(&evil_root, at, &copy)
        },
        "saml_structure",
    );
}

#[test]
fn xsw3_evil_assertion_before_the_signed_one() {
    attack(
        "assertion",
        |xml| insert(xml, assertion(xml).start, &evil(&xml[assertion(xml)], "_evil")),
        "saml_structure",
    );
}

#[test]
fn xsw4_signed_assertion_inside_the_evil_one() {
    attack(
        "assertion",
        |xml| {
            let original = &xml[assertion(xml)];
            let wrapper = evil(original, "_evil");
            let inner_end = wrapper.rfind("</saml:Assertion>").unwrap();
            let wrapped = insert(&wrapper, inner_end, original);
            format!("{}{wrapped}{}", &xml[..assertion(xml).start], &xml[assertion(xml).end..])
        },
        "saml_structure",
    );
}

#[test]
fn xsw5_evil_assertion_keeps_the_signature_original_appended() {
    attack(
        "assertion",
        |xml| {
            let original = xml[assertion(xml)].to_owned();
            let id = between(&original, " ID=\"", "\"").to_owned();
            let unsigned_copy = evil(&original, &id).replace("mallory", alice("sub"));
            let tampered = xml.replace(alice("sub"), "mallory");
            let end = tampered.rfind("</samlp:Response>").unwrap();
            insert(&tampered, end, &unsigned_copy)
        },
        "saml_structure",
    );
}

#[test]
fn xsw6_original_assertion_inside_the_evil_ones_signature() {
    attack(
        "assertion",
        |xml| {
            let original = xml[assertion(xml)].to_owned();
            let mut tampered = xml.replace(alice("sub"), "mallory");
            let evil_start = assertion(&tampered).start;
            let open_end = evil_start + tampered[evil_start..].find('>').unwrap();
            let open = tampered[evil_start..open_end].replace(" ID=\"", " ID=\"_evil");
            tampered.replace_range(evil_start..open_end, &open);
            let at = assertion_signature(&tampered).end - "</ds:Signature>".len();
            insert(&tampered, at, &original)
        },
        "saml_structure",
    );
}

#[test]
fn xsw7_original_assertion_in_extensions() {
    attack(
        "assertion",
        |xml| {
            let original = xml[assertion(xml)].to_owned();
            let mut mutated = xml.to_owned();
            mutated.replace_range(assertion(xml), &evil(&original, "_evil"));
            let at = mutated.find("<samlp:Status>").unwrap();
            insert(&mutated, at, &format!("<samlp:Extensions>{original}</samlp:Extensions>"))
        },
        "saml_structure",
    );
}

#[test]
fn xsw8_original_assertion_in_a_ds_object_of_the_evil_ones_signature() {
    attack(
        "assertion",
        |xml| {
            let original = xml[assertion(xml)].to_owned();
            let unsigned_original =
                evil(&original, between(&original, " ID=\"", "\"")).replace("mallory", alice("sub"));
            let tampered = xml.replace(alice("sub"), "mallory");
            let signature = assertion_signature(&tampered);
            let end = signature.end - "</ds:Signature>".len();
            insert(&tampered, end, &format!("<ds:Object>{unsigned_original}</ds:Object>"))
        },
        "saml_structure",
    );
}

// ---- a second assertion wherever one could hide ----------------------------------------------

#[test]
fn extra_assertion_after_the_signed_one() {
    attack(
        "assertion",
        |xml| insert(xml, assertion(xml).end, &evil(&xml[assertion(xml)], "_evil")),
        "saml_structure",
    );
}

#[test]
fn extra_assertion_inside_advice() {
    attack(
        "response",
        |xml| {
            let at = xml.find("<saml:AuthnStatement").unwrap();
            insert(xml, at, &format!("<saml:Advice>{}</saml:Advice>", evil(&xml[assertion(xml)], "_evil")))
        },
        "saml_structure",
    );
}

#[test]
fn extra_assertion_inside_subject_confirmation_data() {
    attack(
        "response",
        |xml| {
            let evil_one = evil(&xml[assertion(xml)], "_evil");
            let start = xml.find("<saml:SubjectConfirmationData").unwrap();
            let open = &xml[start..start + xml[start..].find("/>").unwrap()];
            let replaced = format!("{open}>{evil_one}</saml:SubjectConfirmationData>");
            xml.replacen(&format!("{open}/>"), &replaced, 1)
        },
        "saml_structure",
    );
}

#[test]
fn duplicate_ids_are_refused() {
    attack(
        "assertion",
        |xml| {
            let id = between(&xml[assertion(xml)], " ID=\"", "\"").to_owned();
            let at = xml.find("<samlp:Status>").unwrap();
            insert(xml, at, &format!(r#"<saml:Issuer ID="{id}">x</saml:Issuer>"#))
        },
        "saml_structure",
    );
}

#[test]
fn several_signed_info_elements_are_refused() {
    attack(
        "assertion",
        |xml| {
            let signature = assertion_signature(xml);
            let info = element(xml, "ds:SignedInfo", signature.start);
            insert(xml, info.end, &xml[info.clone()])
        },
        "saml_structure",
    );
}

#[test]
fn several_references_are_refused() {
    attack(
        "assertion",
        |xml| {
            let signature = assertion_signature(xml);
            let reference = element(xml, "ds:Reference", signature.start);
            insert(xml, reference.end, &xml[reference.clone()])
        },
        "saml_structure",
    );
}

#[test]
fn reference_to_another_element_is_refused() {
    attack(
        "assertion",
        |xml| {
            let signature = assertion_signature(xml);
            let reference = element(xml, "ds:Reference", signature.start);
            let uri = between(&xml[reference.clone()], "URI=\"", "\"").to_owned();
            xml.replacen(&format!("URI=\"{uri}\""), "URI=\"\"", 1)
        },
        "saml_structure",
    );
}

// ---- XML bombs and external references -------------------------------------------------------

#[test]
fn xxe_external_entity_is_refused_without_any_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    attack(
        "both",
        |xml| {
            let doctype =
                format!(r#"<!DOCTYPE samlp:Response [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/x">]>"#);
            insert(&xml.replacen(alice("sub"), "&x;", 1), 0, &doctype)
        },
        "saml_doctype",
    );
    assert!(listener.accept().is_err(), "nymgate must not fetch an external entity");
}

#[test]
fn billion_laughs_is_refused_before_expansion() {
    attack(
        "both",
        |xml| {
            let mut entities = String::from(r#"<!ENTITY l0 "ha">"#);
            for i in 1..10 {
                let previous = format!("&l{};", i - 1).repeat(10);
                entities.push_str(&format!(r#"<!ENTITY l{i} "{previous}">"#));
            }
            insert(&xml.replacen(alice("sub"), "&l9;", 1), 0, &format!("<!DOCTYPE r [{entities}]>"))
        },
        "saml_doctype",
    );
}

#[test]
fn xslt_transform_is_refused() {
    attack(
        "assertion",
        |xml| {
            xml.replacen(
                r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>"#,
                r#"<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"><xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0"/></ds:Transform>"#,
                1,
            )
        },
        "saml_algorithm",
    );
}

#[test]
fn xpath_transform_is_refused() {
    attack(
        "assertion",
        |xml| {
            xml.replacen(
                r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>"#,
                r#"<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"><ds:XPath>1</ds:XPath></ds:Transform>"#,
                1,
            )
        },
        "saml_algorithm",
    );
}

#[test]
fn encrypted_assertion_is_refused_with_one_generic_reason() {
    // nymgate's metadata offers no encryption key; an EncryptedAssertion (or EncryptedID) is
    // refused before any decryption is attempted.
    attack(
        "response",
        |xml| {
            let mut out = xml.to_owned();
            out.replace_range(
                assertion(xml),
                r#"<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#"/></saml:EncryptedAssertion>"#,
            );
            out
        },
        "saml_encrypted_assertion",
    );
    attack(
        "response",
        |xml| {
            let name_id = element(xml, "saml:NameID", 0);
            let mut out = xml.to_owned();
            out.replace_range(name_id, "<saml:EncryptedID/>");
            out
        },
        "saml_encrypted_assertion",
    );
}

// ---- XML whose parsing would cost more than its size (issue 27) -------------------------------

/// The response with `what` in the Response's start tag, after its name.
fn in_response_tag(xml: &str, what: &str) -> String {
    let at = xml.find("<samlp:Response").unwrap() + "<samlp:Response".len();
    insert(xml, at, what)
}

#[test]
fn saml_response_with_thousands_of_attributes_on_one_element_is_refused() {
    // The parser compares each attribute with every earlier one: refused before it runs.
    let many: String = (0..8_000).map(|i| format!(" b{i}=\"x\"")).collect();
    attack("both", |xml| in_response_tag(xml, &many), "saml_xml_limits");
}

#[test]
fn saml_response_with_thousands_of_namespace_declarations_is_refused() {
    let many: String = (0..3_000).map(|i| format!(" xmlns:n{i}=\"urn:n:{i}\"")).collect();
    attack("both", |xml| in_response_tag(xml, &many), "saml_xml_limits");
}

#[test]
fn saml_response_nesting_without_end_is_refused() {
    attack(
        "both",
        |xml| {
            let at = xml.find("<saml:Issuer").unwrap();
            insert(xml, at, &"<x>".repeat(20_000))
        },
        "saml_xml_limits",
    );
}

#[test]
fn oversized_body_gets_413_before_parsing() {
    let world = samlify_world();
    let flow = world.saml_begin();
    let huge = "A".repeat(300 * 1024);
    let answer = world.post_acs_form(Some(&flow), &[("SAMLResponse", &huge)]);
    refused(&world, &answer, 413, "saml_too_large");
}

#[test]
fn malformed_input_gets_a_clear_400() {
    let world = samlify_world();
    for (body, reason) in [
        ("%%% not base64", "saml_bad_encoding"),
        ("PHNhbWxwOlJlc3BvbnNl", "saml_malformed_xml"), // "<samlp:Response" cut short
        ("PHIvPg==", "saml_structure"),                 // "<r/>"
    ] {
        let flow = world.saml_begin();
        let answer = world.post_acs_form(Some(&flow), &[("SAMLResponse", body)]);
        refused(&world, &answer, 400, reason);
    }
    let flow = world.saml_begin();
    refused(&world, &world.post_acs_form(Some(&flow), &[]), 400, "missing_saml_response");
}

// ---- signature exclusion and certificate faking ----------------------------------------------

#[test]
fn signature_exclusion_no_signature_at_all() {
    let world = samlify_world();
    let flow = world.saml_begin();
    let xml = ResponseFields::for_flow(world.school(), Some(&flow)).xml();
    refused(&world, &world.post_acs(Some(&flow), &xml), 400, "saml_signature_missing");
}

#[test]
fn signature_exclusion_signature_stripped() {
    attack(
        "assertion",
        |xml| {
            let mut out = xml.to_owned();
            out.replace_range(assertion_signature(xml), "");
            out
        },
        "saml_signature_missing",
    );
}

#[test]
fn signature_exclusion_response_only_where_the_assertion_must_be_signed() {
    let world = world_with(Options { saml_required: "assertion", ..Options::default() });
    let (flow, xml) = signed(&world, "response", |_| {});
    refused(&world, &world.post_acs(Some(&flow), &xml), 400, "saml_signature_missing");
    let (flow, xml) = signed(&world, "assertion", |_| {});
    accepted(&world, &world.post_acs(Some(&flow), &xml));
}

#[test]
fn signature_exclusion_assertion_only_where_the_response_must_be_signed() {
    let world = world_with(Options { saml_required: "response", ..Options::default() });
    let (flow, xml) = signed(&world, "assertion", |_| {});
    refused(&world, &world.post_acs(Some(&flow), &xml), 400, "saml_signature_missing");
    let (flow, xml) = signed(&world, "response", |_| {});
    accepted(&world, &world.post_acs(Some(&flow), &xml));
}

#[test]
fn signature_exclusion_both_required() {
    let world = world_with(Options { saml_required: "both", ..Options::default() });
    for sign in ["assertion", "response"] {
        let (flow, xml) = signed(&world, sign, |_| {});
        refused(&world, &world.post_acs(Some(&flow), &xml), 400, "saml_signature_missing");
    }
    let (flow, xml) = signed(&world, "both", |_| {});
    accepted(&world, &world.post_acs(Some(&flow), &xml));
}

#[test]
fn certificate_faking_attacker_key_with_its_certificate_in_key_info() {
    // The attacker's certificate has the same subject DN as the IdP's, another key, and rides
    // in KeyInfo: only the pinned key counts.
    let world = samlify_world();
    let flow = world.saml_begin();
    let xml = ResponseFields::for_flow(world.school(), Some(&flow)).xml();
    let forged = world.saml_sign(&xml, "both", "attacker", None);
    let attacker_cert = std::fs::read_to_string(world.dir.path().join("saml-attacker.pem")).unwrap();
    assert!(
        forged.contains(&common::saml::pem_to_b64(&attacker_cert)),
        "KeyInfo carries the attacker's certificate"
    );
    refused(&world, &world.post_acs(Some(&flow), &forged), 400, "saml_signature_invalid");
}

#[test]
fn certificate_faking_resigned_after_tampering() {
    let world = samlify_world();
    let flow = world.saml_begin();
    let mut fields = ResponseFields::for_flow(world.school(), Some(&flow));
    fields.name_id = "mallory".into();
    let forged = world.saml_sign(&fields.xml(), "assertion", "attacker", None);
    refused(&world, &world.post_acs(Some(&flow), &forged), 400, "saml_signature_invalid");
}

// ---- weak algorithms -------------------------------------------------------------------------

const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";

#[test]
fn weak_algorithm_rsa_sha1_is_refused() {
    let world = samlify_world();
    let flow = world.saml_begin();
    let xml = ResponseFields::for_flow(world.school(), Some(&flow)).xml();
    let weak = world.saml_sign(&xml, "both", "idp", Some(RSA_SHA1));
    assert!(weak.contains(RSA_SHA1) && weak.contains("xmldsig#sha1"), "samlify signed with SHA-1");
    refused(&world, &world.post_acs(Some(&flow), &weak), 400, "saml_algorithm");
}

#[test]
fn weak_algorithm_allowed_by_the_tenant_is_accepted_and_logged() {
    let world = world_with(Options { saml_weak: true, ..Options::default() });
    let flow = world.saml_begin();
    let xml = ResponseFields::for_flow(world.school(), Some(&flow)).xml();
    let weak = world.saml_sign(&xml, "both", "idp", Some(RSA_SHA1));
    accepted(&world, &world.post_acs(Some(&flow), &weak));
    assert!(world.log().contains("accepted a SHA-1 based signature"), "the weak signature is logged");
}

#[test]
fn weak_algorithm_short_rsa_key_is_refused_at_start() {
    let trust = nymgate::verify::saml_acs::IdpTrust::new(
        "https://idp.example",
        &[include_bytes!("fixtures/rsa1024-cert.pem").to_vec()],
        Default::default(),
        false,
        60,
        false,
    );
    let error = trust.unwrap_err();
    assert!(error.contains("1024 bits is too weak"), "{error}");
    let allowed = nymgate::verify::saml_acs::IdpTrust::new(
        "https://idp.example",
        &[include_bytes!("fixtures/rsa1024-cert.pem").to_vec()],
        Default::default(),
        true,
        60,
        false,
    );
    assert!(allowed.is_ok());
}

// ---- protocol checks at their boundaries -----------------------------------------------------

fn edited(options: Options, sign: &str, edit: impl FnOnce(&mut ResponseFields), expect: Result<(), &str>) {
    let world = world_with(options);
    let (flow, xml) = signed(&world, sign, edit);
    let answer = world.post_acs(Some(&flow), &xml);
    match expect {
        Ok(()) => drop(accepted(&world, &answer)),
        Err(reason) => refused(&world, &answer, 400, reason),
    }
}

fn refused_when(edit: impl FnOnce(&mut ResponseFields), reason: &str) {
    edited(Options::default(), "both", edit, Err(reason));
}

fn accepted_when(edit: impl FnOnce(&mut ResponseFields)) {
    edited(Options::default(), "both", edit, Ok(()));
}

#[test]
fn in_response_to_of_another_request_is_refused() {
    refused_when(|f| f.in_response_to = Some("_another-request".into()), "saml_in_response_to_mismatch");
}

#[test]
fn in_response_to_missing_from_a_solicited_login_is_refused() {
    refused_when(|f| f.in_response_to = None, "saml_in_response_to_mismatch");
}

#[test]
fn unsolicited_response_is_refused_by_default() {
    let world = samlify_world();
    let mut fields = ResponseFields::for_flow(world.school(), None);
    fields.in_response_to = None;
    let xml = world.saml_sign(&fields.xml(), "both", "idp", None);
    refused(&world, &world.post_acs(None, &xml), 400, "saml_unsolicited");
}

#[test]
fn unsolicited_response_is_accepted_where_the_tenant_allows_it() {
    let world = world_with(Options { saml_unsolicited: true, ..Options::default() });
    let fields = ResponseFields::for_flow(world.school(), None);
    let xml = world.saml_sign(&fields.xml(), "both", "idp", None);
    let answer = world.post_acs_form(None, &[("SAMLResponse", &b64(&xml)), ("RelayState", "/courses/7")]);
    accepted(&world, &answer);
    assert_eq!(answer.location, "/courses/7");
}

#[test]
fn relay_state_open_redirect_is_refused() {
    let world = world_with(Options { saml_unsolicited: true, ..Options::default() });
    for target in ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"] {
        let fields = ResponseFields::for_flow(world.school(), None);
        let xml = world.saml_sign(&fields.xml(), "both", "idp", None);
        let answer = world.post_acs_form(None, &[("SAMLResponse", &b64(&xml)), ("RelayState", target)]);
        accepted(&world, &answer);
        assert_eq!(answer.location, "/", "RelayState {target:?} must not leave the site");
    }
}

fn b64(xml: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(xml)
}

#[test]
fn replay_of_a_solicited_response_is_refused() {
    let world = samlify_world();
    let (flow, xml) = signed(&world, "both", |_| {});
    accepted(&world, &world.post_acs(Some(&flow), &xml));
    // The same browser posts it again: its flow is spent.
    refused(&world, &world.post_acs(Some(&flow), &xml), 400, "state_replayed");
    // Another login of this browser: the response answers an earlier request.
    let again = world.saml_begin();
    refused(&world, &world.post_acs(Some(&again), &xml), 400, "saml_in_response_to_mismatch");
}

#[test]
fn replay_of_an_unsolicited_assertion_is_refused_until_it_expires() {
    let world = world_with(Options { saml_unsolicited: true, ..Options::default() });
    let xml = world.saml_sign(&ResponseFields::for_flow(world.school(), None).xml(), "both", "idp", None);
    accepted(&world, &world.post_acs(None, &xml));
    refused(&world, &world.post_acs(None, &xml), 400, "saml_replayed");
}

#[test]
fn destination_of_another_sp_is_refused() {
    refused_when(|f| f.destination = Some("https://other-sp.example/acs".into()), "saml_wrong_destination");
}

#[test]
fn destination_missing_from_a_signed_response_is_refused() {
    refused_when(|f| f.destination = None, "saml_wrong_destination");
}

#[test]
fn destination_missing_is_accepted_when_only_the_assertion_is_signed() {
    edited(Options::default(), "assertion", |f| f.destination = None, Ok(()));
}

#[test]
fn recipient_of_another_sp_is_refused() {
    refused_when(|f| f.recipient = "https://other-sp.example/acs".into(), "saml_wrong_recipient");
}

#[test]
fn audience_of_another_sp_is_refused() {
    refused_when(|f| f.audience = "https://other-sp.example/saml".into(), "saml_wrong_audience");
}

#[test]
fn issuer_of_another_idp_is_refused() {
    refused_when(|f| f.issuer = "https://other-idp.example/saml".into(), "saml_wrong_issuer");
}

#[test]
fn failure_status_is_refused() {
    refused_when(
        |f| f.status = "urn:oasis:names:tc:SAML:2.0:status:Responder".into(),
        "saml_status_not_success",
    );
}

// The clock skew is 60 s. Just inside it is accepted, just outside refused.
#[test]
fn not_before_within_the_skew_is_accepted() {
    accepted_when(|f| f.not_before = instant(now() + 50));
}

#[test]
fn not_before_beyond_the_skew_is_refused() {
    refused_when(|f| f.not_before = instant(now() + 70), "saml_not_yet_valid");
}

#[test]
fn not_on_or_after_within_the_skew_is_accepted() {
    accepted_when(|f| f.not_on_or_after = instant(now() - 45));
}

#[test]
fn not_on_or_after_beyond_the_skew_is_refused() {
    refused_when(|f| f.not_on_or_after = instant(now() - 60), "saml_expired");
}

#[test]
fn subject_confirmation_not_on_or_after_beyond_the_skew_is_refused() {
    refused_when(|f| f.subject_not_on_or_after = instant(now() - 60), "saml_expired");
}

#[test]
fn issue_instant_in_the_future_is_refused() {
    refused_when(|f| f.issue_instant = instant(now() + 120), "saml_not_yet_valid");
}

#[test]
fn malformed_dates_are_refused_not_crashed_on() {
    for bad in ["2026-11-25T10:00:00", "2026-02-30T10:00:00Z", "tomorrow", "9999999999-01-01T00:00:00Z"] {
        refused_when(|f| f.not_on_or_after = bad.into(), "saml_malformed_time");
    }
}

// ---- the IdP from its metadata ---------------------------------------------------------------

#[test]
fn metadata_file_gives_the_sso_location_and_keys() {
    let world = world_with(Options { saml_metadata: Some("file"), ..Options::default() });
    let (flow, xml) = signed(&world, "both", |_| {});
    accepted(&world, &world.post_acs(Some(&flow), &xml));
}

#[test]
fn metadata_url_signed_by_the_federation_is_used() {
    let world = world_with(Options { saml_metadata: Some("signed_url"), ..Options::default() });
    let metadata = std::fs::read_to_string(world.school().metadata_file(world.dir.path())).unwrap();
    assert!(metadata.contains("<ds:Signature"), "the federation signed the metadata");
    let (flow, xml) = signed(&world, "both", |_| {});
    accepted(&world, &world.post_acs(Some(&flow), &xml));
}

#[test]
fn metadata_with_a_swapped_key_fails_the_federation_signature() {
    let world = world_with(Options { saml_metadata: Some("signed_url"), ..Options::default() });
    let file = world.school().metadata_file(world.dir.path());
    let genuine = std::fs::read_to_string(&file).unwrap();
    let pem = |name: &str| {
        common::saml::pem_to_b64(
            &std::fs::read_to_string(world.dir.path().join(format!("saml-{name}.pem"))).unwrap(),
        )
    };
    // The attacker puts their own key into the federation's signed metadata.
    std::fs::write(&file, genuine.replace(&pem("idp"), &pem("attacker"))).unwrap();
    let page = world.browse(&world.url("/nymgate/login/school-s"), Some(&world.school().sso_url));
    assert_eq!(page["status"], 502, "{page}");
    let audit = world.last_login();
    assert_eq!(audit["reason"], "saml_metadata_unavailable", "{audit}");
    assert!(world.log().contains("metadata signature refused"), "{}", world.log());
    // Unsigned metadata is refused as well.
    let unsigned =
        world.school().metadata(&std::fs::read_to_string(world.dir.path().join("saml-idp.pem")).unwrap());
    std::fs::write(&file, unsigned).unwrap();
    let page = world.browse(&world.url("/nymgate/login/school-s"), Some(&world.school().sso_url));
    assert_eq!(page["status"], 502, "{page}");
    // The genuine metadata is accepted at the next attempt.
    std::fs::write(&file, genuine).unwrap();
    let (flow, xml) = signed(&world, "both", |_| {});
    accepted(&world, &world.post_acs(Some(&flow), &xml));
}

// ---- which identifier becomes the account number ---------------------------------------------

const PAIRWISE_ID: &str = "urn:oasis:names:tc:SAML:attribute:pairwise-id";
const SUBJECT_ID: &str = "urn:oasis:names:tc:SAML:attribute:subject-id";
const TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";

fn login_with(edit: impl FnOnce(&mut ResponseFields)) -> (World, AcsAnswer) {
    let world = samlify_world();
    let (flow, xml) = signed(&world, "both", edit);
    let answer = world.post_acs(Some(&flow), &xml);
    (world, answer)
}

#[test]
fn pairwise_id_comes_before_every_name_id() {
    let (world, answer) = login_with(|f| {
        f.name_id_format = TRANSIENT.into();
        f.name_id = "_transient-4711".into();
        f.attributes.push((PAIRWISE_ID.into(), "pairwise-id".into(), vec!["p7k2@school-s.example".into()]));
        f.attributes.push((SUBJECT_ID.into(), "subject-id".into(), vec!["alice@school-s.example".into()]));
    });
    let audit = accepted(&world, &answer);
    assert_eq!(audit["account_number"], account_number(&world, "p7k2@school-s.example"));
}

#[test]
fn subject_id_comes_before_a_persistent_name_id() {
    let (world, answer) = login_with(|f| {
        f.attributes.push((SUBJECT_ID.into(), "subject-id".into(), vec!["s-1001@school-s.example".into()]));
    });
    let audit = accepted(&world, &answer);
    assert_eq!(audit["account_number"], account_number(&world, "s-1001@school-s.example"));
}

#[test]
fn transient_name_id_alone_is_no_stable_subject() {
    let (world, answer) = login_with(|f| {
        f.name_id_format = TRANSIENT.into();
        f.name_id = "_transient-4711".into();
    });
    refused(&world, &answer, 403, "no_stable_subject");
}

#[test]
fn email_and_unspecified_name_ids_are_not_used_without_opt_in() {
    for format in [
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    ] {
        let (world, answer) = login_with(|f| {
            f.name_id_format = format.into();
            f.name_id = alice("email").into();
        });
        refused(&world, &answer, 403, "no_stable_subject");
    }
}

// ---- a second, independent signer: pysaml2 through xmlsec1 ------------------------------------

fn pysaml2_world() -> World {
    world_with(Options { saml: Some(SamlIdpKind::Pysaml2), ..Options::default() })
}

#[test]
fn pysaml2_signed_login_reaches_the_platform_pseudonymously() {
    let world = pysaml2_world();
    for sign in ["both", "assertion", "response"] {
        let (flow, xml) = signed(&world, sign, |_| {});
        assert!(xml.contains("SignatureValue"), "pysaml2 signed the {sign}");
        let audit = accepted(&world, &world.post_acs(Some(&flow), &xml));
        assert_eq!(audit["account_number"], account_number(&world, alice("sub")), "{sign}: {audit}");
    }
}

#[test]
fn pysaml2_signed_response_wrapped_or_tampered_is_refused() {
    let world = pysaml2_world();
    let (flow, xml) = signed(&world, "assertion", |_| {});
    let wrapped = insert(&xml, assertion(&xml).start, &evil(&xml[assertion(&xml)], "_evil"));
    refused(&world, &world.post_acs(Some(&flow), &wrapped), 400, "saml_structure");
    let (flow, xml) = signed(&world, "both", |_| {});
    let tampered = xml.replacen(">student<", ">faculty<", 1);
    assert_ne!(tampered, xml);
    refused(&world, &world.post_acs(Some(&flow), &tampered), 400, "saml_signature_invalid");
}

#[test]
fn pysaml2_rsa_sha1_is_refused() {
    let world = pysaml2_world();
    let flow = world.saml_begin();
    let xml = ResponseFields::for_flow(world.school(), Some(&flow)).xml();
    let weak = world.saml_sign(&xml, "both", "idp", Some(RSA_SHA1));
    assert!(weak.contains(RSA_SHA1), "pysaml2 signed with SHA-1");
    refused(&world, &world.post_acs(Some(&flow), &weak), 400, "saml_algorithm");
}
