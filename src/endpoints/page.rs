//! The tool page: the files under `web/`, compiled into the binary with `include_dir` and served
//! with their content types and an `ETag` (a matching `If-None-Match` gets `304`).

use std::collections::HashMap;
use std::sync::LazyLock;

use include_dir::{Dir, include_dir};
use sha2::{Digest, Sha256};
use warp::http::StatusCode;
use warp::http::header::{self, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::http::routes::get_or_head;

/// Every file of `web/`, embedded at build time.
static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

/// The ETag of every embedded file (a hash of its contents), made once on first use.
static ETAGS: LazyLock<HashMap<&'static str, String>> = LazyLock::new(|| {
    let mut etags = HashMap::new();
    let mut dirs = vec![&WEB];
    while let Some(dir) = dirs.pop() {
        dirs.extend(dir.dirs());
        for file in dir.files() {
            if let Some(path) = file.path().to_str() {
                let digest = Sha256::digest(file.contents());
                let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                etags.insert(path, format!("\"{hex}\""));
            }
        }
    }
    etags
});

/// `GET|HEAD /` and `GET|HEAD /<file>` — the embedded page and its assets; anything else is no route.
pub fn files() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    get_or_head()
        .and(warp::path::tail())
        .and(
            warp::header::value("if-none-match")
                .map(Some)
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and_then(
            |tail: warp::path::Tail, if_none_match: Option<HeaderValue>| async move {
                let path = match tail.as_str() {
                    "" => "index.html",
                    path => path,
                };
                file(path, if_none_match.as_ref()).ok_or_else(warp::reject::not_found)
            },
        )
}

/// Whether an `If-None-Match` value names `etag` (or is `*`).
fn matches(if_none_match: &HeaderValue, etag: &str) -> bool {
    if_none_match.to_str().is_ok_and(|list| {
        list.split(',')
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == etag || tag == "*")
    })
}

/// The response for the embedded file at `path`, if there is one: `304` when the client's
/// `If-None-Match` already names its ETag.
fn file(path: &str, if_none_match: Option<&HeaderValue>) -> Option<Response> {
    let file = WEB.get_file(path)?;
    let etag = ETAGS.get(path)?;
    let etag_value = HeaderValue::try_from(etag.as_str()).ok()?;
    if if_none_match.is_some_and(|value| matches(value, etag)) {
        let mut response = Response::new(Default::default());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response.headers_mut().insert(header::ETAG, etag_value);
        return Some(response);
    }
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let content_type = if mime.type_() == mime_guess::mime::TEXT
        || mime.subtype() == mime_guess::mime::JAVASCRIPT
        || mime.subtype() == mime_guess::mime::SVG
    {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    let mut response = Response::new(file.contents().into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::try_from(content_type).ok()?,
    );
    response.headers_mut().insert(header::ETAG, etag_value);
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_assets_are_embedded_with_content_types() {
        let cases = [
            ("index.html", "text/html; charset=utf-8"),
            ("style.css", "text/css; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
        ];
        for (path, want) in cases {
            let response = file(path, None);
            let content_type = response
                .as_ref()
                .and_then(|r| r.headers().get(header::CONTENT_TYPE))
                .and_then(|v| v.to_str().ok());
            assert_eq!(content_type, Some(want), "{path}");
            let etag = response
                .as_ref()
                .and_then(|r| r.headers().get(header::ETAG))
                .cloned();
            let etag = etag.ok_or("no etag").map_err(|e| format!("{path}: {e}"));
            let revalidated = etag.map(|etag| file(path, Some(&etag)).map(|r| r.status()));
            assert_eq!(revalidated, Ok(Some(StatusCode::NOT_MODIFIED)), "{path}");
        }
        assert!(file("missing.html", None).is_none());
    }
}
