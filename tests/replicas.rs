//! Several replicas sharing a real Redis (Debian `redis-server`), issue 9: a login started on
//! one replica completes on another; a state or an authorization code used on one is refused
//! on the other; failed logins add up across them; with Redis stopped, logins get 503 and
//! `/readyz` says not ready while proxied traffic flows, and Redis back brings logins back
//! without a restart. Also over TLS to Redis with an ACL user. The privacy scan covers both
//! replicas' logs.

mod common;

use std::time::Duration;

use common::login::{Options, SamlIdpKind, World};
use common::redis::RedisServer;
use common::saml::ResponseFields;
use serde_json::{json, Value};

/// A world whose nymgate uses `redis`, plus its second replica.
fn world_with_redis(options: Options, tls: bool) -> (World, common::login::Replica, RedisServer) {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    nymgate::certs::generate_dev_certs(&certs, &[]).unwrap();
    let redis = RedisServer::start(dir.path(), &certs, tls);
    let store = redis.store_toml(dir.path());
    // Replicas sign with one key (the config check insists): written by `nymgate keys signing`.
    let key = dir.path().join("signing.pem");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_nymgate"))
        .args(["keys", "signing", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let extra = Box::leak(
        format!("{}\n{store}\n[login.signing]\nkey_file = \"{}\"\n", options.extra, key.display())
            .into_boxed_str(),
    );
    let world = World::start(Options { extra, ..options });
    let replica = world.start_replica();
    // The folder (and Redis's files in it) lives as long as the test: leak the guard.
    std::mem::forget(dir);
    (world, replica, redis)
}

fn audit_b(world: &World) -> Vec<Value> {
    world.file("audit-b.log").lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn last_login_b(world: &World) -> Value {
    audit_b(world).into_iter().rev().find(|e| e["kind"] == "login").expect("a login audit line on B")
}

/// Polls an admin `/readyz` until its status is `want` (bounded).
fn until_ready(world: &World, admin_port: u16, want: u16) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        let (status, body) = world.admin_get(admin_port, "/readyz");
        if status == want {
            return body;
        }
        last = body;
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("/readyz never answered {want}: {last}");
}

fn replicas_logs(world: &World) -> String {
    world.file("nymgate-b.log") + &world.file("nymgate-b.stderr") + &world.file("audit-b.log")
}

#[test]
fn a_login_started_on_one_replica_completes_on_another_and_its_state_is_spent_on_both() {
    let (world, b, _redis) = world_with_redis(Options { provider: false, ..Options::default() }, false);
    let callback = world.url("/nymgate/callback");
    let flow = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), Some(&callback));
    let on_a = flow["url"].as_str().unwrap();
    // The IdP's answer reaches replica B (no sticky sessions): it completes the login.
    assert_eq!(world.get_with_jar(&b.moved(&world, on_a), &flow["jar"]), 303);
    assert_eq!(last_login_b(&world)["outcome"], "ok");
    // The same answer again, on A: the state was spent on B.
    assert_eq!(world.get_with_jar(on_a, &flow["jar"]), 400);
    assert_eq!(world.last_login()["reason"], "state_replayed");
    world.assert_no_personal_values(&[("replica B's log and audit", &replicas_logs(&world))]);
}

#[test]
fn an_authorization_code_redeemed_on_one_replica_is_refused_on_another() {
    let (world, b, _redis) = world_with_redis(Options::default(), false);
    let result =
        world.platform_login(json!({"replay_token_url": b.moved(&world, &world.url("/nymgate/token"))}));
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(
        (result["replay_status"].as_u64(), result["replay_error"].as_str()),
        (Some(400), Some("invalid_grant"))
    );
    // B's reason, in B's log (written by a background thread: allow it a moment).
    let logged = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        replicas_logs(&world).contains("unknown_or_used_code")
    });
    assert!(logged, "B never logged the reason");
    world.assert_no_personal_values(&[
        ("platform's received bytes", &result["received"].to_string()),
        ("replica B's log and audit", &replicas_logs(&world)),
    ]);
}

#[test]
fn a_saml_assertion_accepted_on_one_replica_is_refused_on_another() {
    let options = Options {
        saml: Some(SamlIdpKind::Samlify),
        provider: false,
        saml_unsolicited: true,
        ..Options::default()
    };
    let (world, b, _redis) = world_with_redis(options, false);
    let xml = world.saml_sign(&ResponseFields::for_flow(world.school(), None).xml(), "both", "idp", None);
    assert_eq!(world.post_acs(None, &xml).status, 303);
    assert_eq!(world.last_login()["outcome"], "ok");
    // The same signed assertion, captured and posted to replica B.
    let on_b = world.post_acs_at(&b.moved(&world, &world.school().acs_url), None, &xml);
    assert_eq!(on_b.status, 400, "{on_b:?}");
    assert_eq!(last_login_b(&world)["reason"], "saml_replayed");
    world.assert_no_personal_values(&[("replica B's log and audit", &replicas_logs(&world))]);
}

