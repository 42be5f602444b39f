//! Live reload (issue 9): the config file changes, nymgate is told (SIGHUP, `reload()`, or the
//! file's change noticed by itself), and the new config serves from the next request on, on
//! connections that stay open; an invalid file is refused with the old config kept; spent login
//! states stay spent across a reload. Reload under load is in tests/loadtest.rs.

mod common;

use std::time::Duration;

use common::login::{Options, World};
use common::*;
use http::Request;

fn upstream_config(url: &str, extra: &str) -> String {
    format!("[upstream]\nurl = \"{url}\"\nresponse_timeout = \"2s\"\nconnect_timeout = \"1s\"\n{extra}")
}

/// Rewrites the gateway's config file with `extra` after the fixed `[server]` part.
fn rewrite(gw: &Gateway, extra: &str) {
    let path = gw.dir.path().join("nymgate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let server = text.split("\n[upstream]").next().unwrap();
    std::fs::write(&path, format!("{server}\n{extra}\n")).unwrap();
}

fn with_school_user(uri: &str) -> Request<nymgate::body::Body> {
    get(uri).header("x-school-user", "alice").body(empty()).unwrap()
}

#[tokio::test]
async fn a_reload_reaches_open_connections_from_their_next_request() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(&upstream.url(), "")).await;
    let mut h1 = gw.h1().await;
    let mut h2 = gw.h2().await;
    let seen = echo(h1.send(with_school_user("/echo")).await).await;
    assert_eq!(header(&seen, "x-school-user"), Some("alice"), "not yet an identity header");

    rewrite(&gw, &upstream_config(&upstream.url(), "[privacy]\nidentity_headers = [\"x-school-user\"]\n"));
    gw.server.reload().await.unwrap();

    // The same connections, HTTP/1.1 and HTTP/2: the new rule applies.
    let seen = echo(h1.send(with_school_user("/echo")).await).await;
    assert_eq!(header(&seen, "x-school-user"), None);
    let request =
        Request::get("https://learn.example/echo").header("x-school-user", "alice").body(empty()).unwrap();
    assert_eq!(header(&echo(h2.send(request).await).await, "x-school-user"), None);
    let (_, metrics) = gw.admin_get("/metrics").await;
    assert!(metrics.contains("nymgate_config_reloads_total{outcome=\"reloaded\"} 1"), "{metrics}");
}

#[tokio::test]
async fn an_invalid_config_is_refused_and_the_old_one_keeps_serving() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(
        &upstream.url(),
        "[privacy]\nidentity_headers = [\"x-school-user\"]\n",
    ))
    .await;
    let mut h1 = gw.h1().await;
    for broken in [
        "[upstream]\nurl = \"ftp://platform\"\n", // a semantic problem
        "[upstream]\nurl = \"http://127.0.0.1:1\"\nbogus = 1\n", // an unknown field
        "[upstream\n",                            // not TOML
    ] {
        rewrite(&gw, broken);
        let error = gw.server.reload().await.unwrap_err();
        assert!(!error.to_string().is_empty());
        // Still the old config: the old platform, the old privacy rule.
        let seen = echo(h1.send(with_school_user("/echo")).await).await;
        assert_eq!((seen.path.as_str(), header(&seen, "x-school-user")), ("/echo", None));
    }
    let (_, metrics) = gw.admin_get("/metrics").await;
    assert!(metrics.contains("nymgate_config_reloads_total{outcome=\"refused\"} 3"), "{metrics}");
    assert_eq!(gw.admin_get("/readyz").await.0, 200);
}

#[tokio::test]
async fn a_changed_config_file_is_noticed_without_a_signal() {
    let upstream = Upstream::start().await;
    // The file is re-read at server.cert_reload_interval (the harness's [server] ends where
    // this text starts).
    let gw =
        Gateway::start(&format!("cert_reload_interval = \"1s\"\n{}", upstream_config(&upstream.url(), "")))
            .await;
    let mut h1 = gw.h1().await;
    rewrite(&gw, &upstream_config(&upstream.url(), "[privacy]\nidentity_headers = [\"x-school-user\"]\n"));
    let mut applied = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if header(&echo(h1.send(with_school_user("/echo")).await).await, "x-school-user").is_none() {
            applied = true;
            break;
        }
    }
    assert!(applied, "the changed file was never reloaded");
}

