//! The HTTP interface of a real server (the library's `run`) on a loopback port 0, driven by a
//! real HTTP client, over a real sled directory.

use std::time::Duration;

use crate::common::{Http, TestResult, TestServer, encode};
use hitcounter::store::Store;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
/// Request headers as (name, value) pairs.
type Headers<'a> = &'a [(&'a str, &'a str)];

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The `name=value` part of a response's Set-Cookie, if any.
fn cookie_of(response: &reqwest::Response) -> Option<String> {
    let set = response.headers().get("set-cookie")?.to_str().ok()?;
    Some(set.split(';').next()?.to_owned())
}

fn assert_common_headers(headers: &HeaderMap, what: &str) {
    assert_eq!(
        header(headers, "cache-control"),
        "no-cache, no-store, must-revalidate, max-age=0",
        "{what}"
    );
    // No Pragma or Expires: a cache that knows Cache-Control ignores both (RFC 9111 5.3, 5.4).
    assert!(headers.get("pragma").is_none(), "{what}");
    assert_eq!(header(headers, "vary"), "Origin", "{what}");
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        "*",
        "{what}"
    );
    assert!(
        headers.get("access-control-allow-credentials").is_none(),
        "{what}"
    );
}

fn assert_well_formed_svg(body: &str) {
    let doc = roxmltree::Document::parse(body).unwrap_or_else(|e| panic!("not XML ({e}): {body}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
}

async fn every_route_answers_with_its_type_body_and_headers(http: Http) -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start_over(http, dir.path(), &[]).await?;

    let first = server.get("/count?url=example.com").await?;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        header(first.headers(), "content-type"),
        "text/plain; charset=utf-8"
    );
    assert_common_headers(first.headers(), "/count");
    assert!(
        first.headers().get("set-cookie").is_some(),
        "a counted hit sets the cookie"
    );
    assert_eq!(
        first.text().await?,
        "1",
        "the first hit of a new target is 1"
    );

    let nocount = server.get("/nocount?url=example.com").await?;
    assert_eq!(
        header(nocount.headers(), "content-type"),
        "text/plain; charset=utf-8"
    );
    assert_common_headers(nocount.headers(), "/nocount");
    assert!(
        nocount.headers().get("set-cookie").is_none(),
        "/nocount never sets a cookie"
    );
    assert_eq!(nocount.text().await?, "1");

    let svg = server.get("/count/tag.svg?url=example.com").await?;
    assert_eq!(svg.status(), StatusCode::OK);
    assert_eq!(header(svg.headers(), "content-type"), "image/svg+xml");
    assert_common_headers(svg.headers(), "/count/tag.svg");
    assert!(svg.headers().get("set-cookie").is_some());
    let body = svg.text().await?;
    assert_well_formed_svg(&body);
    assert!(body.contains(">2</text>"), "{body}");

    let svg = server.get("/nocount/tag.svg?url=example.com").await?;
    assert_eq!(header(svg.headers(), "content-type"), "image/svg+xml");
    assert_common_headers(svg.headers(), "/nocount/tag.svg");
    assert!(svg.headers().get("set-cookie").is_none());
    let body = svg.text().await?;
    assert_well_formed_svg(&body);
    assert!(
        body.contains(">2</text>") && body.contains(">hits</text>"),
        "{body}"
    );

    for (path, content_type, needle) in [
        ("/", "text/html; charset=utf-8", "<h1>hitcounter</h1>"),
        (
            "/index.html",
            "text/html; charset=utf-8",
            "<h1>hitcounter</h1>",
        ),
        ("/app.js", "text/javascript; charset=utf-8", "'use strict'"),
        (
            "/style.css",
            "text/css; charset=utf-8",
            "prefers-color-scheme",
        ),
    ] {
        let page = server.get(path).await?;
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(page.headers(), "content-type"),
            content_type,
            "{path}"
        );
        assert_common_headers(page.headers(), path);
        let text = page.text().await?;
        assert!(text.contains(needle), "{path} lacks {needle:?}");
        assert_eq!(
            text,
            std::fs::read_to_string(format!(
                "web{}",
                if path == "/" { "/index.html" } else { path }
            ))?
        );
    }

    for path in ["/", "/app.js", "/style.css"] {
        let first = server.get(path).await?;
        let etag = header(first.headers(), "etag").to_owned();
        assert!(
            etag.starts_with('"') && etag.len() > 2,
            "{path} etag {etag:?}"
        );
        let again = server
            .request(Method::GET, path, &[("If-None-Match", &etag)])
            .await?;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(header(again.headers(), "etag"), etag);
        assert_eq!(again.bytes().await?.len(), 0);
        let stale = server
            .request(Method::GET, path, &[("If-None-Match", "\"stale\"")])
            .await?;
        assert_eq!(stale.status(), StatusCode::OK, "{path}");
    }

    let missing = server.get("/no/such/page").await?;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_common_headers(missing.headers(), "404");
    let post = server
        .request(Method::POST, "/count?url=example.com", &[])
        .await?;
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(post.headers(), "allow"), "GET, HEAD, OPTIONS");
    assert_common_headers(post.headers(), "405");
    for (method, path) in [
        (Method::PUT, "/count/tag.svg?url=example.com"),
        (Method::DELETE, "/count.json?url=example.com"),
        (Method::PATCH, "/nocount?url=example.com"),
    ] {
        let refused = server.request(method.clone(), path, &[]).await?;
        assert_eq!(
            refused.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
    }
    assert_eq!(
        server.count_of("example.com").await?,
        2,
        "a POST, PUT or DELETE does not count"
    );
    server.stop().await
}

