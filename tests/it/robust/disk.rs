//! What a page costs on disk: pages of short and long URLs counted through the library's
//! counter into a real sled dir, checkpointed and closed, then the data dir's bytes per page.

use std::path::Path;
use std::sync::Arc;

use hitcounter::clock::ManualClock;
use hitcounter::counting::Counter;
use hitcounter::store::Store;
use rand::RngExt;

use crate::common::BoxError;

/// Bytes of all files under `dir`.
fn dir_bytes(dir: &Path) -> Result<u64, BoxError> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// A page key of `len` bytes: a host and a random path, as a flood of distinct URLs sends.
fn random_key(len: usize, _: usize) -> String {
    const HOST: &str = "f.example/";
    let mut rng = rand::rng();
    let path: String = (0..len.saturating_sub(HOST.len()))
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    format!("{HOST}{path}")
}

/// The `i`th page key of `len` bytes that differ only in their last bytes, in order: the shape
/// that made sled's index nodes as long as the keys.
fn sequential_key(len: usize, i: usize) -> String {
    let number = format!("{i:08}");
    let host = "s.example/";
    let fill = len.saturating_sub(host.len() + number.len());
    format!("{host}{}{number}", "p".repeat(fill))
}

/// Counts one hit on each of `pages` pages of `key_len`-byte keys made by `key`, flushing every
/// 1,000 hits, then checkpoints and closes; returns the data dir's bytes (`pages` 0: an empty
/// store's).
fn data_dir_bytes(
    key: fn(usize, usize) -> String,
    key_len: usize,
    pages: usize,
) -> Result<u64, BoxError> {
    let dir = tempfile::tempdir()?;
    {
        let clock = Arc::new(ManualClock::new(20_000 * hitcounter::clock::DAY_MS));
        let counter = Counter::new(Store::open(dir.path())?, 150_000, clock);
        for i in 0..pages {
            counter.hit(&key(key_len, i))?;
            if i % 1_000 == 999 {
                counter.flush()?;
            }
        }
        counter.checkpoint()?;
    }
    dir_bytes(dir.path())
}

/// At most 3 × (key bytes + 40) on disk per page after a checkpoint, for ordered and random
/// keys of 100 B, 1 KB and 2 KB. `DISK_KEYS` (comma-separated lengths) and `DISK_PAGES` (pages
/// a run) measure others. A page's cost is the data dir's growth over an
/// empty store's (sled's log is whole 512 KiB segments, one of them at most part full), and
/// settles over many pages: 20-byte keys reach their 180 B only past ~100,000.
#[test]
fn a_page_costs_at_most_three_times_its_key_and_forty_bytes_on_disk() -> Result<(), BoxError> {
    // A CPU's worth for ~20 s: not beside the timing-sensitive tests.
    let _heavy = crate::HEAVY.blocking_lock();
    let var = |name| std::env::var(name).ok();
    let pages_set: Option<usize> = var("DISK_PAGES").and_then(|v| v.parse().ok());
    let keys: Vec<usize> = var("DISK_KEYS").map_or(vec![100, 1000, 2000], |keys| {
        keys.split(',').filter_map(|k| k.parse().ok()).collect()
    });
    let empty = data_dir_bytes(random_key, 0, 0)?;
    println!("an empty store: {empty} B");
    let mut over = Vec::new();
    for key_len in keys {
        // About 4 MB of keys a run: enough pages for sled's log to settle, in a few seconds.
        let pages = pages_set.unwrap_or((4_000_000 / key_len.max(1)).clamp(8_000, 40_000));
        for (shape, key) in [
            ("random", random_key as fn(usize, usize) -> String),
            ("ordered", sequential_key),
        ] {
            let bytes = data_dir_bytes(key, key_len, pages)?;
            let per_page = bytes.saturating_sub(empty) as f64 / pages as f64;
            let budget = 3 * (key_len + 40);
            println!(
                "{shape} {key_len} B keys, {pages} pages: {bytes} B, {per_page:.0} B a page (budget {budget})"
            );
            if per_page > budget as f64 {
                over.push(format!("{shape} {key_len} B: {per_page:.0} > {budget}"));
            }
        }
    }
    assert!(over.is_empty(), "over the budget: {over:?}");
    Ok(())
}

/// A data dir as the layout before shortened keys wrote it, straight through sled: pages under
/// their whole keys in `counts` (packed 20-byte values, or the first releases' 8-byte totals)
/// and `key \0 day` buckets in `days`. Into a dir already opened, it is one whose move was cut
/// short: such a dir has not recorded its format yet.
fn write_old_layout(dir: &Path, pages: &[OldPage<'_>]) -> Result<(), BoxError> {
    let db = sled::open(dir)?;
    db.open_tree("meta")?.remove("format")?;
    let counts = db.open_tree("counts")?;
    let days = db.open_tree("days")?;
    for (key, value, buckets) in pages {
        let bytes = match *value {
            OldValue::Packed { total, day, count } => {
                let mut bytes = total.to_be_bytes().to_vec();
                bytes.extend_from_slice(&day.to_be_bytes());
                bytes.extend_from_slice(&count.to_be_bytes());
                bytes
            }
            OldValue::Total(total) => total.to_be_bytes().to_vec(),
        };
        counts.insert(key.as_bytes(), bytes)?;
        for (day, count) in *buckets {
            let mut bucket = key.as_bytes().to_vec();
            bucket.push(0);
            bucket.extend_from_slice(&day.to_be_bytes());
            days.insert(bucket, &count.to_be_bytes())?;
        }
    }
    db.flush()?;
    Ok(())
}

/// A page of the old layout: its key, its counts value and its day buckets.
type OldPage<'a> = (&'a str, OldValue, &'a [(u32, u64)]);

/// A counts value of the old layout.
#[derive(Clone, Copy)]
enum OldValue {
    Packed { total: u64, day: u32, count: u64 },
    Total(u64),
}

/// The export of the store in `dir`: each URL's total and days.
fn exported(store: &Store) -> Result<Vec<(String, u64, usize)>, BoxError> {
    let mut out = Vec::new();
    hitcounter::transfer::export(store, &mut out, || {})?;
    let mut rows = Vec::new();
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let record: hitcounter::transfer::Record = serde_json::from_slice(line)?;
        rows.push((record.url, record.total, record.days.len()));
    }
    rows.sort();
    Ok(rows)
}

