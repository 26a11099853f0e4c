//! Observability: the Prometheus recorder behind `--metrics` (the `metrics` crate and its
//! Prometheus exporter), and the names of what is measured. Without `--metrics` no recorder is
//! installed and every call here costs nothing but a check.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

/// The process-wide recorder (the `metrics` facade has one global recorder).
static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Histogram buckets of durations, in seconds.
const SECONDS_BUCKETS: [f64; 9] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
/// Histogram buckets of `hitcounter_flush_keys`, a count of keys: up to a million a flush.
const KEYS_BUCKETS: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];

/// Installs the recorder once per process; gauges not set again within `idle` (the per-URL
/// gauges of URLs that left the top) disappear. Returns the handle that renders `/metrics`.
pub fn install(idle: Duration) -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .idle_timeout(MetricKindMask::GAUGE, Some(idle))
                .set_buckets(&SECONDS_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("hitcounter_flush_keys".into()),
                        &KEYS_BUCKETS,
                    )
                })
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(err) => {
                    tracing::error!(cause = %err, "cannot install the metrics recorder");
                    None
                }
            }
        })
        .clone()
}

/// Whether a recorder is installed: without one, every function below returns at once rather
/// than building metric keys for the no-op recorder on every request.
fn on() -> bool {
    matches!(HANDLE.get(), Some(Some(_)))
}

/// One answered request: a debug line (`RUST_LOG=debug`), and its count for `/metrics`.
pub fn request(route: &'static str, status: u16) {
    tracing::debug!(route, status, "answered");
    if !on() {
        return;
    }
    counter!("hitcounter_requests_total", "route" => route, "status" => status_label(status))
        .increment(1);
}

/// A hit that counted.
pub fn hit_counted() {
    if !on() {
        return;
    }
    counter!("hitcounter_hits_counted_total").increment(1);
}

/// A hit that did not count, and why: `cookie`, `dedupe` or `rate_limit`.
pub fn hit_suppressed(reason: &'static str) {
    if !on() {
        return;
    }
    counter!("hitcounter_hits_suppressed_total", "reason" => reason).increment(1);
}

/// A store failure, in a flush or in a request (`op`), with the answered hits not yet durable.
pub fn store_failed(op: &'static str, not_durable: u64) {
    if !on() {
        return;
    }
    counter!("hitcounter_store_errors_total", "op" => op).increment(1);
    if op == "flush" {
        gauge!("hitcounter_hits_not_durable").set(not_durable as f64);
        gauge!("hitcounter_store_writable").set(0.0);
    }
}

/// Durable writes work again (or have worked since start-up).
pub fn store_recovered() {
    if !on() {
        return;
    }
    gauge!("hitcounter_hits_not_durable").set(0.0);
    gauge!("hitcounter_store_writable").set(1.0);
}

/// A failed admin authentication.
pub fn admin_auth_failed() {
    if !on() {
        return;
    }
    counter!("hitcounter_admin_auth_failures_total").increment(1);
}

/// Answered hits that can never be made durable.
pub fn hits_lost(hits: u64) {
    if !on() {
        return;
    }
    counter!("hitcounter_hits_lost_total").increment(hits);
}

/// After a flush: how long it took, how many keys it wrote, the cache's size and evictions.
pub fn flushed(took: Duration, written: usize, evicted: usize, cache_entries: usize) {
    if !on() {
        return;
    }
    histogram!("hitcounter_flush_duration_seconds").record(took.as_secs_f64());
    histogram!("hitcounter_flush_keys").record(written as f64);
    counter!("hitcounter_cache_evictions_total").increment(evicted as u64);
    gauge!("hitcounter_cache_entries").set(cache_entries as f64);
}

/// Entries in a bounded guard map (`dedupe` or `rate_limit`).
pub fn guard_size(map: &'static str, entries: usize) {
    if !on() {
        return;
    }
    gauge!("hitcounter_guard_entries", "map" => map).set(entries as f64);
}

/// A new page refused: `max_pages` or `new_pages_per_minute`.
pub fn new_page_refused(reason: &'static str) {
    if !on() {
        return;
    }
    counter!("hitcounter_new_pages_refused_total", "reason" => reason).increment(1);
}

/// Pages held (stored or cached), against `--max-pages`.
pub fn pages(held: u64) {
    if !on() {
        return;
    }
    gauge!("hitcounter_pages").set(held as f64);
}

/// The store's size, measured in the background.
pub fn store_size(keys: u64, bytes: u64) {
    if !on() {
        return;
    }
    gauge!("hitcounter_store_keys").set(keys as f64);
    gauge!("hitcounter_store_bytes").set(bytes as f64);
}

/// Views of the top URLs (`--metrics-top-urls`), one bounded gauge per URL.
pub fn url_views(rows: &[(String, u64)]) {
    if !on() {
        return;
    }
    for (url, count) in rows {
        gauge!("hitcounter_url_views", "url" => url.clone()).set(*count as f64);
    }
}

/// Status codes as static labels (no allocation per request).
fn status_label(status: u16) -> &'static str {
    const KNOWN: [(u16, &str); 11] = [
        (200, "200"),
        (204, "204"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (411, "411"),
        (413, "413"),
        (503, "503"),
    ];
    if let Some((_, label)) = KNOWN.iter().find(|(code, _)| *code == status) {
        return label;
    }
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
