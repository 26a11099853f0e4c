//! Hostile clients above the connection: forged and rotating client addresses against the rate
//! limit.

use crate::common::{TestResult, TestServer};

/// Hits `url` once per header set, from 127.0.0.1 behind a (pretend) trusted proxy; returns
/// the count the server then reports.
async fn hits_counted(
    headers: &[Vec<(&str, String)>],
    url: &str,
) -> Result<u64, crate::common::BoxError> {
    let dir = tempfile::tempdir()?;
    let args = [
        "--trust-proxy",
        "--rate-limit",
        "10",
        "--cookie-window-secs",
        "0",
    ];
    let server = TestServer::start(dir.path(), &args).await?;
    for set in headers {
        let pairs: Vec<(&str, &str)> = set.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let response = server
            .request(reqwest::Method::GET, &format!("/count?url={url}"), &pairs)
            .await?;
        assert_eq!(response.status(), 200);
    }
    let counted = server.count_of(url).await?;
    server.stop().await?;
    Ok(counted)
}

#[tokio::test]
async fn a_client_rotating_through_its_ipv6_prefix_is_rate_limited_as_one() -> TestResult {
    let rotating: Vec<Vec<(&str, String)>> = (1..=30)
        .map(|i| vec![("X-Forwarded-For", format!("2001:db8:1:2::{i:x}"))])
        .collect();
    assert_eq!(hits_counted(&rotating, "v6.example").await?, 10);
    let other_prefixes: Vec<Vec<(&str, String)>> = (1..=30)
        .map(|i| vec![("X-Forwarded-For", format!("2001:db8:1:{i:x}::1"))])
        .collect();
    assert_eq!(hits_counted(&other_prefixes, "v6b.example").await?, 30);
    Ok(())
}

#[tokio::test]
async fn a_forwarded_header_beside_x_forwarded_for_does_not_change_the_client() -> TestResult {
    let mixed: Vec<Vec<(&str, String)>> = (1..=30)
        .map(|i| {
            vec![
                ("X-Forwarded-For", "198.51.100.7".to_owned()),
                ("Forwarded", format!("for=203.0.113.{i}")),
            ]
        })
        .collect();
    assert_eq!(hits_counted(&mixed, "mixed.example").await?, 10);
    Ok(())
}

#[tokio::test]
async fn admin_brute_force_is_locked_out_per_client_and_the_right_token_still_works() -> TestResult
{
    let dir = tempfile::tempdir()?;
    let args = ["--admin-token", "t0ken", "--metrics"];
    let server = TestServer::start(dir.path(), &args).await?;
    let attacker = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>()?)
        .build()?;
    let put = |client: &reqwest::Client, token: &str| {
        client
            .put(format!("{}/admin/count?url=admin.example", server.base))
            .header("Authorization", format!("Bearer {token}"))
            .body("5")
            .send()
    };
    for _ in 0..hitcounter::endpoints::admin::FAILURES_PER_MINUTE {
        assert_eq!(put(&attacker, "wrong").await?.status(), 401);
    }
    for token in ["wrong", "t0ken"] {
        let locked = put(&attacker, token).await?;
        assert_eq!(locked.status(), 429, "{token}");
        let wait: u64 = crate::common::header(locked.headers(), "retry-after").parse()?;
        assert!((1..=60).contains(&wait), "{wait}");
    }
    let delete = attacker
        .delete(format!("{}/admin/count?url=admin.example", server.base))
        .header("Authorization", "Bearer wrong")
        .send()
        .await?;
    assert_eq!(delete.status(), 429, "every admin route");
    let good = reqwest::Client::builder()
        .local_address("127.0.0.1".parse::<std::net::IpAddr>()?)
        .build()?;
    assert_eq!(put(&good, "t0ken").await?.status(), 200);
    assert_eq!(server.count_of("admin.example").await?, 5);
    let metrics = server.text("/metrics").await?;
    let failures = metrics
        .lines()
        .find(|line| line.starts_with("hitcounter_admin_auth_failures_total"))
        .and_then(|line| line.split_whitespace().last())
        .ok_or("no failure metric")?;
    assert_eq!(failures.parse::<u64>()?, 10);
    server.stop().await?;
    Ok(())
}
