//! The configuration file: one TOML document, read by serde with unknown fields refused, then
//! validated once into an immutable [`Config`].
//!
//! Every problem is reported as a [`ConfigProblem`] that names the field by its path
//! (`limits.max_header_bytes`) and says what would fix it, so that `nymgate check` can list them
//! all at once instead of stopping at the first.
//!
//! Secrets (the IP-hash secret) are never inline: the config names a file or an environment
//! variable, and only the path or the variable's name ever appears in a message.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

pub mod alerts;
pub mod branding;
pub mod capacity;
pub mod cert_strength;
pub mod file_access;
pub mod identity;
pub mod issuer;
pub mod login;
pub mod parse;
pub mod secrets;
pub mod vocabulary;
mod warnings;
pub use alerts::{AlertsConfig, WebhookConfig};
pub use branding::BrandingConfig;
pub use file_access::check_private_file;
pub use login::{LoginConfig, LoginOutput, OidcTenantConfig};
pub use vocabulary::{owns_path, Algorithm, RequiredSignatures, Role, SignatureAlgorithm, PREFIX};

/// The longest request head the framing watcher follows (framing.rs re-exports it):
/// `limits.max_header_bytes` may not exceed it, so hyper's own 431 always comes first.
pub const MAX_HEAD: usize = 64 * 1024;

/// Identity headers that are removed from every client request, whatever the config says.
/// A client must never be able to assert an identity to the platform (shared/SECURITY.md,
/// "Client-supplied identity"). `x-nymgate-assertion` is nymgate's own assertion header.
pub const ALWAYS_REMOVED_IDENTITY_HEADERS: &[&str] = &[
    "x-nymgate-assertion",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-remote-user",
    "remote-user",
    "x-user",
    "x-email",
    "cf-access-jwt-assertion",
    "cf-access-authenticated-user-email",
];

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// JSON lines appended to this file (mode 0600); without it, to standard error.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// To standard output instead (a container's log collector), whatever `file` says.
    #[serde(default)]
    pub stdout: bool,
    /// Rotate the file past this size (0: never); it becomes FILE.1, FILE.1 becomes FILE.2, ….
    #[serde(default = "audit_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept.
    #[serde(default = "audit_keep")]
    pub keep: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { file: None, stdout: false, max_bytes: audit_max_bytes(), keep: audit_keep() }
    }
}

fn audit_max_bytes() -> u64 {
    defaults::AUDIT_MAX_BYTES
}

fn audit_keep() -> u32 {
    defaults::AUDIT_KEEP
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PseudonymConfig {
    /// The keyring file (mode 0600), written by `nymgate keys`.
    pub keyring_file: PathBuf,
}

/// Which kind of IdP a tenant has: decides the stable subject (shared/PRODUCT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdpKind {
    /// Microsoft Entra ID: `tid` and `oid`.
    Entra,
    /// Google Workspace: `sub`.
    Google,
    /// Any other OIDC provider: `iss` and `sub`.
    Oidc,
    /// SAML 2.0: pairwise-id, subject-id, persistent NameID, then `subject.attribute`.
    Saml,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant id the platform sees in `tenant`: 1 to 64 of a-z, 0-9, '-' and '_'.
    pub id: String,
    /// Display name (the school chooser).
    #[serde(default)]
    pub name: Option<String>,
    /// The pseudonym scope; default: the tenant id. Tenants that share a scope (a municipality's
    /// schools) give a person the same account number in each.
    #[serde(default)]
    pub scope: Option<String>,
    pub idp: IdpKind,
    /// The issuer: the OIDC issuer URL, the SAML IdP entity id, or for Entra ID the directory
    /// (tenant) id. It is also the default issuer of `nymgate pseudonym` lookups. Its canonical
    /// form (config/issuer.rs) enters the account number: fixed here at onboarding, never the
    /// spelling an IdP advertises on the day (docs/PSEUDONYMS.md, "A stable issuer").
    pub issuer: String,
    /// The exact issuer string this tenant's account numbers were made from before nymgate
    /// canonicalized issuers, for a tenant onboarded earlier whose IdP spelled its issuer in
    /// another form (a trailing `/`, capitals): set it to that spelling and every number stays.
    /// Used verbatim; leave it unset for a new tenant.
    #[serde(default)]
    pub account_issuer: Option<String>,
    /// Which verified attribute files a login under this tenant when several tenants share one
    /// IdP (config/identity.rs, docs/PSEUDONYMS.md "One IdP, several schools").
    #[serde(default)]
    pub select: Option<identity::TenantSelectConfig>,
    #[serde(default)]
    pub subject: SubjectConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Email domains whose `login_hint` picks this tenant (the hint itself is never kept).
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// The OIDC client settings, for idp = entra, google or oidc.
    #[serde(default)]
    pub oidc: Option<OidcTenantConfig>,
    /// The SAML IdP settings, for idp = saml.
    #[serde(default)]
    pub saml: Option<login::SamlTenantConfig>,
    /// This tenant's threshold for `login.blocking` (pupils behind one NAT address share it).
    #[serde(default)]
    pub max_failed_logins: Option<u32>,
    /// This school's name, logo and colour on the pages that know the tenant.
    #[serde(default)]
    pub branding: BrandingConfig,
    /// Personal values this tenant requires kept, for which roles (docs/RETENTION.md). Off
    /// unless set; needs `[retention]`.
    #[serde(default)]
    pub retention: Option<TenantRetentionConfig>,
    /// The day (`YYYY-MM-DD`, UTC) the school's contract ends: from then on its logins are
    /// refused and the culling job erases its retained records (docs/RETENTION.md).
    #[serde(default)]
    pub offboard_on: Option<String>,
}

impl TenantConfig {
    /// `offboard_on` as unix seconds (midnight UTC), when set and valid.
    pub fn offboard_at(&self) -> Option<u64> {
        crate::clock::parse_instant(&format!("{}T00:00:00Z", self.offboard_on.as_deref()?))
    }
}

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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectConfig {
    /// SAML: the attribute after pairwise-id, subject-id and a persistent NameID, for example
    /// `urn:oid:1.3.6.1.4.1.5923.1.1.1.6` (eduPersonPrincipalName).
    #[serde(default)]
    pub attribute: Option<String>,
    /// Allow the email as the last resort. Off by default; the token then says `nym_src = "email"`.
    #[serde(default)]
    pub allow_email: bool,
}

/// Ready-made claim mappings (docs/POLICY.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyPreset {
    Entra,
    Google,
    Skolfederation,
    Feide,
}