#[test]
fn an_old_layout_is_moved_at_open_with_its_counts_days_and_exports() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let long = format!("old.example/{}", "a".repeat(2000));
    let total_only = format!("old.example/{}", "b".repeat(1000));
    let late = format!("old.example/{}", "c".repeat(300));
    let short = "old.example/short";
    let packed = |total, day, count| OldValue::Packed { total, day, count };
    write_old_layout(
        dir.path(),
        &[
            (&long, packed(10, 20_002, 3), &[(20_000, 2), (20_001, 5)]),
            (&total_only, OldValue::Total(9), &[(20_000, 4), (20_002, 5)]),
            (short, packed(1, 20_002, 1), &[]),
        ],
    )?;
    {
        let store = Store::open(dir.path())?;
        assert_eq!(store.get(&long)?, Some(10));
        assert_eq!(
            store.days_of(&long, 0, u32::MAX)?,
            vec![(20_000, 2), (20_001, 5), (20_002, 3)]
        );
        assert_eq!(store.get(&total_only)?, Some(9));
        assert_eq!(store.load(&total_only)?.map(|s| s.day_count), Some(5));
        assert_eq!(
            store.days_of(&total_only, 0, u32::MAX)?,
            vec![(20_000, 4), (20_002, 5)]
        );
        assert_eq!(store.get(short)?, Some(1));
        assert_eq!(store.increment(&long, 20_003, 1)?, (11, 1));
        assert_eq!(
            exported(&store)?,
            vec![
                (long.clone(), 11, 4),
                (total_only.clone(), 9, 2),
                (short.to_owned(), 1, 1)
            ]
        );
    }
    // A move cut short: one page still under its whole key. The next open moves what is left
    // and keeps what was moved.
    write_old_layout(dir.path(), &[(&late, packed(4, 20_003, 4), &[(20_001, 1)])])?;
    let store = Store::open(dir.path())?;
    assert_eq!(store.get(&late)?, Some(4));
    assert_eq!(store.get(&long)?, Some(11));
    assert_eq!(
        store.days_of(&late, 0, u32::MAX)?,
        vec![(20_001, 1), (20_003, 4)]
    );
    assert_eq!(store.len(), 4, "no page left under its whole key");
    assert!(store.delete(&long)?);
    assert_eq!(store.get(&long)?, None);
    assert_eq!(
        store.days_of(&long, 0, u32::MAX)?,
        vec![],
        "its days went with it"
    );
    assert_eq!(exported(&store)?.len(), 3);
    Ok(())
}

#[tokio::test]
async fn long_url_pages_survive_a_restart_and_a_crash_with_their_counts() -> Result<(), BoxError> {
    let _heavy = crate::HEAVY.lock().await;
    let dir = tempfile::tempdir()?;
    // Two pages that share their first 1,999 bytes, and so a shortened key's whole prefix.
    let base = format!("f.example/{}", "x".repeat(1990));
    let pages = [format!("{base}a"), format!("{base}b"), random_key(2000, 0)];
    let args = ["--flush-interval-ms", "50", "--cookie-window-secs", "0"];
    let hit_all = |base: String, times: Vec<usize>| {
        let pages = pages.clone();
        async move {
            let client = reqwest::Client::new();
            for (page, times) in pages.iter().zip(times) {
                for _ in 0..times {
                    let url = format!("{base}/count/tag.svg?url={}", crate::common::encode(page));
                    let status = client.get(&url).send().await?.status();
                    assert!(status.is_success(), "{status}");
                }
            }
            Ok::<_, BoxError>(())
        }
    };
    let counts_of = |base: String| {
        let pages = pages.clone();
        async move {
            let client = reqwest::Client::new();
            let mut counts = Vec::new();
            for page in &pages {
                let url = format!("{base}/nocount?url={}", crate::common::encode(page));
                counts.push(
                    client
                        .get(&url)
                        .send()
                        .await?
                        .text()
                        .await?
                        .parse::<u64>()?,
                );
            }
            Ok::<_, BoxError>(counts)
        }
    };
    let server = crate::common::Process::start(dir.path(), &args)?;
    hit_all(server.base.clone(), vec![1, 2, 3]).await?;
    server.terminate()?;
    let mut server = server;
    server
        .wait_async(std::time::Duration::from_secs(30))
        .await?;
    let mut server = crate::common::Process::start(dir.path(), &args)?;
    assert_eq!(
        counts_of(server.base.clone()).await?,
        vec![1, 2, 3],
        "after a stop"
    );
    hit_all(server.base.clone(), vec![2, 0, 1]).await?;
    // Past a flush, so the journal holds them, then a crash.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.kill_9()?;
    server
        .wait_async(std::time::Duration::from_secs(10))
        .await?;
    let server = crate::common::Process::start(dir.path(), &args)?;
    assert_eq!(
        counts_of(server.base.clone()).await?,
        vec![3, 2, 4],
        "after a kill -9"
    );
    Ok(())
}
