//! The audit log: one JSON line per login attempt and per admin action, apart from the
//! operational log. It holds what the privacy policy promises to record (time, tenant, outcome,
//! reason, account number, reduced IP) and never a personal value: events are built from typed
//! fields, none of which can hold an email, a name or a subject.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, OnceLock};

use serde::Serialize;

/// One audit event.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent<'a> {
    /// RFC 3339 UTC.
    pub time: String,
    /// `login` or `admin`.
    pub kind: &'static str,
    /// What happened, from a fixed list (see docs in README).
    pub action: &'static str,
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// `oidc` or `saml`, for logins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<&'static str>,
    /// The client IP as reduced by `client_ip.mode` (never the raw address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
    /// The outgoing claim a guard trip was found in (its name, never its value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<&'static str>,
}

impl<'a> AuditEvent<'a> {
    pub fn admin(action: &'static str, outcome: &'static str) -> Self {
        Self {
            time: rfc3339(crate::pseudonym::keyring::unix_now()),
            kind: "admin",
            action,
            outcome,
            tenant: None,
            scope: None,
            key_version: None,
            account_number: None,
            reason: None,
            protocol: None,
            client: None,
            request_id: None,
            claim: None,
        }
    }

    /// A login attempt: `outcome` is `ok` or `failed`, with a reason code when it failed.
    pub fn login(outcome: &'static str, protocol: &'static str, client: String, request_id: &'a str) -> Self {
        Self {
            kind: "login",
            protocol: Some(protocol),
            client: Some(client),
            request_id: Some(request_id),
            ..Self::admin("login", outcome)
        }
    }
}

/// Where audit lines go: a file (appended, mode 0600, rotated by size), standard output, or
/// standard error.
#[derive(Debug)]
pub enum AuditSink {
    File {
        file: Arc<RotatingFile>,
        /// The group-commit thread for `record_async`, started at its first line.
        committer: OnceLock<Option<mpsc::Sender<Pending>>>,
    },
    Stdout,
    Stderr,
}

/// A line waiting for the group commit, and whom to tell when it is on disk.
type Pending = (Vec<u8>, tokio::sync::oneshot::Sender<std::io::Result<()>>);

/// At most this many lines share one `fdatasync`: bounds a batch's write and its wait.
const MAX_BATCH: usize = 1024;

/// Rotation by size: past `max_bytes` the file becomes `FILE.1` (`FILE.1` becomes `FILE.2`, …,
/// and `FILE.{keep}` is dropped). Nothing is lost to rotation but what `keep` says to drop.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    /// 0: never rotate.
    max_bytes: u64,
    keep: u32,
    open: std::sync::Mutex<Option<std::fs::File>>,
}

/// Defaults for a file named without rotation settings (the admin CLI's `--audit`).
pub const DEFAULT_MAX_BYTES: u64 = 100 * 1024 * 1024;
pub const DEFAULT_KEEP: u32 = 10;

impl AuditSink {
    pub fn from_path(path: Option<&Path>) -> Self {
        path.map_or(AuditSink::Stderr, |p| AuditSink::file(p, DEFAULT_MAX_BYTES, DEFAULT_KEEP))
    }

    pub fn from_config(config: &crate::config::AuditConfig) -> Self {
        match (&config.file, config.stdout) {
            (_, true) => AuditSink::Stdout,
            (Some(path), false) => AuditSink::file(path, config.max_bytes, config.keep),
            (None, false) => AuditSink::Stderr,
        }
    }

    pub fn file(path: &Path, max_bytes: u64, keep: u32) -> Self {
        let file = RotatingFile { path: path.to_owned(), max_bytes, keep, open: Default::default() };
        AuditSink::File { file: Arc::new(file), committer: OnceLock::new() }
    }

    fn line(event: &AuditEvent<'_>) -> Vec<u8> {
        let mut line = serde_json::to_vec(event).expect("audit events serialize");
        line.push(b'\n');
        line
    }

    /// Writes one line, and for a file waits until it is on disk. An audit line that can't be
    /// written is an error the caller reports: an admin action must not look recorded when it
    /// was not. Blocks the thread: for the CLI; the server uses `record_async`.
    pub fn record(&self, event: &AuditEvent<'_>) -> std::io::Result<()> {
        let line = Self::line(event);
        match self {
            AuditSink::Stdout => std::io::stdout().lock().write_all(&line),
            AuditSink::Stderr => std::io::stderr().lock().write_all(&line),
            AuditSink::File { file, .. } => file.append_all(&[line]),
        }
    }

