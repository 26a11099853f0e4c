//! What the guards say about a visit: whether it counts (a fresh cookie, a visitor seen within
//! the window, a client past its rate limit), whether it may make a new page, and whether its
//! cookie is `Secure`.

use warp::http::header::{self, HeaderMap, HeaderValue};

use super::{App, Visit};
use crate::config::{CookieSecure, Settings};
use crate::request::guards::{Allowance, client_group, client_ip, forwarded_https, is_image_proxy};
use crate::telemetry;

/// Why a counting request does not count, if it does not: a fresh anti-refresh cookie, a visitor
/// seen within the window, or a client past its rate limit.
pub(super) fn suppressed(
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
        // GitHub's image proxy fetches every README from a few addresses: an allowance per page.
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
pub(super) fn new_page_allowed(app: &App, visit: &Visit) -> bool {
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

/// Whether the cookie should be `Secure` (and `SameSite=None`).
pub(super) fn is_secure(settings: &Settings, headers: &HeaderMap) -> bool {
    match settings.cookie_secure {
        CookieSecure::Always => true,
        CookieSecure::Never => false,
        CookieSecure::Auto => settings.trust_proxy && forwarded_https(headers),
    }
}
