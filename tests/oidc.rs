//! OIDC logins end to end with real peers: node `oidc-provider` as the school's IdP, the
//! `nymgate` binary, node `openid-client` as the platform (provider output) or a real upstream
//! server (assertion-header output). Every test scans what the platform received and every log.

mod common;

use common::login::{Options, World, ALICE, PLATFORM_CLIENT};
use serde_json::{json, Value};

/// Alice's account number as nymgate must compute it, independently of the login path.
fn expected_account_number(world: &World) -> String {
    let ring = nymgate::pseudonym::keyring::Keyring::load(&world.dir.path().join("keyring.toml")).unwrap();
    let key = ring.scope("school-a").unwrap().current();
    let sub = ALICE.iter().find(|(k, _)| *k == "sub").unwrap().1;
    nymgate::pseudonym::derive_account_number(key, &world.idp.url, sub).to_string()
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
    assert_eq!(audit["client"], "127.0.0.0", "the reduced IP in the audit: {audit}");
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
}

#[test]
fn rp_userinfo_bad_sub_claim_is_refused() {
    let world = World::start(Options { provider: false, userinfo: true, ..Options::default() });
    world.idp.hook(&world, "userinfo_sub", json!({"sub": "someone-else"}));
    let page = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None);
    assert_eq!(page["status"], 400, "{page}");
    assert_eq!(world.last_login()["reason"], "userinfo_sub_mismatch");
}
