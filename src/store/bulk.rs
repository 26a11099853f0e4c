//! The store's whole-tree work, for background tasks and tools rather than requests: atomic
//! merges and deletes (admin, import), pruning old days, and scans in id order (export, top
//! sites), where a domain's pages are one run.

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::encoding::{
    DOMAIN_LEN, PageId, day_from, day_key, decode, page_id, page_value, unpack_page,
};
use super::{META_TREE, Store, StoreError, Stored, from_transaction, stored_of};

/// Counts for one key to add to what is stored, or to replace it with (total and all days).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    /// The key.
    pub key: String,
    /// The total to add, or to set.
    pub total: u64,
    /// Day counts (day, count) to add, or to set (replace mode drops the key's other days).
    pub days: Vec<(u32, u64)>,
    /// Add to what is stored, rather than replace it.
    pub add: bool,
}

impl Store {
    /// Applies many [`Merge`]s in one atomic transaction, in order (a later merge of a key sees
    /// an earlier one). Each key ends as the pages tree expects: its latest day in its value,
    /// the days before in the days tree.
    pub fn merge(&self, merges: &[Merge]) -> Result<(), StoreError> {
        let replaced_days: Vec<sled::IVec> = merges
            .iter()
            .filter(|merge| !merge.add)
            .map(|merge| self.day_keys(&page_id(&merge.key)))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        (&self.pages, &self.days)
            .transaction(|(pages, days)| {
                for old in &replaced_days {
                    days.remove(old)?;
                }
                for merge in merges {
                    let key = merge.key.as_str();
                    let id = page_id(key);
                    let abort = ConflictableTransactionError::Abort;
                    let old = match pages.get(id)? {
                        Some(bytes) if merge.add => Some(stored_of(key, &bytes).map_err(abort)?),
                        _ => None,
                    };
                    let total = old.map_or(0, |stored| stored.total);
                    let mut latest = old.map(|stored| (stored.day, stored.day_count));
                    // Each merged day is added to what is stored for it (when adding).
                    for &(day, count) in &merge.days {
                        let base = match latest {
                            Some((latest_day, latest_count)) if latest_day == day => latest_count,
                            _ if merge.add => match days.get(day_key(&id, day))? {
                                Some(bytes) => decode(key, &bytes).map_err(abort)?,
                                None => 0,
                            },
                            _ => 0,
                        };
                        let count = base.saturating_add(count);
                        match latest {
                            Some((latest_day, _)) if latest_day == day => {
                                latest = Some((day, count))
                            }
                            Some((latest_day, latest_count)) if latest_day < day => {
                                // The value moves on to a later day: its day becomes a bucket.
                                if latest_count > 0 {
                                    days.insert(
                                        &day_key(&id, latest_day)[..],
                                        &latest_count.to_be_bytes(),
                                    )?;
                                }
                                latest = Some((day, count));
                            }
                            None => latest = Some((day, count)),
                            Some(_) => {
                                days.insert(&day_key(&id, day)[..], &count.to_be_bytes())?;
                            }
                        }
                    }
                    let (day, day_count) = latest.unwrap_or((0, 0));
                    if day_count > 0 {
                        // The latest day lives in the value, never also as a bucket.
                        days.remove(&day_key(&id, day)[..])?;
                    }
                    let stored = Stored {
                        total: total.saturating_add(merge.total),
                        day,
                        day_count,
                    };
                    pages.insert(&id[..], page_value(key, &stored))?;
                }
                Ok(())
            })
            .map_err(from_transaction)
    }

    /// Removes `key` and every day bucket of it, atomically; returns whether it was counted.
    pub fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let id = page_id(key);
        if self.read(key, &id)?.is_none() {
            return Ok(false);
        }
        let buckets = self.day_keys(&id)?;
        (&self.pages, &self.days)
            .transaction(|(pages, days)| {
                for bucket in &buckets {
                    days.remove(bucket)?;
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(pages.remove(&id[..])?.is_some())
            })
            .map_err(from_transaction)
    }

    /// Every day of `key` with hits, oldest first.
    pub fn all_days_of(&self, key: &str) -> Result<Vec<(u32, u64)>, StoreError> {
        self.days_of(key, 0, u32::MAX)
    }

