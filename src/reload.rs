//! Live reload (SIGHUP, or the config file changing): tenants, policies, keys, login settings,
//! the platform's address, privacy rules and limits change without dropping a connection.
//!
//! Everything built from the config except the listeners is a [`Generation`]. Reloading builds
//! a new one beside the old, and only when the whole of it was built does it replace the old:
//! an invalid file, an unreadable key or a tenant that does not resolve is refused with every
//! problem logged, and the old generation keeps serving. Each worker watches the generation and
//! swaps its gateway ([`GatewaySlot`]); every request reads the slot, so even long keep-alive
//! and HTTP/2 connections see the new config from their next request on.
//!
//! What a reload carries over rather than rebuilds: the single-use store (a fresh one would
//! forget spent states and codes, reopening replays) and the failed-login counts, unless the
//! `[store]` section itself changed (then the new store serves at once, with a warning). What
//! needs a restart, with a warning when it changed: the listeners and workers, the certificate
//! paths (their contents reload) and `[client_ip]`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::config::Config;
use crate::gateway::{build_generation, Gateway, Generation};
use crate::metrics::Metrics;

/// How long a reload waits for every worker to serve the new config before it reports.
const APPLY_WITHIN: Duration = Duration::from_secs(5);

/// A worker's current gateway, replaced whole on reload.
#[derive(Clone)]
pub struct GatewaySlot(Arc<RwLock<Arc<Gateway>>>);

impl GatewaySlot {
    pub fn new(gateway: Gateway) -> Self {
        GatewaySlot(Arc::new(RwLock::new(Arc::new(gateway))))
    }

    /// The gateway for the next request.
    pub fn current(&self) -> Arc<Gateway> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn replace(&self, gateway: Gateway) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(gateway);
    }

    /// Keeps this slot on the latest generation until `generations` closes: a gateway is built
    /// with `build` (a worker's own connection pool to the platform) for each new generation.
    pub async fn follow(
        self,
        mut generations: watch::Receiver<Arc<Generation>>,
        build: impl Fn(&Generation) -> Result<Gateway, crate::config::ConfigProblem>,
    ) {
        while generations.changed().await.is_ok() {
            let generation = generations.borrow_and_update().clone();
            match build(&generation) {
                Ok(gateway) => self.replace(gateway),
                // Validated beforehand, so this is rare (say, a CA file removed since).
                Err(error) => tracing::error!(%error, "reloaded config not applied to a worker"),
            }
            generation.mark_applied();
        }
    }
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("started without a config file")]
    NoFile,
    #[error("{0}")]
    Invalid(String),
}

/// Builds and publishes generations.
pub struct Reloader {
    /// The config file read again at each reload (none: started from a value, no reload).
    path: Option<PathBuf>,
    /// Counts reloads by outcome.
    metrics: Arc<Metrics>,
    /// Publishes each new generation to every gateway that follows.
    sender: watch::Sender<Arc<Generation>>,
    /// Gateways following the generations (the workers' and the admin listener's).
    followers: AtomicUsize,
    /// One reload at a time (SIGHUP and the file watcher may meet).
    busy: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(generation: Generation, metrics: Arc<Metrics>) -> Arc<Self> {
        let path = generation.config.source.clone();
        let (sender, _) = watch::channel(Arc::new(generation));
        Arc::new(Reloader {
            path,
            metrics,
            sender,
            followers: AtomicUsize::new(0),
            busy: tokio::sync::Mutex::new(()),
        })
    }

    /// For a gateway that will [`GatewaySlot::follow`] the generations.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Generation>> {
        self.followers.fetch_add(1, Ordering::AcqRel);
        self.sender.subscribe()
    }

    pub fn current(&self) -> Arc<Generation> {
        self.sender.borrow().clone()
    }

    /// Reads the config file again and, when all of it builds, puts it in service.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let _one = self.busy.lock().await;
        let path = self.path.as_deref().ok_or(ReloadError::NoFile)?;
        match self.build(path).await {
            Ok(generation) => {
                let generation = Arc::new(generation);
                self.sender.send_replace(generation.clone());
                let followers = self.followers.load(Ordering::Acquire);
                if !generation.applied_by(followers, APPLY_WITHIN).await {
                    tracing::warn!("a worker is slow to take the reloaded config into service");
                }
                self.metrics.config_reload("reloaded");
                tracing::info!("config reloaded");
                Ok(())
            }
            Err(message) => {
                self.metrics.config_reload("refused");
                tracing::error!(problems = %message, "config not reloaded; the old one stays in service");
                Err(ReloadError::Invalid(message))
            }
        }
    }

    async fn build(&self, path: &Path) -> Result<Generation, String> {
        let config = Config::load(path).map_err(|e| e.to_string())?;
        let old = self.current();
        warn_about_restart_only_changes(&old.config, &config);
        build_generation(config, &self.metrics, Some(&old))
            .await
            .map_err(|problems| crate::config::ConfigProblem::join(&problems))
    }
}

/// Fields read only at start: changing them takes a restart. Compared by their Debug form
/// (which names secret sources, never secret values).
fn warn_about_restart_only_changes(old: &Config, new: &Config) {
    let changed = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let fields: [(&str, bool); 6] = [
        ("server.listen", changed(&old.server.listen, &new.server.listen)),
        ("server.admin_listen", changed(&old.server.admin_listen, &new.server.admin_listen)),
        ("server.redirect_listen", changed(&old.server.redirect_listen, &new.server.redirect_listen)),
        ("server.workers", changed(&old.server.workers, &new.server.workers)),
        (
            "server.cert_file/key_file",
            changed(
                &(&old.server.cert_file, &old.server.key_file),
                &(&new.server.cert_file, &new.server.key_file),
            ),
        ),
        ("client_ip", changed(&old.client_ip, &new.client_ip)),
    ];
    for (field, _) in fields.iter().filter(|(_, changed)| *changed) {
        tracing::warn!(field, "changed in the config file: takes effect at the next restart");
    }
}

/// Reloads when the config file's modification time or size changes (checked every
/// `interval`), for deployments that replace the file (a Kubernetes ConfigMap) instead of
/// signalling.
pub async fn watch_file(reloader: Arc<Reloader>, interval: Duration, mut stop: impl FnMut() -> bool) {
    let Some(path) = reloader.path.clone() else { return };
    let stamp = |path: &Path| {
        std::fs::metadata(path).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
    };
    let mut last = stamp(&path);
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        if stop() {
            return;
        }
        let now = stamp(&path);
        if now != last && now.is_some() {
            last = now;
            tracing::info!("config file changed: reloading");
            let _ = reloader.reload().await;
        }
    }
}