/// Which claims become `role`, `school` and `municipality`. Fields left out come from the preset.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default)]
    pub preset: Option<PolicyPreset>,
    /// Claim or attribute names (urn:oid or friendly) whose values give the role.
    #[serde(default)]
    pub role_from: Option<Vec<String>>,
    /// IdP value (case-insensitive; `x@scope` maps as `x`) → student, teacher, staff or other.
    #[serde(default)]
    pub role_map: Option<std::collections::BTreeMap<String, Role>>,
    #[serde(default)]
    pub school_from: Option<Vec<String>>,
    /// IdP value → the school code the platform gets. Unmapped values are dropped.
    #[serde(default)]
    pub school_map: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub municipality_from: Option<Vec<String>>,
    #[serde(default)]
    pub municipality_map: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The public HTTPS listener.
    pub listen: SocketAddr,
    /// The admin listener (`/healthz`, `/readyz`, `/metrics`). Keep it off the public network.
    pub admin_listen: SocketAddr,
    /// Optional plain-HTTP listener that only redirects to HTTPS and answers `/healthz`.
    #[serde(default)]
    pub redirect_listen: Option<SocketAddr>,
    /// The HTTPS port put in redirects; defaults to the port of `listen`.
    #[serde(default)]
    pub redirect_https_port: Option<u16>,
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Threads serving the public listener, each with its own event loop and its own socket on
    /// the port (SO_REUSEPORT), like nginx's worker processes. Default: one per CPU.
    #[serde(default)]
    pub workers: Option<usize>,
    /// How often the certificate files are checked for changes (SIGHUP reloads at once).
    #[serde(default = "defaults::cert_reload_interval", with = "humantime_serde")]
    pub cert_reload_interval: Duration,
    /// The host names (and IP literals; `*.example.org` for one label) nymgate answers for. A
    /// request naming any other Host gets 421 and never reaches the platform (public_hosts.rs).
    /// Empty: the names of the TLS certificate in service.
    #[serde(default)]
    pub public_hosts: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `http://host:port` or `https://host:port`; a path, query or user info is refused.
    pub url: String,
    /// Plain `http://` to a platform that is not on loopback, said explicitly: its traffic
    /// (sessions, cookies, the tokens nymgate signed) then crosses that network in the clear.
    /// For a private network (a Kubernetes Service, a host-only bridge); off by default.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// PEM CA bundle that signs the upstream's certificate; default: the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time from sending a request to receiving the response head.
    #[serde(default = "defaults::response_timeout", with = "humantime_serde")]
    pub response_timeout: Duration,
    /// How long a connection to the platform may sit idle in a pool before it is closed.
    #[serde(default = "defaults::pool_idle_timeout", with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// Idle connections to the platform each worker keeps (there is one platform, so "per host"
    /// is per worker); a connection that comes back to a full pool is closed.
    #[serde(default = "defaults::pool_max_idle_per_host")]
    pub pool_max_idle_per_host: usize,
    /// The `Upgrade` protocols (RFC 9110 §7.8) forwarded to the platform, by name, compared
    /// without case; any other asked for is refused with 400. `h2c` can't be listed: it would
    /// open a tunnel in which the client speaks HTTP/2 to the platform past every header rule.
    #[serde(default = "defaults::upgrade_protocols")]
    pub upgrade_protocols: Vec<String>,
    /// Connections to the platform each worker may hold open at once: in use, idle in a pool,
    /// or carrying an upgraded connection (WebSocket). Per worker, as each worker is its own
    /// event loop with its own pools (upstream/pool.rs); the process holds at most
    /// `workers × max_connections`, which must fit the file descriptor limit beside
    /// `limits.max_connections` clients. A request over the bound waits `queue_timeout`, then
    /// gets 503 with Retry-After.
    #[serde(default = "defaults::upstream_max_connections")]
    pub max_connections: usize,
    /// How long a request over `max_connections` waits for a platform connection before its
    /// 503. `response_timeout` covers the wait too: when it is the shorter, the request gets
    /// its 504 first.
    #[serde(default = "defaults::queue_timeout", with = "humantime_serde")]
    pub queue_timeout: Duration,
    /// A pool of platform connections per client connection, dropped with it, instead of one
    /// per worker (as Envoy's `connection_pool_per_downstream_connection`): for platforms that
    /// can't be trusted to frame every answer, so that a late or extra answer can only reach
    /// the client whose connection it came on, never another pupil. Costs a new platform
    /// connection for each client connection's first request (BENCHMARKS.md).
    #[serde(default)]
    pub pool_per_client_connection: bool,
}

/// What the platform receives in place of the client IP (shared/PRODUCT.md, "IP addresses").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IpMode {
    /// Keep the network prefix, zero the host bits.
    #[default]
    Truncate,
    /// A keyed hash whose key changes every UTC day.
    Hash,
    /// Nothing at all.
    Drop,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIpConfig {
    /// Proxies in front of nymgate whose `X-Forwarded-For` entries are believed (CIDR list).
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
    #[serde(default)]
    pub mode: IpMode,
    #[serde(default = "defaults::ipv4_prefix")]
    pub ipv4_prefix: u8,
    #[serde(default = "defaults::ipv6_prefix")]
    pub ipv6_prefix: u8,
    /// Where the secret behind the daily hash key comes from. Without it, each process draws a
    /// random key per day: strongest, but replicas then disagree on the hash.
    #[serde(default)]
    pub hash_secret: Option<SecretSource>,
}

impl Default for ClientIpConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            mode: IpMode::default(),
            ipv4_prefix: defaults::ipv4_prefix(),
            ipv6_prefix: defaults::ipv6_prefix(),
            hash_secret: None,
        }
    }
}

/// A secret named by where it lives, never by its value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretSource {
    /// A file readable by nymgate only (mode 0600 or stricter).
    File(PathBuf),
    /// An environment variable's name.
    Env(String),
}

impl SecretSource {
    /// The secret's bytes, read as `serve` reads them ([`secrets::read_secret`]).
    pub fn read(&self) -> Result<Vec<u8>, String> {
        secrets::read_secret(self)
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Extra identity headers to remove, on top of [`ALWAYS_REMOVED_IDENTITY_HEADERS`].
    #[serde(default)]
    pub identity_headers: Vec<String>,
    /// Remove `Authorization` from client requests as an identity header.
    #[serde(default)]
    pub strip_authorization: bool,
    /// Request headers removed before forwarding.
    #[serde(default)]
    pub drop_headers: Vec<String>,
    /// Request headers whose value is replaced by a keyed hash (same daily key as IPs).
    #[serde(default)]
    pub pseudonymize_headers: Vec<String>,
    /// Query parameters removed before forwarding.
    #[serde(default)]
    pub drop_query_params: Vec<String>,
    /// Query parameters whose value is replaced by a keyed hash.
    #[serde(default)]
    pub pseudonymize_query_params: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request head (start line and headers); more gets 431. At least 8192, at most
    /// 65536: the HTTP/1.1 framing watcher (framing.rs) follows heads up to that size, and a
    /// head it cannot follow is refused, so hyper's own limit must come first.
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: usize,
    /// Most request header lines; more gets 431.
    #[serde(default = "defaults::max_headers")]
    pub max_headers: usize,
    /// Largest request body on nymgate's own endpoints; more gets 413.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Time a client has to send a whole request head (slowloris). hyper starts this timer as
    /// soon as an HTTP/1.1 connection waits for its next request, so it is also how long an
    /// idle HTTP/1.1 keep-alive connection is kept.
    #[serde(default = "defaults::header_read_timeout", with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Longest gap between two reads of a request body (like nginx's `client_body_timeout`).
    #[serde(default = "defaults::body_read_timeout", with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// A connection with no bytes either way for this long is closed (HTTP/2, and HTTP/1.1
    /// connections whose request or response is stalled).
    #[serde(default = "defaults::idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Longest a response may wait on a client that does not read it (a full socket, HTTP/2
    /// flow control at zero), like nginx's `send_timeout`: past it the response is taken away
    /// and what it held toward the platform released; an HTTP/1.1 connection then closes
    /// (src/conn_bounds.rs).
    #[serde(default = "defaults::send_timeout", with = "humantime_serde")]
    pub send_timeout: Duration,
    /// An HTTP/1.1 keep-alive connection quiet between requests for this long gives up its HTTP
    /// state and buffers (about 16 KB) until the client sends again (src/conn_io.rs). A busy
    /// connection's next request comes well within it; longer keeps more memory in use while
    /// many connections open at once (BENCHMARKS.md §1: 1 s gave 152 MiB for 10,000 connections
    /// opened quickly, 100 ms 128 MiB).
    #[serde(default = "defaults::park_after", with = "humantime_serde")]
    pub park_after: Duration,
    /// A TLS handshake not complete by then is closed. What a client may send meanwhile is
    /// bounded too: a ClientHello of at most 16 KiB, left in the kernel until complete
    /// (client_hello.rs).
    #[serde(default = "defaults::tls_handshake_timeout", with = "humantime_serde")]
    pub tls_handshake_timeout: Duration,
    /// Open client connections at most; past it, new connections get one 503 and are closed.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// HTTP/2 streams per connection.
    #[serde(default = "defaults::max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    /// How long SIGTERM waits for in-flight requests before closing what is left.
    #[serde(default = "defaults::shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_header_bytes: defaults::max_header_bytes(),
            max_headers: defaults::max_headers(),
            max_body_bytes: defaults::max_body_bytes(),
            header_read_timeout: defaults::header_read_timeout(),
            body_read_timeout: defaults::body_read_timeout(),
            idle_timeout: defaults::idle_timeout(),
            send_timeout: defaults::send_timeout(),
            park_after: defaults::park_after(),
            tls_handshake_timeout: defaults::tls_handshake_timeout(),
            max_connections: defaults::max_connections(),
            max_concurrent_streams: defaults::max_concurrent_streams(),
            shutdown_grace: defaults::shutdown_grace(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter directive (`info`, `nymgate=debug`); `RUST_LOG` overrides it.
    #[serde(default = "defaults::log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::default(), level: defaults::log_level() }
    }
}

/// The defaults, named so that the docs and the code agree.
pub mod defaults {
    use std::time::Duration;

