//! Which key versions every running replica holds, so that no replica is left with a data key it
//! cannot unwrap (docs/RETENTION.md, "Replicas and key versions").
//!
//! A tenant's data key is wrapped under one version of its pseudonym scope's keys. During a
//! rolling reload after `nymgate keys rotate`, some replicas hold the new version and some do not
//! yet: a data key wrapped under the new version would fail every retained login on the others,
//! and `keys retire` of the old version would fail them all. So each serving replica announces,
//! in the retention database every replica shares, the versions it holds per scope (at start,
//! after every reload, and every [`ANNOUNCE_EVERY`]); a replica not heard of for [`LIVE_FOR`] is
//! gone. A data key is then wrapped only under a version every live replica of its scope holds
//! ([`wrap_version`]), and `keys retire` refuses while a live replica lacks the current version
//! ([`retire_blockers`]).
//!
//! The rows are hostile like every byte from the database: an announcement that does not parse,
//! or is over [`MAX_ANNOUNCEMENT`], counts as a replica that holds nothing; a replica's name
//! is shown only in a safe spelling.

use std::collections::BTreeMap;

use super::{Db, RetentionError, WrapKeys};

/// Versions held per scope: scope name → key versions.
pub type Holdings = BTreeMap<String, Vec<u32>>;

/// How often a serving replica announces itself.
pub const ANNOUNCE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// A replica not heard of for this long is gone: three missed announcements (one lost to a
/// slow database is no departure).
pub const LIVE_FOR: u64 = 30;

/// The longest announcement read back (a keyring of 200 scopes with a few versions each is
/// ~8 KiB); a longer one is a row someone else wrote.
pub const MAX_ANNOUNCEMENT: usize = 64 * 1024;

/// The most live replicas read. More rows than this are someone else's: the set then counts one
/// replica that holds nothing (so nothing is rewrapped and nothing retired), never fewer.
pub const MAX_REPLICAS: i64 = 256;

/// The replicas heard of within [`LIVE_FOR`] of `now`.
pub(super) fn live(db: &mut dyn Db, now: u64) -> Result<Vec<Replica>, RetentionError> {
    let since = now.saturating_sub(LIVE_FOR).min(i64::MAX as u64) as i64;
    let mut rows = db.replicas_since(since, MAX_REPLICAS + 1)?;
    if rows.len() as i64 > MAX_REPLICAS {
        rows.truncate(MAX_REPLICAS as usize);
        rows.push(Replica { id: String::new(), seen: now, holdings: None });
    }
    Ok(rows)
}

/// One replica's row, as read.
#[derive(Debug, Clone)]
pub struct Replica {
    /// Its name as written, shown only through [`Replica::name`].
    id: String,
    /// Unix seconds of its last announcement.
    pub seen: u64,
    /// `None`: the announcement did not parse (holds nothing, as far as anyone can tell).
    holdings: Option<Holdings>,
}

impl Replica {
    pub(super) fn from_row(id: String, seen: i64, announcement: &str) -> Replica {
        let holdings = (announcement.len() <= MAX_ANNOUNCEMENT)
            .then(|| serde_json::from_str::<Holdings>(announcement).ok())
            .flatten();
        Replica { id, seen: seen.max(0) as u64, holdings }
    }

    /// The replica's name when it is one nymgate writes (host, process, random part), else a
    /// placeholder: the row's bytes are the database's.
    pub fn name(&self) -> &str {
        if is_replica_name(&self.id) {
            &self.id
        } else {
            "(a replica row nymgate did not write)"
        }
    }

    /// The versions it holds of `scope`; `None` when it does not serve the scope.
    fn versions(&self, scope: &str) -> Option<&[u32]> {
        match &self.holdings {
            Some(holdings) => holdings.get(scope).map(Vec::as_slice),
            // Unreadable: it may serve the scope and hold nothing we know of.
            None => Some(&[]),
        }
    }
}

/// Whether `name` is a replica name nymgate writes: ASCII letters, digits and `.-_/`, 1 to 128.
fn is_replica_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/'))
}

