//! What can go wrong with the store once it is open.

use sled::transaction::TransactionError;

/// A failure of the store after it was opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error (I/O, corruption).
    #[error("store error: {0}")]
    Sled(#[from] sled::Error),
    /// Reading, writing or syncing the journal file failed.
    #[error("journal error: {0}")]
    Journal(#[from] std::io::Error),
    /// The store was closed after a failed write and is not open again yet.
    #[error("the store is closed after a failed write, and not open again yet")]
    Closed,
    /// Opening the store again after a failed write failed.
    #[error("cannot open the store again: {0}")]
    Reopen(String),
    /// Two pages' ids are the same (never seen: [`super::encoding::ID_LEN`]); the page is refused
    /// rather than counted with the other.
    #[error("page {key:?} has the id of page {other:?}")]
    Collision {
        /// The page asked for.
        key: String,
        /// The page stored under its id.
        other: String,
    },
    /// A stored value has the wrong length: the data dir was written by something else.
    #[error("stored value for {key:?} is {len} bytes, too short")]
    BadValue {
        /// The key whose value is malformed.
        key: String,
        /// Its length in bytes.
        len: usize,
    },
}

/// The error of a sled transaction whose closure fails with a [`StoreError`].
pub(super) fn from_transaction(err: TransactionError<StoreError>) -> StoreError {
    match err {
        TransactionError::Abort(err) => err,
        TransactionError::Storage(err) => StoreError::Sled(err),
    }
}
