//! The admin listener's address as the CLI takes it, one form for every command that asks
//! the admin listener (`health --admin`, `loadtest --admin`; issue 29: one took `HOST:PORT`,
//! the other a URL). Either is accepted: `127.0.0.1:9090` or `http://127.0.0.1:9090` (a
//! trailing `/` too), as written in `server.admin_listen` or as a browser would open it. The
//! admin listener is plain HTTP, so `https://` is refused rather than silently spoken to in
//! plaintext; a path is refused because each command asks its own.

use std::net::{SocketAddr, ToSocketAddrs};

/// Parses `HOST:PORT` or `http://HOST:PORT[/]`; a name (`localhost:9090`) resolves to its
/// first address.
pub fn parse(text: &str) -> Result<SocketAddr, String> {
    let bare = match text.split_once("://") {
        Some(("http", rest)) => rest.strip_suffix('/').unwrap_or(rest),
        Some((scheme, _)) => {
            return Err(format!("the admin listener speaks plain http, not {scheme}: write HOST:PORT"))
        }
        None => text,
    };
    if bare.contains('/') {
        return Err("write HOST:PORT (or http://HOST:PORT) without a path".into());
    }
    if let Ok(addr) = bare.parse::<SocketAddr>() {
        return Ok(addr);
    }
    bare.to_socket_addrs()
        .map_err(|e| format!("{bare:?} is not HOST:PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("{bare:?} has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_address_forms_of_health_and_loadtest_are_one() {
        let addr: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        for form in ["127.0.0.1:9090", "http://127.0.0.1:9090", "http://127.0.0.1:9090/"] {
            assert_eq!(parse(form), Ok(addr), "{form}");
        }
        assert_eq!(parse("http://[::1]:9090"), Ok("[::1]:9090".parse().unwrap()));
        assert!(parse("localhost:9090").is_ok_and(|a| a.ip().is_loopback() && a.port() == 9090));
        for refused in ["https://127.0.0.1:9090", "http://127.0.0.1:9090/metrics", "127.0.0.1", "http://", ""]
        {
            assert!(parse(refused).is_err(), "{refused}");
        }
    }
}
