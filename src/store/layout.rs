//! Moving a data dir of the layout before page ids (pages under their whole keys in `counts`,
//! `key \0 day` buckets in `days`) into the pages and days trees, at open. Long keys there made
//! sled's index nodes huge, and a page's disk cost many times its URL.

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::encoding::{Value, day_from, day_key, decode, page_id, page_value, unpack_counts};
use super::{Store, StoreError, Stored, from_transaction};

/// The tree of the old layout's counts, keyed by the whole key.
const OLD_COUNTS_TREE: &str = "counts";
/// The tree of the old layout's day buckets, `key \0 day`.
const OLD_DAYS_TREE: &str = "days";
/// Pages moved in one transaction: a crash leaves each page in one layout or the other.
const PAGES_PER_MOVE: usize = 1_000;

impl Store {
    /// Moves every page of the old layout into the new one, with its days; returns how many.
    /// Runs before the journal's replay, whose counts are newer than the old trees'. A move cut
    /// short goes on at the next open; the old trees are dropped once empty.
    pub(super) fn move_old_layout(&self) -> Result<usize, StoreError> {
        let names = self.db.tree_names();
        if !names.iter().any(|name| name == OLD_COUNTS_TREE.as_bytes()) {
            return Ok(0);
        }
        let old_counts = self.db.open_tree(OLD_COUNTS_TREE)?;
        let old_days = self.db.open_tree(OLD_DAYS_TREE)?;
        let mut moved = 0;
        loop {
            let chunk = old_counts
                .iter()
                .take(PAGES_PER_MOVE)
                .collect::<Result<Vec<_>, _>>()?;
            if chunk.is_empty() {
                break;
            }
            let pages = chunk
                .iter()
                .map(|(old_key, value)| moved_page(&old_days, old_key, value))
                .collect::<Result<Vec<_>, _>>()?;
            (&old_counts, &old_days, &self.pages, &self.days)
                .transaction(|(old_counts, old_days, new_pages, new_days)| {
                    for page in &pages {
                        let id = page_id(&page.key);
                        for (day, count) in &page.buckets {
                            new_days.insert(&day_key(&id, *day)[..], &count.to_be_bytes())?;
                        }
                        for old in &page.old_buckets {
                            old_days.remove(old)?;
                        }
                        new_pages.insert(&id[..], page_value(&page.key, &page.stored))?;
                        old_counts.remove(&page.old_key)?;
                    }
                    Ok::<_, ConflictableTransactionError<StoreError>>(())
                })
                .map_err(from_transaction)?;
            moved += pages.len();
            tracing::info!(moved, "moving pages to the layout of short ids");
        }
        self.db.drop_tree(OLD_COUNTS_TREE)?;
        self.db.drop_tree(OLD_DAYS_TREE)?;
        self.db.flush()?;
        Ok(moved)
    }
}

/// One page of the old layout, as the new one holds it.
struct MovedPage {
    old_key: sled::IVec,
    key: String,
    stored: Stored,
    /// Its day buckets, for the new days tree.
    buckets: Vec<(u32, u64)>,
    /// The old days-tree keys to remove.
    old_buckets: Vec<sled::IVec>,
}

/// Reads the page `old_key` of the old layout with its day buckets. A total-only value (the
/// first releases kept every day as a bucket) takes its latest bucket as its latest day. A
/// bucket of a packed value's own day is kept: a flush retires a day into its bucket before it
/// journals the value that moves past it, so after an unclean stop the bucket holds that day's
/// final count and the value only an older one, until the journal's replay (reads take the
/// larger of the two).
fn moved_page(
    old_days: &sled::Tree,
    old_key: &sled::IVec,
    value: &[u8],
) -> Result<MovedPage, StoreError> {
    let key = String::from_utf8_lossy(old_key).into_owned();
    let mut prefix = old_key.to_vec();
    prefix.push(0);
    let mut buckets = Vec::new();
    let mut old_buckets = Vec::new();
    for item in old_days.scan_prefix(&prefix) {
        let (bucket, count) = item?;
        if let Some(day) = day_from(&bucket) {
            buckets.push((day, decode(&key, &count)?));
        }
        old_buckets.push(bucket);
    }
    let bad = || StoreError::BadValue {
        key: key.clone(),
        len: value.len(),
    };
    let stored = match unpack_counts(value).ok_or_else(bad)? {
        Value::Packed(stored) => stored,
        Value::Total(total) => {
            let (day, day_count) = buckets.iter().copied().max().unwrap_or((0, 0));
            Stored::new(total, day, day_count)
        }
    };
    Ok(MovedPage {
        old_key: old_key.clone(),
        key,
        stored,
        buckets,
        old_buckets,
    })
}
