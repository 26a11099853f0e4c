//! Import of JSON Lines: records applied in atomic batches, and the fingerprints that refuse
//! an input imported twice in add mode.

use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{BufRead, Read};

use sha2::{Digest, Sha256};

use super::{BATCH, ImportSummary, MAX_KEY, Mode, Record, TransferError};
use crate::clock::{date, day_from_date};
use crate::request::key;
use crate::store::{Merge, Store};

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