async fn head_answers_like_get_without_a_body_and_never_counts(http: Http) -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start_over(http, dir.path(), &[]).await?;
    server.get("/count?url=head.example").await?;
    for path in [
        "/count?url=head.example",
        "/count/tag.svg?url=head.example",
        "/nocount?url=head.example",
        "/nocount/tag.svg?url=head.example",
        "/",
    ] {
        let response = server.request(Method::HEAD, path, &[]).await?;
        assert_eq!(response.status(), StatusCode::OK, "HEAD {path}");
        assert_common_headers(response.headers(), path);
        assert!(
            response.headers().get("set-cookie").is_none(),
            "HEAD {path}"
        );
        let expected_type = if path.contains(".svg") {
            "image/svg+xml"
        } else if path == "/" {
            "text/html; charset=utf-8"
        } else {
            "text/plain; charset=utf-8"
        };
        assert_eq!(
            header(response.headers(), "content-type"),
            expected_type,
            "HEAD {path}"
        );
        assert_eq!(response.bytes().await?.len(), 0, "HEAD {path} has no body");
    }
    assert_eq!(
        server.count_of("head.example").await?,
        1,
        "HEAD did not count"
    );
    server.stop().await
}

async fn cors_echoes_the_origin_with_credentials_and_answers_preflight(http: Http) -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start_over(http, dir.path(), &[]).await?;
    let origin = "http://blog.example:4000";
    let response = server
        .request(
            Method::GET,
            "/count?url=cors.example",
            &[("Origin", origin)],
        )
        .await?;
    assert_eq!(
        header(response.headers(), "access-control-allow-origin"),
        origin
    );
    assert_eq!(
        header(response.headers(), "access-control-allow-credentials"),
        "true"
    );
    assert_eq!(header(response.headers(), "vary"), "Origin");

    let preflight = server
        .request(
            Method::OPTIONS,
            "/count?url=cors.example",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "x-requested-with"),
            ],
        )
        .await?;
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header(preflight.headers(), "access-control-allow-origin"),
        origin
    );
    assert_eq!(
        header(preflight.headers(), "access-control-allow-credentials"),
        "true"
    );
    assert_eq!(
        header(preflight.headers(), "access-control-allow-methods"),
        "GET, HEAD, OPTIONS"
    );
    assert_eq!(
        header(preflight.headers(), "access-control-allow-headers"),
        "x-requested-with"
    );
    assert_eq!(header(preflight.headers(), "vary"), "Origin");
    assert_eq!(preflight.bytes().await?.len(), 0);
    assert_eq!(
        server.count_of("cors.example").await?,
        1,
        "the preflight did not count"
    );

    let no_origin = server
        .request(Method::OPTIONS, "/count/tag.svg", &[])
        .await?;
    assert_eq!(no_origin.status(), StatusCode::NO_CONTENT);
    assert_common_headers(no_origin.headers(), "OPTIONS without Origin");
    server.stop().await
}