#[test]
fn failed_logins_add_up_across_replicas() {
    let (world, b, _redis) = world_with_redis(
        Options {
            provider: false,
            blocking: "max_failures = 3\nwindow = \"60s\"\nblock_for = \"60s\"",
            ..Options::default()
        },
        false,
    );
    let bad = "/nymgate/callback?state=forged&code=x";
    let on_b = b.moved(&world, &world.url(bad));
    assert_eq!(world.get_with_jar(&world.url(bad), &json!({})), 400);
    assert_eq!(world.get_with_jar(&on_b, &json!({})), 400);
    // Two failures so far, one on each: nobody is blocked yet.
    assert_eq!(world.get_with_jar(&world.url("/nymgate/login/school-a"), &json!({})), 303);
    // The third, on A, reaches the threshold: both replicas refuse the client.
    assert_eq!(world.get_with_jar(&world.url(bad), &json!({})), 400);
    assert_eq!(world.get_with_jar(&b.moved(&world, &world.url("/nymgate/login/school-a")), &json!({})), 429);
    assert_eq!(world.get_with_jar(&world.url("/nymgate/login/school-a"), &json!({})), 429);
    assert_eq!(last_login_b(&world)["reason"], "blocked");
    world.assert_no_personal_values(&[("replica B's log and audit", &replicas_logs(&world))]);
}

#[test]
fn redis_down_refuses_logins_with_503_while_proxied_traffic_flows_and_recovers() {
    let (world, b, mut redis) = world_with_redis(Options { provider: false, ..Options::default() }, false);
    let ready = until_ready(&world, world.admin_port, 200);
    assert!(ready.contains("store: reachable"), "{ready}");

    redis.stop();
    for admin in [world.admin_port, b.admin_port] {
        let body = until_ready(&world, admin, 503);
        assert!(body.contains("store: unreachable"), "{body}");
    }
    assert!(world.metrics().contains("nymgate_store_up 0"));
    // Logins: a clear 503, audited; nothing proceeds on a guess.
    assert_eq!(world.get_with_jar(&world.url("/nymgate/login/school-a?return_to=/echo"), &json!({})), 503);
    assert_eq!(world.last_login()["reason"], "store_unavailable");
    // Ordinary traffic to the platform does not need the store.
    assert_eq!(world.get_with_jar(&world.url("/echo"), &json!({})), 200);
    assert_eq!(world.get_with_jar(&b.moved(&world, &world.url("/echo")), &json!({})), 200);

    // Redis back (empty): both replicas recover without a restart.
    redis.restart();
    for admin in [world.admin_port, b.admin_port] {
        until_ready(&world, admin, 200);
    }
    let callback = world.url("/nymgate/callback");
    let flow = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), Some(&callback));
    let on_a = flow["url"].as_str().unwrap();
    assert_eq!(world.get_with_jar(&b.moved(&world, on_a), &flow["jar"]), 303);
    assert_eq!(world.get_with_jar(on_a, &flow["jar"]), 400, "spent on B, refused on A");
    assert!(world.metrics().contains("nymgate_store_up 1"));
    world.assert_no_personal_values(&[("replica B's log and audit", &replicas_logs(&world))]);
}

#[test]
fn redis_over_tls_with_an_acl_user_shares_state() {
    let (world, b, _redis) = world_with_redis(Options { provider: false, ..Options::default() }, true);
    let ready = until_ready(&world, b.admin_port, 200);
    assert!(ready.contains("store: reachable"), "{ready}");
    let callback = world.url("/nymgate/callback");
    let flow = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), Some(&callback));
    let on_a = flow["url"].as_str().unwrap();
    assert_eq!(world.get_with_jar(on_a, &flow["jar"]), 303);
    assert_eq!(world.get_with_jar(&b.moved(&world, on_a), &flow["jar"]), 400);
    assert_eq!(last_login_b(&world)["reason"], "state_replayed");
}

