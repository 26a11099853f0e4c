//! The front cache: per hot key its running total, today's count, and the part of each already
//! durable, in a bounded `DashMap`. Synchronous and free of I/O: loading a missing key and
//! writing through when full are closures the caller passes in.

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use crate::bounded::{self, Entry as Slot};
use crate::store::{Batch, Stored};

mod admission;
mod entry;
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
pub struct Retired {
    /// The key.
    pub key: Box<str>,
    /// The day, in days since the Unix epoch.
    pub day: u32,
    /// The key's hits on that day.
    pub count: u64,
}

/// Which cached entries a flush takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
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
pub struct Cache {
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
    pub fn new(capacity: usize) -> Self {
        Self {
            map: bounded::Map::new(capacity.max(1)),
            retired: Mutex::new(Vec::new()),
            doorkeeper: Doorkeeper::new(capacity),
        }
    }

    /// Counts one hit for `key` on `day` and returns its new counts.
    ///
    /// A missing key is loaded with `load` (what the store holds for it) under the key's
    /// shard lock, so two first hits cannot both load. When the cache is full, or a third full
    /// and the key's first recent hit, the hit is handed to `write_through` instead, also under
    /// that lock, so no concurrent load can see the store half-way.
    pub fn hit<E>(
        &self,
        key: &str,
        day: u32,
        load: impl FnOnce() -> Result<Stored, E>,
        write_through: impl FnOnce() -> Result<Counts, E>,
    ) -> Result<Counts, E> {
        let counts = if let Some(entry) = self.map.get(key) {
            self.count(key, &entry, day)
        } else {
            match self.map.entry(key.into()) {
                Slot::Occupied(entry) => self.count(key, entry.get(), day),
                Slot::Vacant(vacant) => {
                    let place = if self.admits(key) {
                        vacant.claim()
                    } else {
                        None
                    };
                    let Some(place) = place else {
                        return write_through();
                    };
                    // A failed load drops the place, which gives it back.
                    let stored = load()?;
                    let entry = place.insert(Entry::new(stored));
                    self.count(key, &entry, day)
                }
            }
        };
        Ok(counts)
    }

    /// Counts a hit on `entry`. The first hit of a later day moves the entry's day on and
    /// retires the old day's count while holding the retired list's lock, so a flush that saw
    /// the new day (it takes the list after its walk over the entries) also finds the old one:
    /// the store never gets the new day without the old day's final count.
    fn count(&self, key: &str, entry: &Entry, day: u32) -> Counts {
        if !entry.is_before(day) {
            // Never retires: the entry's day only moves forward.
            return entry.hit(day).0;
        }
        let mut retired = self.lock_retired();
        let (counts, ended) = entry.hit(day);
        if let Some((day, count)) = ended {
            retired.push(Retired {
                key: key.into(),
                day,
                count,
            });
        }
        counts
    }

    /// The counts of `key` (today's for `day`) without counting: from the cache, else from `load`
    /// under the key's shard lock. A key the store holds is then cached (clean, so it costs no
    /// flush) when the cache admits it, so a badge that is only read stops costing store reads;
    /// an unknown key is never cached.
    pub fn peek<E>(
        &self,
        key: &str,
        day: u32,
        load: impl FnOnce() -> Result<Option<Stored>, E>,
    ) -> Result<Counts, E> {
        if let Some(entry) = self.map.get(key) {
            return Ok(entry.counts(day));
        }
        match self.map.entry(key.into()) {
            Slot::Occupied(entry) => Ok(entry.get().counts(day)),
            Slot::Vacant(vacant) => {
                let Some(stored) = load()? else {
                    return Ok(Counts::default());
                };
                if self.admits(key)
                    && let Some(place) = vacant.claim()
                {
                    place.insert(Entry::new(stored));
                }
                Ok(Counts {
                    total: stored.total,
                    today: stored.count_on(day),
                })
            }
        }
    }

