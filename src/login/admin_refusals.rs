//! Admin API calls refused for want of a valid bearer token (docs/RETENTION.md, "Refused
//! calls"): counted one by one, audited in aggregate, and rate-limited.
//!
//! Anyone who reaches the admin listener can make such calls, as fast as they like. Had each
//! its own audit line (and its own `fdatasync`), a flood would cost a sync per call and rotate
//! the real lines (erasures, lookups) out of the log's `keep` files. So:
//! - every refused call is counted (`nymgate_admin_refused_total{reason}`), from a closed set of
//!   reasons, never a value of the request;
//! - the first refusal of an interval is written at once, so a single wrong token is on record
//!   as it happens; the others of that interval become one line with their `count`, written when
//!   the interval ends (or at shutdown). At most two lines per interval, whatever the rate;
//! - past [`BURST`] refusals in one interval, callers get 429 with `Retry-After` instead of 401.
//!   The limit is global (memory: one counter), and applies only to calls already refused: a
//!   valid token is never limited, so a flood cannot lock the DPO out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::audit::{AuditEvent, AuditSink};
use crate::metrics::Metrics;

/// One audit line per this interval, at most (plus the first refusal of the next).
pub const INTERVAL: Duration = Duration::from_secs(60);
/// Refused calls per interval answered 401; those past it get 429.
pub const BURST: u64 = 20;

/// The refused-call ledger of one login face.
pub struct AdminRefusals {
    /// Where the lines go: shared with the flush task that outlives a call.
    audit: Arc<AuditSink>,
    /// The count of every refused call, whether or not its line is written yet.
    metrics: Arc<Metrics>,
    window: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    /// When the current interval began; `None` before the first refusal.
    opened: Option<Instant>,
    /// Refusals in the current interval, for the rate limit.
    in_window: u64,
    /// Refusals counted but not yet on an audit line.
    unwritten: u64,
}

/// What to answer a refused call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 401: a valid bearer token is required.
    Unauthorized,
    /// 429 with `Retry-After` seconds: too many refused calls in this interval.
    RateLimited(u64),
    /// 503: the refusal's own line could not be written (the audit log fails closed).
    AuditUnavailable,
}

impl AdminRefusals {
    pub fn new(audit: Arc<AuditSink>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(AdminRefusals { audit, metrics, window: Mutex::new(Window::default()) })
    }

    /// One call refused for `bad_credentials`.
    pub async fn refuse(self: &Arc<Self>) -> Answer {
        self.metrics.admin_refused("bad_credentials");
        let now = Instant::now();
        let (first, in_window, left) = {
            let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
            match window.opened {
                Some(at) if now.duration_since(at) < INTERVAL => {
                    window.in_window += 1;
                    window.unwritten += 1;
                    (false, window.in_window, INTERVAL - now.duration_since(at))
                }
                _ => {
                    window.opened = Some(now);
                    window.in_window = 1;
                    (true, 1, INTERVAL)
                }
            }
        };
        if first {
            // This interval's other refusals are written when it ends, by a task of their own.
            let ledger = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(INTERVAL).await;
                ledger.flush().await;
            });
            if self.write(1).await.is_err() {
                return Answer::AuditUnavailable;
            }
        }
        if in_window > BURST {
            self.metrics.admin_refused("rate_limited");
            return Answer::RateLimited(left.as_secs().max(1));
        }
        Answer::Unauthorized
    }

    /// Writes the refusals counted but not yet written, as one line (at an interval's end and
    /// at shutdown). A line that cannot be written keeps its count for the next flush.
    pub async fn flush(&self) {
        let count = std::mem::take(&mut self.window.lock().unwrap_or_else(|e| e.into_inner()).unwritten);
        if count > 0 && self.write(count).await.is_err() {
            self.window.lock().unwrap_or_else(|e| e.into_inner()).unwritten += count;
        }
    }

    async fn write(&self, count: u64) -> std::io::Result<()> {
        let event = AuditEvent {
            reason: Some("bad_credentials"),
            count: Some(count),
            ..AuditEvent::admin("retention_api", "refused")
        };
        let written = self.audit.record_async(&event).await;
        if let Err(error) = &written {
            self.metrics.audit_failure("admin");
            tracing::error!(%error, "audit line of refused admin calls could not be written");
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A flood of refused calls: one line at once, one with the rest at the flush, 429 past the
    /// burst, and every call counted.
    #[tokio::test]
    async fn a_flood_of_refusals_is_two_lines_and_rate_limited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let metrics = Arc::new(Metrics::new());
        let ledger = AdminRefusals::new(Arc::new(AuditSink::from_path(Some(&path))), metrics.clone());
        let mut answers = Vec::new();
        for _ in 0..500 {
            answers.push(ledger.refuse().await);
        }
        assert!(answers[..BURST as usize].iter().all(|a| *a == Answer::Unauthorized));
        assert!(answers[BURST as usize..].iter().all(|a| matches!(a, Answer::RateLimited(s) if *s >= 1)));
        assert_eq!(lines(&path).len(), 1, "only the first refusal is written at once");
        ledger.flush().await;
        let written = lines(&path);
        assert_eq!(written.len(), 2);
        let total: u64 = written.iter().map(|l| l["count"].as_u64().unwrap()).sum();
        assert_eq!(total, 500);
        assert!(written.iter().all(|l| l["reason"] == "bad_credentials" && l["outcome"] == "refused"));
        let text = metrics.render();
        assert!(text.contains("nymgate_admin_refused_total{reason=\"bad_credentials\"} 500"), "{text}");
        let limited = 500 - BURST;
        assert!(text.contains(&format!("nymgate_admin_refused_total{{reason=\"rate_limited\"}} {limited}")));
    }

    #[tokio::test]
    async fn a_refusal_whose_line_cannot_be_written_is_answered_503() {
        let dir = tempfile::tempdir().unwrap();
        let sink = AuditSink::from_path(Some(&dir.path().join("missing/audit.log")));
        let metrics = Arc::new(Metrics::new());
        let ledger = AdminRefusals::new(Arc::new(sink), metrics.clone());
        assert_eq!(ledger.refuse().await, Answer::AuditUnavailable);
        assert!(metrics.render().contains("nymgate_audit_failures_total{kind=\"admin\"} 1"));
    }
}
