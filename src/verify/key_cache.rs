//! One JWKS cache per school IdP, shared by every tenant that trusts it (issue 26, "One key
//! cache per IdP").
//!
//! Why shared: Feide, a municipality IdP or one Entra directory serve several schools, each a
//! tenant. When each tenant kept its own copy of the IdP's keys, a key the IdP removed stayed
//! trusted by one tenant while another had already dropped it, and each tenant's refetch bound
//! ran on its own clock. Here the tenants of one IdP see one key set, fetched on one schedule.
//!
//! - **Schedule.** A verification first makes sure the keys are no older than the calling
//!   tenant's `jwks_refresh` (default 5 minutes), refetching if they are: a key the IdP removed
//!   stops verifying within `jwks_refresh` on every tenant (OIDC Core §10.1.1: the RP must be
//!   ready for the IdP to remove keys; RFC 7517 §5 leaves the rotation to the IdP).
//! - **Rotation.** A token whose `kid` is not in the set refetches at once (OIDC Core §10.1.1),
//!   unless a fetch was attempted within the calling tenant's `jwks_refetch_interval` (a few
//!   seconds): the bound is per IdP, so forged kids on any of its tenants can't make nymgate
//!   hammer it, and a real rotation waits at most that long on every tenant.
//! - **Single flight.** One fetch at a time per IdP; concurrent callers wait and reuse its keys.
//! - **Failure.** When a refresh fails, the last keys serve for at most [`STALE_KEYS_GRACE`]
//!   past the tenant's `jwks_refresh` (an IdP blip must not stop every login), with a warning
//!   that names the tenants and a fixed description of the failure, never the URL or the
//!   IdP's bytes. After that the login fails with `idp_metadata` (502) until a fetch succeeds.
//!
//! The cache is keyed by the JWKS URI and the tenants' `ca_file`: tenants that trust the IdP's
//! TLS differently don't share what one of them fetched. Keys are parsed for the union of the
//! algorithms the sharing tenants allow; every use passes the caller's own list (`has_kid`,
//! `usable_with`, `IdpKeys::verify`), so each tenant accepts exactly what it did alone.
//!
//! The clock is tokio's, so the unit tests below pause and advance it.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use openidconnect::core::CoreJwsSigningAlgorithm as Alg;
use tokio::time::Instant;

use super::jwks::IdpKeys;
use crate::idp_http::{IdpHttp, IdpHttpError};

/// How long past a tenant's `jwks_refresh` the last keys still verify while the IdP's JWKS
/// can't be fetched. Long enough for an IdP's restart or a network blip; short enough that a
/// key the IdP removed is not trusted for long by a nymgate that can't reach it (an attacker
/// who blocks the fetch gains at most this).
pub const STALE_KEYS_GRACE: Duration = Duration::from_secs(15 * 60);

/// A fetch's future: the JWKS document's bytes, or what went wrong in nymgate's own words.
pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>>;

/// Where a cache gets the JWKS document: the IdP over HTTPS ([`IdpHttp`]), or a test's source.
pub trait JwksSource: Send + Sync {
    /// GET `uri`. The error never quotes the URI or the IdP's answer.
    fn fetch<'a>(&'a self, uri: &'a str) -> FetchFuture<'a>;
}

impl JwksSource for IdpHttp {
    fn fetch<'a>(&'a self, uri: &'a str) -> FetchFuture<'a> {
        Box::pin(async move {
            let response = self.get(uri, "application/json").await.map_err(|error| {
                // A transport error's text can name the IdP's host (a TLS name mismatch does):
                // the JWKS URI is the IdP's choice, so only the kind of failure is kept.
                match error {
                    IdpHttpError::Timeout(after) => {
                        format!("the JWKS endpoint did not answer within {after:?}")
                    }
                    IdpHttpError::TooLarge => "the JWKS is larger than 1 MiB".to_owned(),
                    IdpHttpError::Transport(_) => {
                        "the JWKS endpoint is unreachable (connection or TLS)".to_owned()
                    }
                }
            })?;
            if !response.status().is_success() {
                return Err(format!("the JWKS endpoint answered {}", response.status().as_u16()));
            }
            Ok(response.into_body())
        })
    }
}

