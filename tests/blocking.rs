//! Failed-attempt blocking through the real binary (issue 6): a client is refused every login
//! endpoint with 429 and `Retry-After` after too many failed logins, released when the block
//! ends; allowlisted networks are never blocked; a tenant's own threshold (pupils behind one NAT
//! address) applies to its logins. The audit log and metrics show it, and no address is kept.

mod common;

use common::login::{Options, SamlIdpKind, World};
use serde_json::Value;

/// GET on nymgate from the test's client (CLIENT_ADDRESS); returns (status, Retry-After).
fn get(world: &World, path: &str) -> (u16, Option<u64>) {
    let out = world.node_eval(&format!(
        "const r = await fetch({:?}, {{redirect: 'manual'}}); console.log(JSON.stringify({{status: r.status, retry: r.headers.get('retry-after')}}));",
        world.url(path)
    ));
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("no answer: {out}"));
    (v["status"].as_u64().unwrap() as u16, v["retry"].as_str().and_then(|r| r.parse().ok()))
}

/// A callback for no login this browser started: a failed attempt (400) with no tenant.
const BAD_CALLBACK: &str = "/nymgate/callback?state=forged&code=x";

#[test]
fn blocking_after_n_failures_then_release() {
    let world = World::start(Options {
        provider: false,
        blocking: "max_failures = 3\nwindow = \"60s\"\nblock_for = \"3s\"",
        ..Options::default()
    });
    for _ in 0..3 {
        assert_eq!(get(&world, BAD_CALLBACK).0, 400);
    }
    // Blocked now: every login endpoint, good or bad requests alike.
    let (status, retry_after) = get(&world, BAD_CALLBACK);
    assert_eq!(status, 429);
    assert!(retry_after.is_some_and(|s| (1..=3).contains(&s)), "Retry-After: {retry_after:?}");
    assert_eq!(get(&world, "/nymgate/login/school-a").0, 429);
    let audit = world.last_login();
    assert_eq!(
        (audit["outcome"].as_str(), audit["reason"].as_str()),
        (Some("failed"), Some("blocked")),
        "{audit}"
    );
    let text = world.metrics();
    assert!(text.contains("nymgate_login_blocks_total 1"), "{text}");
    assert!(text.contains("nymgate_blocked_clients 1"), "{text}");
    assert!(
        text.contains(r#"nymgate_logins_total{protocol="none",outcome="failed",reason="blocked"} 2"#),
        "{text}"
    );
    // Public material stays public while blocked.
    assert_eq!(get(&world, "/nymgate/jwks").0, 200);
    // After block_for the client may try again, and a real login works.
    std::thread::sleep(std::time::Duration::from_millis(3_100));
    let page = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None);
    assert_eq!(page["status"], 200, "{page}");
    assert_eq!(world.last_login()["outcome"], "ok");
    // Nothing names the client beyond its reduced address.
    // The audit names the client by its reduced address only; the scan looks for the raw one.
    assert_eq!(audit["client"], "127.83.19.0", "{audit}");
    world.assert_no_personal_values(&[]);
}

#[test]
fn allowlisted_clients_are_never_blocked() {
    let world = World::start(Options {
        provider: false,
        blocking: "max_failures = 2\nallowlist = [\"127.0.0.0/8\", \"::1/128\"]",
        ..Options::default()
    });
    for _ in 0..6 {
        assert_eq!(get(&world, BAD_CALLBACK).0, 400);
    }
    assert!(world.metrics().contains("nymgate_login_blocks_total 0"));
}

#[test]
fn blocking_off_never_blocks() {
    let world = World::start(Options {
        provider: false,
        blocking: "enabled = false\nmax_failures = 1",
        ..Options::default()
    });
    for _ in 0..4 {
        assert_eq!(get(&world, BAD_CALLBACK).0, 400);
    }
}

#[test]
fn a_tenants_own_threshold_applies_to_its_logins() {
    // Default 2; the SAML school (pupils behind one NAT) allows 4.
    let world = World::start(Options {
        provider: false,
        saml: Some(SamlIdpKind::Samlify),
        saml_max_failed_logins: Some(4),
        blocking: "max_failures = 2",
        ..Options::default()
    });
    let not_xml = "bm90IFhNTA=="; // base64 of "not XML": fails after the flow names the tenant
    for attempt in 1..=4 {
        let flow = world.saml_begin();
        let answer = world.post_acs_form(Some(&flow), &[("SAMLResponse", not_xml)]);
        assert_eq!(answer.status, 400, "attempt {attempt}: {answer:?}");
        assert_eq!(world.last_login()["tenant"], "school-s");
    }
    assert_eq!(get(&world, "/nymgate/login/school-s").0, 429, "the fourth failure blocks");
}