/// This process's replica name: host name (a pod's name in Kubernetes), process id and a random
/// part, so that a restarted process is a new replica and ops can tell which one blocks.
pub fn replica_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host: String = host
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .take(63)
            .collect();
        let random = crate::secret::random_bytes::<4>();
        let tag: String = random.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}/{}/{tag}", if host.is_empty() { "host" } else { &host }, std::process::id())
    })
    .clone()
}

/// The version a data key of `keys`' scope is wrapped under now: the newest version this process
/// holds that every live replica serving the scope holds too; the current one when no other
/// replica serves it; `None` when no version is held by all (the key then stays as it is).
pub fn wrap_version(keys: &WrapKeys, live: &[Replica]) -> Option<u32> {
    let serving: Vec<&[u32]> = live.iter().filter_map(|r| r.versions(&keys.scope)).collect();
    let mut ours: Vec<u32> = keys.by_version.iter().map(|(v, _)| *v).collect();
    ours.sort_unstable_by(|a, b| b.cmp(a));
    ours.into_iter().find(|v| serving.iter().all(|held| held.contains(v)))
}

/// Why `keys retire` of a version of `scope` must wait: each live replica serving the scope that
/// does not hold `current` (it may still wrap data keys, or read them, under an older version).
pub fn retire_blockers(scope: &str, current: u32, live: &[Replica], now: u64) -> Vec<String> {
    live.iter()
        .filter(|r| r.versions(scope).is_some_and(|held| !held.contains(&current)))
        .map(|r| {
            format!(
                "replica {} (last heard {} s ago) has not loaded version {current} of scope {scope}: reload it (or stop it) and run this again",
                r.name(),
                now.saturating_sub(r.seen)
            )
        })
        .collect()
}

impl super::RetentionStore {
    /// Announces which versions this replica holds (at start, after each reload, and every
    /// [`ANNOUNCE_EVERY`]).
    pub fn announce(&self, holdings: &Holdings, now: u64) -> Result<(), RetentionError> {
        let text = serde_json::to_string(holdings).expect("names and numbers serialize");
        let seen = now.min(i64::MAX as u64) as i64;
        self.transact(false, move |db| db.announce(&replica_name(), seen, &text))
    }

    /// This replica stops (a graceful shutdown): it no longer holds anyone back.
    pub fn withdraw(&self) -> Result<(), RetentionError> {
        self.transact(false, move |db| db.withdraw(&replica_name()))
    }

    /// The replicas live at `now`.
    pub fn live_replicas(&self, now: u64) -> Result<Vec<Replica>, RetentionError> {
        self.transact(false, move |db| live(db, now))
    }

