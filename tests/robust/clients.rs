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
