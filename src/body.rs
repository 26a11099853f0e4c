//! Reused buffers for badge bodies. A badge is about 1.2 KB, past glibc's per-thread cache of
//! small blocks (up to 1,032 bytes): allocating and freeing one for every request took about 600
//! instructions of it. A body from [`filled`] goes back to a small pool of the thread that drops
//! it (hyper drops it after writing, on the runtime worker that serves the connection), for the
//! next badge. Per thread rather than shared: a mutex's lock and unlock, twice a request, cost
//! more than the rest of the pool's work.

use std::cell::RefCell;

use bytes::Bytes;

/// Buffers a pool keeps at most: more than the requests one core has in flight at once.
const POOLED: usize = 64;
/// The largest buffer kept: a badge with a long label or a custom template may be bigger, but
/// need not stay allocated.
const MAX_KEPT: usize = 4096;

/// Buffers handed back, on one thread; `RefCell` because only that thread sees them.
struct Pool(RefCell<Vec<Vec<u8>>>);

thread_local! {
    static POOL: Pool = const { Pool(RefCell::new(Vec::new())) };
}

/// A body of `len` bytes written by `fill` into a reused buffer.
pub fn filled(len: usize, fill: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut buffer = POOL.try_with(Pool::take).unwrap_or_default();
    buffer.clear();
    buffer.reserve(len);
    fill(&mut buffer);
    Bytes::from_owner(Pooled(buffer))
}

impl Pool {
    /// A buffer handed back earlier, if there is one.
    fn take(&self) -> Vec<u8> {
        self.0
            .try_borrow_mut()
            .ok()
            .and_then(|mut buffers| buffers.pop())
            .unwrap_or_default()
    }

    /// Keeps `buffer` for a later body, unless it is too big or the pool is full.
    fn give(&self, buffer: &mut Vec<u8>) {
        if buffer.capacity() > MAX_KEPT {
            return;
        }
        if let Ok(mut buffers) = self.0.try_borrow_mut()
            && buffers.len() < POOLED
        {
            buffers.push(std::mem::take(buffer));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.borrow().len()
    }
}

/// A buffer that goes back to the dropping thread's pool when the last `Bytes` of it is
/// dropped (while that thread's pool still exists: not while the thread is ending).
struct Pooled(Vec<u8>);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let _ = POOL.try_with(|pool| pool.give(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_hold_what_was_written_and_their_buffers_come_back() {
        // Each test runs on a thread of its own: this thread's pool starts empty.
        let pooled = || POOL.with(Pool::len);
        let first = filled(5, |b| b.extend_from_slice(b"hello"));
        let clone = first.clone();
        assert_eq!(&first[..], b"hello");
        drop(first);
        assert_eq!(pooled(), 0, "a clone keeps the buffer alive");
        assert_eq!(&clone[..], b"hello");
        let address = clone.as_ptr();
        drop(clone);
        assert_eq!(pooled(), 1);
        let second = filled(3, |b| b.extend_from_slice(b"abc"));
        assert_eq!(&second[..], b"abc");
        assert_eq!(second.as_ptr(), address, "the buffer is reused");
        drop(second);
        let big = filled(MAX_KEPT + 1, |b| b.resize(MAX_KEPT + 1, b'x'));
        let kept = pooled();
        drop(big);
        assert_eq!(pooled(), kept, "too big to keep");
        let many: Vec<Bytes> = (0..POOLED + 8)
            .map(|_| filled(1, |b| b.push(b'x')))
            .collect();
        drop(many);
        assert_eq!(pooled(), POOLED, "the pool is bounded");
    }

    #[test]
    fn a_body_dropped_on_another_thread_goes_to_that_threads_pool() {
        let body = filled(2, |b| b.extend_from_slice(b"ok"));
        let handed = std::thread::spawn(move || {
            assert_eq!(&body[..], b"ok");
            drop(body);
            POOL.with(Pool::len)
        })
        .join();
        assert!(matches!(handed, Ok(1)), "{handed:?}");
        assert_eq!(POOL.with(Pool::len), 0);
    }
}
