//! What a badge's message says: which count (`show`) and how it is written (`format`). Pure.

use std::str::FromStr;

use crate::counting::cache::Counts;
use crate::render::badge::Invalid;

/// How a number is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NumberFormat {
    /// `1234`.
    #[default]
    Plain,
    /// `1,234`.
    Comma,
    /// `1.2k`, `12k`, `1.2M`, `3B`, `1T`: shields' metric style.
    Short,
}

impl FromStr for NumberFormat {
    type Err = Invalid;

    fn from_str(name: &str) -> Result<Self, Invalid> {
        match name {
            "plain" => Ok(Self::Plain),
            "comma" => Ok(Self::Comma),
            "short" => Ok(Self::Short),
            _ => Err(Invalid("must be plain, comma or short")),
        }
    }
}

/// Which count a message shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Show {
    /// Every hit ever.
    #[default]
    Total,
    /// Hits today (UTC).
    Today,
    /// `today / total`.
    Both,
}

impl FromStr for Show {
    type Err = Invalid;

    fn from_str(name: &str) -> Result<Self, Invalid> {
        match name {
            "total" => Ok(Self::Total),
            "today" => Ok(Self::Today),
            "both" => Ok(Self::Both),
            _ => Err(Invalid("must be total, today or both")),
        }
    }
}

/// The message for `counts`.
pub fn message(counts: Counts, show: Show, format: NumberFormat) -> String {
    match show {
        Show::Total => number(counts.total, format),
        Show::Today => number(counts.today, format),
        Show::Both => format!(
            "{} / {}",
            number(counts.today, format),
            number(counts.total, format)
        ),
    }
}

/// `f` of the message for `counts`, as [`message`] writes it. A plain number (the default) is
/// written on the stack by `itoa`: `to_string` goes through the formatting machinery and
/// allocates, and `itoa` writes two digits at a time and needs no UTF-8 check.
pub fn with_message<R>(
    counts: Counts,
    show: Show,
    format: NumberFormat,
    f: impl FnOnce(&str) -> R,
) -> R {
    let n = match (show, format) {
        (Show::Total, NumberFormat::Plain) => counts.total,
        (Show::Today, NumberFormat::Plain) => counts.today,
        _ => return f(&message(counts, show, format)),
    };
    f(itoa::Buffer::new().format(n))
}

/// `n` written in `format`.
pub fn number(n: u64, format: NumberFormat) -> String {
    match format {
        NumberFormat::Plain => n.to_string(),
        NumberFormat::Comma => comma(n),
        NumberFormat::Short => short(n),
    }
}

fn comma(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// shields' metric formatting with k, M, B, T: one decimal below 10 (unless it is .0), whole
/// numbers from 10 up, and 1000 of a unit written as 1 of the next. Integer arithmetic, rounding
/// halves up.
fn short(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1_000_000_000_000, "T"),
        (1_000_000_000, "B"),
        (1_000_000, "M"),
        (1_000, "k"),
    ];
    let Some(index) = UNITS.iter().position(|&(size, _)| n >= size) else {
        return n.to_string();
    };
    let (size, unit) = UNITS[index];
    let n = u128::from(n);
    let size = u128::from(size);
    let tenths = (n * 10 + size / 2) / size;
    if tenths < 100 && tenths % 10 != 0 {
        return format!("{}.{}{unit}", tenths / 10, tenths % 10);
    }
    let whole = (n + size / 2) / size;
    match (whole, index) {
        (1000.., 1..) => format!("1{}", UNITS[index - 1].1),
        _ => format!("{whole}{unit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// `with_message` hands out what `message` writes.
        #[test]
        fn with_message_is_message(total: u64, today: u64, show in 0..3u8, format in 0..3u8) {
            let counts = Counts { total, today };
            let show = [Show::Total, Show::Today, Show::Both][usize::from(show)];
            let format =
                [NumberFormat::Plain, NumberFormat::Comma, NumberFormat::Short][usize::from(format)];
            let ours = with_message(counts, show, format, str::to_owned);
            proptest::prop_assert_eq!(ours, message(counts, show, format));
        }
    }

    #[test]
    fn short_numbers_follow_shields() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1000, "1k"),
            (1049, "1k"),
            (1050, "1.1k"),
            (1234, "1.2k"),
            (9_949, "9.9k"),
            (9_950, "10k"),
            (12_345, "12k"),
            (123_456, "123k"),
            (999_499, "999k"),
            (999_500, "1M"),
            (1_234_567, "1.2M"),
            (1_500_000_000, "1.5B"),
            (2_000_000_000_000, "2T"),
            (u64::MAX, "18446744T"),
        ];
        for (n, want) in cases {
            assert_eq!(number(n, NumberFormat::Short), want, "{n}");
        }
    }

    #[test]
    fn comma_and_plain() {
        assert_eq!(number(0, NumberFormat::Comma), "0");
        assert_eq!(number(999, NumberFormat::Comma), "999");
        assert_eq!(number(1234, NumberFormat::Comma), "1,234");
        assert_eq!(number(1_234_567, NumberFormat::Comma), "1,234,567");
        assert_eq!(number(1_234_567, NumberFormat::Plain), "1234567");
    }

    #[test]
    fn show_picks_the_count() {
        let counts = Counts {
            total: 3456,
            today: 12,
        };
        assert_eq!(message(counts, Show::Total, NumberFormat::Plain), "3456");
        assert_eq!(message(counts, Show::Today, NumberFormat::Plain), "12");
        assert_eq!(
            message(counts, Show::Both, NumberFormat::Comma),
            "12 / 3,456"
        );
    }
}
