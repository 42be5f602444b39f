//! `nymgate loadtest` (issue 8) against a real `nymgate serve`, both as built: complete OIDC and
//! SAML logins with the built-in IdP, every token verified and every account number checked
//! against the keyring; the provider output with the load test as the platform; and a wrong
//! keyring, whose every login must count as an error (exit status 2), so the check can fail.
//! With `--idp external` the virtual browsers go through real school IdPs (node oidc-provider
//! and SimpleSAMLphp, as the login tests run them) and fill in their login forms.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::login::{alice_sub, free_port, wait_serving, Options, Peer, SamlIdpKind, World};
use serde_json::Value;

const NYMGATE: &str = env!("CARGO_BIN_EXE_nymgate");

fn nymgate(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(NYMGATE).args(args).current_dir(dir).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "nymgate {args:?}: {said}");
    out
}

/// A release-like setup: nymgate with the echo platform, the two load-test tenants, and the
/// load test's built-in IdP on its own port.
struct Rig {
    dir: tempfile::TempDir,
    url: String,
    admin: String,
    idp: String,
    _server: Peer,
}

impl Rig {
    fn start(provider: bool) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let (public, admin, idp) = (free_port(), free_port(), free_port());
        let url = format!("https://localhost:{public}");
        nymgate(path, &["certs", "dev", "--out", "certs"]);
        nymgate(path, &["certs", "saml", "--out", ".", "--entity-id", &format!("{url}/nymgate/saml")]);
        nymgate(path, &["keys", "signing", "--out", "signing.pem"]);
        for scope in ["loadtest-oidc", "loadtest-saml", "other"] {
            nymgate(
                path,
                &["keys", "new", "--keyring", "keyring.toml", "--scope", scope, "--audit", "keys.log"],
            );
        }
        for (name, secret) in [("seal.secret", "ab".repeat(32)), ("platform.secret", "cd".repeat(32))] {
            nymgate::certs::write(&path.join(name), secret.as_bytes(), 0o600).unwrap();
        }
        let output = if provider {
            format!(
                "output = \"provider\"\n[[login.clients]]\nclient_id = \"platform\"\nclient_secret = {{ file = \"platform.secret\" }}\nredirect_uris = [\"{url}/platform/callback\"]\n"
            )
        } else {
            "output = \"assertion_header\"\n".to_owned()
        };
        let mut config = format!(
            r#"[server]
listen = "127.0.0.1:{public}"
admin_listen = "127.0.0.1:{admin}"
cert_file = "certs/localhost.pem"
key_file = "certs/localhost-key.pem"
[log]
format = "json"
level = "info"
[audit]
file = "audit.log"
[pseudonyms]
keyring_file = "keyring.toml"
[login.signing]
key_file = "signing.pem"
[login.saml]
cert_file = "saml-sp.pem"
key_file = "saml-sp-key.pem"
[login]
public_url = "{url}"
seal_secret = {{ file = "seal.secret" }}
{output}"#
        );
        let idp = format!("127.0.0.1:{idp}");
        let snippet = nymgate(
            path,
            &["loadtest", "--url", &url, "--idp-listen", &idp, "--idp-dir", "idp", "--print-config"],
        );
        let snippet = String::from_utf8(snippet.stdout).unwrap();
        // The provider rig's SAML tenant sends unsigned AuthnRequests (the built-in IdP reads
        // them either way), so one test covers `sign_authn_requests = false` end to end.
        let snippet = if provider {
            snippet.replacen("name_id_format = ", "sign_authn_requests = false\nname_id_format = ", 1)
        } else {
            snippet
        };
        config.push_str(&snippet);
        std::fs::write(path.join("nymgate.toml"), config).unwrap();
        nymgate(path, &["check", "--config", "nymgate.toml"]);
        let child = Command::new(NYMGATE)
            .args(["serve", "--config", "nymgate.toml"])
            .current_dir(path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(path.join("nymgate.log")).unwrap())
            .spawn()
            .unwrap();
        let mut rig = Rig { url, admin: format!("http://127.0.0.1:{admin}"), idp, dir, _server: Peer(child) };
        if let Err(log) = wait_serving(&mut rig._server.0, &rig.dir.path().join("nymgate.log")) {
            panic!("{log}");
        }
        rig
    }

    /// Runs the load test; returns its exit code and JSON report.
    fn loadtest(&self, extra: &[&str]) -> (i32, Value) {
        let mut args = vec![
            "loadtest",
            "--url",
            &self.url,
            "--idp-listen",
            &self.idp,
            "--idp-dir",
            "idp",
            "--ca-file",
            "certs/dev-ca.pem",
            "--admin",
            &self.admin,
            "--warmup",
            "0s",
            "--concurrency",
            "4",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = Command::new(NYMGATE).args(&args).current_dir(self.dir.path()).output().unwrap();
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!("no JSON report: {}\n{}", String::from_utf8_lossy(&out.stderr), self.log())
        });
        (out.status.code().unwrap(), report)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nymgate.log")).unwrap_or_default()
    }
}