/// Renames school-a in the config file and reloads by SIGHUP; waits (bounded) for the reload.
fn rename_school_a_and_reload(world: &World) {
    let path = world.dir.path().join("nymgate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("name = \"Skola school-a\"", "name = \"Nya skolan A\"")).unwrap();
    world.signal("HUP");
    let reloaded = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        world.metrics().contains("nymgate_config_reloads_total{outcome=\"reloaded\"} 1")
    });
    assert!(reloaded, "no reload after SIGHUP:\n{}", world.log());
}

/// The real binary, told by SIGHUP: a tenant's new name shows at once, and a login state spent
/// before the reload is still spent after it (the single-use store is carried over).
#[test]
fn sighup_reloads_tenants_and_keeps_spent_states_spent() {
    let world = World::start(Options { provider: false, ..Options::default() });
    let callback = world.url("/nymgate/callback");
    let flow = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), Some(&callback));
    let url = flow["url"].as_str().unwrap();
    assert_eq!(world.get_with_jar(url, &flow["jar"]), 303);

    let path = world.dir.path().join("nymgate.toml");
    rename_school_a_and_reload(&world);

    let chooser = world.browse(&world.url("/nymgate/login"), None);
    let page = chooser["body"].as_str().unwrap();
    assert!(page.contains("Nya skolan A") && !page.contains("Skola school-a"), "{page}");
    assert_eq!(world.get_with_jar(url, &flow["jar"]), 400, "a spent state is spent after a reload too");
    assert_eq!(world.last_login()["reason"], "state_replayed");

    // A broken file: refused, logged by field, and the old config keeps serving.
    std::fs::write(
        &path,
        std::fs::read_to_string(&path).unwrap().replace("idp = \"oidc\"", "idp = \"carrier-pigeon\""),
    )
    .unwrap();
    world.signal("HUP");
    let refused = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        world.metrics().contains("nymgate_config_reloads_total{outcome=\"refused\"} 1")
    });
    assert!(refused, "no refusal after a broken file:\n{}", world.log());
    assert!(world.log().contains("config not reloaded"), "{}", world.log());
    let flow = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), Some(&callback));
    assert_eq!(world.get_with_jar(flow["url"].as_str().unwrap(), &flow["jar"]), 303, "logins go on");
    world.assert_no_personal_values(&[]);
}

/// Without a configured seal secret and signing key (the first-run default, and `demo`), a
/// reload keeps everyone signed in: a login started before it completes after it, and the
/// token-signing key the JWKS publishes stays the same (each reload drew new ones before, so
/// onboarding a school ended every pending login, session and token).
#[test]
fn a_reload_without_configured_secrets_keeps_pending_logins_and_the_signing_key() {
    let world = World::start(Options { provider: false, no_seal_secret: true, ..Options::default() });
    let jwks = |world: &World| {
        let flow = world.browse(&world.url("/nymgate/jwks"), None);
        flow["body"].as_str().unwrap_or_default().to_owned()
    };
    let before = jwks(&world);
    assert!(before.contains("\"kid\""), "{before}");
    let callback = world.url("/nymgate/callback");
    let flow = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), Some(&callback));
    let url = flow["url"].as_str().unwrap();

    let text = std::fs::read_to_string(world.dir.path().join("nymgate.toml")).unwrap();
    assert!(!text.contains("seal_secret"), "{text}");
    rename_school_a_and_reload(&world);

    assert_eq!(
        world.get_with_jar(url, &flow["jar"]),
        303,
        "a login started before the reload failed after it"
    );
    assert_eq!(world.last_login()["outcome"], "ok");
    assert_eq!(jwks(&world), before, "the signing key changed at a reload");
    world.assert_no_personal_values(&[]);
}

/// A browser signed in before a reload that changes tenants stays signed in after it, without a
/// configured seal secret (the demo's case): its session cookie opens under the process's seal
/// secret, which a reload keeps (issue 29: each reload drew a new one and signed everyone out).
#[test]
fn a_signed_in_browser_session_survives_a_reload_that_changes_tenants() {
    let world = World::start(Options { provider: false, no_seal_secret: true, ..Options::default() });
    let signed_in = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None);
    let me = |jar: &serde_json::Value| {
        world.browse_with_jar(&world.url("/nymgate/me"), None, jar)["body"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let before = me(&signed_in["jar"]);
    assert!(before.contains("v1-"), "not signed in before the reload: {before}");
    rename_school_a_and_reload(&world);
    let after = me(&signed_in["jar"]);
    assert!(after.contains("v1-") && !after.contains("not signed in"), "signed out by the reload: {after}");
    assert!(after.contains("Nya skolan A") || after.contains("school-a"), "{after}");
    world.assert_no_personal_values(&[]);
}