/// An IdP-initiated response from SimpleSAMLphp for alice, caught before the browser posts it.
fn simplesamlphp_unsolicited(world: &World) -> String {
    let school = world.school();
    let start = format!(
        "{}?spentityid={}",
        school.sso_url,
        openidconnect::url::form_urlencoded::byte_serialize(school.sp_entity_id.as_bytes())
            .collect::<String>()
    );
    let page = world.browse(&start, Some(&school.acs_url));
    let response =
        page["form"]["SAMLResponse"].as_str().unwrap_or_else(|| panic!("no response form: {page}"));
    let xml = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, response).unwrap();
    String::from_utf8(xml).unwrap()
}

/// Two tenants on one SimpleSAMLphp entity id (as Feide serves every Norwegian school), both
/// taking IdP-initiated logins: alice is filed under the school her verified
/// eduPersonPrincipalName's scope names, with the same account number, on replica A and on
/// replica B (two processes, each with its own hash seeds), every time. Before issue 26 a hash
/// map's order picked the tenant. A login she starts from the other school's tile is refused.
#[test]
fn two_tenants_on_one_simplesamlphp_entity_id_file_a_pupil_under_her_school_on_every_replica() {
    let options = Options {
        saml: Some(SamlIdpKind::SimpleSamlPhp),
        saml_unsolicited: true,
        saml_shared_tenant: true,
        provider: false,
        ..Options::default()
    };
    let (world, b, _redis) = world_with_redis(options, false);
    let mut numbers = Vec::new();
    for round in 0..3 {
        let on_a = world.post_acs(None, &simplesamlphp_unsolicited(&world));
        assert_eq!(on_a.status, 303, "round {round} on A: {on_a:?}\n{}", world.log());
        let audit = world.last_login();
        assert_eq!((audit["outcome"].as_str(), audit["tenant"].as_str()), (Some("ok"), Some("school-s")));
        numbers.push(audit["account_number"].clone());

        let acs_b = b.moved(&world, &world.school().acs_url);
        let on_b = world.post_acs_at(&acs_b, None, &simplesamlphp_unsolicited(&world));
        assert_eq!(on_b.status, 303, "round {round} on B: {on_b:?}");
        let audit = last_login_b(&world);
        assert_eq!((audit["outcome"].as_str(), audit["tenant"].as_str()), (Some("ok"), Some("school-s")));
        numbers.push(audit["account_number"].clone());
    }
    numbers.dedup();
    assert_eq!(numbers.len(), 1, "one pupil, one number: {numbers:?}");

    // Alice starts at school T's tile: the login stays T's and her scope refuses it there.
    let acs = world.school().acs_url.clone();
    let page = world.browse(&world.url("/nymgate/login/school-t"), Some(&acs));
    let form = &page["form"];
    let flow = common::saml::SamlFlow {
        jar: page["jar"].clone(),
        relay_state: form["RelayState"].as_str().unwrap().to_owned(),
        request_id: String::new(),
    };
    let xml = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        form["SAMLResponse"].as_str().unwrap(),
    )
    .unwrap();
    let answer = world.post_acs(Some(&flow), &String::from_utf8(xml).unwrap());
    assert_eq!(answer.status, 403, "{answer:?}");
    let audit = world.last_login();
    assert_eq!(
        (audit["tenant"].as_str(), audit["reason"].as_str()),
        (Some("school-t"), Some("tenant_mismatch"))
    );
    world.assert_no_personal_values(&[("replica B's log and audit", &replicas_logs(&world))]);
}

/// A platform's AuthnRequest read by one replica is refused on the other (its ID is claimed in
/// Redis, SAML out's single use, issue 26).
#[test]
fn a_platforms_authn_request_read_on_one_replica_is_refused_on_another() {
    use base64::Engine;
    use std::io::Write;
    let (world, b, _redis) = world_with_redis(Options { saml_out: true, ..Options::default() }, false);
    let sso = world.url("/nymgate/idp/sso");
    let request = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_req-replicas" Version="2.0" IssueInstant="{now}" Destination="{sso}"><saml:Issuer>{sp}</saml:Issuer></samlp:AuthnRequest>"#,
        now = common::saml::instant(common::saml::now()),
        sp = common::login::SAML_INTERCEPTED,
    );
    let mut deflater = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflater.write_all(request.as_bytes()).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(deflater.finish().unwrap());
    let query: String = openidconnect::url::form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLRequest", &encoded)
        .append_pair("tenant", "school-a")
        .finish();
    let on_a = format!("{sso}?{query}");
    assert_eq!(world.get_with_jar(&on_a, &json!({})), 303, "A reads the request and sends it to the school");
    assert_eq!(world.get_with_jar(&b.moved(&world, &on_a), &json!({})), 400);
    assert_eq!(last_login_b(&world)["reason"], "authn_request_replayed");
    world.assert_no_personal_values(&[("replica B's log and audit", &replicas_logs(&world))]);
}
