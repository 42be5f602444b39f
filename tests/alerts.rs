//! Alerts through the real binary (issue 6, docs/ALERTS.md): signature failures, replays, guard
//! trips and blocked clients raise an alert (an error-level log line and a metric), and the
//! webhook receives it signed. The receiver (tests/peers/webhook_receiver.mjs) verifies each
//! delivery with npm `standardwebhooks`, the scheme's reference library, not with our code. A
//! failed delivery is retried under the same id; a webhook that never answers does not hold up a
//! login.

mod common;

use common::login::{Options, World};
use serde_json::{json, Value};

const LOGIN: &str = "/nymgate/login/school-a?return_to=/echo";

/// The deliveries' bodies, once at least `n` have arrived (deliveries are asynchronous by
/// design; this waits for an event, it does not time anything).
fn deliveries(world: &World, n: usize) -> Vec<Value> {
    let webhook = world.webhook.as_ref().unwrap();
    for _ in 0..200 {
        let received = webhook.received(world);
        if received.len() >= n {
            return received;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("fewer than {n} deliveries: {:?}\n{}", webhook.received(world), world.log());
}

/// nymgate's error-level alert lines.
fn alert_lines(world: &World) -> Vec<Value> {
    world
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["level"] == "ERROR" && l.get("alert").is_some())
        .collect()
}

/// One login whose ID token the IdP tampers with (a failed signature), after a good one.
fn forged_login(world: &World) {
    world.idp.hook(world, "tamper", json!({"mode": "bad_signature"}));
    let page = world.browse(&world.url(LOGIN), None);
    assert_eq!(page["status"], 400, "{page}");
    assert_eq!(world.last_login()["reason"], "bad_signature");
}

#[test]
fn signature_failures_raise_an_alert_that_the_webhook_receives_signed() {
    let world = World::start(Options {
        provider: false,
        alerts: "signature_failure = 2",
        webhook: Some("retry_backoff = \"100ms\""),
        ..Options::default()
    });
    assert_eq!(world.browse(&world.url(LOGIN), None)["status"], 200);
    forged_login(&world);
    assert!(alert_lines(&world).is_empty(), "one failure is under the threshold of 2");
    forged_login(&world);

    let lines = alert_lines(&world);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(
        (line["alert"].as_str(), line["tenant"].as_str(), line["count"].as_u64()),
        (Some("signature_failure"), Some("school-a"), Some(2)),
        "{line}"
    );

    let received = deliveries(&world, 1);
    let delivery = &received[0];
    assert_eq!(delivery["verified"], true, "standardwebhooks verified it: {delivery}");
    assert_eq!(delivery["status"], 200);
    assert_eq!(delivery["id"], line["alert_id"], "the log line and the delivery share an id");
    let body: Value = serde_json::from_str(delivery["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["type"], "nymgate.alert");
    assert_eq!(
        (body["data"]["kind"].as_str(), body["data"]["tenant"].as_str(), body["data"]["reason"].as_str()),
        (Some("signature_failure"), Some("school-a"), Some("bad_signature")),
        "{body}"
    );

    let text = world.metrics();
    assert!(text.contains(r#"nymgate_alerts_total{kind="signature_failure"} 1"#), "{text}");
    // A delivery is counted once the receiver's answer is read; wait for the counter.
    for _ in 0..100 {
        if world.metrics().contains(r#"nymgate_alert_webhook_deliveries_total{result="delivered"} 1"#) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        world.metrics().contains(r#"nymgate_alert_webhook_deliveries_total{result="delivered"} 1"#),
        "{}",
        world.metrics()
    );
    world.assert_no_personal_values(&[]);
}

#[test]
fn a_failed_delivery_is_retried_under_the_same_id_and_signed_anew() {
    // The default threshold for guard trips is 1: a policy that leaks alerts at once.
    let email = common::login::ALICE.iter().find(|(k, _)| *k == "email").unwrap().1;
    let world = World::start(Options {
        provider: false,
        school_value: email,
        webhook: Some("retry_backoff = \"200ms\""),
        ..Options::default()
    });
    world.webhook.as_ref().unwrap().set(&world, "fail_first");
    let page = world.browse(&world.url(LOGIN), None);
    assert_eq!(page["status"], 403, "{page}");
    assert_eq!(world.last_login()["reason"], "guard_tripped");

    let received = deliveries(&world, 2);
    assert_eq!(received.len(), 2, "{received:?}");
    let (first, second) = (&received[0], &received[1]);
    assert_eq!((first["status"].as_u64(), second["status"].as_u64()), (Some(503), Some(200)));
    assert_eq!(first["id"], second["id"], "a retry keeps its webhook-id, so the receiver can drop repeats");
    assert!(first["verified"] == true && second["verified"] == true, "{received:?}");
    let body: Value = serde_json::from_str(second["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (body["data"]["kind"].as_str(), body["data"]["count"].as_u64()),
        (Some("guard_trip"), Some(1))
    );
    assert!(world.log().contains("alert webhook attempt failed"), "the failed attempt is logged");
    world.assert_no_personal_values(&[("error page", page["body"].as_str().unwrap())]);
}

#[test]
fn a_slow_webhook_does_not_slow_logins() {
    let world = World::start(Options {
        provider: false,
        alerts: "signature_failure = 1",
        webhook: Some("timeout = \"120s\""),
        ..Options::default()
    });
    let webhook = world.webhook.as_ref().unwrap();
    webhook.set(&world, "hold");
    assert_eq!(world.browse(&world.url(LOGIN), None)["status"], 200);
    forged_login(&world);
    // The receiver holds the delivery open, unanswered...
    let held = deliveries(&world, 1);
    assert_eq!(held[0]["held"], true, "{held:?}");

    // ...and logins go on.
    for _ in 0..3 {
        let page = world.browse(&world.url(LOGIN), None);
        assert_eq!(page["status"], 200, "{page}");
        assert_eq!(world.last_login()["outcome"], "ok");
    }
    let received = webhook.received(&world);
    assert!(
        received.len() == 1 && received[0]["held"] == true,
        "the logins finished while the delivery was still unanswered: {received:?}"
    );

    webhook.set(&world, "release");
    let done = webhook.received(&world);
    assert_eq!(done[0]["status"], 200, "{done:?}");
    world.assert_no_personal_values(&[]);
}

#[test]
fn replays_and_blocked_clients_raise_alerts_without_a_webhook() {
    let world = World::start(Options {
        provider: false,
        alerts: "replay = 1",
        blocking: "max_failures = 3",
        ..Options::default()
    });
    let callback = world.url("/nymgate/callback");
    let flow = world.browse(&world.url(LOGIN), Some(&callback));
    let url = flow["url"].as_str().unwrap();
    assert_eq!(world.get_with_jar(url, &flow["jar"]), 303);
    assert_eq!(world.get_with_jar(url, &flow["jar"]), 400);
    assert_eq!(world.last_login()["reason"], "state_replayed");
    // Failures are counted per tenant: three with no tenant known block the client.
    for _ in 0..3 {
        assert_eq!(world.get_with_jar(&world.url("/nymgate/callback?state=forged&code=x"), &json!({})), 400);
    }
    let kinds: Vec<(String, Option<String>)> = alert_lines(&world)
        .iter()
        .map(|l| (l["alert"].as_str().unwrap().to_owned(), l["tenant"].as_str().map(str::to_owned)))
        .collect();
    assert_eq!(
        kinds,
        [("replay".to_owned(), Some("school-a".to_owned())), ("client_blocked".to_owned(), None)],
        "{}",
        world.log()
    );
    let text = world.metrics();
    assert!(text.contains(r#"nymgate_alerts_total{kind="replay"} 1"#), "{text}");
    assert!(text.contains(r#"nymgate_alerts_total{kind="client_blocked"} 1"#), "{text}");
    world.assert_no_personal_values(&[]);
}
