//! Writing the keyring, and its backups: one writer at a time, and a file that is at every
//! instant the last good keyring or the new one (issue 28).
//!
//! - **One writer.** Every writer (`nymgate keys`, `nymgate retention offboard`, the admin
//!   API's offboarding in the server) takes an exclusive `flock(2)` on `<keyring>.lock` and holds
//!   it across read, change and write, so no change is lost and an erased key is never written
//!   back by a writer that read it before the erasure. The lock file is never deleted: a writer
//!   that deleted it could lock a new file while another holds the old one. The kernel drops the
//!   lock when its holder dies, `kill -9` included. A writer waits for the lock at most
//!   [`LOCK_WAIT`] (30 s) and then fails, the keyring unchanged.
//! - **Atomic replacement.** The new text goes to a temporary file with a random name, created
//!   with `O_EXCL` and mode 0600, written, fsynced and read back; only when it parses to exactly
//!   what was meant is it renamed over the keyring, and the directory fsynced so the rename
//!   survives a power cut. Any failure before the rename removes the temporary file and leaves
//!   the last good keyring. A `kill -9` mid-write leaves a temporary file the next writer removes
//!   under the lock; it holds the keyring that writer meant, never a key an earlier completed
//!   erasure destroyed (the erasing writer removed stale files before writing).
//! - **Readers need no lock**: rename is atomic, so a start or reload reads an old or new file.
//! - **Symlinks are resolved**, not refused: the real file is replaced and the link kept, so a
//!   keyring on a linked volume works and an erasure can't leave the keys in the link's target.
//!   The lock sits next to the real file, so writers through the link and through the real path
//!   exclude each other.
//! - **Ownership is kept**: a writer running as root replaces a keyring owned by the service's
//!   user with one owned by the same user, or fails (and keeps the old one).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::keyring::{Keyring, KeyringError};

/// The named steps of a write, in order: a build with the `keyring-crash-points` feature stops
/// at the one named by `NYMGATE_KEYRING_STOP_AT` (tests kill it there with SIGKILL).
pub const CRASH_STEPS: &[&str] = &[
    "locked",
    "loaded",
    "temp_created",
    "temp_half_written",
    "temp_written",
    "temp_synced",
    "temp_verified",
    "renamed",
    "dir_synced",
];

/// The steps after which the new keyring is in place (a crash from here on leaves the new one).
pub const STEPS_AFTER_RENAME: &[&str] = &["renamed", "dir_synced"];

/// Stops the process at `step` when the test build asks for it: it says so on stderr, then
/// waits to be killed. Only built with the `keyring-crash-points` feature, which a shipped build
/// never enables.
#[cfg(feature = "keyring-crash-points")]
fn crash_point(step: &'static str) {
    debug_assert!(CRASH_STEPS.contains(&step));
    if std::env::var("NYMGATE_KEYRING_STOP_AT").is_ok_and(|s| s == step) {
        eprintln!("nymgate: stopped at keyring step {step}");
        loop {
            std::thread::park();
        }
    }
}

