//! The background jobs: certificate reloads, the platform and store probes, the retention cull.
//! Each is one step run by [`every`], which owns the loop and the one way a job stops (the
//! server leaving `Serving`).

use super::*;

/// Runs `job` now, then again after the wait it returns, until the server leaves `Serving`.
/// A job returns its wait so that a reload can change it (the cull's interval is the config's).
/// A job's state lives in what its closure shares (an `AsyncFnMut` job could borrow it, but
/// its futures can't be proven `Send` for `tokio::spawn`: tried, refused by rustc 1.95).
async fn every<F, Fut>(mut phase: watch::Receiver<Phase>, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    loop {
        let wait = job().await;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = leaves_serving(&mut phase) => return,
        }
    }
}

/// Checks the certificate files every `interval` and swaps in a changed pair (the first check
/// one interval after start: the pair was just loaded).
pub(super) async fn watch_certificates(
    certs: Arc<ReloadingCertResolver>,
    interval: Duration,
    metrics: Arc<Metrics>,
    phase: watch::Receiver<Phase>,
) {
    let mut started = false;
    every(phase, || {
        let check = std::mem::replace(&mut started, true);
        let (certs, metrics) = (certs.clone(), metrics.clone());
        async move {
            if check {
                match certs.reload(false) {
                    Ok(ReloadOutcome::Unchanged) => {}
                    Ok(ReloadOutcome::Reloaded) => {
                        metrics.cert_reload("reloaded");
                        tracing::info!("certificate files changed: reloaded");
                    }
                    Err(error) => {
                        metrics.cert_reload("failed");
                        tracing::warn!(%error, "certificate files changed but could not be loaded; keeping the old certificate");
                    }
                }
            }
            interval
        }
    })
    .await
}

/// Whether the platform answers, for `/readyz`; a change is logged once.
pub(super) async fn probe_upstream(slot: GatewaySlot, phase: watch::Receiver<Phase>) {
    let was = Arc::new(std::sync::Mutex::new(None));
    every(phase, || {
        // The gateway in service now: after a reload, the new platform address is probed.
        let (gateway, was) = (slot.current(), was.clone());
        async move {
            if let Some(upstream) = gateway.upstream.as_ref() {
                let now = upstream.probe().await;
                let mut was = was.lock().unwrap_or_else(|e| e.into_inner());
                if *was != Some(now) {
                    if now {
                        tracing::info!("platform reachable");
                    } else {
                        tracing::warn!("platform unreachable");
                    }
                    *was = Some(now);
                }
            }
            UPSTREAM_PROBE_INTERVAL
        }
    })
    .await
}

/// Pings a shared store (Redis) so that `/readyz` and `nymgate_store_up` follow it even while
/// no login comes: a replica whose store is down should leave the load balancer's login pool.
pub(super) async fn probe_store(slot: GatewaySlot, phase: watch::Receiver<Phase>) {
    every(phase, || {
        let gateway = slot.current();
        async move {
            if let Some(store) =
                gateway.login.as_ref().map(|login| login.store().clone()).filter(|s| s.is_shared())
            {
                let up = store.probe().await;
                gateway.metrics.store_up(up);
            }
            STORE_PROBE_INTERVAL
        }
    })
    .await
}

/// The retention store's culling job (docs/RETENTION.md): every `retention.cull_interval`,
/// records no login has refreshed within `cull_after` are deleted. The first run is at start.
pub(super) async fn cull_retention(slot: GatewaySlot, phase: watch::Receiver<Phase>) {
    every(phase, || {
        let login = slot.current().login.clone();
        async move {
            let Some((login, interval)) = login.and_then(|l| Some((l.clone(), l.retention_interval()?)))
            else {
                return Duration::from_secs(60);
            };
            match login.cull_retention(crate::clock::unix_now()).await {
                Ok(removed) => {
                    tracing::info!(removed, "retention: culled records not seen within cull_after")
                }
                Err(error) => {
                    tracing::warn!(%error, "retention: culling failed; it runs again at the next interval")
                }
            }
            interval
        }
    })
    .await
}
