//! OIDC logins end to end with real peers: node `oidc-provider` as the school's IdP, the
//! `nymgate` binary, node `openid-client` as the platform (provider output) or a real upstream
//! server (assertion-header output). Every test scans what the platform received and every log.

#[path = "oidc/code_refusals.rs"]
mod code_refusals;
mod common;
#[path = "oidc/key_rotation.rs"]
mod key_rotation;

use common::login::{alice_sub, Options, World, ALICE, PLATFORM_CLIENT};
use serde_json::{json, Value};

/// Alice's account number as nymgate must compute it, independently of the login path.
fn expected_account_number(world: &World) -> String {
    let ring = nymgate::pseudonym::keyring::Keyring::load(&world.dir.path().join("keyring.toml")).unwrap();
    let key = ring.scope("school-a").unwrap().current();
    let sub = ALICE.iter().find(|(k, _)| *k == "sub").unwrap().1;
    common::account_number::primary(key, &world.idp.url, sub)
}

fn assert_pseudonymous(claims: &Value, world: &World) {
    assert_eq!(claims["sub"], expected_account_number(world), "{claims}");
    assert_eq!(claims["tenant"], "school-a");
    assert_eq!(claims["role"], "student");
    assert_eq!(claims["school"], "school-a-01");
    let allowed = ["sub", "tenant", "role", "school", "nym_ver", "iss", "aud", "exp", "iat", "jti", "nonce"];
    for name in claims.as_object().unwrap().keys() {
        assert!(allowed.contains(&name.as_str()), "unexpected claim {name} in {claims}");
    }
}

fn platform_bytes(result: &Value) -> String {
    result["received"].to_string()
}

#[test]
fn platform_gets_only_pseudonymous_claims_when_the_id_token_carries_email_and_name() {
    let world = World::start(Options { conform_id_token_claims: false, ..Options::default() });
    let result = world.platform_login(json!({}));
    assert_eq!(result["ok"], true, "{result}");
    assert_pseudonymous(&result["id_token_claims"], &world);
    assert_pseudonymous(&result["userinfo"], &world);
    assert_eq!(result["id_token_claims"]["aud"], PLATFORM_CLIENT);
    let audit = world.last_login();
    assert_eq!((audit["outcome"].as_str(), audit["tenant"].as_str()), (Some("ok"), Some("school-a")));
    assert_eq!(audit["account_number"], expected_account_number(&world));
    assert_eq!(audit["client"], "127.83.19.0", "the reduced IP in the audit: {audit}");
    // nymgate did receive the personal claims, and dropped them.
    assert!(
        world.log().contains(
            r#"removed":"[\"email\", \"email_verified\", \"family_name\", \"given_name\", \"name\""#
        ),
        "{}",
        world.log()
    );
    world.assert_no_personal_values(&[("platform's received bytes", &platform_bytes(&result))]);
}

#[test]
fn platform_gets_only_pseudonymous_claims_when_email_and_name_come_from_userinfo() {
    let world = World::start(Options { conform_id_token_claims: true, userinfo: true, ..Options::default() });
    let result = world.platform_login(json!({}));
    assert_eq!(result["ok"], true, "{result}");
    assert_pseudonymous(&result["id_token_claims"], &world);
    world.assert_no_personal_values(&[("platform's received bytes", &platform_bytes(&result))]);
}

#[test]
#[should_panic(expected = "alice's email appears in the leak")]
fn the_privacy_scan_finds_a_leak() {
    let world = World::start(Options::default());
    world.assert_no_personal_values(&[("leak", "token for Alice.Andersson@School-A.example")]);
}

