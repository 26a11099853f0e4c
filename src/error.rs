//! Request errors: one enum for everything a request can fail with, and the one place that maps
//! each to a status and a reply (plain text or an SVG error badge), logging as it does.

use std::convert::Infallible;

use warp::http::{StatusCode, header};
use warp::reply::Response;

use crate::badge;
use crate::key::KeyError;
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
    /// The store failed; the count is not lost, the request may be retried.
    #[error("the count store is unavailable, try again later")]
    Store(#[from] StoreError),
}

/// How the endpoint that failed answers: its errors take the same form as its successes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain` with the reason.
    Text,
    /// An SVG error badge (so an `<img>` shows why), with the reason in its title.
    Svg,
}

impl Error {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NoTarget | Error::BadTarget(_) => StatusCode::BAD_REQUEST,
            Error::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The few words an error badge has room for.
    fn badge_text(&self) -> &'static str {
        match self {
            Error::NoTarget => "no url",
            Error::BadTarget(KeyError::TooLong { .. }) => "url too long",
            Error::BadTarget(_) => "bad url",
            Error::Store(_) => "unavailable",
        }
    }

    /// The reply for this error in the endpoint's `format`.
    pub fn into_response(self, format: Format) -> Response {
        let status = self.status();
        match &self {
            Error::Store(cause) => tracing::error!(%cause, "store failed during a request"),
            other => tracing::debug!(reason = %other, "bad request"),
        }
        match format {
            Format::Text => text(status, self.to_string()),
            Format::Svg => {
                let mut response = Response::new(badge::error(self.badge_text()).into());
                *response.status_mut() = status;
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("image/svg+xml"),
                );
                response
            }
        }
    }
}

/// A plain-text reply.
pub fn text(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The reply for warp's own rejections, which here only mean "no route matched".
pub async fn rejection_reply(rejection: warp::Rejection) -> Result<Response, Infallible> {
    let (status, reason) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not found")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else {
        tracing::debug!(?rejection, "request rejected");
        (StatusCode::BAD_REQUEST, "bad request")
    };
    Ok(text(status, reason.to_owned()))
}
