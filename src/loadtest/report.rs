//! What a load test measured: per-step latency percentiles, rates, errors by kind, and
//! nymgate's resident memory; as a table for people and as JSON for scripts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// A step of a login, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// `GET /nymgate/login/{tenant}` or `/nymgate/authorize`: nymgate sends the browser to the IdP.
    LoginStart,
    /// The school's IdP.
    Idp,
    /// `GET /nymgate/callback` or `POST /nymgate/saml/acs`: nymgate verifies and pseudonymizes.
    Callback,
    /// The platform receives the login: the first proxied request with the assertion header, or
    /// the code redeemed at `POST /nymgate/token`; the token is verified.
    Platform,
    /// An ordinary proxied request of the signed-in person.
    Request,
    /// The whole login, from its start (its scheduled start in open loop) to the platform's
    /// verified token, without the ordinary requests.
    Login,
}

impl Step {
    pub const ALL: [Step; 6] =
        [Step::LoginStart, Step::Idp, Step::Callback, Step::Platform, Step::Request, Step::Login];

    pub fn name(self) -> &'static str {
        match self {
            Step::LoginStart => "login_start",
            Step::Idp => "idp",
            Step::Callback => "callback",
            Step::Platform => "platform",
            Step::Request => "request",
            Step::Login => "login",
        }
    }
}

/// Latencies of one step, in microseconds, kept whole (a run of minutes holds a few million).
#[derive(Default, Clone)]
pub struct Samples(Vec<u32>);

impl Samples {
    pub fn add(&mut self, elapsed: Duration) {
        self.0.push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn merge(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Nearest-rank percentiles (p in 0..=100) in milliseconds.
    pub fn summary(mut self) -> Latency {
        self.0.sort_unstable();
        let at = |p: f64| -> f64 {
            if self.0.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * self.0.len() as f64).ceil().max(1.0) as usize;
            f64::from(self.0[rank.min(self.0.len()) - 1]) / 1000.0
        };
        Latency {
            count: self.0.len() as u64,
            p50_ms: at(50.0),
            p90_ms: at(90.0),
            p99_ms: at(99.0),
            max_ms: at(100.0),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// What one virtual browser measured (merged at the end).
#[derive(Default)]
pub struct Tally {
    pub steps: BTreeMap<Step, Samples>,
    pub logins: u64,
    pub failed_logins: u64,
    pub requests: u64,
    pub errors: BTreeMap<String, u64>,
}

impl Tally {
    pub fn merge(&mut self, other: Tally) {
        for (step, samples) in other.steps {
            self.steps.entry(step).or_default().merge(samples);
        }
        self.logins += other.logins;
        self.failed_logins += other.failed_logins;
        self.requests += other.requests;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
    }
}

/// The run's report (`--json` prints it as is).
#[derive(Debug, Serialize)]
pub struct Report {
    pub target: String,
    pub tenant: String,
    pub protocol: &'static str,
    pub output: &'static str,
    pub http: super::browser::HttpVersion,
    /// `closed` (each browser starts its next login when one ends) or `open` (logins arrive at
    /// `rate` per second whatever the answers take).
    pub mode: &'static str,
    pub rate: Option<f64>,
    pub concurrency: usize,
    pub warmup_s: f64,
    /// Measured time, warm-up excluded.
    pub duration_s: f64,
    pub logins: u64,
    pub failed_logins: u64,
    pub logins_per_s: f64,
    /// Proxied requests (the platform's page and the ordinary requests) per second.
    pub requests_per_s: f64,
    /// Open loop: logins scheduled but not started when the run ended (the target fell behind).
    pub not_started: u64,
    pub latency: BTreeMap<&'static str, Latency>,
    pub errors: BTreeMap<String, u64>,
    /// nymgate's `nymgate_resident_memory_bytes` before and after, when `--admin` is given.
    pub resident_memory_start_bytes: Option<u64>,
    pub resident_memory_end_bytes: Option<u64>,
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = format!(
            "nymgate loadtest: {} ({}, tenant {}, {} output), HTTP/{}, {} loop, concurrency {}{}\n\n",
            self.target,
            self.protocol,
            self.tenant,
            self.output,
            if self.http == super::browser::HttpVersion::Http1 { "1.1" } else { "2" },
            self.mode,
            self.concurrency,
            self.rate.map(|r| format!(", {r} logins/s offered")).unwrap_or_default(),
        );
        out.push_str(&format!(
            "  {} logins ({} failed) in {:.1} s after {:.0} s warm-up: {:.1} logins/s, {:.1} proxied requests/s\n",
            self.logins, self.failed_logins, self.duration_s, self.warmup_s, self.logins_per_s, self.requests_per_s
        ));
        if self.not_started > 0 {
            out.push_str(&format!(
                "  {} scheduled logins never started: the target fell behind\n",
                self.not_started
            ));
        }
        out.push_str(&format!(
            "\n  {:<12} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "step", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"
        ));
        for step in Step::ALL {
            if let Some(l) = self.latency.get(step.name()) {
                out.push_str(&format!(
                    "  {:<12} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
                    step.name(),
                    l.count,
                    l.p50_ms,
                    l.p90_ms,
                    l.p99_ms,
                    l.max_ms
                ));
            }
        }
        if self.errors.is_empty() {
            out.push_str("\n  errors: none\n");
        } else {
            out.push_str("\n  errors:\n");
            for (kind, n) in &self.errors {
                out.push_str(&format!("    {n:>8}  {kind}\n"));
            }
        }
        if let (Some(start), Some(end)) = (self.resident_memory_start_bytes, self.resident_memory_end_bytes) {
            out.push_str(&format!(
                "\n  nymgate resident memory: {:.1} MiB at start, {:.1} MiB at end\n",
                start as f64 / 1048576.0,
                end as f64 / 1048576.0
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples = Samples::default();
        for ms in 1..=100 {
            samples.add(Duration::from_millis(ms));
        }
        let latency = samples.summary();
        assert_eq!(latency, Latency { count: 100, p50_ms: 50.0, p90_ms: 90.0, p99_ms: 99.0, max_ms: 100.0 });
        assert_eq!(Samples::default().summary().count, 0);
    }

    #[test]
    fn tallies_merge() {
        let mut a = Tally { logins: 2, ..Tally::default() };
        a.errors.insert("idp: timed out".into(), 1);
        a.steps.entry(Step::Idp).or_default().add(Duration::from_millis(3));
        let mut b = Tally { logins: 3, ..Tally::default() };
        b.errors.insert("idp: timed out".into(), 2);
        b.steps.entry(Step::Idp).or_default().add(Duration::from_millis(4));
        a.merge(b);
        assert_eq!(a.logins, 5);
        assert_eq!(a.errors["idp: timed out"], 3);
        assert_eq!(a.steps[&Step::Idp].len(), 2);
    }
}
