//! The keyring's writers (src/pseudonym/keyring_write.rs, issue 28): real `nymgate keys`
//! processes racing each other and the server's offboarding, killed at every step of a write,
//! and writing through a symlink.

use std::collections::BTreeSet;
#[cfg(feature = "keyring-crash-points")]
use std::io::{BufRead, BufReader};
use std::path::Path;
#[cfg(feature = "keyring-crash-points")]
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{failed, leftovers, nymgate, ok, secrets_of, versions_of, Setup};

/// `nymgate keys ARGS` on the setup's keyring, from a racing thread.
fn keys_in(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["keys", args[0], "--keyring", "keyring.toml"];
    all.extend_from_slice(&args[1..]);
    nymgate(&all, dir)
}

#[test]
fn concurrent_rotates_and_news_lose_no_version() {
    let s = Setup::new();
    ok(&s.keys(&["new", "--scope", "shared"]));
    let dir = s.path().to_owned();
    const ROTATES: usize = 60;
    const NEWS: usize = 40;
    // Two processes rotate one scope while two create scopes (files of different lengths):
    // 200 writes racing on one file.
    std::thread::scope(|threads| {
        for racer in 0..4 {
            let dir = &dir;
            threads.spawn(move || {
                if racer < 2 {
                    for _ in 0..ROTATES {
                        ok(&keys_in(dir, &["rotate", "--scope", "shared", "--window", "0s"]));
                    }
                } else {
                    for n in 0..NEWS {
                        ok(&keys_in(dir, &["new", "--scope", &format!("t{racer}-{n}")]));
                    }
                }
            });
        }
    });
    let text = s.text();
    let ring = nymgate::pseudonym::keyring::Keyring::load(&s.keyring()).expect("a readable keyring");
    assert_eq!(
        versions_of(&text, "shared"),
        (1..=(2 * ROTATES as i64 + 1)).collect::<Vec<_>>(),
        "no lost version"
    );
    assert_eq!(ring.scopes().count(), 1 + 2 * NEWS, "no lost scope");
    assert_eq!(leftovers(s.path()), Vec::<String>::new());
}

/// Sets its flag when dropped, by a panic too.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn erase_racing_new_and_rotate_never_leaves_an_erased_key() {
    let s = Setup::new();
    let dir = s.path().to_owned();
    const ROUNDS: usize = 40;
    // Every key an erase reported destroyed.
    let erased: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let done = AtomicBool::new(false);
    let erasures = AtomicUsize::new(0);
    let check = |text: &str, erased: &BTreeSet<String>| {
        for secret in erased {
            assert!(!text.contains(secret.as_str()), "an erased key is back on disk:\n{text}");
        }
    };
    std::thread::scope(|threads| {
        // The eraser: creates the scope, reads which keys it has, erases it.
        threads.spawn(|| {
            // The racers stop when it ends, a failed assertion included (else they spin on).
            let _stop = StopOnDrop(&done);
            for _ in 0..ROUNDS {
                let _ = keys_in(&dir, &["new", "--scope", "s"]);
                // Every key on disk now exists when the erase takes the lock (only this thread
                // erases), so the erase must destroy all of them.
                let before = secrets_of(&std::fs::read_to_string(dir.join("keyring.toml")).unwrap(), "s");
                let out = keys_in(&dir, &["erase", "--scope", "s", "--confirm", "s"]);
                if out.status.success() {
                    assert!(String::from_utf8_lossy(&out.stdout).contains("destroyed"));
                    erasures.fetch_add(1, Ordering::Relaxed);
                    let mut set = erased.lock().unwrap();
                    set.extend(before);
                    check(&std::fs::read_to_string(dir.join("keyring.toml")).unwrap(), &set);
                }
            }
        });
        // Two rotators and a creator race it; they fail while the scope is gone, which is fine.
        for racer in 0..3 {
            let (dir, done, erased) = (&dir, &done, &erased);
            threads.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let args: &[&str] = if racer < 2 {
                        &["rotate", "--scope", "s", "--window", "0s"]
                    } else {
                        &["new", "--scope", "s"]
                    };
                    if keys_in(dir, args).status.success() {
                        let text = std::fs::read_to_string(dir.join("keyring.toml")).unwrap();
                        check(&text, &erased.lock().unwrap());
                    }
                }
            });
        }
    });
    assert!(erasures.load(Ordering::Relaxed) > ROUNDS / 4, "the erasures ran");
    check(&s.text(), &erased.lock().unwrap());
    nymgate::pseudonym::keyring::Keyring::load(&s.keyring()).expect("a readable keyring");
}

