//! The journal: a flush's latest counts appended to one file and fsynced, instead of one sled
//! write per page, and the checkpoint that later writes them into the pages tree once.
//!
//! A page hit every second or two would otherwise cost a pages-tree write per flush; a journal
//! entry costs a copy of the key and its value. A plain file rather than a sled tree: a tree of
//! journal records held every one in memory until a checkpoint, and sled's log grew by as much
//! on disk.
//!
//! The file is a header (`HCJOURN1`, then the generation, a big-endian u64) and records, each
//! `payload length (u32 BE) | CRC-32 of the payload (u32 BE) | payload`; a payload is a flush's
//! [`Batch`] as it encodes itself. Values are absolute, so
//! replaying the records in order gives every key the value of the last flush that reached the
//! disk. A record cut short by a crash was never fsynced, so no flush reported it durable; a
//! damaged record is skipped up to the next intact one ([`read`]), said at ERROR, and the file
//! kept aside.
//!
//! The generation ties the file to the counts tree: a checkpoint records generation `g + 1` in
//! sled together with the counts, then starts a file of generation `g + 1`. A file whose
//! generation is not the tree's predates a checkpoint that reached the disk: it is stale, and
//! replaying it would put older counts back.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use super::batch::{Batch, entries};
use super::{DayCount, Store, StoreError, in_id_order};

mod read;
use read::{Header, Reading, read};

/// The journal's file name in the data directory.
pub(super) const FILE_NAME: &str = "journal";
/// The first bytes of a journal file.
const MAGIC: &[u8; 8] = b"HCJOURN1";
/// Bytes of the header: the magic and the generation.
const HEADER_LEN: usize = 16;
/// Bytes before each record's payload: its length and its CRC.
const FRAME_LEN: usize = 8;
/// The meta tree's key of the generation the pages tree is at (a big-endian u64).
const GENERATION_KEY: &str = "journal-generation";

/// The header of a journal file of `generation`.
fn header(generation: u64) -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..].copy_from_slice(&generation.to_be_bytes());
    header
}

/// The journal of a store: its file and the generation the pages tree is at.
#[derive(Debug)]
pub(super) struct Journal {
    file: JournalFile,
    generation: u64,
    /// Set when an append or a restart failed: the file may end in a torn record, or not be of
    /// `generation`, and a record appended now might never be replayed. Only a checkpoint, which
    /// restarts the file, clears it.
    broken: bool,
}