/// The key set as fetched, and when.
pub struct FetchedKeys {
    pub keys: IdpKeys,
    pub fetched: Instant,
}

/// One IdP's keys, shared by its tenants (those with the same JWKS URI and `ca_file`).
pub struct JwksCache {
    uri: String,
    /// The union of the sharing tenants' `algorithms`: what the keys are parsed for.
    algorithms: Vec<Alg>,
    source: Arc<dyn JwksSource>,
    /// The tenants that use this cache, for log lines (the URI is never logged).
    tenants: Mutex<BTreeSet<String>>,
    current: ArcSwapOption<FetchedKeys>,
    /// One fetch at a time; the others wait and reuse its result.
    fetching: tokio::sync::Mutex<()>,
    /// When a fetch was last attempted, successful or not: the per-IdP bound on refetches
    /// for an unknown kid.
    last_attempt: Mutex<Option<Instant>>,
    /// When the last attempt failed, if it did: a failing IdP is asked again only after the
    /// bound. (A successful fetch does not hold back the schedule: a tenant whose
    /// `jwks_refresh` is shorter than the bound still refetches on time.)
    failed_at: Mutex<Option<Instant>>,
}

impl JwksCache {
    /// A cache of the JWKS at `uri`, parsed for `algorithms`, fetched through `source`.
    pub fn new(uri: &str, algorithms: Vec<Alg>, source: Arc<dyn JwksSource>) -> JwksCache {
        JwksCache {
            uri: uri.to_owned(),
            algorithms,
            source,
            tenants: Mutex::default(),
            current: ArcSwapOption::empty(),
            fetching: tokio::sync::Mutex::new(()),
            last_attempt: Mutex::new(None),
            failed_at: Mutex::new(None),
        }
    }

    /// Keys no older than `refresh` (the caller's `jwks_refresh`), fetched first if they are.
    /// A failing IdP is asked at most once per `min_interval` (the caller's
    /// `jwks_refetch_interval`); meanwhile, and when the fetch fails, the last keys serve until
    /// they are `refresh` + [`STALE_KEYS_GRACE`] old.
    pub async fn fresh(&self, refresh: Duration, min_interval: Duration) -> Result<Arc<FetchedKeys>, String> {
        if let Some(current) = self.current.load_full() {
            if current.fetched.elapsed() < refresh {
                return Ok(current);
            }
        }
        let _one_at_a_time = self.fetching.lock().await;
        let stale = self.current.load_full();
        if let Some(current) = &stale {
            // Another caller fetched while this one waited.
            if current.fetched.elapsed() < refresh {
                return Ok(current.clone());
            }
        }
        let usable_stale = stale.filter(|s| s.fetched.elapsed() < refresh.saturating_add(STALE_KEYS_GRACE));
        if within(&self.failed_at, min_interval) {
            return usable_stale.ok_or_else(|| {
                "the IdP's JWKS could not be fetched moments ago; the next try waits for jwks_refetch_interval"
                    .to_owned()
            });
        }
        match self.fetch().await {
            Ok(fresh) => Ok(fresh),
            Err(error) => match usable_stale {
                Some(stale) => {
                    tracing::warn!(tenants = self.tenant_list(), detail = %error, grace = ?STALE_KEYS_GRACE, "IdP JWKS refresh failed; the last keys serve on within the grace");
                    Ok(stale)
                }
                None => Err(error),
            },
        }
    }

    /// Keys after a token named a `kid` that is not among them (usable with `allowed`): the
    /// IdP may have rotated. Refetches at once unless a fetch was attempted within
    /// `min_interval`, or another caller already brought the kid. Returns the newest keys;
    /// the caller checks for the kid again.
    pub async fn with_kid(
        &self,
        kid: &str,
        allowed: &[Alg],
        min_interval: Duration,
    ) -> Option<Arc<FetchedKeys>> {
        let _one_at_a_time = self.fetching.lock().await;
        let current = self.current.load_full();
        if current.as_ref().is_some_and(|c| c.keys.has_kid(kid, allowed)) {
            return current;
        }
        if within(&self.last_attempt, min_interval) {
            return current;
        }
        match self.fetch().await {
            Ok(fresh) => Some(fresh),
            Err(error) => {
                tracing::warn!(tenants = self.tenant_list(), detail = %error, "IdP JWKS refetch for an unknown kid failed");
                current
            }
        }
    }

