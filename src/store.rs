//! Durable counts in sled: open, read, write and flush. Each page is stored under a short fixed
//! id ([`encoding::page_id`]) whose value packs its total, its latest day's count (one read
//! answers a badge, one write flushes a hit) and then its URL, written once; the days before the
//! latest are buckets in the days tree, keyed by the page id and the day. Synchronous; knows
//! nothing of HTTP.
//!
//! Here: the trees and the store's own settings. `read` and `write` hold one page's reads and
//! writes, `journal` the flushes between checkpoints, `bulk` imports, deletes and scans,
//! `open` opening a data dir, `format` its format version and upgrades (`layout` the move from
//! format 1), `error` the errors.

use std::sync::{Arc, Mutex};

mod batch;
mod bulk;
mod encoding;
mod error;
mod format;
mod journal;
mod layout;
mod open;
mod read;
mod write;

pub use batch::Batch;
pub use bulk::Merge;
pub use error::StoreError;
use error::from_transaction;
pub use format::{FORMAT, FormatError};
pub use open::OpenError;
use read::stored_of;
use write::in_id_order;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_secret_is_kept() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let first = Store::open(dir.path())?.cookie_secret()?;
        let second = Store::open(dir.path())?.cookie_secret()?;
        assert_eq!(first, second);
        Ok(())
    }
}
