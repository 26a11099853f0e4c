//! Abuse and privacy guards: URL allow/deny rules, the client's address behind trusted proxies,
//! cookieless visitor dedupe and per-client rate limits (of counted hits and of new pages). Every map has a capacity; no address or
//! User-Agent is ever written to disk or logs.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;

use ipnet::IpNet;
use regex::RegexSet;
use warp::http::HeaderMap;
use warp::http::header;

use crate::bounded;
use crate::clock::day_of;

/// `--allow` and `--deny` patterns, each matched against the whole key.
#[derive(Debug, Clone, Default)]
pub struct UrlRules {
    allow: Option<RegexSet>,
    deny: Option<RegexSet>,
}

impl UrlRules {
    /// Compiles the patterns, anchoring each to the whole key.
    pub fn new(allow: &[String], deny: &[String]) -> Result<Self, regex::Error> {
        let set = |patterns: &[String]| -> Result<Option<RegexSet>, regex::Error> {
            if patterns.is_empty() {
                return Ok(None);
            }
            RegexSet::new(patterns.iter().map(|p| format!("^(?:{p})$"))).map(Some)
        };
        Ok(Self {
            allow: set(allow)?,
            deny: set(deny)?,
        })
    }

    /// Why `key` is refused, if it is: deny wins over allow.
    pub fn refusal(&self, key: &str) -> Option<&'static str> {
        if self.deny.as_ref().is_some_and(|deny| deny.is_match(key)) {
            return Some("this url is denied on this counter");
        }
        if self
            .allow
            .as_ref()
            .is_some_and(|allow| !allow.is_match(key))
        {
            return Some("this url is not allowed on this counter");
        }
        None
    }
}

