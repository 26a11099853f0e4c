//! Per-client limits per clock minute: of counted hits (the rate limit) and of new pages.

use std::net::IpAddr;

use warp::http::HeaderMap;
use warp::http::header;

use crate::bounded;

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
pub(crate) fn is_image_proxy(headers: &HeaderMap) -> bool {
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

    #[test]
    fn concurrent_first_uses_never_take_the_rate_limit_past_its_capacity() {
        for _ in 0..20 {
            let limit = RateLimit::new(10, 50);
            std::thread::scope(|scope| {
                for thread in 0..8u8 {
                    let limit = &limit;
                    scope.spawn(move || {
                        for n in 0..40u8 {
                            let ip = Some(IpAddr::from([10, 0, thread, n]));
                            limit.allow(ip.map(Allowance::Client), 1, 1_000);
                        }
                    });
                }
            });
            assert!(limit.clients.counted() <= 50, "{}", limit.clients.counted());
        }
    }
}
