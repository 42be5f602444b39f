//! Alerts (shared/PRODUCT.md, "Security promises": attempts at unauthorized access are detected
//! and reported; docs/ALERTS.md).
//!
//! Failed logins of four kinds are counted per tenant over a sliding window: signature failures,
//! replays, guard trips and blocked clients. When a count reaches its threshold an alert is
//! raised: one log line at error level, `nymgate_alerts_total{kind}`, and, when a webhook is
//! configured, a signed POST.
//!
//! Nothing here can slow a login: `observe` takes a short lock and at most queues the alert;
//! one background task delivers queued alerts with retries and backoff, and when its queue is
//! full an alert is dropped from the webhook (never from the log or the metrics) and counted.
//! An alert holds a kind, a tenant id, counts and a reason code: no personal value, no address.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::clock::unix_now;
use crate::config::{AlertsConfig, WebhookConfig};
use crate::idp_http::IdpHttp;
use crate::metrics::Metrics;
use crate::secret::Secret;

/// Alerts waiting for the webhook; past this, new ones are dropped from the webhook.
const QUEUE: usize = 256;
/// (kind, tenant) pairs tracked; tenants come from the config, so this is never reached in
/// practice, and past it events count under no tenant.
const MAX_TRACKS: usize = 4096;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertKind {
    SignatureFailure,
    Replay,
    GuardTrip,
    ClientBlocked,
}

impl AlertKind {
    pub const ALL: [AlertKind; 4] =
        [AlertKind::SignatureFailure, AlertKind::Replay, AlertKind::GuardTrip, AlertKind::ClientBlocked];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::SignatureFailure => "signature_failure",
            AlertKind::Replay => "replay",
            AlertKind::GuardTrip => "guard_trip",
            AlertKind::ClientBlocked => "client_blocked",
        }
    }

    /// The kind a failed login's reason code (docs/LOGIN.md) belongs to, if any. The SAML
    /// shapes of signature wrapping (`saml_structure`) and XXE (`saml_doctype`) and a refused
    /// algorithm are attempts to get past the signature, so they count as signature failures.
    pub fn of_reason(reason: &str) -> Option<AlertKind> {
        match reason {
            "bad_signature"
            | "unknown_kid"
            | "saml_signature_invalid"
            | "saml_signature_missing"
            | "saml_algorithm"
            | "saml_structure"
            | "saml_doctype" => Some(AlertKind::SignatureFailure),
            "state_replayed" | "saml_replayed" => Some(AlertKind::Replay),
            "guard_tripped" => Some(AlertKind::GuardTrip),
            _ => None,
        }
    }
}

/// One raised alert, as the log line and the webhook body give it.
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    pub alert_id: String,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Events of this kind for this tenant within the window (the threshold).
    pub count: u32,
    pub window_secs: u64,
    /// The reason code of the event that raised it.
    pub reason: &'static str,
    /// Unix seconds.
    #[serde(skip)]
    pub raised_at: u64,
}

/// Events of one kind for one tenant.
#[derive(Default)]
struct Track {
    /// Times of the latest events, at most `threshold` of them.
    recent: VecDeque<u64>,
    /// No second alert for the same kind and tenant before this (one per window).
    quiet_until: u64,
}

pub struct Alerts {
    window_secs: u64,
    signature_failure: u32,
    replay: u32,
    guard_trip: u32,
    client_blocked: u32,
    tracks: Mutex<HashMap<(AlertKind, Option<String>), Track>>,
    metrics: Arc<Metrics>,
    webhook: Option<mpsc::Sender<Alert>>,
}

