//! The data dir's format version: recorded in the meta tree, brought up to date in place by a
//! newer binary, refused by an older one with both versions named.
//!
//! Formats: 1, pages under their whole keys (`counts`, `days`); 2, pages under 16-byte ids
//! (`pages`, `page-days`). Neither recorded its number: a dir without one is format 1 if it has
//! a `counts` tree, else 2. Every format keeps its number
//! under [`FORMAT_KEY`] in the meta tree, so that any binary can read it before anything else.

use std::time::Instant;

use super::{Store, StoreError};

/// The format this binary reads and writes.
pub const FORMAT: u32 = 2;
/// Key in the meta tree of the data dir's format (a big-endian u32).
const FORMAT_KEY: &str = "format";
/// Key in the meta tree of the version of hitcounter that last recorded the format.
const WRITTEN_BY_KEY: &str = "format-written-by";
/// The tree only format 1 has.
const FORMAT_1_TREE: &str = "counts";

/// A data dir's format as recorded, or as its trees show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The format number.
    pub format: u32,
    /// The hitcounter version that recorded it, if one did.
    pub written_by: Option<String>,
    /// Whether the dir records it (formats 1 and 2 did not).
    pub recorded: bool,
}

/// Why a data dir's format stopped it from opening.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// A newer hitcounter wrote the dir; this one cannot read it.
    #[error(
        "it holds data format {} (written by hitcounter {}), and this hitcounter {} reads format {FORMAT} at most: run that version or a newer one, or restore a backup made with this one",
        found.format,
        found.written_by.as_deref().unwrap_or("of an unknown version"),
        env!("CARGO_PKG_VERSION")
    )]
    Newer {
        /// What the dir holds.
        found: Found,
    },
    /// Bringing an older dir up to date failed; what was not moved yet is where it was.
    #[error("cannot upgrade it from data format {from} to {FORMAT}: {source}")]
    Upgrade {
        /// The dir's format before.
        from: u32,
        /// What went wrong.
        source: StoreError,
    },
    /// Reading or recording the format failed.
    #[error("cannot read or record its data format: {0}")]
    Store(#[from] StoreError),
}

impl From<sled::Error> for FormatError {
    fn from(err: sled::Error) -> Self {
        Self::Store(err.into())
    }
}

/// The format of the dir whose database is `db`, from its meta tree or its trees; a newer
/// format than [`FORMAT`] is refused here, before anything in the dir is opened or written.
pub(super) fn found_format(db: &sled::Db, meta: &sled::Tree) -> Result<Found, FormatError> {
    let written_by = meta
        .get(WRITTEN_BY_KEY)?
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    let recorded = meta.get(FORMAT_KEY)?;
    let format = match &recorded {
        Some(value) => {
            let bytes: [u8; 4] = value
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::BadValue {
                    key: FORMAT_KEY.to_owned(),
                    len: value.len(),
                })?;
            u32::from_be_bytes(bytes)
        }
        None if db
            .tree_names()
            .iter()
            .any(|n| n == FORMAT_1_TREE.as_bytes()) =>
        {
            1
        }
        None => FORMAT,
    };
    let found = Found {
        format,
        written_by,
        recorded: recorded.is_some(),
    };
    if found.format > FORMAT {
        return Err(FormatError::Newer { found });
    }
    Ok(found)
}

impl Store {
    /// Brings a dir of an older format (`found`) up to [`FORMAT`], each step crash-safe (it goes
    /// on at the next open, and the format is recorded only once every step is done), and
    /// records the format where it is not yet.
    pub(super) fn upgrade_format(&self, found: &Found) -> Result<(), FormatError> {
        if found.format < FORMAT {
            tracing::info!(
                from = found.format,
                to = FORMAT,
                "upgrading the data dir; a crash before it is done leaves nothing lost, and the next start goes on"
            );
            let started = Instant::now();
            let upgrade = |source| FormatError::Upgrade {
                from: found.format,
                source,
            };
            let moved = self.move_old_layout().map_err(upgrade)?;
            self.record_format()?;
            tracing::info!(
                from = found.format,
                to = FORMAT,
                moved,
                secs = started.elapsed().as_secs_f64(),
                "upgraded the data dir"
            );
        } else if !found.recorded {
            self.record_format()?;
        }
        Ok(())
    }

    /// Records [`FORMAT`] and this binary's version, durably.
    fn record_format(&self) -> Result<(), FormatError> {
        self.meta
            .insert(WRITTEN_BY_KEY, env!("CARGO_PKG_VERSION"))?;
        self.meta.insert(FORMAT_KEY, &FORMAT.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }
}