/// A careless log line, written through nymgate's own subscriber and JSON format at trace
/// level (`telemetry::subscriber`), is what the scan must catch in the log.
#[test]
#[should_panic(expected = "alice's email appears in the nymgate log, planted")]
fn the_privacy_scan_finds_an_email_logged_through_the_normal_log_path() {
    let world = World::start(Options::default());
    let captured = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = captured.clone();
    let writer = move || Capture(sink.clone());
    let config =
        nymgate::config::LogConfig { format: nymgate::config::LogFormat::Json, level: "trace".into() };
    let email = ALICE.iter().find(|(k, _)| *k == "email").unwrap().1;
    tracing::subscriber::with_default(nymgate::telemetry::subscriber(&config, writer), || {
        tracing::debug!(email, "callback claims");
    });
    let log = String::from_utf8(captured.lock().unwrap().clone()).unwrap();
    assert!(log.contains(r#""level":"DEBUG""#), "nymgate's JSON format: {log}");
    world.assert_no_personal_values(&[("nymgate log, planted", &log)]);
}

/// A `MakeWriter` into a shared buffer.
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn login_hint_domain_picks_the_tenant_and_is_never_kept() {
    let world = World::start(Options::default());
    let hint = ALICE.iter().find(|(k, _)| *k == "email").unwrap().1;
    // alice.andersson@school-a.example → tenant school-a (email_domains).
    let result = world.platform_login(json!({"extra_auth_params": {"login_hint": hint}}));
    assert_eq!(result["ok"], true, "{result}");
    assert_pseudonymous(&result["id_token_claims"], &world);
    world.assert_no_personal_values(&[("platform's received bytes", &platform_bytes(&result))]);
}

#[test]
fn without_a_tenant_the_platform_user_sees_the_school_chooser() {
    let world = World::start(Options { second_school: true, ..Options::default() });
    let start = world.url(&format!(
        "/nymgate/authorize?response_type=code&client_id={PLATFORM_CLIENT}&redirect_uri=https%3A%2F%2Fplatform.test%2Fcallback&scope=openid&state=s1&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
    ));
    let page = world.browse(&start, None);
    assert_eq!(page["status"], 200, "{page}");
    let body = page["body"].as_str().unwrap();
    assert!(body.contains("Skola school-a") && body.contains("Skola school-b"), "{body}");
    assert!(body.contains("tenant=school-b"), "{body}");
}

#[test]
fn rp_code_replayed_at_the_token_endpoint_is_refused() {
    let world = World::start(Options::default());
    let result = world.platform_login(json!({"replay_code": true}));
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["replay_rejected"], true, "{result}");
    assert!(world.log().contains("unknown_or_used_code"));
}

#[test]
fn rp_key_rotation_op_sign_key_logins_keep_working() {
    let world = World::start(Options::default());
    assert_eq!(world.platform_login(json!({}))["ok"], true);
    let rotated = world.idp.hook(&world, "rotate", json!({}));
    assert!(rotated["kid"].is_string(), "{rotated}");
    // jwks_refetch_interval is 1s in the test config; the first fetch was at discovery.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let result = world.platform_login(json!({}));
    assert_eq!(result["ok"], true, "{result}");
    assert_pseudonymous(&result["id_token_claims"], &world);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertion_header_is_signed_verifiable_and_never_forged_by_a_client() {
    let upstream = common::Upstream::start().await;
    let world =
        World::start(Options { provider: false, upstream: Some(upstream.url()), ..Options::default() });

    // A client without a session forges the header: it never reaches the platform.
    let forged = world.node_eval(&format!(
        "const r = await fetch({:?}, {{headers: {{'x-nymgate-assertion': 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.'}}}}); console.log(await r.text());",
        world.url("/echo")
    ));
    let seen: nymgate::echo::Echo = serde_json::from_str(forged.trim()).unwrap();
    assert!(seen.headers.iter().all(|(k, _)| k != "x-nymgate-assertion"), "{forged}");

    // Alice signs in; the platform's request carries nymgate's signed header.
    let page = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None);
    assert_eq!(page["status"], 200, "{page}");
    let body = page["body"].as_str().unwrap();
    let seen: nymgate::echo::Echo = serde_json::from_str(body).unwrap();
    let token = seen
        .headers
        .iter()
        .find(|(k, _)| k == "x-nymgate-assertion")
        .map(|(_, v)| v.clone())
        .expect("the assertion header reached the platform");
    assert!(
        seen.headers.iter().all(|(_, v)| !v.contains("__Host-nymgate")),
        "nymgate's cookies stay with nymgate"
    );

    // The platform verifies it with nymgate's JWKS.
    let jwks_text = world.node_eval(&format!(
        "const r = await fetch({:?}); console.log(await r.text());",
        world.url("/nymgate/jwks")
    ));
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(jwks_text.trim()).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    let key =
        jsonwebtoken::DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["platform"]);
    validation.set_issuer(&[world.url("/nymgate")]);
    let claims = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap().claims;
    assert_pseudonymous(&claims, &world);

    world.assert_no_personal_values(&[("platform's received bytes", body)]);
}