impl Alerts {
    /// Compiles `[alerts]`; with a webhook, starts its delivery task on the current runtime.
    pub fn new(
        config: &AlertsConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Alerts>, crate::config::ConfigProblem> {
        let webhook = match &config.webhook {
            Some(settings) => {
                let webhook = Webhook::new(settings, metrics.clone())?;
                let (sender, receiver) = mpsc::channel(QUEUE);
                tokio::spawn(webhook.run(receiver));
                Some(sender)
            }
            None => None,
        };
        Ok(Arc::new(Alerts {
            window_secs: config.window.as_secs().max(1),
            signature_failure: config.signature_failure,
            replay: config.replay,
            guard_trip: config.guard_trip,
            client_blocked: config.client_blocked,
            tracks: Mutex::default(),
            metrics,
            webhook,
        }))
    }

    fn threshold(&self, kind: AlertKind) -> u32 {
        match kind {
            AlertKind::SignatureFailure => self.signature_failure,
            AlertKind::Replay => self.replay,
            AlertKind::GuardTrip => self.guard_trip,
            AlertKind::ClientBlocked => self.client_blocked,
        }
    }

    /// Counts one event; raises an alert when the tenant's events of this kind within the
    /// window reach the threshold, at most once per window. `tenant` must be a configured
    /// tenant's id (never a value from the request). Returns the alert when one was raised.
    pub fn observe(&self, kind: AlertKind, tenant: Option<&str>, reason: &'static str) -> Option<Alert> {
        self.observe_at(kind, tenant, reason, unix_now())
    }

    fn observe_at(
        &self,
        kind: AlertKind,
        tenant: Option<&str>,
        reason: &'static str,
        now: u64,
    ) -> Option<Alert> {
        let threshold = self.threshold(kind);
        if threshold == 0 {
            return None;
        }
        let count = {
            let mut tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
            let mut key = (kind, tenant.map(str::to_owned));
            if tracks.len() >= MAX_TRACKS && !tracks.contains_key(&key) {
                let window = self.window_secs;
                tracks.retain(|_, t| t.recent.back().is_some_and(|&last| last + window > now));
                if tracks.len() >= MAX_TRACKS {
                    key.1 = None;
                }
            }
            let track = tracks.entry(key).or_default();
            track.recent.push_back(now);
            while track.recent.len() > threshold as usize {
                track.recent.pop_front();
            }
            let oldest = *track.recent.front().expect("just pushed");
            let reached = track.recent.len() == threshold as usize && oldest + self.window_secs > now;
            if !reached || now < track.quiet_until {
                return None;
            }
            track.quiet_until = now + self.window_secs;
            track.recent.len() as u32
        };
        let alert = Alert {
            alert_id: format!("msg_{}", crate::secret::random_hex::<12>()),
            kind: kind.as_str(),
            tenant: tenant.map(str::to_owned),
            count,
            window_secs: self.window_secs,
            reason,
            raised_at: now,
        };
        self.metrics.alert(alert.kind);
        tracing::error!(
            alert_id = alert.alert_id,
            alert = alert.kind,
            tenant = alert.tenant,
            count,
            window_secs = alert.window_secs,
            reason,
            "alert: {count} {} within {}s",
            alert.kind,
            alert.window_secs
        );
        if let Some(queue) = &self.webhook {
            if queue.try_send(alert.clone()).is_err() {
                self.metrics.alert_webhook("dropped");
                tracing::error!(alert_id = alert.alert_id, "alert webhook queue is full: alert not sent");
            }
        }
        Some(alert)
    }
}

/// The webhook's delivery side: one task, one alert at a time.
struct Webhook {
    url: String,
    secret: Secret,
    client: IdpHttp,
    max_attempts: u32,
    retry_backoff: Duration,
    metrics: Arc<Metrics>,
}

impl Webhook {
    fn new(config: &WebhookConfig, metrics: Arc<Metrics>) -> Result<Self, crate::config::ConfigProblem> {
        let secret = Secret::load(&config.secret)
            .map_err(|e| crate::config::ConfigProblem::new("alerts.webhook.secret", e))?;
        let secret = decode_secret(secret.expose())
            .map_err(|e| crate::config::ConfigProblem::new("alerts.webhook.secret", e))?;
        let client = IdpHttp::new(config.ca_file.as_deref())
            .map_err(|e| crate::config::ConfigProblem::new("alerts.webhook.ca_file", e))?
            .with_timeout(config.timeout);
        Ok(Webhook {
            url: config.url.clone(),
            secret,
            client,
            max_attempts: config.max_attempts.max(1),
            retry_backoff: config.retry_backoff,
            metrics,
        })
    }

