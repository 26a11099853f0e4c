//! Counting: the front cache over the store, and the flushes that make cached totals and day
//! counts durable (into the journal, or at a checkpoint into sled); [`spawn_flusher`] runs them.
//! Flushes never overlap: the flusher, the top-sites refresher, exports and admin writes all
//! flush under one lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::counting::cache::{Cache, Counts};
use crate::store::{Store, StoreError};

pub mod cache;
mod flush;
mod flusher;
mod health;
mod held;
mod pages;
pub mod top;
pub use flush::FlushReport;
use flush::SinceCheckpoint;
pub use flusher::spawn_flusher;
pub use health::{Failure, Health};
use held::HeldStore;
pub use pages::HitError;
use pages::Pages;

/// The count of every key: hot keys in the front cache, the rest in the store.
pub struct Counter {
    cache: Cache,
    store: HeldStore,
    clock: Arc<dyn Clock>,
    /// Hits written through to the store since the last durable flush (which must fsync them
    /// even with a clean cache); lost with the store if it has to be opened again.
    wrote_through: AtomicU64,
    /// Whether durable writes work, for `/healthz`, `/metrics` and the flusher's log.
    health: Health,
    /// Set by a flush that sled failed: sled refuses every write after one failed write to its
    /// log, so only a new handle (a reopen) can write again.
    poisoned: AtomicBool,
    /// Pages held, against `--max-pages`.
    pages: Pages,
    /// Wakes the flusher early when the cache fills up.
    full: Notify,
    /// A std mutex, held only by a flush (never across `.await`): two overlapping flushes could
    /// write an older total after a newer one. It guards what decides the next checkpoint.
    flushing: Mutex<SinceCheckpoint>,
}