    /// An audit file's size before rotation (also the admin CLI's `--audit`; audit.rs).
    pub const AUDIT_MAX_BYTES: u64 = 100 * 1024 * 1024;
    /// Rotated audit files kept.
    pub const AUDIT_KEEP: u32 = 10;

    pub fn cert_reload_interval() -> Duration {
        Duration::from_secs(10)
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(3)
    }
    pub fn response_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn pool_idle_timeout() -> Duration {
        Duration::from_secs(90)
    }
    pub fn pool_max_idle_per_host() -> usize {
        256
    }
    /// As many as a worker's default idle pool keeps, so that it is never closed for room.
    pub fn upstream_max_connections() -> usize {
        256
    }
    pub fn queue_timeout() -> Duration {
        Duration::from_secs(3)
    }
    pub fn ipv4_prefix() -> u8 {
        24
    }
    pub fn ipv6_prefix() -> u8 {
        48
    }
    pub fn max_header_bytes() -> usize {
        16 * 1024
    }
    pub fn max_headers() -> usize {
        100
    }
    pub fn max_body_bytes() -> usize {
        1024 * 1024
    }
    pub fn header_read_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn body_read_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn idle_timeout() -> Duration {
        Duration::from_secs(75)
    }
    pub fn send_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn upgrade_protocols() -> Vec<String> {
        vec!["websocket".to_owned()]
    }
    pub fn park_after() -> Duration {
        Duration::from_millis(100)
    }
    pub fn store_pool_size() -> usize {
        16
    }
    pub fn store_timeout() -> Duration {
        Duration::from_millis(500)
    }
    pub fn store_key_prefix() -> String {
        "nymgate:".into()
    }
    pub fn tls_handshake_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn max_connections() -> usize {
        20_000
    }
    pub fn max_concurrent_streams() -> u32 {
        128
    }
    pub fn shutdown_grace() -> Duration {
        Duration::from_secs(30)
    }
    pub fn log_level() -> String {
        "info".to_owned()
    }
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

    /// Semantic checks that serde can't do. Returns every problem found.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut problem =
            |field: &str, message: String| problems.push(ConfigProblem { field: field.to_owned(), message });

        if self.server.listen == self.server.admin_listen && self.server.listen.port() != 0 {
            problem(
                "server.admin_listen",
                "must differ from server.listen: the admin endpoints may not share the public \
                 listener"
                    .into(),
            );
        }
        for (field, path) in
            [("server.cert_file", &self.server.cert_file), ("server.key_file", &self.server.key_file)]
        {
            if let Err(e) = std::fs::metadata(path) {
                problem(
                    field,
                    format!(
                        "cannot read {}: {e}; run `nymgate certs dev` for a development certificate",
                        path.display()
                    ),
                );
            } else if field == "server.key_file" {
                // Only a key that exists has permissions to judge (a missing one was said once).
                if let Err(message) = check_private_file(path) {
                    problem(field, message);
                }
            }
        }
        // The audit log fails closed (docs/LOGIN.md): a folder that does not exist would refuse
        // every login from the first one, so it is refused at start instead.
        if let Some(folder) =
            self.audit.file.as_deref().and_then(Path::parent).filter(|f| !f.as_os_str().is_empty())
        {
            if !folder.is_dir() {
                problem(
                    "audit.file",
                    format!(
                        "its folder {} does not exist: create it, writable by nymgate's user only",
                        folder.display()
                    ),
                );
            }
        }
        if self.server.workers.is_some_and(|w| w == 0 || w > 256) {
            problem("server.workers", "must be 1 to 256 (default: one per CPU)".into());
        }
        if self.server.cert_reload_interval < std::time::Duration::from_secs(1) {
            problem("server.cert_reload_interval", "must be at least 1s".into());
        }
        for (i, host) in self.server.public_hosts.iter().enumerate() {
            let name = host.strip_prefix("*.").unwrap_or(host);
            let plain = name.parse::<std::net::IpAddr>().is_ok()
                || (!name.is_empty()
                    && name.len() <= 253
                    && name.split('.').all(|label| {
                        !label.is_empty()
                            && label.len() <= 63
                            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    }));
            if !plain {
                problem(
                    &format!("server.public_hosts[{i}]"),
                    format!("{host:?} is not a host name, an IP address or *.name; write it without scheme, port or path"),
                );
            }
        }

        if let Some(upstream) = &self.upstream {
            match UpstreamTarget::parse(&upstream.url) {
                Err(message) => problem("upstream.url", message),
                // Deny by default: plain http leaves loopback only when the config says so.
                Ok(target)
                    if target.scheme == http::uri::Scheme::HTTP
                        && !is_loopback_host(target.authority.host())
                        && !upstream.allow_plaintext =>
                {
                    problem(
                    "upstream.url",
                    format!(
                        "{:?} is plain http to a host off loopback: use https://, or set upstream.allow_plaintext = true if the network to the platform is private",
                        upstream.url
                    ),
                    )
                }
                Ok(_) => {}
            }
            if let Some(ca) = &upstream.ca_file {
                if let Err(e) = std::fs::metadata(ca) {
                    problem("upstream.ca_file", format!("cannot read {}: {e}", ca.display()));
                }
            }
            if upstream.connect_timeout.is_zero() {
                problem("upstream.connect_timeout", "must be more than 0s".into());
            }
            if upstream.response_timeout.is_zero() {
                problem("upstream.response_timeout", "must be more than 0s".into());
            }
            for (i, name) in upstream.upgrade_protocols.iter().enumerate() {
                let field = format!("upstream.upgrade_protocols[{i}]");
                if !is_token(name) {
                    problem(
                        &field,
                        format!("{name:?} is not a protocol name (RFC 9110 §7.8), e.g. \"websocket\""),
                    );
                } else if name.eq_ignore_ascii_case("h2c") || name.eq_ignore_ascii_case("h2") {
                    // Inside an h2c tunnel a client would speak HTTP/2 to the platform past every
                    // header rule nymgate keeps.
                    problem(&field, "HTTP/2 by upgrade (h2c) is never forwarded".into());
                } else if upstream.upgrade_protocols[..i].iter().any(|other| other.eq_ignore_ascii_case(name))
                {
                    problem(&field, format!("{name:?} is listed twice"));
                }
            }
            // Each platform connection is a file descriptor and a local port toward one address:
            // more than a port range's worth can't be open anyway.
            if !(1..=MAX_UPSTREAM_CONNECTIONS).contains(&upstream.max_connections) {
                problem(
                    "upstream.max_connections",
                    format!("must be 1 to {MAX_UPSTREAM_CONNECTIONS} (platform connections per worker)"),
                );
            }
            if upstream.queue_timeout.is_zero() {
                problem("upstream.queue_timeout", "must be more than 0s".into());
            }
        }

