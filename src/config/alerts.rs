//! `[alerts]`: when failed logins of one kind become an alert, and where alerts are sent
//! (docs/ALERTS.md).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::SecretSource;

/// Thresholds count events of one kind for one tenant within `window`; 0 turns a kind off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    #[serde(default = "defaults::window", with = "humantime_serde")]
    pub window: Duration,
    /// Messages that did not prove they came from the IdP: bad or missing signatures, unknown
    /// keys, refused algorithms, and the SAML shapes of wrapping and XXE attacks. One can be a
    /// misconfigured IdP; several within the window are someone trying.
    #[serde(default = "defaults::signature_failure")]
    pub signature_failure: u32,
    /// A state or an assertion presented twice. A person pressing Back and resubmitting makes
    /// one, so the default waits for several.
    #[serde(default = "defaults::replay")]
    pub replay: u32,
    /// An outgoing claim carried a personal value: always a policy defect, alerted at once.
    #[serde(default = "defaults::at_once")]
    pub guard_trip: u32,
    /// A client was blocked after too many failed logins.
    #[serde(default = "defaults::at_once")]
    pub client_blocked: u32,
    /// Also POST each alert here (signed, retried; never in a login's way).
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            window: defaults::window(),
            signature_failure: defaults::signature_failure(),
            replay: defaults::replay(),
            guard_trip: defaults::at_once(),
            client_blocked: defaults::at_once(),
            webhook: None,
        }
    }
}

/// `[alerts.webhook]`: an HTTPS endpoint that takes Standard Webhooks deliveries
/// (https://www.standardwebhooks.com: `webhook-id`, `webhook-timestamp`, `webhook-signature`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `https://…` (plain http only on loopback).
    pub url: String,
    /// The signing secret in the Standard Webhooks form, `whsec_` and base64 of 24 to 64 bytes.
    pub secret: SecretSource,
    /// CA bundle for a private receiver; default: the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// One attempt's limit, connect to response.
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts per alert before it is given up (logged and counted).
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each one, up to 5 minutes.
    #[serde(default = "defaults::retry_backoff", with = "humantime_serde")]
    pub retry_backoff: Duration,
}

mod defaults {
    use std::time::Duration;

    pub fn window() -> Duration {
        Duration::from_secs(300)
    }
    pub fn signature_failure() -> u32 {
        5
    }
    pub fn replay() -> u32 {
        5
    }
    pub fn at_once() -> u32 {
        1
    }
    pub fn timeout() -> Duration {
        Duration::from_secs(10)
    }
    /// With the default backoff: 2, 4, 8, 16 and 32 s, about a minute of a receiver's outage.
    pub fn max_attempts() -> u32 {
        6
    }
    pub fn retry_backoff() -> Duration {
        Duration::from_secs(2)
    }
}

impl AlertsConfig {
    pub(super) fn resolve_paths(&mut self, fix: impl Fn(&mut PathBuf)) {
        if let Some(webhook) = self.webhook.as_mut() {
            if let SecretSource::File(path) = &mut webhook.secret {
                fix(path);
            }
            webhook.ca_file.iter_mut().for_each(fix);
        }
    }

    pub(super) fn validate(&self, problem: &mut impl FnMut(&str, String)) {
        if self.window.is_zero() {
            problem("alerts.window", "must be more than 0s".into());
        }
        let Some(webhook) = &self.webhook else { return };
        if let Err(message) = super::validate_https_url(&webhook.url, true) {
            problem("alerts.webhook.url", message);
        }
        super::validate_secret_source(&webhook.secret, "alerts.webhook.secret", problem);
        if webhook.timeout.is_zero() {
            problem("alerts.webhook.timeout", "must be more than 0s".into());
        }
        if !(1..=20).contains(&webhook.max_attempts) {
            problem("alerts.webhook.max_attempts", "must be 1 to 20".into());
        }
        if let Some(ca) = &webhook.ca_file {
            if let Err(e) = std::fs::metadata(ca) {
                problem("alerts.webhook.ca_file", format!("cannot read {}: {e}", ca.display()));
            }
        }
    }
}
