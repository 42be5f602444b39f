//! Prometheus metrics, served on the admin listener's `/metrics`.
//!
//! Labels are a closed set of values that nymgate chooses (route class, status code, reason):
//! never a path, a host, an IP or anything else a client controls, so that no personal value can
//! become a label and no client can make the label set grow without bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::metrics_format::Declared;

/// The media type of [`Metrics::render`]'s text (OpenMetrics 1.0, §3.1 of the specification);
/// Prometheus asks for it first in its Accept header. `/metrics` negotiates (metrics_format.rs).
pub const CONTENT_TYPE: &str = crate::metrics_format::OPENMETRICS;

/// Which part of nymgate answered a request.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RouteClass {
    /// Forwarded to the platform.
    Proxy,
    /// Answered by the built-in echo platform.
    Echo,
    /// Refused by nymgate before routing (bad request, limits, overload).
    Rejected,
    /// The plain-HTTP redirect listener.
    Redirect,
    /// nymgate's own login and provider endpoints (`/nymgate/…`).
    Login,
}

impl RouteClass {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Proxy => "proxy",
            RouteClass::Echo => "echo",
            RouteClass::Rejected => "rejected",
            RouteClass::Redirect => "redirect",
            RouteClass::Login => "login",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GuardLabels {
    claim: &'static str,
    detector: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    protocol: &'static str,
    outcome: &'static str,
    reason: &'static str,
}

/// Every metric nymgate keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    upstream_seconds: Histogram,
    open_connections: Gauge<i64, std::sync::atomic::AtomicI64>,
    parked_connections: Gauge<i64, std::sync::atomic::AtomicI64>,
    platform_connections: Gauge<i64, std::sync::atomic::AtomicI64>,
    platform_waiting: Gauge<i64, std::sync::atomic::AtomicI64>,
    store_up: Gauge<i64, std::sync::atomic::AtomicI64>,
    resident_memory: Gauge<i64, std::sync::atomic::AtomicI64>,
    tls_handshake_failures: Counter<u64, AtomicU64>,
    shed_connections: Counter<u64, AtomicU64>,
    rejected_requests: Family<ReasonLabels, Counter>,
    /// Connections and responses a deadline cut off (src/conn_bounds.rs), by which one: a
    /// rising count is clients that stall, or limits set too short for real ones.
    deadline_cuts: Family<ReasonLabels, Counter>,
    cert_reloads: Family<OutcomeLabels, Counter>,
    config_reloads: Family<OutcomeLabels, Counter>,
    guard_trips: Family<GuardLabels, Counter>,
    logins: Family<LoginLabels, Counter>,
    login_blocks: Counter<u64, AtomicU64>,
    blocked_clients: Gauge<i64, std::sync::atomic::AtomicI64>,
    alerts: Family<KindLabels, Counter>,
    alert_webhook: Family<ResultLabels, Counter>,
    /// Audit lines that could not be written, by kind (`login`, `admin`): each was an attempt
    /// refused for want of its line (docs/LOGIN.md, "The audit log"). Any rise is an outage.
    audit_failures: Family<KindLabels, Counter>,
    /// Admin API calls refused before any work, by reason (`bad_credentials`, `rate_limited`):
    /// their audit lines are aggregated (src/login/admin_refusals.rs), so this is the full count.
    admin_refused: Family<ReasonLabels, Counter>,
    /// Logins by tenant, and the time of each login step (metrics_login.rs).
    pub logins_by: crate::metrics_login::LoginMetrics,
    /// Records the retention store refused as tampered, as the serving store counts them
    /// (`RetentionStore::tampered_total`), set before each scrape is written.
    retention_tampered: Arc<AtomicU64>,
    /// `process_*` under their standard names: a registry without nymgate's prefix.
    process: Registry,
}

/// `nymgate_retention_tampered_records_total`, read at each scrape.
#[derive(Debug)]
struct TamperedRecords(Arc<AtomicU64>);

