//! The `nymgate` binary: `certs dev`, `check`, and `serve` as ops run it, with its logs scanned
//! for values that must never appear there.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn nymgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nymgate"))
}

fn dev_certs(dir: &Path) {
    let out = nymgate().args(["certs", "dev", "--out"]).arg(dir.join("certs")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

const VALID: &str = "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ncert_file = \"certs/localhost.pem\"\nkey_file = \"certs/localhost-key.pem\"\n";

#[test]
fn certs_dev_writes_a_private_key() {
    let dir = tempfile::tempdir().unwrap();
    dev_certs(dir.path());
    for file in ["dev-ca.pem", "localhost.pem", "localhost-key.pem"] {
        assert!(dir.path().join("certs").join(file).exists(), "{file}");
    }
    let mode = std::fs::metadata(dir.path().join("certs/localhost-key.pem")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn certs_saml_writes_an_rsa_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        nymgate()
            .args(["certs", "saml", "--entity-id", "https://learn.example/nymgate/saml", "--out"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mode = std::fs::metadata(dir.path().join("saml-sp-key.pem")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(std::fs::read_to_string(dir.path().join("saml-sp.pem")).unwrap().contains("BEGIN CERTIFICATE"));
    // The IdPs trust that key: a second run must not replace it.
    let again = run();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not replaced"));
}

#[test]
fn check_accepts_a_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    dev_certs(dir.path());
    std::fs::write(dir.path().join("nymgate.toml"), VALID).unwrap();
    let out = nymgate().arg("check").arg("--config").arg(dir.path().join("nymgate.toml")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
}

/// Secret files as Kubernetes mounts them with `fsGroup` (0440, the pod's group) and as the
/// systemd unit's steps install them (0640, group nymgate): `check` takes a key whose group is
/// the process's own, and still refuses one a group nymgate is not in may read
/// (src/config/file_access.rs).
#[test]
fn check_takes_a_secret_file_readable_by_its_own_group_only() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    dev_certs(dir.path());
    let key = dir.path().join("certs/localhost-key.pem");
    std::fs::write(dir.path().join("nymgate.toml"), VALID).unwrap();
    let check =
        || nymgate().arg("check").arg("--config").arg(dir.path().join("nymgate.toml")).output().unwrap();
    // Made by this process: its owner and its effective group (the tempdir has no setgid bit).
    assert_eq!(std::fs::metadata(&key).unwrap().gid(), rustix::process::getegid().as_raw());
    for mode in [0o440, 0o640] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = check();
        assert!(out.status.success(), "{mode:o}: {}", String::from_utf8_lossy(&out.stdout));
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o460)).unwrap();
    let out = check();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stdout).contains("server.key_file"));
    // A group nymgate is not in: only root may hand the file to one.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o440)).unwrap();
    let stranger = 54_321;
    if std::os::unix::fs::chown(&key, None, Some(stranger)).is_ok() {
        let out = check();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success() && stdout.contains("which nymgate"), "{stdout}");
    }
}

