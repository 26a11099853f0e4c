//! Durable counts in sled: open, read, write and flush. The on-disk encodings (a count is eight
//! big-endian bytes; a day bucket's key is the page key, a NUL, and the day as four big-endian
//! bytes) live here and nowhere else. Synchronous; knows nothing of HTTP.

use std::path::{Path, PathBuf};

use sled::transaction::TransactionError;

mod bulk;
pub use bulk::Merge;

/// Name of the tree that maps key bytes to a big-endian `u64` total.
const COUNTS_TREE: &str = "counts";
/// Name of the tree of day buckets: `key \0 day` → count of hits on that UTC day. Keys never
/// hold a NUL (control characters are refused), so `key \0` prefixes exactly one key's days.
const DAYS_TREE: &str = "days";
/// Name of the tree for the server's own small settings (the cookie secret).
const META_TREE: &str = "meta";
/// Key in the meta tree of the secret that signs anti-refresh cookies.
const COOKIE_SECRET_KEY: &str = "cookie-secret";
/// sled's page cache; its default (1 GiB) is far more than a counter needs. benches/scale.sh
/// (1M pages): peak RSS 154 MiB with 16 MiB, 100 MiB with 4 MiB, at about the same speed.
const SLED_CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// A failure of the store after it was opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error (I/O, corruption).
    #[error("store error: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value is not eight bytes: the data dir was written by something else.
    #[error("stored count for {key:?} is {len} bytes, not 8")]
    BadValue {
        /// The key whose value is malformed.
        key: String,
        /// Its length in bytes.
        len: usize,
    },
}

/// Why the data directory could not be opened. Each message is one sentence naming the directory.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory is missing and cannot be created, or cannot be written.
    #[error("cannot use data directory {}: {source}", dir.display())]
    Unusable {
        /// The data directory.
        dir: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Another process (a running server, most likely) holds the directory's lock.
    #[error(
        "data directory {} is in use by another hitcounter process: stop the server, or use the admin API",
        dir.display()
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
    },
    /// sled could not open the database inside the directory.
    #[error("cannot open the database in {}: {source}", dir.display())]
    Sled {
        /// The data directory.
        dir: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
}

/// The durable store: one sled database with a tree of counts.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    counts: sled::Tree,
    days: sled::Tree,
}

