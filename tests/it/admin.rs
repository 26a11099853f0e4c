//! Running it for real: the admin API, export/import/import-seed, /healthz, /metrics, allow and
//! deny, visitor dedupe behind a trusted proxy, and the rate limit. Real servers on port 0 (the
//! library's `run`, or the real binary where a process matters), real HTTP, real sled dirs.

use std::process::Command;
use std::time::Duration;

use crate::common::{BIN, BoxError, Process, TestResult, TestServer};
use hitcounter::store::Store;
use reqwest::{Method, StatusCode};

const TOKEN: &str = "s3cret-token";

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn admin_routes_exist_only_with_a_token_and_check_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path(), &[]).await?;
    for (method, path) in [
        (Method::PUT, "/admin/count?url=a.example"),
        (Method::DELETE, "/admin/count?url=a.example"),
        (Method::GET, "/admin/export"),
    ] {
        let response = server
            .request(method, path, &[("Authorization", &bearer(TOKEN))])
            .await?;
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "{path} without --admin-token"
        );
    }
    server.stop().await?;

    let server = TestServer::start(dir.path(), &["--admin-token", TOKEN]).await?;
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-token-and-more"),
        Some("s3cret-token"),
        Some("Basic czNjcmV0"),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        let response = server
            .request(Method::PUT, "/admin/count?url=a.example", &headers)
            .await?;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(
            crate::common::header(response.headers(), "www-authenticate"),
            r#"Bearer realm="hitcounter admin""#
        );
        let response = server
            .request(Method::GET, "/admin/export", &headers)
            .await?;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    assert_eq!(server.count_of("a.example").await?, 0, "nothing was set");
    server.stop().await
}

async fn admin(
    server: &TestServer,
    method: Method,
    path: &str,
    body: &str,
) -> Result<reqwest::Response, BoxError> {
    let client = reqwest::Client::new();
    Ok(client
        .request(method, format!("{}{path}", server.base))
        .header("Authorization", bearer(TOKEN))
        .body(body.to_owned())
        .send()
        .await?)
}

#[tokio::test]
async fn set_and_delete_are_durable_and_race_hits_correctly() -> TestResult {
    let dir = tempfile::tempdir()?;
    let args = ["--admin-token", TOKEN, "--cookie-window-secs", "0"];
    let server = TestServer::start(dir.path(), &args).await?;
    for _ in 0..3 {
        server.get("/count?url=https://set.example/").await?;
    }
    let set = admin(
        &server,
        Method::PUT,
        "/admin/count?url=https://set.example/",
        "1000\n",
    )
    .await?;
    assert_eq!(set.status(), StatusCode::OK);
    assert_eq!(
        set.json::<serde_json::Value>().await?,
        serde_json::json!({"url": "set.example", "total": 1000})
    );
    assert_eq!(server.text("/count?url=set.example").await?, "1001");
    for (body, status) in [
        ("many", StatusCode::BAD_REQUEST),
        ("-1", StatusCode::BAD_REQUEST),
        ("1".repeat(40).as_str(), StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let response = admin(&server, Method::PUT, "/admin/count?url=set.example", body).await?;
        assert_eq!(response.status(), status, "{body}");
    }
    let no_url = admin(&server, Method::PUT, "/admin/count", "5").await?;
    assert_eq!(no_url.status(), StatusCode::BAD_REQUEST);

    // Hits racing a set: the final total is the set value plus the hits that came after it.
    let url = format!("{}/count?url=race.example", server.base);
    let hammer = |n: u64| {
        let url = url.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for _ in 0..n {
                client.get(&url).send().await?.error_for_status()?;
            }
            Ok::<_, BoxError>(())
        })
    };
    let clients: Vec<_> = (0..4).map(|_| hammer(50)).collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    admin(&server, Method::PUT, "/admin/count?url=race.example", "500")
        .await?
        .error_for_status()?;
    let after_set: Vec<_> = (0..2).map(|_| hammer(25)).collect();
    for client in clients.into_iter().chain(after_set) {
        client.await??;
    }
    let total = server.count_of("race.example").await?;
    assert!(
        (550..=750).contains(&total),
        "set 500, then at least the 50 later hits and at most all 250: {total}"
    );

    // Delete racing hits: nothing is resurrected by a flush after the delete.
    let clients: Vec<_> = (0..4).map(|_| hammer(50)).collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let deleted = admin(&server, Method::DELETE, "/admin/count?url=race.example", "").await?;
    assert_eq!(
        deleted.json::<serde_json::Value>().await?,
        serde_json::json!({"url": "race.example", "deleted": true})
    );
    for client in clients {
        client.await??;
    }
    let after_delete = server.count_of("race.example").await?;
    assert!(
        after_delete <= 200,
        "only hits after the delete remain: {after_delete}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await; // several flushes
    assert_eq!(
        server.count_of("race.example").await?,
        after_delete,
        "no flush brought the old total back"
    );
    let gone = admin(
        &server,
        Method::DELETE,
        "/admin/count?url=never.example",
        "",
    )
    .await?;
    assert_eq!(gone.json::<serde_json::Value>().await?["deleted"], false);
    server.stop().await?;

    let server = TestServer::start(dir.path(), &args).await?;
    assert_eq!(server.count_of("set.example").await?, 1001);
    assert_eq!(server.count_of("race.example").await?, after_delete);
    server.stop().await
}

