//! The memory backend of the store (mod.rs): single-use claims in a dashmap, bounded, with
//! expiry. Right for one instance; several replicas share Redis instead.
//!
//! Bounded on purpose: an attacker who starts millions of logins must not grow memory without
//! limit. When full even after dropping expired entries, the store refuses (fail closed: the
//! login gets a 503), it never evicts a live entry, since that would reopen a replay.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

/// The store is full of live entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("single-use store is full")]
pub struct StoreFull;

struct Item<V> {
    value: V,
    /// Unix seconds.
    expires: u64,
}

/// A bounded map from key to value with an expiry per entry.
pub struct SingleUseStore<V> {
    map: DashMap<String, Item<V>>,
    capacity: usize,
    inserts: AtomicUsize,
}

/// Expired entries are swept every this many inserts, besides whenever the store is full.
const SWEEP_EVERY: usize = 4096;

impl<V> SingleUseStore<V> {
    pub fn new(capacity: usize) -> Self {
        Self { map: DashMap::new(), capacity: capacity.max(1), inserts: AtomicUsize::new(0) }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn make_room(&self, now: u64) -> Result<(), StoreFull> {
        let inserts = self.inserts.fetch_add(1, Ordering::Relaxed);
        if inserts % SWEEP_EVERY == SWEEP_EVERY - 1 || self.map.len() >= self.capacity {
            self.map.retain(|_, item| item.expires > now);
        }
        if self.map.len() >= self.capacity {
            return Err(StoreFull);
        }
        Ok(())
    }

    /// Stores `value` under `key` until `expires`, unless the key is already live. Returns
    /// `Ok(false)` when it was (a replay, or a collision of random keys).
    pub fn insert_new(&self, key: &str, value: V, expires: u64, now: u64) -> Result<bool, StoreFull> {
        self.make_room(now)?;
        match self.map.entry(key.to_owned()) {
            Entry::Occupied(mut occupied) => {
                if occupied.get().expires > now {
                    return Ok(false);
                }
                occupied.insert(Item { value, expires });
                Ok(true)
            }
            Entry::Vacant(vacant) => {
                vacant.insert(Item { value, expires });
                Ok(true)
            }
        }
    }

    /// Removes and returns the live value under `key`: the second call for the same key gets
    /// `None`. This is what makes an authorization code single-use (RFC 6749 §4.1.2).
    pub fn take(&self, key: &str, now: u64) -> Option<V> {
        self.map.remove(key).and_then(|(_, item)| (item.expires > now).then_some(item.value))
    }
}

impl SingleUseStore<()> {
    /// Marks `key` as used until `expires`. `Ok(false)`: it had been used already.
    pub fn claim(&self, key: &str, expires: u64, now: u64) -> Result<bool, StoreFull> {
        self.insert_new(key, (), expires, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_claims_once_until_it_expires() {
        let store = SingleUseStore::new(10);
        assert_eq!(store.claim("state-1", 100, 50), Ok(true));
        assert_eq!(store.claim("state-1", 100, 60), Ok(false), "a replay");
        assert_eq!(store.claim("state-1", 200, 100), Ok(true), "expired entries do not block");
    }

    #[test]
    fn take_is_single_use_and_respects_expiry() {
        let store = SingleUseStore::new(10);
        store.insert_new("code", 7u32, 100, 0).unwrap();
        assert_eq!(store.take("code", 10), Some(7));
        assert_eq!(store.take("code", 10), None);
        store.insert_new("late", 8u32, 100, 0).unwrap();
        assert_eq!(store.take("late", 100), None, "expired at 100");
    }

    #[test]
    fn a_full_store_refuses_instead_of_evicting_live_entries() {
        let store = SingleUseStore::new(2);
        assert_eq!(store.claim("a", 100, 0), Ok(true));
        assert_eq!(store.claim("b", 100, 0), Ok(true));
        assert_eq!(store.claim("c", 100, 0), Err(StoreFull));
        assert_eq!(store.claim("a", 100, 1), Err(StoreFull), "still full; a is not forgotten");
        // Once they expire, the sweep makes room.
        assert_eq!(store.claim("c", 300, 150), Ok(true));
        assert_eq!(store.len(), 1);
    }
}
