//! The admin API, present only with `--admin-token`: set or delete a page's count (through the
//! front cache, durable on return) and stream every count as JSON Lines. Every request must send
//! `Authorization: Bearer <token>`; the token is compared in constant time.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use warp::http::StatusCode;
use warp::http::header::HeaderValue;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::counting::blocking;
use crate::endpoints::count::{App, target_key};
use crate::http::error::{Error, Output, json, reply};
use crate::http::routes::{Route, get_or_head, optional_header, with_state};
use crate::request::guards::{client_group, client_ip};
use crate::request::query::Query;

mod export;
mod lockout;
pub use lockout::{FAILURES_PER_MINUTE, Lockout};

/// A refusal on a route that must not read the body first: a wrong or missing token, or (with
/// the seconds to wait) too many failed attempts.
#[derive(Debug)]
struct Denied(Option<u64>);

impl warp::reject::Reject for Denied {}

/// The largest body `PUT /admin/count` reads: a total is at most 20 digits.
const MAX_BODY: u64 = 32;

/// The admin routes for a connection from `peer` (failed attempts are limited per client).
/// Without a configured token they do not exist: every `/admin/…` request, whatever its
/// method, gets `404`.
pub fn routes(app: &Arc<App>, peer: Option<SocketAddr>) -> Vec<Route> {
    if app.settings.admin_token.is_none() {
        let absent = warp::path("admin")
            .and(warp::path::tail())
            .map(|_| {
                reply(
                    StatusCode::NOT_FOUND,
                    "text/plain; charset=utf-8",
                    "not found",
                )
            })
            .boxed();
        return vec![absent];
    }
    vec![
        set_count(app, peer),
        delete_count(app, peer),
        export(app, peer),
    ]
}

/// The client a request comes from, as every per-client limit groups it.
fn client(
    app: &Arc<App>,
    peer: Option<SocketAddr>,
) -> impl Filter<Extract = (Option<IpAddr>,), Error = std::convert::Infallible> + Clone + use<> {
    let app = Arc::clone(app);
    warp::header::headers_cloned().map(move |headers| {
        let settings = &app.settings;
        client_ip(
            peer,
            &headers,
            settings.trust_proxy,
            &settings.trusted_proxies,
        )
        .map(|ip| client_group(ip, settings.ipv6_prefix))
    })
}

/// PUT /admin/count?url=… with the total as the body — sets a page's total.
fn set_count(app: &Arc<App>, peer: Option<SocketAddr>) -> Route {
    let set = optional_header("authorization")
        .and(client(app, peer))
        .and(with_state(app))
        .and_then(
            |auth: Option<HeaderValue>, client: Option<IpAddr>, app: Arc<App>| async move {
                // The token is checked before any body is read.
                match authorize(&app, client, auth) {
                    Ok(()) => Ok(app),
                    Err(Error::TooManyAttempts(wait)) => {
                        Err(warp::reject::custom(Denied(Some(wait))))
                    }
                    Err(_) => Err(warp::reject::custom(Denied(None))),
                }
            },
        )
        .and(raw_query())
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .then(|app: Arc<App>, query: String, body: Bytes| async move {
            set(&app, &query, &body)
                .await
                .unwrap_or_else(|e| e.into_response(Output::Text))
        })
        // Once path and method matched, every refusal is this route's answer (401, 413, 411),
        // not a rejection that another route's 405 would outrank.
        .recover(|rejection: Rejection| async move {
            match rejection.find::<Denied>() {
                Some(Denied(Some(wait))) => {
                    return Ok(Error::TooManyAttempts(*wait).into_response(Output::Text));
                }
                Some(Denied(None)) => return Ok(Error::Unauthorized.into_response(Output::Text)),
                None => {}
            }
            Ok::<_, std::convert::Infallible>(crate::http::error::rejection_reply(&rejection))
        })
        .unify();
    warp::path!("admin" / "count")
        .and(warp::put())
        .and(set)
        .boxed()
}

