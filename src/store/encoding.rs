//! The on-disk encodings of the store's trees: counts values (packed, or the old total-only
//! form) and day-bucket keys. Pure: bytes in, bytes out.

use super::{StoreError, Stored};

/// Bytes of a packed counts value.
pub(super) const PACKED_LEN: usize = 20;
/// Bytes of a counts value that holds only a total (data dirs of the first releases).
const TOTAL_LEN: usize = 8;

/// A value of the counts tree.
pub(super) enum Value {
    /// The packed form: total and latest day.
    Packed(Stored),
    /// The total alone (data dirs of the first releases; days all in the days tree).
    Total(u64),
}

/// Packs `stored` into a counts value.
pub(super) fn pack(stored: &Stored) -> [u8; PACKED_LEN] {
    let mut bytes = [0; PACKED_LEN];
    bytes[..8].copy_from_slice(&stored.total.to_be_bytes());
    bytes[8..12].copy_from_slice(&stored.day.to_be_bytes());
    bytes[12..].copy_from_slice(&stored.day_count.to_be_bytes());
    bytes
}

/// Reads a counts value of `key`.
pub(super) fn unpack(key: &str, bytes: &[u8]) -> Result<Value, StoreError> {
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
    let value = match bytes.len() {
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
    };
    value.ok_or_else(|| StoreError::BadValue {
        key: key.to_owned(),
        len: bytes.len(),
    })
}

/// The total in a counts value of `key`.
pub(super) fn total_of(key: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    Ok(match unpack(key, bytes)? {
        Value::Packed(stored) => stored.total,
        Value::Total(total) => total,
    })
}

/// The days-tree key of `key` on `day`.
pub(super) fn day_key(key: &str, day: u32) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(key.len() + 5);
    bytes.extend_from_slice(key.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&day.to_be_bytes());
    bytes
}

/// The day of a days-tree key.
pub(super) fn day_from(day_key: &[u8]) -> Option<u32> {
    let tail = day_key.len().checked_sub(4)?;
    <[u8; 4]>::try_from(&day_key[tail..])
        .ok()
        .map(u32::from_be_bytes)
}

pub(super) fn decode(key: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::BadValue {
            key: key.to_owned(),
            len: bytes.len(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_values_round_trip_and_other_lengths_are_refused() {
        let stored = Stored {
            total: u64::MAX - 1,
            day: 20_000,
            day_count: 7,
        };
        assert!(matches!(unpack("k", &pack(&stored)), Ok(Value::Packed(s)) if s == stored));
        assert!(matches!(
            unpack("k", &9u64.to_be_bytes()),
            Ok(Value::Total(9))
        ));
        for len in [0, 7, 9, 19, 21] {
            assert!(unpack("k", &vec![0; len]).is_err(), "{len} bytes");
        }
        assert_eq!(day_from(&day_key("a.com/x", 20_000)), Some(20_000));
    }
}
