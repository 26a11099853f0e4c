//! Counting: the front cache over the store, and the flusher task, the one writer that moves
//! cached totals into sled and makes them durable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::cache::Cache;
use crate::store::{Store, StoreError};

/// The count of every key: hot keys in the front cache, the rest in the store.
pub struct Counter {
    cache: Cache,
    store: Store,
    /// Set when a hit wrote through to the store, so the next flush fsyncs even with a clean cache.
    store_dirty: AtomicBool,
    /// Wakes the flusher early when the cache fills up.
    full: Notify,
    /// A std mutex, held only by a flush (never across `.await`): two overlapping flushes could
    /// write an older total after a newer one.
    flushing: Mutex<()>,
}

/// What one flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Keys whose totals were written.
    pub written: usize,
    /// Clean entries evicted from the cache afterwards.
    pub evicted: usize,
}

impl Counter {
    /// A counter over `store` whose front cache holds at most `cache_capacity` keys.
    pub fn new(store: Store, cache_capacity: usize) -> Self {
        Self {
            cache: Cache::new(cache_capacity),
            store,
            store_dirty: AtomicBool::new(false),
            full: Notify::new(),
            flushing: Mutex::new(()),
        }
    }

    /// Counts one hit for `key` and returns its new total (the first hit of a new key gives 1).
    pub fn hit(&self, key: &str) -> Result<u64, StoreError> {
        let total = self.cache.hit(
            key,
            || Ok::<u64, StoreError>(self.store.get(key)?.unwrap_or(0)),
            || {
                let total = self.store.increment(key, 1)?;
                // Raised after the write, so the flush that clears it covers the write.
                self.store_dirty.store(true, Ordering::Release);
                Ok(total)
            },
        )?;
        if self.cache.is_full() {
            self.full.notify_one();
        }
        Ok(total)
    }

    /// The current total of `key` without counting; an unknown key is 0 and creates nothing.
    pub fn peek(&self, key: &str) -> Result<u64, StoreError> {
        match self.cache.get(key) {
            Some(total) => Ok(total),
            None => Ok(self.store.get(key)?.unwrap_or(0)),
        }
    }

    /// Writes every pending total to the store, makes it durable, then evicts clean idle entries.
    /// Blocking (it fsyncs): call it from a blocking thread.
    pub fn flush(&self) -> Result<FlushReport, StoreError> {
        let _only_flush = self
            .flushing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dirty = self.cache.dirty();
        let wrote_through = self.store_dirty.swap(false, Ordering::AcqRel);
        if !dirty.is_empty() || wrote_through {
            let written = self
                .store
                .put_totals(dirty.iter().map(|(key, total)| (&**key, *total)))
                .and_then(|()| self.store.flush());
            if let Err(err) = written {
                self.store_dirty.fetch_or(wrote_through, Ordering::AcqRel);
                return Err(err);
            }
            for (key, total) in &dirty {
                self.cache.mark_durable(key, *total);
            }
        }
        let evicted = self.cache.sweep(self.cache.is_full());
        Ok(FlushReport {
            written: dirty.len(),
            evicted,
        })
    }

    /// Keys in the front cache.
    pub fn cached_keys(&self) -> usize {
        self.cache.len()
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Runs `flush` on a blocking thread.
async fn flush_blocking(counter: &Arc<Counter>) -> Result<FlushReport, StoreError> {
    let counter = Arc::clone(counter);
    match tokio::task::spawn_blocking(move || counter.flush()).await {
        Ok(result) => result,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

/// The flusher task: owned by the server, stopped by its shutdown signal, and ending with a final
/// flush whose result is what the task returns.
pub fn spawn_flusher(
    counter: Arc<Counter>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<Result<FlushReport, StoreError>> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = counter.full.notified() => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
            let started = Instant::now();
            match flush_blocking(&counter).await {
                Ok(report) if report.written > 0 || report.evicted > 0 => tracing::debug!(
                    written = report.written,
                    evicted = report.evicted,
                    took_ms = started.elapsed().as_millis() as u64,
                    "flushed"
                ),
                Ok(_) => {}
                Err(err) => tracing::error!(cause = %err, "flush failed; will retry"),
            }
        }
        let report = flush_blocking(&counter).await;
        match &report {
            Ok(report) => tracing::info!(written = report.written, "final flush done"),
            Err(err) => tracing::error!(cause = %err, "final flush failed"),
        }
        report
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_become_durable_on_flush() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        {
            let counter = Counter::new(Store::open(dir.path())?, 100);
            assert_eq!(counter.peek("a")?, 0);
            assert_eq!(counter.hit("a")?, 1);
            assert_eq!(counter.hit("a")?, 2);
            assert_eq!(
                counter.store().get("a")?,
                None,
                "not written before a flush"
            );
            assert_eq!(counter.flush()?.written, 1);
            assert_eq!(counter.flush()?.written, 0, "nothing new to write");
        }
        let counter = Counter::new(Store::open(dir.path())?, 100);
        assert_eq!(counter.peek("a")?, 2);
        assert_eq!(counter.hit("a")?, 3);
        Ok(())
    }

    #[test]
    fn a_full_cache_still_counts_every_hit() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let counter = Counter::new(Store::open(dir.path())?, 2);
        for round in 1..=3 {
            for key in ["a", "b", "c", "d", "e"] {
                assert_eq!(counter.hit(key)?, round);
            }
        }
        assert!(counter.cached_keys() <= 2);
        counter.flush()?;
        for key in ["a", "b", "c", "d", "e"] {
            assert_eq!(counter.store().get(key)?, Some(3));
        }
        Ok(())
    }

    #[test]
    fn peek_creates_nothing() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let counter = Counter::new(Store::open(dir.path())?, 10);
        assert_eq!(counter.peek("unknown")?, 0);
        counter.flush()?;
        assert_eq!(counter.cached_keys(), 0);
        assert!(counter.store().is_empty());
        Ok(())
    }
}
