//! The composition root: everything nymgate serves with is built here from a validated
//! [`Config`], at start and at every reload, with errors that name the config field
//! ([`ConfigProblem`]). Read top to bottom, it is the order things must be built in:
//!
//! 1. [`ProcessParts`]: what the process keeps for its life, whatever a reload changes: the
//!    metrics, the certificate resolver (its files reload on their own watch), the client-IP
//!    reducer (its hash secret is read once: a new one would change every client's token
//!    mid-run, so `[client_ip]` takes a restart). `RunningServer::start` makes them.
//! 2. [`build_generation`]: what one config file builds once for the whole process: the alerts
//!    first (the login face raises them), then the login face (its single-use store, blocking
//!    counts and retention database carried over from the generation before, login/build.rs),
//!    then every OIDC tenant's issuer checked against its IdP's discovery document, so that a
//!    file naming the wrong issuer is refused before it serves a login.
//! 3. [`Gateway::build`]: what each worker, and the admin listener, serves a generation with:
//!    its own platform client, the sanitize policy and the public hosts.
//!
//! Nothing is put in service until all of it was built: `reload.rs` swaps whole generations,
//! and the pipeline (pipeline/mod.rs) reads one gateway per request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::client_ip::IpReducer;
use crate::config::{Config, ConfigProblem, LimitsConfig};
use crate::login::Login;
use crate::metrics::Metrics;
use crate::public_hosts::HostSet;
use crate::sanitize::SanitizePolicy;
use crate::tls::ReloadingCertResolver;
use crate::upstream::Upstream;

/// What the process keeps for its life (step 1 of the module doc).
#[derive(Clone)]
pub struct ProcessParts {
    /// Every gateway counts into the same metrics.
    pub metrics: Arc<Metrics>,
    /// One reducer for every worker, so that hash mode gives one token per client across them.
    pub reducer: Arc<IpReducer>,
    /// The certificate in service, whose names are the public hosts when none are listed.
    pub certs: Arc<ReloadingCertResolver>,
}

/// Step 2 of the module doc: the generation `config` builds, carrying over from `carried` what a
/// reload must keep. Every problem names its field.
pub async fn build_generation(
    config: Config,
    metrics: &Arc<Metrics>,
    carried: Option<&Generation>,
) -> Result<Generation, Vec<ConfigProblem>> {
    let alerts = crate::alert::Alerts::new(&config.alerts, metrics.clone())?;
    let carried_login = carried.and_then(|old| old.login.as_deref());
    let login = Login::build(&config, metrics.clone(), alerts, carried_login)?;
    if let Some(login) = &login {
        login.check_issuers(&config).await?;
    }
    Ok(Generation::new(config, login))
}

/// What a config file builds, apart from the listeners.
pub struct Generation {
    /// The validated file it was built from; every worker's gateway reads its sections.
    pub config: Config,
    /// The one login face of the process for this generation: its single-use stores and
    /// blocking counts must be shared by every worker, so it is built once, here.
    pub login: Option<Arc<Login>>,
    /// Gateways that took this generation into service, so that a reload can return only
    /// when every worker serves it.
    applied: AtomicUsize,
    /// Wakes a reload waiting in `applied_by`.
    notify: tokio::sync::Notify,
}

impl Generation {
    pub fn new(config: Config, login: Option<Arc<Login>>) -> Self {
        Generation { config, login, applied: AtomicUsize::new(0), notify: tokio::sync::Notify::new() }
    }

