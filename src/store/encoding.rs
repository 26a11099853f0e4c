//! The on-disk encodings of the store's trees: page ids, page values (varint counts, then the URL) and
//! day-bucket keys, plus the values of the layout before ids. Pure: bytes in, bytes out.

use sha2::{Digest, Sha256};

use super::{StoreError, Stored};

/// Bytes of a page id: 4 of the SHA-256 of the key's domain (up to its first `/`), then the
/// first 4 bytes of the rest (zero-padded), then 8 of the SHA-256 of the whole key. Fixed and
/// short, so sled's index stays small whatever the URL's length; the domain first, so a
/// domain's pages are one run; the path's start next, so pages made one after another (a site's
/// `/p1`, `/p2`, …) mostly land in the same leaves. Two pages of ten million in one run share an
/// id with odds of 10⁻⁶, and that page is refused, never merged.
pub(super) const ID_LEN: usize = 16;
/// Bytes of a page id taken from its domain's digest.
pub(super) const DOMAIN_LEN: usize = 4;
/// Bytes of a page id taken from the start of its path, as they are.
const PATH_LEN: usize = 4;

/// Bytes of packed counts (in the journal, and the old layout's values).
pub(super) const PACKED_LEN: usize = 20;
/// Bytes of a counts value that holds only a total (data dirs of the first releases).
const TOTAL_LEN: usize = 8;

/// The id a page is stored under.
pub(super) type PageId = [u8; ID_LEN];

/// The id of the page of `key`.
pub(super) fn page_id(key: &str) -> PageId {
    let (domain, path) = key.split_once('/').unwrap_or((key, ""));
    let mut id = [0; ID_LEN];
    id[..DOMAIN_LEN].copy_from_slice(&Sha256::digest(domain.as_bytes())[..DOMAIN_LEN]);
    let start = &path.as_bytes()[..path.len().min(PATH_LEN)];
    id[DOMAIN_LEN..DOMAIN_LEN + start.len()].copy_from_slice(start);
    let digest = Sha256::digest(key.as_bytes());
    id[DOMAIN_LEN + PATH_LEN..].copy_from_slice(&digest[..ID_LEN - DOMAIN_LEN - PATH_LEN]);
    id
}

/// A page's value: its total, latest day and that day's count as LEB128 varints (a few bytes
/// each for the counts most pages have), then its key (the URL, written once).
pub(super) fn page_value(key: &str, stored: &Stored) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(3 + 5 + 3 + key.len());
    for word in [stored.total, u64::from(stored.day), stored.day_count] {
        put_varint(&mut bytes, word);
    }
    bytes.extend_from_slice(key.as_bytes());
    bytes
}

/// The counts and the key in a page value, or `None` if it is not one.
pub(super) fn unpack_page(bytes: &[u8]) -> Option<(Stored, &[u8])> {
    let (total, rest) = take_varint(bytes)?;
    let (day, rest) = take_varint(rest)?;
    let (day_count, key) = take_varint(rest)?;
    Some((Stored::new(total, u32::try_from(day).ok()?, day_count), key))
}

/// Appends `word` as a LEB128 varint: seven bits a byte, low first, the top bit set on all
/// bytes but the last.
fn put_varint(bytes: &mut Vec<u8>, mut word: u64) {
    while word >= 0x80 {
        bytes.push((word as u8) | 0x80);
        word >>= 7;
    }
    bytes.push(word as u8);
}

/// The LEB128 varint at the start of `bytes` and what follows it; `None` if it is cut short or
/// longer than a `u64`.
fn take_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut word = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        if i == 9 && bits > 1 {
            return None;
        }
        word |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Some((word, &bytes[i + 1..]));
        }
    }
    None
}

/// The days-tree key of the page `id` on `day`.
pub(super) fn day_key(id: &PageId, day: u32) -> [u8; ID_LEN + 4] {
    let mut bytes = [0; ID_LEN + 4];
    bytes[..ID_LEN].copy_from_slice(id);
    bytes[ID_LEN..].copy_from_slice(&day.to_be_bytes());
    bytes
}

