//! `check` means `serve` (issue 29): every config in tests/check_corpus/ has one defect, named by
//! its file name, and both `nymgate check` and `nymgate serve` refuse it, each naming the same
//! field (the file's `# both say:` line). A config check passed and serve refused would stop a
//! deployment at start; one serve started and check refused would make check useless.
//!
//! Each config runs in a folder with what a deployment has: dev certificates (`certs/`), a
//! keyring with scope school-a (mode 0600, and a copy others can read), a 32-byte and an 8-byte
//! secret file, and a 1024-bit RSA certificate.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn nymgate(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nymgate")).args(args).current_dir(dir).output().unwrap()
}

fn private(path: &Path, bytes: &[u8], mode: u32) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// The deployment folder every corpus config runs in.
fn deployment() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    assert!(nymgate(&["certs", "dev", "--out", "certs"], path).status.success());
    let keys = nymgate(&["keys", "new", "--keyring", "keyring.toml", "--scope", "school-a"], path);
    assert!(keys.status.success(), "{}", String::from_utf8_lossy(&keys.stderr));
    let ring = std::fs::read(path.join("keyring.toml")).unwrap();
    private(&path.join("keyring-open.toml"), &ring, 0o644);
    private(&path.join("secret-ok"), &[b'k'; 32], 0o600);
    private(&path.join("secret-short"), b"8 bytes!", 0o600);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rsa1024-cert.pem");
    std::fs::copy(fixture, path.join("rsa1024-cert.pem")).unwrap();
    dir
}

/// `nymgate serve` on `config`: its exit and its standard error, or `None` if it started
/// serving (it is stopped then).
fn serve(config: &Path, dir: &Path) -> Option<(bool, String)> {
    let stderr = dir.join("serve.stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nymgate"))
        .args(["serve", "--config"])
        .arg(config)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some((status.success(), std::fs::read_to_string(&stderr).unwrap()));
        }
        if Instant::now() > deadline || std::fs::read_to_string(&stderr).unwrap().contains("serving") {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The corpus's configs without their defect: check passes both, and serve starts the first (the
/// second's IdP is not reachable here, so serve would stop at discovery). Without this control
/// every config could be refused for something the corpus shares.
const SERVER_BASE: &str = "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ncert_file = \"certs/localhost.pem\"\nkey_file = \"certs/localhost-key.pem\"\n";
const LOGIN_BASE: &str = "[pseudonyms]\nkeyring_file = \"keyring.toml\"\n[login]\npublic_url = \"https://localhost:8443\"\n[[login.clients]]\nclient_id = \"platform\"\nclient_secret = { file = \"secret-ok\" }\nredirect_uris = [\"https://platform.example/cb\"]\n[[tenants]]\nid = \"school-a\"\nidp = \"oidc\"\nissuer = \"https://idp.school-a.example\"\n[tenants.oidc]\nclient_id = \"nymgate\"\nclient_secret = { file = \"secret-ok\" }\n";

#[test]
fn the_corpus_configs_without_their_defect_pass_check_and_serve_starts() {
    let deployment = deployment();
    let dir = deployment.path();
    let server = dir.join("server.toml");
    std::fs::write(&server, SERVER_BASE).unwrap();
    let login = dir.join("login.toml");
    std::fs::write(&login, format!("{SERVER_BASE}{LOGIN_BASE}")).unwrap();
    for config in [&server, &login] {
        let checked = nymgate(&["check", "--config", config.to_str().unwrap()], dir);
        assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stdout));
    }
    assert!(serve(&server, dir).is_none(), "serve did not start on the server-only base");
}

#[test]
fn check_and_serve_refuse_every_config_of_the_corpus_naming_the_same_field() {
    let files = corpus();
    assert!(files.len() >= 20, "the corpus holds at least 20 broken configs: {}", files.len());
    let deployment = deployment();
    let dir = deployment.path();
    let mut disagreements = Vec::new();
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# both say: "))
            .unwrap_or_else(|| panic!("{name}: no `# both say:` line"))
            .to_owned();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, &text).unwrap();
        let checked = nymgate(&["check", "--config", config.to_str().unwrap()], dir);
        let check_said =
            String::from_utf8_lossy(&checked.stdout).into_owned() + &String::from_utf8_lossy(&checked.stderr);
        if checked.status.success() || !check_said.contains(&expect) {
            disagreements.push(format!(
                "{name}: check {} without naming {expect:?}:\n{check_said}",
                if checked.status.success() { "passed" } else { "refused" }
            ));
        }
        match serve(&config, dir) {
            None => disagreements.push(format!("{name}: serve started")),
            Some((true, said)) => disagreements.push(format!("{name}: serve exited 0: {said}")),
            Some((false, said)) if !said.contains(&expect) => {
                disagreements.push(format!("{name}: serve refused without naming {expect:?}:\n{said}"))
            }
            Some(_) => {}
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreement(s):\n\n{}",
        disagreements.len(),
        disagreements.join("\n\n")
    );
}

/// Every problem of a file at once, from every stage: a type error serde stops at, the field
/// checks, and what only building finds (a certificate file that is no certificate, a weak CA).
#[test]
fn check_reports_every_problem_of_a_file_at_once() {
    let deployment = deployment();
    let dir = deployment.path();
    let config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_corpus/many_problems_in_one_file.toml");
    let out = nymgate(&["check", "--config", config.to_str().unwrap()], dir);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    for field in ["server.workers", "limits.max_connections", "log.level"] {
        assert!(said.contains(&format!("- {field}")), "{field} missing from:\n{said}");
    }
    // What only building finds is found once the fields read: here, without the type error.
    let fixed = std::fs::read_to_string(&config).unwrap().replace("workers = -1\n", "");
    let second = dir.join("many-fixed.toml");
    std::fs::write(&second, fixed).unwrap();
    let out = nymgate(&["check", "--config", second.to_str().unwrap()], dir);
    let said = String::from_utf8_lossy(&out.stdout);
    for field in ["limits.max_connections", "log.level", "server.cert_file", "upstream.ca_file"] {
        assert!(said.contains(&format!("- {field}")), "{field} missing from:\n{said}");
    }
    assert!(said.contains("4 problem(s)"), "{said}");
}
