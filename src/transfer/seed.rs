//! Import of the original Python server's SQLite file.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::{ImportSummary, Importer, MAX_KEY, Mode, Record, TransferError};
use crate::request::key;
use crate::store::Store;

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
