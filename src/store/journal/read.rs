//! Reading a journal file's bytes: its header, its intact records, and what did not read as
//! either: a torn tail (a crash during an append, never acknowledged) or damage in the middle,
//! which is skipped up to the next intact record rather than ending the replay. Pure.

use super::super::batch::entries;
use super::{FRAME_LEN, HEADER_LEN, MAGIC};

/// What a journal file's header says of its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::store) enum Header {
    /// No bytes at all.
    Empty,
    /// Of the counts tree's generation: its records are the latest counts.
    Current,
    /// Of the generation before the tree's: a checkpoint reached the tree and a crash came
    /// before the file was restarted; its records are older than the tree.
    Stale,
    /// Not a header this code writes (a wrong magic or an unknown generation): its records may
    /// be older or newer than the tree.
    Garbled,
}

/// A journal file, read.
#[derive(Debug)]
pub(in crate::store) struct Reading<'a> {
    /// What the header says.
    pub header: Header,
    /// The payloads of the intact records, in file order.
    pub payloads: Vec<&'a [u8]>,
    /// Bytes between intact records that were no record: damage, skipped.
    pub skipped: usize,
    /// Bytes at the end that were no record: a torn append, or damage if `tail_damaged`.
    pub tail: usize,
    /// Whether the tail is a whole record that fails its checks, rather than one cut short.
    pub tail_damaged: bool,
}

impl Reading<'_> {
    /// Whether every byte of the file was read as a header or an intact record, but for a torn
    /// final append (which no flush reported durable).
    pub fn is_whole(&self) -> bool {
        self.skipped == 0 && !self.tail_damaged && self.header != Header::Garbled
    }
}

/// Reads `file`, a journal of a counts tree at `generation`. Records are read whatever the
/// header says; the caller decides by [`Reading::header`] whether to replay them.
pub(in crate::store) fn read(file: &[u8], generation: u64) -> Reading<'_> {
    let header = match file.get(..HEADER_LEN) {
        _ if file.is_empty() => Header::Empty,
        Some(head) if head.starts_with(MAGIC) => {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(&head[MAGIC.len()..]);
            match u64::from_be_bytes(bytes) {
                g if g == generation => Header::Current,
                g if g.wrapping_add(1) == generation => Header::Stale,
                _ => Header::Garbled,
            }
        }
        _ => Header::Garbled,
    };
    let mut reading = Reading {
        header,
        payloads: Vec::new(),
        skipped: 0,
        tail: 0,
        tail_damaged: false,
    };
    let mut at = HEADER_LEN.min(file.len());
    while at < file.len() {
        if let Some(len) = record_at(file, at) {
            reading
                .payloads
                .push(&file[at + FRAME_LEN..at + FRAME_LEN + len]);
            at += FRAME_LEN + len;
            continue;
        }
        match (at + 1..file.len()).find(|&next| record_at(file, next).is_some()) {
            Some(next) => {
                reading.skipped += next - at;
                at = next;
            }
            None => {
                reading.tail = file.len() - at;
                reading.tail_damaged = !is_torn(&file[at..]);
                break;
            }
        }
    }
    reading
}

/// The payload length of an intact record at `at`: a frame whose length fits, whose CRC matches
/// and whose payload decodes entry by entry.
fn record_at(file: &[u8], at: usize) -> Option<usize> {
    let frame = file.get(at..at + FRAME_LEN)?;
    let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    let crc = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    // A record is never empty: a zero length is a zero-filled tail, not a record.
    let payload = file.get(at + FRAME_LEN..(at + FRAME_LEN).checked_add(len)?)?;
    let intact = len > 0 && crc32fast::hash(payload) == crc && entries(payload).all(|e| e.is_ok());
    intact.then_some(len)
}

/// Whether `tail` (bytes after the last intact record) is an append cut short: a frame that
/// promises more bytes than are left, or a zero-filled end.
fn is_torn(tail: &[u8]) -> bool {
    if tail.iter().all(|&byte| byte == 0) {
        return true;
    }
    match tail.first_chunk::<4>() {
        Some(len) => FRAME_LEN + u32::from_be_bytes(*len) as usize > tail.len(),
        None => true,
    }
}
