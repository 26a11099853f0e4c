//! Reused buffers for the bodies of stamped badges, private to [`super`]: a badge is larger than
//! glibc's per-thread cache of small blocks (up to 1,032 bytes), so a fresh one per request would
//! take the allocator's slow path. A body from [`filled`] goes back to a small pool of the thread
//! that drops it (hyper drops it after writing, on the runtime worker that serves the
//! connection), for the next badge. A pool per thread rather than one shared, so taking and
//! giving back a buffer takes no lock.
//!
//! A buffer remembers the [`StampId`] it was last filled from. Handed to the same stamp again,
//! it still holds that body, so only the bytes that vary need writing: for a count badge, its
//! digits rather than the whole badge.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

/// Buffers a pool keeps at most: more than the requests one core has in flight at once.
const POOLED: usize = 64;
/// The largest buffer kept: a badge with a long label or a custom template may be bigger, but
/// need not stay allocated.
const MAX_KEPT: usize = 4096;

/// Names one stamp's badges (bodies of one length that differ in a few known places) to the
/// pool. Never reused: each is a new number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StampId(u64);

impl StampId {
    /// An id unlike any other.
    pub(super) fn unique() -> Self {
        // Process-wide like the pools, so no buffer is taken for another `Stamps`' stamp's body.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// A buffer and the stamp whose body it holds, if it holds one whole.
type Held = (Vec<u8>, Option<StampId>);

/// Buffers handed back, on one thread; `RefCell` because only that thread sees them.
struct Pool(RefCell<Vec<Held>>);

thread_local! {
    static POOL: Pool = const { Pool(RefCell::new(Vec::new())) };
}

/// A body of `len` bytes from `stamp`, written by `fill` into a reused buffer. `fill` is told
/// whether the buffer already holds a body of `stamp` (`len` bytes of it), in which case it
/// need write only what varies; otherwise the buffer is empty.
pub(super) fn filled(stamp: StampId, len: usize, fill: impl FnOnce(&mut Vec<u8>, bool)) -> Bytes {
    let (mut buffer, held) = POOL.try_with(Pool::take).unwrap_or_default();
    let holds = held == Some(stamp) && buffer.len() == len;
    if !holds {
        buffer.clear();
        buffer.reserve(len);
    }
    fill(&mut buffer, holds);
    let stamp = (buffer.len() == len).then_some(stamp);
    Bytes::from_owner(Pooled { buffer, stamp })
}

impl Pool {
    /// A buffer handed back earlier, if there is one.
    fn take(&self) -> Held {
        self.0
            .try_borrow_mut()
            .ok()
            .and_then(|mut buffers| buffers.pop())
            .unwrap_or_default()
    }

    /// Keeps `buffer` for a later body, unless it is too big or the pool is full.
    fn give(&self, buffer: &mut Vec<u8>, stamp: Option<StampId>) {
        if buffer.capacity() > MAX_KEPT {
            return;
        }
        if let Ok(mut buffers) = self.0.try_borrow_mut()
            && buffers.len() < POOLED
        {
            buffers.push((std::mem::take(buffer), stamp));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.borrow().len()
    }
}

/// A buffer that goes back to the dropping thread's pool when the last `Bytes` of it is
/// dropped (while that thread's pool still exists: not while the thread is ending). Nothing
/// writes to it in between, so it still holds `stamp`'s body when it is handed out again.
struct Pooled {
    buffer: Vec<u8>,
    stamp: Option<StampId>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let _ = POOL.try_with(|pool| pool.give(&mut self.buffer, self.stamp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `text` whole, whatever the buffer holds.
    fn write(text: &'static [u8]) -> impl FnOnce(&mut Vec<u8>, bool) {
        move |buffer, _| {
            buffer.clear();
            buffer.extend_from_slice(text);
        }
    }

    #[test]
    fn bodies_hold_what_was_written_and_their_buffers_come_back() {
        // Each test runs on a thread of its own: this thread's pool starts empty.
        let pooled = || POOL.with(Pool::len);
        let stamp = StampId::unique();
        let first = filled(stamp, 5, write(b"hello"));
        let clone = first.clone();
        assert_eq!(&first[..], b"hello");
        drop(first);
        assert_eq!(pooled(), 0, "a clone keeps the buffer alive");
        assert_eq!(&clone[..], b"hello");
        let address = clone.as_ptr();
        drop(clone);
        assert_eq!(pooled(), 1);
        let second = filled(StampId::unique(), 3, write(b"abc"));
        assert_eq!(&second[..], b"abc");
        assert_eq!(second.as_ptr(), address, "the buffer is reused");
        drop(second);
        let big = filled(stamp, MAX_KEPT + 1, |b, _| b.resize(MAX_KEPT + 1, b'x'));
        let kept = pooled();
        drop(big);
        assert_eq!(pooled(), kept, "too big to keep");
        let many: Vec<Bytes> = (0..POOLED + 8)
            .map(|_| filled(stamp, 1, write(b"x")))
            .collect();
        drop(many);
        assert_eq!(pooled(), POOLED, "the pool is bounded");
    }

    /// Writes `<>digit.` whole, or only its digit into a buffer said to hold such a body; notes
    /// what it was told.
    fn digit(told: &RefCell<Vec<bool>>, digit: u8) -> impl FnOnce(&mut Vec<u8>, bool) + '_ {
        move |buffer, holds| {
            told.borrow_mut().push(holds);
            if holds {
                buffer[2] = digit;
            } else {
                assert!(buffer.is_empty(), "{buffer:?}");
                buffer.extend_from_slice(&[b'<', b'>', digit, b'.']);
            }
        }
    }

    #[test]
    fn a_buffer_is_said_to_hold_a_body_only_of_its_own_stamp_and_length() {
        let (one, other) = (StampId::unique(), StampId::unique());
        let told = RefCell::new(Vec::new());
        drop(filled(one, 4, digit(&told, b'1')));
        // The buffer holds `<>1.`: writing the digit alone gives the next body.
        assert_eq!(&filled(one, 4, digit(&told, b'2'))[..], b"<>2.");
        assert_eq!(&filled(other, 4, digit(&told, b'3'))[..], b"<>3.");
        // Not the length its stamp was given: not kept as that stamp's body.
        drop(filled(one, 5, digit(&told, b'4')));
        assert_eq!(&filled(one, 4, digit(&told, b'5'))[..], b"<>5.");
        assert_eq!(told.into_inner(), [false, true, false, false, false]);
    }

    #[test]
    fn a_body_dropped_on_another_thread_goes_to_that_threads_pool() {
        let body = filled(StampId::unique(), 2, write(b"ok"));
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
