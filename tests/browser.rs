//! `nymgate demo` in a real browser (issue 7): headless Debian Chromium, driven by playwright-core
//! (tests/peers/demo_browser.mjs), runs the README's first command as a newcomer would. It opens
//! the platform, is sent to the school chooser, searches, signs in through the demo school IdP's
//! form, lands on the platform, and reads the transparency and signed-out pages. The platform
//! must show the account number nymgate derives for that person (recomputed here from the demo's
//! keyring) and the role, and no page, log line or audit line may hold the person's name, email,
//! personal identity number or IdP subject. Every page's fields must have labels and its images
//! alt text, and in English the school is chosen with the keyboard alone. With JavaScript on,
//! off, in Swedish, and through the SAML school. Screenshots of every page are kept in `target/browser-artifacts/{variant}/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::login::{free_port, peers_dir, Peer};
use nymgate::demo::{SCHOOLS, USERS};
use serde_json::Value;

struct Demo {
    dir: tempfile::TempDir,
    url: String,
    _process: Peer,
}

impl Demo {
    /// `nymgate demo` as the README runs it, with its folder and ports chosen by the test.
    fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_nymgate"))
            .args(["demo", "--dir"])
            .arg(dir.path())
            .args(["--port", &port.to_string(), "--admin-port", &admin.to_string()])
            .env_remove("RUST_LOG")
            .stdout(std::fs::File::create(dir.path().join("demo.out")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("demo.err")).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut demo = Demo { url: format!("https://localhost:{port}/"), dir, _process: Peer(child) };
        for _ in 0..200 {
            if demo.file("demo.out").contains("nymgate demo is running") {
                return demo;
            }
            if demo._process.0.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nymgate demo did not start: {}", demo.file("demo.err"));
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// The browser's walk through the demo; panics with its error and the demo's log.
    fn browse(&self, variant: &str, login: &str, search: &str) -> Value {
        let artifacts = artifacts(variant);
        let out = Command::new("node")
            .arg(peers_dir().join("demo_browser.mjs"))
            .args([&self.url, artifacts.to_str().unwrap(), variant, login, search])
            .current_dir(peers_dir())
            .output()
            .unwrap();
        let result: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!("demo_browser.mjs printed no JSON: {}", String::from_utf8_lossy(&out.stderr))
        });
        assert!(result["error"].is_null(), "{variant}: {}\n{}", result["error"], self.file("demo.err"));
        result
    }

    /// The account number nymgate must give `login`, computed apart from the login path: the
    /// demo's keyring key for the school, the issuer from the demo's config, the IdP subject.
    fn expected_account_number(&self, login: &str) -> String {
        let user = USERS.iter().find(|u| u.login == login).unwrap();
        let config = nymgate::config::Config::load(&self.dir.path().join("nymgate.toml")).unwrap();
        let tenant = config.tenants.iter().find(|t| t.id == user.school).unwrap();
        let ring = nymgate::pseudonym::keyring::Keyring::load(&self.dir.path().join("keyring.toml")).unwrap();
        let key = ring.scope(user.school).unwrap().current();
        common::account_number::primary(key, &tenant.issuer, user.subject)
    }

    /// No page the browser saw at nymgate or the platform, and nothing the demo wrote (its
    /// output, log and audit log), holds any of the person's personal values.
    fn assert_no_personal_values(&self, login: &str, result: &Value) {
        let user = USERS.iter().find(|u| u.login == login).unwrap();
        let full_name = format!("{} {}", user.given_name, user.family_name);
        let values = [
            ("email", user.email),
            ("given name", user.given_name),
            ("family name", user.family_name),
            ("name", full_name.as_str()),
            ("personal identity number", user.personnummer),
            // As SAML's norEduPersonNIN carries it: twelve digits.
            ("personal identity number", &user.personnummer.replace('-', "")),
            ("IdP subject", user.subject),
        ];
        let mut places: Vec<(String, String)> = result["pages"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, _)| !name.starts_with("idp-")) // the school's own pages may name its people
            .map(|(name, page)| (format!("the {name} page"), page["html"].as_str().unwrap().to_owned()))
            .collect();
        for file in ["demo.out", "demo.err", "audit.log"] {
            places.push((file.to_owned(), self.file(file)));
        }
        assert!(self.file("audit.log").contains("\"outcome\":\"ok\""), "the login was audited");
        for (kind, value) in values {
            for (place, text) in &places {
                assert!(
                    !text.to_lowercase().contains(&value.to_lowercase()),
                    "{login}'s {kind} appears in {place}"
                );
            }
        }
    }
}

fn artifacts(variant: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts").join(variant);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn page<'a>(result: &'a Value, name: &str) -> &'a Value {
    &result["pages"][name]
}