impl Counter {
    /// A counter over `store` whose front cache holds at most `cache_capacity` keys, and whose
    /// days come from `clock`.
    pub fn new(store: Store, cache_capacity: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            cache: Cache::new(cache_capacity),
            store: HeldStore::new(store),
            clock,
            wrote_through: AtomicU64::new(0),
            health: Health::default(),
            poisoned: AtomicBool::new(false),
            pages: Pages::new(u64::MAX),
            full: Notify::new(),
            flushing: Mutex::new(SinceCheckpoint::new()),
        }
    }

    /// This counter, holding at most `max_pages` pages: past it a new page is refused.
    pub fn with_max_pages(mut self, max_pages: u64) -> Self {
        self.pages = Pages::new(max_pages);
        self
    }

    /// Counts one hit for `key` and returns its counts (the first hit of a new key gives 1).
    pub fn hit(&self, key: &str) -> Result<Counts, HitError> {
        self.hit_if_new_allowed(key, &|| true)
    }

    /// Counts one hit for `key`, as [`Counter::hit`]; a page the counter does not hold yet is
    /// made only if there is room for it and `new_page_allowed` (the client's allowance) says so.
    pub fn hit_if_new_allowed(
        &self,
        key: &str,
        new_page_allowed: &dyn Fn() -> bool,
    ) -> Result<Counts, HitError> {
        let day = self.clock.today();
        let make_page = || {
            if !new_page_allowed() {
                return Err(HitError::TooManyNewPages);
            }
            self.pages.take()
        };
        let counts = self
            .cache
            .hit(
                key,
                day,
                || match self.store.with(|store| store.load(key))? {
                    Some(stored) => Ok(stored),
                    None => make_page().map(|()| Default::default()),
                },
                || {
                    let (total, today) = self
                        .store
                        .with(|store| Ok(store.increment_making(key, day, 1, make_page)))??;
                    // Raised after the write, so the flush that clears it covers the write.
                    self.wrote_through.fetch_add(1, Ordering::AcqRel);
                    Ok(Counts { total, today })
                },
            )
            .inspect_err(|err| {
                if let HitError::Store(cause) = err {
                    self.health.refused(cause);
                }
            })?;
        if self.cache.is_full() {
            self.full.notify_one();
        }
        Ok(counts)
    }

    /// The current counts of `key` without counting; an unknown key is 0 and creates nothing.
    pub fn peek(&self, key: &str) -> Result<Counts, StoreError> {
        let day = self.clock.today();
        self.cache
            .peek(key, day, || self.store.with(|store| store.load(key)))
            .inspect_err(|cause| self.health.refused(cause))
    }

    /// Daily counts of `key` for the `days` days ending today, oldest first, zero days included.
    pub fn history(&self, key: &str, days: u32) -> Result<Vec<(u32, u64)>, StoreError> {
        let today = self.clock.today();
        let first = today.saturating_sub(days.saturating_sub(1));
        let mut history: Vec<(u32, u64)> = (first..=today).map(|day| (day, 0)).collect();
        let known = self
            .store
            .with(|store| store.days_of(key, first, today))
            .inspect_err(|cause| self.health.refused(cause))?;
        // The cache's counts are never older than the store's: take the larger of the two.
        for (day, count) in known.into_iter().chain(self.cache.day_counts(key)) {
            if let Some(slot) = day
                .checked_sub(first)
                .and_then(|i| history.get_mut(i as usize))
            {
                slot.1 = slot.1.max(count);
            }
        }
        Ok(history)
    }

    /// Sets the total of `key` (migration, fixing a count) through the front cache; durable on
    /// return. Blocking.
    pub fn set(&self, key: &str, total: u64) -> Result<(), StoreError> {
        let mut flushing = self.lock_flushing();
        // A page set by hand is made whatever `--max-pages` says, and counted.
        let made = std::cell::Cell::new(false);
        self.cache.set(
            key,
            total,
            || {
                let stored = self.store.with(|store| store.load(key))?;
                made.set(stored.is_none());
                Ok::<_, StoreError>(stored.unwrap_or_default())
            },
            || {
                made.set(self.store.with(|store| store.set_total(key, total))?);
                self.wrote_through.fetch_add(1, Ordering::AcqRel);
                Ok(())
            },
        )?;
        if made.get() {
            self.pages.made();
        }
        self.flush_holding(&mut flushing, false)?;
        Ok(())
    }

    /// Removes `key` and its day buckets; durable on return; returns whether it was counted.
    /// Holding the flush lock, no flush can write an old total back after the delete; the
    /// checkpoint first leaves no journal record that a replay could bring it back from.
    /// Blocking.
    pub fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let mut flushing = self.lock_flushing();
        self.flush_holding(&mut flushing, true)?;
        let deleted = self
            .cache
            .remove(key, || self.store.with(|store| store.delete(key)))?;
        self.store.with(Store::flush)?;
        if deleted {
            self.pages.removed();
        }
        Ok(deleted)
    }

    fn lock_flushing(&self) -> std::sync::MutexGuard<'_, SinceCheckpoint> {
        self.flushing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes day buckets older than `history_days` days before today. Blocking; scans the days.
    pub fn prune(&self, history_days: u32) -> Result<usize, StoreError> {
        let first_kept = self
            .clock
            .today()
            .saturating_sub(history_days.saturating_sub(1));
        self.store.with(|store| {
            let removed = store.prune_days(first_kept)?;
            if removed > 0 {
                store.flush()?;
            }
            Ok(removed)
        })
    }

    /// Counts the pages the store holds, for `--max-pages` (until then no new page is refused);
    /// gives up when `stop` says so. Blocking: one scan of the pages.
    pub fn count_pages(&self, stop: impl Fn() -> bool) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        if let Some(stored) = self.store.with(|store| store.count_pages(stop))? {
            self.pages.counted(stored);
            tracing::info!(
                pages = stored,
                secs = started.elapsed().as_secs_f64(),
                "counted the stored pages"
            );
        }
        Ok(())
    }

    /// Pages held (stored or cached), as far as known.
    pub fn pages_held(&self) -> u64 {
        self.pages.held()
    }

    /// Today, in days since the epoch, by this counter's clock.
    pub fn today(&self) -> u32 {
        self.clock.today()
    }

    /// Keys in the front cache.
    pub fn cached_keys(&self) -> usize {
        self.cache.len()
    }

    /// Runs `work` on the store underneath (an error while it is closed after a failed write).
    pub fn with_store<T>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.store.with(work)
    }

    /// A handle on the store underneath, for work that outlives a borrow (a streamed export).
    pub fn store(&self) -> Result<Store, StoreError> {
        self.store.handle()
    }

    /// Whether durable writes work, and how many answered hits are not durable yet.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Whether the store answers a read (false while it is closed).
    pub fn store_answers(&self) -> bool {
        self.store.answers()
    }
}

