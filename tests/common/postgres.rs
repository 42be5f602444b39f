//! A real PostgreSQL server for the retention tests: Debian's `postgresql` package (installed by
//! tests/run.sh), a fresh cluster per test in a folder of its own, on a free loopback port, with
//! SCRAM password authentication. As root the cluster runs as the `postgres` user, because
//! PostgreSQL refuses to run as root.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::login::{free_port, Peer};

pub const USER: &str = "nymgate";

pub struct PostgresServer {
    pub port: u16,
    pub password: String,
    dir: PathBuf,
    _server: Peer,
}

/// The newest installed server binaries (`/usr/lib/postgresql/15/bin`).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap_or_else(|_| {
            panic!("PostgreSQL is not installed (Debian package postgresql; tests/run.sh installs it)")
        })
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL server in /usr/lib/postgresql/*/bin")
}

/// The uid and gid to run as: `postgres` when we are root, else ourselves.
fn run_as() -> Option<(u32, u32)> {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !root {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("the postgres user (Debian package postgresql)");
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields[2].parse().unwrap(), fields[3].parse().unwrap()))
}

fn command(program: PathBuf, user: Option<(u32, u32)>) -> Command {
    let mut command = Command::new(program);
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command
}

impl PostgresServer {
    pub fn start() -> PostgresServer {
        let user = run_as();
        // Not under the test's own temporary folder: as root that is 0700, closed to `postgres`.
        let dir = std::env::temp_dir().join(format!("nymgate-pg-{}", nymgate::secret::random_hex::<8>()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let password = nymgate::secret::random_hex::<16>();
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, &password).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).unwrap();
        }
        let bin = bin_dir();
        let data = dir.join("data");
        let init = command(bin.join("initdb"), user)
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "--auth=scram-sha-256", "--no-sync", "-E", "UTF8", "--pwfile"])
            .arg(&pwfile)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(init.status.success(), "initdb failed: {}", String::from_utf8_lossy(&init.stderr));
        for _ in 0..5 {
            let port = free_port();
            let log = dir.join(format!("postgres-{port}.log"));
            let log_file = std::fs::File::create(&log).unwrap();
            if let Some((uid, gid)) = user {
                std::os::unix::fs::chown(&log, Some(uid), Some(gid)).unwrap();
            }
            let child = command(bin.join("postgres"), user)
                .arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
                .arg(&dir)
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
            let mut server = Peer(child);
            for _ in 0..200 {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("ready to accept connections") {
                    return PostgresServer { port, password, dir, _server: server };
                }
                if server.0.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(text.contains("Address already in use"), "postgres did not start: {text}");
        }
        panic!("postgres found no free port in five tries");
    }

    /// The `[retention]` section for nymgate, with the password in a private file in `dir`.
    pub fn retention_toml(&self, dir: &Path) -> String {
        let password = dir.join("postgres-password");
        super::login::write_private(&password, &self.password);
        format!(
            "[retention]\nbackend = \"postgres\"\npostgres_url = \"postgres://{USER}@127.0.0.1:{}/postgres\"\npostgres_password = {{ file = \"{}\" }}\n",
            self.port,
            password.display()
        )
    }

    /// The cluster's data folder (`base/` holds the tables' files, `pg_wal/` the WAL), for tests
    /// that read what is on disk.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A client as the cluster's superuser (`CHECKPOINT`, `pg_relation_filepath`).
    pub fn client(&self) -> postgres::Client {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(USER)
            .password(&self.password)
            .dbname("postgres")
            .connect(postgres::NoTls)
            .unwrap()
    }

    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // The server first, then its folder.
        let _ = self._server.0.kill();
        let _ = self._server.0.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
