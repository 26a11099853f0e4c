//! The tool page: the files under `web/`, compiled into the binary with `include_dir` and served
//! with their content types.

use include_dir::{Dir, include_dir};
use warp::http::header::{self, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::routes::get_or_head;

/// Every file of `web/`, embedded at build time.
static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

/// `GET|HEAD /` and `GET|HEAD /<file>` — the embedded page and its assets; anything else is no route.
pub fn files() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    get_or_head()
        .and(warp::path::tail())
        .and_then(|tail: warp::path::Tail| async move {
            let path = match tail.as_str() {
                "" => "index.html",
                path => path,
            };
            file(path).ok_or_else(warp::reject::not_found)
        })
}

/// The response for the embedded file at `path`, if there is one.
fn file(path: &str) -> Option<Response> {
    let file = WEB.get_file(path)?;
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
            let response = file(path);
            let content_type = response
                .as_ref()
                .and_then(|r| r.headers().get(header::CONTENT_TYPE))
                .and_then(|v| v.to_str().ok());
            assert_eq!(content_type, Some(want), "{path}");
        }
        assert!(file("missing.html").is_none());
    }
}
