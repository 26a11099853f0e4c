//! One cached key's counts: its total and day count, each beside what the store is known to
//! hold, in atomics, so a hit is lock-free once the key's shard is found.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::Counts;
use crate::store::Stored;

/// Bits of a packed day count that hold the count; the day sits above them.
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

pub(super) fn pack(day: u32, count: u64) -> u64 {
    (u64::from(day) << COUNT_BITS) | count.min(COUNT_MASK)
}

pub(super) fn unpack(packed: u64) -> (u32, u64) {
    ((packed >> COUNT_BITS) as u32, packed & COUNT_MASK)
}

/// One cached key.
///
/// `total` is what the key's count is now; `durable` is what the store is known to hold. The
/// pending delta of the design is `total - durable`: keeping the total itself (rather than a delta
/// that a flush would have to move into a base) means a hit is one `fetch_add`, a reader can never
/// see a count go down, and the flusher writes absolute totals, so a retried flush cannot double.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) total: AtomicU64,
    pub(super) durable: AtomicU64,
    /// Today's count packed with its day (`day << 40 | count`): one word, so a hit that is the
    /// first of a new day moves the day on and counts in one compare-and-swap.
    pub(super) day: AtomicU64,
    /// The packed day count the store is known to hold.
    pub(super) day_durable: AtomicU64,
    /// Set by every hit, cleared by every sweep: an entry untouched for a whole flush interval
    /// is idle and may be evicted once clean.
    pub(super) touched: AtomicBool,
    /// Set when `durable` reached the store's journal only, cleared when a checkpoint wrote it
    /// into the counts tree: until then the entry must stay, since a load from the tree would
    /// be behind. Changed only by flushes, which never overlap.
    pub(super) journaled: AtomicBool,
}

impl Entry {
    /// An entry for what the store holds: its latest day, however old, so that the first hit
    /// of a later day retires that day's count (the store keeps only one day beside the total).
    pub(super) fn new(stored: Stored) -> Self {
        let day = pack(stored.day, stored.day_count);
        Self {
            total: AtomicU64::new(stored.total),
            durable: AtomicU64::new(stored.total),
            day: AtomicU64::new(day),
            day_durable: AtomicU64::new(day),
            touched: AtomicBool::new(true),
            journaled: AtomicBool::new(false),
        }
    }

    /// Whether the entry counts a day before `day` (a hit on `day` would retire that day).
    pub(super) fn is_before(&self, day: u32) -> bool {
        unpack(self.day.load(Ordering::Acquire)).0 < day
    }

    /// Counts a hit on `day`; returns the new counts, and the previous day's final count when
    /// this hit is the first of a new day.
    pub(super) fn hit(&self, day: u32) -> (Counts, Option<(u32, u64)>) {
        if !self.touched.load(Ordering::Relaxed) {
            self.touched.store(true, Ordering::Relaxed);
        }
        // Saturates at u64::MAX (a total set that high by hand must not wrap to 0).
        let total = match self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_add(1))
        {
            Ok(before) => before + 1,
            Err(at_max) => at_max,
        };
        let mut current = self.day.load(Ordering::Acquire);
        loop {
            let (entry_day, count) = unpack(current);
            // An entry ahead of `day` means the clock stepped back: keep counting into its day.
            let (next, retired) = if entry_day >= day {
                (pack(entry_day, count + 1), None)
            } else {
                (pack(day, 1), (count > 0).then_some((entry_day, count)))
            };
            match self
                .day
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    let today = unpack(next).1;
                    return (Counts { total, today }, retired);
                }
                Err(actual) => current = actual,
            }
        }
    }

    pub(super) fn counts(&self, day: u32) -> Counts {
        let (entry_day, count) = unpack(self.day.load(Ordering::Acquire));
        Counts {
            total: self.total.load(Ordering::Acquire),
            today: if entry_day == day { count } else { 0 },
        }
    }

    /// Whether the entry may leave the cache: clean, and in the counts tree, not only the journal.
    pub(super) fn is_saved(&self) -> bool {
        self.is_clean() && !self.journaled.load(Ordering::Acquire)
    }

    pub(super) fn is_clean(&self) -> bool {
        self.total.load(Ordering::Acquire) == self.durable.load(Ordering::Acquire)
            && self.day.load(Ordering::Acquire) == self.day_durable.load(Ordering::Acquire)
    }
}
