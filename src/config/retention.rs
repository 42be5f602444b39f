//! `[retention]` and `[tenants.retention]`: the separate store of retained personal values and
//! which logins leave a record (docs/RETENTION.md).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{
    check_private_file, secrets, validate_secret_source, validate_secret_with, Config, SecretSource,
};

/// `[retention]`: where retained values live and how long an unseen record is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// `sqlite` (default: one file, one nymgate process) or `postgres` (several replicas).
    #[serde(default)]
    pub backend: RetentionBackend,
    /// The SQLite file (created mode 0600), e.g. `/var/lib/nymgate/retained.db`.
    #[serde(default)]
    pub sqlite_file: Option<PathBuf>,
    /// PostgreSQL: `postgres://user@host:port/database` (the password apart, below).
    #[serde(default)]
    pub postgres_url: Option<String>,
    #[serde(default)]
    pub postgres_password: Option<SecretSource>,
    /// A record no login has refreshed for this long is deleted (culling).
    #[serde(default = "retention_cull_after", with = "humantime_serde")]
    pub cull_after: Duration,
    /// How often the culling job runs.
    #[serde(default = "retention_cull_interval", with = "humantime_serde")]
    pub cull_interval: Duration,
    /// The admin API's credentials (on the admin listener); without them it answers 404.
    #[serde(default)]
    pub api: RetentionApiConfig,
}

/// `[retention.api]`: one bearer token per role, from files or the environment. Every call is
/// written to the audit log.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionApiConfig {
    /// The platform: looks up a record's `serve` attributes (a teacher function), nothing else.
    #[serde(default)]
    pub platform_token: Option<SecretSource>,
    /// The data protection officer: lookup, export, rectify, restrict, erase.
    #[serde(default)]
    pub dpo_token: Option<SecretSource>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionBackend {
    #[default]
    Sqlite,
    Postgres,
}

fn retention_cull_after() -> Duration {
    Duration::from_secs(365 * 24 * 3600)
}

fn retention_cull_interval() -> Duration {
    Duration::from_secs(3600)
}

/// `[tenants.retention]`: which logins leave a record, and what it holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRetentionConfig {
    /// nymgate's normalized roles whose values are kept, e.g. `["teacher"]`.
    pub roles: Vec<String>,
    /// The name a value is kept under → the IdP claims or SAML attributes (name, FriendlyName
    /// or urn:oid) it is read from, e.g. `{ email = ["email", "mail"] }`.
    pub attributes: std::collections::BTreeMap<String, Vec<String>>,
    /// The kept names the platform may look up (`GET …/records/…` with the platform token).
    #[serde(default)]
    pub serve: Vec<String>,
}

impl Config {
    /// `[retention]` and each tenant's `[tenants.retention]`.
    pub(super) fn validate_retention(&self, problem: &mut impl FnMut(&str, String)) {
        if let Some(retention) = &self.retention {
            match (retention.backend, &retention.sqlite_file, &retention.postgres_url) {
                (RetentionBackend::Sqlite, Some(file), None) => {
                    if file.parent().is_some_and(|dir| !dir.as_os_str().is_empty() && !dir.is_dir()) {
                        problem(
                            "retention.sqlite_file",
                            format!("{}: its folder does not exist", file.display()),
                        );
                    }
                    if file.exists() {
                        if let Err(message) = check_private_file(file) {
                            problem("retention.sqlite_file", message);
                        }
                    }
                }
                (RetentionBackend::Sqlite, _, _) => problem(
                    "retention.sqlite_file",
                    "the sqlite backend needs sqlite_file (and no postgres_url)".into(),
                ),
                (RetentionBackend::Postgres, None, Some(url)) => match url.parse::<postgres::Config>() {
                    Err(_) => {
                        problem("retention.postgres_url", "not a postgres:// URL or connection string".into())
                    }
                    Ok(parsed) if parsed.get_password().is_some() => problem(
                        "retention.postgres_url",
                        "put the password in postgres_password (a file or the environment), not in the URL"
                            .into(),
                    ),
                    Ok(_) => {}
                },
                (RetentionBackend::Postgres, _, _) => problem(
                    "retention.postgres_url",
                    "the postgres backend needs postgres_url (and no sqlite_file)".into(),
                ),
            }
            if let Some(source) = &retention.postgres_password {
                validate_secret_source(source, "retention.postgres_password", problem);
            }
            for (name, source) in
                [("platform_token", &retention.api.platform_token), ("dpo_token", &retention.api.dpo_token)]
            {
                if let Some(source) = source {
                    let field = format!("retention.api.{name}");
                    validate_secret_with(source, &field, problem, secrets::read_bearer_token);
                }
            }
            if retention.cull_after.is_zero() || retention.cull_interval.is_zero() {
                problem("retention.cull_after", "cull_after and cull_interval must be more than 0s".into());
            }
        }
        for (i, tenant) in self.tenants.iter().enumerate() {
            if tenant.offboard_on.is_some() && tenant.offboard_at().is_none() {
                problem(&format!("tenants[{i}].offboard_on"), "must be a date, YYYY-MM-DD".into());
            }
            let Some(rules) = &tenant.retention else { continue };
            let field = |name: &str| format!("tenants[{i}].retention.{name}");
            if self.retention.is_none() {
                problem(&field("roles"), "needs [retention] (where retained values are stored)".into());
            }
            if rules.roles.is_empty() {
                problem(&field("roles"), "must name at least one role (\"teacher\")".into());
            }
            for role in &rules.roles {
                if !["student", "teacher", "staff", "other"].contains(&role.as_str()) {
                    problem(&field("roles"), format!("{role:?}: use student, teacher, staff or other"));
                }
            }
            for name in &rules.serve {
                if !rules.attributes.contains_key(name) {
                    problem(&field("serve"), format!("{name:?} is not one of the kept attributes"));
                }
            }
            if rules.attributes.is_empty() || rules.attributes.values().any(Vec::is_empty) {
                problem(
                    &field("attributes"),
                    "must map each kept name to at least one claim or attribute".into(),
                );
            }
        }
    }
}