/// A tampered ID token from the real IdP: nymgate must refuse the login with this reason,
/// and nothing may reach the platform.
fn refused_after_tamper(mode: &str, reason: &str) {
    let world = World::start(Options { provider: false, ..Options::default() });
    // A good login first, so discovery and keys are cached as in production.
    let ok = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None);
    assert_eq!(ok["status"], 200, "{ok}");
    let armed = world.idp.hook(&world, "tamper", json!({"mode": mode}));
    assert!(!armed.is_null(), "the IdP's tamper hook answered");
    let page = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None);
    assert_eq!(
        page["status"],
        400,
        "{mode}: {page}\n{}",
        world
            .log()
            .lines()
            .filter(|l| l.contains("login refused") || l.contains("login failed"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(page["body"].as_str().unwrap().contains("reference"), "generic page with a reference");
    let audit = world.last_login();
    assert_eq!(audit["outcome"], "failed", "{audit}");
    assert_eq!(audit["reason"], reason, "{mode}: {audit}");
    world.assert_no_personal_values(&[("error page", page["body"].as_str().unwrap())]);
}

macro_rules! tamper_tests {
    ($($name:ident: $mode:literal => $reason:literal;)*) => {$(
        #[test]
        fn $name() {
            refused_after_tamper($mode, $reason);
        }
    )*};
}

tamper_tests! {
    rp_id_token_alg_none_is_refused: "alg_none" => "bad_signature";
    rp_id_token_alg_none_other_spelling_is_refused: "alg_none_caps" => "malformed_id_token";
    rp_id_token_hs256_signed_with_the_rsa_public_key_is_refused: "hs256_with_public_key" => "bad_signature";
    rp_id_token_bad_sig_rs256_is_refused: "bad_signature" => "bad_signature";
    rp_id_token_signed_by_a_foreign_key_with_a_known_kid_is_refused: "foreign_key" => "bad_signature";
    rp_id_token_unknown_kid_is_refused: "unknown_kid" => "unknown_kid";
    rp_id_token_issuer_mismatch_is_refused: "wrong_iss" => "bad_issuer";
    rp_id_token_aud_is_refused: "wrong_aud" => "bad_audience";
    rp_id_token_aud_with_an_untrusted_extra_is_refused: "extra_untrusted_aud" => "bad_audience";
    rp_nonce_invalid_is_refused: "wrong_nonce" => "bad_nonce";
    rp_id_token_expired_is_refused: "expired" => "bad_time";
    rp_id_token_sub_missing_is_refused: "no_sub" => "malformed_id_token";
    rp_id_token_iat_in_the_future_is_refused: "future_iat" => "bad_time";
    rp_id_token_nbf_in_the_future_is_refused: "nbf_future" => "bad_time";
    rp_id_token_azp_of_another_client_is_refused: "wrong_azp" => "bad_audience";
    rp_id_token_ecdsa_zero_signature_is_refused: "ecdsa_zero_sig" => "bad_signature";
    rp_id_token_jku_and_embedded_jwk_are_ignored: "jku_header" => "bad_signature";
    rp_id_token_algorithm_outside_the_tenants_set_is_refused: "rs384" => "bad_signature";
    rp_id_token_exp_missing_is_refused: "no_exp" => "malformed_id_token";
    rp_id_token_exp_not_a_number_is_refused: "exp_string" => "malformed_id_token";
    rp_id_token_aud_missing_is_refused: "no_aud" => "bad_audience";
}

#[test]
fn rp_id_token_kid_absent_single_jwks_is_accepted_and_multiple_jwks_refused() {
    let world = World::start(Options { provider: false, ..Options::default() });
    // One key in the JWKS: the key is unambiguous, the signature good.
    world.idp.hook(&world, "tamper", json!({"mode": "no_kid"}));
    let page = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None);
    assert_eq!(page["status"], 200, "{page}");
    assert_eq!(world.last_login()["outcome"], "ok");
    // After a rotation the JWKS has two RS256 keys: without a kid nymgate does not guess.
    world.idp.hook(&world, "rotate", json!({}));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None)["status"], 200);
    world.idp.hook(&world, "tamper", json!({"mode": "no_kid"}));
    let page = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None);
    assert_eq!(page["status"], 400, "{page}");
    assert_eq!(world.last_login()["reason"], "bad_signature");
}

