//! A small SVG chart of daily hits (the history badge a README can embed). Pure.

use std::fmt::Write;

use crate::render::badge::escape;

const WIDTH: u32 = 240;
const HEIGHT: u32 = 48;
const PAD: u32 = 4;

/// Renders `days` (oldest first) of `key` as a line of daily counts, with `total` in the title.
pub fn render(key: &str, days: &[u64], total: u64) -> String {
    let key = escape(key);
    let max = days.iter().copied().max().unwrap_or(0).max(1);
    let inner_w = f64::from(WIDTH - 2 * PAD);
    let inner_h = f64::from(HEIGHT - 2 * PAD);
    let step = if days.len() > 1 {
        inner_w / (days.len() - 1) as f64
    } else {
        0.0
    };
    let mut points = String::with_capacity(days.len() * 12);
    for (i, &count) in days.iter().enumerate() {
        let x = f64::from(PAD) + step * i as f64;
        let y = f64::from(PAD) + inner_h * (1.0 - count as f64 / max as f64);
        let _ = write!(points, "{}{x:.1},{y:.1}", if i == 0 { "" } else { " " });
    }
    let n = days.len();
    let title = format!("{key}: {total} hits in all; daily hits over the last {n} days");
    format!(
        concat!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}">"##,
            r##"<title>{t}</title>"##,
            r##"<rect width="{w}" height="{h}" rx="3" fill="#f6f8fa" stroke="#d0d7de"/>"##,
            r##"<polyline fill="none" stroke="#4b0" stroke-width="1.5" stroke-linejoin="round" points="{p}"/>"##,
            r##"</svg>"##
        ),
        w = WIDTH,
        h = HEIGHT,
        t = title,
        p = points,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_point_per_day_scaled_to_the_busiest_day() {
        let svg = render("a.com/<x>", &[0, 5, 10], 15);
        assert!(
            svg.contains(r#"points="4.0,44.0 120.0,24.0 236.0,4.0""#),
            "{svg}"
        );
        assert!(svg.contains(
            "<title>a.com/&lt;x&gt;: 15 hits in all; daily hits over the last 3 days</title>"
        ));
    }

    #[test]
    fn empty_and_single_days_render() {
        assert!(render("k", &[], 0).contains(r#"points="""#));
        assert!(render("k", &[3], 3).contains(r#"points="4.0,4.0""#));
    }
}