        let ip = &self.client_ip;
        if ip.ipv4_prefix > 32 {
            problem("client_ip.ipv4_prefix", "must be 0 to 32 (24 is the default)".into());
        }
        if ip.ipv6_prefix > 128 {
            problem("client_ip.ipv6_prefix", "must be 0 to 128 (48 is the default)".into());
        }
        if let Some(source) = &ip.hash_secret {
            validate_secret_source(source, "client_ip.hash_secret", &mut problem);
        }

        let privacy = &self.privacy;
        for (field, names) in [
            ("privacy.identity_headers", &privacy.identity_headers),
            ("privacy.drop_headers", &privacy.drop_headers),
            ("privacy.pseudonymize_headers", &privacy.pseudonymize_headers),
        ] {
            for name in names {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    problem(field, format!("{name:?} is not a valid header name"));
                }
            }
        }
        for (field, names) in [
            ("privacy.drop_query_params", &privacy.drop_query_params),
            ("privacy.pseudonymize_query_params", &privacy.pseudonymize_query_params),
        ] {
            if names.iter().any(|n| n.is_empty()) {
                problem(field, "parameter names may not be empty".into());
            }
        }

        let limits = &self.limits;
        if limits.max_header_bytes < 8192 {
            // hyper's read buffer can't go below 8 KiB.
            problem("limits.max_header_bytes", "must be at least 8192".into());
        }
        if limits.max_header_bytes > MAX_HEAD {
            // The framing watcher refuses a head longer than it follows (framing.rs).
            problem(
                "limits.max_header_bytes",
                format!("must be at most {} (the longest head the framing watcher follows)", MAX_HEAD),
            );
        }
        if limits.max_headers == 0 {
            problem("limits.max_headers", "must be at least 1".into());
        }
        if limits.max_connections == 0 {
            problem("limits.max_connections", "must be at least 1".into());
        }
        if limits.max_concurrent_streams == 0 {
            problem("limits.max_concurrent_streams", "must be at least 1".into());
        }
        for (field, value) in [
            ("limits.header_read_timeout", limits.header_read_timeout),
            ("limits.body_read_timeout", limits.body_read_timeout),
            ("limits.idle_timeout", limits.idle_timeout),
            ("limits.send_timeout", limits.send_timeout),
            ("limits.tls_handshake_timeout", limits.tls_handshake_timeout),
        ] {
            if value.is_zero() {
                problem(field, "must be more than 0s".into());
            }
        }
        self.validate_tenants(&mut problem);
        self.validate_login(&mut problem);
        self.alerts.validate(&mut problem);
        self.branding.validate("branding", &mut problem);
        for (i, tenant) in self.tenants.iter().enumerate() {
            tenant.branding.validate(&format!("tenants[{i}].branding"), &mut problem);
        }
        self.validate_store(&mut problem);
        self.validate_retention(&mut problem);
        self.validate_identity(&mut problem);
        if let Err(message) = validate_log_level(&self.log.level) {
            problem("log.level", message);
        }
        problems
    }
}

/// An HTTP token (RFC 9110 §5.6.2): header names, upgrade protocol names and versions.
pub fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The one rule for the names the config gives things that reach files, logs, metric labels
/// and tokens (tenant ids, pseudonym scopes, sectors): 1 to 64 of a-z, 0-9, '-' and '_'.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Config {
    fn validate_tenants(&self, problem: &mut impl FnMut(&str, String)) {
        match &self.pseudonyms {
            None if !self.tenants.is_empty() => problem(
                "pseudonyms.keyring_file",
                "is required once tenants are configured; create one with `nymgate keys new --keyring FILE --scope TENANT`".into(),
            ),
            Some(p) if p.keyring_file.exists() => {
                if let Err(message) = check_private_file(&p.keyring_file) {
                    problem("pseudonyms.keyring_file", message);
                }
            }
            Some(p) => problem(
                "pseudonyms.keyring_file",
                format!("{} does not exist; create it with `nymgate keys new --keyring {} --scope TENANT`", p.keyring_file.display(), p.keyring_file.display()),
            ),
            None => {}
        }
        let mut seen = std::collections::HashSet::new();
        for (i, tenant) in self.tenants.iter().enumerate() {
            if !is_valid_name(&tenant.id) {
                problem(
                    &format!("tenants[{i}].id"),
                    format!("{:?} is not valid: use 1 to 64 of a-z, 0-9, '-' and '_'", tenant.id),
                );
            }
            if !seen.insert(tenant.id.as_str()) {
                problem(&format!("tenants[{i}].id"), format!("{:?} is used by two tenants", tenant.id));
            }
            if let Some(scope) = &tenant.scope {
                if !is_valid_name(scope) {
                    problem(
                        &format!("tenants[{i}].scope"),
                        format!("{scope:?} is not valid: use 1 to 64 of a-z, 0-9, '-' and '_'"),
                    );
                }
            }
            if tenant.issuer.trim().is_empty() {
                problem(&format!("tenants[{i}].issuer"), "must not be empty".into());
            }
            let field = |name: &str| format!("tenants[{i}].{name}");
            match (&tenant.oidc, tenant.idp) {
                (Some(_), IdpKind::Saml) => {
                    problem(&field("oidc"), "applies to idp = \"entra\", \"google\" or \"oidc\"".into())
                }
                (None, IdpKind::Entra | IdpKind::Google | IdpKind::Oidc) if self.login.is_some() => problem(
                    &field("oidc"),
                    "is required for an OIDC tenant: client_id and client_secret at least".into(),
                ),
                (Some(oidc), _) => {
                    // Discovery, the JWKS and the token request (with the client secret) all
                    // follow from the issuer: plain http would carry them in the clear.
                    if let Err(message) = validate_https_url(&tenant.issuer, true) {
                        problem(&field("issuer"), format!("an OIDC issuer {message}"));
                    }
                    validate_oidc_tenant(oidc, &field, problem)
                }
                _ => {}
            }
            match (&tenant.saml, tenant.idp) {
                (Some(_), IdpKind::Entra | IdpKind::Google | IdpKind::Oidc) => {
                    problem(&field("saml"), "applies to idp = \"saml\" only".into())
                }
                (Some(saml), IdpKind::Saml) => {
                    if saml.clock_skew > Duration::from_secs(600) {
                        problem(&field("saml.clock_skew"), "must be at most 10m".into());
                    }
                    if let Some(Err(message)) =
                        saml.sso_url.as_deref().map(|url| validate_https_url(url, true))
                    {
                        problem(&field("saml.sso_url"), message);
                    }
                    if let Some(Err(message)) =
                        saml.metadata_url.as_deref().map(|url| validate_https_url(url, true))
                    {
                        problem(&field("saml.metadata_url"), message);
                    }
                    let metadata = saml.metadata_file.is_some() || saml.metadata_url.is_some();
                    if saml.metadata_file.is_some() && saml.metadata_url.is_some() {
                        problem(
                            &field("saml.metadata_url"),
                            "give metadata_file or metadata_url, not both".into(),
                        );
                    }
                    if !metadata && saml.sso_url.is_none() {
                        problem(
                            &field("saml.sso_url"),
                            "is required without metadata_file or metadata_url".into(),
                        );
                    }
                    if !metadata && saml.certificate_files.is_empty() {
                        problem(
                            &field("saml.certificate_files"),
                            "must name the IdP's signing certificate (or give its metadata)".into(),
                        );
                    }
                    if !metadata && !saml.metadata_signing_certificate_files.is_empty() {
                        problem(
                            &field("saml.metadata_signing_certificate_files"),
                            "applies to metadata only".into(),
                        );
                    }
                    let files = saml
                        .certificate_files
                        .iter()
                        .map(|p| ("saml.certificate_files", p))
                        .chain(
                            saml.metadata_signing_certificate_files
                                .iter()
                                .map(|p| ("saml.metadata_signing_certificate_files", p)),
                        )
                        .chain(saml.metadata_file.iter().map(|p| ("saml.metadata_file", p)))
                        .chain(saml.ca_file.iter().map(|p| ("saml.ca_file", p)));
                    for (name, path) in files {
                        if let Err(e) = std::fs::metadata(path) {
                            problem(&field(name), format!("cannot read {}: {e}", path.display()));
                        }
                    }
                    for path in &saml.certificate_files {
                        if let Err(message) = cert_strength::strong_enough(path, saml.allow_weak_algorithms) {
                            problem(&field("saml.certificate_files"), message);
                        }
                    }
                    if self.login.as_ref().is_some_and(|l| l.saml.is_none()) {
                        problem(
                            "login.saml",
                            format!(
                                "is required by the SAML tenant {:?}: add [login.saml] with cert_file and key_file \
                                 (nymgate's SP signing certificate and key; `nymgate certs saml --entity-id \
                                 {{public_url}}/nymgate/saml --out DIR` makes them), as in deploy/nymgate.example.toml",
                                tenant.id
                            ),
                        );
                    }
                }
                (None, IdpKind::Saml) if self.login.is_some() => problem(
                    &field("saml"),
                    "is required for a SAML tenant: sso_url and certificate_files at least".into(),
                ),
                _ => {}
            }
            for domain in &tenant.email_domains {
                if domain.is_empty() || domain.contains('@') || domain.contains(char::is_whitespace) {
                    problem(&field("email_domains"), format!("{domain:?} is not a domain name"));
                }
            }
            if tenant.subject.attribute.is_some() && tenant.idp != IdpKind::Saml {
                problem(
                    &format!("tenants[{i}].subject.attribute"),
                    "applies to SAML tenants only (idp = \"saml\")".into(),
                );
            }
        }
    }
}

