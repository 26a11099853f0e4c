//! Target URL → storage key: normalisation and validation (pure, no I/O).
//!
//! One page gives one key: the scheme, default ports, user info, query, fragment and trailing
//! slashes are dropped, the host is case-folded and IDNA-encoded (punycode), the path keeps its
//! case. Normalising a key again gives the same key.

use std::sync::Arc;

use url::Url;

mod plain;

use plain::{fast_key, plain_key};

/// Targets longer than this are normalised every time rather than remembered.
const MEMO_MAX_TARGET: usize = 256;

/// Why a target cannot become a key. Each message is a short plain reason for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The target (or the key it gives) is longer than the configured limit.
    #[error("url is longer than {max} bytes")]
    TooLong {
        /// The limit in bytes.
        max: usize,
    },
    /// The target contains control characters (tabs, newlines, NUL, DEL, ...).
    #[error("url contains control characters")]
    ControlCharacters,
    /// The target has no host, e.g. it is empty or only a path.
    #[error("url has no host")]
    NoHost,
    /// The target names a scheme other than http or https.
    #[error("url scheme must be http or https")]
    Scheme,
    /// The host holds a character no host may hold (a space, `<`, `|`, ...).
    #[error("the host has a character a host cannot have")]
    HostCharacter,
    /// The URL parser refused the target (a bad port, an IDNA label that cannot be, ...).
    #[error("url is not valid: {0}")]
    Invalid(url::ParseError),
}

/// What no host may hold, past the characters that end it, which the parser reports only as an
/// IDNA failure; `%` among them, as a host's escapes are decoded before the check.
const NOT_IN_HOST: [char; 8] = [' ', '<', '>', '^', '|', '%', '[', ']'];

/// The parser's refusal of `rest` (a target after its scheme), said plainly when it is a
/// character no host may hold.
fn invalid(rest: &str, err: url::ParseError) -> KeyError {
    let authority = rest.split(['/', '\\', '?', '#']).next().unwrap_or(rest);
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let bad = |c: char| NOT_IN_HOST.contains(&c) || c.is_whitespace();
    if err == url::ParseError::IdnaError && host.contains(bad) {
        return KeyError::HostCharacter;
    }
    KeyError::Invalid(err)
}

/// Normalises a target URL (as given in `?url=` or a Referer) into its storage key.
///
/// `max_len` bounds both the input and the resulting key, in bytes.
pub fn normalise(target: &str, max_len: usize) -> Result<String, KeyError> {
    let rest = checked(target, max_len)?;
    let key = match plain_key(rest) {
        Some(key) => key.to_owned(),
        None => parsed_key(rest)?,
    };
    bounded(key, max_len)
}

/// What of `target` names the page (after its scheme), once the checks that need no parsing pass:
/// its length, no control characters, an http(s) scheme or none, a host.
fn checked(target: &str, max_len: usize) -> Result<&str, KeyError> {
    if target.len() > max_len {
        return Err(KeyError::TooLong { max: max_len });
    }
    // Byte by byte for ASCII (most targets): `char::is_control` looks each char up in a table.
    let control = if target.is_ascii() {
        target.bytes().any(|b| b.is_ascii_control())
    } else {
        target.chars().any(char::is_control)
    };
    if control {
        return Err(KeyError::ControlCharacters);
    }
    let rest = strip_scheme(target.trim_matches(' '))?;
    if rest.is_empty() || rest.starts_with(['/', '\\', '?', '#']) {
        return Err(KeyError::NoHost);
    }
    Ok(rest)
}

/// `key`, unless it is longer than `max_len` (percent-encoding can grow a target).
fn bounded(key: String, max_len: usize) -> Result<String, KeyError> {
    if key.len() > max_len {
        return Err(KeyError::TooLong { max: max_len });
    }
    Ok(key)
}

