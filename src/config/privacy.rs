//! `[client_ip]` and `[privacy]`: what the platform learns of the client, its address and the
//! headers and query parameters that would name it.

use ipnet::IpNet;
use serde::Deserialize;

use super::{defaults, SecretSource};

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
