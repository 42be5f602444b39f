//! The public listener: one SO_REUSEPORT socket per worker, and the port is nymgate's alone.
//!
//! SO_REUSEPORT lets each worker have its own accept queue (no shared queue, no cross-thread
//! wake-ups), but it lets any process of the same user join the group as well: a stale or
//! misconfigured second `nymgate serve` on the same address would start without an error and
//! take every other connection. So before the group is bound:
//! 1. a probe socket without SO_REUSEPORT is bound to the address and closed: it fails if
//!    anything listens there, with or without SO_REUSEPORT (Linux refuses to mix the two);
//! 2. after the group is bound, an abstract Unix socket named after the address is held for
//!    the process's life (`\0nymgate-listen-ADDR`, per network namespace, gone with the process
//!    even after kill -9): of two nymgates started in the same instant, past the probe both,
//!    exactly one gets it and the other stops with the same error.

use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;

/// The bound public sockets, one per worker, and the guard that keeps the port nymgate's.
pub struct PublicListeners {
    pub sockets: Vec<std::net::TcpListener>,
    pub addr: SocketAddr,
    /// Held while the server runs; nothing is ever accepted on it.
    pub guard: std::os::unix::net::UnixListener,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("another process already listens on {0} (a second nymgate, or another server): stop it first, or give server.listen another address; nymgate does not share its port")]
    InUse(SocketAddr),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Binds `workers` sockets on `addr` (port 0: a free port, the same for all), refusing an
/// address anything else listens on.
pub fn bind_public(addr: SocketAddr, workers: usize) -> Result<PublicListeners, ListenError> {
    if addr.port() != 0 {
        probe(addr)?;
    }
    let first = bind_reuseport(addr).map_err(|error| in_use(addr, error))?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers.max(1) {
        sockets.push(bind_reuseport(addr).map_err(|error| in_use(addr, error))?);
    }
    let name = std::os::unix::net::SocketAddr::from_abstract_name(format!("nymgate-listen-{addr}"))?;
    let guard = std::os::unix::net::UnixListener::bind_addr(&name).map_err(|error| in_use(addr, error))?;
    Ok(PublicListeners { sockets, addr, guard })
}

fn in_use(addr: SocketAddr, error: std::io::Error) -> ListenError {
    if error.kind() == std::io::ErrorKind::AddrInUse {
        ListenError::InUse(addr)
    } else {
        ListenError::Io(error)
    }
}

/// Fails when anything listens on `addr`. SO_REUSEADDR only lets it past connections of an
/// earlier run still in TIME_WAIT, which the group's own bind tolerates too.
fn probe(addr: SocketAddr) -> Result<(), ListenError> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into()).map_err(|error| in_use(addr, error))
}

/// A public-listener socket with SO_REUSEPORT, so that each worker has its own and the kernel
/// spreads new connections across them.
fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_addr() -> SocketAddr {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    }

    #[test]
    fn a_second_nymgate_on_the_same_address_is_refused() {
        let first = bind_public("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        assert_eq!(first.sockets.len(), 2);
        let second = bind_public(first.addr, 2);
        assert!(matches!(second, Err(ListenError::InUse(addr)) if addr == first.addr));
    }

    /// Whatever listens on the port, with whichever options: a plain listener, or a SO_REUSEPORT
    /// group of the same user, which SO_REUSEPORT alone would join. (A socket bound and not
    /// listening takes no connection, and Linux lets SO_REUSEADDR sockets share its address.)
    #[test]
    fn any_other_listener_on_the_port_is_refused() {
        use socket2::{Domain, Socket, Type};
        for (reuseaddr, reuseport) in [(false, false), (true, false), (false, true), (true, true)] {
            let addr = free_addr();
            let other = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            other.set_reuse_address(reuseaddr).unwrap();
            other.set_reuse_port(reuseport).unwrap();
            other.bind(&addr.into()).unwrap();
            other.listen(16).unwrap();
            let refused = bind_public(addr, 2);
            assert!(
                matches!(refused, Err(ListenError::InUse(_))),
                "reuseaddr {reuseaddr}, reuseport {reuseport}: not refused ({:?})",
                refused.err()
            );
        }
    }

    /// Past the probe (two starts in the same instant): the guard decides.
    #[test]
    fn the_guard_refuses_a_group_that_got_past_the_probe() {
        let first = bind_public("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let joined = bind_reuseport(first.addr).unwrap();
        let name =
            std::os::unix::net::SocketAddr::from_abstract_name(format!("nymgate-listen-{}", first.addr))
                .unwrap();
        let error = std::os::unix::net::UnixListener::bind_addr(&name).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
        drop(joined);
    }

    #[test]
    fn the_address_is_free_again_once_the_server_is_gone() {
        let addr = free_addr();
        let first = bind_public(addr, 2).unwrap();
        drop(first);
        let again = bind_public(addr, 2).unwrap();
        assert_eq!(again.addr, addr);
    }
}
