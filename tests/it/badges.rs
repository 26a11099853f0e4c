//! Badges, today/total and the JSON API: badge-maker parity (data made by
//! tools/badge-maker/generate.mjs), every parameter and its errors through a real server, days
//! across a simulated midnight, and XML well-formedness for any input.

use std::sync::Arc;

use crate::common::{BoxError, TestResult, TestServer, encode};
use hitcounter::clock::{DAY_MS, ManualClock, date};
use hitcounter::render::badge::{self, Color, Look, Style};
use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::Value;

/// One badge rendered by badge-maker.
struct Reference {
    style: Style,
    label: String,
    message: String,
    color: Option<String>,
    label_color: Option<String>,
    svg: String,
}

fn references() -> Result<Vec<Reference>, BoxError> {
    let data: Value =
        serde_json::from_str(&std::fs::read_to_string("tests/data/badge-maker.json")?)?;
    let text = |case: &Value, name: &str| case[name].as_str().map(str::to_owned);
    let mut references = Vec::new();
    for case in data["cases"].as_array().ok_or("no cases")? {
        references.push(Reference {
            style: text(case, "style").ok_or("no style")?.parse()?,
            label: text(case, "label").ok_or("no label")?,
            message: text(case, "message").ok_or("no message")?,
            // badge-maker takes "#ABC" too; our parameter takes bare hex, which renders the same.
            color: text(case, "color").map(|c| c.trim_start_matches('#').to_owned()),
            label_color: text(case, "labelColor"),
            svg: text(case, "svg").ok_or("no svg")?,
        });
    }
    assert!(references.len() >= 100, "the reference set shrank");
    Ok(references)
}

fn look_of(reference: &Reference) -> Result<Look, BoxError> {
    Ok(Look {
        style: reference.style,
        label: reference.label.clone(),
        color: match &reference.color {
            Some(color) => color.parse()?,
            None => Color::count(),
        },
        label_color: reference
            .label_color
            .as_deref()
            .map(str::parse)
            .transpose()?,
    })
}

#[test]
fn every_reference_badge_is_rendered_byte_for_byte() -> TestResult {
    for reference in references()? {
        let svg = badge::render(&look_of(&reference)?, &reference.message);
        assert_eq!(
            svg, reference.svg,
            "{:?} {:?} / {:?}",
            reference.style, reference.label, reference.message
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_badges_match_badge_maker_in_every_style() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path(), &["--cookie-window-secs", "0"]).await?;
    // Pages whose counts give the reference messages: 0 (never hit), 7, 42, 999 and 1234.
    for (page, hits) in [
        ("seven", 7u64),
        ("forty-two", 42),
        ("nines", 999),
        ("many", 1234),
    ] {
        let mut clients = Vec::new();
        for client in 0..4 {
            let url = format!("{}/count?url=parity.example/{page}", server.base);
            clients.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                for _ in (client..hits).step_by(4) {
                    http.get(&url).send().await?.error_for_status()?;
                }
                Ok::<_, BoxError>(())
            }));
        }
        for client in clients {
            client.await??;
        }
    }
    let page_and_format = |message: &str| match message {
        "0" => Some(("zero", "plain")),
        "7" => Some(("seven", "plain")),
        "42" => Some(("forty-two", "plain")),
        "999" => Some(("nines", "plain")),
        "1234" => Some(("many", "plain")),
        "1,234" => Some(("many", "comma")),
        "1.2k" => Some(("many", "short")),
        _ => None,
    };
    let mut checked = [0usize; 4];
    for reference in references()? {
        let Some((page, format)) = page_and_format(&reference.message) else {
            continue;
        };
        let style = Style::ALL
            .iter()
            .find(|(_, s)| *s == reference.style)
            .map(|(name, _)| *name)
            .ok_or("unnamed style")?;
        let mut path = format!(
            "/nocount/tag.svg?url=parity.example/{page}&style={style}&format={format}&label={}",
            encode(&reference.label)
        );
        if let Some(color) = &reference.color {
            path.push_str(&format!("&color={}", encode(color)));
        }
        if let Some(color) = &reference.label_color {
            path.push_str(&format!("&labelColor={}", encode(color)));
        }
        let response = server.get(&path).await?;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.text().await?, reference.svg, "{path}");
        checked[Style::ALL
            .iter()
            .position(|(_, s)| *s == reference.style)
            .unwrap_or(0)] += 1;
    }
    assert!(
        checked.iter().all(|&n| n >= 10),
        "cases checked per style: {checked:?}"
    );
    server.stop().await
}