#[tokio::test]
async fn export_import_round_trips_byte_for_byte_through_a_fresh_data_dir() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(
        &dir.path().join("a"),
        &["--admin-token", TOKEN, "--cookie-window-secs", "0"],
    )
    .await?;
    for (url, hits) in [
        ("b.example/x", 3),
        ("a.example", 2),
        ("bücher.example/straße", 1),
    ] {
        for _ in 0..hits {
            server
                .get(&format!("/count?url={}", crate::common::encode(url)))
                .await?;
        }
    }
    let export = admin(&server, Method::GET, "/admin/export", "").await?;
    assert_eq!(export.status(), StatusCode::OK);
    assert_eq!(
        crate::common::header(export.headers(), "content-type"),
        "application/x-ndjson"
    );
    let first = export.text().await?;
    let lines: Vec<serde_json::Value> = first
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 3);
    // In the store's order: a domain's pages together, the domains in no particular order.
    let a = lines
        .iter()
        .find(|line| line["url"] == "a.example")
        .ok_or("a.example not exported")?;
    assert_eq!(a["total"], 2);
    assert_eq!(
        a["days"]
            .as_object()
            .map(|d| d.values().map(|v| v.as_u64().unwrap_or(0)).sum::<u64>()),
        Some(2)
    );
    server.stop().await?;

    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &first)?;
    let fresh = dir.path().join("b");
    let import = Command::new(BIN)
        .args(["import"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&fresh)
        .output()?;
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    assert!(String::from_utf8_lossy(&import.stderr).contains("imported 3 records into 3 keys"));
    let second = Command::new(BIN)
        .args(["export", "--data-dir"])
        .arg(&fresh)
        .output()?;
    assert!(second.status.success());
    assert_eq!(
        String::from_utf8(second.stdout)?,
        first,
        "byte-identical second export"
    );

    // The same file again in add mode would double every count: refused unless --force.
    let again = Command::new(BIN)
        .args(["import"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&fresh)
        .output()?;
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("pass --force"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let replace = Command::new(BIN)
        .args(["import", "--mode", "replace"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&fresh)
        .output()?;
    assert!(
        replace.status.success(),
        "replace is idempotent and allowed"
    );
    let forced = Command::new(BIN)
        .args(["import", "--force"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&fresh)
        .output()?;
    assert!(forced.status.success());
    let store = Store::open(&fresh)?;
    assert_eq!(store.get("a.example")?, Some(4), "forced add doubled it");
    Ok(())
}

#[test]
fn a_re_import_is_refused_only_in_add_mode_naming_the_earlier_mode() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let import = |file: &std::path::Path, mode: &str| {
        Command::new(BIN)
            .args(["import", "--mode", mode])
            .arg(file)
            .arg("--data-dir")
            .arg(&data)
            .output()
    };
    let backup = dir.path().join("backup.jsonl");
    std::fs::write(&backup, "{\"url\":\"a.example\",\"total\":3}\n")?;
    for round in ["first", "second"] {
        let output = import(&backup, "replace")?;
        assert!(
            output.status.success(),
            "{round} replace: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let added = import(&backup, "add")?;
    let stderr = String::from_utf8_lossy(&added.stderr);
    assert!(
        !added.status.success(),
        "an add after a replace doubles: {stderr}"
    );
    assert!(
        stderr.contains("already imported in replace mode") && !stderr.contains("in add mode ("),
        "{stderr}"
    );

    let more = dir.path().join("more.jsonl");
    std::fs::write(&more, "{\"url\":\"b.example\",\"total\":2}\n")?;
    assert!(import(&more, "add")?.status.success());
    let again = import(&more, "add")?;
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(stderr.contains("already imported in add mode"), "{stderr}");
    let store = Store::open(&data)?;
    assert_eq!(store.get("a.example")?, Some(3));
    assert_eq!(store.get("b.example")?, Some(2));
    Ok(())
}

#[test]
fn malformed_lines_are_reported_by_number_and_skipped() -> TestResult {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("in.jsonl");
    std::fs::write(
        &file,
        concat!(
            "{\"url\":\"ok.example\",\"total\":5,\"days\":{\"2026-11-24\":2}}\n",
            "not json\n",
            "{\"url\":\"exa mple.com\",\"total\":1}\n",
            "{\"url\":\"date.example\",\"total\":1,\"days\":{\"2026-02-31\":1}}\n",
            "\n",
            "{\"url\":\"https://OK.example/\",\"total\":2}\n",
        ),
    )?;
    let data = dir.path().join("data");
    let output = Command::new(BIN)
        .arg("import")
        .arg(&file)
        .arg("--data-dir")
        .arg(&data)
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for line in [2, 3, 4] {
        assert!(
            stderr.contains(&format!("line {line} skipped")),
            "line {line}: {stderr}"
        );
    }
    assert!(
        stderr.contains("imported 2 records into 1 key from")
            && stderr.ends_with("skipped 3 lines\n"),
        "{stderr}"
    );
    let store = Store::open(&data)?;
    assert_eq!(
        store.get("ok.example")?,
        Some(7),
        "two spellings of one page are summed"
    );
    assert_eq!(
        store.get("date.example")?,
        None,
        "a bad line writes nothing"
    );
    Ok(())
}

#[test]
fn the_original_servers_sqlite_file_migrates() -> TestResult {
    let dir = tempfile::tempdir()?;
    let seed = dir.path().join("data.db");
    {
        // The original's schema, with its first-hit race (duplicate rows) and unfolded spellings.
        let db = rusqlite::Connection::open(&seed)?;
        db.execute(
            "CREATE TABLE url (id INTEGER PRIMARY KEY AUTOINCREMENT, url TEXT, count INTEGER)",
            [],
        )?;
        let rows = [
            ("www.example.com/blog/", 5),
            ("www.example.com/blog/", 7),
            ("WWW.EXAMPLE.COM/blog", 3),
            ("www.example.com/blog//", 1),
            ("example.com/", 10),
            ("example.com", 4),
            ("bad host name.com/", 9),
        ];
        for (url, count) in rows {
            db.execute(
                "INSERT INTO url (url, count) VALUES (?1, ?2)",
                rusqlite::params![url, count],
            )?;
        }
    }
    let data = dir.path().join("data");
    let output = Command::new(BIN)
        .arg("import-seed")
        .arg(&seed)
        .arg("--data-dir")
        .arg(&data)
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipped: bad url \"bad host name.com/\""),
        "{stderr}"
    );
    let store = Store::open(&data)?;
    // max(5, 7) for the duplicated row, then + 3 + 1 for the spellings that fold into the key.
    assert_eq!(store.get("www.example.com/blog")?, Some(11));
    assert_eq!(store.get("example.com")?, Some(14));
    assert_eq!(store.len(), 2);
    drop(store);
    let again = Command::new(BIN)
        .arg("import-seed")
        .arg(&seed)
        .arg("--data-dir")
        .arg(&data)
        .output()?;
    assert!(
        !again.status.success(),
        "a second add of the same file is refused"
    );
    Ok(())
}

#[test]
fn export_and_failed_imports_create_no_data_dir() -> TestResult {
    let dir = tempfile::tempdir()?;
    let run = |args: &[&std::ffi::OsStr]| Command::new(BIN).args(args).output();
    let missing = dir.path().join("nothere").join("data");
    let output = run(&["export".as_ref(), "--data-dir".as_ref(), missing.as_ref()])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("no data dir at {}", missing.display())),
        "{stderr}"
    );
    assert!(!dir.path().join("nothere").exists(), "export created it");
    // A directory that holds no store is not one: export writes no database into it.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty)?;
    let output = run(&["export".as_ref(), "--data-dir".as_ref(), empty.as_ref()])?;
    assert!(!output.status.success());
    assert_eq!(
        std::fs::read_dir(&empty)?.count(),
        0,
        "export wrote into it"
    );

    let not_sqlite = dir.path().join("notes.db");
    std::fs::write(&not_sqlite, "not a database")?;
    for (command, input) in [
        ("import-seed", dir.path().join("nothere.db")),
        ("import-seed", not_sqlite),
        ("import", dir.path().join("nothere.jsonl")),
    ] {
        let output = run(&[
            command.as_ref(),
            input.as_ref(),
            "--data-dir".as_ref(),
            missing.as_ref(),
        ])?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command} {input:?}: {stderr}");
        assert!(
            !dir.path().join("nothere").exists(),
            "{command} {input:?} left the data dir behind: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    Ok(())
}

/// A SQLite file in the original server's schema holding `rows` (a `None` url is NULL).
fn seed_file(path: &std::path::Path, rows: &[(Option<&str>, i64)]) -> Result<(), BoxError> {
    let db = rusqlite::Connection::open(path)?;
    db.execute(
        "CREATE TABLE url (id INTEGER PRIMARY KEY AUTOINCREMENT, url TEXT, count INTEGER)",
        [],
    )?;
    for (url, count) in rows {
        db.execute(
            "INSERT INTO url (url, count) VALUES (?1, ?2)",
            rusqlite::params![url, count],
        )?;
    }
    Ok(())
}

#[test]
fn import_summaries_count_what_was_imported_number_every_skipped_row_and_pluralise() -> TestResult {
    let dir = tempfile::tempdir()?;
    let seed = dir.path().join("data.db");
    seed_file(
        &seed,
        &[
            (Some("a.example"), 5),
            (Some("a.example"), 7),
            (Some("A.EXAMPLE"), 3),
            (Some("b.example"), 1),
            (None, 4),
            (Some("c.example"), -1),
            (Some("bad host.com"), 9),
            (Some("bad host.com"), 2),
            (Some("d.example"), 2),
            (Some("e.example"), 1),
            (Some("exa mple"), 1),
        ],
    )?;
    let import = |command: &str, input: &std::path::Path, data: &str| {
        Command::new(BIN)
            .arg(command)
            .arg(input)
            .arg("--data-dir")
            .arg(dir.path().join(data))
            .output()
    };
    let output = import("import-seed", &seed, "a")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // Rows are numbered by their rowid, the schema's id.
    for row in [5, 6, 7, 8, 11] {
        assert!(
            stderr.contains(&format!("{}: row {row} skipped: ", seed.display())),
            "row {row}: {stderr}"
        );
    }
    assert_eq!(stderr.matches(" skipped: ").count(), 5, "{stderr}");
    assert!(!stderr.contains("line"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "imported 6 rows into 4 keys from {}; skipped 5 rows",
            seed.display()
        )),
        "{stderr}"
    );

    let one = dir.path().join("one.db");
    seed_file(&one, &[(Some("one.example"), 1)])?;
    let output = import("import-seed", &one, "b")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("imported 1 row into 1 key from") && stderr.ends_with("skipped 0 rows\n"),
        "{stderr}"
    );
    let lines = dir.path().join("one.jsonl");
    std::fs::write(&lines, "{\"url\":\"one.example\",\"total\":1}\nnot json\n")?;
    let output = import("import", &lines, "c")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("imported 1 record into 1 key from")
            && stderr.ends_with("skipped 1 line\n"),
        "{stderr}"
    );
    let output = Command::new(BIN)
        .args(["export", "--data-dir"])
        .arg(dir.path().join("c"))
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("exported 1 key from"), "{stderr}");
    Ok(())
}

