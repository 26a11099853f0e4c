//! Moving counts in and out: the JSON Lines record format, streaming export, batched atomic
//! import (add or replace, refused twice in add mode), and migration from the original Python
//! server's SQLite file. Used by the CLI subcommands and the admin export route.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::StoreError;

mod export;
mod import;
mod seed;

pub use export::{export, record_of};
pub use import::{Importer, check_not_imported, fingerprint, import, record_import};
pub use seed::import_seed;

/// Records applied per atomic batch.
pub const BATCH: usize = 1000;
/// Longest key accepted on import (the server's default limit).
const MAX_KEY: usize = 2048;

/// One key as exported: `{"url": …, "total": …, "days": {"2026-11-24": 3, …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The key.
    pub url: String,
    /// Every hit ever counted.
    pub total: u64,
    /// Hits per UTC day, for the days still kept.
    #[serde(default)]
    pub days: BTreeMap<String, u64>,
}

/// How an import treats keys that already hold counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Add the imported counts to what is stored (merging two counters).
    Add,
    /// Replace the stored total and days of each imported key (restoring a backup).
    Replace,
}

impl Mode {
    /// The mode as `--mode` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Add => "add",
            Mode::Replace => "replace",
        }
    }

    /// The mode of a [`Mode::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [Mode::Add, Mode::Replace]
            .into_iter()
            .find(|mode| mode.name() == name)
    }
}

/// Why moving counts failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Reading or writing a file or stream failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The SQLite file could not be read.
    #[error("cannot read the SQLite database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The same input was already imported, and adding it again would double its counts.
    #[error(
        "this input was already imported{} (at {when} UTC); importing it again in add mode would double its counts: pass --force to do it anyway",
        mode.map_or(String::new(), |mode| format!(" in {} mode", mode.name()))
    )]
    AlreadyImported {
        /// When, as an ISO date.
        when: String,
        /// The mode it was imported in, if known.
        mode: Option<Mode>,
    },
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Records (lines, or rows of a SQLite file) applied, the skipped ones not included.
    pub records: usize,
    /// Distinct keys written.
    pub keys: usize,
    /// Malformed lines or rows skipped, with their line numbers (a row's SQLite rowid) and
    /// reasons.
    pub skipped: Vec<(usize, String)>,
}
