//! The flusher task: it makes the counter's hits durable every interval (or sooner, when the
//! front cache fills up), prunes old days once a day, gives freed heap memory back, and ends
//! with a final flush when the server shuts down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Counter, FlushReport};
use crate::memory;
use crate::store::StoreError;

/// After a flush that wrote or evicted, the heap's free pages go back to the system at most this
/// often ([`memory::release_free_memory`]). sled replaces a page's copy in memory on every
/// write and frees the old one, in the middle of the heap, where glibc never gives memory back by
/// itself. `PASSES=3 bash benches/scale.sh` (three floods of the same 1M pages): peak RSS 129 MiB
/// without it, 109 MiB with it. A trim of a heap that size took 8–20 ms, on a blocking thread.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Runs blocking work of the counter on a blocking thread.
async fn blocking<T: Send + 'static>(
    counter: &Arc<Counter>,
    work: impl FnOnce(&Counter) -> T + Send + 'static,
) -> T {
    let counter = Arc::clone(counter);
    match tokio::task::spawn_blocking(move || work(&counter)).await {
        Ok(result) => result,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
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

/// The flusher task: owned by the server, stopped by its shutdown signal, and ending with a final
/// flush whose result is what the task returns. Once a day (when the clock's day changes) it
/// also prunes day buckets older than `history_days`; never at start-up.
pub fn spawn_flusher(
    counter: Arc<Counter>,
    interval: Duration,
    history_days: u32,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<Result<FlushReport, StoreError>> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruned_on = counter.today();
        let mut trimmed = Instant::now();
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = counter.full.notified() => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
            let started = Instant::now();
            let churned = match blocking(&counter, Counter::flush).await {
                Ok(report) if report.written > 0 || report.evicted > 0 => {
                    tracing::debug!(
                        written = report.written,
                        evicted = report.evicted,
                        took_ms = started.elapsed().as_millis() as u64,
                        "flushed"
                    );
                    true
                }
                Ok(_) => false,
                Err(err) => {
                    tracing::error!(cause = %err, "flush failed; will retry");
                    false
                }
            };
            if churned && trimmed.elapsed() >= TRIM_EVERY {
                trimmed = Instant::now();
                release_free_memory(&counter).await;
            }
            if counter.today() != pruned_on {
                pruned_on = counter.today();
                match blocking(&counter, move |c| c.prune(history_days)).await {
                    Ok(removed) => tracing::info!(removed, "pruned old day buckets"),
                    Err(err) => tracing::error!(cause = %err, "pruning day buckets failed"),
                }
            }
        }
        let report = blocking(&counter, Counter::checkpoint).await;
        match &report {
            Ok(report) => tracing::info!(
                written = report.written,
                "final flush done, as a checkpoint"
            ),
            Err(err) => tracing::error!(cause = %err, "final flush failed"),
        }
        report
    })
}