#[tokio::test]
async fn bad_parameters_get_a_400_that_names_them_in_each_form() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path(), &["--history-days", "90"]).await?;
    let long_label = "x".repeat(65);
    let cases = [
        ("style", "social"),
        ("color", "%23abc"),
        ("labelColor", "nope"),
        ("format", "roman"),
        ("show", "yesterday"),
        ("label", long_label.as_str()),
    ];
    for (name, value) in cases {
        let query = format!("?url=params.example&{name}={value}");
        let svg = server.get(&format!("/count/tag.svg{query}")).await?;
        assert_eq!(svg.status(), StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(
            crate::common::header(svg.headers(), "content-type"),
            "image/svg+xml"
        );
        let body = svg.text().await?;
        assert!(roxmltree::Document::parse(&body).is_ok(), "{body}");
        assert!(
            body.contains(&format!(">bad {name}</text>")),
            "{name}: {body}"
        );

        let json = server.get(&format!("/count.json{query}")).await?;
        assert_eq!(json.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            crate::common::header(json.headers(), "content-type"),
            "application/json"
        );
        let error: Value = json.json().await?;
        let reason = error["error"].as_str().unwrap_or_default();
        assert!(reason.starts_with(&format!("bad {name}: ")), "{reason}");

        let shields = server.get(&format!("/count/shields.json{query}")).await?;
        assert_eq!(shields.status(), StatusCode::BAD_REQUEST);
    }
    for days in ["0", "91", "x"] {
        for route in ["history.json", "history.svg"] {
            let response = server
                .get(&format!("/nocount/{route}?url=params.example&days={days}"))
                .await?;
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "{route} days={days}"
            );
        }
    }
    let missing = server.get("/nocount.json").await?;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    let error: Value = missing.json().await?;
    assert_eq!(error["error"], "no url given: pass ?url= or send a Referer");
    assert_eq!(
        server.count_of("params.example").await?,
        0,
        "refused requests did not count"
    );
    server.stop().await
}

#[tokio::test]
async fn today_and_total_cross_midnight_and_history_keeps_gaps() -> TestResult {
    let dir = tempfile::tempdir()?;
    let day = 20_781u32; // 2026-11-24
    let clock = Arc::new(ManualClock::new(u64::from(day) * DAY_MS + DAY_MS - 2_000));
    let args = ["--cookie-window-secs", "0"];
    let server = TestServer::start_with_clock(dir.path(), &args, clock.clone()).await?;
    let json = |path: String| {
        let server = &server;
        async move {
            let response = server.get(&path).await?;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                crate::common::header(response.headers(), "content-type"),
                "application/json"
            );
            Ok::<Value, BoxError>(response.json().await?)
        }
    };
    for n in 1..=3u64 {
        let body = json("/count.json?url=days.example".into()).await?;
        assert_eq!(
            body,
            serde_json::json!({"url": "days.example", "total": n, "today": n})
        );
    }
    clock.advance(4_000); // past midnight
    let body = json("/nocount.json?url=days.example".into()).await?;
    assert_eq!(
        body,
        serde_json::json!({"url": "days.example", "total": 3, "today": 0})
    );
    for _ in 0..2 {
        server.get("/count?url=days.example").await?;
    }
    let both = server
        .text("/nocount/tag.svg?url=days.example&show=both")
        .await?;
    assert!(both.contains(">2 / 5</text>"), "{both}");
    let today = server
        .text("/nocount/tag.svg?url=days.example&show=today")
        .await?;
    assert!(today.contains(">2</text>"), "{today}");

    clock.advance(2 * DAY_MS); // two days without hits
    server.get("/count?url=days.example").await?;
    let expected = serde_json::json!({"url": "days.example", "days": [
        {"date": date(day), "count": 3},
        {"date": date(day + 1), "count": 2},
        {"date": date(day + 2), "count": 0},
        {"date": date(day + 3), "count": 1},
    ]});
    assert_eq!(
        json("/nocount/history.json?url=days.example&days=4".into()).await?,
        expected
    );
    let thirty = json("/nocount/history.json?url=days.example".into()).await?;
    assert_eq!(
        thirty["days"].as_array().map(Vec::len),
        Some(30),
        "30 days by default"
    );
    assert_eq!(
        thirty["days"][29],
        serde_json::json!({"date": date(day + 3), "count": 1})
    );

    let chart = server
        .text("/nocount/history.svg?url=days.example&days=4")
        .await?;
    assert!(roxmltree::Document::parse(&chart).is_ok(), "{chart}");
    assert!(
        chart.contains("<title>days.example: 6 hits in all"),
        "{chart}"
    );

    // Day buckets are durable: a restart (through the shutdown future) keeps them.
    server.stop().await?;
    let server = TestServer::start_with_clock(dir.path(), &args, clock.clone()).await?;
    let response = server
        .get("/nocount/history.json?url=days.example&days=4")
        .await?;
    assert_eq!(response.json::<Value>().await?, expected);
    server.stop().await
}

