//! The counting endpoints' route: one filter for the eight counting paths.

use std::net::SocketAddr;
use std::sync::Arc;

use warp::http::Method;
use warp::http::header::{self, HeaderMap};
use warp::{Filter, Rejection};

use super::{Answer, query_and_headers};
use crate::endpoints::count::{self, App, Render, Visit};
use crate::http::error;

/// The counting endpoints, all `GET|HEAD` with `?url=…` or a Referer:
/// - `/count` and `/nocount`: the total as text;
/// - `/count/tag.svg` and `/nocount/tag.svg`: a badge (`style`, `label`, `color`, `labelColor`,
///   `format`, `show`);
/// - `/count.json` and `/nocount.json`: `{"url", "total", "today"}`;
/// - `/count/shields.json` and `/nocount/shields.json`: shields.io's endpoint schema.
///
/// The `/count…` ones count a hit unless anti-refresh says not to; `/nocount…` never count.
/// One filter for the eight: the path is looked up once, rather than tried against eight boxed
/// filters in turn (that chain and its allocations showed in the request profile). Another
/// method than GET or HEAD gets 405 here, but OPTIONS, which the preflight answers, and any
/// other path are left to the other routes.
pub(super) fn route(
    app: &Arc<App>,
    peer: Option<SocketAddr>,
) -> impl Filter<Extract = (Answer,), Error = Rejection> + Clone + use<> {
    let app = Arc::clone(app);
    // `map` with the state captured, not `with_state` and `then`: the handler is synchronous, and
    // each `and` or `then` layer moves the request's state along once more.
    warp::path::full()
        .and(warp::method())
        // A ready future, not an `async` block: nothing here waits.
        .and_then(|path: warp::path::FullPath, method: Method| {
            std::future::ready(
                endpoint(path.as_str(), &method)
                    .map(|endpoint| (endpoint, method))
                    .ok_or_else(warp::reject::not_found),
            )
        })
        .and(query_and_headers())
        .map(move |(endpoint, method), query, headers| {
            answer(
                &app,
                peer,
                Counted {
                    endpoint,
                    method,
                    query,
                    headers,
                },
            )
        })
}

/// Answers a counting request from `peer`.
fn answer(app: &App, peer: Option<SocketAddr>, counted: Counted) -> Answer {
    let Counted {
        endpoint: (name, counting, render),
        method,
        query,
        headers,
    } = counted;
    let origin = headers.get(header::ORIGIN).cloned();
    let visit = Visit {
        peer,
        method,
        query,
        headers,
    };
    let response = if visit.method == Method::GET || visit.method == Method::HEAD {
        count::count(app, &visit, counting, render)
    } else {
        error::Error::MethodNotAllowed.into_response(render.output())
    };
    Answer::new(name, response, &visit.method, origin)
}

/// A counting request's parts: its endpoint (as [`endpoint`] names it), method, raw
/// query string (empty if none) and headers.
struct Counted {
    endpoint: (&'static str, bool, Render),
    method: Method,
    query: String,
    headers: HeaderMap,
}

/// The counting endpoint a request of `method` to `path` is for: its metric name, whether it
/// counts, and its reply's form. `None` for any other path, and for OPTIONS, which the preflight
/// answers.
fn endpoint(path: &str, method: &Method) -> Option<(&'static str, bool, Render)> {
    if method == Method::OPTIONS {
        return None;
    }
    Some(match path {
        "/count" => ("count", true, Render::Text),
        "/nocount" => ("nocount", false, Render::Text),
        "/count/tag.svg" => ("count_svg", true, Render::Svg),
        "/nocount/tag.svg" => ("nocount_svg", false, Render::Svg),
        "/count.json" => ("count_json", true, Render::Json),
        "/nocount.json" => ("nocount_json", false, Render::Json),
        "/count/shields.json" => ("count_shields", true, Render::Shields),
        "/nocount/shields.json" => ("nocount_shields", false, Render::Shields),
        _ => return None,
    })
}