#[test]
fn check_names_every_bad_field_and_what_fixes_it() {
    let dir = tempfile::tempdir().unwrap();
    dev_certs(dir.path());
    std::fs::set_permissions(
        dir.path().join("certs/localhost-key.pem"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let text = format!(
        "{VALID}\n[upstream]\nurl = \"ftp://platform/\"\n\n[client_ip]\nipv4_prefix = 33\ntrusted_proxies = [\"10.0.0.0/8\"]\n"
    );
    std::fs::write(dir.path().join("nymgate.toml"), text).unwrap();
    let out = nymgate().arg("check").arg("--config").arg(dir.path().join("nymgate.toml")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3 problem(s)"), "{stdout}");
    assert!(stdout.contains("server.key_file") && stdout.contains("chmod 600"), "{stdout}");
    assert!(stdout.contains("upstream.url") && stdout.contains("http or https"), "{stdout}");
    assert!(stdout.contains("client_ip.ipv4_prefix"), "{stdout}");
}

/// Tenants that share one IdP (issue 26): `check` refuses them while an IdP-initiated login
/// could reach either without a `select`, and explains how each login is filed once it can.
#[test]
fn check_explains_shared_issuers_and_refuses_them_without_select() {
    let dir = tempfile::tempdir().unwrap();
    dev_certs(dir.path());
    let tenant = |id: &str, issuer: &str, select: bool| {
        let select = if select {
            format!("[tenants.select]\nattribute = \"eduPersonPrincipalName\"\nvalues = [\"{id}.no\"]\n")
        } else {
            String::new()
        };
        format!(
            "[[tenants]]\nid = \"{id}\"\nidp = \"saml\"\nissuer = \"{issuer}\"\n{select}\
             [tenants.saml]\nsso_url = \"https://idp.feide.example/sso\"\nallow_unsolicited = true\n\
             certificate_files = [\"certs/localhost.pem\"]\n"
        )
    };
    for scope in ["skole-a", "skole-b"] {
        let keyring = dir.path().join("keyring.toml");
        let made =
            nymgate().args(["keys", "new", "--keyring"]).arg(&keyring).args(["--scope", scope]).output();
        assert!(made.unwrap().status.success());
    }
    let check = |text: String| {
        std::fs::write(dir.path().join("nymgate.toml"), text).unwrap();
        let out =
            nymgate().arg("check").arg("--config").arg(dir.path().join("nymgate.toml")).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let valid = format!("{VALID}[pseudonyms]\nkeyring_file = \"keyring.toml\"\n");
    let (code, stdout) = check(format!(
        "{valid}\n{}{}",
        tenant("skole-a", "https://idp.feide.example", false),
        tenant("skole-b", "https://idp.feide.example", false)
    ));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("tenants[0].select") && stdout.contains("tenants[1].select"), "{stdout}");
    let (code, stdout) = check(format!(
        "{valid}\n{}{}",
        tenant("skole-a", "https://idp.feide.example", true),
        tenant("skole-b", "https://idp.feide.example", true)
    ));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("note: tenants skole-a, skole-b share the issuer https://idp.feide.example")
            && stdout.contains("eduPersonPrincipalName"),
        "{stdout}"
    );
}

#[test]
fn check_refuses_unknown_fields_by_name() {
    let dir = tempfile::tempdir().unwrap();
    dev_certs(dir.path());
    std::fs::write(dir.path().join("nymgate.toml"), format!("{VALID}\n[limits]\nmax_conections = 5\n"))
        .unwrap();
    let out = nymgate().arg("check").arg("--config").arg(dir.path().join("nymgate.toml")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("max_conections"), "{stdout}");
}

/// Starts `nymgate serve` with trace logging, behind a pretend load balancer on 127.0.0.0/8,
/// sends requests full of values that must not be logged, stops it with SIGTERM and scans what
/// it wrote.
#[tokio::test]
async fn serve_logs_no_raw_ip_query_cookie_or_credential() {
    let dir = tempfile::tempdir().unwrap();
    dev_certs(dir.path());
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let public_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{public_port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\ncert_file = \"certs/localhost.pem\"\nkey_file = \"certs/localhost-key.pem\"\npublic_hosts = [\"learn.example\", \"localhost\"]\n[client_ip]\ntrusted_proxies = [\"127.0.0.0/8\"]\n[log]\nlevel = \"trace\"\n"
    );
    std::fs::write(dir.path().join("nymgate.toml"), config).unwrap();
    // Logs go to a file: trace output outgrows a pipe's buffer and would block the server.
    let log_path = dir.path().join("nymgate.log");
    let mut child = nymgate()
        .arg("serve")
        .arg("--config")
        .arg(dir.path().join("nymgate.toml"))
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{public_port}").parse().unwrap();
    let ca = dir.path().join("certs/dev-ca.pem");
    if let Err(log) = common::login::wait_serving(&mut child, &log_path) {
        panic!("{log}");
    }

    let mut h1 = H1::connect(addr, &ca).await;
    let request = get(
        "/users/alice.student@school.example/profile?email=alice.student%40school.example&token=s3cr3t-query",
    )
    .header("x-forwarded-for", "198.51.100.23")
    .header("cookie", "session=c00kie-value")
    .header("authorization", "Bearer auth-value-123")
    .header("x-forwarded-email", "alice.student@school.example")
    .body(empty())
    .unwrap();
    let seen = echo(h1.send(request).await).await;
    assert_eq!(header(&seen, "x-forwarded-for"), Some("198.51.100.0"));
    let mut h2 = H2::connect(addr, &ca).await;
    let request =
        http::Request::get("https://learn.example/h2/alice.student@school.example?token=s3cr3t-query")
            .header("x-forwarded-for", "198.51.100.23")
            .header("cookie", "session=c00kie-value")
            .header("authorization", "Bearer auth-value-123")
            .body(empty())
            .unwrap();
    let seen = echo(h2.send(request).await).await;
    assert_eq!(header(&seen, "x-forwarded-for"), Some("198.51.100.0"));
    drop(h2);
    let mut raw = tls_connect(addr, &ca, &[b"http/1.1"]).await.unwrap();
    let _ = raw_exchange(
        &mut raw,
        b"GET /?q=bad-host-query HTTP/1.1\r\nHost: evil/198.51.100.23\r\nX-Forwarded-For: 198.51.100.23\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    drop(h1);

    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "exit {exit:?}");
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.contains("\"message\":\"request\""), "no request log lines at all:\n{logs}");
    assert!(logs.contains("198.51.100.0"), "the reduced IP should be logged:\n{logs}");
    assert!(logs.contains("nymgate stopped"), "{logs}");
    for secret in [
        "198.51.100.23",
        "alice.student",
        "school.example",
        "s3cr3t-query",
        "bad-host-query",
        "c00kie-value",
        "auth-value-123",
    ] {
        assert!(!logs.contains(secret), "{secret} appears in the log:\n{logs}");
    }
}

/// Pretty logs written to a file (journald, a redirect) carry no colour codes, and the start-up
/// line says what it means, not a Rust value such as `None` (issue 29).
#[test]
fn pretty_logs_in_a_file_have_no_colour_codes_and_no_rust_values() {
    let dir = tempfile::tempdir().unwrap();
    dev_certs(dir.path());
    std::fs::write(dir.path().join("nymgate.toml"), format!("{VALID}[log]\nformat = \"pretty\"\n")).unwrap();
    let log_path = dir.path().join("nymgate.log");
    let child = nymgate()
        .args(["serve", "--config"])
        .arg(dir.path().join("nymgate.toml"))
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut child = common::login::Peer(child);
    if let Err(log) = common::login::wait_serving(&mut child.0, &log_path) {
        panic!("{log}");
    }
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.contains('\x1b'), "colour codes in a file: {log:?}");
    let start = log.lines().find(|l| l.contains("nymgate serving")).unwrap();
    assert!(start.contains("redirect=off"), "{start}");
    assert!(!start.contains("None") && !start.contains("Some("), "{start}");
}

