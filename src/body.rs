//! Reused buffers for badge bodies. A badge is about 1.2 KB, past glibc's per-thread cache of
//! small blocks (up to 1,032 bytes): allocating and freeing one for every request took about 600
//! instructions of it. A body from [`filled`] goes back to a small shared pool when hyper drops
//! it after writing, for the next badge.

use std::sync::Mutex;

use bytes::Bytes;

/// Buffers a pool keeps at most: more than the requests one core has in flight at once.
const POOLED: usize = 64;
/// The largest buffer kept: a badge with a long label or a custom template may be bigger, but
/// need not stay allocated.
const MAX_KEPT: usize = 4096;

/// Buffers handed back; a plain mutex, held for a push or a pop.
struct Pool(Mutex<Vec<Vec<u8>>>);

static POOL: Pool = Pool(Mutex::new(Vec::new()));

/// A body of `len` bytes written by `fill` into a reused buffer.
pub fn filled(len: usize, fill: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    POOL.filled(len, fill)
}

impl Pool {
    fn filled(&'static self, len: usize, fill: impl FnOnce(&mut Vec<u8>)) -> Bytes {
        let mut buffer = self.lock().pop().unwrap_or_default();
        buffer.clear();
        buffer.reserve(len);
        fill(&mut buffer);
        Bytes::from_owner(Pooled(buffer, self))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // The vector of buffers stays consistent even if a holder panicked.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A buffer that goes back to its pool when the last `Bytes` of it is dropped.
struct Pooled(Vec<u8>, &'static Pool);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if self.0.capacity() <= MAX_KEPT {
            let mut pool = self.1.lock();
            if pool.len() < POOLED {
                pool.push(std::mem::take(&mut self.0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_hold_what_was_written_and_their_buffers_come_back() {
        let pool: &'static Pool = Box::leak(Box::new(Pool(Mutex::new(Vec::new()))));
        let first = pool.filled(5, |b| b.extend_from_slice(b"hello"));
        let clone = first.clone();
        assert_eq!(&first[..], b"hello");
        drop(first);
        assert!(pool.lock().is_empty(), "a clone keeps the buffer alive");
        assert_eq!(&clone[..], b"hello");
        let address = clone.as_ptr();
        drop(clone);
        assert_eq!(pool.lock().len(), 1);
        let second = pool.filled(3, |b| b.extend_from_slice(b"abc"));
        assert_eq!(&second[..], b"abc");
        assert_eq!(second.as_ptr(), address, "the buffer is reused");
        let big = pool.filled(MAX_KEPT + 1, |b| b.resize(MAX_KEPT + 1, b'x'));
        drop(big);
        assert!(pool.lock().is_empty(), "too big to keep");
        let many: Vec<Bytes> = (0..POOLED + 8)
            .map(|_| pool.filled(1, |b| b.push(b'x')))
            .collect();
        drop(many);
        assert_eq!(pool.lock().len(), POOLED, "the pool is bounded");
        assert_eq!(&filled(2, |b| b.extend_from_slice(b"ok"))[..], b"ok");
    }
}
