//! The top sites: the most-viewed domains and URLs, recomputed in the background from the store
//! at most every `--top-refresh-secs` (never per request), and the task that does it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use regex::RegexSet;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::counting::Counter;
use crate::store::{Store, StoreError};
use crate::telemetry;

/// Domains ignored by default, as the original does: loopback and private addresses (each
/// pattern must match a whole domain, port included).
pub const DEFAULT_IGNORE: [&str; 9] = [
    r"localhost(:\d+)?",
    r"127\.\d+\.\d+\.\d+(:\d+)?",
    r"10\.\d+\.\d+\.\d+(:\d+)?",
    r"192\.168\.\d+\.\d+(:\d+)?",
    r"172\.(1[6-9]|2\d|3[01])\.\d+\.\d+(:\d+)?",
    r"169\.254\.\d+\.\d+(:\d+)?",
    r"0\.0\.0\.0(:\d+)?",
    r"\[::1?\](:\d+)?",
    r"\[f[cde][0-9a-f]*:[0-9a-f:.]*\](:\d+)?",
];

/// How many of each to rank, and which domains to leave out.
#[derive(Debug, Clone)]
pub struct Ranking {
    /// Top domains to keep (0: none).
    pub domains: usize,
    /// Top URLs to keep (0: none, the table is hidden).
    pub urls: usize,
    /// Domains matching any of these (anchored) are left out of both tables.
    pub ignore: RegexSet,
}

impl Ranking {
    /// Compiles `patterns`, each anchored to match a whole domain.
    pub fn new(domains: usize, urls: usize, patterns: &[String]) -> Result<Self, regex::Error> {
        let anchored = patterns.iter().map(|p| format!("^(?:{p})$"));
        Ok(Self {
            domains,
            urls,
            ignore: RegexSet::new(anchored)?,
        })
    }
}

/// One ranked row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The domain (`host[:port]`) or the URL key.
    pub name: String,
    /// Its views.
    pub count: u64,
}

/// A ranking as served by `/nocount/top.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TopSites {
    /// The most-viewed domains, most first.
    pub domains: Vec<Row>,
    /// The most-viewed URLs, most first.
    pub urls: Vec<Row>,
    /// How many domains and URLs are ranked at most.
    pub limits: Limits,
    /// When this ranking was computed (Unix milliseconds), `None` before the first one.
    pub updated_ms: Option<u64>,
}

/// The configured table sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// `--top-domains`.
    pub domains: usize,
    /// `--top-urls`.
    pub urls: usize,
}

/// Keeps the `limit` largest rows seen.
struct TopN {
    limit: usize,
    heap: BinaryHeap<Reverse<(u64, Reverse<String>)>>,
}

impl TopN {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            heap: BinaryHeap::with_capacity(limit + 1),
        }
    }

    fn offer(&mut self, name: &str, count: u64) {
        if self.limit == 0 {
            return;
        }
        if self.heap.len() == self.limit {
            match self.heap.peek() {
                Some(Reverse((least, _))) if *least >= count => return,
                _ => {}
            }
        }
        self.heap.push(Reverse((count, Reverse(name.to_owned()))));
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }

    /// Most first; ties by name.
    fn into_rows(self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .heap
            .into_iter()
            .map(|Reverse((count, Reverse(name)))| Row { name, count })
            .collect();
        rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        rows
    }
}

/// Ranks the store's domains and URLs. Scans the whole store: background only.
pub fn rank(store: &Store, ranking: &Ranking, now_ms: u64) -> Result<TopSites, StoreError> {
    let ignored = |domain: &str| ranking.ignore.is_match(domain);
    let mut domains = TopN::new(ranking.domains);
    if ranking.domains > 0 {
        store.for_each_domain(|domain, count| {
            if !ignored(domain) {
                domains.offer(domain, count);
            }
        })?;
    }
    let mut urls = TopN::new(ranking.urls);
    if ranking.urls > 0 {
        store.for_each_total(|key, count| {
            let domain = key.split('/').next().unwrap_or(key);
            if !ignored(domain) {
                urls.offer(key, count);
            }
        })?;
    }
    Ok(TopSites {
        domains: domains.into_rows(),
        urls: urls.into_rows(),
        limits: Limits {
            domains: ranking.domains,
            urls: ranking.urls,
        },
        updated_ms: Some(now_ms),
    })
}

/// The latest ranking, shared by the refresher (writer) and the route (readers). An `RwLock`
/// around an `Arc`: a reader holds the lock only to clone the `Arc`, the writer only to swap it.
#[derive(Debug, Default)]
pub struct Latest(RwLock<Arc<TopSites>>);

