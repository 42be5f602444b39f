//! Login metrics by tenant and by step (issue 29): registered with the rest in
//! [`crate::metrics::Metrics::new`].
//!
//! A tenant label is a configured tenant's id and nothing else: the login code passes only an
//! id it found in its config ([`crate::login::Login`]), never one from a path, a cookie or an
//! IdP, so the label set is bounded by the config and carries no personal value. A reason is
//! one of nymgate's reason codes (docs/LOGIN.md), `&'static str` by type.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::metrics_format::Declared;

/// The steps of a login after the school's IdP answered (src/login/mod.rs, "verify →
/// pseudonymize → guard → audit"), each timed on its own.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Step {
    /// The IdP's answer checked: the flow cookie and state, the code exchanged and the ID token
    /// verified (a network round trip to the IdP), or the SAML response verified and claimed.
    Verify,
    /// The account number derived, the claim policy and the guard applied.
    Pseudonymize,
    /// What the platform gets built: the authorization code, the session cookie or the signed
    /// SAML Response.
    Mint,
    /// The audit line written (and synced) and the retention record stored.
    Commit,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Verify, Step::Pseudonymize, Step::Mint, Step::Commit];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Verify => "verify",
            Step::Pseudonymize => "pseudonymize",
            Step::Mint => "mint",
            Step::Commit => "commit",
        }
    }
}

impl EncodeLabelValue for Step {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

/// The login outcomes (`ok`, `failed`), as in `nymgate_logins_total`.
pub const OUTCOMES: [&str; 2] = ["ok", "failed"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantOutcome {
    tenant: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantReason {
    tenant: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabel {
    step: Step,
}

/// The per-tenant counters and the step histograms.
pub struct LoginMetrics {
    by_tenant: Family<TenantOutcome, Counter>,
    failures_by_tenant: Family<TenantReason, Counter>,
    steps: Family<StepLabel, Histogram>,
}

impl LoginMetrics {
    pub fn register(registry: &mut Registry) -> LoginMetrics {
        let by_tenant = Family::<TenantOutcome, Counter>::default();
        registry.register(
            "tenant_logins",
            "Login attempts filed under a configured tenant, by tenant and outcome (ok, failed)",
            Declared(by_tenant.clone()),
        );
        let failures_by_tenant = Family::<TenantReason, Counter>::default();
        registry.register(
            "tenant_login_failures",
            "Failed login attempts filed under a configured tenant, by tenant and reason code (docs/LOGIN.md)",
            Declared(failures_by_tenant.clone()),
        );
        // 1 ms to about 16 s: a verify step that asks the IdP can take seconds; the others
        // take milliseconds (BENCHMARKS.md), the audit sync included.
        let steps = Family::<StepLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.001, 2.0, 15))) as fn() -> Histogram,
        );
        registry.register(
            "login_step_duration_seconds",
            "Time of each step of a login after the IdP answered (verify, pseudonymize, mint, commit), whatever its outcome",
            Declared(steps.clone()),
        );
        for step in Step::ALL {
            drop(steps.get_or_create(&StepLabel { step }));
        }
        LoginMetrics { by_tenant, failures_by_tenant, steps }
    }

    /// Every outcome of each tenant at zero, so that a rate over them exists before the first
    /// login (a series that appears with its first increment hides that increment from
    /// `rate()`). Called for every config that comes in service; a tenant a reload removed
    /// keeps its series until the process ends.
    pub fn declare_tenants<'a>(&self, tenants: impl IntoIterator<Item = &'a str>) {
        for tenant in tenants {
            for outcome in OUTCOMES {
                drop(self.by_tenant.get_or_create(&TenantOutcome { tenant: tenant.to_owned(), outcome }));
            }
        }
    }

    /// One finished attempt of a configured tenant; `reason` is `none` for a success.
    pub fn tenant_login(&self, tenant: &str, outcome: &'static str, reason: &'static str) {
        self.by_tenant.get_or_create(&TenantOutcome { tenant: tenant.to_owned(), outcome }).inc();
        if outcome != "ok" {
            self.failures_by_tenant.get_or_create(&TenantReason { tenant: tenant.to_owned(), reason }).inc();
        }
    }

    pub fn step(&self, step: Step, elapsed: std::time::Duration) {
        self.steps.get_or_create(&StepLabel { step }).observe(elapsed.as_secs_f64());
    }
}
