//! Export: every page as one JSON line, streamed in the store's order.

use std::io::Write;

use super::{Record, TransferError};
use crate::clock::date;
use crate::store::{Store, StoreError};

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
