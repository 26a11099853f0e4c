//! The front cache's doorkeeper: once the cache is a third full, a page is cached only from its
//! second recent hit, so a flood of pages hit once each (a crawler, a scan, `benches/scale.sh`)
//! is written straight to the store instead of filling the cache with entries nobody reuses.
//!
//! A Bloom filter of recent first hits (two bit positions per page, from one keyed hash), cleared
//! once it has taken as many pages as the cache holds: about two bytes per cached page, against
//! the hundred and more of a cache entry. A false positive (about one in fifty when the
//! filter is full) only admits a page early.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Bits per page the filter takes before it is cleared: about 2% false positives when full.
const BITS_PER_PAGE: usize = 12;
/// The filter's largest size in bits (2 MiB): a cache of millions of pages gets more false
/// positives rather than a larger filter.
const MAX_BITS: usize = 1 << 24;

/// Recent first hits.
#[derive(Debug)]
pub(super) struct Doorkeeper {
    /// Atomic words rather than a locked bit vector: marking is a `fetch_or` on one word.
    words: Box<[AtomicU64]>,
    /// `words.len() * 64 - 1`: bit positions are hashes masked by it.
    mask: u64,
    /// Pages marked since the last clear.
    marked: AtomicUsize,
    /// Pages after which the filter is cleared.
    limit: usize,
    hasher: RandomState,
}

impl Doorkeeper {
    /// A filter for a cache of `capacity` pages.
    pub(super) fn new(capacity: usize) -> Self {
        let bits = (capacity.max(1) * BITS_PER_PAGE)
            .next_power_of_two()
            .clamp(64, MAX_BITS);
        Self {
            words: (0..bits / 64).map(|_| AtomicU64::new(0)).collect(),
            mask: bits as u64 - 1,
            marked: AtomicUsize::new(0),
            limit: capacity.max(1),
            hasher: RandomState::new(),
        }
    }

    /// Whether `key` was hit recently (then it may be cached); otherwise marks it, so that its
    /// next hit is.
    pub(super) fn admit(&self, key: &str) -> bool {
        let hash = self.hasher.hash_one(key);
        let bits = [hash & self.mask, hash.rotate_left(32) & self.mask];
        let seen = bits.iter().all(|&bit| {
            let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
            self.words
                .get(word)
                .is_some_and(|w| w.load(Ordering::Relaxed) & mask != 0)
        });
        if seen {
            return true;
        }
        for bit in bits {
            let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
            if let Some(w) = self.words.get(word) {
                w.fetch_or(mask, Ordering::Relaxed);
            }
        }
        if self.marked.fetch_add(1, Ordering::Relaxed) + 1 >= self.limit {
            // A mark racing with the clear may be lost: that page needs one more hit.
            self.marked.store(0, Ordering::Relaxed);
            for w in self.words.iter() {
                w.store(0, Ordering::Relaxed);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_admitted_from_its_second_hit_until_the_filter_is_cleared() {
        let doorkeeper = Doorkeeper::new(1000);
        assert!(!doorkeeper.admit("a"));
        assert!(doorkeeper.admit("a"));
        assert!(doorkeeper.admit("a"), "admitting marks nothing");
        assert_eq!(doorkeeper.marked.load(Ordering::Relaxed), 1);
        let (mut early, mut i) = (0, 0);
        while doorkeeper.marked.load(Ordering::Relaxed) < 999 {
            early += usize::from(doorkeeper.admit(&format!("p{i}")));
            i += 1;
        }
        assert!(early < 30, "{early} false positives among {i} pages");
        assert!(doorkeeper.admit("a"), "999 pages marked: not cleared yet");
        let mut j = 0;
        while doorkeeper.admit(&format!("q{j}")) {
            j += 1;
        }
        assert_eq!(
            doorkeeper.marked.load(Ordering::Relaxed),
            0,
            "the 1000th mark clears"
        );
        assert!(!doorkeeper.admit("a"), "forgotten with the rest");
    }

    #[test]
    fn the_filter_stays_within_its_bounds() {
        assert_eq!(Doorkeeper::new(0).words.len(), 1);
        assert_eq!(Doorkeeper::new(150_000).words.len() * 8, 256 * 1024);
        assert_eq!(Doorkeeper::new(100_000_000).words.len() * 64, MAX_BITS);
    }
}