/// A code for the platform, obtained through a real login, with a PKCE verifier we know.
fn platform_code(world: &World, verifier: &str) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
    let start = world.url(&format!(
        "/nymgate/authorize?response_type=code&client_id={PLATFORM_CLIENT}&redirect_uri=https%3A%2F%2Fplatform.test%2Fcallback&scope=openid&state=s1&tenant=school-a&code_challenge={challenge}&code_challenge_method=S256"
    ));
    let landed = world.browse(&start, Some(common::login::PLATFORM_REDIRECT));
    param(landed["url"].as_str().unwrap(), "code")
}

/// POSTs to nymgate's token endpoint as a platform would; returns (status, body).
fn token_request(world: &World, secret: &str, form: &[(String, String)]) -> (u16, Value) {
    let body: String =
        openidconnect::url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let out = world.node_eval(&format!(
        "const r = await fetch({url:?}, {{method: 'POST', headers: {{'content-type': 'application/x-www-form-urlencoded', authorization: 'Basic ' + Buffer.from({id:?} + ':' + {secret:?}).toString('base64')}}, body: {body:?}}}); console.log(JSON.stringify({{status: r.status, body: await r.json()}}));",
        url = world.url("/nymgate/token"),
        id = PLATFORM_CLIENT,
    ));
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{out}"));
    (v["status"].as_u64().unwrap() as u16, v["body"].clone())
}

#[test]
fn provider_codes_are_bound_to_client_secret_redirect_uri_and_pkce_and_used_once() {
    let world = World::start(Options::default());
    let verifier = "v".repeat(43);
    let redirect = common::login::PLATFORM_REDIRECT;
    let grant = |code: &str, redirect: &str, verifier: &str| {
        vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".to_owned(), code.to_owned()),
            ("redirect_uri".to_owned(), redirect.to_owned()),
            ("code_verifier".to_owned(), verifier.to_owned()),
        ]
    };

    let code = platform_code(&world, &verifier);
    let (status, body) = token_request(
        &world,
        &world.platform_secret,
        &grant(&code, "https://platform.test/other", &verifier),
    );
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "wrong redirect_uri");
    let (status, _) = token_request(&world, &world.platform_secret, &grant(&code, redirect, &verifier));
    assert_eq!(status, 400, "a code that failed a check is spent");

    let code = platform_code(&world, &verifier);
    let (status, body) =
        token_request(&world, &world.platform_secret, &grant(&code, redirect, &"w".repeat(43)));
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "wrong PKCE verifier");

    let code = platform_code(&world, &verifier);
    let (status, body) = token_request(&world, "not-the-secret", &grant(&code, redirect, &verifier));
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let (status, body) = token_request(&world, &world.platform_secret, &grant(&code, redirect, &verifier));
    assert_eq!(status, 200, "{body}");
    assert!(body["id_token"].is_string() && body["access_token"].is_string());
    let (status, body) = token_request(&world, &world.platform_secret, &grant(&code, redirect, &verifier));
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "replayed code");
}