#[test]
fn a_data_dir_held_by_a_server_is_refused_with_advice() -> TestResult {
    let dir = tempfile::tempdir()?;
    let _server = Process::start(dir.path(), &[])?;
    let output = Command::new(BIN)
        .args(["export", "--data-dir"])
        .arg(dir.path())
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "is in use by another hitcounter process: stop the server, or use the admin API"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
    Ok(())
}

#[tokio::test]
async fn allow_and_deny_refuse_keys_with_a_403_and_store_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let args = [
        "--allow",
        r"example\.com(/.*)?",
        "--deny",
        r"example\.com/private(/.*)?",
    ];
    let server = TestServer::start(dir.path(), &args).await?;
    assert_eq!(server.text("/count?url=example.com/blog").await?, "1");
    for url in ["example.com/private/x", "other.example", "evil.example.com"] {
        let text = server.get(&format!("/count?url={url}")).await?;
        assert_eq!(text.status(), StatusCode::FORBIDDEN, "{url}");
        assert!(text.text().await?.starts_with("refused: "));
        let svg = server.get(&format!("/count/tag.svg?url={url}")).await?;
        assert_eq!(svg.status(), StatusCode::FORBIDDEN);
        assert!(svg.text().await?.contains(">refused</text>"));
    }
    server.stop().await?;
    let store = Store::open(dir.path())?;
    assert_eq!(store.len(), 1, "only the allowed key was stored");
    Ok(())
}