async fn the_target_comes_from_url_then_referer_then_referrer(http: Http) -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start_over(http, dir.path(), &["--cookie-window-secs", "0"]).await?;

    let by_referer = server
        .request(
            Method::GET,
            "/count",
            &[("Referer", "https://blog.example/post-1/")],
        )
        .await?;
    assert_eq!(by_referer.text().await?, "1");
    assert_eq!(server.count_of("blog.example/post-1").await?, 1);

    let by_referrer = server
        .request(
            Method::GET,
            "/count",
            &[("Referrer", "https://blog.example/post-1")],
        )
        .await?;
    assert_eq!(
        by_referrer.text().await?,
        "2",
        "the Referrer spelling is honoured"
    );

    let both = server
        .request(
            Method::GET,
            "/count?url=other.example",
            &[("Referer", "https://blog.example/post-1")],
        )
        .await?;
    assert_eq!(both.text().await?, "1", "url wins over Referer");
    assert_eq!(server.count_of("blog.example/post-1").await?, 2);

    let empty_param = server
        .request(
            Method::GET,
            "/count?url=",
            &[("Referer", "https://blog.example/post-1")],
        )
        .await?;
    assert_eq!(
        empty_param.text().await?,
        "3",
        "an empty url= falls back to the Referer"
    );

    let svg = server
        .request(
            Method::GET,
            "/count/tag.svg",
            &[("Referer", "http://blog.example/post-1?x=1#y")],
        )
        .await?;
    assert!(svg.text().await?.contains(">4</text>"));
    server.stop().await
}

async fn bad_targets_get_a_400_with_a_reason_in_the_route_s_own_format(http: Http) -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start_over(http, dir.path(), &["--max-url-length", "100"]).await?;
    let long = format!("example.com/{}", "a".repeat(100));
    let cases: [(&str, Headers, &str, &str); 6] = [
        (
            "",
            &[],
            "no url given: pass ?url= or send a Referer",
            "no url",
        ),
        (
            "?url=",
            &[("Referer", "")],
            "no url given: pass ?url= or send a Referer",
            "no url",
        ),
        (
            &format!("?url={long}"),
            &[],
            "bad url: url is longer than 100 bytes",
            "url too long",
        ),
        (
            "?url=exa%20mple.com",
            &[],
            "bad url: the host has a character a host cannot have",
            "bad url",
        ),
        (
            "?url=garbage%20url",
            &[],
            "bad url: the host has a character a host cannot have",
            "bad url",
        ),
        (
            "?url=ex%0Aample.com",
            &[],
            "bad url: url contains control characters",
            "bad url",
        ),
    ];
    for (query, headers, reason, badge_text) in cases {
        for route in ["/count", "/nocount"] {
            let response = server
                .request(Method::GET, &format!("{route}{query}"), headers)
                .await?;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{route}{query}");
            assert_eq!(
                header(response.headers(), "content-type"),
                "text/plain; charset=utf-8"
            );
            assert_common_headers(response.headers(), route);
            assert_eq!(response.text().await?, reason, "{route}{query}");

            let svg = server
                .request(Method::GET, &format!("{route}/tag.svg{query}"), headers)
                .await?;
            assert_eq!(
                svg.status(),
                StatusCode::BAD_REQUEST,
                "{route}/tag.svg{query}"
            );
            assert_eq!(header(svg.headers(), "content-type"), "image/svg+xml");
            let body = svg.text().await?;
            assert_well_formed_svg(&body);
            assert!(
                body.contains(&format!(">{badge_text}</text>")),
                "{route}/tag.svg{query}: {body}"
            );
        }
    }
    let referer_too_long = server
        .request(
            Method::GET,
            "/count",
            &[("Referer", &format!("https://{long}"))],
        )
        .await?;
    assert_eq!(referer_too_long.status(), StatusCode::BAD_REQUEST);
    let bad_scheme = server.get("/count?url=ftp%3A%2F%2Fexample.com").await?;
    assert_eq!(bad_scheme.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        bad_scheme.text().await?,
        "bad url: url scheme must be http or https"
    );
    server.stop().await?;
    assert!(
        Store::open(dir.path())?.is_empty(),
        "no bad target reached the store"
    );
    Ok(())
}