    fn day_keys(&self, id: &PageId) -> Result<Vec<sled::IVec>, StoreError> {
        self.days
            .scan_prefix(id)
            .keys()
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)
    }

    /// When an import with this fingerprint was last applied (ms), and in which mode (`None`
    /// when the record names none).
    pub fn imported(&self, fingerprint: &str) -> Result<Option<(u64, Option<String>)>, StoreError> {
        let meta = self.db.open_tree(META_TREE)?;
        Ok(meta.get(format!("import:{fingerprint}"))?.and_then(|v| {
            let (ms, mode) = v.split_first_chunk::<8>()?;
            let mode = std::str::from_utf8(mode).ok().filter(|m| !m.is_empty());
            Some((u64::from_be_bytes(*ms), mode.map(str::to_owned)))
        }))
    }

    /// Records that an import with this fingerprint was applied at `now_ms` in `mode`.
    pub fn record_import(
        &self,
        fingerprint: &str,
        now_ms: u64,
        mode: &str,
    ) -> Result<(), StoreError> {
        let meta = self.db.open_tree(META_TREE)?;
        // The time, then the mode's name: a record of the time alone still reads.
        let mut value = now_ms.to_be_bytes().to_vec();
        value.extend_from_slice(mode.as_bytes());
        meta.insert(format!("import:{fingerprint}"), value)?;
        Ok(())
    }

    /// Removes every day bucket older than `first_kept`; returns how many were removed. Scans
    /// the whole days tree: for a background task only.
    pub fn prune_days(&self, first_kept: u32) -> Result<usize, StoreError> {
        let mut removed = 0;
        let mut batch = sled::Batch::default();
        let mut pending = 0;
        for item in self.days.iter() {
            let (k, _) = item?;
            if day_from(&k).is_some_and(|day| day < first_kept) {
                batch.remove(k);
                pending += 1;
                if pending == 10_000 {
                    self.days.apply_batch(std::mem::take(&mut batch))?;
                    removed += pending;
                    pending = 0;
                }
            }
        }
        self.days.apply_batch(batch)?;
        Ok(removed + pending)
    }

    /// How many pages the store holds, or `None` if `stop` said so first (it is asked every
    /// 4,096 pages). Scans the whole tree: for a background task only.
    pub fn count_pages(&self, stop: impl Fn() -> bool) -> Result<Option<u64>, StoreError> {
        let mut pages = 0u64;
        for item in self.pages.iter() {
            item?;
            pages += 1;
            if pages % 4096 == 0 && stop() {
                return Ok(None);
            }
        }
        Ok(Some(pages))
    }

    /// Calls `visit(key, total)` for every counted key, in id order (a domain's keys together).
    /// Scans the whole tree: for background tasks only.
    pub fn for_each_total(&self, mut visit: impl FnMut(&str, u64)) -> Result<(), StoreError> {
        for item in self.pages.iter() {
            let (_, value) = item?;
            let (stored, key) = page_of(&value)?;
            visit(&String::from_utf8_lossy(key), stored.total);
        }
        Ok(())
    }

    /// Calls `visit(domain, total)` once per domain (a key up to its first `/`: host and port),
    /// with the sum of its keys' totals. One pass in id order: a domain's keys share the first
    /// bytes of their ids, so each run of one id prefix is summed and reported before the next;
    /// a run almost always holds one domain, and holds each of its domains whole.
    pub fn for_each_domain(&self, mut visit: impl FnMut(&str, u64)) -> Result<(), StoreError> {
        let mut run: Option<[u8; DOMAIN_LEN]> = None;
        let mut sums: Vec<(String, u64)> = Vec::new();
        for item in self.pages.iter() {
            let (id, value) = item?;
            let prefix: [u8; DOMAIN_LEN] = id
                .get(..DOMAIN_LEN)
                .and_then(|prefix| prefix.try_into().ok())
                .unwrap_or_default();
            if run != Some(prefix) {
                for (domain, sum) in sums.drain(..) {
                    visit(&domain, sum);
                }
                run = Some(prefix);
            }
            let (stored, key) = page_of(&value)?;
            let key = String::from_utf8_lossy(key);
            let domain = key.split_once('/').map_or(&*key, |(domain, _)| domain);
            match sums.iter_mut().find(|(known, _)| known == domain) {
                Some((_, sum)) => *sum = sum.saturating_add(stored.total),
                None => sums.push((domain.to_owned(), stored.total)),
            }
        }
        for (domain, sum) in sums {
            visit(&domain, sum);
        }
        Ok(())
    }
}

