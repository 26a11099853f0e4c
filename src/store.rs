//! Durable counts in sled: open, read, write and flush. Each page is stored under a short fixed
//! id ([`encoding::page_id`]) whose value packs its total, its latest day's count (one read
//! answers a badge, one write flushes a hit) and then its URL, written once; the days before the
//! latest are buckets in the days tree, keyed by the page id and the day. Synchronous; knows
//! nothing of HTTP.

use std::sync::{Arc, Mutex};

use sled::transaction::TransactionError;

mod batch;
mod bulk;
mod encoding;
mod journal;
mod layout;
mod open;

pub use batch::Batch;
pub use bulk::Merge;
use encoding::{PageId, day_from, day_key, decode, page_id, page_value, unpack_page};
pub use open::OpenError;

/// Name of the tree that maps page ids to pages: packed counts (the total as a `u64`, its
/// latest day as a `u32` and that day's count as a `u64`, big-endian, 20 bytes), then the URL.
const PAGES_TREE: &str = "pages";
/// Name of the tree of day buckets: `page id, day` → count of hits on that UTC day, for the days
/// of a page before the latest one (which its value holds).
const DAYS_TREE: &str = "page-days";
/// Name of the tree for the server's own small settings (the cookie secret).
const META_TREE: &str = "meta";
/// Key in the meta tree of the secret that signs anti-refresh cookies.
const COOKIE_SECRET_KEY: &str = "cookie-secret";

/// A failure of the store after it was opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error (I/O, corruption).
    #[error("store error: {0}")]
    Sled(#[from] sled::Error),
    /// Reading, writing or syncing the journal file failed.
    #[error("journal error: {0}")]
    Journal(#[from] std::io::Error),
    /// The store was closed after a failed write and is not open again yet.
    #[error("the store is closed after a failed write, and not open again yet")]
    Closed,
    /// Opening the store again after a failed write failed.
    #[error("cannot open the store again: {0}")]
    Reopen(String),
    /// Two pages' ids are the same (never seen: [`encoding::ID_LEN`]); the page is refused
    /// rather than counted with the other.
    #[error("page {key:?} has the id of page {other:?}")]
    Collision {
        /// The page asked for.
        key: String,
        /// The page stored under its id.
        other: String,
    },
    /// A stored value has the wrong length: the data dir was written by something else.
    #[error("stored value for {key:?} is {len} bytes, too short")]
    BadValue {
        /// The key whose value is malformed.
        key: String,
        /// Its length in bytes.
        len: usize,
    },
}

/// The durable store: one sled database with a tree of pages and one of their days.
#[derive(Clone)]
pub struct Store {
    /// The data directory.
    dir: std::path::PathBuf,
    db: sled::Db,
    pages: sled::Tree,
    days: sled::Tree,
    /// The server's own settings: the cookie secret, the journal's generation.
    meta: sled::Tree,
    /// Flushes' latest counts not yet checkpointed into the pages tree ([`journal`]); `None` only
    /// while opening. A mutex, shared by clones: appends and checkpoints must not interleave,
    /// and only flushes (which never overlap) take it.
    journal: Arc<Mutex<Option<journal::Journal>>>,
}

/// What the store holds for one key: its total, and the latest day it was counted on with that
/// day's count (zero day and count for a key set by hand before any hit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stored {
    /// Every hit ever counted.
    pub total: u64,
    /// The latest day with hits, in days since the Unix epoch.
    pub day: u32,
    /// Hits on `day`.
    pub day_count: u64,
}

impl Stored {
    /// A value of `total` hits, `day_count` of them on `day`.
    pub const fn new(total: u64, day: u32, day_count: u64) -> Self {
        Self {
            total,
            day,
            day_count,
        }
    }

