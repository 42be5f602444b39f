//! The audit line of each login outcome (issue 6): every reason code of docs/LOGIN.md has a test
//! that makes a real login fail that way and reads the audit line nymgate wrote for it. The codes
//! the attack tests already cover (oidc.rs, saml_acs.rs, blocking.rs) are not repeated here;
//! `every_documented_reason_code_has_an_audit_test` keeps the list, the code and the tests in
//! step.

mod common;

use common::login::{Options, SamlIdpKind, World};
use common::saml::ResponseFields;
use serde_json::{json, Value};

const LOGIN: &str = "/nymgate/login/school-a?return_to=/echo";

fn assertion_world(options: Options) -> World {
    World::start(Options { provider: false, ..options })
}

/// The last audit line is a failed login with `reason`, and nothing personal leaked.
fn audited(world: &World, status: u16, got: u16, reason: &str) -> Value {
    let audit = world.last_login();
    assert_eq!(got, status, "expected {reason}: {audit}\n{}", world.log());
    assert_eq!(
        (audit["outcome"].as_str(), audit["reason"].as_str()),
        (Some("failed"), Some(reason)),
        "{audit}"
    );
    assert!(audit["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{audit}");
    assert!(audit["request_id"].as_str().is_some_and(|r| !r.is_empty()), "{audit}");
    assert_eq!(audit["client"], "127.83.19.0", "the reduced client IP: {audit}");
    world.assert_no_personal_values(&[]);
    audit
}

/// A browser login through the real IdP; returns the final status.
fn login(world: &World) -> u16 {
    world.browse(&world.url(LOGIN), None)["status"].as_u64().unwrap() as u16
}

/// The callback URL the IdP sent this browser to, with its cookie jar, without following it.
fn callback(world: &World) -> (String, Value) {
    let flow = world.browse(&world.url(LOGIN), Some(&world.url("/nymgate/callback")));
    (flow["url"].as_str().unwrap().to_owned(), flow["jar"].clone())
}

fn with_query(url: &str, keep: impl Fn(&str) -> bool, add: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let mut pairs: Vec<&str> = query.split('&').filter(|p| keep(p.split('=').next().unwrap())).collect();
    if !add.is_empty() {
        pairs.push(add);
    }
    format!("{base}?{}", pairs.join("&"))
}

#[test]
fn audit_line_for_a_successful_login() {
    let world = assertion_world(Options::default());
    assert_eq!(login(&world), 200);
    let audit = world.last_login();
    assert_eq!((audit["outcome"].as_str(), audit["protocol"].as_str()), (Some("ok"), Some("oidc")));
    assert_eq!(audit["tenant"], "school-a");
    assert!(audit["account_number"].as_str().is_some_and(|a| !a.is_empty()), "{audit}");
    assert!(audit["key_version"].is_u64(), "{audit}");
    assert!(audit.get("reason").is_none(), "{audit}");
    world.assert_no_personal_values(&[]);
}

#[test]
fn audit_line_for_missing_state() {
    let world = assertion_world(Options::default());
    let status = world.get_with_jar(&world.url("/nymgate/callback?code=x"), &json!({}));
    audited(&world, 400, status, "missing_state");
}

#[test]
fn audit_line_for_bad_flow_cookie() {
    let world = assertion_world(Options::default());
    let (url, mut jar) = callback(&world);
    let host = format!("localhost:{}", world.port);
    for (_, value) in jar[&host].as_object_mut().unwrap().iter_mut() {
        *value = json!("not-a-sealed-value");
    }
    audited(&world, 400, world.get_with_jar(&url, &jar), "bad_flow_cookie");
}

#[test]
fn audit_line_for_state_mismatch() {
    // The flow cookie is found by the state's first 12 characters; a state that differs only
    // after them finds this browser's cookie, sealed for the real state.
    let world = assertion_world(Options::default());
    let (url, jar) = callback(&world);
    let state = url.split("state=").nth(1).unwrap().split('&').next().unwrap();
    let last = if state.ends_with('A') { 'B' } else { 'A' };
    let other = format!("{}{last}", &state[..state.len() - 1]);
    let forged = with_query(&url, |k| k != "state", &format!("state={other}"));
    audited(&world, 400, world.get_with_jar(&forged, &jar), "state_mismatch");
}

#[test]
fn audit_line_for_idp_error() {
    let world = assertion_world(Options::default());
    let (url, jar) = callback(&world);
    let denied = with_query(&url, |k| k != "code", "error=access_denied");
    let audit = audited(&world, 400, world.get_with_jar(&denied, &jar), "idp_error");
    assert_eq!(audit["tenant"], "school-a", "the flow named the tenant: {audit}");
}

#[test]
fn audit_line_for_missing_code() {
    let world = assertion_world(Options::default());
    let (url, jar) = callback(&world);
    let without = with_query(&url, |k| k != "code", "");
    audited(&world, 400, world.get_with_jar(&without, &jar), "missing_code");
}

#[test]
fn audit_line_for_idp_metadata() {
    let world = assertion_world(Options::default());
    world.idp.hook(&world, "fail", json!({"path": "/.well-known/openid-configuration", "status": 503}));
    audited(&world, 502, login(&world), "idp_metadata");
}

#[test]
fn audit_line_for_discovery_issuer_mismatch() {
    let world = assertion_world(Options::default());
    world.idp.hook(&world, "issuer", json!({"issuer": "https://issuer.elsewhere.example"}));
    audited(&world, 400, login(&world), "discovery_issuer_mismatch");
}

/// An error about nymgate's own registration at the IdP is an outage to fix, not the browser's
/// doing: 502, not counted toward blocking.
#[test]
fn audit_line_for_token_request_failed() {
    let world = assertion_world(Options::default());
    world.idp.hook(&world, "fail", json!({"path": "/token", "status": 401, "error": "invalid_client"}));
    audited(&world, 502, login(&world), "token_request_failed");
}

/// The IdP's `invalid_grant` (RFC 6749 §5.2): a replayed, expired or swapped code.
#[test]
fn audit_line_for_code_refused() {
    let world = assertion_world(Options::default());
    world.idp.hook(&world, "fail", json!({"path": "/token", "status": 400, "error": "invalid_grant"}));
    audited(&world, 400, login(&world), "code_refused");
}

/// An IdP that writes the user's email (and name) into its token endpoint's `error` and
/// `error_description` fields: nymgate logs, audits and counts only its own word for the code
/// (`other`), so neither reaches any log at trace level, the audit log or the metrics.
#[test]
fn an_idp_error_carrying_an_email_leaves_no_trace_in_any_log() {
    let world = assertion_world(Options::default());
    let email = common::login::ALICE.iter().find(|(k, _)| *k == "email").unwrap().1;
    world.idp.hook(
        &world,
        "fail",
        json!({"path": "/token", "status": 400, "error": email, "error_description": format!("no account for Alice Andersson <{email}>")}),
    );
    audited(&world, 502, login(&world), "token_request_failed");
    assert!(world.log().contains("error response: other"), "the code is logged as `other`");
}

#[test]
fn audit_line_for_no_id_token() {
    let world = assertion_world(Options::default());
    world.idp.hook(&world, "tamper", json!({"mode": "drop_id_token"}));
    audited(&world, 400, login(&world), "no_id_token");
}

#[test]
fn audit_line_for_required_claim() {
    let world = assertion_world(Options {
        oidc_a: r#"required_claims = { school_code = "SCH-B-99" }"#,
        ..Options::default()
    });
    audited(&world, 400, login(&world), "required_claim");
}

#[test]
fn audit_line_for_userinfo_failed() {
    let world = assertion_world(Options { userinfo: true, ..Options::default() });
    world.idp.hook(&world, "fail", json!({"path": "/me", "status": 500}));
    audited(&world, 502, login(&world), "userinfo_failed");
}

#[test]
fn audit_line_for_unknown_client_and_unregistered_redirect_uri() {
    let world = World::start(Options::default());
    let authorize = |client: &str, redirect: &str| {
        world.get_with_jar(
            &world.url(&format!(
                "/nymgate/authorize?response_type=code&client_id={client}&redirect_uri={redirect}&scope=openid&state=s1&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&tenant=school-a"
            )),
            &json!({}),
        )
    };
    audited(
        &world,
        400,
        authorize("no-such-platform", "https%3A%2F%2Fplatform.test%2Fcallback"),
        "unknown_client",
    );
    let client = common::login::PLATFORM_CLIENT;
    audited(&world, 400, authorize(client, "https%3A%2F%2Fevil.example%2Fcb"), "unregistered_redirect_uri");
}

// ---- the SAML ACS -------------------------------------------------------------------------

fn saml_world(extra: &'static str) -> World {
    World::start(Options { saml: Some(SamlIdpKind::Samlify), provider: false, extra, ..Options::default() })
}

/// The ACS answers an OIDC flow's state: the answer's protocol is not the flow's.
#[test]
fn audit_line_for_protocol_mismatch() {
    let world = saml_world("");
    let (url, jar) = callback(&world);
    let state = url.split("state=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let flow = common::saml::SamlFlow { jar, relay_state: state, request_id: String::new() };
    let answer = world.post_acs(Some(&flow), "<samlp:Response/>");
    audited(&world, 400, answer.status, "protocol_mismatch");
}

#[test]
fn audit_line_for_saml_subject_confirmation() {
    let world = saml_world("");
    let flow = world.saml_begin();
    let xml = ResponseFields::for_flow(world.school(), Some(&flow)).xml();
    let start = xml.find("<saml:SubjectConfirmation ").expect("a SubjectConfirmation");
    let end = xml.find("</saml:SubjectConfirmation>").unwrap() + "</saml:SubjectConfirmation>".len();
    let without = format!("{}{}", &xml[..start], &xml[end..]);
    let signed = world.saml_sign(&without, "both", "idp", None);
    audited(&world, 400, world.post_acs(Some(&flow), &signed).status, "saml_subject_confirmation");
}

#[test]
fn audit_line_for_unreadable_form() {
    let world = saml_world("");
    let status = world.node_eval(&format!(
        "const r = await fetch({:?}, {{method: 'POST', body: new Uint8Array([0x53, 0xff, 0xfe]), headers: {{'content-type': 'application/x-www-form-urlencoded'}}}}); console.log(r.status);",
        world.school().acs_url
    ));
    audited(&world, 400, status.trim().parse().unwrap(), "unreadable_form");
}

#[test]
fn audit_line_for_body_timeout() {
    // A form that announces 100 bytes and sends 10: refused once limits.body_read_timeout passes.
    let world = saml_world("[limits]\nbody_read_timeout = \"1s\"");
    let status = world.node_eval(&format!(
        r#"import https from 'node:https';
const status = await new Promise((resolve, reject) => {{
  const req = https.request({:?}, {{method: 'POST', localAddress: process.env.NYMGATE_TEST_CLIENT_ADDRESS, headers: {{'content-type': 'application/x-www-form-urlencoded', 'content-length': 100}}}}, (res) => {{ res.resume(); resolve(res.statusCode); }});
  req.on('error', reject);
  req.write('SAMLRespon');
}});
console.log(status); process.exit(0);"#,
        world.school().acs_url
    ));
    audited(&world, 400, status.trim().parse().unwrap(), "body_timeout");
}

// ---- the list itself --------------------------------------------------------------------------

/// Every reason code in docs/LOGIN.md's table is asserted on an audit line by some test, and
/// every reason code the source can produce is in the table. The exceptions are named below
/// with why.
#[test]
fn every_documented_reason_code_has_an_audit_test() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/LOGIN.md")).unwrap();
    // The table after "Reason codes:", up to the blank line that ends it.
    let table = doc.split("Reason codes:").nth(1).unwrap().split("\n\n").nth(1).unwrap();
    let documented: std::collections::BTreeSet<String> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            l.split('|').nth(1).unwrap().split('`').skip(1).step_by(2).map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    assert!(documented.len() > 40, "the table was read: {documented:?}");

    let mut tests = String::new();
    // The test targets, and the test modules they include from a directory of their own
    // (tests/saml_out/strict.rs); not the shared helpers, peers or fixtures.
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for entry in std::fs::read_dir(root.join("tests")).unwrap() {
        let path = entry.unwrap().path();
        let helpers = ["common", "peers", "fixtures"].iter().any(|name| path.ends_with(name));
        if path.is_dir() && !helpers {
            files.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        } else {
            files.push(path);
        }
    }
    for path in files {
        if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("audit.rs") {
            tests.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    let this = std::fs::read_to_string(root.join("tests/audit.rs")).unwrap();
    tests.push_str(this.split("// ---- the list itself").next().unwrap());
    // Not reachable from outside a running nymgate: the memory store at its capacity of
    // 1,000,000 pending entries (src/store/memory.rs has its unit test); a tenant with neither
    // OIDC nor SAML settings, and a tenant whose scope has no keys (the config check, the start
    // and a reload all refuse both).
    // Nor is a failure to sign nymgate's own SAML Response: its key and algorithm are checked
    // at start and at every reload (src/mint/saml_idp.rs unit-tests a mismatched key).
    // And `issuer_mismatch`: every verifier refuses a login from another issuer first
    // (`bad_issuer`, `discovery_issuer_mismatch`, `saml_wrong_issuer`); the pseudonymizer's own
    // check behind them is unit-tested (src/pseudonym/drift_tests.rs).
    let untestable =
        ["store_full", "protocol_not_available", "no_pseudonym_keys", "response_signing", "issuer_mismatch"];
    let missing: Vec<&String> = documented
        .iter()
        .filter(|r| !untestable.contains(&r.as_str()) && !tests.contains(&format!("\"{r}\"")))
        .collect();
    assert!(missing.is_empty(), "reason codes without an audit test: {missing:?}");

    // Every file of the login floor and its verifiers (the flows live in several rooms), but the
    // admin API's, and the pseudonymizer's refusals.
    let mut source = std::fs::read_to_string(root.join("src/pseudonym/mod.rs")).unwrap();
    let mut folders = vec![root.join("src/login"), root.join("src/verify")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            // The admin API's action names and reasons are docs/RETENTION.md's, not login codes.
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("retention_api.rs")
                && !path.ends_with("admin_refusals.rs")
            {
                source.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    let produced: Vec<String> = source
        .split("BadRequest(\"")
        .skip(1)
        .chain(source.split("=> \"").skip(1))
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .filter(|code| code.chars().all(|c| c.is_ascii_lowercase() || c == '_') && code.contains('_'))
        .collect();
    assert!(produced.len() > 40, "the source was read: {produced:?}");
    let undocumented: Vec<&String> = produced.iter().filter(|c| !documented.contains(*c)).collect();
    assert!(undocumented.is_empty(), "reason codes missing from docs/LOGIN.md: {undocumented:?}");
}