fn text<'a>(result: &'a Value, name: &str) -> &'a str {
    page(result, name)["text"].as_str().unwrap_or_else(|| panic!("no {name} page: {result}"))
}

/// The walk every variant makes, with the checks that do not depend on the language.
fn walk(variant: &str, login: &str, search: &str) -> (Demo, Value) {
    let demo = Demo::start();
    let result = demo.browse(variant, login, search);
    assert!(page(&result, "chooser")["url"].as_str().unwrap().contains("/nymgate/login"), "{result}");
    let school =
        SCHOOLS.iter().find(|s| s.id == USERS.iter().find(|u| u.login == login).unwrap().school).unwrap();
    assert!(text(&result, "chooser-search").contains(school.name), "the search found the school");
    assert_eq!(page(&result, "platform")["url"], demo.url, "back on the platform's page");
    assert_eq!(result["account_number"], demo.expected_account_number(login));
    let transparency = text(&result, "transparency");
    assert!(transparency.contains(&demo.expected_account_number(login)), "{transparency}");
    // Removed attributes are listed by name: OIDC claim names, SAML attributes' friendly names.
    let removed: &[&str] = if school.saml {
        &["mail", "displayName", "givenName", "norEduPersonNIN"]
    } else {
        // The demo IdP's `personal_identity_number` is written as the vocabulary's word for it
        // (src/verify/vocabulary.rs): an IdP's claim names never reach a page as they came.
        &["email", "name", "personalIdentityNumber"]
    };
    for removed in removed {
        assert!(
            transparency.lines().any(|l| l.trim() == *removed),
            "{removed} listed as removed: {transparency}"
        );
    }
    demo.assert_no_personal_values(login, &result);
    for (name, page) in result["pages"].as_object().unwrap() {
        assert_eq!(page["unlabelled"], serde_json::json!([]), "a field without a label on the {name} page");
        assert_eq!(page["images_without_alt"], 0, "an image without alt text on the {name} page");
    }
    (demo, result)
}

#[test]
fn a_pupil_signs_in_through_the_demo_and_the_platform_sees_only_an_account_number() {
    let (_demo, result) = walk("en", "elev1", "nord");
    assert_eq!(result["role"], "student");
    assert!(result["keyboard"].as_u64().is_some(), "the school was chosen with the keyboard alone: {result}");
    assert_eq!(page(&result, "chooser")["title"], "Sign in");
    // The role as the platform receives it, under the page's one name (issue 29).
    let transparency = text(&result, "transparency");
    assert!(transparency.contains("student") && !transparency.contains("pupil"), "{transparency}");
    assert_eq!(page(&result, "transparency")["title"], "What the platform receives about you");
    assert_eq!(page(&result, "logged-out")["title"], "Signed out");
    assert!(text(&result, "chooser-again").contains("Continue with Nordskolan"), "the school is remembered");
}

#[test]
fn the_demo_works_with_javascript_off() {
    let (_demo, result) = walk("nojs", "larare1", "NORDSKOLAN");
    assert_eq!(result["role"], "teacher");
}

#[test]
fn the_demo_speaks_swedish() {
    let (_demo, result) = walk("sv", "elev2", "södra");
    assert_eq!(result["role"], "student");
    for name in ["chooser", "transparency", "logged-out"] {
        assert_eq!(page(&result, name)["lang"], "sv", "{name}");
    }
    assert_eq!(page(&result, "chooser")["title"], "Logga in");
    assert_eq!(page(&result, "transparency")["title"], "Vad plattformen får veta om dig");
    assert!(text(&result, "transparency").contains("student (elev)"));
    assert_eq!(page(&result, "logged-out")["title"], "Utloggad");
    assert!(text(&result, "chooser-again").contains("Fortsätt med Södra gymnasiet"));
}

/// The SAML school: SP-initiated Web Browser SSO with the demo IdP's SAML face; the signed
/// Response reaches nymgate's ACS through the auto-posting page.
#[test]
fn a_pupil_of_a_saml_school_signs_in_through_the_demo() {
    let (_demo, result) = walk("saml", "elev4", "östra");
    assert_eq!(result["role"], "student");
    assert!(text(&result, "idp-login").contains("SAML"), "the SAML face of the IdP");
}

/// Without JavaScript the IdP's page that carries the Response waits for the person's Continue.
#[test]
fn a_saml_school_signs_in_with_javascript_off() {
    let (_demo, result) = walk("saml-nojs", "elev4", "Östra skolan");
    assert_eq!(result["role"], "student");
    assert!(text(&result, "idp-continue").contains("Continue"), "{result}");
}
