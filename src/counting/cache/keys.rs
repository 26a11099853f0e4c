//! What the cache does for one key, under the key's shard lock: count a hit, read its counts,
//! set its total, forget it.

use std::sync::atomic::Ordering;

use super::entry::Entry;
use super::{Cache, Counts, Retired};
use crate::bounded::Entry as Slot;
use crate::store::Stored;

impl Cache {
    /// Counts one hit for `key` on `day` and returns its new counts.
    ///
    /// A missing key is loaded with `load` (what the store holds for it) under the key's
    /// shard lock, so two first hits cannot both load. When the cache is full, or a third full
    /// and the key's first recent hit, the hit is handed to `write_through` instead, also under
    /// that lock, so no concurrent load can see the store half-way.
    pub(crate) fn hit<E>(
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
    pub(crate) fn peek<E>(
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
    pub(crate) fn set<E>(
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
    pub(crate) fn remove<T, E>(
        &self,
        key: &str,
        delete: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::{NoError, hit, hit_on, mark_all_durable};
    use super::*;
    use crate::counting::cache::Take;

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