#[cfg(not(feature = "keyring-crash-points"))]
#[inline(always)]
fn crash_point(_step: &'static str) {}

fn io_error(what: &str, path: &Path, error: std::io::Error) -> KeyringError {
    KeyringError::File(format!("cannot {what} {}: {error}", path.display()))
}

/// The file a write replaces: `path` with every symlink resolved. A keyring not created yet is
/// its resolved directory joined with its name; a dangling symlink is refused (where it points
/// may be a path the operator did not mean).
pub fn resolve(path: &Path) -> Result<PathBuf, KeyringError> {
    match std::fs::canonicalize(path) {
        Ok(real) if real.is_file() => Ok(real),
        Ok(real) => Err(KeyringError::File(format!("{} is not a regular file", real.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(path).is_ok() {
                return Err(KeyringError::File(format!(
                    "{} is a symlink to a missing file; point it at the keyring or remove it",
                    path.display()
                )));
            }
            let name = path
                .file_name()
                .ok_or_else(|| KeyringError::File(format!("{} does not name a file", path.display())))?;
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let parent = std::fs::canonicalize(parent).map_err(|e| io_error("resolve", parent, e))?;
            Ok(parent.join(name))
        }
        Err(e) => Err(io_error("resolve", path, e)),
    }
}

/// `<dir>/<name><suffix>`.
fn sibling(target: &Path, suffix: &str) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    target.with_file_name(name)
}

/// The prefix of the temporary files of `target`: `.<name>.`, then 16 hex digits and `.tmp`.
fn temp_prefix(target: &Path) -> String {
    format!(".{}.", target.file_name().unwrap_or_default().to_string_lossy())
}

fn is_temp_of(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(".tmp"))
        .is_some_and(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// How long a writer waits for another to finish before it gives up: a write holds the lock
/// for milliseconds, so a lock held this long is a stuck writer, and the server's offboarding
/// (a blocking thread) must not wait on it without end.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The exclusive writer lock on one file (the keyring or a backup), held until dropped.
pub struct WriterLock {
    /// The open lock file: the flock lives as long as this descriptor.
    _lock: File,
    /// The resolved file the writes replace.
    target: PathBuf,
}

impl WriterLock {
    /// Waits (at most [`LOCK_WAIT`]) for the lock on `path`'s real file, then removes temporary
    /// files a killed writer left (no one else writes while we hold the lock).
    pub fn take(path: &Path) -> Result<WriterLock, KeyringError> {
        Self::take_within(path, LOCK_WAIT)
    }

    fn take_within(path: &Path, wait: std::time::Duration) -> Result<WriterLock, KeyringError> {
        use rustix::fs::{FlockOperation, Mode, OFlags};
        let target = resolve(path)?;
        let lock_path = sibling(&target, ".lock");
        // O_NOFOLLOW: a link planted as the lock file must not make us create a file elsewhere.
        let fd = rustix::fs::open(
            &lock_path,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|e| io_error("open the lock file", &lock_path, e.into()))?;
        let deadline = std::time::Instant::now() + wait;
        loop {
            match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    return Err(KeyringError::File(format!(
                        "{} is locked by another writer for over {} s; is a `nymgate keys` command stuck?",
                        lock_path.display(),
                        wait.as_secs_f32()
                    )))
                }
                Err(e) => return Err(io_error("lock", &lock_path, e.into())),
            }
        }
        // The link may have been pointed elsewhere while we waited: then this lock guards the
        // wrong file.
        if resolve(path)? != target {
            return Err(KeyringError::File(format!(
                "{} now points to another file; run the command again",
                path.display()
            )));
        }
        crash_point("locked");
        let lock = WriterLock { _lock: File::from(fd), target };
        lock.remove_stale_temps()?;
        Ok(lock)
    }

    /// The resolved file this lock guards.
    pub fn target(&self) -> &Path {
        &self.target
    }

    fn dir(&self) -> &Path {
        self.target.parent().unwrap_or(Path::new("/"))
    }

    fn remove_stale_temps(&self) -> Result<(), KeyringError> {
        let prefix = temp_prefix(&self.target);
        let entries = std::fs::read_dir(self.dir()).map_err(|e| io_error("list", self.dir(), e))?;
        for entry in entries.flatten() {
            if is_temp_of(&prefix, &entry.file_name().to_string_lossy()) {
                std::fs::remove_file(entry.path())
                    .map_err(|e| io_error("remove the stale temporary file", &entry.path(), e))?;
            }
        }
        Ok(())
    }

    /// Replaces the target with `bytes` (mode 0600), checked by `check` on what was read back
    /// before the rename and again after it. On any failure before the rename the target is
    /// untouched and no temporary file is left.
    pub fn write(
        &self,
        bytes: &[u8],
        check: impl Fn(&[u8]) -> Result<(), KeyringError>,
    ) -> Result<(), KeyringError> {
        let temp =
            self.dir().join(format!("{}{}.tmp", temp_prefix(&self.target), crate::secret::random_hex::<8>()));
        let mut renamed = false;
        let result = self.write_steps(&temp, bytes, &check, &mut renamed);
        if !renamed {
            // Best effort: if even this fails, the next writer removes it under the lock.
            let _ = std::fs::remove_file(&temp);
        }
        result?;
        // Read back through the target's name: what a start or reload will read.
        let back = std::fs::read(&self.target).map_err(|e| io_error("read back", &self.target, e))?;
        if back != bytes {
            return Err(KeyringError::File(format!(
                "{} does not hold what was written; check the disk",
                self.target.display()
            )));
        }
        crate::config::check_private_file(&self.target).map_err(KeyringError::File)?;
        check(&back)
    }

    fn write_steps(
        &self,
        temp: &Path,
        bytes: &[u8],
        check: &dyn Fn(&[u8]) -> Result<(), KeyringError>,
        renamed: &mut bool,
    ) -> Result<(), KeyringError> {
        let fail = |what: &str, e| io_error(what, temp, e);
        // create_new is O_CREAT|O_EXCL, which also never follows a symlink at `temp`.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::CLOEXEC.bits() as i32)
            .open(temp)
            .map_err(|e| fail("create", e))?;
        crash_point("temp_created");
        // Keep the owner of the file being replaced (a root shell writing the service's file).
        if let Ok(old) = std::fs::metadata(&self.target) {
            let new = file.metadata().map_err(|e| fail("inspect", e))?;
            if (old.uid(), old.gid()) != (new.uid(), new.gid()) {
                std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid()))
                    .map_err(|e| fail("give the keyring's owner", e))?;
            }
        }
        let (first, second) = bytes.split_at(bytes.len() / 2);
        file.write_all(first).map_err(|e| fail("write", e))?;
        crash_point("temp_half_written");
        file.write_all(second).map_err(|e| fail("write", e))?;
        crash_point("temp_written");
        file.sync_all().map_err(|e| fail("fsync", e))?;
        crash_point("temp_synced");
        drop(file);
        let back = std::fs::read(temp).map_err(|e| fail("read back", e))?;
        if back != bytes {
            return Err(KeyringError::File(format!("{} does not hold what was written", temp.display())));
        }
        check(&back)?;
        crash_point("temp_verified");
        std::fs::rename(temp, &self.target).map_err(|e| fail("rename", e))?;
        *renamed = true;
        crash_point("renamed");
        // The rename is durable only once the directory is (rename(2), fsync(2)).
        File::open(self.dir())
            .and_then(|dir| dir.sync_all())
            .map_err(|e| io_error("fsync the directory", self.dir(), e))?;
        crash_point("dir_synced");
        Ok(())
    }
}

