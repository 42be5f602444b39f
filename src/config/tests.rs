//! The config's unit tests (parsing, defaults, and the checks of every section).

use super::*;

const MINIMAL: &str = r#"
        [server]
        listen = "127.0.0.1:8443"
        admin_listen = "127.0.0.1:9090"
        cert_file = "cert.pem"
        key_file = "key.pem"
    "#;

#[test]
fn minimal_config_gets_safe_defaults() {
    let c = Config::parse(MINIMAL).unwrap();
    assert!(c.upstream.is_none());
    assert_eq!(c.client_ip.mode, IpMode::Truncate);
    assert_eq!((c.client_ip.ipv4_prefix, c.client_ip.ipv6_prefix), (24, 48));
    assert_eq!(c.limits.max_header_bytes, 16 * 1024);
}

#[test]
fn unknown_field_is_an_error_that_names_it() {
    let text = format!("{MINIMAL}\n[limits]\nmax_header_byts = 9000\n");
    let err = Config::parse(&text).unwrap_err();
    assert!(err.contains("max_header_byts"), "{err}");
}

#[test]
fn a_head_limit_past_the_framing_watch_is_refused() {
    let text = format!("{MINIMAL}\n[limits]\nmax_header_bytes = 65537\n");
    let problems = Config::parse(&text).unwrap().validate();
    assert!(problems.iter().any(|p| p.field == "limits.max_header_bytes"), "{problems:?}");
    let text = format!("{MINIMAL}\n[limits]\nmax_header_bytes = 65536\n");
    let problems = Config::parse(&text).unwrap().validate();
    assert!(!problems.iter().any(|p| p.field == "limits.max_header_bytes"), "{problems:?}");
}

#[test]
fn semantic_problems_name_their_field() {
    let text = format!(
            "{MINIMAL}\n[upstream]\nurl = \"ftp://x/y\"\n[client_ip]\nipv4_prefix = 40\n[limits]\nmax_header_bytes = 10\n"
        );
    let c = Config::parse(&text).unwrap();
    let fields: Vec<String> = c.validate().into_iter().map(|p| p.field).collect();
    for f in ["upstream.url", "client_ip.ipv4_prefix", "limits.max_header_bytes", "server.cert_file"] {
        assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
    }
}

#[test]
fn saml_idp_problems_name_their_field() {
    let login = "[login]\npublic_url = \"https://learn.example\"\noutput = \"saml\"\n";
    let fields = |extra: &str| -> Vec<String> {
        let c = Config::parse(&format!("{MINIMAL}\n{login}{extra}")).unwrap();
        c.validate().into_iter().map(|p| p.field).filter(|f| f.starts_with("login.saml_idp")).collect()
    };
    assert_eq!(fields(""), ["login.saml_idp"], "the saml output needs the section");
    let idp =
        "[login.saml_idp]\ncert_file = \"/nonexistent/idp.pem\"\nkey_file = \"/nonexistent/idp-key.pem\"\n";
    let found = fields(&format!(
            "{idp}signature_algorithm = \"rsa-sha1\"\nassertion_lifetime = \"2h\"\n\
             [[login.saml_idp.service_providers]]\nentity_id = \"https://p.example\"\nacs_url = \"ftp://p.example/acs\"\ntenant = \"nope\"\n\
             [[login.saml_idp.service_providers]]\nentity_id = \"https://p.example\"\nacs_url = \"https://p.example/acs\"\nintercept = true\n\
             [[login.saml_idp.service_providers]]\nentity_id = \"https://q.example\"\nacs_url = \"https://learn.example/nymgate/x\"\nintercept = true\n"
        ));
    for f in [
        "login.saml_idp.cert_file",
        "login.saml_idp.key_file",
        "login.saml_idp.signature_algorithm",
        "login.saml_idp.assertion_lifetime",
        "login.saml_idp.service_providers[0].acs_url",
        "login.saml_idp.service_providers[0].tenant",
        "login.saml_idp.service_providers[1].entity_id",
        "login.saml_idp.service_providers[1].acs_url",
        "login.saml_idp.service_providers[2].acs_url",
    ] {
        assert!(found.iter().any(|x| x == f), "{f} missing from {found:?}");
    }
    assert_eq!(fields(idp).iter().filter(|f| *f == "login.saml_idp.service_providers").count(), 1);
}