async fn every_spelling_of_a_page_counts_into_one_key(http: Http) -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start_over(http, dir.path(), &["--cookie-window-secs", "0"]).await?;
    let table: &[(&[&str], &str)] = &[
        (
            &["https://Example.COM/Blog/", "example.com/Blog"],
            "example.com/Blog",
        ),
        (
            &[
                "http://example.com:80/blog?utm=x#top",
                "https://example.com:443/blog",
            ],
            "example.com/blog",
        ),
        (
            &["example.com", "example.com/", "https://example.com/"],
            "example.com",
        ),
        (&["www.example.com"], "www.example.com"),
        (&["https://user:pw@example.com/a"], "example.com/a"),
        (&["localhost:8080/x"], "localhost:8080/x"),
        (&["http://127.0.0.1:3000/"], "127.0.0.1:3000"),
        (
            &["https://bücher.example/", "xn--bcher-kva.example"],
            "xn--bcher-kva.example",
        ),
    ];
    for (spellings, key) in table {
        for spelling in *spellings {
            let response = server
                .get(&format!("/count?url={}", encode(spelling)))
                .await?;
            assert_eq!(response.status(), StatusCode::OK, "{spelling}");
        }
        assert_eq!(
            server.count_of(key).await?,
            spellings.len() as u64,
            "key {key}"
        );
    }
    server.stop().await?;
    let store = Store::open(dir.path())?;
    assert_eq!(store.len(), table.len(), "one stored key per page");
    for (spellings, key) in table {
        assert_eq!(
            store.get(key)?,
            Some(spellings.len() as u64),
            "stored {key}"
        );
    }
    Ok(())
}

async fn the_anti_refresh_cookie_suppresses_replays_within_its_window_only(
    http: Http,
) -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start_over(http, dir.path(), &["--cookie-window-secs", "1"]).await?;
    let first = server.get("/count/tag.svg?url=cookie.example").await?;
    let set = header(first.headers(), "set-cookie").to_owned();
    assert!(
        set.ends_with("; Path=/; Max-Age=1; HttpOnly; SameSite=Lax"),
        "{set}"
    );
    let cookie = cookie_of(&first).ok_or("no cookie")?;
    let (name, value) = cookie.split_once('=').ok_or("no =")?;
    assert!(
        name.starts_with("hc_") && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "{name}"
    );
    let random = value.split('.').next().unwrap_or("");
    assert_eq!(random.len(), 12);
    assert!(random.bytes().all(|b| b.is_ascii_alphanumeric()));

    let with_cookie = [("Cookie", cookie.as_str())];
    for path in [
        "/count?url=cookie.example",
        "/count/tag.svg?url=https://cookie.example/",
    ] {
        let replay = server.request(Method::GET, path, &with_cookie).await?;
        assert_eq!(replay.status(), StatusCode::OK);
        assert!(
            replay.headers().get("set-cookie").is_none(),
            "a replay gets no new cookie"
        );
    }
    assert_eq!(
        server.count_of("cookie.example").await?,
        1,
        "replays in the window do not count"
    );

    let other_page = server
        .request(Method::GET, "/count?url=cookie.example/other", &with_cookie)
        .await?;
    assert_eq!(other_page.text().await?, "1", "the cookie is per key");

    for garbage in [
        format!("{name}=garbage"),
        format!("{name}={random}.1.00"),
        "a=b; ;;=; \u{1}".replace('\u{1}', "x"),
        format!("{name}={value}x"),
    ] {
        let response = server
            .request(
                Method::GET,
                "/count?url=cookie.example",
                &[("Cookie", &garbage)],
            )
            .await?;
        assert_eq!(response.status(), StatusCode::OK, "{garbage}");
        assert!(response.headers().get("set-cookie").is_some());
    }
    assert_eq!(
        server.count_of("cookie.example").await?,
        5,
        "malformed or forged cookies count"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = server
        .request(Method::GET, "/count?url=cookie.example", &with_cookie)
        .await?;
    assert_eq!(
        expired.text().await?,
        "6",
        "after the window the hit counts"
    );
    server.stop().await
}

