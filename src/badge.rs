//! SVG badges: the shields-style flat badge, error badges, and the user's own template. Pure.

use std::fmt::Write;

/// The label of the default badge.
pub const DEFAULT_LABEL: &str = "hits";
/// The value side's colour for counts (shields' `brightgreen`).
const COUNT_COLOR: &str = "#4c1";
/// The value side's colour for errors (shields' `red`).
const ERROR_COLOR: &str = "#e05d44";
/// The label side's colour (shields' default).
const LABEL_COLOR: &str = "#555";
/// Horizontal padding on each side of a text, in pixels (as shields).
const PADDING: u32 = 5;

/// Renders a flat badge with `label` on grey and `message` on `color`.
pub fn flat(label: &str, message: &str, color: &str) -> String {
    let label_text = text_width(label);
    let message_text = text_width(message);
    let left = label_text + 2 * PADDING;
    let right = message_text + 2 * PADDING;
    let width = left + right;
    let label = escape(label);
    let message = escape(message);
    let mut svg = String::with_capacity(1100 + 2 * (label.len() + message.len()));
    // Writing to a String cannot fail.
    let _ = write!(
        svg,
        concat!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{l}: {m}">"##,
            r##"<title>{l}: {m}</title>"##,
            r##"<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>"##,
            r##"<clipPath id="r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath>"##,
            r##"<g clip-path="url(#r)"><rect width="{lw}" height="20" fill="{lc}"/><rect x="{lw}" width="{rw}" height="20" fill="{c}"/><rect width="{w}" height="20" fill="url(#s)"/></g>"##,
            r##"<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" text-rendering="geometricPrecision" font-size="110">"##,
            r##"<text aria-hidden="true" x="{lx}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)" textLength="{lt}">{l}</text>"##,
            r##"<text x="{lx}" y="140" transform="scale(.1)" fill="#fff" textLength="{lt}">{l}</text>"##,
            r##"<text aria-hidden="true" x="{mx}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)" textLength="{mt}">{m}</text>"##,
            r##"<text x="{mx}" y="140" transform="scale(.1)" fill="#fff" textLength="{mt}">{m}</text>"##,
            r##"</g></svg>"##
        ),
        w = width,
        lw = left,
        rw = right,
        lc = LABEL_COLOR,
        c = color,
        l = label,
        m = message,
        lx = 10 * left / 2,
        lt = 10 * label_text,
        mx = 10 * left + 10 * right / 2,
        mt = 10 * message_text,
    );
    svg
}

/// The default badge for a count.
pub fn count(total: u64) -> String {
    flat(DEFAULT_LABEL, &total.to_string(), COUNT_COLOR)
}

/// A red badge that shows why a request failed, so an `<img>` explains itself.
pub fn error(reason: &str) -> String {
    flat(DEFAULT_LABEL, reason, ERROR_COLOR)
}

/// A user-supplied SVG template (the original's custom badge): `{count}` is required, `{url}`
/// (the key, XML-escaped) is optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(String);

/// The template does not contain `{count}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the SVG template does not contain {{count}}")]
pub struct MissingCount;

impl Template {
    /// Checks that `text` contains `{count}`.
    pub fn new(text: String) -> Result<Self, MissingCount> {
        if text.contains("{count}") {
            Ok(Self(text))
        } else {
            Err(MissingCount)
        }
    }

    /// Fills in the count and the key.
    pub fn render(&self, total: u64, key: &str) -> String {
        self.0
            .replace("{count}", &total.to_string())
            .replace("{url}", &escape(key))
    }
}

/// Escapes the five XML special characters and drops characters XML 1.0 cannot hold.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The width of `text` in 11px Verdana, rounded up to an odd number of pixels (as shields
/// does, so the text centre falls on a whole pixel). Approximate: per-character advance widths
/// for ASCII, an average for the rest.
fn text_width(text: &str) -> u32 {
    let tenths: u32 = text.chars().map(char_width_tenths).sum();
    let px = tenths.div_ceil(10);
    if px % 2 == 0 { px + 1 } else { px }
}

/// Advance width in tenths of a pixel of one character in 11px Verdana.
fn char_width_tenths(c: char) -> u32 {
    // ' ' to '~', from Verdana's advance widths (em fractions × 11px × 10).
    const ASCII: [u8; 95] = [
        39, 43, 50, 90, 70, 118, 80, 30, 50, 50, 70, 90, 40, 50, 40, 50, // ' ' .. '/'
        70, 70, 70, 70, 70, 70, 70, 70, 70, 70, // '0' .. '9'
        50, 50, 90, 90, 90, 60, 110, // ':' .. '@'
        75, 75, 77, 85, 70, 63, 85, 83, 46, 50, 76, 61, 93, 82, 87, 66, 87, 76, 75, 68, 81, 75,
        109, 75, 68, 75, // 'A' .. 'Z'
        50, 50, 50, 90, 70, 70, // '[' .. '`'
        66, 69, 57, 69, 66, 39, 69, 70, 30, 38, 65, 30, 107, 70, 67, 69, 69, 47, 57, 43, 70, 65,
        90, 65, 65, 58, // 'a' .. 'z'
        70, 50, 70, 90, // '{' .. '~'
    ];
    match u32::from(c) {
        code @ 32..=126 => u32::from(ASCII[(code - 32) as usize]),
        0..=31 | 127 => 0,
        _ => 80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_badge_shows_the_count_and_grows_with_its_digits() {
        let small = count(7);
        let large = count(1_234_567);
        assert!(small.contains(">7</text>"));
        assert!(large.contains(">1234567</text>"));
        let width = |svg: &str| -> u32 {
            let rest = svg.split("width=\"").nth(1).unwrap_or_default();
            rest.split('"')
                .next()
                .unwrap_or_default()
                .parse()
                .unwrap_or(0)
        };
        assert!(
            width(&large) > width(&small) + 30,
            "{} vs {}",
            width(&large),
            width(&small)
        );
    }

    #[test]
    fn text_is_escaped() {
        let svg = flat("a<b>&\"c'", "x\u{1}y", "#4c1");
        assert!(svg.contains("a&lt;b&gt;&amp;&quot;c&apos;"));
        assert!(svg.contains(">xy</text>"));
        assert!(!svg.contains("<b>"));
    }

    #[test]
    fn templates_need_count_and_escape_the_url() {
        assert_eq!(Template::new("<svg/>".into()), Err(MissingCount));
        let template = Template::new("<svg>{count} {url}</svg>".into());
        assert_eq!(
            template.map(|t| t.render(42, "a.com/<x>")),
            Ok("<svg>42 a.com/&lt;x&gt;</svg>".into())
        );
    }

    #[test]
    fn widths_are_odd() {
        for text in ["", "1", "hits", "12345", "ünïcödé"] {
            assert_eq!(text_width(text) % 2, 1, "{text:?}");
        }
    }
}