#[cfg(feature = "keyring-crash-points")]
#[test]
fn kill_9_at_every_step_of_a_keyring_write_leaves_a_readable_keyring_and_no_key_outside_it() {
    use nymgate::pseudonym::keyring_write::{CRASH_STEPS, STEPS_AFTER_RENAME};
    for op in ["rotate", "erase"] {
        for step in CRASH_STEPS {
            let s = Setup::new();
            ok(&s.keys(&["new", "--scope", "s"]));
            ok(&s.keys(&["new", "--scope", "kept"]));
            let before = s.text();
            let erased = secrets_of(&before, "s");
            let args: &[&str] = if op == "rotate" {
                &["keys", "rotate", "--keyring", "keyring.toml", "--scope", "s"]
            } else {
                &["keys", "erase", "--keyring", "keyring.toml", "--scope", "s", "--confirm", "s"]
            };
            let mut child = Command::new(env!("CARGO_BIN_EXE_nymgate"))
                .args(args)
                .current_dir(s.path())
                .env("NYMGATE_KEYRING_STOP_AT", step)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // The audit's `started` line (on standard error without --audit) comes first.
            let mut stderr = BufReader::new(child.stderr.take().unwrap());
            let stopped = format!("nymgate: stopped at keyring step {step}");
            let mut seen = Vec::new();
            while seen.len() < 8 && seen.last().is_none_or(|line: &String| line.trim() != stopped) {
                let mut line = String::new();
                if stderr.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                seen.push(line);
            }
            assert!(seen.last().is_some_and(|line| line.trim() == stopped), "{op}: {seen:?}");
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();

            let after = s.text();
            let ring = nymgate::pseudonym::keyring::Keyring::load(&s.keyring())
                .unwrap_or_else(|e| panic!("{op} killed at {step}: {e}"));
            let replaced = STEPS_AFTER_RENAME.contains(step);
            assert_eq!(after != before, replaced, "{op} killed at {step}: the old keyring or the new one");
            assert!(ring.scope("kept").is_ok());
            if op == "erase" {
                // Whatever a killed erasure left outside the keyring holds none of the keys it
                // was erasing.
                for name in leftovers(s.path()) {
                    let text = std::fs::read_to_string(s.path().join(&name)).unwrap_or_default();
                    assert!(
                        erased.iter().all(|k| !text.contains(k.as_str())),
                        "{step}: {name} holds an erased key"
                    );
                }
            }
            // The next writer is not blocked (the kernel dropped the dead writer's lock) and
            // removes what the dead one left.
            ok(&s.keys(&["new", "--scope", "next"]));
            assert_eq!(leftovers(s.path()), Vec::<String>::new(), "{op} killed at {step}");
        }
    }
}