    /// Fetches and parses the JWKS; only a set with a usable key replaces the current one.
    async fn fetch(&self) -> Result<Arc<FetchedKeys>, String> {
        let started = Instant::now();
        *lock(&self.last_attempt) = Some(started);
        let fetched = async {
            let body = self.source.fetch(&self.uri).await?;
            let keys = IdpKeys::parse(&body, &self.algorithms).map_err(|e| format!("JWKS: {e}"))?;
            if keys.is_empty() {
                return Err("JWKS: no signing key for the algorithms tenants.oidc.algorithms allows".into());
            }
            Ok(keys)
        }
        .await;
        match fetched {
            Ok(keys) => {
                *lock(&self.failed_at) = None;
                tracing::debug!(tenants = self.tenant_list(), "IdP JWKS fetched");
                let fresh = Arc::new(FetchedKeys { keys, fetched: Instant::now() });
                self.current.store(Some(fresh.clone()));
                Ok(fresh)
            }
            Err(error) => {
                *lock(&self.failed_at) = Some(started);
                Err(error)
            }
        }
    }

    fn tenant_list(&self) -> String {
        lock(&self.tenants).iter().map(String::as_str).collect::<Vec<_>>().join(",")
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the instant in `at` is less than `interval` ago.
fn within(at: &Mutex<Option<Instant>>, interval: Duration) -> bool {
    lock(at).is_some_and(|at| at.elapsed() < interval)
}

/// Which cache: the JWKS URI and the trust (`ca_file`) it is fetched with.
type CacheKey = (String, Option<PathBuf>);

/// Every IdP's key cache, built once per [`crate::login::Login`] and handed to each tenant.
/// Caches are made at a tenant's first discovery and held by the tenants' discovered metadata:
/// the registry keeps only weak references, so a JWKS URI that an IdP stops naming is dropped
/// with the last tenant's metadata that named it (the registry is bounded by the tenants).
#[derive(Default)]
pub struct KeyCaches {
    /// Per trust group (`ca_file`): the union of its tenants' algorithms.
    algorithms: Mutex<HashMap<Option<PathBuf>, Vec<Alg>>>,
    caches: Mutex<HashMap<CacheKey, Weak<JwksCache>>>,
}

impl KeyCaches {
    /// A tenant's algorithms join its trust group's. Called for every tenant while the login
    /// face is built, before any cache exists (a cache is made at the first discovery).
    pub fn register(&self, ca_file: Option<&Path>, algorithms: &[Alg]) {
        let mut groups = lock(&self.algorithms);
        let group = groups.entry(ca_file.map(Path::to_path_buf)).or_default();
        for alg in algorithms {
            if !group.contains(alg) {
                group.push(alg.clone());
            }
        }
    }

    /// The cache of the JWKS at `uri` fetched with `ca_file`'s trust, shared with every tenant
    /// that names the same; made with `source` on first use.
    pub fn cache_for(
        &self,
        uri: &str,
        ca_file: Option<&Path>,
        tenant: &str,
        source: impl FnOnce() -> Arc<dyn JwksSource>,
    ) -> Arc<JwksCache> {
        let key = (uri.to_owned(), ca_file.map(Path::to_path_buf));
        let mut caches = lock(&self.caches);
        let cache = match caches.get(&key).and_then(Weak::upgrade) {
            Some(cache) => cache,
            None => {
                caches.retain(|_, cache| cache.strong_count() > 0);
                let algorithms = lock(&self.algorithms).get(&key.1).cloned().unwrap_or_default();
                let cache = Arc::new(JwksCache::new(uri, algorithms, source()));
                caches.insert(key, Arc::downgrade(&cache));
                cache
            }
        };
        lock(&cache.tenants).insert(tenant.to_owned());
        cache
    }
}

#[cfg(test)]
#[path = "key_cache_tests.rs"]
mod tests;