/// The key of `rest` by the URL parser.
fn parsed_key(rest: &str) -> Result<String, KeyError> {
    // Parsed as http (the scheme is no part of the key) for WHATWG's IDNA, case and dot rules.
    let mut url = Url::parse(&format!("http://{rest}")).map_err(|err| invalid(rest, err))?;
    let host = url.host_str().ok_or(KeyError::NoHost)?;
    // Trailing dots name the same host: drop them all and parse again (`0..` becomes `0.0.0.0`).
    if host.ends_with('.') {
        let trimmed = host.trim_end_matches('.').to_owned();
        if trimmed.is_empty() {
            return Err(KeyError::NoHost);
        }
        url.set_host(Some(&trimmed)).map_err(KeyError::Invalid)?;
    }
    let host = url.host_str().ok_or(KeyError::NoHost)?;
    let path = url.path().trim_end_matches('/');
    let mut key = String::with_capacity(host.len() + path.len() + 6);
    key.push_str(host);
    // Port 80 is already dropped by the parser; 443 is https's default and the scheme is gone.
    if let Some(port) = url.port().filter(|&p| p != 443) {
        key.push(':');
        key.push_str(&port.to_string());
    }
    key.push_str(path);
    Ok(key)
}

/// A page's key: a slice of the request's own target when that was plainly normal already (no
/// copy, no allocation), else shared with the memo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key<'a> {
    /// Part of the target as the request gave it.
    Borrowed(&'a str),
    /// Normalised by the parser, or remembered.
    Shared(Arc<str>),
}

impl Key<'_> {
    /// The same key, owning its text.
    pub fn into_shared(self) -> Key<'static> {
        match self {
            Key::Borrowed(key) => Key::Shared(key.into()),
            Key::Shared(key) => Key::Shared(key),
        }
    }
}

impl std::ops::Deref for Key<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Key::Borrowed(key) => key,
            Key::Shared(key) => key,
        }
    }
}

/// A bounded memo of recent normalisations, since a badge's page sends the same Referer or
/// `?url=` on every view and the parser (WHATWG, IDNA) need not see it again. Holds at most
/// `capacity` targets of at most 256 bytes each, and starts afresh when full. No I/O.
pub struct Memo {
    /// Target → key, cleared when full. Keys as `Arc`s: a hit hands one out for an increment,
    /// not a copy (an allocation).
    keys: crate::bounded::Map<Box<str>, Arc<str>>,
}

impl Memo {
    /// A memo of at most `capacity` targets.
    pub fn new(capacity: usize) -> Self {
        Self {
            keys: crate::bounded::Map::new(capacity),
        }
    }

    /// [`normalise`], remembered: the same answer, without parsing a target seen recently.
    ///
    /// A plain target (see `plain::plain_key`) is remembered only while there is room: keying it
    /// again costs little, and a stream of distinct plain targets (a site's many pages) must not
    /// clear the memo again and again, evicting the targets that need the parser.
    pub fn normalise<'a>(&self, target: &'a str, max_len: usize) -> Result<Key<'a>, KeyError> {
        if let Some(key) = fast_key(target, max_len) {
            return Ok(Key::Borrowed(key));
        }
        if let Some(key) = self.keys.get(target) {
            return Ok(Key::Shared(Arc::clone(&key)));
        }
        let rest = checked(target, max_len)?;
        if let Some(key) = plain_key(rest) {
            // A part of the target, so within `max_len`.
            if !self.keys.is_full() && target.len() <= MEMO_MAX_TARGET {
                self.keys.insert_or_clear(target.into(), key.into());
            }
            return Ok(Key::Borrowed(key));
        }
        let key: Arc<str> = bounded(parsed_key(rest)?, max_len)?.into();
        if target.len() <= MEMO_MAX_TARGET {
            self.keys.insert_or_clear(target.into(), Arc::clone(&key));
        }
        Ok(Key::Shared(key))
    }
}

