//! The store as the counter holds it: behind a lock, so that a store that failed a write can be
//! closed and opened again without a restart (sled refuses every operation, reads too, after
//! one failed write to its log).

use std::path::PathBuf;
use std::sync::{PoisonError, RwLock};

use crate::store::{Store, StoreError};

/// The counter's store, and where to open it again.
pub(super) struct HeldStore {
    /// An `RwLock`: every store operation holds it for reading (one uncontended atomic, and
    /// only on cache misses and flushes), a reopen for writing. `None` between closing a failed
    /// store and opening it again.
    store: RwLock<Option<Store>>,
    dir: PathBuf,
}

impl HeldStore {
    pub(super) fn new(store: Store) -> Self {
        Self {
            dir: store.dir().to_path_buf(),
            store: RwLock::new(Some(store)),
        }
    }

    /// Runs `work` on the store, or fails at once while it is closed.
    pub(super) fn with<T>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let held = self.store.read().unwrap_or_else(PoisonError::into_inner);
        match held.as_ref() {
            Some(store) => work(store),
            None => Err(StoreError::Closed),
        }
    }

    /// A handle on the store, for work that outlives a borrow (a streamed export); a reopen
    /// waits for the old store's handles to be dropped.
    pub(super) fn handle(&self) -> Result<Store, StoreError> {
        self.with(|store| Ok(store.clone()))
    }

    /// Whether the store answers a read.
    pub(super) fn answers(&self) -> bool {
        self.with(|store| Ok(store.is_healthy())).unwrap_or(false)
    }

    /// Closes the store and opens it again from its directory, replaying its journal. Blocking.
    pub(super) fn reopen(&self) -> Result<(), StoreError> {
        let mut held = self.store.write().unwrap_or_else(PoisonError::into_inner);
        // Dropped first: sled's lock on the directory goes with the last handle.
        drop(held.take());
        let store = Store::open(&self.dir).map_err(|err| StoreError::Reopen(err.to_string()))?;
        *held = Some(store);
        Ok(())
    }
}