impl Config {
    /// `[retention]` and each tenant's `[tenants.retention]`.
    fn validate_retention(&self, problem: &mut impl FnMut(&str, String)) {
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

    fn validate_store(&self, problem: &mut impl FnMut(&str, String)) {
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

/// A secret `serve` would refuse is a problem here too: both read it with
/// [`secrets::read_secret`] (or [`secrets::read_bearer_token`], via `read`).
fn validate_secret_source(source: &SecretSource, field: &str, problem: &mut impl FnMut(&str, String)) {
    validate_secret_with(source, field, problem, secrets::read_secret);
}

fn validate_secret_with(
    source: &SecretSource,
    field: &str,
    problem: &mut impl FnMut(&str, String),
    read: fn(&SecretSource) -> Result<Vec<u8>, String>,
) {
    match read(source) {
        // Read and checked as serve will, then forgotten (zeroed: it is a secret).
        Ok(mut bytes) => bytes.iter_mut().for_each(|b| *b = 0),
        Err(message) => {
            let part = match source {
                SecretSource::File(_) => "file",
                SecretSource::Env(_) => "env",
            };
            problem(&format!("{field}.{part}"), message);
        }
    }
}

/// The levels a log filter may name (tracing's, and `off`).
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// A log filter of levels only: `LEVEL` or comma-separated `TARGET=LEVEL` directives (targets
/// are Rust module paths), levels from [`LOG_LEVELS`] in any case. tracing's own grammar reads
/// an unknown word such as `inf` as a target with no level, which silences every log line,
/// errors included, so anything else is refused here rather than passed on.
pub fn validate_log_level(filter: &str) -> Result<(), String> {
    let fix = "try \"info\", or \"warn,nymgate=debug\"";
    let level = |word: &str| LOG_LEVELS.contains(&word.to_ascii_lowercase().as_str());
    let target = |word: &str| {
        !word.is_empty()
            && word
                .split("::")
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    };
    let directives: Vec<&str> = filter.split(',').map(str::trim).collect();
    if directives.iter().all(|directive| match directive.split_once('=') {
        None => level(directive),
        Some((name, value)) => target(name) && level(value),
    }) {
        Ok(())
    } else {
        Err(format!("{filter:?} is not a log level: {fix} (levels: {})", LOG_LEVELS.join(", ")))
    }
}

/// Whether a URL's host is this machine: `localhost`, or a loopback address (an IPv6 one in
/// brackets, as a URL writes it). Plain http is taken only toward these unless a field says so.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `https://host[:port]`, or plain http on a loopback address (local tests and the demo).
fn validate_https_url(url: &str, allow_path: bool) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    let host = uri.host().unwrap_or_default();
    let loopback = is_loopback_host(host);
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if loopback => {}
        _ => return Err(format!("{url:?} must be https (plain http only on loopback)")),
    }
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(format!("{url:?} may not have a query or fragment"));
    }
    if !allow_path && !matches!(uri.path(), "" | "/") {
        return Err(format!("{url:?} may not have a path"));
    }
    Ok(())
}

