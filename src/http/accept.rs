//! The accept loop: one hyper connection per accepted socket, serving the routes made for that
//! socket's peer, until shutdown; then a drain that lets every connection finish its request.
//! Every connection is held to [`Options`]: the connection caps ([`caps`]), the header and idle
//! timeouts ([`activity`]), a bound on a request head's size, and HTTP/2 only when asked for.
//!
//! This is `warp::serve(...).graceful(...)` with two costs of every request taken out. warp hands
//! the peer's address to its filters through the request's extensions (a map allocated, grown
//! and freed for each request); here the filter is made per connection with the peer in it. And
//! warp's drain watches a channel on every poll of every connection; here a connection reads one
//! flag per poll and leaves its waker once, where the shutdown finds it.
//! `examples/ceiling.rs` is served by this loop too.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower_service::Service;
use warp::http::Request;
use warp::hyper::body::Incoming;
use warp::reply::Response;

mod activity;
mod caps;
pub use activity::Timeouts;
use activity::{Activity, Tracked};
pub use caps::{Caps, default_total, raise_open_files_limit};

/// The most bytes of a request's head read before it is refused with `431`. The longest head a
/// browser sends the counter is under 12 KiB: a `--max-url-length` URL percent-encoded (6 KiB),
/// a Referer as long, a User-Agent and the counter's own cookies; 32 KiB leaves room for more
/// and keeps what 1,000 slow heads can pin to about 32 MiB.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// HTTP/2 streams one connection may have open at once.
pub const H2_MAX_STREAMS: u32 = 32;
/// Bytes of reply one HTTP/2 stream buffers for a peer that does not read them: with
/// [`H2_MAX_STREAMS`], a zero-window peer pins at most 32 × 64 KiB = 2 MiB a connection.
pub const H2_SEND_BUFFER: usize = 64 * 1024;

/// How connections are served.
#[derive(Debug, Clone)]
pub struct Options {
    /// The header and idle timeouts.
    pub timeouts: Timeouts,
    /// The connection caps.
    pub caps: Caps,
    /// Whether HTTP/2 (h2c) is served beside HTTP/1.
    pub http2: bool,
}

impl Options {
    /// The connection builder these options make.
    fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .max_buf_size(MAX_HEAD_BYTES)
            .timer(TokioTimer::new());
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(H2_MAX_STREAMS)
            .max_send_buf_size(H2_SEND_BUFFER)
            .max_header_list_size(MAX_HEAD_BYTES as u32);
        if self.http2 {
            builder
        } else {
            builder.http1_only()
        }
    }
}

/// Serves on `listener`, until `shutdown` resolves, the service `service_for` makes for each
/// connection's peer: for hitcounter, [`Routes::service_for`](crate::http::routes::Routes::service_for).
/// Then it stops accepting, asks every open connection to finish its current request and close,
/// and returns when all have closed.
pub async fn serve<S>(
    listener: TcpListener,
    service_for: impl Fn(SocketAddr) -> S,
    shutdown: impl Future<Output = ()>,
    options: Options,
) where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let drain = Arc::new(Drain::default());
    let counted = caps::Counted::new(options.caps.clone());
    let builder = options.builder();
    let timeouts = options.timeouts;
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) if is_per_connection(&err) => continue,
            Err(err) => {
                // Out of file descriptors, say: accepting again at once would spin.
                tracing::error!(cause = %err, "cannot accept connections; retrying in 1 s");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let admitted = match counted.admit(peer) {
            Ok(admitted) => admitted,
            Err(reason) => {
                // Best effort and never waiting: the socket is closed either way.
                let _ = stream.try_write(caps::refusal(reason).as_bytes());
                tracing::debug!(%peer, reason, "connection refused");
                continue;
            }
        };
        let service = TowerToHyperService::new(service_for(peer));
        // Joined here, not in the task: a connection accepted just before shutdown is waited for.
        let mut watch = drain.join();
        let builder = builder.clone();
        tokio::spawn(async move {
            let activity = Activity::new();
            let io = Tracked {
                inner: stream,
                activity: Arc::clone(&activity),
            };
            let connection = builder.serve_connection(TokioIo::new(io), service);
            let mut connection = pin!(connection);
            let mut closing = false;
            let mut timer = pin!(tokio::time::sleep(timeouts.header));
            let result = poll_fn(|cx| {
                if !closing && watch.draining(cx) {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                if let Poll::Ready(result) = connection.as_mut().poll(cx) {
                    return Poll::Ready(result.map_err(|err| err.to_string()));
                }
                timed_out(&activity, timeouts, timer.as_mut(), cx).map(Err)
            })
            .await;
            drop(admitted);
            if let Err(cause) = result {
                tracing::debug!(%peer, %cause, "connection ended with an error");
            }
        });
    }
    drop(listener);
    drain.close_all().await;
}

