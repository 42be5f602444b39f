//! HTTP/1.1 upgrades (RFC 9110 §7.8): which ones are forwarded, and the tunnel after a 101.
//!
//! An upgraded connection leaves HTTP: nymgate's header rules, the framing watch and the
//! request log no longer see its bytes. So an upgrade is forwarded only for a protocol the
//! config names (`upstream.upgrade_protocols`, WebSocket by default), asked for in exactly one
//! way; anything else that carries an `Upgrade` field is refused with 400, never passed on with
//! the field dropped, so that the client learns at once. `h2c` is refused whatever the config
//! says (config validation): inside it a client would speak HTTP/2 to the platform with forged
//! identity and forwarding headers.
//!
//! The tunnel keeps the connection's bounds (conn_bounds.rs): its place under
//! `limits.max_connections`, `limits.idle_timeout`, and the server's shutdown.

use http::header::{self, HeaderValue};
use http::{HeaderMap, Version};

use crate::config::is_token;
use crate::conn_bounds::{Tunnel, TunnelEnd};
use crate::metrics::Metrics;

/// What a request asks for by way of an upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeAsk {
    /// No `Upgrade` field: an ordinary request.
    None,
    /// One allowed protocol, and `Connection: upgrade`: forwarded with this `Upgrade` value
    /// (the configured spelling of the name, then the client's version if it gave one).
    Allowed(HeaderValue),
    /// Anything else with an `Upgrade` field: refused with 400.
    Refused,
}

/// Reads a request's upgrade, deciding on one canonical form: the fields' values joined as
/// one list, split on commas, white space trimmed, the protocol name compared without case.
pub fn read(version: Version, headers: &HeaderMap, allowed: &[String]) -> UpgradeAsk {
    let mut upgrades = headers.get_all(header::UPGRADE).iter().peekable();
    if upgrades.peek().is_none() {
        return UpgradeAsk::None;
    }
    // HTTP/2 and HTTP/1.0 have no upgrade (RFC 9113 §8.6, RFC 9110 §7.8).
    if version != Version::HTTP_11 {
        return UpgradeAsk::Refused;
    }
    let mut protocols = Vec::new();
    for value in upgrades {
        let Ok(text) = value.to_str() else { return UpgradeAsk::Refused };
        protocols.extend(text.split(',').map(|p| p.trim_matches([' ', '\t'])).filter(|p| !p.is_empty()));
    }
    // One protocol, or nymgate would be choosing for the platform.
    let [protocol] = protocols.as_slice() else { return UpgradeAsk::Refused };
    let (name, version) = match protocol.split_once('/') {
        Some((name, version)) => (name, Some(version)),
        None => (*protocol, None),
    };
    if !is_token(name) || version.is_some_and(|v| !is_token(v)) {
        return UpgradeAsk::Refused;
    }
    let Some(configured) = allowed.iter().find(|a| a.eq_ignore_ascii_case(name)) else {
        return UpgradeAsk::Refused;
    };
    // The sender of Upgrade must also send the "upgrade" connection option (RFC 9110 §7.8).
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim_matches([' ', '\t']).eq_ignore_ascii_case("upgrade"));
    if !asks {
        return UpgradeAsk::Refused;
    }
    let value = match version {
        Some(version) => format!("{configured}/{version}"),
        None => configured.clone(),
    };
    HeaderValue::from_str(&value).map_or(UpgradeAsk::Refused, UpgradeAsk::Allowed)
}

/// Whether the platform's 101 switched to the protocol the client asked for (by name, without
/// case): a 101 to anything else is a tunnel nobody agreed to.
pub fn platform_agrees(asked: &HeaderValue, answered: Option<&HeaderValue>) -> bool {
    let name = |v: &HeaderValue| {
        v.to_str().ok().map(|t| t.trim_matches([' ', '\t']).split('/').next().unwrap_or_default().to_owned())
    };
    match (name(asked), answered.and_then(name)) {
        (Some(asked), Some(answered)) => asked.eq_ignore_ascii_case(&answered),
        _ => false,
    }
}