fn validate_oidc_tenant(
    oidc: &OidcTenantConfig,
    field: &dyn Fn(&str) -> String,
    problem: &mut impl FnMut(&str, String),
) {
    if let Some(url) = &oidc.discovery_url {
        if let Err(message) = validate_https_url(url, true) {
            problem(&field("oidc.discovery_url"), message);
        }
    }
    if let Some(endpoints) = &oidc.endpoints {
        if oidc.discovery_url.is_some() {
            problem(&field("oidc.endpoints"), "give either discovery_url or endpoints, not both".into());
        }
        let urls = [
            ("authorization", Some(&endpoints.authorization)),
            ("token", Some(&endpoints.token)),
            ("jwks", Some(&endpoints.jwks)),
            ("userinfo", endpoints.userinfo.as_ref()),
            ("end_session", endpoints.end_session.as_ref()),
        ];
        for (name, url) in urls {
            if let Some(Err(message)) = url.map(|u| validate_https_url(u, true)) {
                problem(&field(&format!("oidc.endpoints.{name}")), message);
            }
        }
    }
    if oidc.client_id.is_empty() {
        problem(&field("oidc.client_id"), "must not be empty".into());
    }
    validate_secret_source(&oidc.client_secret, &field("oidc.client_secret"), problem);
    // OpenID Connect Core §3.1.2.1: `openid` makes the request an OpenID Connect one; each scope
    // is a scope-token (RFC 6749 §3.3).
    if !oidc.scopes.iter().any(|scope| scope == "openid") {
        problem(&field("oidc.scopes"), "must include \"openid\" (OpenID Connect Core §3.1.2.1)".into());
    }
    for scope in &oidc.scopes {
        let token = !scope.is_empty()
            && scope.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !token {
            problem(&field("oidc.scopes"), format!("{scope:?} is not a scope token (RFC 6749 §3.3)"));
        }
    }
    if oidc.algorithms.is_empty() {
        problem(&field("oidc.algorithms"), "must name at least one algorithm (\"RS256\")".into());
    }
    for alg in &oidc.algorithms {
        if !login::ALLOWED_IDP_ALGORITHMS.contains(&alg.as_str()) {
            problem(
                &field("oidc.algorithms"),
                format!("{alg:?} is not allowed; choose from {}", login::ALLOWED_IDP_ALGORITHMS.join(", ")),
            );
        }
    }
    if oidc.clock_skew > Duration::from_secs(600) {
        problem(&field("oidc.clock_skew"), "must be at most 10m".into());
    }
    if oidc.jwks_refresh < Duration::from_secs(1) || oidc.jwks_refresh > Duration::from_secs(3600) {
        problem(
            &field("oidc.jwks_refresh"),
            "must be from 1s (below, the JWKS would be fetched for every login) to 1h (a key the IdP \
             removed is accepted until the next refresh)"
                .into(),
        );
    }
    if oidc.jwks_refetch_interval < Duration::from_secs(1) {
        problem(
            &field("oidc.jwks_refetch_interval"),
            "must be at least 1s: every token with an unknown kid would refetch the JWKS".into(),
        );
    }
    if let Some(ca) = &oidc.ca_file {
        if let Err(e) = std::fs::metadata(ca) {
            problem(&field("oidc.ca_file"), format!("cannot read {}: {e}", ca.display()));
        }
    }
}

impl Config {
    fn validate_login(&self, problem: &mut impl FnMut(&str, String)) {
        let Some(login) = &self.login else { return };
        if let Err(message) = validate_https_url(&login.public_url, false) {
            problem("login.public_url", message);
        } else if let Some(hosts) = self.public_hosts() {
            // Every link nymgate hands out names public_url: a host it would then refuse with
            // 421 breaks every login.
            let host = login.public_url.split("://").nth(1).unwrap_or("").split(['/', '?', '#']).next();
            if !host.is_some_and(|h| hosts.allows(h)) {
                problem(
                    "login.public_url",
                    "its host is not one of server.public_hosts (or, with none listed, a name of the \
                     TLS certificate): add it there"
                        .into(),
                );
            }
        }
        if let Some(source) = &login.seal_secret {
            validate_secret_source(source, "login.seal_secret", problem);
        }
        for (field, path) in
            login.signing.key_file.iter().map(|p| ("login.signing.key_file", p)).chain(
                login.signing.previous_key_files.iter().map(|p| ("login.signing.previous_key_files", p)),
            )
        {
            if let Err(message) = check_private_file(path) {
                problem(field, message);
            }
        }
        if login.code_lifetime.is_zero() || login.code_lifetime > Duration::from_secs(600) {
            problem("login.code_lifetime", "must be more than 0s and at most 10m (RFC 6749 §4.1.2)".into());
        }
        for (field, value) in [
            ("login.flow_lifetime", login.flow_lifetime),
            ("login.session_lifetime", login.session_lifetime),
            ("login.token_lifetime", login.token_lifetime),
            ("login.assertion.lifetime", login.assertion.lifetime),
            ("login.blocking.window", login.blocking.window),
            ("login.blocking.block_for", login.blocking.block_for),
        ] {
            if value.is_zero() {
                problem(field, "must be more than 0s".into());
            }
        }
        if login.blocking.max_failures == 0 {
            problem("login.blocking.max_failures", "must be at least 1".into());
        }
        for (i, tenant) in self.tenants.iter().enumerate() {
            if tenant.max_failed_logins == Some(0) {
                problem(&format!("tenants[{i}].max_failed_logins"), "must be at least 1".into());
            }
        }
        let mut ids = std::collections::HashSet::new();
        for (i, client) in login.clients.iter().enumerate() {
            if client.client_id.is_empty() || !ids.insert(client.client_id.as_str()) {
                problem(&format!("login.clients[{i}].client_id"), "must be non-empty and unique".into());
            }
            validate_secret_source(
                &client.client_secret,
                &format!("login.clients[{i}].client_secret"),
                problem,
            );
            if client.redirect_uris.is_empty() {
                problem(&format!("login.clients[{i}].redirect_uris"), "must list at least one URI".into());
            }
            for uri in &client.redirect_uris {
                if let Err(message) = validate_https_url(uri, true) {
                    problem(&format!("login.clients[{i}].redirect_uris"), message);
                }
            }
        }
        if login.output == LoginOutput::Provider && login.clients.is_empty() {
            problem("login.clients", "the provider output needs at least one platform client".into());
        }
        if http::HeaderName::from_bytes(login.assertion.header.as_bytes()).is_err() {
            problem(
                "login.assertion.header",
                format!("{:?} is not a valid header name", login.assertion.header),
            );
        }
        if self.tenants.is_empty() {
            problem("tenants", "login needs at least one tenant".into());
        }
        if let Some(saml) = &login.saml {
            if let Err(e) = std::fs::metadata(&saml.cert_file) {
                problem("login.saml.cert_file", format!("cannot read {}: {e}", saml.cert_file.display()));
            }
            if let Err(message) = check_private_file(&saml.key_file) {
                problem("login.saml.key_file", message);
            }
        }
        match &login.saml_idp {
            Some(idp) => self.validate_saml_idp(idp, problem),
            None if login.output == LoginOutput::Saml => {
                problem("login.saml_idp", "the saml output needs [login.saml_idp]".into())
            }
            None => {}
        }
    }