#[test]
fn retention_problems_name_their_field() {
    let tenant = "[[tenants]]\nid = \"skola-a\"\nidp = \"oidc\"\nissuer = \"https://idp.example\"\n\
                      [tenants.retention]\nroles = [\"teacher\", \"rektor\"]\nattributes = { email = [] }\n";
    let c = Config::parse(&format!("{MINIMAL}\n{tenant}")).unwrap();
    let fields: Vec<String> =
        c.validate().into_iter().map(|p| p.field).filter(|f| f.contains("retention")).collect();
    assert_eq!(
        fields,
        ["tenants[0].retention.roles", "tenants[0].retention.roles", "tenants[0].retention.attributes"],
        "no [retention], an unknown role, an attribute read from nothing"
    );
    let store = "[retention]\nsqlite_file = \"/nonexistent-folder/retained.db\"\ncull_after = \"0s\"\n";
    let c = Config::parse(&format!("{MINIMAL}\n{store}")).unwrap();
    let fields: Vec<String> =
        c.validate().into_iter().map(|p| p.field).filter(|f| f.contains("retention")).collect();
    assert_eq!(fields, ["retention.sqlite_file", "retention.cull_after"]);
}

#[test]
fn redis_urls_are_read_strictly() {
    let url = RedisUrl::parse("rediss://cache.internal:6380/2").unwrap();
    assert_eq!(url, RedisUrl { tls: true, host: "cache.internal".into(), port: 6380, db: 2 });
    assert_eq!(RedisUrl::parse("redis://[::1]").unwrap().host, "::1");
    assert_eq!(RedisUrl::parse("redis://127.0.0.1").unwrap().port, 6379);
    for bad in ["http://x", "redis://user:pw@x", "redis://x/abc", "redis://x/0?timeout=1", "redis:///0"] {
        assert!(RedisUrl::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_redis_store_needs_a_url_and_the_shared_secrets() {
    let fields = |extra: &str| -> Vec<String> {
        let c = Config::parse(&format!("{MINIMAL}\n{extra}")).unwrap();
        c.validate()
            .into_iter()
            .map(|p| p.field)
            .filter(|f| f.starts_with("store") || f.starts_with("login.s"))
            .collect()
    };
    assert_eq!(fields("[store]\nbackend = \"redis\"\n"), ["store.url"]);
    assert_eq!(fields("[store]\nurl = \"redis://x\"\n"), ["store.url"], "a URL without the backend");
    assert_eq!(
        fields("[store]\nbackend = \"redis\"\nurl = \"redis://x\"\npool_size = 0\n"),
        ["store.pool_size"]
    );
    let login = "[login]\npublic_url = \"https://nymgate.example\"\n";
    assert_eq!(
        fields(&format!("[store]\nbackend = \"redis\"\nurl = \"redis://x\"\n{login}")),
        ["login.seal_secret", "login.signing.key_file"]
    );
}

#[test]
fn alert_problems_name_their_field() {
    let c = Config::parse(MINIMAL).unwrap();
    assert_eq!((c.alerts.signature_failure, c.alerts.guard_trip), (5, 1));
    assert!(c.alerts.webhook.is_none());
    let text = format!(
        r#"{MINIMAL}
[alerts]
window = "0s"
[alerts.webhook]
url = "http://ops.example/hook"
secret = {{ env = "NYMGATE_TEST_UNSET_WEBHOOK_SECRET" }}
max_attempts = 0
timeout = "0s"
"#
    );
    let c = Config::parse(&text).unwrap();
    let fields: Vec<String> = c.validate().into_iter().map(|p| p.field).collect();
    for f in [
        "alerts.window",
        "alerts.webhook.url",
        "alerts.webhook.secret.env",
        "alerts.webhook.max_attempts",
        "alerts.webhook.timeout",
    ] {
        assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
    }
}

#[test]
fn login_problems_name_their_field() {
    let text = format!(
        r#"{MINIMAL}
[login]
public_url = "http://learn.example/app"
code_lifetime = "1h"
[login.signing]
alg = "ES256"
[[tenants]]
id = "school-a"
idp = "oidc"
issuer = "https://idp.example"
[tenants.oidc]
client_id = ""
client_secret = {{ env = "NYMGATE_TEST_UNSET_VARIABLE" }}
algorithms = ["HS256"]
discovery_url = "https://idp.example"
endpoints = {{ authorization = "https://idp.example/a", token = "ftp://idp.example/t", jwks = "https://idp.example/j" }}
[[tenants]]
id = "school-b"
idp = "saml"
issuer = "https://idp-b.example"
[tenants.oidc]
client_id = "x"
client_secret = {{ env = "NYMGATE_TEST_UNSET_VARIABLE" }}
"#
    );
    let c = Config::parse(&text).unwrap();
    let fields: Vec<String> = c.validate().into_iter().map(|p| p.field).collect();
    for f in [
        "login.public_url",
        "login.code_lifetime",
        "login.clients",
        "tenants[0].oidc.client_id",
        "tenants[0].oidc.client_secret.env",
        "tenants[0].oidc.algorithms",
        "tenants[0].oidc.endpoints",
        "tenants[0].oidc.endpoints.token",
        "tenants[1].oidc",
    ] {
        assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
    }
}

#[test]
fn plain_http_to_a_platform_off_loopback_is_refused_unless_said() {
    let config = |url: &str, allow: bool| {
        format!("{MINIMAL}\n[upstream]\nurl = \"{url}\"\nallow_plaintext = {allow}\n")
    };
    let refused = |url: &str, allow: bool| {
        Config::parse(&config(url, allow)).unwrap().validate().iter().any(|p| p.field == "upstream.url")
    };
    for url in [
        "http://127.0.0.1:3000",
        "http://localhost:3000",
        "http://LOCALHOST:3000",
        "http://[::1]:3000",
        "http://127.9.9.9:3000",
        "https://platform.example",
    ] {
        assert!(!refused(url, false), "{url}");
    }
    for url in [
        "http://platform.example:3000",
        "http://10.0.0.5:3000",
        "http://[2001:db8::1]:3000",
        "http://localhost.example:3000",
        "http://0.0.0.0:3000",
    ] {
        assert!(refused(url, false), "{url}");
        assert!(!refused(url, true), "{url} with allow_plaintext");
    }
}

#[test]
fn upstream_url_forms() {
    assert!(UpstreamTarget::parse("http://127.0.0.1:3000").is_ok());
    assert!(UpstreamTarget::parse("https://platform.internal").is_ok());
    assert!(UpstreamTarget::parse("http://127.0.0.1:3000/app").is_err());
    assert!(UpstreamTarget::parse("http://user:pw@host").is_err());
    assert!(UpstreamTarget::parse("127.0.0.1:3000").is_err());
}

#[test]
fn the_reference_config_in_deploy_parses_with_its_stated_defaults() {
    let text = include_str!("../../deploy/nymgate.example.toml");
    let c = Config::parse(text).unwrap();
    let d = LimitsConfig::default();
    assert_eq!(c.limits.max_header_bytes, d.max_header_bytes);
    assert_eq!(c.limits.max_connections, d.max_connections);
    assert_eq!(c.limits.idle_timeout, d.idle_timeout);
    assert_eq!(c.limits.body_read_timeout, d.body_read_timeout);
    assert_eq!(c.limits.shutdown_grace, d.shutdown_grace);
    assert_eq!(c.server.cert_reload_interval, defaults::cert_reload_interval());
    let u = c.upstream.unwrap();
    assert_eq!(
        (u.connect_timeout, u.response_timeout),
        (defaults::connect_timeout(), defaults::response_timeout())
    );
    assert_eq!(u.pool_max_idle_per_host, defaults::pool_max_idle_per_host());
    assert_eq!(
        (u.max_connections, u.queue_timeout, u.pool_per_client_connection),
        (defaults::upstream_max_connections(), defaults::queue_timeout(), false)
    );
}

#[test]
fn upstream_bounds_are_validated_by_name() {
    for (extra, field) in [
        ("max_connections = 0", "upstream.max_connections"),
        ("max_connections = 70000", "upstream.max_connections"),
        ("queue_timeout = \"0s\"", "upstream.queue_timeout"),
    ] {
        let text = format!("{MINIMAL}\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n{extra}\n");
        let fields: Vec<String> =
            Config::parse(&text).unwrap().validate().into_iter().map(|p| p.field).collect();
        assert!(fields.iter().any(|f| f == field), "{extra}: {fields:?}");
    }
}