    /// Makes retiring `version` of `scope` safe, with the keyring under its writer lock: refused
    /// (`Ok(Err(reasons))`) while a live replica serving the scope lacks the keyring's current
    /// version; otherwise every listed tenant's data key is wrapped again under the current
    /// version, and refused if one still depends on `version` after that. `Ok(Ok(n))`: `n` data
    /// keys were wrapped again. `tenants` are the config's tenants in the scope with their wrap
    /// keys; a data key of a tenant no longer in the config is not known to be in this scope, and
    /// is culled with its records (docs/RETENTION.md).
    pub fn prepare_retire(
        &self,
        scope: &str,
        version: u32,
        tenants: Vec<(String, WrapKeys)>,
        now: u64,
    ) -> Result<Result<usize, Vec<String>>, RetentionError> {
        let scope = scope.to_owned();
        self.transact(false, move |db| {
            let Some(current) = tenants.first().map(|(_, keys)| keys.current) else { return Ok(Ok(0)) };
            let blockers = retire_blockers(&scope, current, &live(db, now)?, now);
            if !blockers.is_empty() {
                return Ok(Err(blockers));
            }
            let (mut rewrapped, mut left) = (0, Vec::new());
            for (tenant, keys) in &tenants {
                match db.data_key_row(tenant)? {
                    Some((v, _, _)) if v == version => {
                        super::data_key::writable(db, tenant, keys, now)?;
                        match db.data_key_row(tenant)? {
                            Some((v, _, _)) if v == version => left.push(format!(
                                "tenant {tenant}'s data key is still wrapped under version {version}"
                            )),
                            _ => rewrapped += 1,
                        }
                    }
                    _ => {}
                }
            }
            Ok(if left.is_empty() { Ok(rewrapped) } else { Err(left) })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(versions: &[u32]) -> WrapKeys {
        WrapKeys {
            scope: "s".into(),
            current: *versions.iter().max().unwrap(),
            by_version: versions.iter().map(|v| (*v, [0; 32])).collect(),
        }
    }

    fn replica(announcement: &str) -> Replica {
        Replica::from_row("host/1/abcd".into(), 100, announcement)
    }

    #[test]
    fn a_data_key_is_wrapped_only_under_a_version_every_live_replica_holds() {
        // Alone (or no replica serving the scope): the current version.
        assert_eq!(wrap_version(&keys(&[1, 2]), &[]), Some(2));
        assert_eq!(wrap_version(&keys(&[1, 2]), &[replica(r#"{"other":[1]}"#)]), Some(2));
        // A replica not yet reloaded holds only 1.
        let rolling = [replica(r#"{"s":[1,2]}"#), replica(r#"{"s":[1]}"#)];
        assert_eq!(wrap_version(&keys(&[1, 2]), &rolling), Some(1));
        // One that already retired 1 and one that never had 2: nothing in common.
        assert_eq!(wrap_version(&keys(&[1, 2]), &[replica(r#"{"s":[2]}"#), replica(r#"{"s":[1]}"#)]), None);
    }

    #[test]
    fn an_unreadable_announcement_holds_nothing() {
        for row in ["", "{", "[1,2]", r#"{"s":"1"}"#, r#"{"s":[-1]}"#, &"x".repeat(MAX_ANNOUNCEMENT + 1)] {
            assert_eq!(wrap_version(&keys(&[1, 2]), &[replica(row)]), None, "{row:.40}");
            assert_eq!(retire_blockers("s", 2, &[replica(row)], 100).len(), 1, "{row:.40}");
        }
        let padded = format!(r#"{{"s":[2]{}}}"#, " ".repeat(MAX_ANNOUNCEMENT));
        assert_eq!(wrap_version(&keys(&[1, 2]), &[replica(&padded)]), None);
    }

    #[test]
    fn retire_waits_for_every_live_replica_of_the_scope_to_hold_the_current_version() {
        let live = [replica(r#"{"s":[1,2]}"#), replica(r#"{"s":[1]}"#), replica(r#"{"t":[1]}"#)];
        let blockers = retire_blockers("s", 2, &live, 107);
        assert_eq!(blockers.len(), 1, "{blockers:?}");
        assert!(blockers[0].contains("host/1/abcd") && blockers[0].contains("7 s ago"), "{}", blockers[0]);
        assert!(retire_blockers("s", 2, &live[..1], 107).is_empty());
    }

    #[test]
    fn a_replica_name_from_the_database_is_shown_only_in_a_safe_spelling() {
        for hostile in ["", "a b", "x\u{1b}[31m", "é", "a\nb", &"a".repeat(129), "<script>"] {
            let r = Replica::from_row(hostile.into(), 0, "{}");
            assert_eq!(r.name(), "(a replica row nymgate did not write)", "{hostile:?}");
        }
        assert!(is_replica_name(&replica_name()), "{}", replica_name());
    }

    proptest::proptest! {
        /// Whatever the live replicas hold, the chosen version is one this process holds and
        /// every live replica serving the scope holds.
        #[test]
        fn the_wrap_version_is_held_by_everyone(
            ours in proptest::collection::btree_set(1u32..6, 1..5),
            theirs in proptest::collection::vec(proptest::collection::btree_set(1u32..6, 0..5), 0..4),
        ) {
            let ours: Vec<u32> = ours.into_iter().collect();
            let live: Vec<Replica> = theirs
                .iter()
                .map(|held| replica(&serde_json::json!({ "s": held }).to_string()))
                .collect();
            match wrap_version(&keys(&ours), &live) {
                Some(v) => {
                    proptest::prop_assert!(ours.contains(&v));
                    proptest::prop_assert!(theirs.iter().all(|held| held.contains(&v)));
                    // And no newer one would do.
                    proptest::prop_assert!(!ours.iter().any(|w| *w > v && theirs.iter().all(|h| h.contains(w))));
                }
                None => proptest::prop_assert!(!ours.iter().any(|w| theirs.iter().all(|h| h.contains(w)))),
            }
        }
    }
}