#[test]
fn erasing_through_a_symlinked_keyring_leaves_no_erased_key_in_the_real_file() {
    let s = Setup::new();
    let vault = s.path().join("vault");
    std::fs::create_dir(&vault).unwrap();
    // A link to nothing is refused rather than followed to a file no one has made.
    std::os::unix::fs::symlink("vault/keyring.toml", s.keyring()).unwrap();
    assert!(failed(&s.keys(&["new", "--scope", "s"])).contains("symlink to a missing file"));
    ok(&nymgate(&["keys", "new", "--keyring", "vault/keyring.toml", "--scope", "s"], s.path()));
    // Written through the link: the real file is replaced, the link kept.
    ok(&s.keys(&["rotate", "--scope", "s"]));
    ok(&s.keys(&["new", "--scope", "kept"]));
    let real = vault.join("keyring.toml");
    let erased = secrets_of(&std::fs::read_to_string(&real).unwrap(), "s");
    assert_eq!(erased.len(), 2);
    ok(&s.keys(&["erase", "--scope", "s", "--confirm", "s"]));
    assert!(std::fs::symlink_metadata(s.keyring()).unwrap().file_type().is_symlink(), "the link stays");
    let text = std::fs::read_to_string(&real).unwrap();
    assert!(erased.iter().all(|k| !text.contains(k.as_str())), "the real file holds an erased key");
    assert_eq!(secrets_of(&text, "kept").len(), 1);
    // One lock, beside the real file, for writers through the link and through the real path.
    assert!(vault.join("keyring.toml.lock").exists() && !s.path().join("keyring.toml.lock").exists());
    ok(&nymgate(&["keys", "rotate", "--keyring", "vault/keyring.toml", "--scope", "kept"], s.path()));
    assert_eq!(versions_of(&std::fs::read_to_string(&real).unwrap(), "kept"), vec![1, 2]);
}

const DPO_TOKEN: &str = "dpo-token-fedcba9876543210fedcba9876543210";

/// POST /admin/v1/retention/TENANT with the DPO token: the status code.
fn offboard_through_the_api(admin_port: u16, tenant: &str) -> u16 {
    use std::io::{Read, Write};
    let body = format!("{{\"confirm\": \"{tenant}\"}}");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", admin_port)).unwrap();
    write!(
        stream,
        "POST /admin/v1/retention/{tenant} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {DPO_TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{response}"))
}

#[test]
fn cli_writers_racing_the_servers_offboarding_lose_nothing_and_resurrect_nothing() {
    use super::common::login::{Options, World};
    std::env::set_var("NYMGATE_TEST_KEYS_DPO", DPO_TOKEN);
    let world = World::start(Options {
        extra: "[retention]\nsqlite_file = \"retained.db\"\n[retention.api]\ndpo_token = { env = \"NYMGATE_TEST_KEYS_DPO\" }\n",
        ..Options::default()
    });
    let dir = world.dir.path().to_owned();
    let erased = secrets_of(&std::fs::read_to_string(dir.join("keyring.toml")).unwrap(), "school-a");
    assert_eq!(erased.len(), 1);
    let rotations = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let (dir, rotations, stop) = (dir.clone(), rotations.clone(), stop.clone());
            std::thread::spawn(move || {
                let _stop = StopOnDrop(&stop);
                while !stop.load(Ordering::Relaxed) {
                    ok(&keys_in(&dir, &["rotate", "--scope", "school-t", "--window", "0s"]));
                    rotations.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // The racers are writing before the offboarding comes, and go on after it (unless one
    // failed, which stops them all).
    let wait_for = |count: usize| {
        while rotations.load(Ordering::Relaxed) < count && !stop.load(Ordering::Relaxed) {
            std::thread::yield_now();
        }
    };
    wait_for(10);
    let status = offboard_through_the_api(world.admin_port, "school-a");
    wait_for(rotations.load(Ordering::Relaxed) + 20);
    stop.store(true, Ordering::Relaxed);
    for racer in racers {
        racer.join().expect("every rotation succeeds");
    }
    assert_eq!(status, 200);
    let text = std::fs::read_to_string(dir.join("keyring.toml")).unwrap();
    assert!(erased.iter().all(|k| !text.contains(k.as_str())), "the offboarded scope's key is back");
    let total = rotations.load(Ordering::Relaxed) as i64;
    assert_eq!(versions_of(&text, "school-t"), (1..=total + 1).collect::<Vec<_>>(), "no lost rotation");
    let ring = nymgate::pseudonym::keyring::Keyring::load(&dir.join("keyring.toml")).unwrap();
    assert!(ring.scope("school-a").is_err() && ring.scope("school-b").is_ok());
}