#[tokio::test]
async fn old_days_are_pruned_in_the_background_when_the_day_changes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let day = 20_000u32;
    let clock = Arc::new(ManualClock::new(u64::from(day) * DAY_MS));
    let args = ["--cookie-window-secs", "0", "--history-days", "2"];
    let server = TestServer::start_with_clock(dir.path(), &args, clock.clone()).await?;
    server.get("/count?url=prune.example").await?;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await; // flushed
    clock.advance(DAY_MS);
    server.get("/count?url=prune.example").await?;
    clock.advance(DAY_MS); // day + 2: the first day is now older than 2 days
    tokio::time::sleep(std::time::Duration::from_millis(300)).await; // a flush tick prunes
    server.stop().await?;
    let store = hitcounter::store::Store::open(dir.path())?;
    assert_eq!(
        store.days_of("prune.example", 0, day + 10)?,
        vec![(day + 1, 1)]
    );
    assert_eq!(
        store.get("prune.example")?,
        Some(2),
        "totals are never pruned"
    );
    Ok(())
}

#[tokio::test]
async fn json_routes_count_like_their_text_twins() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path(), &[]).await?;
    let counted = server.get("/count.json?url=json.example").await?;
    assert!(
        counted.headers().get("set-cookie").is_some(),
        "counting sets the cookie"
    );
    assert_eq!(
        crate::common::header(counted.headers(), "cache-control"),
        "no-cache, no-store, must-revalidate, max-age=0"
    );
    assert_eq!(
        crate::common::header(counted.headers(), "access-control-allow-origin"),
        "*"
    );
    let cookie = crate::common::header(counted.headers(), "set-cookie")
        .split(';')
        .next()
        .unwrap_or("")
        .to_owned();
    let replay = server
        .request(
            reqwest::Method::GET,
            "/count.json?url=json.example",
            &[("Cookie", &cookie)],
        )
        .await?;
    assert_eq!(
        replay.json::<Value>().await?["total"],
        1,
        "anti-refresh holds for JSON"
    );
    let peek = server.get("/nocount.json?url=json.example").await?;
    assert!(peek.headers().get("set-cookie").is_none());
    assert_eq!(peek.json::<Value>().await?["total"], 1);
    server.stop().await
}

#[tokio::test]
async fn the_shields_endpoint_follows_shields_schema() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path(), &["--cookie-window-secs", "0"]).await?;
    for _ in 0..1234 {
        server.get("/count?url=shields.example").await?;
    }
    let body: Value = server
        .get("/nocount/shields.json?url=shields.example&label=views&color=blue&labelColor=abc&format=comma&show=both")
        .await?
        .json()
        .await?;
    assert_eq!(
        body,
        serde_json::json!({"schemaVersion": 1, "label": "views", "message": "1,234 / 1,234", "color": "blue", "labelColor": "abc"})
    );
    let counted: Value = server
        .get("/count/shields.json?url=shields.example&format=short")
        .await?
        .json()
        .await?;
    assert_eq!(
        counted,
        serde_json::json!({"schemaVersion": 1, "label": "hits", "message": "1.2k", "color": "brightgreen"})
    );
    // shields' endpoint schema: schemaVersion is 1 and every other field is a string.
    let object = counted.as_object().ok_or("not an object")?;
    for (name, value) in object {
        assert!(
            name == "schemaVersion" || value.is_string(),
            "{name} is not a string"
        );
    }
    assert_eq!(server.count_of("shields.example").await?, 1235);
    server.stop().await
}

#[tokio::test]
async fn a_template_honours_format_unless_a_style_is_asked_for() -> TestResult {
    let dir = tempfile::tempdir()?;
    let template = dir.path().join("badge.svg");
    std::fs::write(
        &template,
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><text>{count}</text></svg>",
    )?;
    let data = dir.path().join("data");
    let args = [
        "--cookie-window-secs",
        "0",
        "--svg-template",
        &template.to_string_lossy(),
    ];
    let server = TestServer::start(&data, &args).await?;
    for _ in 0..1234 {
        server.get("/count?url=tmpl.example").await?;
    }
    let short = server
        .text("/nocount/tag.svg?url=tmpl.example&format=short")
        .await?;
    assert_eq!(
        short,
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><text>1.2k</text></svg>"
    );
    let styled = server
        .text("/nocount/tag.svg?url=tmpl.example&style=flat")
        .await?;
    assert!(
        styled.contains(">1234</text>") && styled.contains("<title>hits: 1234</title>"),
        "{styled}"
    );
    server.stop().await
}

proptest! {
    #[test]
    fn badges_are_well_formed_xml_for_any_label_and_message(
        label in "\\PC{0,64}|[\\x00-\\x7f]{0,64}",
        message in "\\PC{0,40}|[\\x00-\\x7f]{0,40}",
        style in 0usize..4,
        color in "[0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[a-z]{3,13}|\\PC{0,8}",
        label_color in "[0-9a-fA-F]{3}|[a-z]{3,13}|\\PC{0,8}",
    ) {
        let look = Look {
            style: Style::ALL[style].1,
            label,
            color: color.parse().unwrap_or_else(|_| Color::count()),
            label_color: label_color.parse().ok(),
        };
        let svg = badge::render(&look, &message);
        prop_assert!(roxmltree::Document::parse(&svg).is_ok(), "{}", svg);
    }
}
