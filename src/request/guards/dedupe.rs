//! Cookieless visitor dedupe: a visitor's hits on a page within the window count once.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::RwLock;

use crate::bounded;
use crate::clock::day_of;

/// Cookieless dedupe: a keyed hash of (client address, User-Agent, key) remembered for the
/// window. The key of the hash is random, lives only in memory and changes every UTC day.
pub struct Dedupe {
    window_ms: u64,
    /// The hash key and the day it was made for; a lock taken for reading on every check, and
    /// for writing once a day.
    hasher: RwLock<(u32, RandomState)>,
    /// Hash → when it expires (Unix ms); expired entries are dropped when it is full.
    seen: bounded::Map<u64, u64>,
}

impl Dedupe {
    /// Remembers visitors for `window_secs`, at most `capacity` at once.
    pub fn new(window_secs: u64, capacity: usize) -> Self {
        Self {
            window_ms: window_secs.saturating_mul(1000),
            hasher: RwLock::new((0, RandomState::new())),
            seen: bounded::Map::new(capacity),
        }
    }

    /// Whether this visitor hit this key within the window; if not, remembers it now. When the
    /// map is full even after dropping expired entries, the visitor is not remembered (and so
    /// counts): memory stays bounded.
    pub fn seen_recently(
        &self,
        ip: Option<IpAddr>,
        user_agent: &[u8],
        key: &str,
        now_ms: u64,
    ) -> bool {
        if self.window_ms == 0 {
            return false;
        }
        let hash = self.hash(ip, user_agent, key, day_of(now_ms));
        if let Some(expires) = self.seen.get(&hash) {
            if *expires > now_ms {
                return true;
            }
        }
        self.seen
            .insert_or_prune(hash, now_ms + self.window_ms, |_, expires| {
                *expires > now_ms
            });
        false
    }

    fn hash(&self, ip: Option<IpAddr>, user_agent: &[u8], key: &str, day: u32) -> u64 {
        let current = match self.hasher.read() {
            Ok(guard) if guard.0 == day => Some(guard.1.clone()),
            _ => None,
        };
        let state = current.unwrap_or_else(|| self.rotate(day));
        let mut hasher = state.build_hasher();
        ip.hash(&mut hasher);
        user_agent.hash(&mut hasher);
        key.hash(&mut hasher);
        hasher.finish()
    }

    /// A new random hash key for `day`; yesterday's hashes mean nothing now, so they go.
    fn rotate(&self, day: u32) -> RandomState {
        let mut guard = match self.hasher.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if guard.0 != day {
            *guard = (day, RandomState::new());
            self.seen.clear();
        }
        guard.1.clone()
    }

    /// Visitors remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no visitor is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    #[test]
    fn dedupe_remembers_a_visitor_for_the_window_within_its_capacity() {
        let dedupe = Dedupe::new(60, 3);
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert!(!dedupe.seen_recently(a, b"ua", "k", 1_000));
        assert!(dedupe.seen_recently(a, b"ua", "k", 2_000));
        assert!(
            !dedupe.seen_recently(b, b"ua", "k", 2_000),
            "another address"
        );
        assert!(
            !dedupe.seen_recently(a, b"other ua", "k", 2_000),
            "another browser"
        );
        assert!(
            !dedupe.seen_recently(a, b"ua", "k", 61_001),
            "after the window"
        );
        for n in 0..100 {
            dedupe.seen_recently(ip(&format!("198.51.100.{n}")), b"ua", "k", 62_000);
        }
        assert!(dedupe.len() <= 3, "bounded: {}", dedupe.len());
    }

    #[test]
    fn concurrent_first_visits_never_take_the_dedupe_past_its_capacity() {
        for _ in 0..20 {
            let dedupe = Dedupe::new(60, 50);
            std::thread::scope(|scope| {
                for thread in 0..8u8 {
                    let dedupe = &dedupe;
                    scope.spawn(move || {
                        for n in 0..40u8 {
                            let ip = Some(IpAddr::from([10, 0, thread, n]));
                            dedupe.seen_recently(ip, b"ua", "k", 1_000);
                        }
                    });
                }
            });
            assert!(dedupe.seen.counted() <= 50, "{}", dedupe.seen.counted());
        }
    }
}