/// Ready with the reason once the connection's deadline ([`Activity::deadline`]) has passed;
/// else leaves `timer` set to wake the task at that deadline.
fn timed_out(
    activity: &Activity,
    timeouts: Timeouts,
    mut timer: std::pin::Pin<&mut tokio::time::Sleep>,
    cx: &mut Context<'_>,
) -> Poll<String> {
    loop {
        let (deadline, head) = activity.deadline(timeouts);
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if activity.deadline(timeouts).0 <= deadline {
            let what = if head { "header" } else { "idle" };
            return Poll::Ready(format!("closed by the {what} timeout"));
        }
    }
}

/// Whether an accept error concerns only the connection being accepted (its client gave up).
fn is_per_connection(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// The open connections, and whether they are being asked to close.
#[derive(Default)]
struct Drain {
    /// Set once, at shutdown; every connection reads it on every poll (one load).
    draining: AtomicBool,
    /// The wakers of open connections that have been polled, by connection. A mutex, not a
    /// concurrent map: it is locked when a connection first waits and when it closes, never per
    /// request, and the shutdown must see every waker left before it set `draining`.
    wakers: Mutex<HashMap<u64, Waker>>,
    /// Connection numbers.
    next: AtomicU64,
    /// Open connections, counted from accept to close.
    open: AtomicUsize,
    /// Told when the last connection closes while draining.
    closed: Notify,
}

impl Drain {
    /// Counts a new connection open; it counts as closed when the watch is dropped.
    fn join(self: &Arc<Self>) -> Watch {
        self.open.fetch_add(1, Ordering::AcqRel);
        Watch {
            drain: Arc::clone(self),
            id: self.next.fetch_add(1, Ordering::Relaxed),
            waker: None,
        }
    }

    fn wakers(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waker>> {
        // A waker map stays whole whatever panicked while it was held.
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks every open connection to close, and waits until all have.
    async fn close_all(&self) {
        self.draining.store(true, Ordering::SeqCst);
        // Under the lock: a connection that leaves its waker after this reads `draining` after
        // it too, and so sees it set.
        for (_, waker) in self.wakers().drain() {
            waker.wake();
        }
        while self.open.load(Ordering::Acquire) > 0 {
            // `notify_one` keeps a permit when nobody waits yet: a close between the check and
            // this wait is not missed.
            self.closed.notified().await;
        }
    }
}

/// One connection's place in the [`Drain`].
struct Watch {
    drain: Arc<Drain>,
    id: u64,
    /// The waker last left in the drain.
    waker: Option<Waker>,
}

impl Watch {
    /// Whether the connection should finish its request and close. Leaves the task's waker in the
    /// drain first, when it is not there yet (a task's waker does not change from poll to poll).
    fn draining(&mut self, cx: &Context<'_>) -> bool {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            let waker = cx.waker().clone();
            let mut wakers = self.drain.wakers();
            if self.drain.draining.load(Ordering::SeqCst) {
                return true;
            }
            wakers.insert(self.id, waker.clone());
            self.waker = Some(waker);
        }
        self.drain.draining.load(Ordering::Acquire)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.waker.is_some() {
            self.drain.wakers().remove(&self.id);
        }
        if self.drain.open.fetch_sub(1, Ordering::AcqRel) == 1
            && self.drain.draining.load(Ordering::SeqCst)
        {
            self.drain.closed.notify_one();
        }
    }
}
