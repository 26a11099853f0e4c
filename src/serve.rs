//! The accept loop: one hyper connection per accepted socket, serving the routes made for that
//! socket's peer, until shutdown; then a drain that lets every connection finish its request.
//!
//! This is `warp::serve(...).graceful(...)` with two costs of every request taken out. warp hands
//! the peer's address to its filters through the request's extensions (a map allocated, grown
//! and freed for each request); here the filter is made per connection with the peer in it. And
//! warp's drain watches a channel on every poll of every connection; here a connection reads one
//! flag per poll and leaves its waker once, where the shutdown finds it. Together, with the
//! filter layer that read the address, they were about 890 instructions of a badge request's
//! 14,000 (callgrind). `examples/ceiling.rs` is served by this loop too.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Waker};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower_service::Service;
use warp::http::Request;
use warp::hyper::body::Incoming;
use warp::reply::Response;

/// Serves on `listener`, until `shutdown` resolves, the service `service_for` makes for each
/// connection's peer: for hitcounter, [`Routes::service_for`](crate::routes::Routes::service_for).
/// Then it stops accepting, asks every open connection to finish its current request and close,
/// and returns when all have closed.
pub async fn serve<S>(
    listener: TcpListener,
    service_for: impl Fn(SocketAddr) -> S,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let drain = Arc::new(Drain::default());
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
        let service = TowerToHyperService::new(service_for(peer));
        // Joined here, not in the task: a connection accepted just before shutdown is waited for.
        let mut watch = drain.join();
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let mut connection = pin!(connection);
            let mut closing = false;
            let result = poll_fn(|cx| {
                if !closing && watch.draining(cx) {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                connection.as_mut().poll(cx)
            })
            .await;
            if let Err(err) = result {
                tracing::debug!(%peer, cause = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    drain.close_all().await;
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
