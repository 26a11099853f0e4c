//! The headers every response carries (no caching, CORS), and replies that start with them.
//!
//! Most replies are one of a few content types: for those the whole header map is cloned from a
//! template made once, rather than built insert by insert (each insert hashes its name and
//! probes; the clone copies five entries).

use std::sync::LazyLock;

use warp::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use warp::reply::Response;

/// Headers a built map makes room for: its content type, the common ones, a cookie and the
/// credentials header.
const REPLY_HEADERS: usize = 10;

/// The content types with a template, as `error::reply` is given them.
const TEMPLATED: [&str; 3] = [
    "image/svg+xml",
    "text/plain; charset=utf-8",
    "application/json",
];

/// The common headers, `Access-Control-Allow-Origin: *` among them (an `Origin` replaces it).
///
/// No caching anywhere (so image proxies such as GitHub's re-fetch the badge), and CORS that lets
/// a page fetch with credentials. `Cache-Control` alone: HTTP/1.1 caches ignore `Pragma` and
/// `Expires` beside it, and every request would pay to insert and write them.
fn common() -> [(HeaderName, HeaderValue); 4] {
    [
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-store, must-revalidate, max-age=0"),
        ),
        (header::VARY, HeaderValue::from_static("Origin")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ),
    ]
}

/// A map with `content_type` and the common headers, in that order.
fn built(content_type: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(REPLY_HEADERS);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (name, value) in common() {
        headers.insert(name, value);
    }
    headers
}

static TEMPLATES: LazyLock<[HeaderMap; 3]> = LazyLock::new(|| TEMPLATED.map(built));

/// The headers of a reply of `content_type`: the type and the common headers.
pub(crate) fn for_reply(content_type: &'static str) -> HeaderMap {
    match TEMPLATED.iter().position(|known| *known == content_type) {
        Some(index) => TEMPLATES[index].clone(),
        None => built(content_type),
    }
}

/// Adds the common headers to `response`, with `origin` allowed (and credentials) when the
/// request named one.
///
/// `Vary` marks a map from [`for_reply`], which has the others already: nothing else sets it.
pub(crate) fn add_common(origin: Option<HeaderValue>, mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::VARY) {
        for (name, value) in common() {
            headers.insert(name, value);
        }
    }
    allow_origin(origin, response)
}

/// Allows `origin` (and credentials) on `response`, whose map came from [`for_reply`] and so has
/// the common headers already: what [`add_common`] does to such a reply, without looking for them.
pub(crate) fn allow_origin(origin: Option<HeaderValue>, mut response: Response) -> Response {
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_the_maps_they_stand_for() {
        for content_type in TEMPLATED {
            assert_eq!(for_reply(content_type), built(content_type));
        }
        assert_eq!(for_reply("text/csv").len(), 5);
    }

    #[test]
    fn common_headers_are_added_once_and_origin_wins() {
        let plain = add_common(None, Response::default());
        let templated = {
            let mut response = Response::default();
            *response.headers_mut() = for_reply("image/svg+xml");
            add_common(None, response)
        };
        assert_eq!(plain.headers().len(), 4);
        assert_eq!(templated.headers().len(), 5);
        let origin = HeaderValue::from_static("https://a.example");
        let mut response = Response::default();
        *response.headers_mut() = for_reply("image/svg+xml");
        let response = add_common(Some(origin.clone()), response);
        assert_eq!(
            response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some(&origin)
        );
        assert_eq!(
            response
                .headers()
                .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
            Some(&HeaderValue::from_static("true"))
        );
    }
}
