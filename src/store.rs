//! Durable counts in sled: open, read, write and flush. The on-disk encoding of a count (eight
//! big-endian bytes) lives here and nowhere else. Synchronous; knows nothing of HTTP.

use std::path::{Path, PathBuf};

/// Name of the tree that maps key bytes to a big-endian `u64` total.
const COUNTS_TREE: &str = "counts";
/// Name of the tree for the server's own small settings (the cookie secret).
const META_TREE: &str = "meta";
/// Key in the meta tree of the secret that signs anti-refresh cookies.
const COOKIE_SECRET_KEY: &str = "cookie-secret";
/// sled's page cache; its default (1 GiB) is far more than a counter needs.
const SLED_CACHE_BYTES: u64 = 16 * 1024 * 1024;

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
        "data directory {} is in use by another hitcounter process: stop the server, or use another directory",
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
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(SLED_CACHE_BYTES)
            // The counter's flusher decides when to flush; sled's own timer would be a second one.
            .flush_every_ms(None)
            .open()
            .map_err(|source| match source {
                sled::Error::Io(ref io) if io.to_string().contains("could not acquire lock") => {
                    OpenError::Locked {
                        dir: dir.to_path_buf(),
                    }
                }
                source => OpenError::Sled {
                    dir: dir.to_path_buf(),
                    source,
                },
            })?;
        let counts = db
            .open_tree(COUNTS_TREE)
            .map_err(|source| OpenError::Sled {
                dir: dir.to_path_buf(),
                source,
            })?;
        Ok(Self { db, counts })
    }

    /// The stored total for `key`, or `None` if the key was never counted.
    pub fn get(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.counts.get(key)? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Writes absolute totals for many keys in one atomic batch (not yet durable: see `flush`).
    pub fn put_totals<'a>(
        &self,
        totals: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (key, total) in totals {
            batch.insert(key.as_bytes(), &total.to_be_bytes());
        }
        self.counts.apply_batch(batch)?;
        Ok(())
    }

    /// Adds `by` to the stored total of `key` atomically and returns the new total.
    pub fn increment(&self, key: &str, by: u64) -> Result<u64, StoreError> {
        let mut bad_len = None;
        let new = self.counts.update_and_fetch(key, |old| {
            let old = match old {
                None => 0,
                Some(bytes) => match <[u8; 8]>::try_from(bytes) {
                    Ok(array) => u64::from_be_bytes(array),
                    Err(_) => {
                        bad_len = Some(bytes.len());
                        return Some(bytes.to_vec());
                    }
                },
            };
            Some(old.saturating_add(by).to_be_bytes().to_vec())
        })?;
        if let Some(len) = bad_len {
            return Err(StoreError::BadValue {
                key: key.to_owned(),
                len,
            });
        }
        match new {
            Some(bytes) => decode(key, &bytes),
            None => Ok(0),
        }
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
            store.put_totals([("example.com", 41), ("example.com/a", 7)])?;
            assert_eq!(store.increment("example.com", 1)?, 42);
            assert_eq!(store.increment("new.example", 3)?, 3);
            store.flush()?;
        }
        let store = Store::open(dir.path())?;
        assert_eq!(store.get("example.com")?, Some(42));
        assert_eq!(store.get("example.com/a")?, Some(7));
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