/// One day bucket to write: the hits of `key` on UTC day `day` (days since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount<'a> {
    /// The page key.
    pub key: &'a str,
    /// Days since the Unix epoch.
    pub day: u32,
    /// Hits on that day (an absolute value, not a delta).
    pub count: u64,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        let unusable = |source| OpenError::Unusable {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(unusable)?;
        // sled would report a read-only directory only as an obscure error, so probe first.
        let probe = dir.join(".hitcounter-write-test");
        std::fs::write(&probe, b"").map_err(unusable)?;
        std::fs::remove_file(&probe).map_err(unusable)?;
        let db = open_db(dir)?;
        let tree = |name| {
            db.open_tree(name).map_err(|source| OpenError::Sled {
                dir: dir.to_path_buf(),
                source,
            })
        };
        let counts = tree(COUNTS_TREE)?;
        let days = tree(DAYS_TREE)?;
        Ok(Self { db, counts, days })
    }

    /// The stored total for `key`, or `None` if the key was never counted.
    pub fn get(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.counts.get(key)? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Hits of `key` on `day`, or `None` if there were none recorded.
    pub fn get_day(&self, key: &str, day: u32) -> Result<Option<u64>, StoreError> {
        match self.days.get(day_key(key, day))? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The recorded days of `key` from `first` to `last` (inclusive), oldest first; days without
    /// hits are absent.
    pub fn days_of(&self, key: &str, first: u32, last: u32) -> Result<Vec<(u32, u64)>, StoreError> {
        self.days
            .range(day_key(key, first)..=day_key(key, last))
            .map(|item| {
                let (k, v) = item?;
                let day = day_from(&k).unwrap_or(0);
                Ok((day, decode(key, &v)?))
            })
            .collect()
    }

    /// Writes absolute totals and day counts (durable after `flush`). Key by key rather than in
    /// one transaction or batch: both take sled's global write lock, and a flush of thousands of
    /// keys held it long enough to stall every request's read. Each value is an absolute total,
    /// so a flush cut short by a crash leaves every key either at its old or its new count.
    pub fn put(&self, totals: &[(&str, u64)], days: &[DayCount<'_>]) -> Result<(), StoreError> {
        for bucket in days {
            self.days
                .insert(day_key(bucket.key, bucket.day), &bucket.count.to_be_bytes())?;
        }
        for (key, total) in totals {
            self.counts.insert(key.as_bytes(), &total.to_be_bytes())?;
        }
        Ok(())
    }

    /// Adds `by` to the total of `key` and to its count on `day`; returns both new values
    /// (total, day). Each is one atomic read-modify-write (no global lock); the caller holds the
    /// key's cache shard lock, so no other writer of this key runs meanwhile.
    pub fn increment(&self, key: &str, day: u32, by: u64) -> Result<(u64, u64), StoreError> {
        let today = add(&self.days, &day_key(key, day), by)?;
        let total = add(&self.counts, key.as_bytes(), by)?;
        Ok((total, today))
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// Whether the store answers a read (for `/healthz`).
    pub fn is_healthy(&self) -> bool {
        self.counts.get(b"\0healthz").is_ok()
    }

    /// Makes every write so far durable on disk (fsync). Blocking.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// How many keys hold a count.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether no key holds a count.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The secret that signs anti-refresh cookies: made once with `rand`, then kept, so cookies
    /// stay valid across restarts.
    pub fn cookie_secret(&self) -> Result<[u8; 32], StoreError> {
        let meta = self.db.open_tree(META_TREE)?;
        let fresh: [u8; 32] = rand::random();
        // compare_and_swap keeps whichever secret was stored first.
        let stored = match meta.compare_and_swap(COOKIE_SECRET_KEY, None::<&[u8]>, Some(&fresh))? {
            Ok(()) => {
                self.db.flush()?;
                return Ok(fresh);
            }
            Err(current) => current.current,
        };
        match stored.as_deref().map(<[u8; 32]>::try_from) {
            Some(Ok(secret)) => Ok(secret),
            _ => Err(StoreError::BadValue {
                key: COOKIE_SECRET_KEY.to_owned(),
                len: stored.map_or(0, |s| s.len()),
            }),
        }
    }
}

/// How long `open` waits for a lock that a store just closed in this process may still hold:
/// sled's I/O threads let go of a closed database a moment after it is dropped.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(1000);

/// Opens sled in `dir`, waiting up to [`LOCK_WAIT`] for its lock.
fn open_db(dir: &Path) -> Result<sled::Db, OpenError> {
    let started = std::time::Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(dir)
            .cache_capacity(SLED_CACHE_BYTES)
            // Counts are small and rewritten in place: favour space over write throughput.
            .mode(sled::Mode::LowSpace)
            // The counter's flusher decides when to flush; sled's own timer would be a second one.
            .flush_every_ms(None)
            .open();
        match opened {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(ref io)) if io.to_string().contains("could not acquire lock") => {
                if started.elapsed() >= LOCK_WAIT {
                    return Err(OpenError::Locked {
                        dir: dir.to_path_buf(),
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(source) => {
                return Err(OpenError::Sled {
                    dir: dir.to_path_buf(),
                    source,
                });
            }
        }
    }
}

/// Adds `by` to the count at `key` in `tree` atomically; returns the new count.
fn add(tree: &sled::Tree, key: &[u8], by: u64) -> Result<u64, StoreError> {
    let mut bad_len = None;
    let new = tree.update_and_fetch(key, |old| match old {
        None => Some(by.to_be_bytes().to_vec()),
        Some(bytes) => match <[u8; 8]>::try_from(bytes) {
            Ok(array) => Some(
                u64::from_be_bytes(array)
                    .saturating_add(by)
                    .to_be_bytes()
                    .to_vec(),
            ),
            Err(_) => {
                bad_len = Some(bytes.len());
                Some(bytes.to_vec())
            }
        },
    })?;
    if let Some(len) = bad_len {
        return Err(StoreError::BadValue {
            key: String::from_utf8_lossy(key).into_owned(),
            len,
        });
    }
    let key = String::from_utf8_lossy(key);
    new.map_or(Ok(by), |bytes| decode(&key, &bytes))
}

/// The days-tree key of `key` on `day`.
fn day_key(key: &str, day: u32) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(key.len() + 5);
    bytes.extend_from_slice(key.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&day.to_be_bytes());
    bytes
}

/// The day of a days-tree key.
fn day_from(day_key: &[u8]) -> Option<u32> {
    let tail = day_key.len().checked_sub(4)?;
    <[u8; 4]>::try_from(&day_key[tail..])
        .ok()
        .map(u32::from_be_bytes)
}

fn from_transaction(err: TransactionError<StoreError>) -> StoreError {
    match err {
        TransactionError::Abort(err) => err,
        TransactionError::Storage(err) => StoreError::Sled(err),
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::BadValue {
            key: key.to_owned(),
            len: bytes.len(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_round_trip_and_survive_reopening() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        {
            let store = Store::open(dir.path())?;
            assert_eq!(store.get("example.com")?, None);
            let day = |key, day, count| DayCount { key, day, count };
            store.put(
                &[("example.com", 41), ("example.com/a", 7)],
                &[day("example.com", 9, 40), day("example.com", 10, 1)],
            )?;
            assert_eq!(store.increment("example.com", 10, 1)?, (42, 2));
            assert_eq!(store.increment("new.example", 10, 3)?, (3, 3));
            store.flush()?;
        }
        let store = Store::open(dir.path())?;
        assert_eq!(store.get("example.com")?, Some(42));
        assert_eq!(store.get("example.com/a")?, Some(7));
        assert_eq!(store.get_day("example.com", 10)?, Some(2));
        assert_eq!(store.get_day("example.com/a", 10)?, None);
        assert_eq!(store.len(), 3);
        Ok(())
    }

    #[test]
    fn the_cookie_secret_is_kept() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let first = Store::open(dir.path())?.cookie_secret()?;
        let second = Store::open(dir.path())?.cookie_secret()?;
        assert_eq!(first, second);
        Ok(())
    }

    #[test]
    fn a_second_open_of_one_directory_is_refused_as_locked()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let _held = Store::open(dir.path())?;
        match Store::open(dir.path()) {
            Err(OpenError::Locked { .. }) => Ok(()),
            Err(other) => Err(format!("expected Locked, got {other}").into()),
            Ok(_) => Err("second open succeeded".into()),
        }
    }
}