#[tokio::test]
async fn visitor_dedupe_tells_clients_apart_behind_a_trusted_proxy() -> TestResult {
    let dir = tempfile::tempdir()?;
    let args = ["--dedupe", "visitor", "--trust-proxy"];
    let server = TestServer::start(dir.path(), &args).await?;
    let hit = |ip: &'static str, ua: &'static str| {
        let server = &server;
        async move {
            let headers = [("X-Forwarded-For", ip), ("User-Agent", ua)];
            let response = server
                .request(Method::GET, "/count?url=dedupe.example", &headers)
                .await?;
            assert!(
                response.headers().get("set-cookie").is_none(),
                "visitor mode sets no cookie"
            );
            Ok::<_, BoxError>(response.text().await?)
        }
    };
    assert_eq!(hit("203.0.113.1", "Firefox").await?, "1");
    assert_eq!(
        hit("203.0.113.1", "Firefox").await?,
        "1",
        "the same visitor again"
    );
    assert_eq!(
        hit("203.0.113.2", "Firefox").await?,
        "2",
        "another address behind the proxy"
    );
    assert_eq!(hit("203.0.113.1", "Chrome").await?, "3", "another browser");
    assert_eq!(
        hit("198.51.100.7, 203.0.113.2", "Firefox").await?,
        "3",
        "the right-most untrusted address decides"
    );
    server.stop().await
}

