//! What a login tells the metrics: its outcome (overall and under its tenant) and the time of
//! each of its steps (src/metrics_login.rs).

use std::sync::Mutex;
use std::time::Instant;

use super::Login;
use crate::metrics::Metrics;
use crate::metrics_login::Step;

impl Login {
    /// One finished attempt, in `nymgate_logins_total` and, when `tenant` is one of this
    /// config's tenants, in the per-tenant counters. The tenant id recorded is the config's
    /// own string: whatever the caller holds (a flow cookie's, a path's) only selects it, so no
    /// other value can become a label.
    pub(super) fn count(
        &self,
        tenant: Option<&str>,
        protocol: &'static str,
        outcome: &'static str,
        reason: &'static str,
    ) {
        self.metrics.login(protocol, outcome, reason);
        if let Some(known) = tenant.and_then(|tenant| self.tenants.iter().find(|t| t.id == tenant)) {
            self.metrics.logins_by.tenant_login(&known.id, outcome, reason);
        }
    }

    /// Every configured tenant's counters at zero (called when a config is built).
    pub(super) fn declare_tenant_metrics(&self) {
        self.metrics.logins_by.declare_tenants(self.tenants.iter().map(|t| t.id.as_str()));
    }

    /// Records the retention store refused as tampered, for `/metrics` (0 without a store).
    pub fn retention_tampered(&self) -> u64 {
        self.retention.as_ref().map_or(0, |store| store.tampered_total())
    }
}

/// Times the steps of one login, one after the other: [`StepClock::next`] ends the step that
/// runs and starts another; [`StepClock::stop`] ends it without another. Whatever step runs
/// when the clock is dropped is ended then, so a step left by `?` is timed too (a failing
/// verify is often the slowest: an IdP that does not answer).
pub(super) struct StepClock<'a> {
    metrics: &'a Metrics,
    /// A lock, not a Cell: the login's future holds the clock across awaits and must be Send.
    running: Mutex<Option<(Step, Instant)>>,
}

impl<'a> StepClock<'a> {
    /// Starts the first step, `verify`.
    pub fn start(metrics: &'a Metrics) -> Self {
        StepClock { metrics, running: Mutex::new(Some((Step::Verify, Instant::now()))) }
    }

    pub fn next(&self, step: Step) {
        self.stop();
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Some((step, Instant::now()));
    }

    pub fn stop(&self) {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((step, since)) = running {
            self.metrics.logins_by.step(step, since.elapsed());
        }
    }

    /// Ends the running step untimed: what ran was no login (nymgate's own SAML Response
    /// passing through the intercepted ACS).
    pub fn discard(&self) {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// After the steps that decide a login: `commit` follows a decided one; a refused one
    /// stops the clock (its refusal page is not a step).
    pub fn decided<T, E>(&self, outcome: &Result<T, E>) {
        match outcome {
            Ok(_) => self.next(Step::Commit),
            Err(_) => self.stop(),
        }
    }
}

impl Drop for StepClock<'_> {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(metrics: &Metrics, step: &str) -> u64 {
        let text = metrics.render();
        let line = format!("nymgate_login_step_duration_seconds_count{{step=\"{step}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&line)).unwrap().parse().unwrap()
    }

    #[test]
    fn every_step_entered_is_timed_once_even_when_left_early() {
        let metrics = Metrics::new();
        let left_at_verify = || -> Result<(), ()> {
            let _clock = StepClock::start(&metrics);
            Err(())
        };
        assert!(left_at_verify().is_err());
        assert_eq!(count(&metrics, "verify"), 1);
        {
            let clock = StepClock::start(&metrics);
            clock.next(Step::Pseudonymize);
            clock.next(Step::Mint);
            clock.decided(&Ok::<(), ()>(()));
        }
        let counts = ["verify", "pseudonymize", "mint", "commit"].map(|s| count(&metrics, s));
        assert_eq!(counts, [2, 1, 1, 1]);
        {
            let clock = StepClock::start(&metrics);
            clock.decided(&Err::<(), ()>(()));
        }
        let counts = ["verify", "pseudonymize", "mint", "commit"].map(|s| count(&metrics, s));
        assert_eq!(counts, [3, 1, 1, 1], "a refused login has no commit step");
        StepClock::start(&metrics).discard();
        assert_eq!(count(&metrics, "verify"), 3, "discarded");
    }
}
