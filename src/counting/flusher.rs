//! The flusher task: it makes the counter's hits durable every interval (or sooner, when the
//! front cache fills up), prunes old days once a day, gives freed heap memory back, and ends
//! with a final flush when the server shuts down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::health::retry_after;
use super::{Counter, FlushReport};
use crate::memory;
use crate::store::StoreError;

/// After a flush that wrote or evicted, the heap's free pages go back to the system at most this
/// often ([`memory::release_free_memory`]). sled replaces a page's copy in memory on every
/// write and frees the old one, in the middle of the heap, where glibc never gives memory back by
/// itself; a trim takes milliseconds, on a blocking thread.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Runs `work` on the counter, on a blocking thread ([`super::blocking`]).
async fn blocking<T: Send + 'static>(
    counter: &Arc<Counter>,
    work: impl FnOnce(&Counter) -> T + Send + 'static,
) -> T {
    let counter = Arc::clone(counter);
    super::blocking(move || work(&counter)).await
}

/// Gives the heap's free pages back to the system, on a blocking thread: it takes a while, and
/// each of malloc's arenas is locked while it is trimmed.
async fn release_free_memory(counter: &Arc<Counter>) {
    let started = Instant::now();
    let released = blocking(counter, |_| memory::release_free_memory()).await;
    tracing::debug!(
        released,
        took_ms = started.elapsed().as_millis() as u64,
        "returned free heap memory to the system"
    );
}

/// While flushes fail, the log says so at most this often, with counts, not once per attempt.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(30);

/// The flusher task: owned by the server, stopped by its shutdown signal, and ending with a final
/// flush whose result is what the task returns. Once a day (when the clock's day changes) it
/// also prunes day buckets older than `history_days`; never at start-up. A failed flush is
/// retried with backoff ([`retry_after`]), opening the store again if it no longer answers; the
/// final flush is retried for up to `final_grace`.
pub fn spawn_flusher(
    counter: Arc<Counter>,
    interval: Duration,
    history_days: u32,
    final_grace: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<Result<FlushReport, StoreError>> {
    tokio::spawn(async move {
        let mut pruned_on = counter.today();
        let mut trimmed = Instant::now();
        let mut failures = Failures::default();
        let mut next = tokio::time::Instant::now() + interval;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = counter.full.notified(), if failures.attempts == 0 => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
            let started = Instant::now();
            let churned = match flush_once(&counter, Counter::flush, &mut failures).await {
                Some(report) => {
                    if report.written > 0 || report.evicted > 0 {
                        tracing::debug!(
                            written = report.written,
                            evicted = report.evicted,
                            took_ms = started.elapsed().as_millis() as u64,
                            "flushed"
                        );
                    }
                    report.written > 0 || report.evicted > 0
                }
                None => false,
            };
            next = tokio::time::Instant::now() + retry_after(interval, failures.attempts);
            if churned && trimmed.elapsed() >= TRIM_EVERY {
                trimmed = Instant::now();
                release_free_memory(&counter).await;
            }
            if counter.today() != pruned_on && failures.attempts == 0 {
                pruned_on = counter.today();
                match blocking(&counter, move |c| c.prune(history_days)).await {
                    Ok(removed) => tracing::info!(removed, "pruned old day buckets"),
                    Err(err) => tracing::error!(cause = %err, "pruning day buckets failed"),
                }
            }
        }
        final_flush(&counter, interval, final_grace, &mut failures).await
    })
}

/// The final flush, as a checkpoint, retried with backoff until it works or `grace` is over.
async fn final_flush(
    counter: &Arc<Counter>,
    interval: Duration,
    grace: Duration,
    failures: &mut Failures,
) -> Result<FlushReport, StoreError> {
    let deadline = Instant::now() + grace;
    loop {
        match blocking(counter, Counter::checkpoint).await {
            Ok(report) => {
                tracing::info!(
                    written = report.written,
                    "final flush done, as a checkpoint"
                );
                return Ok(report);
            }
            Err(err) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let wait = retry_after(interval, failures.attempts + 1).min(left);
                if wait.is_zero() {
                    tracing::error!(
                        cause = %err,
                        unsaved_hits = counter.health().not_durable(),
                        "final flush failed: answered hits could not be saved"
                    );
                    return Err(err);
                }
                failures.failed(counter, &err);
                tracing::warn!(cause = %err, retry_in_ms = wait.as_millis() as u64, "final flush failed; retrying");
                tokio::time::sleep(wait).await;
                reopen(counter).await;
            }
        }
    }
}

/// One flush with `work`, on a blocking thread; after a failure, first opens the store again if
/// it no longer answers. Says a failure when it starts, then at most once per
/// [`FAILURE_LOG_EVERY`], and its end.
async fn flush_once(
    counter: &Arc<Counter>,
    work: fn(&Counter) -> Result<FlushReport, StoreError>,
    failures: &mut Failures,
) -> Option<FlushReport> {
    if failures.attempts > 0 {
        reopen(counter).await;
    }
    match blocking(counter, work).await {
        Ok(report) => {
            failures.attempts = 0;
            failures.refused_requests(counter);
            Some(report)
        }
        Err(err) => {
            failures.failed(counter, &err);
            None
        }
    }
}

/// Opens a failed store again, when it no longer answers.
async fn reopen(counter: &Arc<Counter>) {
    if let Err(err) = blocking(counter, Counter::reopen_if_failed).await {
        tracing::debug!(cause = %err, "the store cannot be opened again yet");
    }
}

/// Failed flushes in a row, and when the log last said so.
#[derive(Default)]
struct Failures {
    attempts: u64,
    logged: Option<Instant>,
}

impl Failures {
    /// Says how many requests the store failed since the last line, at most once per
    /// [`FAILURE_LOG_EVERY`] (a read of a damaged value, say, while flushes work).
    fn refused_requests(&mut self, counter: &Counter) {
        if self
            .logged
            .is_some_and(|at| at.elapsed() < FAILURE_LOG_EVERY)
        {
            return;
        }
        let refused = counter.health().take_refused();
        if refused.count > 0 {
            self.logged = Some(Instant::now());
            tracing::error!(
                refused = refused.count,
                last_cause = refused.last_cause.as_deref().unwrap_or_default(),
                "requests failed on the store since the last line"
            );
        }
    }

    fn failed(&mut self, counter: &Counter, err: &StoreError) {
        self.attempts += 1;
        let due = self
            .logged
            .is_none_or(|at| at.elapsed() >= FAILURE_LOG_EVERY);
        if due {
            self.logged = Some(Instant::now());
            tracing::error!(
                cause = %err,
                failed_flushes = self.attempts,
                unsaved_hits = counter.health().not_durable(),
                refused_requests = counter.health().take_refused().count,
                "durable writes are failing: answered hits are kept in memory and flushes retried"
            );
        }
    }
}