impl prometheus_client::collector::Collector for TamperedRecords {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        let counter = prometheus_client::metrics::counter::ConstCounter::new(self.0.load(Ordering::Relaxed));
        let metric = encoder.encode_descriptor(
            "retention_tampered_records",
            "Retained records refused as tampered since the retention database was opened (docs/RETENTION.md); any is an attack or a restore gone wrong",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("nymgate");
        // `nymgate_build_info{version="…"} 1`: which build a scrape came from (a fixed value of
        // this binary, never a request's byte).
        registry.register(
            "build",
            "The nymgate build serving",
            prometheus_client::metrics::info::Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route class and status",
            Declared(requests.clone()),
        );
        // 0.5 ms to about 33 s.
        let upstream_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 17));
        registry.register(
            "upstream_duration_seconds",
            "Time from forwarding a request to the platform's response head",
            upstream_seconds.clone(),
        );
        let open_connections = Gauge::default();
        registry.register("open_connections", "Client connections open now", open_connections.clone());
        let parked_connections = Gauge::default();
        registry.register(
            "parked_connections",
            "HTTP/1.1 keep-alive connections waiting between requests without HTTP state",
            parked_connections.clone(),
        );
        let platform_connections = Gauge::default();
        registry.register(
            "upstream_connections",
            "Connections to the platform open now: in use, idle in a pool or upgraded (at most upstream.max_connections per worker)",
            platform_connections.clone(),
        );
        let platform_waiting = Gauge::default();
        registry.register(
            "upstream_waiting_requests",
            "Requests waiting for a platform connection at upstream.max_connections (503 after upstream.queue_timeout)",
            platform_waiting.clone(),
        );
        let store_up = Gauge::default();
        store_up.set(1);
        registry.register(
            "store_up",
            "1 while the single-use store answers (always 1 in memory; Redis: its last call or ping)",
            store_up.clone(),
        );
        let resident_memory = Gauge::default();
        registry.register(
            "resident_memory_bytes",
            "Resident memory of the process when scraped (Linux VmRSS)",
            resident_memory.clone(),
        );
        let tls_handshake_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            tls_handshake_failures.clone(),
        );
        let shed_connections = Counter::default();
        registry.register(
            "shed_connections",
            "Connections refused with 503 because limits.max_connections was reached",
            shed_connections.clone(),
        );
        let rejected_requests = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "rejected_requests",
            "Requests refused by nymgate's own checks, by reason",
            Declared(rejected_requests.clone()),
        );
        let deadline_cuts = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "deadline_cuts",
            "Connections or responses cut off by a deadline (send_timeout, close_grace, tunnel_idle)",
            Declared(deadline_cuts.clone()),
        );
        let cert_reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register("cert_reloads", "Certificate reloads, by outcome", Declared(cert_reloads.clone()));
        let config_reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Config reloads (SIGHUP or the file changing), by outcome: reloaded or refused",
            Declared(config_reloads.clone()),
        );
        let guard_trips = Family::<GuardLabels, Counter>::default();
        registry.register(
            "guard_trips",
            "Logins failed closed because an outgoing claim carried a personal value, by claim and detector",
            Declared(guard_trips.clone()),
        );
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(
            "logins",
            "Login attempts, by protocol, outcome and reason code (docs/LOGIN.md)",
            Declared(logins.clone()),
        );
        let login_blocks = Counter::default();
        registry.register(
            "login_blocks",
            "Clients blocked after too many failed logins (login.blocking)",
            login_blocks.clone(),
        );
        let blocked_clients = Gauge::default();
        registry.register("blocked_clients", "Clients blocked from logging in now", blocked_clients.clone());
        let alerts = Family::<KindLabels, Counter>::default();
        registry.register("alerts", "Alerts raised, by kind (docs/ALERTS.md)", Declared(alerts.clone()));
        let alert_webhook = Family::<ResultLabels, Counter>::default();
        registry.register(
            "alert_webhook_deliveries",
            "Alerts the webhook took (delivered), gave up on after every attempt (failed), or never got because its queue was full (dropped)",
            Declared(alert_webhook.clone()),
        );
        let audit_failures = Family::<KindLabels, Counter>::default();
        registry.register(
            "audit_failures",
            "Audit lines that could not be written, by kind (login, admin); each attempt was refused",
            Declared(audit_failures.clone()),
        );
        let admin_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "admin_refused",
            "Admin API calls refused without a valid token, by reason (bad_credentials, rate_limited)",
            Declared(admin_refused.clone()),
        );
        // The closed label sets, at zero from the start: a series that appears only with its
        // first increment hides that increment from `rate()` and `increase()`.
        for outcome in ["reloaded", "failed"] {
            drop(cert_reloads.get_or_create(&OutcomeLabels { outcome }));
        }
        for outcome in ["reloaded", "refused"] {
            drop(config_reloads.get_or_create(&OutcomeLabels { outcome }));
        }
        for reason in ["send_timeout", "close_grace", "tunnel_idle"] {
            drop(deadline_cuts.get_or_create(&ReasonLabels { reason }));
        }
        for kind in crate::alert::AlertKind::ALL {
            drop(alerts.get_or_create(&KindLabels { kind: kind.as_str() }));
        }
        for result in ["delivered", "failed", "dropped"] {
            drop(alert_webhook.get_or_create(&ResultLabels { result }));
        }
        for kind in ["login", "admin"] {
            drop(audit_failures.get_or_create(&KindLabels { kind }));
        }
        for reason in ["bad_credentials", "rate_limited"] {
            drop(admin_refused.get_or_create(&ReasonLabels { reason }));
        }
        let logins_by = crate::metrics_login::LoginMetrics::register(&mut registry);
        let retention_tampered = Arc::new(AtomicU64::new(0));
        registry.register_collector(Box::new(TamperedRecords(retention_tampered.clone())));
        let mut process = Registry::default();
        process.register_collector(Box::new(crate::metrics_process::ProcessCollector));
        Self {
            logins_by,
            retention_tampered,
            process,
            audit_failures,
            admin_refused,
            alerts,
            alert_webhook,
            logins,
            login_blocks,
            blocked_clients,
            registry,
            requests,
            upstream_seconds,
            open_connections,
            parked_connections,
            platform_connections,
            platform_waiting,
            store_up,
            resident_memory,
            tls_handshake_failures,
            shed_connections,
            rejected_requests,
            deadline_cuts,
            cert_reloads,
            config_reloads,
            guard_trips,
        }
    }

    pub fn request(&self, route: RouteClass, status: http::StatusCode) {
        self.requests.get_or_create(&RequestLabels { route: route.as_str(), status: status.as_u16() }).inc();
    }

    pub fn upstream_latency(&self, elapsed: std::time::Duration) {
        self.upstream_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn connection_opened(&self) {
        self.open_connections.inc();
    }

    pub fn connection_closed(&self) {
        self.open_connections.dec();
    }

    /// Connections entered (+) or left (-) a worker's parking lot (parking.rs).
    pub fn parked_connections_changed(&self, by: i64) {
        self.parked_connections.inc_by(by);
    }

    /// Platform connections opened (+) or closed (-) (upstream/pool.rs).
    pub fn platform_connections_changed(&self, by: i64) {
        self.platform_connections.inc_by(by);
    }

    /// Requests began (+) or stopped (-) waiting at upstream.max_connections.
    pub fn platform_waiting_changed(&self, by: i64) {
        self.platform_waiting.inc_by(by);
    }

    pub fn store_up(&self, up: bool) {
        self.store_up.set(i64::from(up));
    }

    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.inc();
    }

    pub fn connection_shed(&self) {
        self.shed_connections.inc();
    }

    /// A deadline cut something off: `send_timeout`, `close_grace`, `tunnel_idle`.
    pub fn deadline_cut(&self, reason: &'static str) {
        self.deadline_cuts.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn rejected(&self, reason: &'static str) {
        self.rejected_requests.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn config_reload(&self, outcome: &'static str) {
        self.config_reloads.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn cert_reload(&self, outcome: &'static str) {
        self.cert_reloads.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// A guard trip: names the claim and the detector (both from closed sets), never the value.
    pub fn guard_trip(&self, claim: &'static str, detector: &'static str) {
        self.guard_trips.get_or_create(&GuardLabels { claim, detector }).inc();
    }

    /// One finished login attempt; `reason` is `none` for a success.
    pub fn login(&self, protocol: &'static str, outcome: &'static str, reason: &'static str) {
        self.logins.get_or_create(&LoginLabels { protocol, outcome, reason }).inc();
    }

    /// A client was blocked after too many failed logins; `now_blocked` is how many are.
    pub fn login_block(&self, now_blocked: usize) {
        self.login_blocks.inc();
        self.blocked_clients.set(now_blocked as i64);
    }

    /// An alert was raised (`kind` from a closed set).
    pub fn alert(&self, kind: &'static str) {
        self.alerts.get_or_create(&KindLabels { kind }).inc();
    }

    /// The end of one alert's webhook delivery: `delivered`, `failed` or `dropped`.
    pub fn alert_webhook(&self, result: &'static str) {
        self.alert_webhook.get_or_create(&ResultLabels { result }).inc();
    }

    /// An audit line of `kind` (`login` or `admin`) could not be written.
    pub fn audit_failure(&self, kind: &'static str) {
        self.audit_failures.get_or_create(&KindLabels { kind }).inc();
    }

    /// An admin API call refused before any work: `bad_credentials` or `rate_limited`.
    pub fn admin_refused(&self, reason: &'static str) {
        self.admin_refused.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// How many records the serving retention store has refused as tampered.
    pub fn retention_tampered(&self, total: u64) {
        self.retention_tampered.store(total, Ordering::Relaxed);
    }

    /// The OpenMetrics 1.0 text exposition.
    pub fn render(&self) -> String {
        if let Some(bytes) = resident_memory_bytes() {
            self.resident_memory.set(bytes);
        }
        let mut out = String::new();
        let encode = |out: &mut String| {
            use prometheus_client::encoding::text::{encode_eof, encode_registry};
            encode_registry(out, &self.registry)?;
            encode_registry(out, &self.process)?;
            encode_eof(out)
        };
        encode(&mut out).expect("writing to a String cannot fail");
        out
    }

    /// The exposition in `format` (metrics_format.rs).
    pub fn render_as(&self, format: crate::metrics_format::Format) -> String {
        match format {
            crate::metrics_format::Format::OpenMetrics => self.render(),
            crate::metrics_format::Format::PrometheusText => {
                crate::metrics_format::to_prometheus_text(&self.render())
            }
        }
    }
}

/// VmRSS from /proc/self/status (kB); `None` where there is no procfs.
fn resident_memory_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_closed_labels() {
        let m = Metrics::new();
        m.request(RouteClass::Proxy, http::StatusCode::OK);
        m.rejected("bad_host");
        m.connection_opened();
        m.guard_trip("school", "email");
        let text = m.render();
        assert!(text.contains("nymgate_requests_total{route=\"proxy\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("nymgate_rejected_requests_total{reason=\"bad_host\"} 1"), "{text}");
        assert!(text.contains("nymgate_open_connections 1"), "{text}");
        let rss = text.lines().find_map(|l| l.strip_prefix("nymgate_resident_memory_bytes ")).unwrap();
        assert!(rss.parse::<i64>().unwrap() > 1 << 20, "{text}");
        assert!(text.contains("nymgate_guard_trips_total{claim=\"school\",detector=\"email\"} 1"), "{text}");
    }

    #[test]
    fn every_family_is_declared_before_its_first_event() {
        let text = Metrics::new().render();
        for family in
            ["nymgate_requests", "nymgate_logins", "nymgate_guard_trips", "nymgate_tenant_login_failures"]
        {
            assert!(text.contains(&format!("# TYPE {family} counter\n")), "{family}: {text}");
        }
        assert!(text.contains("nymgate_config_reloads_total{outcome=\"refused\"} 0\n"), "{text}");
        assert!(text.contains("nymgate_login_step_duration_seconds_count{step=\"commit\"} 0\n"), "{text}");
        assert!(text.contains("nymgate_retention_tampered_records_total 0\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
