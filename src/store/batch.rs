//! A flush's latest counts, encoded once, as the journal stores them: the journal appends the
//! bytes as they are, a checkpoint reads them back in the order of the pages tree. A few bytes
//! more than its key per page and no allocation per page, where owned keys in vectors made a
//! flush of the whole front cache a peak of memory.
//!
//! The encoding is entries of `key length (u32, big-endian) | key | packed counts value`.

use super::encoding::{PACKED_LEN, PageId, Value, pack, page_id, unpack_counts};
use super::{StoreError, Stored};

/// The key under which a malformed entry is reported.
const BATCH_KEY: &str = "(journal)";

/// Pages and their latest counts, in the order pushed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    bytes: Vec<u8>,
    len: usize,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `entries` entries whose keys take `key_bytes` in all.
    pub fn with_capacity(entries: usize, key_bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(entries * (4 + PACKED_LEN) + key_bytes),
            len: 0,
        }
    }

    /// Adds `key` with its counts.
    pub fn push(&mut self, key: &str, stored: &Stored) {
        let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes.extend_from_slice(key.as_bytes());
        self.bytes.extend_from_slice(&pack(stored));
        self.len += 1;
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries, in the order pushed.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Stored)> {
        // A batch only holds what `push` encoded: nothing to stop at.
        entries(&self.bytes).map_while(Result::ok)
    }

    /// The entries in the order of their page ids, the order of the pages tree: written in
    /// that order, each of sled's nodes is read from disk once rather than once per entry
    /// (sled's cache is small, and ids are spread by hashes). Sorts ids and positions, 20 bytes
    /// an entry, rather than the entries; entries of one id stay in the order pushed.
    pub(super) fn in_id_order(&self) -> impl Iterator<Item = (PageId, &str, Stored)> {
        let mut starts: Vec<(PageId, u32)> = Vec::with_capacity(self.len);
        let mut at = 0;
        while let Some(Ok((key, _))) = entries(&self.bytes[at..]).next() {
            starts.push((page_id(key), u32::try_from(at).unwrap_or(u32::MAX)));
            at += 4 + key.len() + PACKED_LEN;
        }
        starts.sort_unstable();
        let bytes = &self.bytes;
        starts.into_iter().filter_map(|(id, start)| {
            bytes
                .get(start as usize..)
                .and_then(|rest| entries(rest).next())
                .and_then(Result::ok)
                .map(|(key, stored)| (id, key, stored))
        })
    }

    /// The encoded entries.
    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The entries of `bytes` in the batch encoding, in order; a malformed one is an error and the
/// last item.
pub(super) fn entries(bytes: &[u8]) -> impl Iterator<Item = Result<(&str, Stored), StoreError>> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let entry = split_entry(rest);
        rest = match &entry {
            Ok((_, _, tail)) => tail,
            Err(_) => &[],
        };
        Some(entry.map(|(key, stored, _)| (key, stored)))
    })
}

/// The first entry of `bytes` and what follows it.
fn split_entry(bytes: &[u8]) -> Result<(&str, Stored, &[u8]), StoreError> {
    let malformed = |len| StoreError::BadValue {
        key: BATCH_KEY.to_owned(),
        len,
    };
    let (len, tail) = bytes
        .split_first_chunk::<4>()
        .ok_or(malformed(bytes.len()))?;
    let len = u32::from_be_bytes(*len) as usize;
    let key = tail.get(..len).ok_or(malformed(tail.len()))?;
    let key = std::str::from_utf8(key).map_err(|_| malformed(len))?;
    let value = tail
        .get(len..len + PACKED_LEN)
        .ok_or(malformed(tail.len()))?;
    let Some(Value::Packed(stored)) = unpack_counts(value) else {
        return Err(malformed(value.len()));
    };
    Ok((key, stored, &tail[len + PACKED_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(total: u64, day: u32, day_count: u64) -> Stored {
        Stored::new(total, day, day_count)
    }

    #[test]
    fn entries_round_trip_in_both_orders_and_malformed_bytes_are_errors() {
        let pushed = [
            ("example.com/é", stored(9, 7, 3)),
            ("a", stored(1, 2, 1)),
            ("", stored(0, 0, 0)),
        ];
        let mut batch = Batch::new();
        assert!(batch.is_empty());
        for (key, stored) in &pushed {
            batch.push(key, stored);
        }
        assert_eq!(batch.len(), 3);
        assert_eq!(
            batch.as_bytes().len(),
            3 * (4 + PACKED_LEN) + 1 + "example.com/é".len()
        );
        assert_eq!(batch.iter().collect::<Vec<_>>(), pushed);
        let mut ids: Vec<_> = pushed.iter().map(|(key, _)| (page_id(key), *key)).collect();
        ids.sort_unstable();
        let sorted: Vec<_> = batch.in_id_order().map(|(id, key, _)| (id, key)).collect();
        assert_eq!(sorted, ids);
        let bytes = batch.as_bytes();
        let first = 4 + "example.com/é".len() + PACKED_LEN;
        for cut in (1..bytes.len()).filter(|&cut| cut != first && cut != first + 4 + 1 + PACKED_LEN)
        {
            let decoded: Vec<_> = entries(&bytes[..cut]).collect();
            assert!(
                decoded.last().is_some_and(Result::is_err),
                "cut at {cut}: {decoded:?}"
            );
        }
        assert_eq!(entries(&bytes[..first]).count(), 1);
        assert_eq!(entries(&[]).count(), 0);
    }
}