    /// The same for async code, by group commit: lines from concurrent logins queue for one
    /// writer thread, which writes all that are waiting and syncs them with one `fdatasync`,
    /// then answers each. Every caller still waits until its own line is on disk, but neither
    /// holds a runtime thread during the sync nor pays a sync of its own (one per login had
    /// been a fifth of nymgate's time at 2,000 logins/s, in `perf`).
    pub async fn record_async(&self, event: &AuditEvent<'_>) -> std::io::Result<()> {
        let line = Self::line(event);
        let AuditSink::File { file, committer } = self else {
            return match self {
                AuditSink::Stdout => std::io::stdout().lock().write_all(&line),
                _ => std::io::stderr().lock().write_all(&line),
            };
        };
        let stopped = || std::io::Error::other("the audit writer thread is not running");
        let sender = committer.get_or_init(|| start_committer(file.clone())).as_ref().ok_or_else(stopped)?;
        let (done, written) = tokio::sync::oneshot::channel();
        sender.send((line, done)).map_err(|_| stopped())?;
        written.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// The group-commit thread of one audit file. It ends when its sink is dropped (a reload
/// builds a new one), after writing what was queued.
fn start_committer(file: Arc<RotatingFile>) -> Option<mpsc::Sender<Pending>> {
    let (sender, queue) = mpsc::channel::<Pending>();
    let spawned = std::thread::Builder::new().name("nymgate-audit".into()).spawn(move || {
        while let Ok(first) = queue.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            let (lines, waiting): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let result = file.append_all(&lines);
            for done in waiting {
                let _ = done.send(
                    result.as_ref().map(|_| ()).map_err(|e| std::io::Error::new(e.kind(), e.to_string())),
                );
            }
        }
    });
    match spawned {
        Ok(_) => Some(sender),
        Err(error) => {
            tracing::error!(%error, "cannot start the audit writer thread");
            None
        }
    }
}

impl RotatingFile {
    /// Appends `lines` in one write and syncs them once (a batch is rotated as a whole).
    fn append_all(&self, lines: &[Vec<u8>]) -> std::io::Result<()> {
        let bytes = lines.concat();
        use std::os::unix::fs::MetadataExt;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        // Another process (the admin CLI) may have rotated the file: write to the one at `path`.
        let on_disk = std::fs::metadata(&self.path).ok();
        let held = open.as_ref().and_then(|f| f.metadata().ok());
        let same =
            matches!((&on_disk, &held), (Some(a), Some(b)) if a.dev() == b.dev() && a.ino() == b.ino());
        if !same {
            *open = None;
        }
        let size = on_disk.map_or(0, |m| m.len());
        if self.max_bytes > 0 && size > 0 && size + bytes.len() as u64 > self.max_bytes {
            *open = None;
            self.rotate()?;
        }
        let file = match open.as_mut() {
            Some(file) => file,
            None => {
                use std::os::unix::fs::OpenOptionsExt;
                let file =
                    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?;
                open.insert(file)
            }
        };
        file.write_all(&bytes)?;
        file.sync_data()
    }

    fn rotate(&self) -> std::io::Result<()> {
        let numbered = |i: u32| {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{i}"));
            PathBuf::from(name)
        };
        if self.keep == 0 {
            return std::fs::remove_file(&self.path);
        }
        let _ = std::fs::remove_file(numbered(self.keep));
        for i in (1..self.keep).rev() {
            match std::fs::rename(numbered(i), numbered(i + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, numbered(1))
    }
}

/// Unix seconds as RFC 3339 UTC (`2026-11-24T21:15:00Z`), by the civil-from-days algorithm
/// (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_994_100), "2026-11-29T23:15:00Z");
    }

    #[test]
    fn file_sink_appends_private_lines() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let sink = AuditSink::from_path(Some(&path));
        sink.record(&AuditEvent::admin("keys_new", "ok")).unwrap();
        sink.record(&AuditEvent { scope: Some("s"), ..AuditEvent::admin("keys_rotate", "ok") }).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().nth(1).unwrap().contains("\"scope\":\"s\""));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn file_sink_rotates_by_size_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let line_len = serde_json::to_vec(&AuditEvent::admin("keys_new", "ok")).unwrap().len() as u64 + 1;
        // Two lines per file, two rotated files kept.
        let sink = AuditSink::file(&path, 2 * line_len, 2);
        for action in ["a1", "a2", "a3", "a4", "a5", "a6", "a7"] {
            sink.record(&AuditEvent::admin(action, "ok")).unwrap();
        }
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
        let actions = |text: String| -> Vec<String> {
            text.lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["action"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect()
        };
        assert_eq!(actions(read("audit.log")), ["a7"]);
        assert_eq!(actions(read("audit.log.1")), ["a5", "a6"]);
        assert_eq!(actions(read("audit.log.2")), ["a3", "a4"]);
        assert!(!dir.path().join("audit.log.3").exists(), "only `keep` rotated files");
    }

    #[test]
    fn file_sink_follows_a_rotation_by_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let sink = AuditSink::from_path(Some(&path));
        sink.record(&AuditEvent::admin("before", "ok")).unwrap();
        std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
        sink.record(&AuditEvent::admin("after", "ok")).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("\"after\""));
        assert!(!std::fs::read_to_string(dir.path().join("audit.log.1")).unwrap().contains("\"after\""));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_async_lines_are_each_written_once_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let sink = Arc::new(AuditSink::from_path(Some(&path)));
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let id = format!("r{i}");
                    sink.record_async(&AuditEvent::login("ok", "oidc", "192.0.2.0".into(), &id)).await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        // Every caller got Ok only once its line was written: all 200 are there, each once.
        let text = std::fs::read_to_string(&path).unwrap();
        let mut ids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 200);
        assert_eq!(text.lines().count(), 200);
    }

    #[tokio::test]
    async fn an_async_line_that_cannot_be_written_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let sink = AuditSink::from_path(Some(&dir.path().join("missing/audit.log")));
        let written = sink.record_async(&AuditEvent::admin("keys_new", "ok")).await;
        assert!(written.is_err());
    }
}