/// Runs `work` on a blocking thread and waits for it: store work never runs on the runtime's
/// workers. A panic in `work` goes on in the caller.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{DAY_MS, ManualClock};

    fn counter(dir: &std::path::Path, capacity: usize, clock: Arc<ManualClock>) -> Counter {
        match Store::open(dir) {
            Ok(store) => Counter::new(store, capacity, clock),
            Err(err) => panic!("cannot open the store: {err}"),
        }
    }

    #[test]
    fn hits_become_durable_on_flush() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let clock = Arc::new(ManualClock::new(10 * DAY_MS));
        {
            let counter = counter(dir.path(), 100, clock.clone());
            assert_eq!(counter.peek("a")?.total, 0);
            assert_eq!(counter.hit("a")?.total, 1);
            assert_eq!(counter.hit("a")?, Counts { total: 2, today: 2 });
            assert_eq!(
                counter.store()?.get("a")?,
                None,
                "not written before a flush"
            );
            assert_eq!(counter.flush()?.written, 1);
            assert_eq!(counter.flush()?.written, 0, "nothing new to write");
        }
        let counter = counter(dir.path(), 100, clock);
        assert_eq!(counter.peek("a")?, Counts { total: 2, today: 2 });
        assert_eq!(counter.hit("a")?.total, 3);
        Ok(())
    }

    #[test]
    fn days_roll_over_and_history_fills_gaps_with_zeros() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let clock = Arc::new(ManualClock::new(10 * DAY_MS));
        let counter = counter(dir.path(), 100, clock.clone());
        counter.hit("a")?;
        counter.hit("a")?;
        counter.flush()?;
        clock.advance(2 * DAY_MS);
        assert_eq!(counter.peek("a")?, Counts { total: 2, today: 0 });
        assert_eq!(counter.hit("a")?, Counts { total: 3, today: 1 });
        assert_eq!(
            counter.history("a", 4)?,
            vec![(9, 0), (10, 2), (11, 0), (12, 1)]
        );
        counter.flush()?;
        assert_eq!(counter.cached_keys(), 1, "journaled only: kept");
        assert!(counter.checkpoint()?.checkpoint);
        assert_eq!(counter.cached_keys(), 0, "idle and checkpointed: evicted");
        assert_eq!(
            counter.history("a", 4)?,
            vec![(9, 0), (10, 2), (11, 0), (12, 1)]
        );
        assert_eq!(counter.peek("a")?, Counts { total: 3, today: 1 });
        Ok(())
    }

    #[test]
    fn pruning_keeps_exactly_history_days() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let clock = Arc::new(ManualClock::new(10 * DAY_MS));
        let counter = counter(dir.path(), 100, clock.clone());
        for _ in 0..5 {
            counter.hit("a")?;
            counter.flush()?;
            clock.advance(DAY_MS);
        }
        // Days 10..=14 hold one hit each; today is 15.
        assert_eq!(counter.prune(3)?, 3);
        counter.checkpoint()?;
        assert_eq!(
            counter.store()?.days_of("a", 0, 20)?,
            vec![(13, 1), (14, 1)]
        );
        assert_eq!(counter.peek("a")?.total, 5, "totals are never pruned");
        Ok(())
    }

    #[test]
    fn a_full_cache_still_counts_every_hit() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let counter = counter(dir.path(), 2, Arc::new(ManualClock::new(DAY_MS)));
        for round in 1..=3 {
            for key in ["a", "b", "c", "d", "e"] {
                assert_eq!(
                    counter.hit(key)?,
                    Counts {
                        total: round,
                        today: round
                    }
                );
            }
        }
        assert!(counter.cached_keys() <= 2);
        counter.checkpoint()?;
        for key in ["a", "b", "c", "d", "e"] {
            assert_eq!(counter.store()?.get(key)?, Some(3));
            assert_eq!(counter.store()?.get_day(key, 1)?, Some(3));
        }
        Ok(())
    }

    #[test]
    fn set_and_delete_go_through_the_cache_and_are_durable()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let clock = Arc::new(ManualClock::new(DAY_MS));
        {
            let counter = counter(dir.path(), 100, clock.clone());
            counter.hit("a")?;
            counter.hit("a")?;
            counter.set("a", 1000)?;
            assert_eq!(
                counter.hit("a")?.total,
                1001,
                "a hit after a set counts from it"
            );
            counter.set("fresh", 7)?;
            assert_eq!(
                counter.store()?.get("fresh")?,
                None,
                "journaled, not checkpointed"
            );
            counter.hit("gone")?;
            counter.hit("gone")?;
            counter.flush()?;
            assert!(counter.delete("gone")?);
            assert!(!counter.delete("never")?);
            counter.flush()?;
            assert_eq!(
                counter.store()?.get("gone")?,
                None,
                "no flush writes it back"
            );
            assert_eq!(counter.store()?.all_days_of("gone")?, vec![]);
            assert_eq!(
                counter.hit("gone")?.total,
                1,
                "a hit after a delete starts afresh"
            );
        }
        // Dropped without a final checkpoint (the delete checkpointed, so `fresh` is in sled).
        let counter = counter(dir.path(), 100, clock);
        assert_eq!(counter.peek("fresh")?.total, 7);
        assert_eq!(
            counter.peek("gone")?.total,
            0,
            "not replayed back after its delete"
        );
        Ok(())
    }

    #[test]
    fn a_crash_after_journal_flushes_keeps_what_they_flushed()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let clock = Arc::new(ManualClock::new(10 * DAY_MS));
        let keys: Vec<String> = (0..3000).map(|i| format!("example.com/{i}")).collect();
        {
            let counter = counter(dir.path(), 10_000, clock.clone());
            for key in &keys {
                counter.hit(key)?;
            }
            assert!(!counter.flush()?.checkpoint, "not due: journaled");
            clock.advance(DAY_MS);
            for key in keys.iter().step_by(2) {
                counter.hit(key)?;
                counter.hit(key)?;
            }
            assert_eq!(
                counter.flush()?.written,
                1500 + 1500,
                "values and retired days"
            );
            assert_eq!(counter.store()?.get(&keys[0])?, None, "the tree waits");
            counter.hit(&keys[0])?;
            // Dropped without a final checkpoint: the last hit was never flushed.
        }
        let counter = counter(dir.path(), 10_000, clock);
        assert_eq!(counter.store()?.get(&keys[0])?, Some(3));
        assert_eq!(counter.store()?.get(&keys[1])?, Some(1));
        assert_eq!(
            counter.history(&keys[0], 2)?,
            vec![(10, 1), (11, 2)],
            "the retired day and the journaled one"
        );
        assert_eq!(counter.store()?.len(), 3000);
        Ok(())
    }

    #[test]
    fn peek_creates_nothing() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let counter = counter(dir.path(), 10, Arc::new(ManualClock::new(DAY_MS)));
        assert_eq!(counter.peek("unknown")?, Counts::default());
        assert_eq!(counter.history("unknown", 3)?, vec![(0, 0), (1, 0)]);
        counter.flush()?;
        assert_eq!(counter.cached_keys(), 0);
        assert!(counter.store()?.is_empty());
        Ok(())
    }
}
