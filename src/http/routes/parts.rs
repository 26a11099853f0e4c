//! The filters that take a request's parts for the endpoints: the state, the method, a header,
//! the query string and headers.

use std::convert::Infallible;
use std::sync::Arc;

use warp::http::Method;
use warp::http::header::{HeaderMap, HeaderValue};
use warp::{Filter, Rejection};

use crate::endpoints::count::{App, Visit};

/// Hands the shared state to a handler (as warp's `examples/todos.rs`).
pub(crate) fn with_state(
    app: &Arc<App>,
) -> impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone + use<> {
    let app = Arc::clone(app);
    warp::any().map(move || Arc::clone(&app))
}

/// GET or HEAD.
pub(crate) fn get_or_head() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

/// The value of header `name`, if the request has one.
///
/// `header::optional` first: a request without the header then costs no rejection (which
/// `header::value` allocates), and that is most requests for `Origin`. It refuses a value that is
/// not visible ASCII, which `header::value` then hands over as it came.
pub(crate) fn optional_header(
    name: &'static str,
) -> impl Filter<Extract = (Option<HeaderValue>,), Error = Infallible> + Clone {
    warp::header::optional::<HeaderValue>(name)
        .or(warp::header::value(name).map(Some))
        .unify()
        .or(warp::any().map(|| None))
        .unify()
}

/// GET or HEAD, with the query string and headers; without the peer, which only the counting
/// endpoints read (for visitor dedupe and rate limits).
pub(super) fn visit() -> impl Filter<Extract = (Visit,), Error = Rejection> + Clone {
    warp::get()
        .map(|| Method::GET)
        .or(warp::head().map(|| Method::HEAD))
        .unify()
        .and(query_and_headers())
        .map(|method, query, headers| Visit {
            peer: None,
            method,
            query,
            headers,
        })
}

/// The parts of a request a [`Visit`] holds besides its method and peer: the raw query string
/// (empty if none) and the headers.
pub(super) fn query_and_headers()
-> impl Filter<Extract = (String, HeaderMap), Error = Infallible> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        // Last, the biggest: each `and` after it would move the header map once more.
        .and(warp::header::headers_cloned())
}
