//! What the counting endpoints do with a request: find the page's key, check it is allowed,
//! count it (unless a cookie, the visitor dedupe or the rate limit says not to), and render the
//! reply: text, an SVG badge, JSON or shields.io's endpoint JSON.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;

use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::clock::Clock;
use crate::config::{CookieSecure, DedupeMode, Settings};
use crate::counting::cache::Counts;
use crate::counting::top::Latest;
use crate::counting::{Counter, HitError};
use crate::http::error::{Error, Output, reply};
use crate::render::badge;
use crate::render::message::{self, NumberFormat, Show};
use crate::render::stamp::Stamps;
use crate::request::cookie::AntiRefresh;
use crate::request::guards::{
    Allowance, Dedupe, RateLimit, client_group, client_ip, forwarded_https, is_image_proxy,
};
use crate::request::key::{self, Key};
use crate::request::query::Query;
use crate::telemetry;

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

#[derive(Serialize)]
struct CountBody<'a> {
    url: &'a str,
    total: u64,
    today: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShieldsBody<'a> {
    schema_version: u8,
    label: &'a str,
    message: String,
    color: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    label_color: Option<&'a str>,
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

/// The reply of a counting endpoint in the form `render` names, for `key`'s `counts`.
fn counts_reply(app: &App, query: &Query, render: Render, counts: Counts, key: &str) -> Response {
    match render {
        Render::Text => reply(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            message::with_message(counts, Show::Total, NumberFormat::Plain, |total| {
                Bytes::copy_from_slice(total.as_bytes())
            }),
        ),
        Render::Svg => reply(
            StatusCode::OK,
            "image/svg+xml",
            badge_svg(app, query, counts, key),
        ),
        Render::Json => json(&CountBody {
            url: key,
            total: counts.total,
            today: counts.today,
        }),
        Render::Shields => {
            let look = query.look();
            json(&ShieldsBody {
                schema_version: 1,
                label: &look.label,
                message: message::message(counts, query.show, query.format),
                color: look.color.name(),
                label_color: look.label_color.as_ref().map(badge::Color::name),
            })
        }
    }
}

/// Why a counting request does not count, if it does not: a fresh anti-refresh cookie, a visitor
/// seen within the window, or a client past its rate limit.
fn suppressed(
    app: &App,
    visit: &Visit,
    key: &str,
    now_ms: u64,
    uses_cookie: bool,
) -> Option<&'static str> {
    if uses_cookie {
        let cookie = visit.headers.get(header::COOKIE).map(HeaderValue::as_bytes);
        if cookie.is_some_and(|c| app.cookies.is_fresh(key, c, now_ms)) {
            return Some("cookie");
        }
    }
    if app.dedupe.is_none() && app.rate_limit.is_none() {
        return None;
    }
    let ip = client(app, visit);
    if let Some(dedupe) = &app.dedupe {
        let user_agent = visit
            .headers
            .get(header::USER_AGENT)
            .map_or(&[][..], HeaderValue::as_bytes);
        let seen = dedupe.seen_recently(ip, user_agent, key, now_ms);
        telemetry::guard_size("dedupe", dedupe.len());
        if seen {
            return Some("dedupe");
        }
    }
    if let Some(limit) = &app.rate_limit {
        // Through GitHub's image proxy each page has its own allowance: a few addresses fetch
        // every README's badges.
        let allowance = ip.map(|ip| match is_image_proxy(&visit.headers) {
            true => Allowance::ProxiedPage(ip, page_hash(key)),
            false => Allowance::Client(ip),
        });
        let allowed = limit.allow(allowance, 1, now_ms);
        telemetry::guard_size("rate_limit", limit.len());
        if !allowed {
            return Some("rate_limit");
        }
    }
    None
}

/// The client's address (behind trusted proxies with `--trust-proxy`), one per IPv6 prefix: a
/// host given a /64 could otherwise rotate through it.
fn client(app: &App, visit: &Visit) -> Option<std::net::IpAddr> {
    let settings = &app.settings;
    client_ip(
        visit.peer,
        &visit.headers,
        settings.trust_proxy,
        &settings.trusted_proxies,
    )
    .map(|ip| client_group(ip, settings.ipv6_prefix))
}

/// How many times the client's allowance of new pages GitHub's image proxy has, shared by all
/// of it: a few addresses fetch the badges of every README on GitHub.
const IMAGE_PROXY_NEW_PAGES_SCALE: u32 = 10;

/// Whether the client may make one more new page this minute (`--new-pages-per-minute`).
fn new_page_allowed(app: &App, visit: &Visit) -> bool {
    let Some(limit) = &app.new_pages else {
        return true;
    };
    let (allowance, scale) = match is_image_proxy(&visit.headers) {
        true => (Some(Allowance::Proxy), IMAGE_PROXY_NEW_PAGES_SCALE),
        false => (client(app, visit).map(Allowance::Client), 1),
    };
    let allowed = limit.allow(allowance, scale, app.clock.now_ms());
    telemetry::guard_size("new_pages", limit.len());
    allowed
}

/// A page's hash for its own rate-limit allowance.
fn page_hash(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// The badge: the configured template when there is one and no `style` is asked for, else the
/// shields-style badge the query describes.
fn badge_svg(app: &App, query: &Query, counts: Counts, key: &str) -> Bytes {
    message::with_message(counts, query.show, query.format, |message| {
        match (&app.settings.svg_template, query.style) {
            (Some(template), None) => template.render(message, key).into(),
            // The default look needs no `Look` built (three allocations) nor hashed to find its
            // stamp.
            _ if !query.asks_for_look() => app.stamps.render_default(message),
            _ => app.stamps.render(&query.look(), message),
        }
    })
}

/// A JSON reply (for the other handler modules too). Serialising these plain structs cannot fail; if it ever did, the reply says so.
pub(crate) fn json(body: &impl Serialize) -> Response {
    match serde_json::to_string(body) {
        Ok(body) => reply(StatusCode::OK, "application/json", body),
        Err(err) => {
            tracing::error!(cause = %err, "cannot serialise a reply");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "application/json",
                r#"{"error":"cannot serialise the reply"}"#,
            )
        }
    }
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

/// Whether the cookie should be `Secure` (and `SameSite=None`).
fn is_secure(settings: &Settings, headers: &HeaderMap) -> bool {
    match settings.cookie_secure {
        CookieSecure::Always => true,
        CookieSecure::Never => false,
        CookieSecure::Auto => settings.trust_proxy && forwarded_https(headers),
    }
}