async fn a_zero_window_sets_no_cookie_and_counts_every_hit(http: Http) -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start_over(http, dir.path(), &["--cookie-window-secs", "0"]).await?;
    for n in 1..=3 {
        let response = server.get("/count?url=zero.example").await?;
        assert!(response.headers().get("set-cookie").is_none());
        assert_eq!(response.text().await?, n.to_string());
    }
    server.stop().await
}

async fn secure_cookies_follow_the_transport_and_the_flags(http: Http) -> TestResult {
    let dir = tempfile::tempdir()?;
    let https = [("X-Forwarded-Proto", "https")];
    let cases: [(&[&str], Headers, bool); 5] = [
        (&[], &https, false),
        (&["--trust-proxy"], &https, true),
        (
            &["--trust-proxy"],
            &[("Forwarded", "for=1.2.3.4;proto=https")],
            true,
        ),
        (
            &["--trust-proxy", "--cookie-secure", "never"],
            &https,
            false,
        ),
        (&["--cookie-secure", "always"], &[], true),
    ];
    for (flags, headers, secure) in cases {
        let server = TestServer::start_over(http, dir.path(), flags).await?;
        let response = server
            .request(Method::GET, "/count?url=secure.example", headers)
            .await?;
        let set = header(response.headers(), "set-cookie");
        let want = if secure {
            "; HttpOnly; SameSite=None; Secure"
        } else {
            "; HttpOnly; SameSite=Lax"
        };
        assert!(set.ends_with(want), "{flags:?} {headers:?}: {set}");
        server.stop().await?;
    }
    Ok(())
}

async fn nocount_of_an_unknown_target_creates_nothing(http: Http) -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start_over(http, dir.path(), &[]).await?;
    assert_eq!(server.count_of("never.example/page").await?, 0);
    let svg = server.text("/nocount/tag.svg?url=never.example").await?;
    assert!(svg.contains(">0</text>"));
    server.stop().await?;
    assert!(Store::open(dir.path())?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hits_on_a_fresh_target_are_all_counted_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path(), &[]).await?;
    let url = format!("{}/count?url=race.example/page", server.base);
    let mut clients = Vec::new();
    for _ in 0..32 {
        let url = url.clone();
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut seen = Vec::with_capacity(100);
            for _ in 0..100 {
                let response = client.get(&url).send().await?;
                assert_eq!(response.status(), StatusCode::OK);
                seen.push(response.text().await?.parse::<u64>()?);
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(seen)
        }));
    }
    let mut all = Vec::new();
    for client in clients {
        all.extend(client.await??);
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=3200).collect::<Vec<u64>>(),
        "every hit got its own count"
    );
    assert_eq!(server.count_of("race.example/page").await?, 3200);
    let data_dir = server.data_dir.clone();
    server.stop().await?;
    let store = Store::open(&data_dir)?;
    assert_eq!(store.len(), 1);
    assert_eq!(store.get("race.example/page")?, Some(3200));
    Ok(())
}

#[tokio::test]
async fn counts_survive_a_restart_on_the_same_data_dir() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path(), &["--cookie-window-secs", "0"]).await?;
    for _ in 0..5 {
        server.get("/count?url=restart.example").await?;
    }
    server.get("/count?url=restart.example/b").await?;
    server.stop().await?;

    let server = TestServer::start(dir.path(), &["--cookie-window-secs", "0"]).await?;
    assert_eq!(server.count_of("restart.example").await?, 5);
    assert_eq!(server.count_of("restart.example/b").await?, 1);
    assert_eq!(server.text("/count?url=restart.example").await?, "6");
    server.stop().await?;
    assert_eq!(Store::open(dir.path())?.get("restart.example")?, Some(6));
    Ok(())
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections_at_once() -> TestResult {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir()?;
    let args = ["--cookie-window-secs", "0", "--shutdown-timeout-secs", "30"];
    let server = TestServer::start(dir.path(), &args).await?;
    let address = server.base.trim_start_matches("http://").to_owned();
    // Connections that have each been answered once and now idle, kept alive.
    let mut idle = Vec::new();
    for n in 1..=3 {
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        let request = format!("GET /count?url=idle.example HTTP/1.1\r\nHost: {address}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let (mut answer, mut buf) = (Vec::new(), [0u8; 1024]);
        while !answer.ends_with(format!("\r\n\r\n{n}").as_bytes()) {
            let read =
                tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await??;
            assert!(read > 0, "closed before answering: {answer:?}");
            answer.extend_from_slice(&buf[..read]);
        }
        idle.push(stream);
    }
    let started = std::time::Instant::now();
    server.stop().await?;
    // With 30 s of grace, a drain that left idle connections open would still be waiting for them
    // (and `stop` gives up after 10 s).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    for mut stream in idle {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await??;
        assert_eq!(read, 0, "the server closed the idle connection");
    }
    assert_eq!(Store::open(dir.path())?.get("idle.example")?, Some(3));
    Ok(())
}

