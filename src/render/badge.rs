//! SVG badges: shields.io's four styles (rendered by the `shields` crate, whose geometry and
//! Verdana metrics match the npm package badge-maker), badge-maker 6's colour palette, error
//! badges, and the user's own template. Pure.

use std::fmt;
use std::str::FromStr;

use shields::{BadgeParams, BadgeStyle, RenderOptions, render_badge_svg_into};

/// The label of the default badge.
pub const DEFAULT_LABEL: &str = "hits";
/// The longest label accepted, in characters.
pub const MAX_LABEL_CHARS: usize = 64;

/// A badge style, named as shields.io names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Style {
    /// `flat` (the default).
    #[default]
    Flat,
    /// `flat-square`.
    FlatSquare,
    /// `plastic`.
    Plastic,
    /// `for-the-badge`.
    ForTheBadge,
}

impl Style {
    /// Every style with its name.
    pub const ALL: [(&'static str, Style); 4] = [
        ("flat", Style::Flat),
        ("flat-square", Style::FlatSquare),
        ("plastic", Style::Plastic),
        ("for-the-badge", Style::ForTheBadge),
    ];

    fn shields(self) -> BadgeStyle {
        match self {
            Style::Flat => BadgeStyle::Flat,
            Style::FlatSquare => BadgeStyle::FlatSquare,
            Style::Plastic => BadgeStyle::Plastic,
            Style::ForTheBadge => BadgeStyle::ForTheBadge,
        }
    }
}

/// A value that is not one of the accepted names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub &'static str);

impl FromStr for Style {
    type Err = Invalid;

    fn from_str(name: &str) -> Result<Self, Invalid> {
        Style::ALL
            .iter()
            .find(|(known, _)| *known == name)
            .map(|&(_, style)| style)
            .ok_or(Invalid(
                "must be flat, flat-square, plastic or for-the-badge",
            ))
    }
}

/// A colour as an SVG fill (`#rrggbb` or `#rgb`), from a shields name or bare hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Color {
    fill: String,
    name: String,
}

/// badge-maker 6's named colours and their aliases.
const NAMED_COLORS: [(&str, &str); 16] = [
    ("brightgreen", "#4b0"),
    ("green", "#67ac09"),
    ("yellowgreen", "#95991a"),
    ("yellow", "#d8b800"),
    ("orange", "#ea7233"),
    ("red", "#dd4343"),
    ("blue", "#007ec6"),
    ("grey", "#555"),
    ("gray", "#555"),
    ("lightgrey", "#939393"),
    ("lightgray", "#939393"),
    ("success", "#4b0"),
    ("important", "#ea7233"),
    ("critical", "#dd4343"),
    ("informational", "#007ec6"),
    ("inactive", "#939393"),
];

impl Color {
    /// The value side's default (`brightgreen`).
    pub fn count() -> Self {
        Color {
            fill: "#4b0".into(),
            name: "brightgreen".into(),
        }
    }

    /// The colour of error badges (`red`).
    pub fn error() -> Self {
        Color {
            fill: "#dd4343".into(),
            name: "red".into(),
        }
    }

    /// The SVG fill.
    pub fn as_str(&self) -> &str {
        &self.fill
    }

    /// The colour as it was asked for (a shields name, or hex digits without `#`), which is
    /// what shields' endpoint schema takes.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fill)
    }
}

impl FromStr for Color {
    type Err = Invalid;

    /// A shields name (`blue`, `critical`, …) or 3 or 6 hex digits without `#`.
    fn from_str(text: &str) -> Result<Self, Invalid> {
        if let Some((_, hex)) = NAMED_COLORS.iter().find(|(name, _)| *name == text) {
            return Ok(Color {
                fill: (*hex).into(),
                name: text.into(),
            });
        }
        if matches!(text.len(), 3 | 6) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hex = text.to_ascii_lowercase();
            return Ok(Color {
                fill: format!("#{hex}"),
                name: hex,
            });
        }
        Err(Invalid(
            "must be a shields colour name or 3 or 6 hex digits without #",
        ))
    }
}

