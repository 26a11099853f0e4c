//! Reads of one page: its total, its latest counts, its days.

use super::encoding::{PageId, day_from, day_key, decode, page_id, unpack_page};
use super::{Store, StoreError, Stored};

impl Store {
    /// The stored total for `key`, or `None` if the key was never counted.
    pub fn get(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.load(key)?.map(|stored| stored.total))
    }

    /// What the store holds for `key`, or `None` if it was never counted: one read.
    pub fn load(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        self.read(key, &page_id(key))
    }

    /// The page stored under `id`, which must be `key`'s.
    pub(super) fn read(&self, key: &str, id: &PageId) -> Result<Option<Stored>, StoreError> {
        match self.pages.get(id)? {
            Some(bytes) => stored_of(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Hits of `key` on `day`, or `None` if there were none recorded: for tests.
    #[cfg(test)]
    pub(crate) fn get_day(&self, key: &str, day: u32) -> Result<Option<u64>, StoreError> {
        Ok(self
            .days_of(key, day, day)?
            .first()
            .map(|&(_, count)| count))
    }

    /// The recorded days of `key` from `first` to `last` (inclusive), oldest first; days without
    /// hits are absent.
    pub fn days_of(&self, key: &str, first: u32, last: u32) -> Result<Vec<(u32, u64)>, StoreError> {
        let id = page_id(key);
        let mut days = self
            .days
            .range(day_key(&id, first)..=day_key(&id, last))
            .map(|item| {
                let (k, v) = item?;
                let day = day_from(&k).unwrap_or(0);
                Ok((day, decode(key, &v)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if let Some(latest) = self.read(key, &id)?
            && latest.day_count > 0
            && (first..=last).contains(&latest.day)
        {
            // The latest day is the value's; a bucket of that day can only hold less.
            match days.binary_search_by_key(&latest.day, |&(day, _)| day) {
                Ok(i) => days[i].1 = days[i].1.max(latest.day_count),
                Err(i) => days.insert(i, (latest.day, latest.day_count)),
            }
        }
        Ok(days)
    }
}

/// The counts in the page value `bytes`, which must be `key`'s.
pub(super) fn stored_of(key: &str, bytes: &[u8]) -> Result<Stored, StoreError> {
    let (stored, stored_key) = unpack_page(bytes).ok_or_else(|| StoreError::BadValue {
        key: key.to_owned(),
        len: bytes.len(),
    })?;
    if stored_key != key.as_bytes() {
        return Err(StoreError::Collision {
            key: key.to_owned(),
            other: String::from_utf8_lossy(stored_key).into_owned(),
        });
    }
    Ok(stored)
}
