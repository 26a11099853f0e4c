//! HTTP routes: one warp filter per endpoint and the state they get; every response gets the
//! common headers of [`crate::http::headers`]. What an endpoint does lives in [`crate::endpoints::count`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tower_service::Service;
use warp::filters::BoxedFilter;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::http::{Method, Request, StatusCode};
use warp::hyper::body::Incoming;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::endpoints::count::{App, Visit};
use crate::endpoints::page;
use crate::endpoints::{admin, reports};
use crate::http::error;
use crate::http::headers;
use crate::telemetry;

mod counting;

/// One endpoint's filter, boxed: a dynamic call per request keeps the route tree's type small
/// enough for the compiler (an unboxed tree of a dozen endpoints overflows its recursion limit).
pub(crate) type Route = BoxedFilter<(Response,)>;

/// Every route, with the common headers and the one `recover` for warp's rejections, made once;
/// [`Routes::service_for`] gives the service one connection is served with ([`crate::http::accept`]),
/// [`Routes::for_peer`] the filter it serves (as `warp::test` takes it).
///
/// The counting endpoints carry nearly all the traffic, so they sit first and unboxed, at the top
/// of the tree, and add the common headers themselves from the request headers they already
/// hold; the other endpoints are one boxed filter behind them, which never rejects: its
/// `recover` answers whatever no route took. (A left fold put counting under a dozen boxed `Or`
/// layers: an allocation and a dynamic call each, on every request; reading `Origin` with a
/// filter of its own in front of every route was one more layer that moved the request's state.)
pub struct Routes {
    app: Arc<App>,
    /// Every endpoint but the counting ones, boxed once for all connections.
    others: Route,
}

impl Routes {
    /// The routes of `app`.
    pub fn new(app: Arc<App>) -> Self {
        let mut others = vec![
            named("history_json", history_json(&app)),
            named("history_svg", history_svg(&app)),
            named("top_json", top_json(&app)),
            named("healthz", healthz(&app)),
        ];
        if let Some(handle) = app.metrics.clone() {
            others.push(named("metrics", metrics(handle)));
        }
        if app.settings.admin_token.is_none() {
            others.extend(
                admin::routes(&app, None)
                    .into_iter()
                    .map(|r| named("admin", r)),
            );
        }
        others.push(named("preflight", preflight().boxed()));
        // Last: it answers any other GET path that names an embedded file.
        others.push(named("web", page::files().boxed()));
        let others = others
            .into_iter()
            .reduce(|first, second| first.or(second).unify().boxed())
            .unwrap_or_else(|| {
                warp::any()
                    .and_then(|| async { Err(warp::reject::not_found()) })
                    .boxed()
            });
        // No `warp::trace::request()`: its span cost about 3% of a badge request, and the log
        // lines it gave are [`telemetry::request`]'s debug lines now.
        let others = optional_header("origin")
            .and(others.recover(error::rejection_reply).unify())
            .map(headers::add_common)
            .boxed();
        Self { app, others }
    }

    /// The filter for a connection from `peer` (`None` when there is no socket, as in tests
    /// through `warp::test`): the peer is in it, rather than in every request's extensions
    /// (`warp::addr::remote`), which cost an allocation and a map insert per request.
    pub fn for_peer(
        &self,
        peer: Option<SocketAddr>,
    ) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
        counting::route(&self.app, peer)
            .or(self.admin_for(peer))
            .unify()
            .or(self.others.clone())
            .unify()
    }

    /// The admin routes for a connection from `peer`, which they limit failed attempts by;
    /// made per connection (only with a token: without one, `others` answers `/admin` with
    /// `404`), never per request.
    fn admin_for(&self, peer: Option<SocketAddr>) -> Route {
        let routes = if self.app.settings.admin_token.is_some() {
            admin::routes(&self.app, peer)
        } else {
            Vec::new()
        };
        let admin = routes
            .into_iter()
            .map(|route| named("admin", route))
            .reduce(|first, second| first.or(second).unify().boxed())
            .unwrap_or_else(|| {
                warp::any()
                    .and_then(|| async { Err(warp::reject::not_found()) })
                    .boxed()
            });
        optional_header("origin")
            .and(admin)
            .map(headers::add_common)
            .boxed()
    }

    /// The service for a connection from `peer`, on every HTTP version: the filter of
    /// [`Routes::for_peer`].
    pub fn service_for(
        &self,
        peer: SocketAddr,
    ) -> impl Service<Request<Incoming>, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + use<> {
        warp::service(self.for_peer(Some(peer)))
    }
}

/// GET|HEAD /nocount/history.json?url=…&days=30 — daily counts, oldest first.
fn history_json(app: &Arc<App>) -> Route {
    warp::path!("nocount" / "history.json")
        .and(visit())
        .and(with_state(app))
        .then(|visit: Visit, app: Arc<App>| async move { reports::history_json(&app, &visit) })
        .boxed()
}

/// GET|HEAD /nocount/history.svg?url=…&days=30 — a sparkline of daily counts.
fn history_svg(app: &Arc<App>) -> Route {
    warp::path!("nocount" / "history.svg")
        .and(visit())
        .and(with_state(app))
        .then(|visit: Visit, app: Arc<App>| async move { reports::history_svg(&app, &visit) })
        .boxed()
}

/// GET|HEAD /nocount/top.json — the top domains and URLs, as last ranked in the background.
fn top_json(app: &Arc<App>) -> Route {
    warp::path!("nocount" / "top.json")
        .and(get_or_head())
        .and(with_state(app))
        .then(|app: Arc<App>| async move { reports::top_json(&app) })
        .boxed()
}

/// GET|HEAD /healthz — `200 ok` when the store answers, `503` otherwise.
fn healthz(app: &Arc<App>) -> Route {
    warp::path!("healthz")
        .and(get_or_head())
        .and(with_state(app))
        .then(|app: Arc<App>| async move { reports::healthz(&app) })
        .boxed()
}

/// GET|HEAD /metrics — Prometheus metrics (only with `--metrics`).
fn metrics(handle: PrometheusHandle) -> Route {
    warp::path!("metrics")
        .and(get_or_head())
        .map(move || reports::metrics(&handle))
        .boxed()
}

/// Counts each answer of `route` by its status, for `/metrics`.
fn named(name: &'static str, route: Route) -> Route {
    route
        .map(move |response: Response| {
            telemetry::request(name, response.status().as_u16());
            response
        })
        .boxed()
}

/// OPTIONS /* — answers a CORS preflight with 204.
fn preflight() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    // Not `warp::options()`: its MethodNotAllowed for every GET would outrank a 404 elsewhere.
    warp::method()
        .and_then(|method: Method| async move {
            if method == Method::OPTIONS {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .and(optional_header("access-control-request-headers"))
        .map(|requested: Option<HeaderValue>| {
            let mut response = Response::new(Default::default());
            *response.status_mut() = StatusCode::NO_CONTENT;
            let headers = response.headers_mut();
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            if let Some(requested) = requested {
                headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested);
            }
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
            response
        })
}

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
fn visit() -> impl Filter<Extract = (Visit,), Error = Rejection> + Clone {
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
fn query_and_headers() -> impl Filter<Extract = (String, HeaderMap), Error = Infallible> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        // Last, the biggest: each `and` after it would move the header map once more.
        .and(warp::header::headers_cloned())
}