/// The checks every good run passes: exactly the logins asked for, none failed, each step
/// timed once per login, and nymgate's memory read.
fn assert_clean_run(report: &Value, logins: u64, requests: u64) {
    assert_eq!(report["logins"], logins, "{report:#}");
    assert_eq!(report["failed_logins"], 0, "{report:#}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report:#}");
    for step in ["login_start", "idp", "callback", "platform", "login"] {
        assert_eq!(report["latency"][step]["count"], logins, "{step}: {report:#}");
        assert!(report["latency"][step]["p50_ms"].as_f64().unwrap() > 0.0, "{step}: {report:#}");
    }
    if requests > 0 {
        assert_eq!(report["latency"]["request"]["count"], logins * requests, "{report:#}");
    }
    assert!(report["resident_memory_end_bytes"].as_u64().unwrap() > 1 << 20, "{report:#}");
}

#[test]
fn complete_oidc_and_saml_logins_under_load_are_verified_against_the_keyring() {
    let rig = Rig::start(false);
    for tenant in ["loadtest-oidc", "loadtest-saml"] {
        let (code, report) = rig.loadtest(&[
            "--tenant",
            tenant,
            "--logins",
            "40",
            "--requests",
            "2",
            "--keyring",
            "keyring.toml",
        ]);
        assert_eq!(code, 0, "{report:#}");
        assert_eq!(report["protocol"], if tenant == "loadtest-oidc" { "oidc" } else { "saml" });
        assert_clean_run(&report, 40, 2);
    }
    // nymgate audited every login as a success, and no load-test person's values reached its
    // logs: the platform got account numbers only.
    let audit = std::fs::read_to_string(rig.dir.path().join("audit.log")).unwrap();
    assert_eq!(audit.matches("\"outcome\":\"ok\"").count(), 80, "{audit}");
    let log = rig.log();
    for personal in ["@loadtest.example", "Nyberg", "loadtest-1\"", "19900101"] {
        assert!(!log.contains(personal) && !audit.contains(personal), "{personal} in nymgate's log");
    }
}

#[test]
fn open_loop_over_http2_runs_at_the_offered_rate() {
    let rig = Rig::start(false);
    let (code, report) = rig.loadtest(&[
        "--tenant",
        "loadtest-oidc",
        "--rate",
        "40",
        "--duration",
        "2s",
        "--http",
        "2",
        "--requests",
        "2",
        "--path",
        "/api/start",
        "--path",
        "/course/mixed",
    ]);
    assert_eq!(code, 0, "{report:#}");
    // The ordinary requests cycled through both paths (nymgate logs a path's first segment when
    // it is a route word, src/telemetry.rs).
    let log = rig.log();
    assert!(log.contains("\"path\":\"/api\"") && log.contains("\"path\":\"/course\""), "{log}");
    assert_eq!(report["mode"], "open");
    assert_eq!(report["http"], "2");
    // 40/s for 2 s: about 80 logins were due; allow for the schedule's edges.
    let logins = report["logins"].as_u64().unwrap();
    assert!((70..=90).contains(&logins), "{report:#}");
    assert_clean_run(&report, logins, 2);
}

#[test]
fn the_provider_output_is_loaded_with_the_load_test_as_the_platform() {
    let rig = Rig::start(true);
    let redirect = format!("{}/platform/callback", rig.url);
    let (code, report) = rig.loadtest(&[
        "--tenant",
        "loadtest-saml",
        "--logins",
        "30",
        "--requests",
        "0",
        "--output",
        "provider",
        "--client-id",
        "platform",
        "--client-secret-file",
        "platform.secret",
        "--redirect-uri",
        &redirect,
        "--keyring",
        "keyring.toml",
    ]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["output"], "provider");
    assert_clean_run(&report, 30, 0);
}

/// A load test that can't verify nymgate's certificate says how to trust it (issue 29): the
/// development CA through `--ca-file`. The rig's `--admin` is the URL form; `HOST:PORT` works
/// as for `nymgate health`.
#[test]
fn a_load_test_that_cannot_verify_the_certificate_suggests_ca_file() {
    let rig = Rig::start(false);
    let admin = rig.admin.trim_start_matches("http://").to_owned();
    let out = Command::new(NYMGATE)
        .args([
            "loadtest",
            "--url",
            &rig.url,
            "--idp-listen",
            &rig.idp,
            "--idp-dir",
            "idp",
            "--admin",
            &admin,
        ])
        .args(["--logins", "1"])
        .current_dir(rig.dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("TLS handshake failed") && stderr.contains("--ca-file"), "{stderr}");
}

