//! issue 26, "Refusals are refusals": a code the school's IdP refuses (`invalid_grant`, RFC
//! 6749 §5.2) is the browser's doing, not an outage: 400 `code_refused`, audited, and counted
//! toward blocking (one counted failure blocks in these worlds).

use super::common::login::{Options, World};
use super::{param, with_param};
use serde_json::json;

const LOGIN: &str = "/nymgate/login/school-a?return_to=/echo";

fn world() -> World {
    World::start(Options { provider: false, blocking: "max_failures = 1", ..Options::default() })
}

/// The refusal's audit line, and that it counted: the client is blocked now.
fn assert_refused_and_counted(world: &World, status: u16, audit: serde_json::Value, blocked_status: u16) {
    assert_eq!(status, 400, "{audit}\n{}", world.log());
    assert_eq!(
        (audit["outcome"].as_str(), audit["reason"].as_str(), audit["tenant"].as_str()),
        (Some("failed"), Some("code_refused"), Some("school-a")),
        "{audit}"
    );
    assert_eq!(blocked_status, 429, "the refusal counted toward blocking");
}

/// RFC 9700 §4.5 (authorization code injection): an attacker puts a code meant for the victim's
/// browser into the callback of a login the attacker's browser started. nymgate redeems it with
/// the attacker's flow's PKCE verifier, and the IdP refuses it (RFC 7636 §4.6).
#[test]
fn code_swapped_between_browsers_is_a_4xx_code_refused() {
    let world = world();
    let callback = world.url("/nymgate/callback");
    let victim = world.browse(&world.url(LOGIN), Some(&callback));
    let attacker = world.browse(&world.url(LOGIN), Some(&callback));
    let victims_code = param(victim["url"].as_str().unwrap(), "code");
    let injected = with_param(attacker["url"].as_str().unwrap(), "code", Some(&victims_code));
    let status = world.get_with_jar(&injected, &attacker["jar"]);
    let audit = world.last_login();
    let blocked = world.get_with_jar(&world.url(LOGIN), &json!({}));
    assert_refused_and_counted(&world, status, audit, blocked);
    let metrics = world.metrics();
    assert!(
        metrics.contains(r#"nymgate_logins_total{protocol="oidc",outcome="failed",reason="code_refused"} 1"#),
        "{metrics}"
    );
    world.assert_no_personal_values(&[]);
}

/// The same callback (URL and flow cookie) delivered twice, the second time to a replica that
/// has not seen its state (each keeps its own memory store here): nymgate can't tell it is a
/// replay, so it redeems the code again with the flow's own PKCE verifier, and only the IdP,
/// which spent the code at the first redemption (RFC 6749 §4.1.2), refuses it.
#[test]
fn code_replayed_at_the_idp_is_a_4xx_code_refused() {
    let world = world();
    let flow = world.browse(&world.url(LOGIN), Some(&world.url("/nymgate/callback")));
    let url = flow["url"].as_str().unwrap();
    assert_eq!(world.get_with_jar(url, &flow["jar"]), 303);
    assert_eq!(world.last_login()["outcome"], "ok");

    let replica = world.start_replica();
    let status = world.get_with_jar(&replica.moved(&world, url), &flow["jar"]);
    // The replica's own audit log: its last login line.
    let audit = world
        .file("audit-b.log")
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["kind"] == "login")
        .expect("the replica audited the attempt");
    let blocked = world.get_with_jar(&replica.moved(&world, &world.url(LOGIN)), &json!({}));
    assert_refused_and_counted(&world, status, audit, blocked);
    world.assert_no_personal_values(&[("replica's log", &world.file("nymgate-b.log"))]);
}
