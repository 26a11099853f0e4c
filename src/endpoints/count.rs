//! What the counting endpoints do with a request: find the page's key, check it is allowed,
//! count it (unless a cookie, the visitor dedupe or the rate limit says not to), and render the
//! reply: text, an SVG badge, JSON or shields.io's endpoint JSON. Here the state and the steps;
//! `guards` says whether a visit counts, `reply` renders the reply.

use std::borrow::Cow;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use warp::http::Method;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::reply::Response;

use crate::clock::Clock;
use crate::config::{DedupeMode, Settings};
use crate::counting::cache::Counts;
use crate::counting::top::Latest;
use crate::counting::{Counter, HitError};
use crate::http::error::{Error, Output};
use crate::render::stamp::Stamps;
use crate::request::cookie::AntiRefresh;
use crate::request::guards::{Dedupe, RateLimit};
use crate::request::key::{self, Key};
use crate::request::query::Query;
use crate::telemetry;

mod guards;
mod reply;

use guards::{is_secure, new_page_allowed, suppressed};
use reply::counts_reply;

/// What every request handler shares.
pub struct App {
    /// The counts.
    pub counter: Arc<Counter>,
    /// Anti-refresh cookies, signed with the store's secret.
    pub cookies: AntiRefresh,
    /// The clock for cookie windows (the counter has the same one for days).
    pub clock: Arc<dyn Clock>,
    /// Recent target → key normalisations.
    pub keys: key::Memo,
    /// The stamps count badges are rendered from.
    pub stamps: Stamps,
    /// The latest ranking of top sites (refreshed in the background).
    pub top: Arc<Latest>,
    /// Cookieless dedupe, when `--dedupe` is `visitor` or `both`.
    pub dedupe: Option<Dedupe>,
    /// The per-client rate limit, when `--rate-limit` is above 0.
    pub rate_limit: Option<RateLimit>,
    /// The per-client allowance of new pages, when `--new-pages-per-minute` is above 0.
    pub new_pages: Option<RateLimit>,
    /// Failed admin authentications per client.
    pub admin_lockout: crate::endpoints::admin::Lockout,
    /// Renders `/metrics`, when `--metrics` is on.
    pub metrics: Option<PrometheusHandle>,
    /// The validated settings.
    pub settings: Settings,
}

/// The parts of a request the handlers read.
pub struct Visit {
    /// The socket peer (`None` for the reports, which do not read it).
    pub peer: Option<std::net::SocketAddr>,
    /// GET or HEAD (HEAD never counts).
    pub method: Method,
    /// The raw query string, empty if none.
    pub query: String,
    /// The request headers (Referer, Cookie, forwarding headers).
    pub headers: HeaderMap,
}

/// The form of a counting endpoint's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Render {
    /// The total as `text/plain`.
    Text,
    /// An SVG badge.
    Svg,
    /// `{"url", "total", "today"}`.
    Json,
    /// shields.io's endpoint schema.
    Shields,
}

impl Render {
    pub(crate) fn output(self) -> Output {
        match self {
            Render::Text => Output::Text,
            Render::Svg => Output::Svg,
            Render::Json | Render::Shields => Output::Json,
        }
    }
}

/// A counting endpoint: `/count…` when `counting`, `/nocount…` otherwise.
pub fn count(app: &App, visit: &Visit, counting: bool, render: Render) -> Response {
    try_count(app, visit, counting, render).unwrap_or_else(|err| err.into_response(render.output()))
}

fn try_count(app: &App, visit: &Visit, counting: bool, render: Render) -> Result<Response, Error> {
    let query = Query::parse(&visit.query)?;
    let key = target_key(app, &query, &visit.headers)?;
    if let Some(reason) = app.settings.url_rules.refusal(&key) {
        return Err(Error::Refused(reason));
    }
    // HEAD is a peek (link checkers, proxies probing): it never counts and never sets a cookie.
    let (counts, set_cookie) = if counting && visit.method != Method::HEAD {
        count_visit(app, visit, &key)?
    } else {
        (app.counter.peek(&key)?, None)
    };
    let mut response = counts_reply(app, &query, render, counts, &key);
    if let Some(set_cookie) = set_cookie.and_then(|c| HeaderValue::try_from(c).ok()) {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, set_cookie);
    }
    Ok(response)
}

/// Counts a visit to `key`, unless a cookie or a guard says not to: its counts, and the
/// anti-refresh cookie to set, if one is due.
fn count_visit(app: &App, visit: &Visit, key: &str) -> Result<(Counts, Option<String>), Error> {
    let uses_cookie = matches!(app.settings.dedupe, DedupeMode::Cookie | DedupeMode::Both)
        && app.cookies.enabled();
    // The time only matters to cookies and the guards; with none of them it is never read.
    let needs_clock = uses_cookie || app.dedupe.is_some() || app.rate_limit.is_some();
    let now_ms = if needs_clock { app.clock.now_ms() } else { 0 };
    if let Some(reason) = suppressed(app, visit, key, now_ms, uses_cookie) {
        telemetry::hit_suppressed(reason);
        return Ok((app.counter.peek(key)?, None));
    }
    let counts = hit(app, visit, key)?;
    let set_cookie = uses_cookie.then(|| {
        let secure = is_secure(&app.settings, &visit.headers);
        app.cookies.issue(key, now_ms, secure, &mut rand::rng())
    });
    Ok((counts, set_cookie))
}

/// Counts one hit of `key`; a new page only if the counter has room and the client allowance.
fn hit(app: &App, visit: &Visit, key: &str) -> Result<Counts, Error> {
    let new_page_allowed = || new_page_allowed(app, visit);
    let counts = app
        .counter
        .hit_if_new_allowed(key, &new_page_allowed)
        .map_err(|err| {
            match err {
                HitError::Full(_) => telemetry::new_page_refused("max_pages"),
                HitError::TooManyNewPages => telemetry::new_page_refused("new_pages_per_minute"),
                HitError::Store(_) => {}
            }
            Error::from_hit(err, app.clock.now_ms())
        })?;
    telemetry::hit_counted();
    Ok(counts)
}

/// The key of the page to count: `?url=` when present and non-empty, else `Referer`, else
/// `Referrer` (the original honours both spellings).
pub(crate) fn target_key<'a>(
    app: &App,
    query: &Query<'a>,
    headers: &'a HeaderMap,
) -> Result<Key<'a>, Error> {
    let target = match &query.url {
        Some(url) => url.clone(),
        None => ["referer", "referrer"]
            .iter()
            .filter_map(|name| headers.get(*name))
            .find(|value| !value.is_empty())
            .map(|value| String::from_utf8_lossy(value.as_bytes()))
            .ok_or(Error::NoTarget)?,
    };
    let max = app.settings.max_url_length;
    Ok(match target {
        Cow::Borrowed(target) => app.keys.normalise(target, max)?,
        // Decoded or repaired: the key cannot borrow from the request.
        Cow::Owned(target) => app.keys.normalise(&target, max)?.into_shared(),
    })
}
