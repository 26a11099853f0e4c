//! Request errors: one enum for everything a request can fail with, and the one place that maps
//! each to a status and a reply (plain text, an SVG error badge, or JSON), logging as it does.

use std::borrow::Cow;

use bytes::Bytes;
use warp::http::StatusCode;
use warp::http::header::{self, HeaderValue};
use warp::reply::Response;

use crate::counting::HitError;
use crate::render::badge;
use crate::request::key::KeyError;
use crate::store::StoreError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither `?url=` nor a Referer names the page to count.
    #[error("no url given: pass ?url= or send a Referer")]
    NoTarget,
    /// The target is not a usable URL.
    #[error("bad url: {0}")]
    BadTarget(#[from] KeyError),
    /// A query parameter has a value the endpoint does not accept.
    #[error("bad {name}: {reason}")]
    BadParam {
        /// The parameter.
        name: &'static str,
        /// What it must be.
        reason: String,
    },
    /// The key is refused by `--allow` / `--deny`.
    #[error("refused: {0}")]
    Refused(&'static str),
    /// An admin request without the right bearer token.
    #[error("unauthorized: send Authorization: Bearer <admin token>")]
    Unauthorized,
    /// Too many failed admin authentications from this client; try again after the seconds.
    #[error("too many failed attempts: try again in {0} s")]
    TooManyAttempts(u64),
    /// A new page, and the counter holds its `--max-pages`; known pages still count.
    #[error("refused: the counter holds its maximum of {0} pages")]
    PageLimit(u64),
    /// A new page, and the client made its `--new-pages-per-minute`; try again after the seconds.
    #[error("too many new pages from this client: try again in {0} s")]
    TooManyNewPages(u64),
    /// An admin request's body is not what the route takes.
    #[error("bad body: {0}")]
    BadBody(&'static str),
    /// A counting endpoint asked with another method than GET or HEAD.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The store failed; the count is not lost, the request may be retried.
    #[error("the count store is unavailable, try again later")]
    Store(#[from] StoreError),
}

/// How the endpoint that failed answers: its errors take the same form as its successes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// `text/plain` with the reason.
    Text,
    /// An SVG error badge (so an `<img>` shows why), with the reason in its title.
    Svg,
    /// `{"error": "<reason>"}`.
    Json,
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl Error {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NoTarget | Error::BadTarget(_) | Error::BadParam { .. } | Error::BadBody(_) => {
                StatusCode::BAD_REQUEST
            }
            Error::Refused(_) => StatusCode::FORBIDDEN,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::TooManyAttempts(_) | Error::TooManyNewPages(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::PageLimit(_) => StatusCode::FORBIDDEN,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The few words an error badge has room for.
    fn badge_text(&self) -> Cow<'static, str> {
        match self {
            Error::NoTarget => "no url".into(),
            Error::BadTarget(KeyError::TooLong { .. }) => "url too long".into(),
            Error::BadTarget(_) => "bad url".into(),
            Error::BadParam { name, .. } => format!("bad {name}").into(),
            Error::Refused(_) => "refused".into(),
            Error::Unauthorized => "unauthorized".into(),
            Error::TooManyAttempts(_) => "too many attempts".into(),
            Error::PageLimit(_) => "page limit reached".into(),
            Error::TooManyNewPages(_) => "too many new pages".into(),
            Error::MethodNotAllowed => "bad method".into(),
            Error::BadBody(_) => "bad body".into(),
            Error::Store(_) => "unavailable".into(),
        }
    }

    /// The reply for this error in the endpoint's `output` form.
    pub fn into_response(self, output: Output) -> Response {
        let status = self.status();
        match &self {
            // Counted, and said once per interval by the flusher: not a line per request.
            Error::Store(cause) => tracing::debug!(%cause, "store failed during a request"),
            other => tracing::debug!(reason = %other, "bad request"),
        }
        let reason = self.to_string();
        let (body, content_type) = match output {
            Output::Text => (reason, "text/plain; charset=utf-8"),
            Output::Svg => (badge::error(&self.badge_text()), "image/svg+xml"),
            Output::Json => (
                serde_json::to_string(&ErrorBody { error: &reason })
                    .unwrap_or_else(|_| r#"{"error":"bad request"}"#.into()),
                "application/json",
            ),
        };
        let mut response = reply(status, content_type, body);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="hitcounter admin""#),
            );
        }
        if let Error::TooManyAttempts(seconds) | Error::TooManyNewPages(seconds) = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*seconds));
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            response.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
        }
        response
    }
}

impl Error {
    /// The error for a hit that was not counted at `now_ms`.
    pub fn from_hit(err: HitError, now_ms: u64) -> Self {
        match err {
            HitError::Store(err) => Error::Store(err),
            HitError::Full(max) => Error::PageLimit(max),
            // The allowance is per clock minute: the next one starts in this many seconds.
            HitError::TooManyNewPages => Error::TooManyNewPages(60 - now_ms / 1000 % 60),
        }
    }
}

/// A reply with `status`, a static content type and `body`, and the common headers
/// ([`crate::http::headers`]) already.
pub fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response {
    let mut response = Response::new(body.into().into());
    *response.status_mut() = status;
    *response.headers_mut() = crate::http::headers::for_reply(content_type);
    response
}

/// A `200` JSON reply of `body`. Serialising these plain structs cannot fail; if it ever did,
/// the reply says so.
pub(crate) fn json(body: &impl serde::Serialize) -> Response {
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

/// The reply for warp's own rejections, which here only mean "no route matched", or a body that
/// was too large or had no length.
pub fn rejection_reply(rejection: &warp::Rejection) -> Response {
    let (status, reason) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not found")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (StatusCode::PAYLOAD_TOO_LARGE, "body too large")
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (StatusCode::LENGTH_REQUIRED, "send a Content-Length")
    } else {
        tracing::debug!(?rejection, "request rejected");
        (StatusCode::BAD_REQUEST, "bad request")
    };
    reply(status, "text/plain; charset=utf-8", reason)
}