#[tokio::test]
async fn the_rate_limit_serves_the_badge_but_stops_counting() -> TestResult {
    let dir = tempfile::tempdir()?;
    let args = ["--rate-limit", "3", "--cookie-window-secs", "0"];
    let server = TestServer::start(dir.path(), &args).await?;
    for _ in 0..5 {
        let svg = server.get("/count/tag.svg?url=limited.example").await?;
        assert_eq!(svg.status(), StatusCode::OK);
    }
    assert_eq!(server.count_of("limited.example").await?, 3);
    server.stop().await
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_healthz_answers() -> TestResult {
    let dir = tempfile::tempdir()?;
    let args = [
        "--metrics",
        "--metrics-top-urls",
        "2",
        "--top-refresh-secs",
        "1",
        "--flush-interval-ms",
        "50",
        "--rate-limit",
        "4",
    ];
    let server = Process::start(dir.path(), &args)?;
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await?;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await?, "ok");
    let first = client
        .get(format!("{}/count?url=metrics.example", server.base))
        .send()
        .await?;
    let cookie = crate::common::header(first.headers(), "set-cookie")
        .split(';')
        .next()
        .unwrap_or("")
        .to_owned();
    client
        .get(format!("{}/count?url=metrics.example", server.base))
        .header("Cookie", &cookie)
        .send()
        .await?;
    for _ in 0..4 {
        client
            .get(format!("{}/count?url=other.example", server.base))
            .send()
            .await?;
    }
    client.get(format!("{}/nope", server.base)).send().await?;
    tokio::time::sleep(Duration::from_millis(1500)).await; // a flush and a ranking
    let text = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await?
        .text()
        .await?;
    let lines: Vec<std::io::Result<String>> = text.lines().map(|l| Ok(l.to_owned())).collect();
    let scrape = prometheus_parse::Scrape::parse(lines.into_iter())?;
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    // metrics.example once (its replay has the cookie), other.example three times: the fifth
    // counting request from this one client address is past --rate-limit 4.
    assert_eq!(value("hitcounter_hits_counted_total", &[]), 4.0, "{text}");
    assert_eq!(
        value("hitcounter_hits_suppressed_total", &[("reason", "cookie")]),
        1.0
    );
    assert_eq!(
        value(
            "hitcounter_hits_suppressed_total",
            &[("reason", "rate_limit")]
        ),
        1.0,
        "the fifth hit from one client"
    );
    assert_eq!(
        value(
            "hitcounter_requests_total",
            &[("route", "count"), ("status", "200")]
        ),
        6.0
    );
    assert_eq!(
        value(
            "hitcounter_requests_total",
            &[("route", "none"), ("status", "404")]
        ),
        1.0
    );
    // Both keys were flushed and then, idle, evicted from the front cache.
    assert_eq!(value("hitcounter_cache_entries", &[]), 0.0);
    assert_eq!(value("hitcounter_cache_evictions_total", &[]), 2.0);
    assert_eq!(value("hitcounter_store_keys", &[]), 2.0);
    assert!(value("hitcounter_store_bytes", &[]) > 0.0);
    assert_eq!(
        value("hitcounter_url_views", &[("url", "metrics.example")]),
        1.0
    );
    assert_eq!(
        value("hitcounter_url_views", &[("url", "other.example")]),
        3.0
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric.starts_with("hitcounter_flush_duration_seconds"))
    );
    Ok(())
}