    async fn run(self, mut queue: mpsc::Receiver<Alert>) {
        while let Some(alert) = queue.recv().await {
            self.deliver(&alert).await;
        }
    }

    /// POSTs one alert until a 2xx or `max_attempts`; each attempt is signed anew (its
    /// timestamp is the attempt's), under the same `webhook-id` so the receiver can drop repeats.
    async fn deliver(&self, alert: &Alert) {
        let body = webhook_body(alert);
        let mut wait = self.retry_backoff;
        for attempt in 1..=self.max_attempts {
            let timestamp = unix_now();
            let request = http::Request::post(&self.url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::USER_AGENT, concat!("nymgate/", env!("CARGO_PKG_VERSION")))
                .header("webhook-id", &alert.alert_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", sign(&self.secret, &alert.alert_id, timestamp, &body))
                .body(body.clone())
                .expect("a valid request");
            let failure = match self.client.execute(request).await {
                Ok(response) if response.status().is_success() => {
                    self.metrics.alert_webhook("delivered");
                    tracing::info!(alert_id = alert.alert_id, attempt, "alert delivered to the webhook");
                    return;
                }
                Ok(response) => format!("answered {}", response.status()),
                Err(error) => error.to_string(),
            };
            if attempt < self.max_attempts {
                tracing::warn!(alert_id = alert.alert_id, attempt, failure, retry_in = ?wait, "alert webhook attempt failed");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_BACKOFF);
            } else {
                self.metrics.alert_webhook("failed");
                tracing::error!(alert_id = alert.alert_id, attempt, failure, "alert webhook gave up");
            }
        }
    }
}

/// The Standard Webhooks envelope: `type`, `timestamp`, `data`.
fn webhook_body(alert: &Alert) -> Vec<u8> {
    let envelope = serde_json::json!({
        "type": "nymgate.alert",
        "timestamp": crate::audit::rfc3339(alert.raised_at),
        "data": alert,
    });
    serde_json::to_vec(&envelope).expect("alerts serialize")
}

/// `webhook-signature` (Standard Webhooks, "Signature scheme"): `v1,` and the base64 of
/// HMAC-SHA256 over `{id}.{timestamp}.{body}`.
fn sign(secret: &Secret, id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.expose()).expect("HMAC takes any key");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// `whsec_` and base64 of 24 to 64 bytes (the Standard Webhooks secret format), so that any
/// receiver library takes the same string.
fn decode_secret(text: &[u8]) -> Result<Secret, String> {
    const HINT: &str = "make one with: printf 'whsec_%s' \"$(head -c 32 /dev/urandom | base64)\"";
    let encoded = text
        .strip_prefix(b"whsec_")
        .ok_or_else(|| format!("must start with whsec_ (Standard Webhooks form); {HINT}"))?;
    let bytes = STANDARD.decode(encoded).map_err(|_| format!("is not whsec_ and base64; {HINT}"))?;
    if !(24..=64).contains(&bytes.len()) {
        return Err(format!("must hold 24 to 64 bytes; {HINT}"));
    }
    Ok(Secret::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alerts(signature_failure: u32) -> Alerts {
        Alerts {
            window_secs: 60,
            signature_failure,
            replay: 2,
            guard_trip: 1,
            client_blocked: 0,
            tracks: Mutex::default(),
            metrics: Arc::new(Metrics::new()),
            webhook: None,
        }
    }

    #[test]
    fn raises_at_the_threshold_within_the_window_once_per_window() {
        let a = alerts(3);
        let sig = AlertKind::SignatureFailure;
        assert!(a.observe_at(sig, Some("s"), "bad_signature", 100).is_none());
        assert!(a.observe_at(sig, Some("s"), "bad_signature", 110).is_none());
        let alert = a.observe_at(sig, Some("s"), "saml_structure", 120).expect("third within 60 s");
        assert_eq!((alert.kind, alert.count, alert.reason), ("signature_failure", 3, "saml_structure"));
        assert_eq!(alert.tenant.as_deref(), Some("s"));
        // Quiet for the rest of the window, then raised again.
        assert!(a.observe_at(sig, Some("s"), "bad_signature", 130).is_none());
        assert!(a.observe_at(sig, Some("s"), "bad_signature", 179).is_none());
        assert!(a.observe_at(sig, Some("s"), "bad_signature", 180).is_some());
        let text = a.metrics.render();
        assert!(text.contains(r#"nymgate_alerts_total{kind="signature_failure"} 2"#), "{text}");
    }

    #[test]
    fn events_spread_wider_than_the_window_do_not_raise() {
        let a = alerts(3);
        for t in [0, 40, 80, 120, 160] {
            assert!(a.observe_at(AlertKind::SignatureFailure, None, "bad_signature", t).is_none(), "at {t}");
        }
    }

    #[test]
    fn tenants_and_kinds_count_apart_and_zero_turns_a_kind_off() {
        let a = alerts(2);
        assert!(a.observe_at(AlertKind::SignatureFailure, Some("a"), "bad_signature", 1).is_none());
        assert!(a.observe_at(AlertKind::SignatureFailure, Some("b"), "bad_signature", 1).is_none());
        assert!(a.observe_at(AlertKind::Replay, Some("a"), "state_replayed", 1).is_none());
        assert!(a.observe_at(AlertKind::SignatureFailure, Some("a"), "bad_signature", 2).is_some());
        assert!(a.observe_at(AlertKind::GuardTrip, Some("a"), "guard_tripped", 2).is_some(), "threshold 1");
        for t in 0..5 {
            assert!(a.observe_at(AlertKind::ClientBlocked, Some("a"), "blocked", t).is_none(), "off");
        }
    }

    #[test]
    fn reason_codes_map_to_kinds() {
        assert_eq!(AlertKind::of_reason("saml_signature_invalid"), Some(AlertKind::SignatureFailure));
        assert_eq!(AlertKind::of_reason("saml_doctype"), Some(AlertKind::SignatureFailure));
        assert_eq!(AlertKind::of_reason("saml_replayed"), Some(AlertKind::Replay));
        assert_eq!(AlertKind::of_reason("guard_tripped"), Some(AlertKind::GuardTrip));
        assert_eq!(AlertKind::of_reason("idp_error"), None);
        assert_eq!(AlertKind::of_reason("bad_nonce"), None);
    }

    #[test]
    fn webhook_secret_takes_the_standard_form_only() {
        let good = format!("whsec_{}", STANDARD.encode([7u8; 32]));
        assert_eq!(decode_secret(good.as_bytes()).unwrap().expose(), &[7u8; 32]);
        assert!(decode_secret(STANDARD.encode([7u8; 32]).as_bytes()).is_err(), "no prefix");
        assert!(decode_secret(b"whsec_not base64!").is_err());
        assert!(decode_secret(format!("whsec_{}", STANDARD.encode([7u8; 8])).as_bytes()).is_err(), "short");
    }

    /// The signed content is `id.timestamp.body` (Standard Webhooks); recomputed here with the
    /// HMAC primitive, and checked against an independent verifier (npm `standardwebhooks`) in
    /// tests/alerts.rs.
    #[test]
    fn signature_covers_id_timestamp_and_body() {
        let secret = Secret::new(vec![1; 32]);
        let signature = sign(&secret, "msg_1", 1_700_000_000, b"{}");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&[1; 32]).unwrap();
        mac.update(b"msg_1.1700000000.{}");
        assert_eq!(signature, format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())));
        assert_ne!(signature, sign(&secret, "msg_2", 1_700_000_000, b"{}"));
        assert_ne!(signature, sign(&secret, "msg_1", 1_700_000_001, b"{}"));
        assert_ne!(signature, sign(&secret, "msg_1", 1_700_000_000, b"{ }"));
    }

    #[test]
    fn body_is_the_standard_envelope_without_personal_fields() {
        let alert = alerts(1).observe_at(AlertKind::GuardTrip, Some("school-a"), "guard_tripped", 0).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&webhook_body(&alert)).unwrap();
        assert_eq!(body["type"], "nymgate.alert");
        assert_eq!(body["timestamp"], "1970-01-01T00:00:00Z");
        let data = body["data"].as_object().unwrap();
        let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["alert_id", "count", "kind", "reason", "tenant", "window_secs"]);
    }
}