impl Latest {
    /// An empty ranking with the configured limits, until the first refresh.
    pub fn new(limits: Limits) -> Self {
        Self(RwLock::new(Arc::new(TopSites {
            limits,
            ..TopSites::default()
        })))
    }

    /// The latest ranking.
    pub fn get(&self) -> Arc<TopSites> {
        match self.0.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn set(&self, top: TopSites) {
        let top = Arc::new(top);
        match self.0.write() {
            Ok(mut guard) => *guard = top,
            Err(poisoned) => *poisoned.into_inner() = top,
        }
    }
}

/// The refresher task: owned by the server, stopped by its shutdown signal. It first ranks one
/// `every` after start (so start-up never scans the store), then every `every`, each time right
/// after a checkpoint, so the counts tree it scans holds every flushed hit. With
/// `metrics: Some(n)` it also measures the store and exports the views of the top `n` URLs.
pub fn spawn_refresher(
    counter: Arc<Counter>,
    ranking: Ranking,
    latest: Arc<Latest>,
    clock: Arc<dyn Clock>,
    every: Duration,
    metrics: Option<usize>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if ranking.domains == 0 && ranking.urls == 0 && metrics.is_none() {
            return;
        }
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let (counter, ranking, now) = (Arc::clone(&counter), ranking.clone(), clock.now_ms());
            let ranked = super::blocking(move || {
                counter.checkpoint()?;
                counter.with_store(|store| {
                    if let Some(top_urls) = metrics {
                        let bytes = store.size_on_disk()?;
                        telemetry::store_size(store.len() as u64, bytes);
                        telemetry::pages(counter.pages_held());
                        let top = rank(store, &ranking, now)?;
                        let rows: Vec<(String, u64)> = top
                            .urls
                            .iter()
                            .take(top_urls)
                            .map(|r| (r.name.clone(), r.count))
                            .collect();
                        telemetry::url_views(&rows);
                        return Ok(top);
                    }
                    rank(store, &ranking, now)
                })
            });
            match ranked.await {
                Ok(top) => latest.set(top),
                Err(err) => tracing::error!(cause = %err, "ranking the top sites failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranking(domains: usize, urls: usize) -> Result<Ranking, regex::Error> {
        let defaults: Vec<String> = DEFAULT_IGNORE.iter().map(|p| (*p).to_owned()).collect();
        Ranking::new(domains, urls, &defaults)
    }

    #[test]
    fn the_default_patterns_ignore_loopback_and_private_addresses() -> Result<(), regex::Error> {
        let ranking = ranking(1, 1)?;
        for ignored in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:3000",
            "10.1.2.3",
            "192.168.0.10:80",
            "172.16.5.4",
            "172.31.0.1",
            "169.254.1.1",
            "[::1]:8080",
            "[fd00::1]",
            "[fe80::1]",
        ] {
            assert!(ranking.ignore.is_match(ignored), "{ignored}");
        }
        for kept in [
            "example.com",
            "10.example.com",
            "172.32.0.1",
            "localhost.example",
            "1.1.1.1",
        ] {
            assert!(!ranking.ignore.is_match(kept), "{kept}");
        }
        Ok(())
    }

    #[test]
    fn top_n_keeps_the_largest_most_first() {
        let mut top = TopN::new(2);
        for (name, count) in [("a", 5), ("b", 9), ("c", 1), ("d", 9), ("e", 7)] {
            top.offer(name, count);
        }
        let rows: Vec<(String, u64)> = top
            .into_rows()
            .into_iter()
            .map(|r| (r.name, r.count))
            .collect();
        assert_eq!(rows, vec![("b".into(), 9), ("d".into(), 9)]);
    }

    #[test]
    fn ranks_domains_and_urls_without_ignored_ones() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        store.put_totals(&[
            ("a.com", 5),
            ("a.com/x", 6),
            ("b.org/y", 10),
            ("localhost:8080/z", 100),
            ("c.net", 1),
        ])?;
        let top = rank(&store, &ranking(2, 2)?, 42)?;
        let rows = |rows: &[Row]| -> Vec<(String, u64)> {
            rows.iter().map(|r| (r.name.clone(), r.count)).collect()
        };
        assert_eq!(
            rows(&top.domains),
            vec![("a.com".into(), 11), ("b.org".into(), 10)]
        );
        assert_eq!(
            rows(&top.urls),
            vec![("b.org/y".into(), 10), ("a.com/x".into(), 6)]
        );
        assert_eq!(top.updated_ms, Some(42));
        let no_urls = rank(&store, &ranking(1, 0)?, 42)?;
        assert!(no_urls.urls.is_empty());
        Ok(())
    }
}
