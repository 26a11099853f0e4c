//! How many pages the counter holds, against `--max-pages`: counted once from the store in the
//! background at start, then kept up to date by every new page and delete.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::store::StoreError;

/// Why a hit was not counted.
#[derive(Debug, thiserror::Error)]
pub enum HitError {
    /// The store failed; the hit may be retried.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A new page, and the counter already holds its maximum of pages.
    #[error("the counter holds its maximum of {0} pages")]
    Full(u64),
    /// A new page, and the client used up its new pages for this minute.
    #[error("too many new pages from this client")]
    TooManyNewPages,
}

/// The pages held, and their limit.
pub(super) struct Pages {
    /// Pages in the store or the front cache, as far as known: an atomic, since every first hit
    /// of a page takes one, under no lock but its cache shard's.
    held: AtomicU64,
    /// `--max-pages`.
    max: u64,
    /// Whether the store's pages were counted: until then a new page is never refused, since
    /// the count is not known yet (the count takes about a second a million pages).
    counted: AtomicBool,
}

impl Pages {
    /// No pages known yet, at most `max`.
    pub(super) fn new(max: u64) -> Self {
        Self {
            held: AtomicU64::new(0),
            max,
            counted: AtomicBool::new(false),
        }
    }

    /// Takes room for one new page, if there is room.
    pub(super) fn take(&self) -> Result<(), HitError> {
        if !self.counted.load(Ordering::Acquire) {
            self.made();
            return Ok(());
        }
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.max).then_some(held + 1)
            })
            .map(drop)
            .map_err(|_| HitError::Full(self.max))
    }

    /// One page more, whatever the limit (set by hand).
    pub(super) fn made(&self) {
        self.held.fetch_add(1, Ordering::AcqRel);
    }

    /// One page less (deleted). Until the store is counted nothing is freed: the scan may not
    /// have reached that page yet, and the count must never fall below the pages held.
    pub(super) fn removed(&self) {
        if !self.counted.load(Ordering::Acquire) {
            return;
        }
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(1))
            });
    }

    /// Sets what the store was counted to hold, plus every page made since this was built (the
    /// scan may miss those not yet flushed): a page flushed before the scan reached it counts
    /// twice, so until a restart the limit may bite early by the pages made during the scan.
    pub(super) fn counted(&self, stored: u64) {
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |made| {
                Some(stored.saturating_add(made))
            });
        self.counted.store(true, Ordering::Release);
    }

    /// Pages held, as far as known.
    pub(super) fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_made_or_deleted_while_the_store_is_counted_never_leave_room_too_many() {
        let pages = Pages::new(3);
        // Made and not yet flushed (the scan will not see it), deleted, made again.
        pages.take().ok();
        pages.removed();
        pages.take().ok();
        pages.counted(1);
        assert!(pages.held() >= 2, "the page made again holds a place");
        assert!(
            matches!(pages.take(), Err(HitError::Full(3))),
            "over-counted by one"
        );
        pages.removed();
        assert!(pages.take().is_ok(), "once counted, a delete makes room");
    }
}
