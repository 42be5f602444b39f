//! `[store]`: where single-use claims and failed-login counters live (docs/DEPLOY.md).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{defaults, validate_secret_source, Config, SecretSource};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreBackend {
    /// In this process: right for one instance.
    #[default]
    Memory,
    /// Redis, shared by every replica.
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default)]
    pub backend: StoreBackend,
    /// `redis://host:port/db`, or `rediss://host:port/db` for TLS. Credentials go in
    /// `username` and `password`, never in the URL.
    #[serde(default)]
    pub url: Option<String>,
    /// The Redis ACL user (Redis 6+); without it, AUTH with the password alone.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// CA certificates for `rediss://` (PEM); without it, the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Connections to Redis per process, at most.
    #[serde(default = "defaults::store_pool_size")]
    pub pool_size: usize,
    /// How long one command may take, all of it: waiting for a pooled connection, connecting
    /// (TLS, AUTH, SELECT), writing, and reading every byte of the reply, however Redis paces
    /// them (store/redis.rs).
    #[serde(default = "defaults::store_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Prefix of every key nymgate writes, so a Redis can be shared with other programs.
    #[serde(default = "defaults::store_key_prefix")]
    pub key_prefix: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Memory,
            url: None,
            username: None,
            password: None,
            ca_file: None,
            pool_size: defaults::store_pool_size(),
            timeout: defaults::store_timeout(),
            key_prefix: defaults::store_key_prefix(),
        }
    }
}

/// A parsed `redis://` or `rediss://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub db: u32,
}

impl RedisUrl {
    pub fn parse(text: &str) -> Result<RedisUrl, String> {
        let url = openidconnect::url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => return Err(format!("scheme {other:?}: use redis:// or rediss:// (TLS)")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials in the URL: put them in store.username and store.password".into());
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or("the URL has no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let db = match url.path().trim_start_matches('/') {
            "" => 0,
            db => db.parse().map_err(|_| format!("database {db:?} is not a number"))?,
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err("the URL has a query or fragment nymgate does not read".into());
        }
        Ok(RedisUrl { tls, host, port: url.port().unwrap_or(6379), db })
    }
}

impl Config {
    pub(super) fn validate_store(&self, problem: &mut impl FnMut(&str, String)) {
        let store = &self.store;
        if store.backend == StoreBackend::Memory {
            if store.url.is_some() {
                problem(
                    "store.url",
                    "is set but store.backend is \"memory\": add backend = \"redis\"".into(),
                );
            }
            return;
        }
        match store.url.as_deref().map(RedisUrl::parse) {
            None => problem(
                "store.url",
                "required with backend = \"redis\", e.g. \"redis://127.0.0.1:6379/0\"".into(),
            ),
            Some(Err(message)) => problem("store.url", message),
            Some(Ok(url)) => {
                if store.ca_file.is_some() && !url.tls {
                    problem("store.ca_file", "is only used with a rediss:// (TLS) URL".into());
                }
            }
        }
        if let Some(password) = &store.password {
            validate_secret_source(password, "store.password", problem);
        }
        if let Some(ca) = &store.ca_file {
            if let Err(e) = std::fs::metadata(ca) {
                problem("store.ca_file", format!("cannot read {}: {e}", ca.display()));
            }
        }
        if store.pool_size == 0 {
            problem("store.pool_size", "must be at least 1".into());
        }
        if store.timeout.is_zero() {
            problem("store.timeout", "must be more than 0 (try \"500ms\")".into());
        }
        // Replicas must open each other's sealed cookies and codes, and count a client under the
        // same key: both come from the seal secret.
        if let Some(login) = &self.login {
            if login.seal_secret.is_none() {
                problem(
                    "login.seal_secret",
                    "required with store.backend = \"redis\": every replica must share it".into(),
                );
            }
            if login.signing.key_file.is_none() {
                problem(
                    "login.signing.key_file",
                    "required with store.backend = \"redis\": every replica must sign with the same key \
                     (`nymgate keys signing --out FILE` makes one)"
                        .into(),
                );
            }
        }
    }
}
