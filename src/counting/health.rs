//! Whether durable writes work: since when and why they fail, how many answered hits are not
//! durable yet, and how many were lost; read by `/healthz` and `/metrics`, said by the flusher.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::telemetry;

/// Durable writes as the flushes found them.
#[derive(Debug, Default)]
pub struct Health {
    /// Set from a failed flush until one succeeds. A mutex: written by flushes only (one at a
    /// time), read by `/healthz`.
    failure: Mutex<Option<Failure>>,
    /// Answered hits not yet durable, as of the last failed flush (0 while flushes succeed).
    not_durable: AtomicU64,
    /// Requests refused because the store failed since the flusher last said so, and the last
    /// one's cause. A mutex: taken only when a request fails, and by the flusher.
    refused: Mutex<Refused>,
}

/// Requests refused because the store failed, and why the last one was.
#[derive(Debug, Default)]
pub struct Refused {
    /// How many.
    pub count: u64,
    /// The last one's cause.
    pub last_cause: Option<String>,
}

/// An ongoing failure of durable writes.
#[derive(Debug, Clone)]
pub struct Failure {
    /// When the first flush of this failure failed.
    pub since: Instant,
    /// What the latest failed flush said.
    pub reason: String,
    /// Failed flushes so far.
    pub attempts: u64,
    /// Answered hits not durable yet.
    pub not_durable: u64,
}

impl Health {
    /// Records a failed flush that left `not_durable` answered hits unsaved; returns whether it
    /// starts a failure (the first since flushes last worked).
    pub(super) fn failed(&self, reason: String, not_durable: u64) -> bool {
        self.not_durable.store(not_durable, Ordering::Relaxed);
        telemetry::store_failed("flush", not_durable);
        let mut failure = self.lock();
        let first = failure.is_none();
        let entry = failure.get_or_insert_with(|| Failure {
            since: Instant::now(),
            reason: String::new(),
            attempts: 0,
            not_durable: 0,
        });
        entry.reason = reason;
        entry.attempts += 1;
        entry.not_durable = not_durable;
        first
    }

    /// Records a flush that worked; returns the failure it ends, if any.
    pub(super) fn recovered(&self) -> Option<Failure> {
        self.not_durable.store(0, Ordering::Relaxed);
        let ended = self.lock().take();
        if ended.is_some() {
            telemetry::store_recovered();
        }
        ended
    }

    /// Counts a request refused because the store failed.
    pub(super) fn refused(&self, cause: &impl std::fmt::Display) {
        {
            let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
            refused.count += 1;
            refused.last_cause = Some(cause.to_string());
        }
        telemetry::store_failed("request", self.not_durable());
    }

    /// Requests refused since the last call, for the flusher's summary line.
    pub fn take_refused(&self) -> Refused {
        std::mem::take(&mut *self.refused.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The ongoing failure, if durable writes fail now.
    pub fn failure(&self) -> Option<Failure> {
        self.lock().clone()
    }

    /// Answered hits not yet durable.
    pub fn not_durable(&self) -> u64 {
        self.not_durable.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Failure>> {
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How long the flusher waits before retrying after `attempts` failed flushes in a row: the
/// flush interval, doubled per failure, at most [`MAX_RETRY`].
pub fn retry_after(interval: Duration, attempts: u64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).min(16)).unwrap_or(16);
    interval
        .saturating_mul(1 << doublings)
        .min(MAX_RETRY.max(interval))
}

/// The longest wait between two attempts at a failing flush.
pub const MAX_RETRY: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_bound_and_a_failure_ends_once() {
        let second = Duration::from_secs(1);
        let waits: Vec<u64> = (1..=5).map(|n| retry_after(second, n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        assert_eq!(
            retry_after(Duration::from_secs(60), 3),
            Duration::from_secs(60)
        );
        let health = Health::default();
        assert!(health.failed("disk full".into(), 7));
        assert!(!health.failed("disk full".into(), 9));
        assert_eq!(
            health.failure().map(|f| (f.attempts, f.not_durable)),
            Some((2, 9))
        );
        assert_eq!(health.recovered().map(|f| f.attempts), Some(2));
        assert!(health.recovered().is_none());
        assert_eq!(health.not_durable(), 0);
    }
}