    pub(crate) fn mark_applied(&self) {
        self.applied.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    /// Waits (bounded) until `followers` gateways serve this generation.
    pub(crate) async fn applied_by(&self, followers: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.notify.notified();
            if self.applied.load(Ordering::Acquire) >= followers {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

/// Everything the pipeline needs, built once from the config and shared by all connections.
pub struct Gateway {
    /// The process's counters: every phase counts into them, and /metrics reads them.
    pub metrics: Arc<Metrics>,
    /// Shared by every worker, so that hash mode gives one token per client across workers.
    pub reducer: Arc<IpReducer>,
    /// What sanitize strips and writes (`[privacy]`, and the assertion header as nymgate's own).
    pub policy: SanitizePolicy,
    /// `None`: the built-in echo platform answers.
    pub upstream: Option<Upstream>,
    /// `client_ip.trusted_proxies`: whose `X-Forwarded-For` is believed (client_ip.rs).
    pub trusted_proxies: Vec<IpNet>,
    /// Shared: every connection holds them for its life (server.rs).
    pub limits: Arc<LimitsConfig>,
    /// nymgate's login face, when `[login]` is configured.
    pub login: Option<Arc<Login>>,
    /// The hosts a request may name (421 otherwise).
    pub public_hosts: PublicHosts,
    /// The port a Host may carry on to the platform: `login.public_url`'s, else the listener's.
    pub public_port: u16,
    /// `upstream.upgrade_protocols`; none for the echo platform (upgrade.rs).
    pub upgrade_protocols: Vec<String>,
}

/// Where the public hosts come from: `server.public_hosts`, or the certificate in service
/// (which a certificate reload changes without a config reload).
pub enum PublicHosts {
    /// `server.public_hosts`, as configured.
    Listed(HostSet),
    /// The names of the certificate in service, read at each request.
    Certificate(Arc<ReloadingCertResolver>),
}

impl PublicHosts {
    pub fn new(config: &Config, certs: &Arc<ReloadingCertResolver>) -> Self {
        if config.server.public_hosts.is_empty() {
            PublicHosts::Certificate(certs.clone())
        } else {
            PublicHosts::Listed(HostSet::new(config.server.public_hosts.iter().map(String::as_str)))
        }
    }

    pub fn allows(&self, host: &str) -> bool {
        match self {
            PublicHosts::Listed(hosts) => hosts.allows(host),
            PublicHosts::Certificate(certs) => certs.hosts().allows(host),
        }
    }
}

impl Gateway {
    /// One gateway for `generation`: a worker's (each with its own platform client: a pool is
    /// never shared across workers' runtimes) or the admin listener's. The caller adds what is
    /// its own to the platform client (a worker its reclaim hook, the admin listener the
    /// reachability the probe knew).
    pub fn build(generation: &Generation, process: &ProcessParts) -> Result<Gateway, ConfigProblem> {
        let config = &generation.config;
        let upstream = config
            .upstream
            .as_ref()
            .map(Upstream::new)
            .transpose()
            .map_err(|source| ConfigProblem::new(source.upstream_field(), source))?;
        Ok(Gateway::new(
            config,
            process.metrics.clone(),
            process.reducer.clone(),
            upstream,
            generation.login.clone(),
            &process.certs,
        ))
    }

    fn new(
        config: &Config,
        metrics: Arc<Metrics>,
        reducer: Arc<IpReducer>,
        upstream: Option<Upstream>,
        login: Option<Arc<Login>>,
        certs: &Arc<ReloadingCertResolver>,
    ) -> Self {
        if let Some(upstream) = &upstream {
            upstream.client.pool_set().report_to(metrics.clone());
        }
        let mut policy = SanitizePolicy::new(&config.privacy);
        if let Some(login) = &config.login {
            // The assertion header is nymgate's alone, whatever it is called.
            policy.remove_identity_header(&login.assertion.header);
        }
        Self {
            metrics,
            reducer,
            policy,
            upstream,
            trusted_proxies: config.client_ip.trusted_proxies.clone(),
            limits: Arc::new(config.limits.clone()),
            upgrade_protocols: config
                .upstream
                .as_ref()
                .map(|u| u.upgrade_protocols.clone())
                .unwrap_or_default(),
            login,
            public_hosts: PublicHosts::new(config, certs),
            public_port: config
                .login
                .as_ref()
                .and_then(|login| login.public_url.parse::<http::Uri>().ok())
                .map(|url| url.port_u16().unwrap_or(443))
                .unwrap_or(config.server.listen.port()),
        }
    }
}