/// The client's address: the socket peer, or with `trust_proxy` the right-most address of
/// `X-Forwarded-For` (else `Forwarded`) that is not a trusted proxy.
pub fn client_ip(
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
pub fn client_group(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
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
pub fn forwarded_https(headers: &HeaderMap) -> bool {
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

/// Cookieless dedupe: a keyed hash of (client address, User-Agent, key) remembered for the
/// window. The key of the hash is random, lives only in memory and changes every UTC day.
pub struct Dedupe {
    window_ms: u64,
    /// The hash key and the day it was made for; a lock taken for reading on every check, and
    /// for writing once a day.
    hasher: RwLock<(u32, RandomState)>,
    /// Hash → when it expires (Unix ms); expired entries are dropped when it is full.
    seen: bounded::Map<u64, u64>,
}

impl Dedupe {
    /// Remembers visitors for `window_secs`, at most `capacity` at once.
    pub fn new(window_secs: u64, capacity: usize) -> Self {
        Self {
            window_ms: window_secs.saturating_mul(1000),
            hasher: RwLock::new((0, RandomState::new())),
            seen: bounded::Map::new(capacity),
        }
    }

    /// Whether this visitor hit this key within the window; if not, remembers it now. When the
    /// map is full even after dropping expired entries, the visitor is not remembered (and so
    /// counts): memory stays bounded.
    pub fn seen_recently(
        &self,
        ip: Option<IpAddr>,
        user_agent: &[u8],
        key: &str,
        now_ms: u64,
    ) -> bool {
        if self.window_ms == 0 {
            return false;
        }
        let hash = self.hash(ip, user_agent, key, day_of(now_ms));
        if let Some(expires) = self.seen.get(&hash) {
            if *expires > now_ms {
                return true;
            }
        }
        self.seen
            .insert_or_prune(hash, now_ms + self.window_ms, |_, expires| {
                *expires > now_ms
            });
        false
    }

    fn hash(&self, ip: Option<IpAddr>, user_agent: &[u8], key: &str, day: u32) -> u64 {
        let current = match self.hasher.read() {
            Ok(guard) if guard.0 == day => Some(guard.1.clone()),
            _ => None,
        };
        let state = current.unwrap_or_else(|| self.rotate(day));
        let mut hasher = state.build_hasher();
        ip.hash(&mut hasher);
        user_agent.hash(&mut hasher);
        key.hash(&mut hasher);
        hasher.finish()
    }

    /// A new random hash key for `day`; yesterday's hashes mean nothing now, so they go.
    fn rotate(&self, day: u32) -> RandomState {
        let mut guard = match self.hasher.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if guard.0 != day {
            *guard = (day, RandomState::new());
            self.seen.clear();
        }
        guard.1.clone()
    }

    /// Visitors remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no visitor is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whose allowance a counted hit or a new page takes from a [`RateLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Allowance {
    /// One client address (IPv6: one prefix).
    Client(IpAddr),
    /// One page through one address of an image proxy that fetches for many people (GitHub's
    /// camo): each page its own allowance, so one popular README does not use up another's.
    ProxiedPage(IpAddr, u64),
    /// Every new page through an image proxy, together: one larger allowance, since the proxy's
    /// User-Agent is all that marks it and anyone can send that.
    Proxy,
}

/// Whether a request comes through GitHub's image proxy: its User-Agent starts `github-camo`.
pub fn is_image_proxy(headers: &HeaderMap) -> bool {
    headers
        .get(header::USER_AGENT)
        .is_some_and(|agent| agent.as_bytes().starts_with(b"github-camo"))
}

/// At most `per_minute` uses per [`Allowance`] per clock minute: counted hits (the rate limit),
/// or new pages (the new-pages allowance).
pub struct RateLimit {
    per_minute: u32,
    /// Allowance → (minute, uses in it); past minutes' entries are dropped when it is full.
    clients: bounded::Map<Allowance, (u64, u32)>,
}

impl RateLimit {
    /// A limit of `per_minute` uses, tracking at most `capacity` allowances at once.
    pub fn new(per_minute: u32, capacity: usize) -> Self {
        Self {
            per_minute,
            clients: bounded::Map::new(capacity),
        }
    }

    /// Whether one more use of `allowance` fits in this minute's `per_minute` times `scale`.
    /// One that cannot be tracked (no address, or the map full of this minute's allowances) is
    /// not limited: memory stays bounded.
    pub fn allow(&self, allowance: Option<Allowance>, scale: u32, now_ms: u64) -> bool {
        let Some(allowance) = allowance else {
            return true;
        };
        let limit = self.per_minute.saturating_mul(scale);
        let minute = now_ms / 60_000;
        if let Some(mut entry) = self.clients.get_mut(&allowance) {
            let (at, uses) = &mut *entry;
            if *at != minute {
                (*at, *uses) = (minute, 0);
            }
            *uses = uses.saturating_add(1);
            return *uses <= limit;
        }
        let tracked = self
            .clients
            .insert_or_prune(allowance, (minute, 1), |_, (at, _)| *at == minute);
        !tracked || 1 <= limit
    }

    /// Clients tracked now.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
    fn deny_wins_and_patterns_match_whole_keys() -> Result<(), regex::Error> {
        let rules = UrlRules::new(
            &[r"example\.com(/.*)?".into()],
            &[r"example\.com/private(/.*)?".into()],
        )?;
        assert_eq!(rules.refusal("example.com/blog"), None);
        assert!(rules.refusal("example.com/private/x").is_some());
        assert!(
            rules.refusal("evil.example.com").is_some(),
            "anchored: no partial match"
        );
        assert!(rules.refusal("example.com.evil").is_some());
        assert_eq!(UrlRules::new(&[], &[])?.refusal("anything"), None);
        Ok(())
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

    #[test]
    fn concurrent_first_visits_never_take_a_guard_past_its_capacity() {
        for _ in 0..20 {
            let dedupe = Dedupe::new(60, 50);
            let limit = RateLimit::new(10, 50);
            std::thread::scope(|scope| {
                for thread in 0..8u8 {
                    let (dedupe, limit) = (&dedupe, &limit);
                    scope.spawn(move || {
                        for n in 0..40u8 {
                            let ip = Some(IpAddr::from([10, 0, thread, n]));
                            dedupe.seen_recently(ip, b"ua", "k", 1_000);
                            limit.allow(ip.map(Allowance::Client), 1, 1_000);
                        }
                    });
                }
            });
            assert!(dedupe.seen.counted() <= 50, "{}", dedupe.seen.counted());
            assert!(limit.clients.counted() <= 50, "{}", limit.clients.counted());
        }
    }

    #[test]
    fn dedupe_remembers_a_visitor_for_the_window_within_its_capacity() {
        let dedupe = Dedupe::new(60, 3);
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert!(!dedupe.seen_recently(a, b"ua", "k", 1_000));
        assert!(dedupe.seen_recently(a, b"ua", "k", 2_000));
        assert!(
            !dedupe.seen_recently(b, b"ua", "k", 2_000),
            "another address"
        );
        assert!(
            !dedupe.seen_recently(a, b"other ua", "k", 2_000),
            "another browser"
        );
        assert!(
            !dedupe.seen_recently(a, b"ua", "k", 61_001),
            "after the window"
        );
        for n in 0..100 {
            dedupe.seen_recently(ip(&format!("198.51.100.{n}")), b"ua", "k", 62_000);
        }
        assert!(dedupe.len() <= 3, "bounded: {}", dedupe.len());
    }

    #[test]
    fn the_rate_limit_counts_per_client_per_minute_within_its_capacity() {
        let limit = RateLimit::new(2, 3);
        let client = |text: &str| ip(text).map(Allowance::Client);
        let a = client("192.0.2.1");
        assert!(limit.allow(a, 1, 0));
        assert!(limit.allow(a, 1, 1));
        assert!(!limit.allow(a, 1, 2));
        assert!(limit.allow(a, 1, 60_000), "a new minute");
        let proxy = Some(Allowance::Proxy);
        assert!((0..6).all(|n| limit.allow(proxy, 3, 60_000 + n)), "scaled");
        assert!(!limit.allow(proxy, 3, 60_006));
        for n in 0..100 {
            limit.allow(client(&format!("198.51.100.{n}")), 1, 60_001);
        }
        assert!(limit.len() <= 3, "bounded: {}", limit.len());
    }
}