/// The day of a days-tree key (of either layout: the day is its last four bytes).
pub(super) fn day_from(day_key: &[u8]) -> Option<u32> {
    let tail = day_key.len().checked_sub(4)?;
    <[u8; 4]>::try_from(&day_key[tail..])
        .ok()
        .map(u32::from_be_bytes)
}

/// A day's count, of `key`.
pub(super) fn decode(key: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::BadValue {
            key: key.to_owned(),
            len: bytes.len(),
        })
}

/// Packs `stored` into 20 bytes: total, day, day count, big-endian.
pub(super) fn pack(stored: &Stored) -> [u8; PACKED_LEN] {
    let mut bytes = [0; PACKED_LEN];
    bytes[..8].copy_from_slice(&stored.total.to_be_bytes());
    bytes[8..12].copy_from_slice(&stored.day.to_be_bytes());
    bytes[12..].copy_from_slice(&stored.day_count.to_be_bytes());
    bytes
}

/// A counts value of the layout before page ids (keyed by the whole key).
pub(super) enum Value {
    /// The packed form: total and latest day.
    Packed(Stored),
    /// The total alone (data dirs of the first releases; days all in the days tree).
    Total(u64),
}

/// Reads a counts value of the layout before page ids, 20 or 8 bytes.
pub(super) fn unpack_counts(bytes: &[u8]) -> Option<Value> {
    let word = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
    };
    let day = || {
        bytes
            .get(8..12)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
    };
    match bytes.len() {
        PACKED_LEN => word(0)
            .zip(day())
            .zip(word(12))
            .map(|((total, day), day_count)| {
                Value::Packed(Stored {
                    total,
                    day,
                    day_count,
                })
            }),
        TOTAL_LEN => word(0).map(Value::Total),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_values_round_trip_and_short_ones_are_refused() {
        let stored = Stored {
            total: u64::MAX - 1,
            day: 20_000,
            day_count: 7,
        };
        let value = page_value("a.example/x", &stored);
        assert_eq!(
            unpack_page(&value),
            Some((stored, &b"a.example/x"[..])),
            "counts, then the key"
        );
        for stored in [Stored::new(u64::MAX, u32::MAX, u64::MAX), Stored::default()] {
            assert_eq!(
                unpack_page(&page_value("", &stored)),
                Some((stored, &b""[..]))
            );
        }
        assert_eq!(
            page_value("k", &Stored::new(5, 20_000, 1)).len(),
            1 + 3 + 1 + 1
        );
        for cut in [&[][..], &[0x80], &[0, 0], &[0xff; 11]] {
            assert!(unpack_page(cut).is_none(), "{cut:?}");
        }
        assert!(matches!(
            unpack_counts(&9u64.to_be_bytes()),
            Some(Value::Total(9))
        ));
        assert!(unpack_counts(&[0; 9]).is_none());
    }

    #[test]
    fn ids_are_fixed_and_a_domain_s_pages_share_their_first_bytes() {
        let long = format!("a.example/{}", "x".repeat(2000));
        let (bare, path, other) = (page_id("a.example"), page_id(&long), page_id("b.example/x"));
        assert_eq!(bare[..DOMAIN_LEN], path[..DOMAIN_LEN]);
        assert_ne!(bare[DOMAIN_LEN..], path[DOMAIN_LEN..]);
        assert_ne!(bare[..DOMAIN_LEN], other[..DOMAIN_LEN]);
        assert_ne!(page_id(&format!("{long}y")), path);
        assert_eq!(
            path[DOMAIN_LEN..DOMAIN_LEN + PATH_LEN],
            *b"xxxx",
            "the path's start"
        );
        assert_eq!(bare[DOMAIN_LEN..DOMAIN_LEN + PATH_LEN], [0; PATH_LEN]);
        assert_eq!(day_from(&day_key(&path, 20_000)), Some(20_000));
    }
}
