//! The front cache: per hot key its running total, today's count, and the part of each already
//! durable, in a bounded `DashMap`. Synchronous and free of I/O: loading a missing key and
//! writing through when full are closures the caller passes in.
//!
//! Here the types and the bound. `keys`: what a hit, a read, a set or a delete does to one key;
//! `pending`: what a flush takes and what it evicts; `admission`: the doorkeeper; `entry`: one
//! key's counts.

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use crate::bounded;

mod admission;
mod entry;
mod keys;
mod pending;
use admission::Doorkeeper;
use entry::{Entry, unpack};

/// A key's total and its count on one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Every hit ever counted.
    pub total: u64,
    /// Hits on the day asked about.
    pub today: u64,
}

/// The final count of a day that ended for a cached key (a later day has hits), until a flush
/// writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Retired {
    /// The key.
    pub(crate) key: Box<str>,
    /// The day, in days since the Unix epoch.
    pub(crate) day: u32,
    /// The key's hits on that day.
    pub(crate) count: u64,
}

/// Which cached entries a flush takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Those not durable: for a journal flush.
    Dirty,
    /// Those not in the store's counts tree (not durable, or durable only in the journal): for a
    /// checkpoint.
    Unsaved,
    /// Every entry: for the checkpoint after a failed flush, whose entries were taken as written.
    All,
}

/// The bounded front cache of hot keys.
#[derive(Debug)]
pub(crate) struct Cache {
    /// A bounded DashMap: hits on different keys lock different shards, and a hit on a cached
    /// key takes only a shard read lock plus two atomic operations. No guard is ever held across
    /// an `.await` (this module is synchronous).
    map: bounded::Map<Box<str>, Entry>,
    /// Final counts of days that ended while their key was cached, until a flush writes them.
    /// A plain mutex: pushed once per key per day, drained once per flush.
    retired: Mutex<Vec<Retired>>,
    /// Pages hit once recently: past a third of `capacity`, only pages seen again are cached.
    doorkeeper: Doorkeeper,
}

impl Cache {
    /// An empty cache that holds at most `capacity` keys (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: bounded::Map::new(capacity.max(1)),
            retired: Mutex::new(Vec::new()),
            doorkeeper: Doorkeeper::new(capacity),
        }
    }

    /// The cached counts of `key` (today's for `day`), if it is cached: for tests.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &str, day: u32) -> Option<Counts> {
        self.map.get(key).map(|entry| entry.counts(day))
    }

    /// Every count of `key` on a day that the cache knows and the store may not have yet.
    pub(crate) fn day_counts(&self, key: &str) -> Vec<(u32, u64)> {
        let mut days: Vec<(u32, u64)> = self
            .lock_retired()
            .iter()
            .filter(|retired| &*retired.key == key)
            .map(|retired| (retired.day, retired.count))
            .collect();
        if let Some(entry) = self.map.get(key) {
            days.push(unpack(entry.day.load(Ordering::Acquire)));
        }
        days
    }

    /// How many keys are cached.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is cached: for tests.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a missing `key` may be cached now: always while the cache is less than a third
    /// full, never when it is full, and otherwise from the key's second recent hit. When it
    /// may, the caller still claims its place (which fails if others took the last ones).
    fn admits(&self, key: &str) -> bool {
        let (len, capacity) = (self.len(), self.map.capacity());
        len < capacity.div_ceil(3) || (len < capacity && self.doorkeeper.admit(key))
    }

    /// Whether the cache holds as many keys as it may.
    pub(crate) fn is_full(&self) -> bool {
        self.map.is_full()
    }

    fn lock_retired(&self) -> std::sync::MutexGuard<'_, Vec<Retired>> {
        // The vector stays consistent even if a holder panicked: take it as it is.
        self.retired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What the tests of every part of the cache hit it with.
#[cfg(test)]
mod testing {
    use super::*;
    use crate::store::Stored;

    pub(super) type NoError = std::convert::Infallible;

    pub(super) fn hit_on(cache: &Cache, key: &str, day: u32, stored: u64) -> Counts {
        let load = || {
            Ok(Stored {
                total: stored,
                day,
                day_count: 0,
            })
        };
        let result: Result<Counts, NoError> =
            cache.hit(key, day, load, || panic!("no write-through expected"));
        result.unwrap_or_else(|never| match never {})
    }

    pub(super) fn hit(cache: &Cache, key: &str, stored: u64) -> u64 {
        hit_on(cache, key, 1, stored).total
    }

    pub(super) fn mark_all_durable(cache: &Cache) {
        cache.take_pending(Take::Unsaved);
    }
}