/// The counts and key of a page value met in a scan.
fn page_of(value: &[u8]) -> Result<(Stored, &[u8]), StoreError> {
    unpack_page(value).ok_or_else(|| StoreError::BadValue {
        key: String::from("(a page in a scan)"),
        len: value.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DayCount;

    #[test]
    fn day_ranges_belong_to_one_key_and_pruning_drops_old_days()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let day = |key, day, count| DayCount { key, day, count };
        store.put(
            &[],
            &[
                day("a.com", 1, 1),
                day("a.com", 5, 5),
                day("a.com/x", 3, 3),
                day("a.co", 4, 4),
            ],
        )?;
        assert_eq!(store.days_of("a.com", 0, 10)?, vec![(1, 1), (5, 5)]);
        assert_eq!(store.days_of("a.com", 2, 5)?, vec![(5, 5)]);
        assert_eq!(store.prune_days(4)?, 2);
        assert_eq!(store.days_of("a.com", 0, 10)?, vec![(5, 5)]);
        assert_eq!(store.days_of("a.co", 0, 10)?, vec![(4, 4)]);
        Ok(())
    }

    #[test]
    fn merges_keep_the_latest_day_in_the_value_and_add_to_every_day()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        store.increment("a", 5, 2)?;
        store.increment("a", 7, 3)?;
        let merge = |days: Vec<(u32, u64)>, add| Merge {
            key: "a".to_owned(),
            total: days.iter().map(|d| d.1).sum(),
            days,
            add,
        };
        // Adds to a bucket (5), to the value's day (7), and to new days before and after.
        store.merge(&[merge(vec![(5, 10), (7, 10), (3, 1), (9, 4)], true)])?;
        assert_eq!(store.get("a")?, Some(30));
        assert_eq!(
            store.days_of("a", 0, 10)?,
            vec![(3, 1), (5, 12), (7, 13), (9, 4)]
        );
        assert_eq!(store.load("a")?.map(|s| (s.day, s.day_count)), Some((9, 4)));
        assert_eq!(
            store.increment("a", 9, 1)?,
            (31, 5),
            "the value holds day 9"
        );
        // Replacing drops every old day.
        store.merge(&[merge(vec![(2, 2), (4, 4)], false)])?;
        assert_eq!(store.get("a")?, Some(6));
        assert_eq!(store.days_of("a", 0, 10)?, vec![(2, 2), (4, 4)]);
        assert_eq!(store.load("a")?.map(|s| (s.day, s.day_count)), Some((4, 4)));
        Ok(())
    }

    #[test]
    fn domains_sum_their_keys_in_one_pass() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        // "a.com-x" and "a.com.evil" sort between "a.com" and "a.com/…".
        let totals = [
            ("a.com", 1),
            ("a.com-x", 10),
            ("a.com.evil/p", 100),
            ("a.com/p", 1000),
            ("a.com/q", 10_000),
            ("b.org/only/paths", 5),
            ("b.org/x", 7),
            ("c.net:8080/x", 3),
        ];
        store.put_totals(&totals)?;
        let mut domains = Vec::new();
        store.for_each_domain(|domain, total| domains.push((domain.to_owned(), total)))?;
        domains.sort();
        let want = [
            ("a.com", 11_001),
            ("a.com-x", 10),
            ("a.com.evil", 100),
            ("b.org", 12),
            ("c.net:8080", 3),
        ];
        let want: Vec<(String, u64)> = want.iter().map(|(d, t)| ((*d).to_owned(), *t)).collect();
        assert_eq!(domains, want);
        let mut keys = 0;
        store.for_each_total(|_, _| keys += 1)?;
        assert_eq!(keys, totals.len());
        Ok(())
    }
}
