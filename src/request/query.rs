//! The query string of a counting request: the target `url` and the badge and history options,
//! parsed and validated. Pure. The first of repeated parameters wins.

use std::borrow::Cow;

use crate::http::error::Error;
use crate::render::badge::{Color, DEFAULT_LABEL, Invalid, Look, MAX_LABEL_CHARS, Style};
use crate::render::message::{NumberFormat, Show};

/// Days of history when `days` is not given.
pub const DEFAULT_HISTORY_DAYS: u32 = 30;

/// A parsed query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query<'a> {
    /// `url`, when present and non-empty: borrowed from the query string unless it had to be
    /// decoded (a copy is an allocation, on every counting request).
    pub url: Option<Cow<'a, str>>,
    /// `style`, when given.
    pub style: Option<Style>,
    /// `label`; `Some("")` asks for a message-only badge.
    pub label: Option<String>,
    /// `color`, the value side.
    pub color: Option<Color>,
    /// `labelColor`, the label side.
    pub label_color: Option<Color>,
    /// `format` of numbers.
    pub format: NumberFormat,
    /// `show`: which count.
    pub show: Show,
    /// `days` of history, unchecked against the configured maximum.
    pub days: Option<u32>,
}

impl<'a> Query<'a> {
    /// Parses a raw query string (without `?`). Unknown parameters are ignored.
    pub fn parse(raw: &'a str) -> Result<Self, Error> {
        let mut query = Query::default();
        // Bit i: PARAMS[i] was given (a bit set rather than a list: no allocation per request).
        let mut seen = 0u8;
        for (name, value) in pairs(raw) {
            let Some(index) = PARAMS.iter().position(|known| *known == name) else {
                continue;
            };
            if seen & 1 << index != 0 {
                continue;
            }
            seen |= 1 << index;
            let name = PARAMS[index];
            let bad = |Invalid(reason)| Error::BadParam {
                name,
                reason: reason.into(),
            };
            match name {
                "url" => query.url = Some(value).filter(|v| !v.is_empty()),
                "style" => query.style = Some(value.parse().map_err(bad)?),
                "label" => query.label = Some(label(&value).map_err(bad)?),
                "color" => query.color = Some(value.parse().map_err(bad)?),
                "labelColor" => query.label_color = Some(value.parse().map_err(bad)?),
                "format" => query.format = value.parse().map_err(bad)?,
                "show" => query.show = value.parse().map_err(bad)?,
                _ => {
                    query.days = Some(
                        value
                            .parse()
                            .map_err(|_| bad(Invalid("must be a whole number")))?,
                    )
                }
            }
        }
        Ok(query)
    }

    /// Whether the query says anything about the badge's look (else it is [`Look::default`]).
    pub fn asks_for_look(&self) -> bool {
        self.style.is_some()
            || self.label.is_some()
            || self.color.is_some()
            || self.label_color.is_some()
    }

    /// The badge look the query asks for (defaults where it says nothing).
    pub fn look(&self) -> Look {
        Look {
            style: self.style.unwrap_or_default(),
            label: self.label.clone().unwrap_or_else(|| DEFAULT_LABEL.into()),
            color: self.color.clone().unwrap_or_else(Color::count),
            label_color: self.label_color.clone(),
        }
    }

    /// `days`, checked to be within 1 and `max` (the configured history); 30 (or `max`) if absent.
    pub fn history_days(&self, max: u32) -> Result<u32, Error> {
        match self.days {
            None => Ok(DEFAULT_HISTORY_DAYS.min(max)),
            Some(days) if (1..=max).contains(&days) => Ok(days),
            Some(_) => Err(Error::BadParam {
                name: "days",
                reason: format!("must be from 1 to {max}"),
            }),
        }
    }
}

/// The name-value pairs of `raw`, decoded as `form_urlencoded::parse` decodes them.
///
/// A pair with no `%` or `+` decodes to itself, and is handed out as it is: most queries are
/// such, and decoding checks every byte twice and the UTF-8 once more. A pair's end and whether
/// it needs decoding are found in one vectorised search (`memchr3`), and its `=` in a second one
/// over the pair, cheaper than a table test of each byte.
fn pairs(raw: &str) -> Pairs<'_> {
    Pairs { rest: raw }
}