#[test]
fn rp_userinfo_bad_sub_claim_is_refused() {
    let world = World::start(Options { provider: false, userinfo: true, ..Options::default() });
    world.idp.hook(&world, "userinfo_sub", json!({"sub": "someone-else"}));
    let page = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None);
    assert_eq!(page["status"], 400, "{page}");
    assert_eq!(world.last_login()["reason"], "userinfo_sub_mismatch");
}

fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let mut parsed = openidconnect::url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut query = parsed.query_pairs_mut();
    query.clear();
    for (k, v) in &pairs {
        query.append_pair(k, v);
    }
    if let Some(value) = value {
        query.append_pair(name, value);
    }
    drop(query);
    parsed.to_string()
}

fn param(url: &str, name: &str) -> String {
    openidconnect::url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .unwrap()
        .1
        .into_owned()
}

#[test]
fn rp_mix_up_response_from_another_tenants_idp_is_refused() {
    let world = World::start(Options { provider: false, second_school: true, ..Options::default() });
    let callback = world.url("/nymgate/callback");
    let a = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), Some(&callback));
    let b = world.browse(&world.url("/nymgate/login/school-b?return_to=/echo"), Some(&callback));
    let (a_url, b_url) = (a["url"].as_str().unwrap(), b["url"].as_str().unwrap());
    assert_eq!(param(a_url, "iss"), world.idp.url);

    // School B's code and issuer, delivered into the flow that went to school A.
    let mixed = with_param(
        &with_param(a_url, "code", Some(&param(b_url, "code"))),
        "iss",
        Some(&param(b_url, "iss")),
    );
    assert_eq!(world.get_with_jar(&mixed, &a["jar"]), 400);
    assert_eq!(world.last_login()["reason"], "iss_parameter_mismatch");

    // Without the iss parameter, from an IdP that announces RFC 9207.
    let stripped = with_param(&with_param(a_url, "code", Some(&param(b_url, "code"))), "iss", None);
    assert_eq!(world.get_with_jar(&stripped, &a["jar"]), 400);
    let reason = world.last_login()["reason"].clone();
    // The first refusal spent A's state; a fresh flow shows the missing-iss refusal itself.
    assert_eq!(reason, "state_replayed");
    let a2 = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), Some(&callback));
    let stripped = with_param(a2["url"].as_str().unwrap(), "iss", None);
    assert_eq!(world.get_with_jar(&stripped, &a2["jar"]), 400);
    assert_eq!(world.last_login()["reason"], "iss_parameter_missing");
}

#[test]
fn rp_state_is_bound_to_the_browser_and_used_once() {
    let world = World::start(Options { provider: false, ..Options::default() });
    let callback = world.url("/nymgate/callback");
    let flow = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), Some(&callback));
    let url = flow["url"].as_str().unwrap();

    // Another browser (no flow cookie) can't finish this login: login CSRF.
    assert_eq!(world.get_with_jar(url, &json!({})), 400);
    assert_eq!(world.last_login()["reason"], "no_flow_cookie");
    // A state that is not the sealed one.
    // Its last character changed (to one it is not: a fixed "A" was the state itself 1 time in 16).
    let state = param(url, "state");
    let last = if state.ends_with('A') { 'B' } else { 'A' };
    let forged = with_param(url, "state", Some(&format!("{}{last}", &state[..state.len() - 1])));
    assert_eq!(world.get_with_jar(&forged, &flow["jar"]), 400);

    // The real browser finishes once; the same callback again is a replay.
    assert_eq!(world.get_with_jar(url, &flow["jar"]), 303);
    assert_eq!(world.last_login()["outcome"], "ok");
    assert_eq!(world.get_with_jar(url, &flow["jar"]), 400);
    assert_eq!(world.last_login()["reason"], "state_replayed");
}

