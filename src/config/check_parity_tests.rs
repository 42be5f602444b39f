//! `check` means `serve` (issue 29): a config `check` passes is one `serve` starts with, and
//! one that is safe. Each class: secrets read as serve reads them, log filters of levels only,
//! OIDC issuers over https, OIDC scopes that make an OpenID Connect request.

use proptest::prelude::*;

use super::validate::LOG_LEVELS;
use super::*;

const MINIMAL: &str = "[server]\nlisten = \"127.0.0.1:8443\"\nadmin_listen = \"127.0.0.1:9090\"\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n";

fn fields(text: &str) -> Vec<String> {
    Config::parse(text).unwrap().validate().into_iter().map(|p| p.field).collect()
}

/// An OIDC tenant whose secret is in `NYMGATE_TEST_PARITY_SECRET` (set by the test that needs it).
fn oidc_tenant(issuer: &str, scopes: &str) -> String {
    format!(
        "{MINIMAL}[login]\npublic_url = \"https://nymgate.example\"\n[[tenants]]\nid = \"skola\"\nidp = \"oidc\"\nissuer = \"{issuer}\"\n[tenants.oidc]\nclient_id = \"nymgate\"\nclient_secret = {{ env = \"NYMGATE_TEST_PARITY_SECRET\" }}\n{scopes}"
    )
}

#[test]
fn a_secret_serve_refuses_is_refused_by_check() {
    let dir = tempfile::tempdir().unwrap();
    for len in 0..40usize {
        let path = dir.path().join(format!("secret-{len}"));
        std::fs::write(&path, vec![b'x'; len]).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let source = SecretSource::File(path);
        // What serve does (secret::Secret::load reads through this) and what check reports.
        let served = source.read().is_ok();
        let mut reported = Vec::new();
        validate_secret_source(&source, "store.password", &mut |field: &str, _| {
            reported.push(field.to_owned())
        });
        assert_eq!(served, len >= 16, "{len} bytes");
        assert_eq!(reported.is_empty(), served, "{len} bytes: check and serve disagree");
        if !served {
            assert_eq!(reported, ["store.password.file"]);
        }
    }
    // A file others may read is refused by both, whatever its length.
    let open = dir.path().join("open");
    std::fs::write(&open, [b'x'; 32]).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    assert!(SecretSource::File(open).read().is_err());
}

#[test]
fn a_short_platform_client_secret_is_refused_by_check() {
    // The env var is process-wide: one name for this test only.
    std::env::set_var("NYMGATE_TEST_PARITY_SHORT", "too-short");
    let text = format!(
        "{MINIMAL}[login]\npublic_url = \"https://nymgate.example\"\n[[login.clients]]\nclient_id = \"lms\"\nclient_secret = {{ env = \"NYMGATE_TEST_PARITY_SHORT\" }}\nredirect_uris = [\"https://lms.example/cb\"]\n"
    );
    let found = fields(&text);
    assert!(found.iter().any(|f| f == "login.clients[0].client_secret.env"), "{found:?}");
}

#[test]
fn an_http_oidc_issuer_on_a_public_host_is_refused() {
    std::env::set_var("NYMGATE_TEST_PARITY_SECRET", "0123456789abcdef0123");
    let scopes = "scopes = [\"openid\", \"profile\"]\n";
    for issuer in ["http://idp.example", "http://idp.example/tenant", "ftp://idp.example", "idp.example"] {
        let found = fields(&oidc_tenant(issuer, scopes));
        assert!(found.iter().any(|f| f == "tenants[0].issuer"), "{issuer}: {found:?}");
    }
    for issuer in [
        "https://idp.example",
        "https://idp.example/tenant/v2.0",
        "http://127.0.0.1:9000",
        "http://localhost:9000/x",
    ] {
        let found = fields(&oidc_tenant(issuer, scopes));
        assert!(!found.iter().any(|f| f == "tenants[0].issuer"), "{issuer}: {found:?}");
    }
}

#[test]
fn oidc_scopes_without_openid_are_refused() {
    std::env::set_var("NYMGATE_TEST_PARITY_SECRET", "0123456789abcdef0123");
    for scopes in [
        "scopes = [\"profile\", \"email\"]",
        "scopes = []",
        "scopes = [\"OpenID\"]",
        "scopes = [\"openid\", \"a b\"]",
        "scopes = [\"openid\", \"\"]",
    ] {
        let found = fields(&oidc_tenant("https://idp.example", &format!("{scopes}\n")));
        assert!(found.iter().any(|f| f == "tenants[0].oidc.scopes"), "{scopes}: {found:?}");
    }
    let found = fields(&oidc_tenant("https://idp.example", "scopes = [\"openid\", \"profile\"]\n"));
    assert!(!found.iter().any(|f| f.starts_with("tenants[0]")), "{found:?}");
}

#[test]
fn a_log_level_typo_is_refused() {
    for typo in [
        "inf",
        "information",
        "warning",
        "nymgate",
        "",
        " ",
        "info,",
        "=info",
        "nymgate=",
        "nymgate=inf",
        "info;debug",
        "a::=info",
    ] {
        assert!(validate_log_level(typo).is_err(), "{typo:?} passed");
    }
    for good in ["info", "WARN", "off", "warn,nymgate=debug", "nymgate::proxy=trace, hyper=warn", "Error"] {
        assert!(validate_log_level(good).is_ok(), "{good:?} refused");
    }
    let found = fields(&format!("{MINIMAL}[log]\nlevel = \"inof\"\n"));
    assert!(found.iter().any(|f| f == "log.level"), "{found:?}");
}

proptest! {
    /// Every filter the rule accepts is one tracing reads with the same meaning: each directive
    /// names a level tracing knows (any case), so no accepted filter silences the log by accident.
    #[test]
    fn accepted_log_filters_are_levels_tracing_reads(
        directives in proptest::collection::vec(
            (proptest::option::of("[a-z_][a-z0-9_]{0,8}(::[a-z_][a-z0-9_]{0,8}){0,2}"), 0usize..6, any::<bool>()),
            1..4,
        )
    ) {
        let filter: Vec<String> = directives
            .iter()
            .map(|(target, level, upper)| {
                let level = if *upper { LOG_LEVELS[*level].to_uppercase() } else { LOG_LEVELS[*level].to_owned() };
                match target { Some(t) => format!("{t}={level}"), None => level }
            })
            .collect();
        let filter = filter.join(",");
        prop_assert!(validate_log_level(&filter).is_ok(), "{filter}");
        prop_assert!(tracing_subscriber::EnvFilter::try_new(&filter).is_ok(), "{filter}");
    }

    /// Any word that is not a level, alone or as a directive's level, is refused.
    #[test]
    fn words_that_are_not_levels_are_refused(word in "[A-Za-z]{1,12}") {
        prop_assume!(!LOG_LEVELS.contains(&word.to_ascii_lowercase().as_str()));
        prop_assert!(validate_log_level(&word).is_err());
        let directive = format!("nymgate={word}");
        prop_assert!(validate_log_level(&directive).is_err());
    }
}
