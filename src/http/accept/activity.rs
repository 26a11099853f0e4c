//! A connection's clock: the socket wrapped so that its reads and writes are noted, and the
//! deadline they set. A request's head (the bytes read since the last reply began, or since
//! accept) must arrive within the header timeout; a connection with no traffic at all is closed
//! after the idle timeout, which also ends peers that stop reading a reply.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The two timeouts a connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A request's head must arrive within this.
    pub header: Duration,
    /// A connection without traffic is closed after this.
    pub idle: Duration,
}

/// What the socket saw, in milliseconds since accept; atomics because hyper owns the socket
/// while the connection task reads them (both in one task: relaxed is enough).
#[derive(Debug)]
pub(super) struct Activity {
    accepted: Instant,
    /// The latest read or write.
    last: AtomicU64,
    /// When the bytes of the head being read began (at accept for the first).
    head_since: AtomicU64,
    /// Whether a head is being read: set by a read after a write (or at accept), cleared by a
    /// write (a reply began).
    in_head: AtomicBool,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            accepted: Instant::now(),
            last: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            in_head: AtomicBool::new(true),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn read(&self) {
        let now = self.now_ms();
        self.last.store(now, Ordering::Relaxed);
        if !self.in_head.swap(true, Ordering::Relaxed) {
            self.head_since.store(now, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last.store(self.now_ms(), Ordering::Relaxed);
        self.in_head.store(false, Ordering::Relaxed);
    }

    /// When the connection must be closed unless more traffic comes, and whether that would be
    /// for a slow head (rather than idleness).
    pub(super) fn deadline(&self, timeouts: Timeouts) -> (Instant, bool) {
        let at = |ms: u64, after: Duration| {
            self.accepted + Duration::from_millis(ms).saturating_add(after)
        };
        let idle = at(self.last.load(Ordering::Relaxed), timeouts.idle);
        if self.in_head.load(Ordering::Relaxed) {
            let head = at(self.head_since.load(Ordering::Relaxed), timeouts.header);
            if head < idle {
                return (head, true);
            }
        }
        (idle, false)
    }
}

/// A socket whose traffic is noted in an [`Activity`].
pub(super) struct Tracked<S> {
    pub(super) inner: S,
    pub(super) activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