async fn a_tiny_cache_still_counts_every_hit_of_many_urls(http: Http) -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start_over(
        http,
        dir.path(),
        &["--cookie-window-secs", "0", "--cache-capacity", "4"],
    )
    .await?;
    for round in 1..=3u64 {
        for page in 0..40 {
            let body = server
                .text(&format!("/count?url=many.example/{page}"))
                .await?;
            assert_eq!(body, round.to_string(), "page {page} round {round}");
        }
    }
    server.stop().await?;
    let store = Store::open(dir.path())?;
    assert_eq!(store.len(), 40);
    for page in 0..40 {
        assert_eq!(store.get(&format!("many.example/{page}"))?, Some(3));
    }
    Ok(())
}

async fn a_custom_svg_template_is_filled_in(http: Http) -> TestResult {
    let dir = tempfile::tempdir()?;
    let template = dir.path().join("badge.svg");
    std::fs::write(
        &template,
        r#"<svg xmlns="http://www.w3.org/2000/svg"><text>{count} views of {url}</text></svg>"#,
    )?;
    let data = dir.path().join("data");
    let server = TestServer::start_over(
        http,
        &data,
        &["--svg-template", &template.to_string_lossy()],
    )
    .await?;
    let body = server
        .text("/count/tag.svg?url=tmpl.example/a%3Cb%3E")
        .await?;
    assert_well_formed_svg(&body);
    assert_eq!(
        body,
        r#"<svg xmlns="http://www.w3.org/2000/svg"><text>1 views of tmpl.example/a%3Cb%3E</text></svg>"#
    );
    server.stop().await
}

async fn odd_bytes_in_headers_are_a_clear_error_or_ignored_never_a_500(http: Http) -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start_over(http, dir.path(), &[]).await?;
    let client = server.client();
    let odd = HeaderValue::from_bytes(b"http://ex\xe4mple.com/\xff")?;
    let response = client
        .get(format!("{}/count", server.base))
        .header("Referer", odd.clone())
        .header("Cookie", odd.clone())
        .header("Origin", HeaderValue::from_static("null"))
        .send()
        .await?;
    assert!(
        response.status().is_client_error() || response.status().is_success(),
        "{}",
        response.status()
    );
    let response = client
        .get(format!("{}/count?url=%ff%fe", server.base))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = client
        .get(format!(
            "{}/count?url=ok.example&url=other.example",
            server.base
        ))
        .send()
        .await?;
    assert_eq!(response.text().await?, "1");
    assert_eq!(
        server.count_of("ok.example").await?,
        1,
        "the first url= wins"
    );
    server.stop().await
}

