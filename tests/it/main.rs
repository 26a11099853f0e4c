//! The integration tests, one binary: real servers on loopback ports driven by real HTTP
//! clients, the real binary under signals, crashes and hostile clients, and real sled
//! directories.
//! - [`http`]: the routes over HTTP/1 and HTTP/2, methods, cookies, CORS, errors;
//! - [`badges`]: badges against badge-maker, days and the JSON routes;
//! - [`admin`]: the admin API, export and import, rules, dedupe, rate limits, metrics;
//! - [`process`]: the binary: SIGTERM, `kill -9`, start-up errors, subcommands;
//! - [`formats`]: data dirs of earlier formats upgraded, a newer one refused;
//! - [`robust`]: crashes under load, hostile requests, connection and storage attacks.

mod admin;
mod badges;
mod common;
mod formats;
mod http;
mod process;
mod robust;

/// The process tests share two cores, and their timing is part of what they check (a flush
/// interval, a stop within systemd's limit): they run one at a time.
pub(crate) static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