    /// `[login.saml_idp]` and its service providers.
    fn validate_saml_idp(&self, idp: &login::SamlIdpConfig, problem: &mut impl FnMut(&str, String)) {
        if let Err(e) = std::fs::metadata(&idp.cert_file) {
            problem("login.saml_idp.cert_file", format!("cannot read {}: {e}", idp.cert_file.display()));
        }
        if let Err(message) = check_private_file(&idp.key_file) {
            problem("login.saml_idp.key_file", message);
        }
        if SignatureAlgorithm::from_name(&idp.signature_algorithm).is_none() {
            problem(
                "login.saml_idp.signature_algorithm",
                format!("{:?}: use rsa-sha256, rsa-sha512 or ecdsa-sha256", idp.signature_algorithm),
            );
        }
        if idp.assertion_lifetime.is_zero() || idp.assertion_lifetime > Duration::from_secs(3600) {
            problem("login.saml_idp.assertion_lifetime", "must be more than 0s and at most 1h".into());
        }
        if idp.service_providers.is_empty() {
            problem("login.saml_idp.service_providers", "must list at least one platform".into());
        }
        let mut ids = std::collections::HashSet::new();
        for (i, sp) in idp.service_providers.iter().enumerate() {
            let field = |name: &str| format!("login.saml_idp.service_providers[{i}].{name}");
            if sp.entity_id.trim().is_empty() || !ids.insert(sp.entity_id.as_str()) {
                problem(&field("entity_id"), "must be non-empty and unique".into());
            }
            if let Err(message) = validate_https_url(&sp.acs_url, true) {
                problem(&field("acs_url"), message);
            }
            for path in &sp.certificate_files {
                // Read as serve reads it (saml_idp.rs: IdpTrust without weak algorithms).
                if let Err(message) = cert_strength::strong_enough(path, false) {
                    problem(&field("certificate_files"), message);
                }
            }
            let own_path = self.login.as_ref().and_then(|l| {
                let rest = sp.acs_url.strip_prefix(l.public_url.trim_end_matches('/'))?;
                rest.starts_with('/').then_some(rest)
            });
            match own_path {
                Some(path) if sp.intercept && owns_path(path) => problem(
                    &field("acs_url"),
                    "an intercepted ACS is the platform's path, not one under /nymgate".into(),
                ),
                None if sp.intercept => problem(
                    &field("acs_url"),
                    "with intercept = true it must be a path of login.public_url (the platform behind nymgate)"
                        .into(),
                ),
                _ => {}
            }
            if let Some(tenant) = &sp.tenant {
                if !self.tenants.iter().any(|t| &t.id == tenant) {
                    problem(&field("tenant"), format!("{tenant:?} is not a configured tenant"));
                }
            }
        }
    }
}

/// The most `upstream.max_connections` may be: one worker's connections to one platform address
/// each take a local port, and there are at most this many.
pub const MAX_UPSTREAM_CONNECTIONS: usize = 65_535;

/// A parsed `upstream.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTarget {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// `host:port` as written.
    pub authority: http::uri::Authority,
}

impl UpstreamTarget {
    pub fn parse(url: &str) -> Result<UpstreamTarget, String> {
        let uri: http::Uri =
            url.parse().map_err(|e| format!("{url:?} is not a URL ({e}); write http://host:port"))?;
        let scheme = uri.scheme().cloned().ok_or("needs a scheme: http:// or https://")?;
        if scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS {
            return Err(format!("scheme {scheme} is not supported: use http or https"));
        }
        let authority = uri.authority().cloned().ok_or("needs a host: http://host:port")?;
        if authority.as_str().contains('@') {
            return Err("must not contain user info; credentials belong in a secret file".into());
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err("must not have a path or query: nymgate forwards the client's path".into());
        }
        Ok(UpstreamTarget { scheme, authority })
    }
}

