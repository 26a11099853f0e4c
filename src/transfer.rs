//! Moving counts in and out: the JSON Lines record format, streaming export, batched atomic
//! import (add or replace, refused twice in add mode), and migration from the original Python
//! server's SQLite file. Used by the CLI subcommands and the admin export route.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::io::{BufRead, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::{date, day_from_date};
use crate::request::key;
use crate::store::{Merge, Store, StoreError};

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

/// The export line of `key`.
pub fn record_of(store: &Store, key: &str, total: u64) -> Result<Record, StoreError> {
    let days = store
        .all_days_of(key)?
        .into_iter()
        .map(|(day, count)| (date(day), count))
        .collect();
    Ok(Record {
        url: key.to_owned(),
        total,
        days,
    })
}

/// Writes every key as a JSON line, in the store's order (a domain's keys together), without loading the store into memory;
/// `progress` is called after each key. Returns how many keys were written.
pub fn export(
    store: &Store,
    out: &mut impl Write,
    mut progress: impl FnMut(),
) -> Result<usize, TransferError> {
    let mut written = 0;
    let mut failed = None;
    store.for_each_total(|key, total| {
        if failed.is_some() {
            return;
        }
        let line = record_of(store, key, total)
            .map_err(TransferError::from)
            .and_then(|record| {
                serde_json::to_vec(&record).map_err(|e| std::io::Error::other(e).into())
            })
            .and_then(|mut line| {
                line.push(b'\n');
                out.write_all(&line).map_err(TransferError::from)
            });
        match line {
            Ok(()) => {
                written += 1;
                progress();
            }
            Err(err) => failed = Some(err),
        }
    })?;
    match failed {
        Some(err) => Err(err),
        None => Ok(written),
    }
}

