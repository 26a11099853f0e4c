//! Failed admin authentication, limited per client: past [`FAILURES_PER_MINUTE`] failures in a
//! minute from one client, its admin requests get `429` until the minute is over; failures are
//! counted in a metric and said in the log at most every 30 s, never once per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::telemetry;

/// Failed authentications one client may make in a minute.
pub const FAILURES_PER_MINUTE: u32 = 10;
/// Clients tracked at most (a few hundred KiB).
const CAPACITY: usize = 10_000;
/// The window, in milliseconds.
const WINDOW_MS: u64 = 60_000;
/// The log says failures at most this often.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// The admin failures of recent clients.
#[derive(Debug, Default)]
pub struct Lockout {
    /// Client → (when its window began, failures in it). A mutex: taken only by admin requests.
    clients: Mutex<HashMap<Option<IpAddr>, (u64, u32)>>,
    /// When the log last said so, and failures since.
    logged: Mutex<(Option<Instant>, u64)>,
}

impl Lockout {
    /// `Err(seconds to wait)` when `client` has failed too often this minute.
    pub fn check(&self, client: Option<IpAddr>, now_ms: u64) -> Result<(), u64> {
        let clients = self.lock();
        match clients.get(&client) {
            Some(&(since, failures))
                if failures >= FAILURES_PER_MINUTE && now_ms < since + WINDOW_MS =>
            {
                Err((since + WINDOW_MS - now_ms).div_ceil(1000))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication of `client`. When the map is full, expired windows are
    /// dropped first; a client that still finds no room shares one entry with every other such
    /// client (`None`), so a flood of addresses is limited together rather than not at all.
    pub fn failed(&self, client: Option<IpAddr>, now_ms: u64) {
        telemetry::admin_auth_failed();
        {
            let mut clients = self.lock();
            if clients.len() >= CAPACITY && !clients.contains_key(&client) {
                clients.retain(|_, (since, _)| now_ms < *since + WINDOW_MS);
            }
            let key = if clients.len() >= CAPACITY && !clients.contains_key(&client) {
                None
            } else {
                client
            };
            let entry = clients.entry(key).or_insert((now_ms, 0));
            if now_ms >= entry.0 + WINDOW_MS {
                *entry = (now_ms, 0);
            }
            entry.1 = entry.1.saturating_add(1);
        }
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        logged.1 += 1;
        if logged.0.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            tracing::warn!(failures = logged.1, "failed admin authentication");
            *logged = (Some(Instant::now()), 0);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<IpAddr>, (u64, u32)>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_refused_past_its_failures_until_the_minute_is_over() {
        let lockout = Lockout::default();
        let ip = |n: u8| Some(IpAddr::from([192, 0, 2, n]));
        for _ in 0..FAILURES_PER_MINUTE {
            assert_eq!(lockout.check(ip(1), 1_000), Ok(()));
            lockout.failed(ip(1), 1_000);
        }
        assert_eq!(lockout.check(ip(1), 1_000), Err(60));
        assert_eq!(lockout.check(ip(1), 31_000), Err(30));
        assert_eq!(lockout.check(ip(2), 1_000), Ok(()), "another client");
        assert_eq!(lockout.check(ip(1), 61_000), Ok(()), "the next minute");
    }

    #[test]
    fn the_map_stays_within_its_capacity() {
        let lockout = Lockout::default();
        for n in 0..(CAPACITY as u32 + 500) {
            lockout.failed(Some(IpAddr::from(n.to_be_bytes())), 0);
        }
        assert!(lockout.lock().len() <= CAPACITY + 1);
    }
}