#[cfg(test)]
#[path = "check_parity_tests.rs"]
mod check_parity_tests;

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [server]
        listen = "127.0.0.1:8443"
        admin_listen = "127.0.0.1:9090"
        cert_file = "cert.pem"
        key_file = "key.pem"
    "#;

    #[test]
    fn minimal_config_gets_safe_defaults() {
        let c = Config::parse(MINIMAL).unwrap();
        assert!(c.upstream.is_none());
        assert_eq!(c.client_ip.mode, IpMode::Truncate);
        assert_eq!((c.client_ip.ipv4_prefix, c.client_ip.ipv6_prefix), (24, 48));
        assert_eq!(c.limits.max_header_bytes, 16 * 1024);
    }

    #[test]
    fn unknown_field_is_an_error_that_names_it() {
        let text = format!("{MINIMAL}\n[limits]\nmax_header_byts = 9000\n");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.contains("max_header_byts"), "{err}");
    }

    #[test]
    fn a_head_limit_past_the_framing_watch_is_refused() {
        let text = format!("{MINIMAL}\n[limits]\nmax_header_bytes = 65537\n");
        let problems = Config::parse(&text).unwrap().validate();
        assert!(problems.iter().any(|p| p.field == "limits.max_header_bytes"), "{problems:?}");
        let text = format!("{MINIMAL}\n[limits]\nmax_header_bytes = 65536\n");
        let problems = Config::parse(&text).unwrap().validate();
        assert!(!problems.iter().any(|p| p.field == "limits.max_header_bytes"), "{problems:?}");
    }

    #[test]
    fn semantic_problems_name_their_field() {
        let text = format!(
            "{MINIMAL}\n[upstream]\nurl = \"ftp://x/y\"\n[client_ip]\nipv4_prefix = 40\n[limits]\nmax_header_bytes = 10\n"
        );
        let c = Config::parse(&text).unwrap();
        let fields: Vec<String> = c.validate().into_iter().map(|p| p.field).collect();
        for f in ["upstream.url", "client_ip.ipv4_prefix", "limits.max_header_bytes", "server.cert_file"] {
            assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn saml_idp_problems_name_their_field() {
        let login = "[login]\npublic_url = \"https://learn.example\"\noutput = \"saml\"\n";
        let fields = |extra: &str| -> Vec<String> {
            let c = Config::parse(&format!("{MINIMAL}\n{login}{extra}")).unwrap();
            c.validate().into_iter().map(|p| p.field).filter(|f| f.starts_with("login.saml_idp")).collect()
        };
        assert_eq!(fields(""), ["login.saml_idp"], "the saml output needs the section");
        let idp = "[login.saml_idp]\ncert_file = \"/nonexistent/idp.pem\"\nkey_file = \"/nonexistent/idp-key.pem\"\n";
        let found = fields(&format!(
            "{idp}signature_algorithm = \"rsa-sha1\"\nassertion_lifetime = \"2h\"\n\
             [[login.saml_idp.service_providers]]\nentity_id = \"https://p.example\"\nacs_url = \"ftp://p.example/acs\"\ntenant = \"nope\"\n\
             [[login.saml_idp.service_providers]]\nentity_id = \"https://p.example\"\nacs_url = \"https://p.example/acs\"\nintercept = true\n\
             [[login.saml_idp.service_providers]]\nentity_id = \"https://q.example\"\nacs_url = \"https://learn.example/nymgate/x\"\nintercept = true\n"
        ));
        for f in [
            "login.saml_idp.cert_file",
            "login.saml_idp.key_file",
            "login.saml_idp.signature_algorithm",
            "login.saml_idp.assertion_lifetime",
            "login.saml_idp.service_providers[0].acs_url",
            "login.saml_idp.service_providers[0].tenant",
            "login.saml_idp.service_providers[1].entity_id",
            "login.saml_idp.service_providers[1].acs_url",
            "login.saml_idp.service_providers[2].acs_url",
        ] {
            assert!(found.iter().any(|x| x == f), "{f} missing from {found:?}");
        }
        assert_eq!(fields(idp).iter().filter(|f| *f == "login.saml_idp.service_providers").count(), 1);
    }

    #[test]
    fn retention_problems_name_their_field() {
        let tenant = "[[tenants]]\nid = \"skola-a\"\nidp = \"oidc\"\nissuer = \"https://idp.example\"\n\
                      [tenants.retention]\nroles = [\"teacher\", \"rektor\"]\nattributes = { email = [] }\n";
        let c = Config::parse(&format!("{MINIMAL}\n{tenant}")).unwrap();
        let fields: Vec<String> =
            c.validate().into_iter().map(|p| p.field).filter(|f| f.contains("retention")).collect();
        assert_eq!(
            fields,
            ["tenants[0].retention.roles", "tenants[0].retention.roles", "tenants[0].retention.attributes"],
            "no [retention], an unknown role, an attribute read from nothing"
        );
        let store = "[retention]\nsqlite_file = \"/nonexistent-folder/retained.db\"\ncull_after = \"0s\"\n";
        let c = Config::parse(&format!("{MINIMAL}\n{store}")).unwrap();
        let fields: Vec<String> =
            c.validate().into_iter().map(|p| p.field).filter(|f| f.contains("retention")).collect();
        assert_eq!(fields, ["retention.sqlite_file", "retention.cull_after"]);
    }

    #[test]
    fn redis_urls_are_read_strictly() {
        let url = RedisUrl::parse("rediss://cache.internal:6380/2").unwrap();
        assert_eq!(url, RedisUrl { tls: true, host: "cache.internal".into(), port: 6380, db: 2 });
        assert_eq!(RedisUrl::parse("redis://[::1]").unwrap().host, "::1");
        assert_eq!(RedisUrl::parse("redis://127.0.0.1").unwrap().port, 6379);
        for bad in ["http://x", "redis://user:pw@x", "redis://x/abc", "redis://x/0?timeout=1", "redis:///0"] {
            assert!(RedisUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_redis_store_needs_a_url_and_the_shared_secrets() {
        let fields = |extra: &str| -> Vec<String> {
            let c = Config::parse(&format!("{MINIMAL}\n{extra}")).unwrap();
            c.validate()
                .into_iter()
                .map(|p| p.field)
                .filter(|f| f.starts_with("store") || f.starts_with("login.s"))
                .collect()
        };
        assert_eq!(fields("[store]\nbackend = \"redis\"\n"), ["store.url"]);
        assert_eq!(fields("[store]\nurl = \"redis://x\"\n"), ["store.url"], "a URL without the backend");
        assert_eq!(
            fields("[store]\nbackend = \"redis\"\nurl = \"redis://x\"\npool_size = 0\n"),
            ["store.pool_size"]
        );
        let login = "[login]\npublic_url = \"https://nymgate.example\"\n";
        assert_eq!(
            fields(&format!("[store]\nbackend = \"redis\"\nurl = \"redis://x\"\n{login}")),
            ["login.seal_secret", "login.signing.key_file"]
        );
    }

    #[test]
    fn alert_problems_name_their_field() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!((c.alerts.signature_failure, c.alerts.guard_trip), (5, 1));
        assert!(c.alerts.webhook.is_none());
        let text = format!(
            r#"{MINIMAL}
[alerts]
window = "0s"
[alerts.webhook]
url = "http://ops.example/hook"
secret = {{ env = "NYMGATE_TEST_UNSET_WEBHOOK_SECRET" }}
max_attempts = 0
timeout = "0s"
"#
        );
        let c = Config::parse(&text).unwrap();
        let fields: Vec<String> = c.validate().into_iter().map(|p| p.field).collect();
        for f in [
            "alerts.window",
            "alerts.webhook.url",
            "alerts.webhook.secret.env",
            "alerts.webhook.max_attempts",
            "alerts.webhook.timeout",
        ] {
            assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn login_problems_name_their_field() {
        let text = format!(
            r#"{MINIMAL}
[login]
public_url = "http://learn.example/app"
code_lifetime = "1h"
[login.signing]
alg = "ES256"
[[tenants]]
id = "school-a"
idp = "oidc"
issuer = "https://idp.example"
[tenants.oidc]
client_id = ""
client_secret = {{ env = "NYMGATE_TEST_UNSET_VARIABLE" }}
algorithms = ["HS256"]
discovery_url = "https://idp.example"
endpoints = {{ authorization = "https://idp.example/a", token = "ftp://idp.example/t", jwks = "https://idp.example/j" }}
[[tenants]]
id = "school-b"
idp = "saml"
issuer = "https://idp-b.example"
[tenants.oidc]
client_id = "x"
client_secret = {{ env = "NYMGATE_TEST_UNSET_VARIABLE" }}
"#
        );
        let c = Config::parse(&text).unwrap();
        let fields: Vec<String> = c.validate().into_iter().map(|p| p.field).collect();
        for f in [
            "login.public_url",
            "login.code_lifetime",
            "login.clients",
            "tenants[0].oidc.client_id",
            "tenants[0].oidc.client_secret.env",
            "tenants[0].oidc.algorithms",
            "tenants[0].oidc.endpoints",
            "tenants[0].oidc.endpoints.token",
            "tenants[1].oidc",
        ] {
            assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn plain_http_to_a_platform_off_loopback_is_refused_unless_said() {
        let config = |url: &str, allow: bool| {
            format!("{MINIMAL}\n[upstream]\nurl = \"{url}\"\nallow_plaintext = {allow}\n")
        };
        let refused = |url: &str, allow: bool| {
            Config::parse(&config(url, allow)).unwrap().validate().iter().any(|p| p.field == "upstream.url")
        };
        for url in [
            "http://127.0.0.1:3000",
            "http://localhost:3000",
            "http://LOCALHOST:3000",
            "http://[::1]:3000",
            "http://127.9.9.9:3000",
            "https://platform.example",
        ] {
            assert!(!refused(url, false), "{url}");
        }
        for url in [
            "http://platform.example:3000",
            "http://10.0.0.5:3000",
            "http://[2001:db8::1]:3000",
            "http://localhost.example:3000",
            "http://0.0.0.0:3000",
        ] {
            assert!(refused(url, false), "{url}");
            assert!(!refused(url, true), "{url} with allow_plaintext");
        }
    }

    #[test]
    fn upstream_url_forms() {
        assert!(UpstreamTarget::parse("http://127.0.0.1:3000").is_ok());
        assert!(UpstreamTarget::parse("https://platform.internal").is_ok());
        assert!(UpstreamTarget::parse("http://127.0.0.1:3000/app").is_err());
        assert!(UpstreamTarget::parse("http://user:pw@host").is_err());
        assert!(UpstreamTarget::parse("127.0.0.1:3000").is_err());
    }

    #[test]
    fn the_reference_config_in_deploy_parses_with_its_stated_defaults() {
        let text = include_str!("../../deploy/nymgate.example.toml");
        let c = Config::parse(text).unwrap();
        let d = LimitsConfig::default();
        assert_eq!(c.limits.max_header_bytes, d.max_header_bytes);
        assert_eq!(c.limits.max_connections, d.max_connections);
        assert_eq!(c.limits.idle_timeout, d.idle_timeout);
        assert_eq!(c.limits.body_read_timeout, d.body_read_timeout);
        assert_eq!(c.limits.shutdown_grace, d.shutdown_grace);
        assert_eq!(c.server.cert_reload_interval, defaults::cert_reload_interval());
        let u = c.upstream.unwrap();
        assert_eq!(
            (u.connect_timeout, u.response_timeout),
            (defaults::connect_timeout(), defaults::response_timeout())
        );
        assert_eq!(u.pool_max_idle_per_host, defaults::pool_max_idle_per_host());
        assert_eq!(
            (u.max_connections, u.queue_timeout, u.pool_per_client_connection),
            (defaults::upstream_max_connections(), defaults::queue_timeout(), false)
        );
    }

    #[test]
    fn upstream_bounds_are_validated_by_name() {
        for (extra, field) in [
            ("max_connections = 0", "upstream.max_connections"),
            ("max_connections = 70000", "upstream.max_connections"),
            ("queue_timeout = \"0s\"", "upstream.queue_timeout"),
        ] {
            let text = format!("{MINIMAL}\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n{extra}\n");
            let fields: Vec<String> =
                Config::parse(&text).unwrap().validate().into_iter().map(|p| p.field).collect();
            assert!(fields.iter().any(|f| f == field), "{extra}: {fields:?}");
        }
    }
}