/// The iterator of [`pairs`]: what is left of the query string.
struct Pairs<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let bytes = self.rest.as_bytes();
            // `&` ends a pair; a `%` or `+` before it means the pair needs decoding.
            let (end, encoded) = match memchr::memchr3(b'&', b'%', b'+', bytes) {
                None => (bytes.len(), false),
                Some(at) if bytes.get(at) == Some(&b'&') => (at, false),
                Some(at) => {
                    let after = bytes.get(at..).unwrap_or_default();
                    (
                        memchr::memchr(b'&', after).map_or(bytes.len(), |end| at + end),
                        true,
                    )
                }
            };
            // `&` and `=` are ASCII: every index found is a character boundary.
            let pair = self.rest.get(..end).unwrap_or_default();
            self.rest = self.rest.get(end + 1..).unwrap_or_default();
            if pair.is_empty() {
                continue;
            }
            if encoded {
                return url::form_urlencoded::parse(pair.as_bytes()).next();
            }
            let (name, value) = match memchr::memchr(b'=', pair.as_bytes()) {
                Some(at) => (pair.get(..at)?, pair.get(at + 1..)?),
                None => (pair, ""),
            };
            return Some((Cow::Borrowed(name), Cow::Borrowed(value)));
        }
    }
}

/// The parameters a query may carry.
const PARAMS: [&str; 8] = [
    "url",
    "style",
    "label",
    "color",
    "labelColor",
    "format",
    "show",
    "days",
];

fn label(text: &str) -> Result<String, Invalid> {
    if text.chars().count() > MAX_LABEL_CHARS {
        return Err(Invalid("must be at most 64 characters"));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad_param(raw: &str) -> Option<&'static str> {
        match Query::parse(raw) {
            Err(Error::BadParam { name, .. }) => Some(name),
            _ => None,
        }
    }

    #[test]
    fn every_parameter_is_parsed() -> Result<(), Error> {
        let query = Query::parse(
            "url=a.com&style=plastic&label=views&color=blue&labelColor=abc&format=short&show=both&days=7&x=1",
        )?;
        assert_eq!(query.url.as_deref(), Some("a.com"));
        assert_eq!(query.style, Some(Style::Plastic));
        assert_eq!(query.label.as_deref(), Some("views"));
        assert_eq!(query.color.as_ref().map(Color::as_str), Some("#007ec6"));
        assert_eq!(query.label_color.as_ref().map(Color::as_str), Some("#abc"));
        assert_eq!(query.format, NumberFormat::Short);
        assert_eq!(query.show, Show::Both);
        assert_eq!(query.history_days(400)?, 7);
        Ok(())
    }

    #[test]
    fn defaults_and_first_wins() -> Result<(), Error> {
        let query = Query::parse("url=&label=&style=flat&style=bogus")?;
        assert_eq!(query.url, None, "an empty url is no url");
        assert_eq!(
            query.look().label,
            "",
            "an empty label asks for a message-only badge"
        );
        assert_eq!(query.style, Some(Style::Flat));
        assert_eq!(Query::parse("")?.look(), Look::default());
        assert_eq!(Query::parse("")?.history_days(400)?, 30);
        assert_eq!(Query::parse("")?.history_days(7)?, 7);
        Ok(())
    }

    proptest::proptest! {
        // As many cases as the two query shapes had when each was a test of its own.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Pairs are what `form_urlencoded` makes of any query: of any of the marks (long enough
        /// for `memchr`'s vector searches, which start at 16 bytes), or with long runs of plain
        /// bytes between the marks, as real queries have.
        #[test]
        fn pairs_are_decoded_as_form_urlencoded_decodes(
            raw in proptest::prop_oneof![
                "[a-z=&%+2-9A-F ü]{0,80}",
                "([a-z./ü]{0,40}[=&%+]?[2-9A-F]{0,2}){0,5}",
            ]
        ) {
            let ours: Vec<_> = pairs(&raw).collect();
            let theirs: Vec<_> = url::form_urlencoded::parse(raw.as_bytes()).collect();
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn bad_values_name_their_parameter() {
        assert_eq!(bad_param("style=social"), Some("style"));
        assert_eq!(bad_param("color=%23abc"), Some("color"));
        assert_eq!(bad_param("labelColor=nope"), Some("labelColor"));
        assert_eq!(bad_param("format=roman"), Some("format"));
        assert_eq!(bad_param("show=yesterday"), Some("show"));
        assert_eq!(bad_param("days=-1"), Some("days"));
        assert_eq!(
            bad_param(&format!("label={}", "x".repeat(65))),
            Some("label")
        );
        assert_eq!(bad_param(&format!("label={}", "x".repeat(64))), None);
        assert!(matches!(
            Query::parse("days=0").and_then(|q| q.history_days(400)),
            Err(Error::BadParam { name: "days", .. })
        ));
        assert!(matches!(
            Query::parse("days=401").and_then(|q| q.history_days(400)),
            Err(Error::BadParam { name: "days", .. })
        ));
    }
}
