//! The filters of the endpoints other than counting and admin: the reports, health, metrics and
//! the CORS preflight.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use warp::http::header::{self, HeaderValue};
use warp::http::{Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::Route;
use super::parts::{get_or_head, optional_header, visit, with_state};
use crate::endpoints::count::{App, Visit};
use crate::endpoints::reports;

/// GET|HEAD /nocount/history.json?url=…&days=30 — daily counts, oldest first.
pub(super) fn history_json(app: &Arc<App>) -> Route {
    warp::path!("nocount" / "history.json")
        .and(visit())
        .and(with_state(app))
        .then(|visit: Visit, app: Arc<App>| async move { reports::history_json(&app, &visit) })
        .boxed()
}

/// GET|HEAD /nocount/history.svg?url=…&days=30 — a sparkline of daily counts.
pub(super) fn history_svg(app: &Arc<App>) -> Route {
    warp::path!("nocount" / "history.svg")
        .and(visit())
        .and(with_state(app))
        .then(|visit: Visit, app: Arc<App>| async move { reports::history_svg(&app, &visit) })
        .boxed()
}

/// GET|HEAD /nocount/top.json — the top domains and URLs, as last ranked in the background.
pub(super) fn top_json(app: &Arc<App>) -> Route {
    warp::path!("nocount" / "top.json")
        .and(get_or_head())
        .and(with_state(app))
        .then(|app: Arc<App>| async move { reports::top_json(&app) })
        .boxed()
}

/// GET|HEAD /healthz — `200 ok` when the store answers, `503` otherwise.
pub(super) fn healthz(app: &Arc<App>) -> Route {
    warp::path!("healthz")
        .and(get_or_head())
        .and(with_state(app))
        .then(|app: Arc<App>| async move { reports::healthz(&app) })
        .boxed()
}

/// GET|HEAD /metrics — Prometheus metrics (only with `--metrics`).
pub(super) fn metrics(handle: PrometheusHandle) -> Route {
    warp::path!("metrics")
        .and(get_or_head())
        .map(move || reports::metrics(&handle))
        .boxed()
}

/// OPTIONS /* — answers a CORS preflight with 204.
pub(super) fn preflight() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
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
