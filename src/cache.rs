//! The front cache: per hot key its running total and the part of it already durable, in a
//! bounded `DashMap`. Synchronous and free of I/O: loading a missing key and writing through when
//! full are closures the caller passes in.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;

/// One cached key.
///
/// `total` is what the key's count is now; `durable` is what the store is known to hold. The
/// pending delta of the design is `total - durable`: keeping the total itself (rather than a delta
/// that a flush would have to move into a base) means a hit is one `fetch_add`, a reader can never
/// see a count go down, and the flusher writes absolute totals, so a retried flush cannot double.
#[derive(Debug)]
struct Entry {
    total: AtomicU64,
    durable: AtomicU64,
    /// Set by every hit, cleared by every sweep: an entry untouched for a whole flush interval
    /// is idle and may be evicted once clean.
    touched: AtomicBool,
}

impl Entry {
    fn new(durable: u64) -> Self {
        Self {
            total: AtomicU64::new(durable),
            durable: AtomicU64::new(durable),
            touched: AtomicBool::new(true),
        }
    }

    fn hit(&self) -> u64 {
        if !self.touched.load(Ordering::Relaxed) {
            self.touched.store(true, Ordering::Relaxed);
        }
        self.total.fetch_add(1, Ordering::AcqRel).saturating_add(1)
    }

    fn is_clean(&self) -> bool {
        self.total.load(Ordering::Acquire) == self.durable.load(Ordering::Acquire)
    }
}

/// The bounded front cache of hot keys.
#[derive(Debug)]
pub struct Cache {
    /// DashMap rather than a `Mutex<HashMap>`: hits on different keys lock different shards, and a
    /// hit on a cached key takes only a shard read lock plus one atomic add. No guard is ever held
    /// across an `.await` (this module is synchronous).
    map: DashMap<Box<str>, Entry>,
    /// Entries in `map`, kept beside it because `DashMap::len` locks every shard.
    len: AtomicUsize,
    capacity: usize,
}

impl Cache {
    /// An empty cache that holds at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            map: DashMap::new(),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
        }
    }

    /// Counts one hit for `key` and returns its new total.
    ///
    /// A missing key is loaded with `load` (its durable total) under the key's shard lock, so two
    /// first hits cannot both load. When the cache is full, the hit is handed to `write_through`
    /// instead, also under that lock, so no concurrent load can see the store half-way.
    pub fn hit<E>(
        &self,
        key: &str,
        load: impl FnOnce() -> Result<u64, E>,
        write_through: impl FnOnce() -> Result<u64, E>,
    ) -> Result<u64, E> {
        if let Some(entry) = self.map.get(key) {
            return Ok(entry.hit());
        }
        match self.map.entry(key.into()) {
            MapEntry::Occupied(entry) => Ok(entry.get().hit()),
            MapEntry::Vacant(vacant) => {
                if self.is_full() {
                    return write_through();
                }
                let entry = vacant.insert(Entry::new(load()?));
                self.len.fetch_add(1, Ordering::Relaxed);
                Ok(entry.hit())
            }
        }
    }

    /// The cached total of `key`, if it is cached.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.map
            .get(key)
            .map(|entry| entry.total.load(Ordering::Acquire))
    }

    /// Every key whose total is not yet durable, with that total.
    pub fn dirty(&self) -> Vec<(Box<str>, u64)> {
        self.map
            .iter()
            .filter(|entry| !entry.is_clean())
            .map(|entry| (entry.key().clone(), entry.total.load(Ordering::Acquire)))
            .collect()
    }

    /// Records that the store now durably holds `total` for `key`.
    pub fn mark_durable(&self, key: &str, total: u64) {
        if let Some(entry) = self.map.get(key) {
            entry.durable.fetch_max(total, Ordering::AcqRel);
        }
    }

    /// Evicts clean entries: idle ones always, and every clean one when `all_clean` is set (the
    /// cache is under pressure). Dirty entries always stay. Returns how many were evicted.
    pub fn sweep(&self, all_clean: bool) -> usize {
        let mut evicted = 0;
        self.map.retain(|_, entry| {
            let touched = entry.touched.swap(false, Ordering::Relaxed);
            let keep = !entry.is_clean() || (touched && !all_clean);
            evicted += usize::from(!keep);
            keep
        });
        self.len.fetch_sub(evicted, Ordering::Relaxed);
        evicted
    }

    /// How many keys are cached.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether no key is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the cache holds as many keys as it may.
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type NoError = std::convert::Infallible;

    fn hit(cache: &Cache, key: &str, stored: u64) -> u64 {
        let result: Result<u64, NoError> =
            cache.hit(key, || Ok(stored), || panic!("no write-through expected"));
        result.unwrap_or_else(|never| match never {})
    }

    #[test]
    fn hits_add_to_the_loaded_total_and_make_the_key_dirty() {
        let cache = Cache::new(10);
        assert_eq!(hit(&cache, "a", 5), 6);
        assert_eq!(hit(&cache, "a", 999), 7, "a cached key is not loaded again");
        assert_eq!(cache.get("a"), Some(7));
        assert_eq!(cache.dirty(), vec![("a".into(), 7)]);
        cache.mark_durable("a", 7);
        assert!(cache.dirty().is_empty());
    }

    #[test]
    fn sweeps_evict_only_clean_idle_entries() {
        let cache = Cache::new(10);
        hit(&cache, "clean", 0);
        hit(&cache, "dirty", 0);
        cache.mark_durable("clean", 1);
        assert_eq!(cache.sweep(false), 0, "both were touched in this interval");
        assert_eq!(cache.sweep(false), 1, "the clean one is now idle");
        assert_eq!(cache.get("clean"), None);
        assert_eq!(cache.get("dirty"), Some(1));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_full_cache_writes_through_instead_of_growing() {
        let cache = Cache::new(1);
        hit(&cache, "a", 0);
        let through: Result<u64, NoError> = cache.hit("b", || Ok(0), || Ok(41));
        assert_eq!(through.ok(), Some(41));
        assert_eq!(cache.get("b"), None);
        assert_eq!(cache.len(), 1);
        assert_eq!(hit(&cache, "a", 0), 2, "cached keys still count when full");
    }

    #[test]
    fn pressure_sweeps_evict_recently_used_clean_entries_too() {
        let cache = Cache::new(2);
        hit(&cache, "a", 0);
        cache.mark_durable("a", 1);
        assert_eq!(cache.sweep(true), 1);
        assert!(cache.is_empty());
    }

    #[test]
    fn concurrent_hits_are_never_lost() {
        let cache = Cache::new(4);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        hit(&cache, "hot", 0);
                    }
                });
            }
        });
        assert_eq!(cache.get("hot"), Some(8000));
    }
}