/// How a badge looks: everything but its message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Look {
    /// The style.
    pub style: Style,
    /// The label (left side); empty for a message-only badge.
    pub label: String,
    /// The value side's colour.
    pub color: Color,
    /// The label side's colour; `None` is shields' default grey.
    pub label_color: Option<Color>,
}

impl Default for Look {
    fn default() -> Self {
        Self {
            style: Style::Flat,
            label: DEFAULT_LABEL.into(),
            color: Color::count(),
            label_color: None,
        }
    }
}

/// Renders a badge with `look` and `message`. Every text is XML-escaped, and characters XML
/// cannot hold (control characters) are dropped, so the output is well-formed for any input.
pub fn render(look: &Look, message: &str) -> String {
    let label = xml_safe(look.label.trim());
    let message = xml_safe(message.trim());
    let params = BadgeParams {
        style: look.style.shields(),
        label: Some(&label),
        message: Some(&message),
        label_color: look.label_color.as_ref().map(Color::as_str),
        message_color: Some(look.color.as_str()),
        ..BadgeParams::default()
    };
    let mut svg = String::new();
    render_badge_svg_into(&params, &RenderOptions::default(), &mut svg);
    svg
}

/// The default badge for a count.
pub fn count(total: u64) -> String {
    render(&Look::default(), &total.to_string())
}

/// A red badge that shows why a request failed, so an `<img>` explains itself.
pub fn error(reason: &str) -> String {
    let look = Look {
        color: Color::error(),
        ..Look::default()
    };
    render(&look, reason)
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

    /// Fills in the count (already formatted) and the key.
    pub fn render(&self, count: &str, key: &str) -> String {
        self.0
            .replace("{count}", &escape(count))
            .replace("{url}", &escape(key))
    }
}

/// Drops characters XML 1.0 cannot hold (escaping is the renderer's job).
fn xml_safe(text: &str) -> String {
    text.chars()
        .filter(|&c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .filter(|&c| !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
        .collect()
}

/// Escapes the five XML special characters and drops characters XML 1.0 cannot hold.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in xml_safe(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn width(svg: &str) -> u32 {
        let rest = svg.split("width=\"").nth(1).unwrap_or_default();
        rest.split('"')
            .next()
            .unwrap_or_default()
            .parse()
            .unwrap_or(0)
    }

    #[test]
    fn a_count_badge_shows_the_count_and_grows_with_its_digits() {
        let small = count(7);
        let large = count(1_234_567);
        assert!(small.contains(">7</text>"));
        assert!(large.contains(">1234567</text>"));
        assert!(
            width(&large) > width(&small) + 30,
            "{} vs {}",
            width(&large),
            width(&small)
        );
    }

    #[test]
    fn text_is_escaped_and_control_characters_dropped() {
        let look = Look {
            label: "a<b>&\"c'".into(),
            ..Look::default()
        };
        let svg = render(&look, "x\u{1}y");
        assert!(svg.contains("a&lt;b&gt;&amp;&quot;c&apos;"), "{svg}");
        assert!(svg.contains(">xy</text>"));
        assert!(!svg.contains("<b>"));
    }

    #[test]
    fn colours_are_names_or_bare_hex() {
        let parse = |text: &str| text.parse::<Color>().map(|c| c.fill);
        assert_eq!(parse("critical"), Ok("#dd4343".into()));
        assert_eq!(parse("brightgreen"), Ok("#4b0".into()));
        assert_eq!(parse("ABC"), Ok("#abc".into()));
        assert_eq!(parse("ff69b4"), Ok("#ff69b4".into()));
        for bad in ["#abc", "abcd", "BLUE", "", "javascript", "ab\"c"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn styles_are_shields_names() {
        assert_eq!("for-the-badge".parse(), Ok(Style::ForTheBadge));
        assert!("social".parse::<Style>().is_err());
    }

    #[test]
    fn templates_need_count_and_escape_the_url() {
        assert_eq!(Template::new("<svg/>".into()), Err(MissingCount));
        let template = Template::new("<svg>{count} {url}</svg>".into());
        assert_eq!(
            template.map(|t| t.render("1.2k", "a.com/<x>")),
            Ok("<svg>1.2k a.com/&lt;x&gt;</svg>".into())
        );
    }
}