/// Reads the keyring at `path` (an empty one if it does not exist and `create`), applies
/// `change` and writes the result, all under the writer lock. The write is checked by reading
/// it back: the file must parse to exactly the keyring `change` left. On any error the keyring
/// on disk is the one before.
pub fn update<T>(
    path: &Path,
    create: bool,
    change: impl FnOnce(&mut Keyring) -> Result<T, KeyringError>,
) -> Result<T, KeyringError> {
    let lock = WriterLock::take(path)?;
    let target = lock.target().to_owned();
    let exists = std::fs::symlink_metadata(&target).is_ok();
    let mut ring = if exists || !create { Keyring::load(&target)? } else { Keyring::default() };
    crash_point("loaded");
    let before = ring.to_text();
    let value = change(&mut ring)?;
    let text = ring.to_text();
    if text == before && exists {
        // Nothing changed (an erasure already made): the file already says what is meant.
        return Ok(value);
    }
    lock.write(text.as_bytes(), |bytes| {
        let written = std::str::from_utf8(bytes)
            .map_err(|_| KeyringError::File("the keyring written is not UTF-8".into()))?;
        match Keyring::parse(written, &target)?.to_text() == text {
            true => Ok(()),
            false => Err(KeyringError::File("the keyring written does not read back the same".into())),
        }
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_match_only_our_pattern() {
        let prefix = temp_prefix(Path::new("/k/keyring.toml"));
        assert!(is_temp_of(&prefix, ".keyring.toml.0123456789abcdef.tmp"));
        assert!(!is_temp_of(&prefix, ".keyring.toml.0123.tmp"));
        assert!(!is_temp_of(&prefix, "keyring.toml"));
        assert!(!is_temp_of(&prefix, ".keyring.toml.bak.0123456789abcdef.tmp"));
    }

    #[test]
    fn a_failed_check_keeps_the_last_good_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.toml");
        let mut ring = Keyring::default();
        ring.new_scope("s", 1).unwrap();
        ring.save(&path).unwrap();
        let before = std::fs::read(&path).unwrap();
        let lock = WriterLock::take(&path).unwrap();
        let refused = lock.write(b"anything", |_| Err(KeyringError::File("no".into())));
        assert!(refused.is_err());
        drop(lock);
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "the keyring and its lock file only: {names:?}");
    }

    /// A writer that never finishes does not hold the others without end.
    #[test]
    fn a_held_lock_is_waited_for_a_bounded_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.toml");
        Keyring::default().save(&path).unwrap();
        let held = WriterLock::take(&path).unwrap();
        let refused = WriterLock::take_within(&path, std::time::Duration::from_millis(100));
        assert!(refused.err().unwrap().to_string().contains("locked by another writer"));
        drop(held);
        assert!(WriterLock::take_within(&path, std::time::Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn a_dangling_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("keyring.toml");
        std::os::unix::fs::symlink(dir.path().join("missing.toml"), &link).unwrap();
        assert!(resolve(&link).unwrap_err().to_string().contains("symlink to a missing file"));
    }
}
