//! `nymgate health`: asks a running nymgate's admin listener whether it lives (`/healthz`) or is
//! ready (`/readyz`), for container health checks where the image has no shell or curl. Exit 0 on
//! a 200 answer, 1 otherwise (the status line or the error on standard error).

use std::process::ExitCode;

/// One GET on the admin listener with a short timeout; 0 on 200.
pub fn run(admin: std::net::SocketAddr, ready: bool) -> ExitCode {
    use std::io::{Read, Write};
    let path = if ready { "/readyz" } else { "/healthz" };
    let timeout = std::time::Duration::from_secs(2);
    let answer = (|| -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect_timeout(&admin, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        stream.take(4096).read_to_string(&mut text)?;
        Ok(text)
    })();
    match answer {
        Ok(text) if text.starts_with("HTTP/1.1 200") => ExitCode::SUCCESS,
        Ok(text) => {
            eprintln!("nymgate: {path}: {}", text.lines().next().unwrap_or("no answer"));
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("nymgate: {path} at {admin}: {error}");
            ExitCode::FAILURE
        }
    }
}
