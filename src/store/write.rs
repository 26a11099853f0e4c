//! Writes of counts: checkpoints' and bulk tools' absolute values, and a hit written through.

use super::encoding::{PageId, day_key, page_id, page_value};
use super::{DayCount, Store, StoreError, Stored};

impl Store {
    /// Writes counts into the trees: the final counts of days that ended (`retired`, into the
    /// days tree) first, then each key's latest counts (checkpoints, bulk tools, tests), each in
    /// the order of its tree (see [`in_id_order`]). Key by key rather than in one transaction or
    /// batch, which take sled's global write lock and would stall every request's read for a
    /// write of thousands of keys. Each value is absolute, so a write cut short by a crash leaves
    /// every key either at its old or its new count; and a day is retired before the value that
    /// moves past it is written.
    pub(crate) fn put(
        &self,
        latest: &[(&str, Stored)],
        retired: &[DayCount<'_>],
    ) -> Result<(), StoreError> {
        let mut buckets: Vec<_> = retired
            .iter()
            .map(|bucket| (day_key(&page_id(bucket.key), bucket.day), bucket.count))
            .collect();
        buckets.sort_unstable();
        for (key, count) in buckets {
            self.days.insert(key, &count.to_be_bytes())?;
        }
        self.put_counts(in_id_order(latest.iter().copied()))
    }

    /// Writes each page's latest counts into the pages tree, in the order given.
    pub(super) fn put_counts<'a>(
        &self,
        latest: impl IntoIterator<Item = (PageId, &'a str, Stored)>,
    ) -> Result<(), StoreError> {
        for (id, key, stored) in latest {
            self.pages.insert(id, page_value(key, &stored))?;
        }
        Ok(())
    }

    /// Writes bare totals (no days), for tests of what reads totals.
    #[cfg(test)]
    pub(crate) fn put_totals(&self, totals: &[(&str, u64)]) -> Result<(), StoreError> {
        let latest: Vec<(&str, Stored)> = totals
            .iter()
            .map(|&(key, total)| {
                (
                    key,
                    Stored {
                        total,
                        ..Stored::default()
                    },
                )
            })
            .collect();
        self.put(&latest, &[])
    }

    /// Adds `by` to the total of `key` and to its count on `day`; returns both new values
    /// (total, day). For a key the front cache does not hold: the caller holds the key's cache
    /// shard lock, so no other writer of this key runs meanwhile.
    pub fn increment(&self, key: &str, day: u32, by: u64) -> Result<(u64, u64), StoreError> {
        self.increment_making(key, day, by, || Ok(()))
    }

    /// As [`Store::increment`], but a key not stored yet is made only if `make` says so (its
    /// error is returned, and nothing written, if not).
    pub(crate) fn increment_making<E: From<StoreError>>(
        &self,
        key: &str,
        day: u32,
        by: u64,
        make: impl FnOnce() -> Result<(), E>,
    ) -> Result<(u64, u64), E> {
        let id = page_id(key);
        let mut stored = match self.read(key, &id)? {
            Some(stored) => stored,
            None => {
                make()?;
                Stored::new(0, day, 0)
            }
        };
        if stored.day < day {
            self.retire(&id, &stored)?;
            stored.day = day;
            stored.day_count = 0;
        }
        stored.total = stored.total.saturating_add(by);
        stored.day_count = stored.day_count.saturating_add(by);
        self.pages
            .insert(id, page_value(key, &stored))
            .map_err(StoreError::from)?;
        Ok((stored.total, stored.day_count))
    }

    /// Sets the total of `key`, keeping its days; for a key the front cache does not hold.
    /// Returns whether the key is new.
    pub(crate) fn set_total(&self, key: &str, total: u64) -> Result<bool, StoreError> {
        let id = page_id(key);
        let stored = self.read(key, &id)?;
        let days = stored.unwrap_or_default();
        self.pages
            .insert(id, page_value(key, &Stored { total, ..days }))?;
        Ok(stored.is_none())
    }

    /// Moves the latest day of `stored` into the days tree, before its value moves past it.
    fn retire(&self, id: &PageId, stored: &Stored) -> Result<(), StoreError> {
        if stored.day_count > 0 {
            self.days
                .insert(day_key(id, stored.day), &stored.day_count.to_be_bytes())?;
        }
        Ok(())
    }
}

/// `latest` with each key's page id, in the order of the pages tree: written in that order,
/// each of sled's nodes is read from disk once rather than once per entry (sled's cache is
/// small, and ids are spread by hashes). Entries of one key stay in the order given.
pub(super) fn in_id_order<'a>(
    latest: impl IntoIterator<Item = (&'a str, Stored)>,
) -> Vec<(PageId, &'a str, Stored)> {
    let mut latest: Vec<_> = latest
        .into_iter()
        .map(|(key, stored)| (page_id(key), key, stored))
        .collect();
    latest.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    latest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip_and_survive_reopening() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        {
            let store = Store::open(dir.path())?;
            assert_eq!(store.get("example.com")?, None);
            assert_eq!(store.load("example.com")?, None);
            let stored = |total, day, day_count| Stored {
                total,
                day,
                day_count,
            };
            store.put(
                &[
                    ("example.com", stored(41, 10, 1)),
                    ("example.com/a", stored(7, 3, 7)),
                ],
                &[DayCount {
                    key: "example.com",
                    day: 9,
                    count: 40,
                }],
            )?;
            assert_eq!(store.increment("example.com", 10, 1)?, (42, 2));
            assert_eq!(store.increment("new.example", 10, 3)?, (3, 3));
            store.flush()?;
        }
        let store = Store::open(dir.path())?;
        assert_eq!(store.get("example.com")?, Some(42));
        assert_eq!(store.get("example.com/a")?, Some(7));
        assert_eq!(store.get_day("example.com", 10)?, Some(2));
        assert_eq!(store.get_day("example.com", 9)?, Some(40));
        assert_eq!(store.get_day("example.com/a", 10)?, None);
        assert_eq!(store.days_of("example.com", 0, 20)?, vec![(9, 40), (10, 2)]);
        assert_eq!(store.len(), 3, "one entry per key");
        Ok(())
    }

    #[test]
    fn a_later_day_moves_the_latest_one_into_the_days_tree()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        assert_eq!(store.increment("a", 5, 2)?, (2, 2));
        assert_eq!(store.increment("a", 7, 1)?, (3, 1));
        assert_eq!(store.days_of("a", 0, 10)?, vec![(5, 2), (7, 1)]);
        assert_eq!(
            store.load("a")?,
            Some(Stored {
                total: 3,
                day: 7,
                day_count: 1
            })
        );
        store.set_total("a", 100)?;
        assert_eq!(
            store.days_of("a", 0, 10)?,
            vec![(5, 2), (7, 1)],
            "days kept"
        );
        assert_eq!(store.get("a")?, Some(100));
        Ok(())
    }
}