    /// Sets the total of `key` under its shard lock: a cached entry takes `total` (and stays
    /// dirty until flushed); an uncached key is loaded with `load` first, or, when the cache is
    /// full, handed to `write_through`.
    pub fn set<E>(
        &self,
        key: &str,
        total: u64,
        load: impl FnOnce() -> Result<Stored, E>,
        write_through: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        match self.map.entry(key.into()) {
            Slot::Occupied(entry) => entry.get().total.store(total, Ordering::Release),
            Slot::Vacant(vacant) => {
                let Some(place) = vacant.claim() else {
                    return write_through();
                };
                let stored = load()?;
                let entry = place.insert(Entry::new(stored));
                entry.total.store(total, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Forgets `key` (and its retired days) under its shard lock, after `delete` removed it from
    /// the store: a concurrent hit either came before (and is deleted too) or loads afresh after.
    pub fn remove<T, E>(&self, key: &str, delete: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let deleted = match self.map.entry(key.into()) {
            Slot::Occupied(entry) => {
                let deleted = delete()?;
                entry.remove();
                deleted
            }
            Slot::Vacant(_) => delete()?,
        };
        self.lock_retired().retain(|retired| &*retired.key != key);
        Ok(deleted)
    }

    /// The cached counts of `key` (today's for `day`), if it is cached.
    pub fn get(&self, key: &str, day: u32) -> Option<Counts> {
        self.map.get(key).map(|entry| entry.counts(day))
    }

    /// Every count of `key` on a day that the cache knows and the store may not have yet.
    pub fn day_counts(&self, key: &str) -> Vec<(u32, u64)> {
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

    /// What a flush must write: the day counts retired since the last flush, and the entries
    /// `take` names, each recorded as written as it is taken (durable, and only in the journal
    /// for [`Take::Dirty`]), so that no second pass looks them up again. The caller must write
    /// all of it; after a failure, its next flush must be a checkpoint of [`Take::All`]. Only
    /// flushes call this, one at a time. The third value is how many hits the taken entries
    /// gained since they were last taken.
    pub fn take_pending(&self, take: Take) -> (Vec<Retired>, Batch, u64) {
        let pending = |entry: &Entry| match take {
            Take::Dirty => !entry.is_clean(),
            Take::Unsaved => !entry.is_saved(),
            Take::All => true,
        };
        // Sized by a first pass (with room for keys dirtied meanwhile), so the buffer is never
        // copied into one twice its size: a flush of the whole cache is megabytes.
        let (count, key_bytes) = self
            .map
            .iter()
            .filter(|entry| pending(entry.value()))
            .fold((0, 0), |(n, bytes), entry| {
                (n + 1, bytes + entry.key().len())
            });
        let mut latest = Batch::with_capacity(count + count / 8 + 16, key_bytes + key_bytes / 8);
        let mut hits = 0u64;
        for entry in self.map.iter() {
            if pending(entry.value()) {
                let total = entry.total.load(Ordering::Acquire);
                hits = hits
                    .saturating_add(total.saturating_sub(entry.durable.load(Ordering::Acquire)));
                let day = entry.day.load(Ordering::Acquire);
                let (day_number, day_count) = unpack(day);
                let stored = Stored {
                    total,
                    day: day_number,
                    day_count,
                };
                latest.push(entry.key(), &stored);
                // A hit after these loads leaves the entry dirty for the next flush. A plain
                // store, not a maximum: a set total may be lower than the one written before.
                entry.durable.store(total, Ordering::Release);
                entry.day_durable.store(day, Ordering::Release);
                entry
                    .journaled
                    .store(take == Take::Dirty, Ordering::Release);
            }
        }
        // After the walk: every day retired before a new day the walk saw is in the list now.
        let retired = std::mem::take(&mut *self.lock_retired());
        (retired, latest, hits)
    }

    /// Puts back day counts a failed flush did not write.
    pub fn unretire(&self, failed: Vec<Retired>) {
        self.lock_retired().extend(failed);
    }

    /// Evicts saved entries (clean, and not only in the journal): idle ones always, and every
    /// saved one when `all_clean` is set (the cache is under pressure). Others always stay.
    /// Returns how many were evicted.
    pub fn sweep(&self, all_clean: bool) -> usize {
        self.map.retain(|_, entry| {
            let touched = entry.touched.swap(false, Ordering::Relaxed);
            !entry.is_saved() || (touched && !all_clean)
        })
    }

    /// How many keys are cached.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is cached.
    pub fn is_empty(&self) -> bool {
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
    pub fn is_full(&self) -> bool {
        self.map.is_full()
    }

    fn lock_retired(&self) -> std::sync::MutexGuard<'_, Vec<Retired>> {
        // The vector stays consistent even if a holder panicked: take it as it is.
        self.retired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type NoError = std::convert::Infallible;

    fn hit_on(cache: &Cache, key: &str, day: u32, stored: u64) -> Counts {
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

    fn hit(cache: &Cache, key: &str, stored: u64) -> u64 {
        hit_on(cache, key, 1, stored).total
    }

    fn mark_all_durable(cache: &Cache) {
        cache.take_pending(Take::Unsaved);
    }

    #[test]
    fn hits_add_to_the_loaded_total_and_make_the_key_dirty() {
        let cache = Cache::new(10);
        assert_eq!(hit(&cache, "a", 5), 6);
        assert_eq!(hit(&cache, "a", 999), 7, "a cached key is not loaded again");
        assert_eq!(cache.get("a", 1), Some(Counts { total: 7, today: 2 }));
        let (retired, latest, _) = cache.take_pending(Take::Dirty);
        assert!(retired.is_empty());
        let latest: Vec<(&str, Stored)> = latest.iter().collect();
        assert_eq!(
            latest,
            vec![(
                "a",
                Stored {
                    total: 7,
                    day: 1,
                    day_count: 2
                }
            )]
        );
        mark_all_durable(&cache);
        assert!(cache.take_pending(Take::Dirty).1.is_empty());
    }

    #[test]
    fn a_new_day_retires_the_old_day_s_count_for_the_next_flush() {
        let cache = Cache::new(10);
        hit_on(&cache, "a", 1, 0);
        hit_on(&cache, "a", 1, 0);
        mark_all_durable(&cache);
        hit_on(&cache, "a", 1, 0);
        assert_eq!(hit_on(&cache, "a", 2, 0), Counts { total: 4, today: 1 });
        assert_eq!(cache.get("a", 2), Some(Counts { total: 4, today: 1 }));
        assert_eq!(cache.get("a", 3).map(|c| c.today), Some(0));
        let mut days = cache.day_counts("a");
        days.sort_unstable();
        assert_eq!(days, vec![(1, 3), (2, 1)]);
        let (retired, latest, _) = cache.take_pending(Take::Dirty);
        let dirty: Vec<(u32, u64)> = retired
            .iter()
            .map(|r| (r.day, r.count))
            .chain(latest.iter().map(|(_, s)| (s.day, s.day_count)))
            .collect();
        assert_eq!(
            dirty,
            vec![(1, 3), (2, 1)],
            "the retired day first, then today"
        );
        assert_eq!(cache.day_counts("a"), vec![(2, 1)]);
    }

    #[test]
    fn a_stored_older_day_is_retired_by_the_first_hit_of_a_later_day() {
        let cache = Cache::new(10);
        let stored = Stored {
            total: 10,
            day: 3,
            day_count: 4,
        };
        let peeked: Result<Counts, NoError> = cache.peek("a", 5, || Ok(Some(stored)));
        assert_eq!(
            peeked.ok(),
            Some(Counts {
                total: 10,
                today: 0
            })
        );
        let (retired, latest, _) = cache.take_pending(Take::Dirty);
        assert!(
            retired.is_empty() && latest.is_empty(),
            "loading writes nothing"
        );
        assert_eq!(
            hit_on(&cache, "a", 5, 999),
            Counts {
                total: 11,
                today: 1
            }
        );
        let (retired, latest, _) = cache.take_pending(Take::Dirty);
        let dirty: Vec<(u32, u64, bool)> = retired
            .iter()
            .map(|r| (r.day, r.count, true))
            .chain(latest.iter().map(|(_, s)| (s.day, s.day_count, false)))
            .collect();
        assert_eq!(dirty, vec![(3, 4, true), (5, 1, false)]);
    }

    #[test]
    fn sweeps_evict_only_clean_idle_entries() {
        let cache = Cache::new(10);
        hit(&cache, "clean", 0);
        cache.take_pending(Take::Unsaved);
        hit(&cache, "journaled", 0);
        cache.take_pending(Take::Dirty);
        hit(&cache, "dirty", 0);
        assert_eq!(cache.sweep(false), 0, "all were touched in this interval");
        assert_eq!(cache.sweep(false), 1, "the clean one is now idle");
        assert_eq!(cache.get("clean", 1), None);
        assert_eq!(cache.get("dirty", 1).map(|c| c.total), Some(1));
        assert_eq!(
            cache.sweep(true),
            0,
            "dirty or only journaled: kept under pressure"
        );
        let keys = |take| {
            let mut keys: Vec<Box<str>> = cache
                .take_pending(take)
                .1
                .iter()
                .map(|(key, _)| key.into())
                .collect();
            keys.sort_unstable();
            keys
        };
        assert_eq!(
            keys(Take::Unsaved),
            vec!["dirty".into(), "journaled".into()]
        );
        assert_eq!(
            keys(Take::Dirty),
            Vec::<Box<str>>::new(),
            "taken as written"
        );
        assert_eq!(keys(Take::All).len(), 2, "all the same");
        assert_eq!(cache.sweep(false), 2, "checkpointed and idle");
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_full_cache_writes_through_instead_of_growing() {
        let cache = Cache::new(1);
        hit(&cache, "a", 0);
        let through: Result<Counts, NoError> = cache.hit(
            "b",
            1,
            || Ok(Stored::default()),
            || {
                Ok(Counts {
                    total: 41,
                    today: 1,
                })
            },
        );
        assert_eq!(through.ok().map(|c| c.total), Some(41));
        assert_eq!(cache.get("b", 1), None);
        assert_eq!(cache.len(), 1);
        assert_eq!(hit(&cache, "a", 0), 2, "cached keys still count when full");
    }

    #[test]
    fn past_a_third_full_a_key_is_cached_from_its_second_hit() {
        let cache = Cache::new(9);
        for key in ["a", "b", "c"] {
            hit(&cache, key, 0);
        }
        let mut wrote_through = 0;
        let mut hit_d = || {
            let counts: Result<Counts, NoError> = cache.hit(
                "d",
                1,
                || Ok(Stored::default()),
                || {
                    wrote_through += 1;
                    Ok(Counts { total: 1, today: 1 })
                },
            );
            counts.ok()
        };
        assert_eq!(hit_d().map(|c| c.total), Some(1));
        assert_eq!(hit_d().map(|c| c.total), Some(1), "loaded and cached");
        assert_eq!(hit_d().map(|c| c.total), Some(2));
        assert_eq!(wrote_through, 1, "only the first hit went to the store");
        assert_eq!(cache.len(), 4);
    }

    #[test]
    fn pressure_sweeps_evict_recently_used_clean_entries_too() {
        let cache = Cache::new(2);
        hit(&cache, "a", 0);
        mark_all_durable(&cache);
        assert_eq!(cache.sweep(true), 1);
        assert!(cache.is_empty());
    }

    #[test]
    fn a_flush_that_sees_a_new_day_also_gets_the_old_day_s_count() {
        let cache = Cache::new(1000);
        let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
        for key in &keys {
            hit_on(&cache, key, 1, 0);
        }
        cache.take_pending(Take::Unsaved);
        let mut retired_seen = std::collections::HashSet::new();
        std::thread::scope(|scope| {
            let hitters: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        for key in &keys {
                            hit_on(&cache, key, 2, 0);
                        }
                    })
                })
                .collect();
            loop {
                let done = hitters.iter().all(|h| h.is_finished());
                let (retired, latest, _) = cache.take_pending(Take::Dirty);
                retired_seen.extend(retired.into_iter().map(|r| (r.key, r.day, r.count)));
                for (key, stored) in latest.iter() {
                    if stored.day == 2 {
                        assert!(
                            retired_seen.contains(&(key.into(), 1, 1)),
                            "{key} written on day 2 before its day 1"
                        );
                    }
                }
                if done {
                    break;
                }
            }
        });
        assert_eq!(retired_seen.len(), keys.len(), "each day 1 retired once");
    }

    #[test]
    fn concurrent_hits_are_never_lost_even_across_midnight() {
        let cache = Cache::new(4);
        std::thread::scope(|scope| {
            for thread in 0..8u32 {
                let cache = &cache;
                scope.spawn(move || {
                    for i in 0..1000u32 {
                        // Half the threads cross into day 2 half-way through.
                        let day = if thread % 2 == 0 && i >= 500 { 2 } else { 1 };
                        hit_on(cache, "hot", day, 0);
                    }
                });
            }
        });
        assert_eq!(cache.get("hot", 2).map(|c| c.total), Some(8000));
        let days = cache.day_counts("hot");
        let sum: u64 = days.iter().map(|(_, count)| count).sum();
        assert_eq!(sum, 8000, "{days:?}");
        assert!(days.iter().any(|&(day, _)| day == 2), "{days:?}");
    }
}