/// Removes a leading `scheme://` (or `//`), refusing schemes other than http and https.
fn strip_scheme(target: &str) -> Result<&str, KeyError> {
    if let Some(rest) = target.strip_prefix("//") {
        return Ok(rest);
    }
    // As `split_once("://")`, without setting up a substring search for three bytes.
    let Some(at) = target.as_bytes().windows(3).position(|w| w == b"://") else {
        return Ok(target);
    };
    let (Some(scheme), Some(rest)) = (target.get(..at), target.get(at + 3..)) else {
        return Ok(target);
    };
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !is_scheme {
        // "://" inside a path or query, e.g. "example.com/?next=https://x": no scheme given.
        return Ok(target);
    }
    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
        Ok(rest)
    } else {
        Err(KeyError::Scheme)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(target: &str) -> String {
        match normalise(target, 2048) {
            Ok(key) => key,
            Err(err) => panic!("{target:?} was refused: {err}"),
        }
    }

    #[test]
    fn the_normalisation_table_holds() {
        let table = [
            ("https://Example.COM/Blog/", "example.com/Blog"),
            ("http://example.com:80/blog?utm=x#top", "example.com/blog"),
            ("https://example.com:443/blog", "example.com/blog"),
            ("example.com", "example.com"),
            ("example.com/", "example.com"),
            ("https://example.com/", "example.com"),
            ("www.example.com", "www.example.com"),
            ("https://user:pw@example.com/a", "example.com/a"),
            ("localhost:8080/x", "localhost:8080/x"),
            ("http://127.0.0.1:3000/", "127.0.0.1:3000"),
            ("HTTPS://example.com/a//", "example.com/a"),
            ("//example.com/a", "example.com/a"),
            ("example.com./a", "example.com/a"),
            ("example.com../a", "example.com/a"),
            ("0../a", "0.0.0.0/a"),
            ("127.1.:8080", "127.0.0.1:8080"),
            ("http://[::1]:8080/x", "[::1]:8080/x"),
            ("example.com/a/../b", "example.com/b"),
            ("example.com/?next=https://evil.test/", "example.com"),
            ("  example.com/a  ", "example.com/a"),
        ];
        for (target, want) in table {
            assert_eq!(key(target), want, "normalising {target:?}");
        }
    }

    #[test]
    fn unicode_and_punycode_hosts_give_one_key() {
        let unicode = key("https://Bücher.example/straße");
        let punycode = key("xn--bcher-kva.example/stra%C3%9Fe");
        assert_eq!(unicode, punycode);
        assert_eq!(unicode, "xn--bcher-kva.example/stra%C3%9Fe");
    }

    #[test]
    fn normalising_a_key_again_gives_the_same_key() {
        for target in [
            "https://Example.COM/Blog/",
            "https://Bücher.example/a b/ü?x#y",
            "http://[::1]:8080/x/",
            "example.com//a//",
            "localhost:8080/x",
            "example.com../a",
            "a。。/b",
            "0.。#",
            "0x10../x",
        ] {
            let once = key(target);
            assert_eq!(key(&once), once, "re-normalising {once:?}");
        }
    }

    #[test]
    fn bad_targets_are_refused_with_a_reason() {
        let cases = [
            ("", KeyError::NoHost),
            ("   ", KeyError::NoHost),
            ("/just/a/path", KeyError::NoHost),
            ("https://", KeyError::NoHost),
            ("http:///x", KeyError::NoHost),
            ("..", KeyError::NoHost),
            ("。。?", KeyError::NoHost),
            ("exa\tmple.com", KeyError::ControlCharacters),
            ("example.com/\n", KeyError::ControlCharacters),
            ("ftp://example.com/x", KeyError::Scheme),
            ("javascript://alert(1)", KeyError::Scheme),
        ];
        for (target, want) in cases {
            assert_eq!(normalise(target, 2048), Err(want), "target {target:?}");
        }
        for target in [
            "exa mple.com/x",
            "garbage url",
            "a<b.com",
            "a|b.com/x y",
            "u@a^b.com",
            "a%zzb.com",
            "a\u{3000}b.com",
        ] {
            assert_eq!(
                normalise(target, 2048),
                Err(KeyError::HostCharacter),
                "{target:?}"
            );
        }
        assert!(matches!(
            normalise("xn--a.example/", 2048),
            Err(KeyError::Invalid(_))
        ));
        assert!(matches!(
            normalise("example.com:99999/", 2048),
            Err(KeyError::Invalid(_))
        ));
    }

    #[test]
    fn the_memo_answers_as_normalise_and_stays_bounded() {
        let memo = Memo::new(3);
        for round in 0..2 {
            for n in 0..10 {
                let target = format!("https://Example.COM/{n}/");
                assert_eq!(
                    memo.normalise(&target, 2048).map(|key| key.to_string()),
                    normalise(&target, 2048),
                    "round {round}"
                );
            }
        }
        assert!(memo.keys.counted() <= 3);
        assert_eq!(
            memo.normalise("exa mple.com", 2048)
                .map(|key| key.to_string()),
            normalise("exa mple.com", 2048)
        );
        let long = format!("example.com/{}", "a".repeat(100));
        assert_eq!(
            memo.normalise(&long, 50),
            Err(KeyError::TooLong { max: 50 })
        );
    }

    #[test]
    fn plain_targets_skip_the_parser_and_others_do_not() {
        for target in [
            "example.com/a/b",
            "https://bench.example/p42/",
            "x.io?u=1#f",
        ] {
            let rest = strip_scheme(target).unwrap_or(target);
            assert!(plain_key(rest).is_some(), "{target:?}");
        }
        for rest in [
            "Example.com/a",
            "example.com:8080/a",
            "u@example.com/a",
            "xn--bcher-kva.example/a",
            "127.0.0.1/a",
            "example.com./a",
            "example.com/a/../b",
            "example.com/a/%2E%2e/b",
            "example.com/a b",
            "example.com\\a",
            "example.com/ü",
        ] {
            assert_eq!(plain_key(rest), None, "{rest:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Whatever the fast path accepts, it keys as the URL parser does.
        #[test]
        fn the_fast_path_agrees_with_the_parser(
            host in "[a-zA-Z0-9.-]{1,12}(:[0-9]{1,3})?",
            path in "([/a-zA-Z0-9._~!$&'()*+,;=:@%\\\\ ü-]|%2e|%2E|/\\.\\.|/\\.){0,12}",
            after in "([?#][a-z/.%]{0,6})?",
        ) {
            let rest = format!("{host}{path}{after}");
            if let Some(key) = plain_key(&rest) {
                proptest::prop_assert_eq!(parsed_key(&rest), Ok(key.to_owned()), "{:?}", rest);
            }
        }

        /// What the memo-free fast path answers is what `normalise` answers, for any target.
        #[test]
        fn the_fast_path_agrees_with_normalise(
            scheme in "(|https?://|HTTPS://|//|///|ftp://|https:/|a.b://)",
            host in "[a-zA-Z0-9.:@ -]{0,12}",
            path in "([/a-zA-Z0-9._~!$&'()*+,;=:@%\\ -]|%2e|/\\.\\.|://|\t){0,10}",
            after in "([?#][ -~\t\x00\x7fé]{0,8})?",
        ) {
            let target = format!("{scheme}{host}{path}{after}");
            if let Some(key) = fast_key(&target, 2048) {
                proptest::prop_assert_eq!(normalise(&target, 2048), Ok(key.to_owned()), "{:?}", target);
            }
            proptest::prop_assert_eq!(fast_key(&target, target.len().saturating_sub(1)), None);
        }

        /// Plain targets, as badges mostly name, take the fast path and get the parser's key.
        #[test]
        fn plain_targets_take_the_fast_path(
            scheme in "(|https?://|//|HTTP://)",
            labels in proptest::collection::vec("[a-z][a-z0-9]{0,5}(-[a-z0-9]{1,3})?", 1..4),
            segments in proptest::collection::vec("[a-zA-Z0-9_~%!$&'()*+,;=:@.-]{0,6}", 0..4),
            trailing in "/{0,2}",
            after in "([?#][a-z/.%]{0,6})?",
        ) {
            let path: String = segments.iter().map(|s| format!("/{s}")).collect();
            let rest = format!("{}{path}{trailing}{after}", labels.join("."));
            let dots = segments.iter().any(|s| {
                s == "." || s == ".." || s.to_ascii_lowercase().contains("%2e")
            });
            let key = plain_key(&rest);
            proptest::prop_assert_eq!(key.is_some(), !dots, "{:?}", rest);
            if let Some(key) = key {
                proptest::prop_assert_eq!(parsed_key(&rest), Ok(key.to_owned()), "{:?}", rest);
                let target = format!("{scheme}{rest}");
                proptest::prop_assert_eq!(normalise(&target, 2048), Ok(key.to_owned()));
                proptest::prop_assert_eq!(fast_key(&target, 2048), Some(key));
            }
        }
    }

    #[test]
    fn length_is_bounded_for_input_and_key() {
        let long = format!("example.com/{}", "a".repeat(100));
        assert_eq!(normalise(&long, 50), Err(KeyError::TooLong { max: 50 }));
        // Percent-encoding can grow a short input past the limit: the key is checked too.
        let spaces = format!("example.com/a{}b", " ".repeat(30));
        assert_eq!(normalise(&spaces, 50), Err(KeyError::TooLong { max: 50 }));
    }
}
