//! HTTP routes: one warp filter per endpoint, the state they share, and the headers every
//! response carries (no-cache, CORS).

use std::convert::Infallible;
use std::sync::Arc;

use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::http::{Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::badge;
use crate::clock::Clock;
use crate::config::{CookieSecure, Settings};
use crate::cookie::AntiRefresh;
use crate::counter::Counter;
use crate::error::{self, Error, Format};
use crate::key;
use crate::web;

/// What every request handler shares.
pub struct App {
    /// The counts.
    pub counter: Arc<Counter>,
    /// Anti-refresh cookies, signed with the store's secret.
    pub cookies: AntiRefresh,
    /// The clock for cookie windows (the counter has the same one for days).
    pub clock: Arc<dyn Clock>,
    /// The validated settings.
    pub settings: Settings,
}

/// Every route, with the common headers and the one `recover` for warp's rejections.
pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone {
    let endpoints = count_text(app.clone())
        .or(nocount_text(app.clone()))
        .unify()
        .or(count_svg(app.clone()))
        .unify()
        .or(nocount_svg(app))
        .unify()
        .or(preflight())
        .unify()
        .or(web::files())
        .unify()
        .recover(error::rejection_reply)
        .unify();
    optional_header("origin")
        .and(endpoints)
        .map(common_headers)
        .with(warp::trace::request())
}

/// GET|HEAD /count?url=… — counts a hit (unless anti-refresh says not to), replies with the count
/// as text.
fn count_text(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("count")
        .and(visit())
        .and(with_state(app))
        .then(|visit: Visit, app: Arc<App>| async move { answer(&app, &visit, true, Format::Text) })
}

/// GET|HEAD /nocount?url=… — replies with the count as text; never counts, never sets a cookie.
fn nocount_text(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("nocount")
        .and(visit())
        .and(with_state(app))
        .then(
            |visit: Visit, app: Arc<App>| async move { answer(&app, &visit, false, Format::Text) },
        )
}

/// GET|HEAD /count/tag.svg?url=… — as `/count`, replying with an SVG badge.
fn count_svg(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("count" / "tag.svg")
        .and(visit())
        .and(with_state(app))
        .then(|visit: Visit, app: Arc<App>| async move { answer(&app, &visit, true, Format::Svg) })
}

/// GET|HEAD /nocount/tag.svg?url=… — as `/nocount`, replying with an SVG badge.
fn nocount_svg(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("nocount" / "tag.svg")
        .and(visit())
        .and(with_state(app))
        .then(|visit: Visit, app: Arc<App>| async move { answer(&app, &visit, false, Format::Svg) })
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
fn with_state(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone {
    warp::any().map(move || Arc::clone(&app))
}

/// GET or HEAD.
pub(crate) fn get_or_head() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

/// The value of header `name`, if the request has one.
fn optional_header(
    name: &'static str,
) -> impl Filter<Extract = (Option<HeaderValue>,), Error = Infallible> + Clone {
    warp::header::value(name)
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
}

/// The parts of a counting request the handler reads.
struct Visit {
    method: Method,
    query: String,
    headers: HeaderMap,
}

/// GET or HEAD, with the query string and headers.
fn visit() -> impl Filter<Extract = (Visit,), Error = Rejection> + Clone {
    get_or_head()
        .and(warp::method())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .map(|method, query, headers| Visit {
            method,
            query,
            headers,
        })
}

/// Answers a request on a counting route: finds the key, counts if asked to, renders the reply.
fn answer(app: &App, visit: &Visit, counting: bool, format: Format) -> Response {
    match try_answer(app, visit, counting, format) {
        Ok(response) => response,
        Err(err) => err.into_response(format),
    }
}

fn try_answer(app: &App, visit: &Visit, counting: bool, format: Format) -> Result<Response, Error> {
    let key = target_key(visit, app.settings.max_url_length)?;
    // HEAD is a peek (link checkers, proxies probing): it never counts and never sets a cookie.
    let counting = counting && visit.method != Method::HEAD;
    let now_ms = app.clock.now_ms();
    let cookie = visit.headers.get(header::COOKIE).map(HeaderValue::as_bytes);
    let (total, set_cookie) =
        if counting && !cookie.is_some_and(|c| app.cookies.is_fresh(&key, c, now_ms)) {
            let total = app.counter.hit(&key)?.total;
            let set_cookie = app.cookies.enabled().then(|| {
                let secure = is_secure(&app.settings, &visit.headers);
                app.cookies.issue(&key, now_ms, secure, &mut rand::rng())
            });
            (total, set_cookie)
        } else {
            (app.counter.peek(&key)?.total, None)
        };
    let mut response = match format {
        Format::Text => error::text(StatusCode::OK, total.to_string()),
        Format::Svg => {
            let svg = match &app.settings.svg_template {
                Some(template) => template.render(total, &key),
                None => badge::count(total),
            };
            let mut response = Response::new(svg.into());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            );
            response
        }
    };
    if let Some(set_cookie) = set_cookie.and_then(|c| HeaderValue::try_from(c).ok()) {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, set_cookie);
    }
    Ok(response)
}

/// The key of the page to count: `?url=` when present and non-empty, else `Referer`, else
/// `Referrer` (the original honours both spellings).
fn target_key(visit: &Visit, max_len: usize) -> Result<String, Error> {
    let from_query = url::form_urlencoded::parse(visit.query.as_bytes())
        .find(|(name, value)| name == "url" && !value.is_empty())
        .map(|(_, value)| value);
    let target = match from_query {
        Some(target) => target,
        None => ["referer", "referrer"]
            .iter()
            .filter_map(|name| visit.headers.get(*name))
            .find(|value| !value.is_empty())
            .map(|value| String::from_utf8_lossy(value.as_bytes()))
            .ok_or(Error::NoTarget)?,
    };
    Ok(key::normalise(&target, max_len)?)
}

/// Whether the cookie should be `Secure` (and `SameSite=None`).
fn is_secure(settings: &Settings, headers: &HeaderMap) -> bool {
    match settings.cookie_secure {
        CookieSecure::Always => true,
        CookieSecure::Never => false,
        CookieSecure::Auto => settings.trust_proxy && forwarded_https(headers),
    }
}

/// Whether a proxy says the client used HTTPS (`X-Forwarded-Proto` or `Forwarded: proto=`).
fn forwarded_https(headers: &HeaderMap) -> bool {
    let first_is_https = |value: &HeaderValue| {
        value.to_str().ok().is_some_and(|v| {
            v.split(',')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        })
    };
    if let Some(proto) = headers.get("x-forwarded-proto") {
        return first_is_https(proto);
    }
    headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| {
            first.split(';').any(|pair| {
                pair.trim().split_once('=').is_some_and(|(k, v)| {
                    k.eq_ignore_ascii_case("proto")
                        && v.trim_matches('"').eq_ignore_ascii_case("https")
                })
            })
        })
}

/// Adds the headers every response carries: no caching anywhere (so image proxies such as
/// GitHub's re-fetch the badge) and CORS that lets a page fetch with credentials.
fn common_headers(origin: Option<HeaderValue>, mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate, max-age=0"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::EXPIRES, HeaderValue::from_static("0"));
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    match origin {
        Some(origin) => {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        None => {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
    response
}
