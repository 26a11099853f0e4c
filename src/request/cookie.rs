//! Anti-refresh cookies: a valid cookie name per key, and signed values that carry their own
//! issue time, so the server checks the window without keeping any per-visitor state.
//! Pure: the clock and the random source are passed in.

use hmac::{Hmac, Mac};
use rand::RngExt;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the HMAC kept in a cookie value (128 bits).
const MAC_BYTES: usize = 16;
/// The characters of the random part of a value, as the original: `[0-9A-Za-z]`.
const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Issues and checks anti-refresh cookies for one server.
#[derive(Clone)]
pub struct AntiRefresh {
    secret: [u8; 32],
    window_ms: u64,
    value_length: usize,
}

impl AntiRefresh {
    /// Cookies signed with `secret`, valid for `window_secs` after the counted hit, with a random
    /// part of `value_length` characters.
    pub fn new(secret: [u8; 32], window_secs: u64, value_length: usize) -> Self {
        Self {
            secret,
            window_ms: window_secs.saturating_mul(1000),
            value_length,
        }
    }

    /// Whether anti-refresh is on (a window of 0 turns it off: no cookie is ever set).
    pub fn enabled(&self) -> bool {
        self.window_ms > 0
    }

    /// The cookie name for `key`: `hc_` and 16 hex digits of its SHA-256, an RFC 6265 token.
    pub fn name(key: &str) -> String {
        let digest = Sha256::digest(key.as_bytes());
        let mut name = String::with_capacity(3 + 16);
        name.push_str("hc_");
        push_hex(&mut name, &digest[..8]);
        name
    }

    /// Whether the `Cookie` header holds a genuine cookie for `key` issued less than the window
    /// before `now_ms`. Malformed, forged and expired cookies are simply not fresh.
    pub fn is_fresh(&self, key: &str, cookie_header: &[u8], now_ms: u64) -> bool {
        if !self.enabled() {
            return false;
        }
        let name = Self::name(key);
        cookie_header
            .split(|&b| b == b';')
            .filter_map(|pair| {
                let pair = pair.trim_ascii();
                let eq = pair.iter().position(|&b| b == b'=')?;
                (&pair[..eq] == name.as_bytes()).then(|| &pair[eq + 1..])
            })
            .any(|value| self.value_is_fresh(key, value, now_ms))
    }

    fn value_is_fresh(&self, key: &str, value: &[u8], now_ms: u64) -> bool {
        let Ok(value) = std::str::from_utf8(value) else {
            return false;
        };
        let mut parts = value.split('.');
        let (Some(random), Some(issued), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(issued_ms) = issued.parse::<u64>() else {
            return false;
        };
        let Some(mac) = decode_hex(mac) else {
            return false;
        };
        if mac.len() != MAC_BYTES
            || self
                .mac(key, random, issued_ms)
                .verify_truncated_left(&mac)
                .is_err()
        {
            return false;
        }
        // abs_diff: a cookie "from the future" (the clock stepped back) is held to the window too.
        now_ms.abs_diff(issued_ms) < self.window_ms
    }

    /// The `Set-Cookie` header value for a hit on `key` counted at `now_ms`.
    pub fn issue(&self, key: &str, now_ms: u64, secure: bool, rng: &mut impl rand::Rng) -> String {
        let random: String = (0..self.value_length)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        let tag = self.mac(key, &random, now_ms).finalize().into_bytes();
        let mut cookie = Self::name(key);
        cookie.push('=');
        cookie.push_str(&random);
        cookie.push('.');
        cookie.push_str(&now_ms.to_string());
        cookie.push('.');
        push_hex(&mut cookie, &tag[..MAC_BYTES]);
        cookie.push_str(&format!(
            "; Path=/; Max-Age={}; HttpOnly",
            self.window_ms / 1000
        ));
        cookie.push_str(if secure {
            "; SameSite=None; Secure"
        } else {
            "; SameSite=Lax"
        });
        cookie
    }

    fn mac(&self, key: &str, random: &str, issued_ms: u64) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail for a 32-byte key.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(key.as_bytes());
        mac.update(b"\0");
        mac.update(random.as_bytes());
        mac.update(b"\0");
        mac.update(&issued_ms.to_be_bytes());
        mac
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jar() -> AntiRefresh {
        AntiRefresh::new([7; 32], 60, 12)
    }

    fn cookie_pair(set_cookie: &str) -> &str {
        set_cookie.split(';').next().unwrap_or_default()
    }

    #[test]
    fn names_are_tokens_and_differ_per_key() {
        let a = AntiRefresh::name("example.com/a");
        let b = AntiRefresh::name("example.com/b");
        assert_ne!(a, b);
        assert!(a.starts_with("hc_") && a.len() == 19);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'));
    }

    #[test]
    fn an_issued_cookie_is_fresh_for_the_window_only() {
        let jar = jar();
        let set = jar.issue("example.com", 1_000_000, false, &mut rand::rng());
        let header = format!("other=1; {}", cookie_pair(&set));
        assert!(jar.is_fresh("example.com", header.as_bytes(), 1_000_000));
        assert!(jar.is_fresh("example.com", header.as_bytes(), 1_059_999));
        assert!(!jar.is_fresh("example.com", header.as_bytes(), 1_060_000));
        assert!(!jar.is_fresh("example.com/other", header.as_bytes(), 1_000_000));
    }

    #[test]
    fn attributes_follow_the_transport() {
        let jar = jar();
        let plain = jar.issue("k", 0, false, &mut rand::rng());
        assert!(plain.ends_with("; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"));
        let secure = jar.issue("k", 0, true, &mut rand::rng());
        assert!(secure.ends_with("; Path=/; Max-Age=60; HttpOnly; SameSite=None; Secure"));
        let value = cookie_pair(&plain)
            .split_once('=')
            .map(|(_, v)| v)
            .unwrap_or_default();
        let random = value.split('.').next().unwrap_or_default();
        assert_eq!(random.len(), 12);
        assert!(random.bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn forged_or_malformed_values_are_not_fresh() {
        let jar = jar();
        let set = jar.issue("k", 5_000, false, &mut rand::rng());
        let pair = cookie_pair(&set);
        let name = AntiRefresh::name("k");
        let (_, value) = pair.split_once('=').unwrap_or_default();
        let parts: Vec<&str> = value.split('.').collect();
        let later_issue = format!("{name}={}.{}.{}", parts[0], 9_000, parts[2]);
        let other_secret = AntiRefresh::new([8; 32], 60, 12);
        for header in [
            later_issue.as_str(),
            &format!("{name}=garbage"),
            &format!("{name}=a.b.c.d"),
            &format!("{name}=x.1.zz"),
            &format!("{name}="),
            "\u{0}\u{ff};;;==",
        ] {
            assert!(!jar.is_fresh("k", header.as_bytes(), 6_000), "{header:?}");
        }
        assert!(!other_secret.is_fresh("k", pair.as_bytes(), 6_000));
        assert!(!jar.is_fresh("k", &[0xff, 0xfe, b'=', 0x80], 6_000));
    }

    #[test]
    fn a_zero_window_disables_the_feature() {
        let jar = AntiRefresh::new([7; 32], 0, 12);
        assert!(!jar.enabled());
        let set = jar.issue("k", 0, false, &mut rand::rng());
        assert!(!jar.is_fresh("k", cookie_pair(&set).as_bytes(), 0));
    }
}