#[tokio::test]
async fn health_answers_from_the_admin_listener_for_container_checks() {
    let gw = Gateway::start("").await;
    let admin = gw.server.admin_addr.to_string();
    let run = move |args: Vec<String>| {
        tokio::task::spawn_blocking(move || nymgate().arg("health").args(args).output().unwrap())
    };
    let live = run(vec!["--admin".into(), admin.clone()]).await.unwrap();
    assert!(live.status.success(), "{}", String::from_utf8_lossy(&live.stderr));
    let ready = run(vec!["--admin".into(), admin.clone(), "--ready".into()]).await.unwrap();
    assert!(ready.status.success(), "{}", String::from_utf8_lossy(&ready.stderr));
    // The form `loadtest --admin` takes works here too (issue 29: one form for both).
    let url = run(vec!["--admin".into(), format!("http://{admin}/")]).await.unwrap();
    assert!(url.status.success(), "{}", String::from_utf8_lossy(&url.stderr));
    // Nothing listening: a failure, with the reason on stderr.
    let closed = format!("127.0.0.1:{}", common::login::free_port());
    let down = run(vec!["--admin".into(), closed]).await.unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("/healthz"));
}

/// The compose trial without Docker: `nymgate demo --idp-only` writes the demo's files and
/// serves the IdP, and `nymgate serve` runs deploy/compose/nymgate.toml against them (its IdP
/// address and folder moved to loopback, the memory store for Redis): the config checks, and a
/// login at a demo school is sent to the demo IdP.
#[test]
fn the_compose_trial_config_serves_logins_against_demo_idp_only() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("demo");
    let (idp_port, public, admin) =
        (common::login::free_port(), common::login::free_port(), common::login::free_port());
    let idp_url = format!("https://localhost:{idp_port}");
    let public_url = format!("https://localhost:{public}");
    let _idp = common::login::Peer(
        nymgate()
            .args(["demo", "--idp-only", "--dir"])
            .arg(&files)
            .args([
                "--idp-listen",
                &format!("127.0.0.1:{idp_port}"),
                "--idp-url",
                &idp_url,
                "--public-url",
                &public_url,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let listening = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", idp_port)).is_ok()
    });
    assert!(listening, "the demo IdP never listened");
    assert!(files.join("tenants.toml").exists());

    let compose =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/compose/nymgate.toml"))
            .unwrap();
    let store = compose.split("[store]").nth(1).unwrap().split("\n[").next().unwrap();
    let config = compose
        .replace(&format!("[store]{store}"), "")
        .replace("/srv/nymgate-demo/", &format!("{}/", files.display()))
        .replace("https://idp.localhost:9443", &idp_url)
        .replace("https://localhost:8443", &public_url)
        .replace("listen = \"0.0.0.0:8443\"", &format!("listen = \"127.0.0.1:{public}\""))
        .replace("admin_listen = \"127.0.0.1:9090\"", &format!("admin_listen = \"127.0.0.1:{admin}\""));
    let path = dir.path().join("nymgate.toml");
    std::fs::write(&path, config).unwrap();
    let check = nymgate().args(["check", "--config"]).arg(&path).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    let _nymgate = common::login::Peer(
        nymgate()
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let up = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", public)).is_ok()
    });
    assert!(up, "nymgate never listened");
    // curl (a Debian test peer) trusts the demo's CA: the login start redirects to the IdP.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--cacert"])
        .arg(files.join("certs/dev-ca.pem"))
        .arg(format!("{public_url}/nymgate/login/nordskolan"))
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(answer.starts_with("303 ") && answer.contains(&format!("{idp_url}/nordskolan/")), "{answer}");
    // And the IdP answers its discovery with the issuer nymgate was configured with.
    let discovery = Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(files.join("certs/dev-ca.pem"))
        .arg(format!("{idp_url}/nordskolan/.well-known/openid-configuration"))
        .output()
        .unwrap();
    let discovery: serde_json::Value = serde_json::from_slice(&discovery.stdout).unwrap();
    assert_eq!(discovery["issuer"], format!("{idp_url}/nordskolan"));
}

/// The public port is nymgate's alone: a second `nymgate serve` on an address a running nymgate
/// listens on stops at once with a clear message (SO_REUSEPORT would otherwise let it join, and
/// requests would alternate between the two without an error).
#[tokio::test]
async fn a_second_serve_on_the_same_port_fails_to_start() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&format!("[upstream]\nurl = \"{}\"\n", upstream.url())).await;
    let dir = tempfile::tempdir().unwrap();
    dev_certs(dir.path());
    let config =
        VALID.replace("listen = \"127.0.0.1:0\"\nadmin", &format!("listen = \"{}\"\nadmin", gw.addr()));
    assert!(config.contains(&gw.addr().to_string()));
    std::fs::write(dir.path().join("nymgate.toml"), config).unwrap();
    let dir_path = dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = nymgate()
            .args(["serve", "--config", "nymgate.toml"])
            .current_dir(&dir_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Bounded: a serve that started after all is stopped after 10 s, and fails the test.
        for _ in 0..100 {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second nymgate started on {}", gw.addr());
    assert!(stderr.contains("another process already listens on"), "{stderr}");
    // The first one still serves.
    let mut h1 = gw.h1().await;
    assert_eq!(h1.send(get("/echo").body(empty()).unwrap()).await.status(), 200);
}
