//! Moving a request's parts from its connection to the filter that answers it, rather than
//! having warp's filters copy them out of the request.
//!
//! warp 0.4 has no filter that lends or moves a request's headers: `headers_cloned` copies the
//! map, and each extracting filter (path, method, query, headers) is one more layer that moves
//! the request's state along. A connection's service sees the request before warp does, and on
//! HTTP/1 it serves one request at a time (hyper reads the next only when the last answer is
//! done). So there the service can take the parts a route needs out of the request, leave them
//! in a slot of that connection, and the route, first in the filter tree, takes them back.
//! HTTP/2 streams are served side by side on one connection, and `warp::test` has no connection:
//! their requests keep their parts, and the route reads them with warp's filters.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tower_service::Service;
use warp::http::{Request, Version};
use warp::{Filter, Rejection};

/// One connection's slot: what its service took out of the request being served, until the
/// route takes it. A mutex, never contended: one request at a time reaches it, and it is
/// locked once to leave the parts and once to take them.
pub struct Handoff<T> {
    slot: Arc<Mutex<Option<T>>>,
}

impl<T> Handoff<T> {
    /// An empty slot, for one connection.
    pub fn new() -> Self {
        Self {
            slot: Arc::new(Mutex::new(None)),
        }
    }

    /// The parts left for the request being served, if its connection took any.
    pub fn take(&self) -> Option<T> {
        self.lock().take()
    }

    /// The filter that answers a request, with `answer`, from the parts `handoff` holds for it;
    /// it rejects (not found) when there are none, or no handoff. The parts go straight to
    /// `answer` in the one filter, and only its answer goes on through the filters: each `map`
    /// or `and` after this one would move the parts along once more.
    pub fn answer<R, A>(
        handoff: Option<Self>,
        answer: A,
    ) -> impl Filter<Extract = (R,), Error = Rejection> + Clone + use<T, R, A>
    where
        T: Send + 'static,
        R: Send + 'static,
        A: Fn(T) -> R + Clone + Send + Sync + 'static,
    {
        // A ready future, not an `async` block: nothing here waits.
        warp::any().and_then(move || {
            std::future::ready(
                handoff
                    .as_ref()
                    .and_then(Handoff::take)
                    .map(&answer)
                    .ok_or_else(warp::reject::not_found),
            )
        })
    }

    /// Leaves `parts` for the request about to be served (or `None`, so that nothing left by an
    /// earlier request is taken for this one).
    fn put(&self, parts: Option<T>) {
        *self.lock() = parts;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<T>> {
        // An `Option` stays whole whatever panicked while it was held.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Handoff<T> {
    fn clone(&self) -> Self {
        Self {
            slot: Arc::clone(&self.slot),
        }
    }
}

/// A connection's service: `take` picks a request's parts for the slot (taking them out of the
/// request, or returning `None` to leave it whole), then `inner` serves the request.
pub struct HandoffService<S, T, F> {
    inner: S,
    handoff: Handoff<T>,
    take: F,
}

impl<S, T, F> HandoffService<S, T, F> {
    /// `inner` with `take` in front of it, filling `handoff`, which the routes of `inner` read.
    pub fn new(inner: S, handoff: Handoff<T>, take: F) -> Self {
        Self {
            inner,
            handoff,
            take,
        }
    }
}

impl<S: Clone, T, F: Clone> Clone for HandoffService<S, T, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            handoff: self.handoff.clone(),
            take: self.take.clone(),
        }
    }
}

impl<S, B, T, F> Service<Request<B>> for HandoffService<S, T, F>
where
    S: Service<Request<B>>,
    F: Fn(&mut Request<B>) -> Option<T>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        // HTTP/1.0 and 1.1 only: there the answer to this request is made before the next one
        // is read. HTTP/2 and 3 requests keep their parts.
        if request.version() == Version::HTTP_11 || request.version() == Version::HTTP_10 {
            self.handoff.put((self.take)(&mut request));
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::{Ready, ready};

    use warp::http::HeaderValue;

    use super::*;

    /// Stands for the routes: takes what the connection left when the path says so, and answers
    /// with that and the number of headers the request still has.
    #[derive(Clone)]
    struct Routes(Handoff<String>);

    impl Service<Request<()>> for Routes {
        type Response = (Option<String>, usize);
        type Error = Infallible;
        type Future = Ready<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<()>) -> Self::Future {
            let taken = match request.uri().path() {
                "/leave" => None,
                _ => self.0.take(),
            };
            ready(Ok((taken, request.headers().len())))
        }
    }

    /// Takes the headers of a request to `/take` or `/leave`, and says how many there were.
    fn take(request: &mut Request<()>) -> Option<String> {
        matches!(request.uri().path(), "/take" | "/leave").then(|| {
            let headers = std::mem::take(request.headers_mut());
            format!("{} headers from {}", headers.len(), request.uri().path())
        })
    }

    fn request(path: &str, version: Version) -> Request<()> {
        let mut request = Request::new(());
        *request.uri_mut() = path.parse().unwrap_or_default();
        *request.version_mut() = version;
        let headers = request.headers_mut();
        headers.insert("referer", HeaderValue::from_static("https://a.example/"));
        headers.insert("origin", HeaderValue::from_static("https://b.example"));
        request
    }

    fn serve(
        service: &mut impl Service<
            Request<()>,
            Future = Ready<Result<(Option<String>, usize), Infallible>>,
        >,
        path: &str,
        version: Version,
    ) -> (Option<String>, usize) {
        match service.call(request(path, version)).into_inner() {
            Ok(answer) => answer,
        }
    }

    #[test]
    fn http1_requests_hand_their_parts_over_and_nothing_is_left_for_the_next() {
        let handoff = Handoff::new();
        let mut service = HandoffService::new(Routes(handoff.clone()), handoff, take);
        for version in [Version::HTTP_11, Version::HTTP_10] {
            assert_eq!(
                serve(&mut service, "/take", version),
                (Some("2 headers from /take".to_owned()), 0)
            );
            assert_eq!(serve(&mut service, "/other", version), (None, 2));
            // Left by a request whose route did not take it: the next request does not see it.
            assert_eq!(serve(&mut service, "/leave", version), (None, 0));
            assert_eq!(serve(&mut service, "/other", version), (None, 2));
        }
    }

    #[test]
    fn http2_requests_keep_their_parts() {
        let handoff = Handoff::new();
        let mut service = HandoffService::new(Routes(handoff.clone()), handoff, take);
        assert_eq!(serve(&mut service, "/take", Version::HTTP_2), (None, 2));
        assert_eq!(serve(&mut service, "/take", Version::HTTP_3), (None, 2));
    }
}
