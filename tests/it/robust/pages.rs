//! Filling the key space: `--max-pages` and the per-client `--new-pages-per-minute`, with
//! GitHub's image proxy handled apart, through a real server and real clients.

use std::net::IpAddr;
use std::time::Duration;

use crate::common::{BoxError, TestResult, TestServer, encode, header};

/// A client whose connections come from `from` (any 127.x.y.z reaches the server).
fn client_from(from: &str) -> Result<reqwest::Client, BoxError> {
    Ok(reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>()?)
        .build()?)
}

/// One GET of the badge of `url` with `user_agent`; returns the response.
async fn badge(
    client: &reqwest::Client,
    base: &str,
    url: &str,
    user_agent: &str,
) -> Result<reqwest::Response, BoxError> {
    Ok(client
        .get(format!("{base}/count/tag.svg?url={}", encode(url)))
        .header("User-Agent", user_agent)
        .send()
        .await?)
}

/// The status of one GET of the badge of `url` with `user_agent`.
async fn status_of(
    client: &reqwest::Client,
    base: &str,
    url: &str,
    user_agent: &str,
) -> Result<u16, BoxError> {
    Ok(badge(client, base, url, user_agent)
        .await?
        .status()
        .as_u16())
}

/// Waits, if need be, for a clock minute with at least 20 s left: allowances are per minute.
async fn early_in_a_minute() {
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() % 60);
    if second > 40 {
        tokio::time::sleep(Duration::from_secs(61 - second)).await;
    }
}

#[tokio::test]
async fn past_max_pages_a_new_page_is_refused_and_known_pages_keep_counting() -> TestResult {
    let dir = tempfile::tempdir()?;
    let args = [
        "--max-pages",
        "5",
        "--cookie-window-secs",
        "0",
        "--admin-token",
        "secret",
    ];
    let server = TestServer::start(dir.path(), &args).await?;
    let http = reqwest::Client::new();
    // The stored pages are counted at start, in the background: an empty store at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..5 {
        let response = badge(&http, &server.base, &format!("full.example/{i}"), "t").await?;
        assert_eq!(response.status(), 200, "page {i}");
    }
    let refused = badge(&http, &server.base, "full.example/new", "t").await?;
    assert_eq!(refused.status(), 403);
    assert_eq!(header(refused.headers(), "content-type"), "image/svg+xml");
    assert!(refused.text().await?.contains("page limit reached"));
    let text = server.get("/count?url=full.example/new2").await?;
    assert_eq!(text.status(), 403);
    assert!(text.text().await?.contains("maximum of 5 pages"));
    assert_eq!(
        server.count_of("full.example/new").await?,
        0,
        "nothing stored"
    );
    assert_eq!(
        status_of(&http, &server.base, "full.example/0", "t").await?,
        200
    );
    assert_eq!(
        server.count_of("full.example/0").await?,
        2,
        "known pages count"
    );
    // A deleted page makes room for one new page.
    let deleted = server
        .request(
            reqwest::Method::DELETE,
            "/admin/count?url=full.example/4",
            &[("Authorization", "Bearer secret")],
        )
        .await?;
    assert!(deleted.status().is_success(), "{}", deleted.status());
    assert_eq!(
        status_of(&http, &server.base, "full.example/new", "t").await?,
        200
    );
    server.stop().await?;
    // After a restart the stored pages are counted again: still full.
    let server = TestServer::start(dir.path(), &args).await?;
    let started = std::time::Instant::now();
    loop {
        let status = status_of(&http, &server.base, "full.example/later", "t").await?;
        if status == 403 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never refused again: {status}"
        );
        // Counted before the store was: that page now holds a place, so delete it again.
        server
            .request(
                reqwest::Method::DELETE,
                "/admin/count?url=full.example/later",
                &[("Authorization", "Bearer secret")],
            )
            .await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.count_of("full.example/0").await?, 2);
    server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn one_client_gets_a_few_new_pages_a_minute_and_github_s_proxy_more() -> TestResult {
    early_in_a_minute().await;
    let dir = tempfile::tempdir()?;
    let args = [
        "--new-pages-per-minute",
        "3",
        "--rate-limit",
        "5",
        "--cookie-window-secs",
        "0",
    ];
    let server = TestServer::start(dir.path(), &args).await?;
    let (attacker, other) = (client_from("127.0.0.2")?, client_from("127.0.0.3")?);
    for i in 0..3 {
        let response = badge(&attacker, &server.base, &format!("flood.example/{i}"), "x").await?;
        assert_eq!(response.status(), 200, "page {i}");
    }
    let refused = badge(&attacker, &server.base, "flood.example/3", "x").await?;
    assert_eq!(refused.status(), 429);
    let retry: u64 = header(refused.headers(), "retry-after").parse()?;
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(refused.text().await?.contains("too many new pages"));
    assert_eq!(server.count_of("flood.example/3").await?, 0);
    // Its known pages still count (within the rate limit), and another client makes new pages.
    assert_eq!(
        status_of(&attacker, &server.base, "flood.example/0", "x").await?,
        200
    );
    assert_eq!(server.count_of("flood.example/0").await?, 2);
    assert_eq!(
        status_of(&other, &server.base, "other.example/a", "x").await?,
        200
    );

    // GitHub's image proxy, from one address: ten times the allowance, shared; and a rate limit
    // per page, so one README's badge does not use up another's.
    let camo = client_from("127.0.0.4")?;
    let agent = "github-camo (876de43e)";
    for i in 0..30 {
        let response = badge(&camo, &server.base, &format!("readme.example/{i}"), agent).await?;
        assert_eq!(response.status(), 200, "proxied page {i}");
    }
    assert_eq!(
        status_of(&camo, &server.base, "readme.example/30", agent).await?,
        429
    );
    for _ in 0..6 {
        badge(&camo, &server.base, "readme.example/0", agent).await?;
    }
    badge(&camo, &server.base, "readme.example/1", agent).await?;
    assert_eq!(
        server.count_of("readme.example/0").await?,
        5,
        "rate limit per page"
    );
    assert_eq!(
        server.count_of("readme.example/1").await?,
        2,
        "its own allowance"
    );
    server.stop().await?;
    Ok(())
}
