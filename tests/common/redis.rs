//! A real Redis (Debian `redis-server`) for the shared-store tests: its own folder, a free
//! port, persistence off, the default user disabled and an ACL user `nymgate` allowed only the
//! commands nymgate sends, on keys under `nymgate:`. Optionally TLS only.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::login::free_port;

pub struct RedisServer {
    pub port: u16,
    pub tls: bool,
    dir: PathBuf,
    certs: PathBuf,
    child: Option<Child>,
}

pub const REDIS_PASSWORD: &str = "redis-test-password-7d1f";

impl RedisServer {
    /// Starts redis-server in `dir/redis`; with `tls`, on a TLS port only, with the certificate
    /// in `certs` (localhost.pem, signed by dev-ca.pem).
    pub fn start(dir: &Path, certs: &Path, tls: bool) -> RedisServer {
        let redis_dir = dir.join("redis");
        std::fs::create_dir_all(&redis_dir).unwrap();
        let mut server =
            RedisServer { port: free_port(), tls, dir: redis_dir, certs: certs.to_owned(), child: None };
        server.restart();
        server
    }

    /// Stops the server (SIGKILL: as abrupt as a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        let listen = if self.tls {
            format!(
                "port 0\ntls-port {port}\ntls-cert-file {certs}/localhost.pem\ntls-key-file {certs}/localhost-key.pem\ntls-ca-cert-file {certs}/dev-ca.pem\ntls-auth-clients no\n",
                port = self.port,
                certs = self.certs.display()
            )
        } else {
            format!("port {}\n", self.port)
        };
        let conf = format!(
            "{listen}bind 127.0.0.1\nsave \"\"\nappendonly no\ndir {dir}\nuser default off\nuser nymgate on >{REDIS_PASSWORD} ~nymgate:* -@all +ping +set +eval +pttl +incr +expire +del\n",
            dir = self.dir.display()
        );
        let conf_path = self.dir.join("redis.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("redis.log")).unwrap();
        // Ready when the log gains a "Ready to accept connections" line (the log is appended
        // over restarts). A connect alone could reach another process that took the port.
        let ready_lines = || {
            std::fs::read_to_string(self.dir.join("redis.log"))
                .unwrap_or_default()
                .matches("Ready to accept connections")
                .count()
        };
        let before = ready_lines();
        let mut child = Command::new("redis-server")
            .arg(&conf_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server did not start (Debian package redis-server): {e}"));
        for _ in 0..100 {
            if ready_lines() > before {
                self.child = Some(child);
                return;
            }
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "redis-server never listened: {}",
            std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
        );
    }

    /// The `[store]` section for nymgate, with the password in a private file in `dir`.
    pub fn store_toml(&self, dir: &Path) -> String {
        let password = dir.join("redis-password");
        super::login::write_private(&password, REDIS_PASSWORD);
        let (scheme, ca) = if self.tls {
            ("rediss", format!("ca_file = \"{}/dev-ca.pem\"\n", self.certs.display()))
        } else {
            ("redis", String::new())
        };
        format!(
            "[store]\nbackend = \"redis\"\nurl = \"{scheme}://localhost:{port}/0\"\nusername = \"nymgate\"\npassword = {{ file = \"{password}\" }}\n{ca}timeout = \"300ms\"\n",
            port = self.port,
            password = password.display()
        )
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