impl Store {
    /// Opens the journal in `dir` and replays what a crash left in it into the pages tree
    /// (`self.journal` is a placeholder until then). An empty journal of the tree's generation
    /// (every clean shutdown) is only read. Returns how many entries were replayed.
    pub(super) fn open_journal(&mut self, dir: &Path) -> Result<usize, StoreError> {
        let generation = match self.meta.get(GENERATION_KEY)? {
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::BadValue {
                    key: GENERATION_KEY.to_owned(),
                    len: bytes.len(),
                })?,
            None => 0,
        };
        let existed = dir.join(FILE_NAME).exists();
        let (file, bytes) = JournalFile::open(dir)?;
        let reading = read(&bytes, generation);
        let known_store = generation > 0 || !self.pages.is_empty();
        if known_store && reading.header == Header::Empty {
            tracing::error!(
                existed,
                "the journal is missing or empty: hits flushed since the last checkpoint (at most \
                 a minute's) are lost if the server did not stop cleanly"
            );
        }
        let replayed = self.replay(&reading)?;
        let mut journal = Journal {
            file,
            generation,
            broken: false,
        };
        if !reading.is_whole() {
            journal.file = JournalFile::keep_aside(dir, journal.file)?;
        } else if bytes == header(generation) {
            *self.lock_journal() = Some(journal);
            return Ok(replayed);
        }
        // Replayed, stale, new, torn or kept aside: checkpoint what the tree holds now.
        self.advance(&mut journal)?;
        *self.lock_journal() = Some(journal);
        Ok(replayed)
    }

    /// Replays what `reading` found into the pages tree; returns the entries written. Records
    /// of the tree's generation are the latest counts, replayed in order; those under a garbled
    /// header may be older or newer, so each only raises a total, never lowers one.
    fn replay(&self, reading: &Reading<'_>) -> Result<usize, StoreError> {
        if reading.tail > 0 && !reading.tail_damaged && reading.skipped == 0 {
            tracing::warn!(
                dropped_bytes = reading.tail,
                "the journal ends in a torn record (a crash during a flush that was never \
                 acknowledged): replaying the records before it"
            );
        }
        if !reading.is_whole() {
            tracing::error!(
                header = ?reading.header,
                skipped_bytes = reading.skipped,
                damaged_tail_bytes = if reading.tail_damaged { reading.tail } else { 0 },
                intact_records = reading.payloads.len(),
                "the journal is damaged: replaying every intact record, skipping the damaged \
                 bytes, and keeping the file aside"
            );
        }
        let only_raise = match reading.header {
            Header::Current => false,
            Header::Garbled => true,
            Header::Stale | Header::Empty => return Ok(0),
        };
        let mut malformed = Ok(());
        let entries = (reading.payloads.iter().flat_map(|payload| entries(payload)))
            .map_while(|entry| entry.map_err(|err| malformed = Err(err)).ok());
        let mut latest = in_id_order(entries);
        malformed?;
        // A key's entries are next to each other, in journal order: keep its last (or largest).
        latest.dedup_by(|later, earlier| {
            if later.1 != earlier.1 {
                return false;
            }
            if !only_raise || later.2.total >= earlier.2.total {
                *earlier = *later;
            }
            true
        });
        if only_raise {
            let mut raising = Vec::with_capacity(latest.len());
            for entry in latest {
                if self.get(entry.1)?.is_none_or(|total| total < entry.2.total) {
                    raising.push(entry);
                }
            }
            latest = raising;
        }
        let replayed = latest.len();
        self.put_counts(latest)?;
        Ok(replayed)
    }

    /// Journals a flush, durably: the final counts of days that ended go into the days tree
    /// first (as [`Store::put`] writes them) and sled is flushed, with any other write since
    /// the last flush; then each key's latest counts are appended to the journal and fsynced.
    /// Returns the bytes journaled.
    pub fn journal(&self, latest: &Batch, retired: &[DayCount<'_>]) -> Result<usize, StoreError> {
        self.put(&[], retired)?;
        self.flush()?;
        if latest.is_empty() {
            return Ok(0);
        }
        let mut journal = self.lock_journal();
        let journal = journal.as_mut().ok_or_else(not_open)?;
        if journal.broken {
            return Err(StoreError::Journal(std::io::Error::other(
                "the journal needs a checkpoint after a failed write",
            )));
        }
        journal.file.append(latest).map_err(|err| {
            journal.broken = true;
            StoreError::Journal(err)
        })
    }

    /// Writes a checkpoint, durably: `latest` and `retired` into the trees (they must include
    /// every key's value journaled since the last checkpoint), then a new, empty journal.
    pub fn checkpoint(&self, latest: &Batch, retired: &[DayCount<'_>]) -> Result<(), StoreError> {
        let mut journal = self.lock_journal();
        let journal = journal.as_mut().ok_or_else(not_open)?;
        self.put(&[], retired)?;
        self.put_counts(latest.in_id_order())?;
        self.advance(journal)
    }

    /// Moves the counts tree to the next generation (with every write before it, in one sled
    /// flush), then empties the journal file into that generation. A crash in between leaves a
    /// file of the old generation: stale, never replayed.
    fn advance(&self, journal: &mut Journal) -> Result<(), StoreError> {
        let next = journal.generation.wrapping_add(1);
        self.meta.insert(GENERATION_KEY, &next.to_be_bytes())?;
        self.flush()?;
        if let Err(err) = journal.file.restart(next) {
            journal.broken = true;
            return Err(err.into());
        }
        journal.generation = next;
        journal.broken = false;
        Ok(())
    }

    fn lock_journal(&self) -> std::sync::MutexGuard<'_, Option<Journal>> {
        // The file stays usable even if a holder panicked: take it as it is.
        self.journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn not_open() -> StoreError {
    StoreError::Journal(std::io::Error::other("the journal is not open"))
}

/// The open journal file.
#[derive(Debug)]
pub(super) struct JournalFile {
    file: File,
}

impl JournalFile {
    /// Opens the journal in `dir` and reads all of it (to replay what `records` finds).
    pub(super) fn open(dir: &Path) -> std::io::Result<(Self, Vec<u8>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(dir.join(FILE_NAME))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        if bytes.is_empty() {
            // Just made (or emptied by a crash): its directory entry must survive a power cut.
            File::open(dir)?.sync_all()?;
        }
        Ok((Self { file }, bytes))
    }

    /// Renames the journal `file` of `dir` aside (`journal.damaged-<unix seconds>`), where it is
    /// kept, and opens a new, empty one in its place.
    pub(super) fn keep_aside(dir: &Path, file: Self) -> std::io::Result<Self> {
        drop(file);
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let aside = dir.join(format!("{FILE_NAME}.damaged-{seconds}"));
        std::fs::rename(dir.join(FILE_NAME), &aside)?;
        tracing::error!(kept = %aside.display(), "the damaged journal is kept aside");
        Ok(Self::open(dir)?.0)
    }

    /// Empties the file and starts `generation`, durably.
    pub(super) fn restart(&mut self, generation: u64) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.write_all(&header(generation))?;
        self.file.sync_all()
    }

    /// Appends `batch` as one record and fsyncs; returns the bytes appended.
    pub(super) fn append(&mut self, batch: &Batch) -> std::io::Result<usize> {
        let payload = batch.as_bytes();
        let len = u32::try_from(payload.len())
            .map_err(|_| std::io::Error::other("journal record over 4 GiB"))?;
        let mut frame = [0; FRAME_LEN];
        frame[..4].copy_from_slice(&len.to_be_bytes());
        frame[4..].copy_from_slice(&crc32fast::hash(payload).to_be_bytes());
        // Two writes: a crash between them leaves a torn record, which replay stops at.
        self.file.write_all(&frame)?;
        self.file.write_all(payload)?;
        self.file.sync_data()?;
        Ok(FRAME_LEN + payload.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Stored;

    fn batch(entries: &[(&str, Stored)]) -> Batch {
        let mut batch = Batch::new();
        for (key, stored) in entries {
            batch.push(key, stored);
        }
        batch
    }

    fn stored(total: u64, day: u32, day_count: u64) -> Stored {
        Stored::new(total, day, day_count)
    }

    /// Entries per intact record of `bytes`, and the reading's header.
    fn counts(bytes: &[u8], generation: u64) -> (Header, Vec<usize>) {
        let reading = read(bytes, generation);
        let counts = reading
            .payloads
            .iter()
            .map(|payload| entries(payload).filter(Result::is_ok).count())
            .collect();
        (reading.header, counts)
    }

    #[test]
    fn torn_tails_end_the_records_and_generations_tell_stale_from_garbled()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let (mut journal, bytes) = JournalFile::open(dir.path())?;
        assert_eq!(read(&bytes, 0).header, Header::Empty);
        journal.restart(7)?;
        journal.append(&batch(&[("a", stored(1, 1, 1))]))?;
        journal.append(&batch(&[("b", stored(2, 1, 2)), ("c", stored(3, 1, 3))]))?;
        let bytes = std::fs::read(dir.path().join(FILE_NAME))?;
        assert_eq!(counts(&bytes, 7), (Header::Current, vec![1, 2]));
        assert!(read(&bytes, 7).is_whole());
        assert_eq!(counts(&bytes, 8), (Header::Stale, vec![1, 2]));
        assert_eq!(counts(&bytes, 9).0, Header::Garbled);
        let first_end = HEADER_LEN + FRAME_LEN + 4 + 1 + 20;
        for cut in HEADER_LEN..bytes.len() {
            let reading = read(&bytes[..cut], 7);
            assert_eq!(
                reading.payloads.len(),
                usize::from(cut >= first_end),
                "cut at {cut}"
            );
            assert!(reading.is_whole(), "a cut is a torn append, at {cut}");
        }
        let mut zeroed = bytes.clone();
        zeroed.extend_from_slice(&[0; 2 * FRAME_LEN]);
        assert_eq!(counts(&zeroed, 7).1, vec![1, 2]);
        assert!(
            read(&zeroed, 7).is_whole(),
            "a zero-filled tail holds no records"
        );
        journal.restart(8)?;
        let bytes = std::fs::read(dir.path().join(FILE_NAME))?;
        assert_eq!(counts(&bytes, 8), (Header::Current, vec![]));
        Ok(())
    }

    #[test]
    fn a_damaged_record_is_skipped_and_the_records_after_it_are_kept()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let (mut journal, _) = JournalFile::open(dir.path())?;
        journal.restart(3)?;
        for i in 1..=5 {
            journal.append(&batch(&[
                ("k", stored(i, 1, i)),
                ("other", stored(i, 1, i)),
            ]))?;
        }
        let bytes = std::fs::read(dir.path().join(FILE_NAME))?;
        let record = (bytes.len() - HEADER_LEN) / 5;
        // Every byte of record 2 flipped in turn: records 1, 3, 4 and 5 are always read.
        for at in HEADER_LEN + record..HEADER_LEN + 2 * record {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            let reading = read(&damaged, 3);
            assert_eq!(reading.payloads.len(), 4, "flip at {at}");
            assert_eq!(reading.skipped, record, "flip at {at}");
            assert!(!reading.is_whole());
        }
        let mut last = bytes.clone();
        if let Some(byte) = last.last_mut() {
            *byte ^= 1;
        }
        let reading = read(&last, 3);
        assert_eq!((reading.payloads.len(), reading.tail), (4, record));
        assert!(
            reading.tail_damaged && !reading.is_whole(),
            "a whole bad record is damage"
        );
        let mut header = bytes.clone();
        header[2] ^= 1;
        let reading = read(&header, 3);
        assert_eq!(
            (reading.header, reading.payloads.len()),
            (Header::Garbled, 5)
        );
        Ok(())
    }

    #[test]
    fn a_crash_replays_the_journal_but_never_a_stale_one() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let journal_path = dir.path().join(FILE_NAME);
        {
            let store = Store::open(dir.path())?;
            store.put(&[("a", stored(1, 5, 1))], &[])?;
            store.journal(
                &batch(&[("a", stored(2, 5, 2)), ("b", stored(1, 5, 1))]),
                &[],
            )?;
            store.journal(
                &batch(&[("a", stored(3, 6, 1))]),
                &[DayCount {
                    key: "a",
                    day: 5,
                    count: 2,
                }],
            )?;
            assert_eq!(store.get("a")?, Some(1), "the tree waits for a checkpoint");
            // Dropped without a checkpoint: a crash after two journal flushes.
        }
        let stale = {
            let store = Store::open(dir.path())?;
            assert_eq!(
                store.load("a")?,
                Some(stored(3, 6, 1)),
                "the later record wins"
            );
            assert_eq!(store.get_day("a", 5)?, Some(2));
            assert_eq!(store.get("b")?, Some(1));
            assert_eq!(std::fs::metadata(&journal_path)?.len(), HEADER_LEN as u64);
            store.journal(&batch(&[("a", stored(4, 6, 2))]), &[])?;
            let stale = std::fs::read(&journal_path)?;
            store.checkpoint(&batch(&[("a", stored(9, 6, 7))]), &[])?;
            stale
        };
        // A crash between a checkpoint's sled flush and its new journal file: the file of the
        // generation before is still there, and must not put its older counts back.
        std::fs::write(&journal_path, &stale)?;
        let store = Store::open(dir.path())?;
        assert_eq!(store.get("a")?, Some(9));
        assert_eq!(store.get("b")?, Some(1));
        Ok(())
    }

    #[test]
    fn after_a_failed_append_only_a_checkpoint_writes_again()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(FILE_NAME);
        {
            let store = Store::open(dir.path())?;
            // A read-only handle in place of the journal's: the next append fails.
            let writable = {
                let mut journal = store.lock_journal();
                let journal = journal.as_mut().ok_or("no journal")?;
                std::mem::replace(&mut journal.file.file, File::open(&path)?)
            };
            assert!(
                store
                    .journal(&batch(&[("a", stored(1, 1, 1))]), &[])
                    .is_err()
            );
            if let Some(journal) = store.lock_journal().as_mut() {
                journal.file.file = writable;
            }
            assert!(
                store
                    .journal(&batch(&[("a", stored(2, 1, 2))]), &[])
                    .is_err(),
                "refused until a checkpoint: the file may end in a torn record"
            );
            store.checkpoint(&batch(&[("a", stored(3, 1, 3))]), &[])?;
            store.journal(&batch(&[("a", stored(4, 1, 4))]), &[])?;
        }
        let store = Store::open(dir.path())?;
        assert_eq!(store.get("a")?, Some(4));
        Ok(())
    }
}
