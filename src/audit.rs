//! The audit log: one JSON line per login attempt and per admin action, apart from the
//! operational log. It holds what the privacy policy promises to record (time, tenant, outcome,
//! reason, account number, reduced IP) and never a personal value: events are built from typed
//! fields, none of which can hold an email, a name or a subject.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, OnceLock};

use serde::Serialize;

/// One audit event.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent<'a> {
    /// RFC 3339 UTC.
    pub time: String,
    /// `login`, `admin`, or `audit` (the sink's own `audit_sink` line after an outage).
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
    /// How many events one line stands for: refused admin calls aggregated over an interval
    /// (src/login/admin_refusals.rs), or the lines an outage kept from the log (`audit_sink`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

impl<'a> AuditEvent<'a> {
    pub fn admin(action: &'static str, outcome: &'static str) -> Self {
        Self {
            time: rfc3339(crate::clock::unix_now()),
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
            count: None,
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
/// standard error; and whether they have been going there.
///
/// The audit log fails closed (docs/LOGIN.md, "The audit log"): a write that fails is an error
/// the caller must answer by refusing what it was about to do, and the sink remembers it. While
/// it fails, `is_failing` is true (`/readyz` reports not ready) and every attempt refused for
/// want of its line is counted; the first write that succeeds again opens with an `audit_sink`
/// line carrying that count, so the log itself says how many attempts went unrecorded (each of
/// them was refused, none was carried out).
#[derive(Debug)]
pub struct AuditSink {
    /// The destination and its health, shared with the group-commit thread.
    inner: Arc<Inner>,
    /// The group-commit thread for `record_async`, started at its first line (files only).
    committer: OnceLock<Option<mpsc::Sender<Pending>>>,
}

#[derive(Debug)]
struct Inner {
    target: Target,
    health: Health,
}

#[derive(Debug)]
enum Target {
    File(RotatingFile),
    Stdout,
    Stderr,
}

/// Whether the sink writes, and what it could not write.
#[derive(Debug, Default)]
struct Health {
    /// Lines that could not be written since the last write that succeeded. Held across each
    /// write, so that the count and the write it opens agree.
    unwritten: std::sync::Mutex<u64>,
    /// The last write failed: read without the lock by `/readyz`.
    failing: AtomicBool,
}

/// A line waiting for the group commit (empty: a probe), and whom to tell when it is on disk.
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

/// Defaults for a file named without rotation settings (the admin CLI's `--audit`); the config's
/// `[audit]` defaults too, so they live there.
pub use crate::config::defaults::{AUDIT_KEEP as DEFAULT_KEEP, AUDIT_MAX_BYTES as DEFAULT_MAX_BYTES};

impl AuditSink {
    pub fn from_path(path: Option<&Path>) -> Self {
        path.map_or(Self::with(Target::Stderr), |p| AuditSink::file(p, DEFAULT_MAX_BYTES, DEFAULT_KEEP))
    }

    pub fn from_config(config: &crate::config::AuditConfig) -> Self {
        match (&config.file, config.stdout) {
            (_, true) => Self::with(Target::Stdout),
            (Some(path), false) => AuditSink::file(path, config.max_bytes, config.keep),
            (None, false) => Self::with(Target::Stderr),
        }
    }

    pub fn file(path: &Path, max_bytes: u64, keep: u32) -> Self {
        let file = RotatingFile { path: path.to_owned(), max_bytes, keep, open: Default::default() };
        Self::with(Target::File(file))
    }

    fn with(target: Target) -> Self {
        AuditSink { inner: Arc::new(Inner { target, health: Health::default() }), committer: OnceLock::new() }
    }

    fn line(event: &AuditEvent<'_>) -> Vec<u8> {
        let mut line = serde_json::to_vec(event).expect("audit events serialize");
        line.push(b'\n');
        line
    }

    /// Whether the last write failed (and none has succeeded since): `/readyz` is not ready.
    pub fn is_failing(&self) -> bool {
        self.inner.health.failing.load(Ordering::Acquire)
    }

    /// Writes one line, and for a file waits until it is on disk. An audit line that can't be
    /// written is an error the caller reports: an admin action must not look recorded when it
    /// was not. Blocks the thread: for the CLI; the server uses `record_async`.
    pub fn record(&self, event: &AuditEvent<'_>) -> std::io::Result<()> {
        self.inner.write(&[Self::line(event)])
    }

    /// Several lines in one write and one sync: all are on disk, or the error says none may be
    /// relied on (the DPO lookup's numbers, which are answered together or not at all).
    pub fn record_all(&self, events: &[AuditEvent<'_>]) -> std::io::Result<()> {
        self.inner.write(&events.iter().map(Self::line).collect::<Vec<_>>())
    }

    /// The same for async code, by group commit: lines from concurrent logins queue for one
    /// writer thread, which writes all that are waiting and syncs them with one `fdatasync`,
    /// then answers each. Every caller still waits until its own line is on disk, but neither
    /// holds a runtime thread during the sync nor pays a sync of its own (one per login had
    /// been a fifth of nymgate's time at 2,000 logins/s, in `perf`).
    pub async fn record_async(&self, event: &AuditEvent<'_>) -> std::io::Result<()> {
        self.send(Self::line(event)).await
    }

    /// While the sink is failing, tries it again: the line it writes is the `audit_sink`
    /// recovery line, so a probe that succeeds ends the outage on record. `Ok` at once while
    /// the sink is healthy (nothing is written).
    pub async fn probe(&self) -> std::io::Result<()> {
        if !self.is_failing() {
            return Ok(());
        }
        self.send(Vec::new()).await
    }

    async fn send(&self, line: Vec<u8>) -> std::io::Result<()> {
        if !matches!(self.inner.target, Target::File(_)) {
            return self.inner.write(&[line]);
        }
        let stopped = || std::io::Error::other("the audit writer thread is not running");
        let sender = self
            .committer
            .get_or_init(|| start_committer(self.inner.clone()))
            .as_ref()
            .ok_or_else(stopped)?;
        let (done, written) = tokio::sync::oneshot::channel();
        sender.send((line, done)).map_err(|_| stopped())?;
        written.await.unwrap_or_else(|_| Err(stopped()))
    }
}

impl Inner {
    /// Writes `lines` (empty ones are probes) in one write, preceded by the recovery line when
    /// earlier lines could not be written; keeps the health in step with the result.
    fn write(&self, lines: &[Vec<u8>]) -> std::io::Result<()> {
        let mut unwritten = self.health.unwritten.lock().unwrap_or_else(|e| e.into_inner());
        let mut bytes = Vec::new();
        if *unwritten > 0 || self.health.failing.load(Ordering::Acquire) {
            bytes = AuditSink::line(&AuditEvent {
                kind: "audit",
                count: Some(*unwritten),
                reason: Some("write_failed"),
                ..AuditEvent::admin("audit_sink", "recovered")
            });
        }
        lines.iter().for_each(|line| bytes.extend_from_slice(line));
        if bytes.is_empty() {
            return Ok(());
        }
        let result = match &self.target {
            Target::File(file) => file.append(&bytes),
            Target::Stdout => std::io::stdout().lock().write_all(&bytes),
            Target::Stderr => std::io::stderr().lock().write_all(&bytes),
        };
        match &result {
            Ok(()) => *unwritten = 0,
            Err(_) => *unwritten += lines.iter().filter(|line| !line.is_empty()).count() as u64,
        }
        self.health.failing.store(result.is_err(), Ordering::Release);
        result
    }
}

/// The group-commit thread of one audit file. It ends when its sink is dropped (a reload
/// builds a new one), after writing what was queued.
fn start_committer(inner: Arc<Inner>) -> Option<mpsc::Sender<Pending>> {
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
            let result = inner.write(&lines);
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
    /// Appends `bytes` in one write and syncs them once (a batch is rotated as a whole).
    fn append(&self, bytes: &[u8]) -> std::io::Result<()> {
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
        let written = file.write_all(bytes).and_then(|()| file.sync_data());
        if written.is_err() {
            // A descriptor that failed once (EIO, ENOSPC) is not trusted again: the next write
            // opens the file anew, so a repaired disk or a replaced file is found.
            *open = None;
        }
        written
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

pub use crate::clock::rfc3339;

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