#[test]
fn tenant_with_explicit_endpoints_logs_in_without_discovery() {
    let world = World::start(Options { explicit_endpoints: true, ..Options::default() });
    let result = world.platform_login(json!({}));
    assert_eq!(result["ok"], true, "{result}");
    assert_pseudonymous(&result["id_token_claims"], &world);
}

#[test]
fn guard_trip_fails_the_login_closed_and_names_only_the_claim() {
    // A policy mistake maps the school code to the pupil's own email: the guard stops it.
    let email = ALICE.iter().find(|(k, _)| *k == "email").unwrap().1;
    let world = World::start(Options { provider: false, school_value: email, ..Options::default() });
    let page = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None);
    assert_eq!(page["status"], 403, "{page}");
    let audit = world.last_login();
    assert_eq!((audit["reason"].as_str(), audit["claim"].as_str()), (Some("guard_tripped"), Some("school")));
    let metrics = world.metrics();
    assert!(metrics.contains("nymgate_guard_trips_total{claim=\"school\""), "{metrics}");
    // The value itself is in the config, not in any log line.
    world.assert_no_personal_values(&[("error page", page["body"].as_str().unwrap())]);
}

#[test]
fn logout_ends_the_session_and_signs_out_at_the_idp() {
    let world = World::start(Options { provider: false, ..Options::default() });
    let page = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None);
    assert_eq!(page["status"], 200);
    let end_session = format!("{}/session/end", world.idp.url);
    let out = world.browse_with_jar(&world.url("/nymgate/logout"), Some(&end_session), &page["jar"]);
    let nymgate_host = format!("localhost:{}", world.port);
    assert!(
        out["jar"][&nymgate_host].get("__Host-nymgate-session").is_none(),
        "session cookie cleared: {out}"
    );
    let target = out["url"].as_str().unwrap();
    assert!(target.starts_with(&end_session), "{out}");
    assert_eq!(param(target, "client_id"), "nymgate-school-a");
    assert_eq!(param(target, "post_logout_redirect_uri"), world.url("/nymgate/logged-out"));
}

/// The tenant in `/nymgate/login/{tenant}` is the client's text: an unknown one is refused
/// (404) and never recorded, so a path that holds an email leaks nowhere, and varying it does
/// not dodge the per-tenant failure count.
#[test]
fn an_unknown_tenant_in_the_path_is_refused_and_never_recorded() {
    let world = World::start(Options { provider: false, ..Options::default() });
    let email = ALICE.iter().find(|(k, _)| *k == "email").unwrap().1;
    let page = world.browse(&world.url(&format!("/nymgate/login/{email}")), None);
    assert_eq!(page["status"], 404, "{page}");
    let audit = world.last_login();
    assert_eq!(audit["reason"], "unknown_tenant", "{audit}");
    assert!(audit.get("tenant").is_none(), "only configured tenant ids are recorded: {audit}");
    world.assert_no_personal_values(&[("error page", page["body"].as_str().unwrap())]);
}