#[tokio::test]
async fn top_sites_are_ranked_in_the_background_without_ignored_domains() -> TestResult {
    let dir = tempfile::tempdir()?;
    let args = [
        "--cookie-window-secs",
        "0",
        "--top-refresh-secs",
        "1",
        "--top-urls",
        "2",
    ];
    let server = TestServer::start(dir.path(), &args).await?;
    let before: serde_json::Value = server.get("/nocount/top.json").await?.json().await?;
    assert_eq!(
        before,
        serde_json::json!({"domains": [], "urls": [], "limits": {"domains": 10, "urls": 2}, "updated_ms": null})
    );
    for (url, hits) in [
        ("top.example/a", 3),
        ("top.example/b", 2),
        ("other.example", 4),
        ("localhost:9999/x", 50),
    ] {
        for _ in 0..hits {
            server.get(&format!("/count?url={url}")).await?;
        }
    }
    let mut top = serde_json::Value::Null;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        top = server.get("/nocount/top.json").await?.json().await?;
        if top["domains"].as_array().is_some_and(|d| d.len() == 2) {
            break;
        }
    }
    assert_eq!(
        top["domains"],
        serde_json::json!([{"name": "top.example", "count": 5}, {"name": "other.example", "count": 4}])
    );
    assert_eq!(
        top["urls"],
        serde_json::json!([{"name": "other.example", "count": 4}, {"name": "top.example/a", "count": 3}])
    );
    assert!(top["updated_ms"].as_u64().is_some());
    server.stop().await
}

/// One raw HTTP/1.1 answer: status, headers (names lower case) and body.
struct RawAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawAnswer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(known, _)| known == name)
            .map_or("", |(_, value)| value)
    }
}

/// Splits `bytes`, the answers to requests of `methods` in order, into those answers.
fn split_answers(
    mut bytes: &[u8],
    methods: &[&str],
) -> Result<Vec<RawAnswer>, crate::common::BoxError> {
    let mut answers = Vec::new();
    for method in methods {
        let head_end = bytes
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .ok_or("an answer without the end of its head")?;
        let head = std::str::from_utf8(&bytes[..head_end])?;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .ok_or("no status line")?
            .parse()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(": "))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
            .collect();
        let length = match headers.iter().find(|(name, _)| name == "content-length") {
            Some(_) if *method == "HEAD" => 0,
            Some((_, length)) => length.parse()?,
            None => 0,
        };
        let (body, rest) = bytes[head_end + 4..]
            .split_at_checked(length)
            .ok_or("an answer shorter than its Content-Length")?;
        answers.push(RawAnswer {
            status,
            headers,
            body: String::from_utf8(body.to_vec())?,
        });
        bytes = rest;
    }
    assert!(bytes.is_empty(), "more than {} answers", methods.len());
    Ok(answers)
}

