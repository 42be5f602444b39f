//! `/metrics` as scrapers read it (issue 29): the Python `prometheus_client` parsers, its
//! OpenMetrics one and its Prometheus text 0.0.4 one, each on what the server answers to a
//! scraper that asks for that format; every metric there from the start; per-tenant counters
//! that carry configured tenant ids only; and docs/METRICS.md naming exactly what is served.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use common::login::{peers_dir, Options, World};
use serde_json::{json, Value};

/// What Prometheus 2 sends (its default scrape protocols).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// What a 0.0.4-only scraper sends.
const TEXT_ACCEPT: &str = "text/plain;version=0.0.4";

/// A scrape parsed by tests/peers/metrics_parse.py: the Content-Type, and the families as the
/// parser of that type read them, by name.
struct Scrape {
    content_type: String,
    families: BTreeMap<String, Value>,
}

impl Scrape {
    fn of(world: &World, accept: &str) -> Scrape {
        let python = peers_dir().join(".venv/bin/python");
        assert!(python.exists(), "prometheus_client is not installed: run tests/run.sh (tests/peers/.venv)");
        let url = format!("http://127.0.0.1:{}/metrics", world.admin_port);
        let out = Command::new(python)
            .arg(peers_dir().join("metrics_parse.py"))
            .args([&url, accept])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the parser refused /metrics: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
        let families = parsed["families"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap().to_owned(), f.clone()))
            .collect();
        Scrape { content_type: parsed["content_type"].as_str().unwrap().to_owned(), families }
    }

    /// The value of the sample `name` with exactly `labels`, if there is one.
    fn value(&self, name: &str, labels: Value) -> Option<f64> {
        self.families
            .values()
            .flat_map(|f| f["samples"].as_array().unwrap())
            .find_map(|s| (s[0] == name && s[1] == labels).then(|| s[2].as_f64().unwrap()))
    }

    /// The names a query uses for each family: a counter's `_total`, an info's `_info`.
    fn query_names(&self) -> BTreeSet<String> {
        self.families
            .iter()
            .map(|(name, f)| match f["type"].as_str().unwrap() {
                "counter" => format!("{name}_total"),
                "info" => format!("{name}_info"),
                _ => name.clone(),
            })
            .collect()
    }
}