/// `[branding]` on every page, a tenant's own over it on the pages that know the tenant.
#[test]
fn pages_carry_the_deployment_and_the_tenant_branding() {
    let world = World::start(Options {
        provider: false,
        second_school: true,
        extra: "[branding]\nname = \"Lärplattformen\"\nlogo_url = \"/assets/logo.svg\"\naccent_color = \"#1d4d2b\"",
        tenant_a: r##"branding = { name = "Skola A", accent_color = "#6b1d1d" }"##,
        ..Options::default()
    });
    let chooser = world.browse(&world.url("/nymgate/login"), None);
    let html = chooser["body"].as_str().unwrap();
    assert!(html.contains("Lärplattformen") && html.contains("--accent:#1d4d2b"), "{html}");
    assert!(html.contains(r#"<img src="/assets/logo.svg" alt="">"#), "{html}");
    // A failed login at school-a: its own name and colour, the deployment's logo.
    let flow = world.browse(&world.url("/nymgate/login/school-a"), Some(&world.url("/nymgate/callback")));
    let url = flow["url"].as_str().unwrap().replace("code=", "error=access_denied&x=");
    let failed = world.node_eval(&format!(
        "const r = await fetch({url:?}, {{headers: {{cookie: {cookie:?}, 'accept-language': 'sv'}}}}); console.log(await r.text());",
        cookie = flow["jar"][format!("localhost:{}", world.port)]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    assert!(failed.contains("Skola A") && failed.contains("--accent:#6b1d1d"), "{failed}");
    assert!(failed.contains("/assets/logo.svg") && failed.contains("Inloggningen misslyckades"), "{failed}");
    world.assert_no_personal_values(&[("chooser", html), ("error page", &failed)]);
}

/// With the provider output too, nymgate's cookies (the remembered school, flow cookies) stay
/// with nymgate: a browser that started a login sends them on every request, and the
/// platform's copy has none.
#[test]
fn nymgate_cookies_never_reach_the_platform_with_the_provider_output() {
    let world = World::start(Options::default());
    let cookies = "__Host-nymgate-school=school-a; theme=dark; __Host-nymgate-flow-abc=sealed";
    let out = world.node_eval(&format!(
        "const r = await fetch({:?}, {{headers: {{cookie: {cookies:?}}}}}); console.log(await r.text());",
        world.url("/echo")
    ));
    let seen: nymgate::echo::Echo = serde_json::from_str(out.trim()).unwrap();
    let cookie = seen.headers.iter().find(|(k, _)| k == "cookie").map(|(_, v)| v.as_str());
    assert_eq!(cookie, Some("theme=dark"), "{out}");
}

/// A small deterministic generator: the same numbers every run, spread over the class.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
    fn date(&mut self) -> (u64, u64, u64) {
        (1 + self.below(28), 1 + self.below(12), self.below(100))
    }
}

/// Valid national identity numbers, each as digit groups (date part, rest) so that every
/// separator of the class can be put between them; check digits computed here, apart from the
/// guard's own code.
fn national_ids(rng: &mut Lcg) -> Vec<(&'static str, String, String)> {
    let digits = |s: &str| s.bytes().map(|b| u32::from(b - b'0')).collect::<Vec<_>>();
    let mut out = Vec::new();
    for _ in 0..3 {
        // Swedish personnummer (Luhn over YYMMDDNNN), and samordningsnummer (day + 60).
        let (d, m, y) = rng.date();
        let day = if rng.below(2) == 0 { d } else { d + 60 };
        let body = format!("{y:02}{m:02}{day:02}{:03}", rng.below(1000));
        let sum: u32 = digits(&body)
            .iter()
            .enumerate()
            .map(|(i, d)| {
                if i % 2 == 0 {
                    let x = d * 2;
                    x / 10 + x % 10
                } else {
                    *d
                }
            })
            .sum();
        let check = (10 - sum % 10) % 10;
        out.push(("se", body[..6].to_owned(), format!("{}{check}", &body[6..])));
        // Norwegian fødselsnummer, two mod-11 check digits (a draw that needs a 10 is redrawn).
        loop {
            let (d, m, y) = rng.date();
            let body = format!("{d:02}{m:02}{y:02}{:03}", rng.below(1000));
            let k = |w: &[u32], ds: &[u32]| match 11 - w.iter().zip(ds).map(|(a, b)| a * b).sum::<u32>() % 11
            {
                11 => Some(0),
                10 => None,
                k => Some(k),
            };
            let mut ds = digits(&body);
            let Some(k1) = k(&[3, 7, 6, 1, 8, 9, 4, 5, 2], &ds) else { continue };
            ds.push(k1);
            let Some(k2) = k(&[5, 4, 3, 2, 7, 6, 5, 4, 3, 2], &ds) else { continue };
            out.push(("no", body[..6].to_owned(), format!("{}{k1}{k2}", &body[6..])));
            break;
        }
        // Danish CPR: a date and four digits.
        let (d, m, y) = rng.date();
        out.push(("dk", format!("{d:02}{m:02}{y:02}"), format!("{:04}", rng.below(10_000))));
        // Finnish henkilötunnus: DDMMYY, the century sign, ZZZ and the mod-31 check character.
        let (d, m, y) = rng.date();
        let zzz = 2 + rng.below(897);
        let n: u64 = format!("{d:02}{m:02}{y:02}{zzz:03}").parse().unwrap();
        let check = b"0123456789ABCDEFHJKLMNPRSTUVWXY"[(n % 31) as usize] as char;
        let century = ["-", "A", "+"][rng.below(3) as usize];
        out.push(("fi", format!("{d:02}{m:02}{y:02}{century}"), format!("{zzz:03}{check}")));
    }
    out
}

/// issue 25, "The guard by class": a tenant whose map copies the IdP's school code lets through
/// no national identity number of any Nordic format in any separator form a person or system
/// writes, no phone number in common punctuation and no fragment of the login's own values; each
/// such login fails closed with guard_tripped and names only the claim.
#[test]
fn guard_national_ids_in_every_separator_form_through_the_real_idp() {
    // Every dash and space a directory or a person writes between the date and the rest.
    let separators = [
        "", "-", "+", " ", " - ", "\u{2010}", "\u{2011}", "\u{2013}", "\u{2014}", "\u{2212}", "\u{00a0}",
        "\u{202f}",
    ];
    let mut rng = Lcg(25);
    let mut codes = Vec::new();
    for (kind, date, rest) in national_ids(&mut rng) {
        // The Finnish century sign is the separator itself.
        let separator =
            if kind == "fi" { "" } else { separators[rng.below(separators.len() as u64) as usize] };
        codes.push(format!("{date}{separator}{rest}"));
    }
    // Phones in common punctuation.
    codes.extend(
        ["+46 (0)70-123 45 67", "(070) 123 45 67", "070.123.45.67", "0047 912 34 567"].map(String::from),
    );
    // Fragments of the login's own values: the email's local part, a name token in another case
    // and inside a longer code.
    codes.extend(["alice.andersson", "ANDERSSON", "klass-andersson-7b"].map(String::from));
    let world =
        World::start(Options { provider: false, copied_school_codes: codes.clone(), ..Options::default() });
    for code in &codes {
        world.idp.hook(&world, "claim", json!({"user": alice_sub(), "name": "school_code", "value": code}));
        let page = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None);
        assert_eq!(page["status"], 403, "{code:?} passed the guard: {page}");
        let audit = world.last_login();
        assert_eq!(
            (audit["reason"].as_str(), audit["claim"].as_str()),
            (Some("guard_tripped"), Some("school")),
            "{code:?}"
        );
        let text = format!("{}{}", world.log(), world.file("audit.log"));
        assert!(!text.contains(code.as_str()), "{code:?} reached nymgate's log or audit log");
    }
    world.assert_no_personal_values(&[]);
}

/// The pipeline's answer phase: a request refused by any phase is counted and logged as
/// `rejected` (route class), with its status, in the one request line; never as the route it
/// was on (a refused SAML message outside the ACS is on the proxy route when refused).
#[test]
fn a_refused_request_is_logged_and_counted_as_rejected() {
    let world = World::start(Options::default());
    let url = format!("https://localhost:{}/course/7?SAMLResponse=PHNhbWw%2B", world.port);
    assert_eq!(world.get_with_jar(&url, &json!({})), 400);
    let log = world.log();
    let line = log
        .lines()
        .find(|l| l.contains("\"message\":\"request\"") && l.contains("\"status\":400"))
        .unwrap_or_else(|| panic!("no request line for the 400:\n{log}"));
    assert!(line.contains("\"route\":\"rejected\""), "{line}");
    assert!(world.metrics().lines().any(|l| l.starts_with("nymgate_requests_total{")
        && l.contains("route=\"rejected\"")
        && l.contains("status=\"400\"")));
}