// Pipelined on one connection, every request gets its own headers, method and query, on the
// counting routes and the others alike.
#[tokio::test]
async fn pipelined_requests_on_one_connection_each_get_their_own_parts() -> TestResult {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path(), &["--cookie-window-secs", "0"]).await?;
    let address = server.base.trim_start_matches("http://").to_owned();
    let host = format!("Host: {address}\r\n");
    let requests = [
        (
            "GET",
            "/count?url=pipe.example",
            "Origin: http://a.example\r\n",
        ),
        (
            "OPTIONS",
            "/count/tag.svg?url=pipe.example",
            "Origin: http://b.example\r\nAccess-Control-Request-Headers: x-b\r\n",
        ),
        ("GET", "/count", "Referer: https://referer.example/page\r\n"),
        ("GET", "/healthz", ""),
        ("POST", "/count?url=pipe.example", "Content-Length: 0\r\n"),
        ("HEAD", "/count/tag.svg?url=pipe.example", ""),
        (
            "GET",
            "/count.json?url=pipe.example",
            "Origin: http://c.example\r\n",
        ),
        ("GET", "/nocount?url=pipe.example", "Connection: close\r\n"),
    ];
    let mut all = String::new();
    for (method, path, headers) in requests {
        all.push_str(&format!("{method} {path} HTTP/1.1\r\n{host}{headers}\r\n"));
    }
    let mut stream = tokio::net::TcpStream::connect(&address).await?;
    stream.write_all(all.as_bytes()).await?;
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes)).await??;
    let methods: Vec<&str> = requests.iter().map(|(method, _, _)| *method).collect();
    let answers = split_answers(&bytes, &methods)?;

    let [
        count,
        preflight,
        by_referer,
        health,
        post,
        head,
        json,
        nocount,
    ] = answers.as_slice()
    else {
        return Err(format!("{} answers", answers.len()).into());
    };
    assert_eq!((count.status, count.body.as_str()), (200, "1"));
    assert_eq!(
        count.header("access-control-allow-origin"),
        "http://a.example"
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        "http://b.example"
    );
    assert_eq!(preflight.header("access-control-allow-headers"), "x-b");
    assert_eq!((by_referer.status, by_referer.body.as_str()), (200, "1"));
    assert_eq!(by_referer.header("access-control-allow-origin"), "*");
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), "GET, HEAD, OPTIONS");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), "image/svg+xml");
    assert_eq!(json.status, 200);
    assert!(json.body.contains(r#""total":2"#), "{}", json.body);
    assert_eq!(
        json.header("access-control-allow-origin"),
        "http://c.example"
    );
    assert_eq!((nocount.status, nocount.body.as_str()), (200, "2"));
    assert_eq!(nocount.header("access-control-allow-origin"), "*");
    assert_eq!(server.count_of("referer.example/page").await?, 1);
    server.stop().await
}

// HTTP/2 serves a connection's requests side by side, so its counting requests keep their parts
// and the route reads them with warp's filters: the same answers as over HTTP/1.
#[tokio::test]
async fn http2_requests_are_counted_and_answered_like_http1() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path(), &["--cookie-window-secs", "0", "--http2"]).await?;
    let client = reqwest::Client::builder().http2_prior_knowledge().build()?;
    // Eight at once, so that they are streams of one connection served side by side.
    let mut hits = tokio::task::JoinSet::new();
    for n in 0..8 {
        let hit = client
            .get(format!("{}/count/tag.svg?url=h2.example", server.base))
            .header("Origin", format!("http://{n}.example"))
            .send();
        hits.spawn(async move { (n, hit.await) });
    }
    while let Some(joined) = hits.join_next().await {
        let (n, answer) = joined?;
        let answer = answer?;
        assert_eq!(answer.version(), reqwest::Version::HTTP_2);
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(
            crate::common::header(answer.headers(), "access-control-allow-origin"),
            format!("http://{n}.example")
        );
        assert_well_formed_svg(&answer.text().await?);
    }
    let by_referer = client
        .get(format!("{}/count", server.base))
        .header("Referer", "https://h2.example/")
        .send()
        .await?;
    assert_eq!(by_referer.version(), reqwest::Version::HTTP_2);
    assert_eq!(by_referer.text().await?, "9");
    let preflight = client
        .request(Method::OPTIONS, format!("{}/count", server.base))
        .header("Access-Control-Request-Headers", "x-h2")
        .send()
        .await?;
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        crate::common::header(preflight.headers(), "access-control-allow-headers"),
        "x-h2"
    );
    assert_eq!(server.count_of("h2.example").await?, 9);
    server.stop().await
}

/// Each of the tests named, as two tests: one whose client speaks HTTP/1.1 and one speaking
/// HTTP/2 (h2c, the server started with `--http2`).
macro_rules! over_http1_and_http2 {
    ($($name:ident),* $(,)?) => {
        mod over_http1 {
            $(
                #[tokio::test]
                async fn $name() -> crate::common::TestResult {
                    super::$name(crate::common::Http::One).await
                }
            )*
        }
        mod over_http2 {
            $(
                #[tokio::test]
                async fn $name() -> crate::common::TestResult {
                    super::$name(crate::common::Http::Two).await
                }
            )*
        }
    };
}

over_http1_and_http2!(
    every_route_answers_with_its_type_body_and_headers,
    head_answers_like_get_without_a_body_and_never_counts,
    cors_echoes_the_origin_with_credentials_and_answers_preflight,
    the_target_comes_from_url_then_referer_then_referrer,
    bad_targets_get_a_400_with_a_reason_in_the_route_s_own_format,
    every_spelling_of_a_page_counts_into_one_key,
    the_anti_refresh_cookie_suppresses_replays_within_its_window_only,
    a_zero_window_sets_no_cookie_and_counts_every_hit,
    secure_cookies_follow_the_transport_and_the_flags,
    nocount_of_an_unknown_target_creates_nothing,
    a_tiny_cache_still_counts_every_hit_of_many_urls,
    a_custom_svg_template_is_filled_in,
    odd_bytes_in_headers_are_a_clear_error_or_ignored_never_a_500,
);