    /// The count on `day`, as far as this value knows (days before its own are elsewhere).
    pub fn count_on(&self, day: u32) -> u64 {
        if self.day == day { self.day_count } else { 0 }
    }
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
    /// The stored total for `key`, or `None` if the key was never counted.
    pub fn get(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.load(key)?.map(|stored| stored.total))
    }

    /// What the store holds for `key`, or `None` if it was never counted: one read.
    pub fn load(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        self.read(key, &page_id(key))
    }

    /// The page stored under `id`, which must be `key`'s.
    fn read(&self, key: &str, id: &PageId) -> Result<Option<Stored>, StoreError> {
        match self.pages.get(id)? {
            Some(bytes) => stored_of(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Hits of `key` on `day`, or `None` if there were none recorded.
    pub fn get_day(&self, key: &str, day: u32) -> Result<Option<u64>, StoreError> {
        Ok(self
            .days_of(key, day, day)?
            .first()
            .map(|&(_, count)| count))
    }

    /// The recorded days of `key` from `first` to `last` (inclusive), oldest first; days without
    /// hits are absent.
    pub fn days_of(&self, key: &str, first: u32, last: u32) -> Result<Vec<(u32, u64)>, StoreError> {
        let id = page_id(key);
        let mut days = self
            .days
            .range(day_key(&id, first)..=day_key(&id, last))
            .map(|item| {
                let (k, v) = item?;
                let day = day_from(&k).unwrap_or(0);
                Ok((day, decode(key, &v)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if let Some(latest) = self.read(key, &id)?
            && latest.day_count > 0
            && (first..=last).contains(&latest.day)
        {
            // The latest day is the value's; a bucket of that day can only hold less.
            match days.binary_search_by_key(&latest.day, |&(day, _)| day) {
                Ok(i) => days[i].1 = days[i].1.max(latest.day_count),
                Err(i) => days.insert(i, (latest.day, latest.day_count)),
            }
        }
        Ok(days)
    }

    /// Writes counts into the trees: the final counts of days that ended (`retired`, into the
    /// days tree) first, then each key's latest counts (checkpoints, bulk tools, tests), each in
    /// the order of its tree (see [`in_id_order`]). Key by key rather than in one transaction or
    /// batch: both take sled's global write lock, and a write of thousands of keys held it long
    /// enough to stall every request's read; batches of 256 were slower too (10k keys: 1.5 µs a
    /// key one by one, 2.4 µs in batches). Each value is absolute, so a write cut short by a
    /// crash leaves every key either at its old or its new count; and a day is retired before
    /// the value that moves past it is written.
    pub fn put(
        &self,
        latest: &[(&str, Stored)],
        retired: &[DayCount<'_>],
    ) -> Result<(), StoreError> {
        let mut buckets: Vec<_> = retired
            .iter()
            .map(|bucket| (day_key(&page_id(bucket.key), bucket.day), bucket.count))
            .collect();
        buckets.sort_unstable();
        for (key, count) in buckets {
            self.days.insert(key, &count.to_be_bytes())?;
        }
        self.put_counts(in_id_order(latest.iter().copied()))
    }

    /// Writes each page's latest counts into the pages tree, in the order given.
    fn put_counts<'a>(
        &self,
        latest: impl IntoIterator<Item = (PageId, &'a str, Stored)>,
    ) -> Result<(), StoreError> {
        for (id, key, stored) in latest {
            self.pages.insert(id, page_value(key, &stored))?;
        }
        Ok(())
    }

    /// Writes bare totals (no days), for tests of what reads totals.
    #[cfg(test)]
    pub(crate) fn put_totals(&self, totals: &[(&str, u64)]) -> Result<(), StoreError> {
        let latest: Vec<(&str, Stored)> = totals
            .iter()
            .map(|&(key, total)| {
                (
                    key,
                    Stored {
                        total,
                        ..Stored::default()
                    },
                )
            })
            .collect();
        self.put(&latest, &[])
    }

    /// Adds `by` to the total of `key` and to its count on `day`; returns both new values
    /// (total, day). For a key the front cache does not hold: the caller holds the key's cache
    /// shard lock, so no other writer of this key runs meanwhile.
    pub fn increment(&self, key: &str, day: u32, by: u64) -> Result<(u64, u64), StoreError> {
        self.increment_making(key, day, by, || Ok(()))
    }

    /// As [`Store::increment`], but a key not stored yet is made only if `make` says so (its
    /// error is returned, and nothing written, if not).
    pub fn increment_making<E: From<StoreError>>(
        &self,
        key: &str,
        day: u32,
        by: u64,
        make: impl FnOnce() -> Result<(), E>,
    ) -> Result<(u64, u64), E> {
        let id = page_id(key);
        let mut stored = match self.read(key, &id)? {
            Some(stored) => stored,
            None => {
                make()?;
                Stored::new(0, day, 0)
            }
        };
        if stored.day < day {
            self.retire(&id, &stored)?;
            stored.day = day;
            stored.day_count = 0;
        }
        stored.total = stored.total.saturating_add(by);
        stored.day_count = stored.day_count.saturating_add(by);
        self.pages
            .insert(id, page_value(key, &stored))
            .map_err(StoreError::from)?;
        Ok((stored.total, stored.day_count))
    }

    /// Sets the total of `key`, keeping its days; for a key the front cache does not hold.
    /// Returns whether the key is new.
    pub fn set_total(&self, key: &str, total: u64) -> Result<bool, StoreError> {
        let id = page_id(key);
        let stored = self.read(key, &id)?;
        let days = stored.unwrap_or_default();
        self.pages
            .insert(id, page_value(key, &Stored { total, ..days }))?;
        Ok(stored.is_none())
    }

    /// Moves the latest day of `stored` into the days tree, before its value moves past it.
    fn retire(&self, id: &PageId, stored: &Stored) -> Result<(), StoreError> {
        if stored.day_count > 0 {
            self.days
                .insert(day_key(id, stored.day), &stored.day_count.to_be_bytes())?;
        }
        Ok(())
    }

    /// The data directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// Whether the store answers a read (for `/healthz`).
    pub fn is_healthy(&self) -> bool {
        self.pages.get([0; encoding::ID_LEN]).is_ok()
    }

    /// Makes every write so far durable on disk (fsync). Blocking.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// How many keys hold a count.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether no key holds a count.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// The secret that signs anti-refresh cookies: made once with `rand`, then kept, so cookies
    /// stay valid across restarts.
    pub fn cookie_secret(&self) -> Result<[u8; 32], StoreError> {
        let meta = &self.meta;
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

/// The counts in the page value `bytes`, which must be `key`'s.
fn stored_of(key: &str, bytes: &[u8]) -> Result<Stored, StoreError> {
    let (stored, stored_key) = unpack_page(bytes).ok_or_else(|| StoreError::BadValue {
        key: key.to_owned(),
        len: bytes.len(),
    })?;
    if stored_key != key.as_bytes() {
        return Err(StoreError::Collision {
            key: key.to_owned(),
            other: String::from_utf8_lossy(stored_key).into_owned(),
        });
    }
    Ok(stored)
}

fn from_transaction(err: TransactionError<StoreError>) -> StoreError {
    match err {
        TransactionError::Abort(err) => err,
        TransactionError::Storage(err) => StoreError::Sled(err),
    }
}

/// `latest` with each key's page id, in the order of the pages tree: written in that order,
/// each of sled's nodes is read from disk once rather than once per entry (sled's cache is
/// small, and ids are spread by hashes). Entries of one key stay in the order given.
fn in_id_order<'a>(
    latest: impl IntoIterator<Item = (&'a str, Stored)>,
) -> Vec<(PageId, &'a str, Stored)> {
    let mut latest: Vec<_> = latest
        .into_iter()
        .map(|(key, stored)| (page_id(key), key, stored))
        .collect();
    latest.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    latest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip_and_survive_reopening() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        {
            let store = Store::open(dir.path())?;
            assert_eq!(store.get("example.com")?, None);
            assert_eq!(store.load("example.com")?, None);
            let stored = |total, day, day_count| Stored {
                total,
                day,
                day_count,
            };
            store.put(
                &[
                    ("example.com", stored(41, 10, 1)),
                    ("example.com/a", stored(7, 3, 7)),
                ],
                &[DayCount {
                    key: "example.com",
                    day: 9,
                    count: 40,
                }],
            )?;
            assert_eq!(store.increment("example.com", 10, 1)?, (42, 2));
            assert_eq!(store.increment("new.example", 10, 3)?, (3, 3));
            store.flush()?;
        }
        let store = Store::open(dir.path())?;
        assert_eq!(store.get("example.com")?, Some(42));
        assert_eq!(store.get("example.com/a")?, Some(7));
        assert_eq!(store.get_day("example.com", 10)?, Some(2));
        assert_eq!(store.get_day("example.com", 9)?, Some(40));
        assert_eq!(store.get_day("example.com/a", 10)?, None);
        assert_eq!(store.days_of("example.com", 0, 20)?, vec![(9, 40), (10, 2)]);
        assert_eq!(store.len(), 3, "one entry per key");
        Ok(())
    }

    #[test]
    fn a_later_day_moves_the_latest_one_into_the_days_tree()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        assert_eq!(store.increment("a", 5, 2)?, (2, 2));
        assert_eq!(store.increment("a", 7, 1)?, (3, 1));
        assert_eq!(store.days_of("a", 0, 10)?, vec![(5, 2), (7, 1)]);
        assert_eq!(
            store.load("a")?,
            Some(Stored {
                total: 3,
                day: 7,
                day_count: 1
            })
        );
        store.set_total("a", 100)?;
        assert_eq!(
            store.days_of("a", 0, 10)?,
            vec![(5, 2), (7, 1)],
            "days kept"
        );
        assert_eq!(store.get("a")?, Some(100));
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
