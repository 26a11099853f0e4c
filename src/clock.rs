//! Time: the wall clock in milliseconds and the UTC day a hit counts into, behind a trait so
//! tests can move the day without waiting for midnight. Pure but for [`SystemClock`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds in a UTC day.
pub const DAY_MS: u64 = 86_400_000;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// Days since the Unix epoch, in UTC.
    fn today(&self) -> u32 {
        day_of(self.now_ms())
    }
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // Seconds and milliseconds apart: `as_millis` works in u128, and this runs on every hit.
        let since = since_epoch();
        since
            .as_secs()
            .saturating_mul(1000)
            .saturating_add(u64::from(since.subsec_millis()))
    }

    /// The day from whole seconds: the same day as `day_of(now_ms())`, without the
    /// milliseconds' multiply and a 64-bit division by a day's milliseconds on every hit.
    fn today(&self) -> u32 {
        u32::try_from(since_epoch().as_secs() / (DAY_MS / 1000)).unwrap_or(u32::MAX)
    }
}

/// The system time since the Unix epoch (zero for a clock set before it).
fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// A clock that only moves when told to (tests, simulations).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock standing at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self(AtomicU64::new(now_ms))
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// The UTC day (days since the epoch) of a time in milliseconds.
pub fn day_of(ms: u64) -> u32 {
    u32::try_from(ms / DAY_MS).unwrap_or(u32::MAX)
}

/// The ISO date (`2026-11-24`) of a day number.
pub fn date(day: u32) -> String {
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (never negative here).
    let z = i64::from(day) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day number of an ISO date (`2026-11-24`), if it is a valid date on or after 1970-01-01.
pub fn day_from_date(text: &str) -> Option<u32> {
    let mut parts = text.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let day = u32::try_from(era * 146_097 + doe - 719_468).ok()?;
    // Reject dates like 2026-02-31 that roll over into the next month.
    (date(day) == text).then_some(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_iso_utc() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(59), "1970-03-01");
        assert_eq!(date(11_016), "2000-02-29");
        assert_eq!(date(20_781), "2026-11-24");
        assert_eq!(day_of(20_781 * DAY_MS + DAY_MS - 1), 20_781);
        for day in [0, 59, 11_016, 20_781, 40_000] {
            assert_eq!(day_from_date(&date(day)), Some(day));
        }
        for bad in [
            "2026-02-31",
            "1969-12-31",
            "2026-13-01",
            "26-11-24",
            "2026-11-24x",
            "",
        ] {
            assert_eq!(day_from_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_system_clock_reads_milliseconds_since_the_epoch() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis());
        let now = u128::from(SystemClock.now_ms());
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis());
        assert!(matches!((before, after), (Ok(b), Ok(a)) if b <= now && now <= a));
    }

    #[test]
    fn the_system_clock_today_is_the_day_of_its_milliseconds() {
        let before = day_of(SystemClock.now_ms());
        let today = SystemClock.today();
        let after = day_of(SystemClock.now_ms());
        assert!(before > 20_000 && before <= today && today <= after);
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(DAY_MS - 1);
        assert_eq!(clock.today(), 0);
        clock.advance(1);
        assert_eq!(clock.today(), 1);
    }
}
