//! What the cache gives a flush: the counts it must write, taken as written, the retired days
//! of a failed one put back, and the saved entries it may evict afterwards.

use std::sync::atomic::Ordering;

use super::entry::{Entry, unpack};
use super::{Cache, Retired, Take};
use crate::store::{Batch, Stored};

impl Cache {
    /// What a flush must write: the day counts retired since the last flush, and the entries
    /// `take` names, each recorded as written as it is taken (durable, and only in the journal
    /// for [`Take::Dirty`]), so that no second pass looks them up again. The caller must write
    /// all of it; after a failure, its next flush must be a checkpoint of [`Take::All`]. Only
    /// flushes call this, one at a time. The third value is how many hits the taken entries
    /// gained since they were last taken.
    pub(crate) fn take_pending(&self, take: Take) -> (Vec<Retired>, Batch, u64) {
        let pending = |entry: &Entry| match take {
            Take::Dirty => !entry.is_clean(),
            Take::Unsaved => !entry.is_saved(),
            Take::All => true,
        };
        // Sized by a first pass, with room for keys dirtied meanwhile: a large batch never grows.
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
                // A plain store, not a maximum (a set total may be lower); a later hit dirties it.
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
    pub(crate) fn unretire(&self, failed: Vec<Retired>) {
        self.lock_retired().extend(failed);
    }

    /// Evicts saved entries (clean, and not only in the journal): idle ones always, and every
    /// saved one when `all_clean` is set (the cache is under pressure). Others always stay.
    /// Returns how many were evicted.
    pub(crate) fn sweep(&self, all_clean: bool) -> usize {
        self.map.retain(|_, entry| {
            let touched = entry.touched.swap(false, Ordering::Relaxed);
            !entry.is_saved() || (touched && !all_clean)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hit, hit_on, mark_all_durable};
    use super::*;

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
}