/// Joins the client's and the platform's upgraded connections until either side closes, the
/// tunnel has been idle for `limits.idle_timeout`, or the server closes.
pub fn splice(
    tunnel: Tunnel,
    platform: crate::upstream::client::Upgraded,
    client_upgrade: hyper::upgrade::OnUpgrade,
    metrics: std::sync::Arc<Metrics>,
) {
    tokio::spawn(async move {
        let client = match client_upgrade.await {
            Ok(client) => client,
            Err(error) => {
                tracing::debug!(%error, "upgrade did not complete");
                return;
            }
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut platform = platform;
        match tunnel.splice(&mut client, &mut platform).await {
            TunnelEnd::Idle => metrics.deadline_cut("tunnel_idle"),
            end => tracing::debug!(?end, "upgraded connection ended"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn websocket() -> Vec<String> {
        vec!["websocket".to_owned()]
    }

    #[test]
    fn websocket_in_any_case_is_forwarded_in_the_configured_spelling() {
        for spelling in ["websocket", "WebSocket", "WEBSOCKET", " websocket\t"] {
            let h = headers(&[("connection", "keep-alive, Upgrade"), ("upgrade", spelling)]);
            assert_eq!(
                read(Version::HTTP_11, &h, &websocket()),
                UpgradeAsk::Allowed(HeaderValue::from_static("websocket")),
                "{spelling:?}"
            );
        }
    }

    #[test]
    fn h2c_is_refused_in_every_spelling() {
        for spelling in ["h2c", "H2C", "h2c, websocket", "websocket, h2c", "h2c/1"] {
            let h = headers(&[("connection", "Upgrade, HTTP2-Settings"), ("upgrade", spelling)]);
            assert_eq!(read(Version::HTTP_11, &h, &websocket()), UpgradeAsk::Refused, "{spelling:?}");
        }
    }

    #[test]
    fn an_upgrade_asked_twice_or_without_the_connection_option_is_refused() {
        let twice = headers(&[("connection", "upgrade"), ("upgrade", "websocket"), ("upgrade", "websocket")]);
        assert_eq!(read(Version::HTTP_11, &twice, &websocket()), UpgradeAsk::Refused);
        let bare = headers(&[("upgrade", "websocket")]);
        assert_eq!(read(Version::HTTP_11, &bare, &websocket()), UpgradeAsk::Refused);
        let h2 = headers(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        assert_eq!(read(Version::HTTP_2, &h2, &websocket()), UpgradeAsk::Refused);
        assert_eq!(read(Version::HTTP_11, &HeaderMap::new(), &websocket()), UpgradeAsk::None);
    }

    #[test]
    fn the_platform_must_switch_to_the_protocol_asked_for() {
        let asked = HeaderValue::from_static("websocket");
        assert!(platform_agrees(&asked, Some(&HeaderValue::from_static("WebSocket"))));
        assert!(!platform_agrees(&asked, Some(&HeaderValue::from_static("h2c"))));
        assert!(!platform_agrees(&asked, None));
    }

    proptest! {
        /// Whatever an `Upgrade` field says, only a single configured protocol is ever allowed,
        /// and what is forwarded names that protocol.
        #[test]
        fn only_a_configured_protocol_is_ever_forwarded(
            values in proptest::collection::vec("[ -~]{0,24}", 1..3),
            connection in "[ -~]{0,24}",
        ) {
            let mut h = HeaderMap::new();
            for v in &values {
                if let Ok(v) = HeaderValue::from_str(v) {
                    h.append(header::UPGRADE, v);
                }
            }
            if let Ok(c) = HeaderValue::from_str(&connection) {
                h.append(header::CONNECTION, c);
            }
            if let UpgradeAsk::Allowed(value) = read(Version::HTTP_11, &h, &websocket()) {
                let forwarded = value.to_str().unwrap();
                prop_assert!(forwarded == "websocket" || forwarded.starts_with("websocket/"), "{forwarded}");
                prop_assert!(!forwarded.to_ascii_lowercase().contains("h2c"));
            }
        }
    }
}