#[tokio::test]
async fn the_keys_per_flush_histogram_has_buckets_of_counts() -> TestResult {
    let dir = tempfile::tempdir()?;
    let args = ["--metrics", "--flush-interval-ms", "50"];
    let server = Process::start(dir.path(), &args)?;
    let client = reqwest::Client::new();
    for n in 0..20 {
        let response = client
            .get(format!("{}/count?url=keys.example/{n}", server.base))
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // a flush
    let text = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await?
        .text()
        .await?;
    let bucket = |le: &str| -> Option<u64> {
        let prefix = format!("hitcounter_flush_keys_bucket{{le=\"{le}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
    };
    for le in ["1", "10", "100", "1000", "10000", "100000", "1000000"] {
        assert!(bucket(le).is_some(), "no bucket le={le}: {text}");
    }
    assert_eq!(bucket("0.0005"), None, "seconds buckets on a count: {text}");
    // No flush wrote more than the 20 keys: each is within the bucket of 100.
    let flushes = bucket("+Inf").ok_or("no +Inf bucket")?;
    assert!(flushes >= 1, "{text}");
    assert_eq!(bucket("100"), Some(flushes), "{text}");
    assert!(
        text.contains("hitcounter_flush_duration_seconds_bucket{le=\"0.0005\"}"),
        "durations keep their buckets of seconds: {text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_urls_and_clients_stays_within_every_capacity() -> TestResult {
    let dir = tempfile::tempdir()?;
    let args = [
        "--metrics",
        "--trust-proxy",
        "--dedupe",
        "both",
        "--rate-limit",
        "1000",
        "--cache-capacity",
        "50",
        "--dedupe-capacity",
        "50",
        "--rate-limit-capacity",
        "50",
        "--flush-interval-ms",
        "50",
        "--admin-token",
        TOKEN,
    ];
    let server = Process::start(dir.path(), &args)?;
    let metrics_url = format!("{}/metrics", server.base);
    let mut tasks = Vec::new();
    for worker in 0..8u32 {
        let base = server.base.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in 0..250u32 {
                let id = worker * 250 + n;
                let client_ip = format!("198.51.{}.{}", id / 250, id % 250);
                let response = client
                    .get(format!("{base}/count?url=flood.example/{id}"))
                    .header("X-Forwarded-For", client_ip)
                    .send()
                    .await?;
                assert_eq!(response.status(), StatusCode::OK);
            }
            Ok::<_, BoxError>(())
        }));
    }
    let client = reqwest::Client::new();
    let mut peaks = (0.0f64, 0.0f64, 0.0f64);
    let gauge = |text: &str, name: &str| -> f64 {
        text.lines()
            .filter(|line| line.starts_with(name))
            .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
            .fold(0.0, f64::max)
    };
    while tasks.iter().any(|t| !t.is_finished()) {
        let text = client.get(&metrics_url).send().await?.text().await?;
        peaks.0 = peaks.0.max(gauge(&text, "hitcounter_cache_entries"));
        peaks.1 = peaks
            .1
            .max(gauge(&text, "hitcounter_guard_entries{map=\"dedupe\"}"));
        peaks.2 = peaks
            .2
            .max(gauge(&text, "hitcounter_guard_entries{map=\"rate_limit\"}"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for task in tasks {
        task.await??;
    }
    let text = client.get(&metrics_url).send().await?.text().await?;
    assert!(
        gauge(&text, "hitcounter_guard_entries") > 0.0,
        "the gauges are exported: {text}"
    );
    assert!(
        peaks.0 <= 50.0 && peaks.1 <= 50.0 && peaks.2 <= 50.0,
        "peaks {peaks:?}"
    );
    // Every one of the 2,000 distinct hits was stored, though the cache holds 50 at most.
    let export = client
        .get(format!("{}/admin/export", server.base))
        .header("Authorization", bearer(TOKEN))
        .send()
        .await?
        .text()
        .await?;
    let mut stored = 0;
    for line in export.lines() {
        let record: serde_json::Value = serde_json::from_str(line)?;
        stored += record["total"].as_u64().unwrap_or(0);
    }
    assert_eq!(stored, 2000);
    Ok(())
}

#[test]
fn guards_without_trust_proxy_warn_at_start_up() -> TestResult {
    let dir = tempfile::tempdir()?;
    let quiet = Process::start(
        &dir.path().join("a"),
        &["--rate-limit", "5", "--trust-proxy"],
    )?;
    let warned = Process::start(&dir.path().join("b"), &["--rate-limit", "5"])?;
    let visitor = Process::start(&dir.path().join("c"), &["--dedupe", "visitor"])?;
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !quiet.log().contains("without --trust-proxy"),
        "{}",
        quiet.log()
    );
    assert!(
        warned.log().contains("WARN") && warned.log().contains("without --trust-proxy"),
        "{}",
        warned.log()
    );
    assert!(
        visitor.log().contains("without --trust-proxy"),
        "{}",
        visitor.log()
    );
    Ok(())
}
