//! Hostile disks and damaged files: a full or read-only data dir, a damaged journal, counts at
//! their limit, and what long URLs cost on disk.
