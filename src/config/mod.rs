//! The configuration file: one TOML document, read by serde with unknown fields refused, then
//! validated once into an immutable [`Config`].
//!
//! Every problem is reported as a [`ConfigProblem`] that names the field by its path
//! (`limits.max_header_bytes`) and says what would fix it, so that `nymgate check` can list them
//! all at once instead of stopping at the first.
//!
//! Secrets (the IP-hash secret) are never inline: the config names a file or an environment
//! variable, and only the path or the variable's name ever appears in a message.
//!
//! One file per section (issue 30: config on the ground floor, split by section): [`server`]
//! (`[server]`, `[limits]`, `[log]`), [`upstream`], [`privacy`] (`[client_ip]`, `[privacy]`),
//! [`tenants`] (`[pseudonyms]`, `[[tenants]]` and their checks), [`login`], [`store`],
//! [`audit`], [`retention`], [`alerts`], [`branding`]; the checks across sections in
//! `validate.rs` and `validate_login.rs`; the small types the upper floors act on in
//! [`vocabulary`]. Every type keeps its `crate::config::X` path through the `pub use` below.
//!
//! This module imports nothing from the rest of nymgate but the leaves below it (`clock`,
//! `target`, `public_hosts`: they import nothing from the crate); tests/layers.rs keeps it so.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod alerts;
pub mod audit;
pub mod branding;
pub mod capacity;
pub mod cert_strength;
pub mod defaults;
pub mod file_access;
pub mod identity;
pub mod issuer;
pub mod login;
pub mod parse;
pub mod privacy;
pub mod retention;
pub mod secrets;
pub mod server;
pub mod store;
pub mod tenants;
pub mod upstream;
mod validate;
mod validate_login;
pub mod vocabulary;
mod warnings;
pub use alerts::{AlertsConfig, WebhookConfig};
pub use audit::AuditConfig;
pub use branding::BrandingConfig;
pub use file_access::check_private_file;
pub use login::{LoginConfig, LoginOutput, OidcTenantConfig};
pub use privacy::{ClientIpConfig, IpMode, PrivacyConfig, ALWAYS_REMOVED_IDENTITY_HEADERS};
pub use retention::{RetentionApiConfig, RetentionBackend, RetentionConfig, TenantRetentionConfig};
pub use secrets::SecretSource;
use secrets::{validate_secret_source, validate_secret_with};
pub use server::{LimitsConfig, LogConfig, LogFormat, ServerConfig, MAX_HEAD};
pub use store::{RedisUrl, StoreBackend, StoreConfig};
pub use tenants::{IdpKind, PolicyConfig, PolicyPreset, PseudonymConfig, SubjectConfig, TenantConfig};
pub use upstream::{UpstreamConfig, UpstreamTarget, MAX_UPSTREAM_CONNECTIONS};
use validate::validate_https_url;
pub use validate::{is_loopback_host, is_token, is_valid_name, validate_log_level};
pub use vocabulary::{owns_path, Algorithm, RequiredSignatures, Role, SignatureAlgorithm, PREFIX};

/// The whole configuration, as read from the TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners and the TLS certificate.
    pub server: ServerConfig,
    /// The platform behind nymgate. Absent: the built-in echo platform answers.
    #[serde(default)]
    pub upstream: Option<UpstreamConfig>,
    /// How the client IP is found and reduced.
    #[serde(default)]
    pub client_ip: ClientIpConfig,
    /// Headers and query parameters removed or pseudonymized on the way to the platform.
    #[serde(default)]
    pub privacy: PrivacyConfig,
    /// Sizes, timeouts and caps.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The operational log.
    #[serde(default)]
    pub log: LogConfig,
    /// Where the pseudonym keys live. Required once any tenant is configured.
    #[serde(default)]
    pub pseudonyms: Option<PseudonymConfig>,
    /// The schools (or municipalities) whose IdPs log in through nymgate.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// nymgate's login face (docs/LOGIN.md). Without it no login routes exist.
    #[serde(default)]
    pub login: Option<LoginConfig>,
    /// The audit log of login attempts and admin actions.
    #[serde(default)]
    pub audit: AuditConfig,
    /// When failed logins raise an alert, and the optional webhook (docs/ALERTS.md).
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// The name, logo and colour on nymgate's pages.
    #[serde(default)]
    pub branding: BrandingConfig,
    /// Where single-use claims and failed-login counters live: this process, or Redis shared by
    /// every replica (docs/DEPLOY.md).
    #[serde(default)]
    pub store: StoreConfig,
    /// The separate store of retained personal values, off unless set (docs/RETENTION.md).
    #[serde(default)]
    pub retention: Option<RetentionConfig>,
    /// The file this config was loaded from (for reloads); not a config field.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// One thing wrong with a config, by field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The field's dotted path, for example `upstream.url`.
    pub field: String,
    /// What is wrong and what would fix it.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Building (gateway.rs, the login face, the stores) reports what only building finds (a file
/// that can't be read, a secret that does not load) as a problem of the field that named it,
/// typed as `check` reports its own.
impl std::error::Error for ConfigProblem {}

impl ConfigProblem {
    pub fn new(field: impl Into<String>, message: impl fmt::Display) -> Self {
        ConfigProblem { field: field.into(), message: message.to_string() }
    }

    /// Every problem on one line, `field: message; field: message`: how a reload's log line,
    /// a start error and a CLI refusal report them alike.
    pub fn join(problems: &[ConfigProblem]) -> String {
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    }
}

/// So that a builder returning every problem (`Vec`) can `?` a step that has one.
impl From<ConfigProblem> for Vec<ConfigProblem> {
    fn from(problem: ConfigProblem) -> Self {
        vec![problem]
    }
}