/// Both scrapes read the same metrics, each typed (a 0.0.4 reader given OpenMetrics reads
/// every counter as a family of its own without a type: issue 29).
fn assert_same_metrics(om: &Scrape, text: &Scrape) {
    assert!(
        om.content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{}",
        om.content_type
    );
    assert!(text.content_type.starts_with("text/plain; version=0.0.4"), "{}", text.content_type);
    let untyped: Vec<_> =
        text.families.iter().filter(|(_, f)| f["type"] == "untyped" || f["type"] == "unknown").collect();
    assert!(untyped.is_empty(), "0.0.4 families without a type: {untyped:?}");
    let om_typed: BTreeSet<(String, String)> = om
        .families
        .iter()
        .map(|(name, f)| match f["type"].as_str().unwrap() {
            "info" => (format!("{name}_info"), "gauge".to_owned()),
            kind => (name.clone(), kind.to_owned()),
        })
        .collect();
    let text_typed: BTreeSet<(String, String)> = text
        .families
        .iter()
        .map(|(name, f)| (name.clone(), f["type"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(om_typed, text_typed);
    let series = |s: &Scrape| -> BTreeSet<String> {
        s.families
            .values()
            .flat_map(|f| f["samples"].as_array().unwrap())
            .map(|s| format!("{}{}", s[0], s[1]))
            .collect()
    };
    assert_eq!(series(om), series(text), "the same series in both formats");
}

#[test]
fn prometheus_and_openmetrics_parsers_read_every_metric_from_start_with_tenants_from_config_only() {
    let world = World::start(Options { provider: false, second_school: true, ..Options::default() });
    let (om, text) = (Scrape::of(&world, PROMETHEUS_ACCEPT), Scrape::of(&world, TEXT_ACCEPT));
    assert_same_metrics(&om, &text);
    assert!(Scrape::of(&world, "").content_type.starts_with("text/plain; version=0.0.4"));

    // Before any login: every configured tenant's outcomes, every step and the tampered count
    // at zero; the reasons' family declared with no series yet.
    for tenant in ["school-a", "school-b"] {
        for outcome in ["ok", "failed"] {
            let labels = json!({"tenant": tenant, "outcome": outcome});
            assert_eq!(om.value("nymgate_tenant_logins_total", labels), Some(0.0), "{tenant} {outcome}");
        }
    }
    for step in ["verify", "pseudonymize", "mint", "commit"] {
        assert_eq!(om.value("nymgate_login_step_duration_seconds_count", json!({"step": step})), Some(0.0));
    }
    assert_eq!(om.value("nymgate_retention_tampered_records_total", json!({})), Some(0.0));
    assert_eq!(om.families["nymgate_tenant_login_failures"]["type"], "counter");
    assert_eq!(om.families["nymgate_tenant_login_failures"]["samples"], json!([]));
    assert_eq!(om.value("nymgate_config_reloads_total", json!({"outcome": "refused"})), Some(0.0));
    assert!(om.value("process_open_fds", json!({})).unwrap() > 0.0);
    assert!(om.value("process_max_fds", json!({})).unwrap() > 0.0);
    assert!(om.value("process_resident_memory_bytes", json!({})).unwrap() > 1e6);
    assert!(om.value("process_start_time_seconds", json!({})).unwrap() > 1.7e9);
    assert!(om.value("process_cpu_seconds_total", json!({})).unwrap() >= 0.0);

    // One login that passes, one the signature check refuses, one for a tenant that is not
    // configured (its id is the client's: it must become no label).
    let page = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None);
    assert_eq!(page["status"], 200, "{page}");
    world.idp.hook(&world, "tamper", json!({"mode": "bad_signature"}));
    let page = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None);
    assert_eq!(page["status"], 400, "{page}");
    assert_eq!(world.last_login()["reason"], "bad_signature");
    let page = world.browse(&world.url("/nymgate/login/not-a-school?return_to=/echo"), None);
    assert_eq!(page["status"], 404, "{page}");

    let (om, text) = (Scrape::of(&world, PROMETHEUS_ACCEPT), Scrape::of(&world, TEXT_ACCEPT));
    assert_same_metrics(&om, &text);
    for scrape in [&om, &text] {
        let tenant = |tenant: &str, outcome: &str| {
            scrape.value("nymgate_tenant_logins_total", json!({"tenant": tenant, "outcome": outcome}))
        };
        assert_eq!((tenant("school-a", "ok"), tenant("school-a", "failed")), (Some(1.0), Some(1.0)));
        assert_eq!((tenant("school-b", "ok"), tenant("school-b", "failed")), (Some(0.0), Some(0.0)));
        let failures = json!({"tenant": "school-a", "reason": "bad_signature"});
        assert_eq!(scrape.value("nymgate_tenant_login_failures_total", failures), Some(1.0));
        let unknown = json!({"protocol": "oidc", "outcome": "failed", "reason": "unknown_tenant"});
        assert_eq!(scrape.value("nymgate_logins_total", unknown), Some(1.0), "counted, under no tenant");
        let steps = ["verify", "pseudonymize", "mint", "commit"]
            .map(|step| scrape.value("nymgate_login_step_duration_seconds_count", json!({"step": step})));
        assert_eq!(
            steps,
            [Some(2.0), Some(1.0), Some(1.0), Some(1.0)],
            "the refused login stopped at verify"
        );
    }
    let tenants: BTreeSet<&str> = om
        .families
        .values()
        .flat_map(|f| f["samples"].as_array().unwrap())
        .filter_map(|s| s[1]["tenant"].as_str())
        .collect();
    assert_eq!(tenants, BTreeSet::from(["school-a", "school-b"]));
}

/// The metric names listed in the tables of docs/METRICS.md (the first cell of each row).
fn documented() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/METRICS.md")).unwrap();
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(name, _)| name.to_owned()))
        .collect()
}

/// The `nymgate_…` words of a text.
fn nymgate_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("nymgate_") {
        let word: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + word.len()..];
        words.push(word);
    }
    words
}

#[test]
fn docs_list_every_metric_served_and_no_other() {
    let world = World::start(Options { provider: false, ..Options::default() });
    let served = Scrape::of(&world, PROMETHEUS_ACCEPT).query_names();
    let listed = documented();
    let unlisted: Vec<_> = served.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&served).collect();
    assert!(unlisted.is_empty(), "served, not in docs/METRICS.md: {unlisted:?}");
    assert!(missing.is_empty(), "in docs/METRICS.md, not served: {missing:?}");

    // Every other doc that names a nymgate_ metric names one that exists (a histogram's
    // series included). The other nymgate_ words in docs are the Postgres tables and index of
    // the retention store, taken from its schema.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema = std::fs::read_to_string(root.join("src/retention/postgres.rs")).unwrap();
    let tables: BTreeSet<String> = schema
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("CREATE TABLE IF NOT EXISTS ")
                .or(l.trim().strip_prefix("CREATE INDEX IF NOT EXISTS "))
        })
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    assert!(tables.contains("nymgate_records"), "{tables:?}");
    let histogram_series = |word: &str| {
        ["_bucket", "_sum", "_count"].iter().any(|s| word.strip_suffix(s).is_some_and(|m| served.contains(m)))
    };
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs")).unwrap().map(|e| e.unwrap().path()).collect();
    docs.extend([root.join("README.md"), root.join("deploy/README.md")]);
    for path in docs.iter().filter(|p| p.extension().is_some_and(|e| e == "md")) {
        let text = std::fs::read_to_string(path).unwrap();
        for word in nymgate_words(&text) {
            assert!(
                served.contains(&word) || histogram_series(&word) || tables.contains(&word),
                "{} names {word}, which /metrics does not serve",
                path.display()
            );
        }
    }
}

#[test]
fn nymgate_words_are_cut_at_the_name() {
    assert_eq!(
        nymgate_words("`nymgate_logins_total{protocol}` and nymgate_store_up."),
        ["nymgate_logins_total", "nymgate_store_up"]
    );
}