/// DELETE /admin/count?url=… — removes a page's count and its days.
fn delete_count(app: &Arc<App>, peer: Option<SocketAddr>) -> Route {
    warp::path!("admin" / "count")
        .and(warp::delete())
        .and(optional_header("authorization"))
        .and(client(app, peer))
        .and(raw_query())
        .and(with_state(app))
        .then(
            |auth: Option<HeaderValue>, client, query: String, app: Arc<App>| async move {
                delete(&app, client, auth, &query)
                    .await
                    .unwrap_or_else(|e| e.into_response(Output::Text))
            },
        )
        .boxed()
}

/// GET /admin/export — every count as JSON Lines, streamed.
fn export(app: &Arc<App>, peer: Option<SocketAddr>) -> Route {
    warp::path!("admin" / "export")
        .and(get_or_head())
        .and(optional_header("authorization"))
        .and(client(app, peer))
        .and(with_state(app))
        .then(
            |auth: Option<HeaderValue>, client, app: Arc<App>| async move {
                stream_export(&app, client, auth)
                    .await
                    .unwrap_or_else(|e| e.into_response(Output::Text))
            },
        )
        .boxed()
}

fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// Checks the bearer token in constant time (of the token's length too: digests are compared),
/// unless `client` has failed too often this minute ([`Lockout`]).
fn authorize(app: &App, client: Option<IpAddr>, auth: Option<HeaderValue>) -> Result<(), Error> {
    let now_ms = app.clock.now_ms();
    app.admin_lockout
        .check(client, now_ms)
        .map_err(Error::TooManyAttempts)?;
    let expected = app.settings.admin_token.as_deref().unwrap_or_default();
    let given = auth
        .as_ref()
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    let same = Sha256::digest(given).ct_eq(&Sha256::digest(expected.as_bytes()));
    if auth.is_some() && bool::from(same) {
        Ok(())
    } else {
        app.admin_lockout.failed(client, now_ms);
        Err(Error::Unauthorized)
    }
}

/// The page an admin request names: `?url=` only (an admin tool sends no Referer).
fn admin_key(app: &App, raw_query: &str) -> Result<String, Error> {
    let query = Query::parse(raw_query)?;
    if query.url.is_none() {
        return Err(Error::NoTarget);
    }
    target_key(app, &query, &Default::default()).map(|key| key.to_string())
}

#[derive(Serialize)]
struct SetBody<'a> {
    url: &'a str,
    total: u64,
}

#[derive(Serialize)]
struct DeleteBody<'a> {
    url: &'a str,
    deleted: bool,
}

/// Sets the total; the caller has checked the token.
async fn set(app: &App, query: &str, body: &[u8]) -> Result<Response, Error> {
    let key = admin_key(app, query)?;
    let total = std::str::from_utf8(body)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .ok_or(Error::BadBody("send the total as a whole number"))?;
    let counter = Arc::clone(&app.counter);
    let key_for_set = key.clone();
    blocking(move || counter.set(&key_for_set, total)).await?;
    tracing::info!(total, "admin set a count");
    Ok(json(&SetBody { url: &key, total }))
}

async fn delete(
    app: &App,
    client: Option<IpAddr>,
    auth: Option<HeaderValue>,
    query: &str,
) -> Result<Response, Error> {
    authorize(app, client, auth)?;
    let key = admin_key(app, query)?;
    let counter = Arc::clone(&app.counter);
    let key_for_delete = key.clone();
    let deleted = blocking(move || counter.delete(&key_for_delete)).await?;
    tracing::info!(deleted, "admin deleted a count");
    Ok(json(&DeleteBody { url: &key, deleted }))
}

/// Streams every count, once the token is checked ([`export::stream`]).
async fn stream_export(
    app: &App,
    client: Option<IpAddr>,
    auth: Option<HeaderValue>,
) -> Result<Response, Error> {
    authorize(app, client, auth)?;
    export::stream(app).await
}