impl Config {
    /// The dotted path of a tenant's field, as `check` names it: `tenants[3].saml.ca_file`.
    /// A tenant id not in this config (it can't happen for a built tenant) gives `tenants`.
    pub fn tenant_field(&self, tenant: &str, field: &str) -> String {
        match self.tenants.iter().position(|t| t.id == tenant) {
            Some(index) => format!("tenants[{index}].{field}"),
            None => "tenants".to_owned(),
        }
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config file {path} has {} problem(s):\n{}", problems.len(), list(problems))]
    Invalid { path: PathBuf, problems: Vec<ConfigProblem> },
}

fn list(problems: &[ConfigProblem]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}

impl Config {
    /// Reads and parses a config file, paths resolved, without the semantic checks: for
    /// `nymgate check`, which reports those together with what only building finds.
    pub fn load_unvalidated(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = parse::parse(&text).map_err(|error| match error {
            parse::ParseError::Syntax(message) => ConfigError::Syntax { path: path.to_owned(), message },
            // The fields that could not be read, and what the rest of the file has wrong: every
            // problem of the file at once.
            parse::ParseError::Fields { mut problems, rest } => {
                if let Some(mut rest) = rest {
                    rest.resolve_paths(base);
                    let more: Vec<ConfigProblem> = rest
                        .validate()
                        .into_iter()
                        .filter(|p| !problems.iter().any(|q| q.field == p.field))
                        .collect();
                    problems.extend(more);
                }
                ConfigError::Invalid { path: path.to_owned(), problems }
            }
        })?;
        config.resolve_paths(base);
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let config = Self::load_unvalidated(path)?;
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { path: path.to_owned(), problems })
        }
    }

    /// Parses TOML text. The error names every field that can't be read by its path
    /// (parse.rs).
    pub fn parse(text: &str) -> Result<Config, String> {
        parse::parse(text).map_err(|e| e.to_string())
    }

    /// Relative file paths in the config are relative to the config file's folder.
    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.server.cert_file);
        fix(&mut self.server.key_file);
        if let Some(ca) = self.upstream.as_mut().and_then(|u| u.ca_file.as_mut()) {
            fix(ca);
        }
        if let Some(SecretSource::File(p)) = self.client_ip.hash_secret.as_mut() {
            fix(p);
        }
        if let Some(pseudonyms) = self.pseudonyms.as_mut() {
            fix(&mut pseudonyms.keyring_file);
        }
        if let Some(file) = self.audit.file.as_mut() {
            fix(file);
        }
        if let Some(retention) = self.retention.as_mut() {
            retention.sqlite_file.iter_mut().for_each(&fix);
            if let Some(SecretSource::File(p)) = retention.postgres_password.as_mut() {
                fix(p);
            }
            for source in
                [&mut retention.api.platform_token, &mut retention.api.dpo_token].into_iter().flatten()
            {
                if let SecretSource::File(p) = source {
                    fix(p);
                }
            }
        }
        self.alerts.resolve_paths(fix);
        if let Some(login) = self.login.as_mut() {
            if let Some(SecretSource::File(p)) = login.seal_secret.as_mut() {
                fix(p);
            }
            if let Some(p) = login.signing.key_file.as_mut() {
                fix(p);
            }
            login.signing.previous_key_files.iter_mut().for_each(fix);
            for client in &mut login.clients {
                if let SecretSource::File(p) = &mut client.client_secret {
                    fix(p);
                }
            }
        }
        if let Some(saml) = self.login.as_mut().and_then(|l| l.saml.as_mut()) {
            fix(&mut saml.cert_file);
            fix(&mut saml.key_file);
        }
        if let Some(idp) = self.login.as_mut().and_then(|l| l.saml_idp.as_mut()) {
            fix(&mut idp.cert_file);
            fix(&mut idp.key_file);
            for sp in &mut idp.service_providers {
                sp.certificate_files.iter_mut().for_each(&fix);
            }
        }
        for tenant in &mut self.tenants {
            if let Some(saml) = tenant.saml.as_mut() {
                saml.certificate_files.iter_mut().for_each(&fix);
                saml.metadata_signing_certificate_files.iter_mut().for_each(&fix);
                saml.metadata_file.iter_mut().for_each(&fix);
                saml.ca_file.iter_mut().for_each(&fix);
            }
            if let Some(oidc) = tenant.oidc.as_mut() {
                if let SecretSource::File(p) = &mut oidc.client_secret {
                    fix(p);
                }
                if let Some(p) = oidc.ca_file.as_mut() {
                    fix(p);
                }
            }
        }
    }

    /// The hosts nymgate answers for, as configured, or else those of the certificate file;
    /// `None` when neither can be read (the certificate's own problem is reported then).
    /// `public_hosts` is a leaf below config (it imports nothing from the crate; tests/layers.rs),
    /// so `check` judges `login.public_url` with the very matcher the pipeline answers 421 with.
    pub fn public_hosts(&self) -> Option<crate::public_hosts::HostSet> {
        if !self.server.public_hosts.is_empty() {
            return Some(crate::public_hosts::HostSet::new(
                self.server.public_hosts.iter().map(String::as_str),
            ));
        }
        let pem = std::fs::read(&self.server.cert_file).ok()?;
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::pem_slice_iter(&pem).next()?.ok()?;
        Some(crate::public_hosts::HostSet::from_certificate(&der))
    }
}

#[cfg(test)]
#[path = "check_parity_tests.rs"]
mod check_parity_tests;

#[cfg(test)]
mod tests;