/// A SHA-256 of an input, so that re-importing it in add mode can be refused.
pub fn fingerprint(input: &mut impl Read) -> Result<String, std::io::Error> {
    let mut hasher = Sha256::new();
    std::io::copy(input, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Refuses an add-mode import of an input already imported in either mode, unless forced (after
/// a replace its counts are stored already, so adding them would double them); importing again
/// in replace mode sets the same counts, so it is always allowed.
pub fn check_not_imported(
    store: &Store,
    fingerprint: &str,
    mode: Mode,
    force: bool,
) -> Result<(), TransferError> {
    if mode == Mode::Add && !force {
        if let Some((ms, previous)) = store.imported(fingerprint)? {
            return Err(TransferError::AlreadyImported {
                when: date(crate::clock::day_of(ms)),
                mode: previous.as_deref().and_then(Mode::from_name),
            });
        }
    }
    Ok(())
}

/// Records that the input with `fingerprint` was imported in `mode` at `now_ms`.
pub fn record_import(
    store: &Store,
    fingerprint: &str,
    mode: Mode,
    now_ms: u64,
) -> Result<(), TransferError> {
    Ok(store.record_import(fingerprint, now_ms, mode.name())?)
}

/// Applies records to the store in atomic batches of [`BATCH`]. Keys are normalised with the
/// server's rules; in replace mode the first record of a key replaces what is stored and later
/// records of the same key (spellings that fold into it) add to it.
pub struct Importer<'a> {
    store: &'a Store,
    mode: Mode,
    batch: Vec<Merge>,
    /// Hashes of the keys seen so far (eight bytes a key, so a large import stays small).
    seen: HashSet<u64>,
    hasher: RandomState,
    summary: ImportSummary,
}

impl<'a> Importer<'a> {
    /// An importer into `store`.
    pub fn new(store: &'a Store, mode: Mode) -> Self {
        Self {
            store,
            mode,
            batch: Vec::with_capacity(BATCH),
            seen: HashSet::new(),
            hasher: RandomState::new(),
            summary: ImportSummary::default(),
        }
    }

    /// Checks and queues one record; `line` numbers it in the report of a bad one.
    pub fn add(&mut self, line: usize, record: Record) -> Result<(), TransferError> {
        let key = match key::normalise(&record.url, MAX_KEY) {
            Ok(key) => key,
            Err(err) => {
                self.skip(line, format!("bad url {:?}: {err}", record.url));
                return Ok(());
            }
        };
        let mut days = Vec::with_capacity(record.days.len());
        for (text, count) in &record.days {
            match day_from_date(text) {
                Some(day) => days.push((day, *count)),
                None => {
                    self.skip(line, format!("bad date {text:?}"));
                    return Ok(());
                }
            }
        }
        let first = self.seen.insert(self.hasher.hash_one(&key));
        self.summary.records += 1;
        self.summary.keys += usize::from(first);
        self.batch.push(Merge {
            key,
            total: record.total,
            days,
            add: self.mode == Mode::Add || !first,
        });
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Notes a line that could not be used.
    pub fn skip(&mut self, line: usize, reason: String) {
        self.summary.skipped.push((line, reason));
    }

    /// Applies the queued batch atomically.
    pub fn flush(&mut self) -> Result<(), TransferError> {
        if !self.batch.is_empty() {
            self.store.merge(&self.batch)?;
            self.batch.clear();
        }
        Ok(())
    }

    /// Applies what is left, makes it durable, and reports.
    pub fn finish(mut self) -> Result<ImportSummary, TransferError> {
        self.flush()?;
        self.store.flush()?;
        Ok(self.summary)
    }
}

/// Imports JSON Lines from `input`; `progress(bytes)` is called after each line.
pub fn import(
    store: &Store,
    input: impl BufRead,
    mode: Mode,
    mut progress: impl FnMut(usize),
) -> Result<ImportSummary, TransferError> {
    let mut importer = Importer::new(store, mode);
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        progress(line.len() + 1);
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(&line) {
            Ok(record) => importer.add(index + 1, record)?,
            Err(err) => importer.skip(index + 1, format!("not a record: {err}")),
        }
    }
    importer.finish()
}

/// Migrates the original Python server's SQLite file (table `url(id, url, count)`): each URL
/// string takes the largest count among its rows (the original could insert one URL twice),
/// then spellings that fold into one key are summed.
pub fn import_seed(
    store: &Store,
    sqlite: &Path,
    mode: Mode,
) -> Result<ImportSummary, TransferError> {
    let db =
        rusqlite::Connection::open_with_flags(sqlite, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    // A row is numbered by its SQLite rowid (the original schema's `id`), which finds it again.
    let mut statement = db.prepare("SELECT rowid, url, count FROM url ORDER BY rowid")?;
    // Each URL string: its key, and the largest count among its rows.
    let mut largest: HashMap<String, (String, u64)> = HashMap::new();
    let mut importer = Importer::new(store, mode);
    let mut used = 0;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        // A negative rowid (only ever set by hand) is reported unnumbered, as 0.
        let number = row
            .get::<_, i64>(0)
            .ok()
            .and_then(|id| usize::try_from(id).ok())
            .unwrap_or(0);
        let url: Result<String, _> = row.get(1);
        let count: Result<i64, _> = row.get(2);
        let (url, count) = match (url, count) {
            (Ok(url), Ok(count)) if count >= 0 => (url, count as u64),
            _ => {
                importer.skip(number, "url or count is not usable".to_owned());
                continue;
            }
        };
        if let Some((_, slot)) = largest.get_mut(&url) {
            *slot = (*slot).max(count);
        } else {
            match key::normalise(&url, MAX_KEY) {
                Ok(key) => {
                    largest.insert(url, (key, count));
                }
                Err(err) => {
                    importer.skip(number, format!("bad url {url:?}: {err}"));
                    continue;
                }
            }
        }
        used += 1;
    }
    let mut folded: BTreeMap<String, u64> = BTreeMap::new();
    for (key, count) in largest.into_values() {
        let total = folded.entry(key).or_insert(0);
        *total = total.saturating_add(count);
    }
    for (key, total) in folded {
        let record = Record {
            url: key,
            total,
            days: BTreeMap::new(),
        };
        importer.add(0, record)?;
    }
    let mut summary = importer.finish()?;
    summary.records = used;
    Ok(summary)
}
