//! Flushes: what decides between a journal flush and a checkpoint, the flush itself, and
//! opening a store again after sled failed one.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Counter;
use crate::counting::cache::{Retired, Take};
use crate::store::{Batch, DayCount, StoreError};
use crate::telemetry;

/// Checkpoint every this long, so the journal a crash leaves to replay stays short and what
/// reads the counts tree (the top sites, exports of a stopped server) is at most this far behind.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);
/// Checkpoint once this many bytes were journaled since the last one (about 20 bytes more than
/// its URL per flushed page), so the journal's disk space and its replay after a crash stay
/// bounded.
const CHECKPOINT_BYTES: usize = 64 * 1024 * 1024;

/// What has happened since the last checkpoint, which decides when the next one is due.
#[derive(Debug)]
pub(super) struct SinceCheckpoint {
    /// When the last checkpoint was written.
    checkpointed: Instant,
    /// Bytes journaled since then.
    bytes: usize,
    /// Set by a failed flush, whose entries the cache took as written: the next flush must be a
    /// checkpoint of every cached entry.
    rewrite: bool,
    /// Hits of the entries that failed flushes took, not durable until a flush succeeds.
    unsaved: u64,
}

impl SinceCheckpoint {
    pub(super) fn new() -> Self {
        Self {
            checkpointed: Instant::now(),
            bytes: 0,
            rewrite: false,
            unsaved: 0,
        }
    }

    fn is_due(&self) -> bool {
        self.bytes >= CHECKPOINT_BYTES || self.checkpointed.elapsed() >= CHECKPOINT_EVERY
    }

    /// Which cached entries a flush takes: every one after a failure, else those a checkpoint
    /// or a journal flush needs.
    fn take(&self, checkpoint: bool) -> Take {
        match (self.rewrite, checkpoint) {
            (true, _) => Take::All,
            (false, true) => Take::Unsaved,
            (false, false) => Take::Dirty,
        }
    }

    /// Records a successful write of `bytes` into the journal, or of a checkpoint.
    fn wrote(&mut self, bytes: usize, checkpoint: bool) {
        if checkpoint {
            *self = Self::new();
        } else {
            self.bytes += bytes;
            self.unsaved = 0;
        }
    }
}

/// What one flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Keys (and retired days) whose counts were written.
    pub written: usize,
    /// Clean entries evicted from the cache afterwards.
    pub evicted: usize,
    /// Whether it was a checkpoint (everything written into the counts tree) rather than a
    /// journal flush.
    pub checkpoint: bool,
}

impl Counter {
    /// Makes every pending count durable, then evicts saved idle entries: into the journal, or,
    /// when a checkpoint is due or the cache is full, into the counts tree (a checkpoint).
    /// Blocking (it fsyncs): call it from a blocking thread.
    pub fn flush(&self) -> Result<FlushReport, StoreError> {
        let mut flushing = self.lock_flushing();
        self.flush_holding(&mut flushing, false)
    }

    /// Writes every count into the counts tree and empties the journal, durably: for a final
    /// flush, and before reading the whole tree. Blocking.
    pub fn checkpoint(&self) -> Result<FlushReport, StoreError> {
        let mut flushing = self.lock_flushing();
        self.flush_holding(&mut flushing, true)
    }

    /// [`Counter::flush`] (or with `checkpoint`, [`Counter::checkpoint`]), for a caller that
    /// already holds the flush lock.
    pub(super) fn flush_holding(
        &self,
        since: &mut SinceCheckpoint,
        checkpoint: bool,
    ) -> Result<FlushReport, StoreError> {
        let started = Instant::now();
        // A full cache can only make room by evicting saved entries, which takes a checkpoint.
        let checkpoint = checkpoint || since.is_due() || since.rewrite || self.cache.is_full();
        let (retired, latest, hits) = self.cache.take_pending(since.take(checkpoint));
        let wrote_through = self.wrote_through.swap(0, Ordering::AcqRel);
        let written = retired.len() + latest.len();
        if written > 0 || wrote_through > 0 || (checkpoint && since.bytes > 0) {
            match self.write(&latest, &retired, checkpoint) {
                Ok(bytes) => since.wrote(bytes, checkpoint),
                Err(err) => {
                    self.failed(since, &err, hits, wrote_through);
                    // Cached entries stay dirty by themselves; retired days must be put back.
                    self.cache.unretire(retired);
                    return Err(err);
                }
            }
        } else if checkpoint {
            *since = SinceCheckpoint::new();
        }
        self.log_recovery();
        let evicted = self.cache.sweep(self.cache.is_full());
        telemetry::flushed(started.elapsed(), written, evicted, self.cache.len());
        Ok(FlushReport {
            written,
            evicted,
            checkpoint,
        })
    }

    /// Writes what a flush took, durably (with any write-through before it): into the counts
    /// tree for a checkpoint, else into the journal. Returns the bytes journaled.
    fn write(
        &self,
        latest: &Batch,
        retired: &[Retired],
        checkpoint: bool,
    ) -> Result<usize, StoreError> {
        let days: Vec<DayCount<'_>> = retired
            .iter()
            .map(|r| DayCount {
                key: &r.key,
                day: r.day,
                count: r.count,
            })
            .collect();
        self.store.with(|store| {
            if checkpoint {
                store.checkpoint(latest, &days).map(|()| 0)
            } else {
                store.journal(latest, &days)
            }
        })
    }

    /// Records a failed write of a flush that took `hits` from the cache and `wrote_through`
    /// written-through hits. The cache took its entries as written: the next flush rewrites
    /// them all, as a checkpoint. That also starts a new journal: a record cut short by the
    /// error may sit at the end of this one, and replay stops there, so nothing may be appended
    /// after it.
    fn failed(&self, since: &mut SinceCheckpoint, err: &StoreError, hits: u64, wrote_through: u64) {
        since.rewrite = true;
        since.unsaved = since.unsaved.saturating_add(hits);
        self.wrote_through
            .fetch_add(wrote_through, Ordering::AcqRel);
        let not_durable = since
            .unsaved
            .saturating_add(self.wrote_through.load(Ordering::Acquire));
        self.health.failed(err.to_string(), not_durable);
        if matches!(
            err,
            StoreError::Sled(_) | StoreError::Closed | StoreError::Reopen(_)
        ) {
            self.poisoned.store(true, Ordering::Release);
        }
    }

    /// Says in the log when durable writes work again after failing.
    fn log_recovery(&self) {
        if let Some(ended) = self.health.recovered() {
            tracing::warn!(
                failed_flushes = ended.attempts,
                failed_for_secs = ended.since.elapsed().as_secs(),
                saved_hits = ended.not_durable,
                "durable writes work again: every answered hit kept in memory is saved"
            );
        }
    }

    /// After a flush that sled failed: closes the store and opens it again (sled fails every
    /// write after one failed write to its log), so that the next flush can work once the disk
    /// does. The hits written through to the old store since its last durable flush are lost
    /// with it: returns how many (at most; some may be in the cache too, and saved). Blocking.
    pub fn reopen_if_failed(&self) -> Result<u64, StoreError> {
        if !self.poisoned.load(Ordering::Acquire) {
            return Ok(0);
        }
        let _flushing = self.lock_flushing();
        self.store.reopen()?;
        self.poisoned.store(false, Ordering::Release);
        tracing::info!("opened the store again after a failed write");
        let lost = self.wrote_through.swap(0, Ordering::AcqRel);
        if lost > 0 {
            telemetry::hits_lost(lost);
            tracing::error!(
                lost_hits = lost,
                "answered hits written straight to the failed store were lost with it"
            );
        }
        Ok(lost)
    }
}
