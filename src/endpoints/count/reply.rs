//! The counting endpoints' replies: text, an SVG badge, JSON or shields.io's endpoint JSON.

use bytes::Bytes;
use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;

use super::{App, Render};
use crate::counting::cache::Counts;
use crate::http::error::{json, reply};
use crate::render::badge;
use crate::render::message::{self, NumberFormat, Show};
use crate::request::query::Query;

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

/// The reply of a counting endpoint in the form `render` names, for `key`'s `counts`.
pub(super) fn counts_reply(
    app: &App,
    query: &Query,
    render: Render,
    counts: Counts,
    key: &str,
) -> Response {
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

/// The badge: the configured template when there is one and no `style` is asked for, else the
/// shields-style badge the query describes.
fn badge_svg(app: &App, query: &Query, counts: Counts, key: &str) -> Bytes {
    message::with_message(counts, query.show, query.format, |message| {
        match (&app.settings.svg_template, query.style) {
            (Some(template), None) => template.render(message, key).into(),
            // The default look's stamps are found without building or hashing a `Look`.
            _ if !query.asks_for_look() => app.stamps.render_default(message),
            _ => app.stamps.render(&query.look(), message),
        }
    })
}
