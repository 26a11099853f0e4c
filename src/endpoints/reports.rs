//! The read-only report endpoints: a page's history (JSON and chart), the top sites, health and
//! metrics.

use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::clock;
use crate::endpoints::count::{App, Visit, target_key};
use crate::http::error::{Error, Output, json, reply};
use crate::render::chart;
use crate::request::query::Query;

#[derive(Serialize)]
struct HistoryBody<'a> {
    url: &'a str,
    days: Vec<DayBody>,
}

#[derive(Serialize)]
struct DayBody {
    date: String,
    count: u64,
}

/// GET /nocount/history.json: daily counts, oldest first, zero days included.
pub fn history_json(app: &App, visit: &Visit) -> Response {
    let answer = history(app, visit).map(|(key, days, _)| {
        json(&HistoryBody {
            url: &key,
            days: days
                .into_iter()
                .map(|(day, count)| DayBody {
                    date: clock::date(day),
                    count,
                })
                .collect(),
        })
    });
    answer.unwrap_or_else(|err| err.into_response(Output::Json))
}

/// GET /nocount/history.svg: the daily counts as a small chart, the total in its title.
pub fn history_svg(app: &App, visit: &Visit) -> Response {
    let answer = history(app, visit).map(|(key, days, total)| {
        let counts: Vec<u64> = days.iter().map(|&(_, count)| count).collect();
        reply(
            StatusCode::OK,
            "image/svg+xml",
            chart::render(&key, &counts, total),
        )
    });
    answer.unwrap_or_else(|err| err.into_response(Output::Svg))
}

/// A key's daily counts (day, count), oldest first.
type Days = Vec<(u32, u64)>;

/// The key, its daily counts for the asked number of days, and its total.
fn history(app: &App, visit: &Visit) -> Result<(String, Days, u64), Error> {
    let query = Query::parse(&visit.query)?;
    let days = query.history_days(app.settings.history_days)?;
    let key = target_key(app, &query, &visit.headers)?;
    let history = app.counter.history(&key, days)?;
    let total = app.counter.peek(&key)?.total;
    Ok((key.to_string(), history, total))
}

/// GET /nocount/top.json: the latest ranking of domains and URLs.
pub fn top_json(app: &App) -> Response {
    let top = app.top.get();
    if top.urls.len() <= top.limits.urls {
        return json(&*top);
    }
    // The ranking may hold more URLs than the page shows (for --metrics-top-urls).
    let mut shown = (*top).clone();
    shown.urls.truncate(shown.limits.urls);
    json(&shown)
}

/// GET /healthz: `ok` when durable writes work and the store answers a read; else `503` with
/// the reason.
pub fn healthz(app: &App) -> Response {
    let text = "text/plain; charset=utf-8";
    if let Some(failure) = app.counter.health().failure() {
        let reason = format!(
            "durable writes are failing (for {} s, {} answered hits kept in memory): {}",
            failure.since.elapsed().as_secs(),
            failure.not_durable,
            failure.reason
        );
        return reply(StatusCode::SERVICE_UNAVAILABLE, text, reason);
    }
    if app.counter.store_answers() {
        reply(StatusCode::OK, text, "ok")
    } else {
        reply(
            StatusCode::SERVICE_UNAVAILABLE,
            text,
            "the store does not answer",
        )
    }
}

/// GET /metrics: the Prometheus text format (only routed with `--metrics`).
pub fn metrics(handle: &PrometheusHandle) -> Response {
    reply(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        handle.render(),
    )
}
