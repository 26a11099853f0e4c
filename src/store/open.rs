//! Opening the data directory: its checks, sled's settings and the wait for its lock, the
//! journal's replay, and why opening can fail.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::format::{FormatError, found_format};
use super::{DAYS_TREE, META_TREE, PAGES_TREE, Store, StoreError};

/// sled's page cache: its default (1 GiB) is far more than a counter needs, and what it holds
/// takes several times its nominal size in memory.
const SLED_CACHE_BYTES: u64 = 2 * 1024 * 1024;

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
    /// The data directory (or the database in it) is not there, and the caller must not make it.
    #[error("no data dir at {}", dir.display())]
    Missing {
        /// The data directory.
        dir: PathBuf,
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
    /// The journal of an unclean shutdown could not be replayed.
    #[error("cannot replay the journal in {}: {source}", dir.display())]
    Replay {
        /// The data directory.
        dir: PathBuf,
        /// What went wrong.
        source: StoreError,
    },
    /// The directory's data format is newer than this binary's, or could not be brought up to it.
    #[error("cannot open data directory {}: {source}", dir.display())]
    Format {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        source: FormatError,
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

impl Store {
    /// Opens the store in `dir` only if it is there: what reading one (an export) needs, where
    /// creating a directory or a database would hide a mistyped path.
    pub fn open_existing(dir: &Path) -> Result<Self, OpenError> {
        // sled keeps its data in the file `db`: a directory without it holds no store.
        if !dir.join("db").is_file() {
            return Err(OpenError::Missing {
                dir: dir.to_path_buf(),
            });
        }
        Self::open(dir)
    }

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
        // After a kill -9, sled reads back what it wrote since it last opened: say how long.
        let opening = std::time::Instant::now();
        let db = open_db(dir)?;
        let sled_secs = opening.elapsed().as_secs_f64();
        let tree = |name| {
            db.open_tree(name).map_err(|source| OpenError::Sled {
                dir: dir.to_path_buf(),
                source,
            })
        };
        let format = |source| OpenError::Format {
            dir: dir.to_path_buf(),
            source,
        };
        let meta = tree(META_TREE)?;
        let found = found_format(&db, &meta).map_err(format)?;
        let pages = tree(PAGES_TREE)?;
        let days = tree(DAYS_TREE)?;
        let mut store = Self {
            dir: dir.to_path_buf(),
            db,
            pages,
            days,
            meta,
            journal: Arc::new(Mutex::new(None)),
        };
        store.upgrade_format(&found).map_err(format)?;
        let replayed = store
            .open_journal(dir)
            .map_err(|source| OpenError::Replay {
                dir: dir.to_path_buf(),
                source,
            })?;
        if replayed > 0 {
            tracing::info!(replayed, "replayed the journal of an unclean shutdown");
        }
        tracing::info!(
            sled_secs,
            secs = opening.elapsed().as_secs_f64(),
            "opened the store"
        );
        Ok(store)
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

#[cfg(test)]
mod tests {
    use super::*;

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
