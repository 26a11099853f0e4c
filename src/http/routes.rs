//! HTTP routes: one warp filter per endpoint and the state they get; every response gets the
//! common headers of [`crate::http::headers`]. What an endpoint does lives in [`crate::endpoints::count`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use tower_service::Service;
use warp::filters::BoxedFilter;
use warp::http::header::{self, HeaderValue};
use warp::http::{Method, Request};
use warp::hyper::body::Incoming;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::endpoints::admin;
use crate::endpoints::count::App;
use crate::endpoints::page;
use crate::http::error;
use crate::http::headers;
use crate::telemetry;

mod counting;
mod others;
mod parts;

use others::{healthz, history_json, history_svg, metrics, preflight, top_json};
use parts::query_and_headers;
pub(crate) use parts::{get_or_head, optional_header, with_state};

/// One endpoint's filter, boxed: a dynamic call per request keeps the route tree's type small
/// enough for the compiler (an unboxed tree of a dozen endpoints overflows its recursion limit).
pub(crate) type Route = BoxedFilter<(Response,)>;

/// An endpoint's reply on its way to [`finish`], with what finishing it needs: the name
/// `/metrics` counts it under, and of the request, whether it was `HEAD` and its `Origin`.
pub(crate) struct Answer {
    route: &'static str,
    response: Response,
    head: bool,
    origin: Option<HeaderValue>,
}

impl Answer {
    /// The reply of the endpoint named `route` to a request of `method` from `origin`.
    pub(crate) fn new(
        route: &'static str,
        response: Response,
        method: &Method,
        origin: Option<HeaderValue>,
    ) -> Self {
        Self {
            route,
            response,
            head: method == Method::HEAD,
            origin,
        }
    }

    /// The reply of the endpoint named `route`, its request's method and `Origin` to be said
    /// ([`Answer::to`]).
    fn of(route: &'static str, response: Response) -> Self {
        Self::new(route, response, &Method::GET, None)
    }

    /// This answer, to a request of `method` from `origin`.
    fn to(self, method: &Method, origin: Option<HeaderValue>) -> Self {
        Self::new(self.route, self.response, method, origin)
    }
}

impl warp::Reply for Answer {
    fn into_response(self) -> Response {
        self.response
    }
}

/// Every route, made once, and the one step that ends every request ([`finish`]);
/// [`Routes::service_for`] gives the service one connection is served with
/// ([`crate::http::accept`]), [`Routes::for_peer`] the filter it serves (as `warp::test` takes it).
///
/// The counting endpoints carry nearly all the traffic, so they sit first and unboxed; the admin
/// routes (per connection, for their per-client lockout) and the other endpoints, boxed once, come
/// after. Each of the three answers every request for its paths, so that a request is counted
/// once, under its endpoint's name; the others' `recover` answers whatever no route took.
pub struct Routes {
    app: Arc<App>,
    /// Every endpoint but the counting and admin ones, boxed once for all connections.
    others: BoxedFilter<(Answer,)>,
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
        others.push(named("preflight", preflight().boxed()));
        // Last: it answers any other GET path that names an embedded file.
        others.push(named("web", page::files().boxed()));
        let others = one_of(others);
        // No `warp::trace::request()`: [`telemetry::request`] gives each request's debug line.
        let others = answering("none", others);
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
            .map(finish)
    }

    /// The admin routes for a connection from `peer`, which they limit failed attempts by;
    /// made per connection, never per request. They answer every `/admin` path (without a
    /// token, with `404`), their rejections included, so that those are counted as admin.
    fn admin_for(&self, peer: Option<SocketAddr>) -> BoxedFilter<(Answer,)> {
        let admin = one_of(admin::routes(&self.app, peer));
        warp::path::peek()
            .and_then(|path: warp::path::Peek| {
                std::future::ready(if path.segments().next() == Some("admin") {
                    Ok(())
                } else {
                    Err(warp::reject::not_found())
                })
            })
            .untuple_one()
            .and(answering("admin", named("admin", admin)))
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

/// The one step every reply takes, whichever endpoint made it: counted in `/metrics` under its
/// endpoint, given the common headers (and `origin`, when the request named one), and without
/// its body when the request was `HEAD` (which hyper's HTTP/2 would otherwise send).
fn finish(answer: Answer) -> Response {
    let Answer {
        route,
        mut response,
        head,
        origin,
    } = answer;
    telemetry::request(route, response.status().as_u16());
    if head {
        // The length a GET would have had stays said, as RFC 9110 §9.3.2 allows.
        if let Some(length) = warp::hyper::body::Body::size_hint(response.body()).exact() {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        *response.body_mut() = warp::hyper::body::Bytes::new().into();
    }
    headers::add_common(origin, response)
}

/// `routes`, whose answers are said to the request's method and `Origin`, and which answer
/// whatever request reaches them: a rejection (no route matched, a body too large or without a
/// length) becomes the reply of `fallback`. The counting route makes its [`Answer`] from the
/// request's parts it holds already; these routes, which carry little traffic, read them here.
fn answering(fallback: &'static str, routes: BoxedFilter<(Answer,)>) -> BoxedFilter<(Answer,)> {
    warp::method()
        .and(optional_header("origin"))
        .and(
            routes
                .recover(move |rejection: Rejection| async move {
                    Ok::<_, Infallible>(Answer::of(fallback, error::rejection_reply(&rejection)))
                })
                .unify(),
        )
        .map(|method: Method, origin, answer: Answer| answer.to(&method, origin))
        .boxed()
}

/// The first of `routes` that takes a request, tried in order; none rejects (not found).
fn one_of<T: Send + 'static>(routes: Vec<BoxedFilter<(T,)>>) -> BoxedFilter<(T,)> {
    routes
        .into_iter()
        .reduce(|first, second| first.or(second).unify().boxed())
        .unwrap_or_else(|| {
            warp::any()
                .and_then(|| async { Err::<T, _>(warp::reject::not_found()) })
                .boxed()
        })
}

/// `route`'s replies, as answers of the endpoint `name`.
fn named(name: &'static str, route: Route) -> BoxedFilter<(Answer,)> {
    route
        .map(move |response| Answer::of(name, response))
        .boxed()
}