/// The account-number check can fail: with another scope's key every login is an error.
#[test]
fn a_wrong_account_number_counts_as_a_failed_login() {
    let rig = Rig::start(false);
    let (code, report) = rig.loadtest(&[
        "--tenant",
        "loadtest-oidc",
        "--logins",
        "10",
        "--keyring",
        "keyring.toml",
        "--scope",
        "other",
    ]);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["logins"], 0, "{report:#}");
    assert_eq!(report["failed_logins"], 10, "{report:#}");
    assert_eq!(report["errors"]["platform: wrong account number"], 10, "{report:#}");
}

/// `--idp external` against the world's real IdP: the browsers fill in its login form (and
/// oidc-provider's consent form, SimpleSAMLphp's POST form) with its test person.
fn external_load(world: &World, tenant: &str) -> (i32, Value) {
    let people = world.dir.path().join("idp-people");
    std::fs::write(&people, format!("# the test IdP's person\n{}:x\n", alice_sub())).unwrap();
    let out = Command::new(NYMGATE)
        .args(["loadtest", "--idp", "external", "--idp-users-file"])
        .arg(&people)
        .args(["--tenant", tenant, "--url", &world.url(""), "--ca-file"])
        .arg(&world.ca)
        .args(["--logins", "6", "--concurrency", "2", "--warmup", "0s", "--requests", "1", "--json"])
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("no JSON report: {}\n{}", String::from_utf8_lossy(&out.stderr), world.log())
    });
    let code = out.status.code().unwrap();
    assert_eq!(code, 0, "{report:#}\n{}", String::from_utf8_lossy(&out.stderr));
    (code, report)
}

#[test]
fn an_external_oidc_idp_is_loaded_through_its_login_form() {
    let world = World::start(Options { provider: false, ..Options::default() });
    let (code, report) = external_load(&world, "school-a");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["protocol"], "external");
    assert_eq!(report["logins"], 6, "{report:#}");
    assert_eq!(report["latency"]["idp"]["count"], 6, "{report:#}");
    assert_eq!(world.audit().iter().filter(|l| l["outcome"] == "ok").count(), 6);
}

#[test]
fn an_external_saml_idp_is_loaded_through_its_login_form() {
    let world = World::start(Options {
        saml: Some(SamlIdpKind::SimpleSamlPhp),
        provider: false,
        ..Options::default()
    });
    let (code, report) = external_load(&world, "school-s");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["logins"], 6, "{report:#}");
    assert_eq!(world.audit().iter().filter(|l| l["outcome"] == "ok" && l["protocol"] == "saml").count(), 6);
}

/// Issue 9: the config reloaded five times (SIGHUP) while complete logins run, and once an
/// invalid file: not one login or request fails, and the invalid file is refused.
#[test]
fn config_reloads_under_load_fail_nothing_and_an_invalid_config_is_refused() {
    let rig = Rig::start(false);
    let path = rig.dir.path().join("nymgate.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    let hangup = || {
        let status = Command::new("kill").arg("-HUP").arg(rig._server.0.id().to_string()).status().unwrap();
        assert!(status.success());
    };
    let report = std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            rig.loadtest(&[
                "--tenant",
                "loadtest-oidc",
                "--duration",
                "8s",
                "--requests",
                "2",
                "--keyring",
                "keyring.toml",
            ])
        });
        for round in 0..6 {
            std::thread::sleep(Duration::from_millis(1000));
            let text = if round == 3 {
                // Broken: refused, the old config keeps serving.
                good.replace("[pseudonyms]", "[pseudonyms]\nno_such_field = 1")
            } else {
                format!("{good}\n[privacy]\nidentity_headers = [\"x-reload-{round}\"]\n")
            };
            std::fs::write(&path, text).unwrap();
            hangup();
        }
        load.join().unwrap()
    });
    let (code, report) = report;
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["failed_logins"], 0, "{report:#}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report:#}");
    assert!(report["logins"].as_u64().unwrap() > 20, "{report:#}");
    let metrics = Command::new("curl").arg("-s").arg(format!("{}/metrics", rig.admin)).output().unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(metrics.contains("nymgate_config_reloads_total{outcome=\"reloaded\"} 5"), "{metrics}");
    assert!(metrics.contains("nymgate_config_reloads_total{outcome=\"refused\"} 1"), "{metrics}");
    assert!(rig.log().contains("config not reloaded"), "{}", rig.log());
}
