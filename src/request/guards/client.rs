//! Who the client is: its address behind trusted proxies, its group (an IPv6 prefix), and
//! whether it used HTTPS.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use warp::http::HeaderMap;
use warp::http::header;

/// The client's address: the socket peer, or with `trust_proxy` the right-most address of
/// `X-Forwarded-For` (else `Forwarded`) that is not a trusted proxy.
pub(crate) fn client_ip(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trust_proxy: bool,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer.map(|p| p.ip());
    if !trust_proxy {
        return peer;
    }
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut chain: Vec<IpAddr> = forwarded_chain(headers);
    chain.extend(peer);
    let mut last = None;
    for ip in chain.into_iter().rev() {
        if !is_trusted(&ip) {
            return Some(ip);
        }
        last = Some(ip);
    }
    last
}

/// The addresses a request passed through, client first, from `X-Forwarded-For` or `Forwarded`.
fn forwarded_chain(headers: &HeaderMap) -> Vec<IpAddr> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|part| part.trim().to_owned())
            .collect()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff.iter().filter_map(|part| parse_ip(part)).collect();
    }
    values("forwarded")
        .iter()
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.eq_ignore_ascii_case("for")
                    .then(|| parse_ip(value.trim_matches('"')))?
            })
        })
        .collect()
}

/// The address that stands for `ip`'s client in every per-client limit: an IPv4 address as it
/// is (an IPv4-mapped IPv6 one as IPv4), an IPv6 address cut to its first `ipv6_prefix` bits,
/// since one home or host is given a whole prefix and could rotate through it.
pub(crate) fn client_group(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u32::from(ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        },
    }
}

/// An address, with or without a port or IPv6 brackets.
fn parse_ip(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            text.trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .ok()
        })
}

/// Whether a proxy says the client used HTTPS (`X-Forwarded-Proto` or `Forwarded: proto=`).
pub(crate) fn forwarded_https(headers: &HeaderMap) -> bool {
    let is_https = |proto: &str| proto.trim().trim_matches('"').eq_ignore_ascii_case("https");
    if let Some(proto) = headers.get("x-forwarded-proto") {
        return proto
            .to_str()
            .ok()
            .and_then(|v| v.split(',').next())
            .is_some_and(is_https);
    }
    headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| {
            first.split(';').any(|pair| {
                pair.trim()
                    .split_once('=')
                    .is_some_and(|(k, v)| k.eq_ignore_ascii_case("proto") && is_https(v))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    #[test]
    fn ipv6_clients_are_grouped_by_prefix_and_ipv4_stays_whole() {
        let group = |text: &str, prefix| ip(text).map(|ip| client_group(ip, prefix));
        assert_eq!(group("2001:db8:1:2:aaaa::1", 64), ip("2001:db8:1:2::"));
        assert_eq!(group("2001:db8:1:2:ffff::9", 64), ip("2001:db8:1:2::"));
        assert_eq!(group("2001:db8:1:3::1", 64), ip("2001:db8:1:3::"));
        assert_eq!(group("2001:db8:1:2::1", 128), ip("2001:db8:1:2::1"));
        assert_eq!(group("2001:db8:ff::1", 32), ip("2001:db8::"));
        assert_eq!(group("::ffff:192.0.2.7", 64), ip("192.0.2.7"));
        assert_eq!(group("192.0.2.7", 8), ip("192.0.2.7"));
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_address() -> Result<(), Box<dyn std::error::Error>> {
        let trusted: Vec<IpNet> = vec!["127.0.0.0/8".parse()?, "10.0.0.0/8".parse()?];
        let peer = Some("127.0.0.1:5000".parse()?);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7, 10.1.1.1".parse()?,
        );
        assert_eq!(
            client_ip(peer, &headers, true, &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(peer, &headers, false, &trusted),
            ip("127.0.0.1"),
            "headers ignored"
        );
        let outsider = Some("192.0.2.1:5000".parse()?);
        assert_eq!(
            client_ip(outsider, &headers, true, &trusted),
            ip("192.0.2.1"),
            "untrusted peer"
        );
        let mut forwarded = HeaderMap::new();
        forwarded.insert(
            "forwarded",
            r#"for="[2001:db8::1]:4711";proto=https, for=10.0.0.2"#.parse()?,
        );
        assert_eq!(
            client_ip(peer, &forwarded, true, &trusted),
            ip("2001:db8::1")
        );
        Ok(())
    }
}
