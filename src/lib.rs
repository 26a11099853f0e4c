//! hitcounter: a self-hosted page-view counter. Every view of a page bumps a durable count, served
//! as an SVG badge (`/count/tag.svg`) or as text (`/count`); `/nocount` reads without counting.
//!
//! # Layout
//! Data flows one way: request → [`routes`] → [`handlers`] ([`params`], [`key`]) → [`counter`]
//! ([`cache`] → [`store`]) → [`badge`] / [`format`](mod@format) / [`sparkline`] → reply.
//! - [`cli`]: the subcommands (`export`, `import`, `import-seed`); [`config`]: the server's
//!   options from the command line and environment, validated into settings.
//! - [`server`]: [`run`], the lifecycle: store, flusher, serving, graceful shutdown; [`serve`]:
//!   the accept loop and the drain of open connections.
//! - [`routes`]: the warp filters, one per endpoint; [`handlers`]: what the counting endpoints
//!   do; [`reports`]: history, top sites, health and metrics;
//!   [`web`]: the embedded tool page.
//! - [`params`] (pure): the query string, parsed and validated.
//! - [`admin`]: the admin API (set, delete, export), only with a token.
//! - [`guard`]: allow/deny rules, the client address, visitor dedupe and rate limits.
//! - [`telemetry`]: Prometheus metrics and what is measured.
//! - [`error`]: the request error enum and its mapping to replies; [`headers`]: the headers every
//!   response carries.
//! - [`key`] (pure): URL → key normalisation.
//! - [`badge`] (pure): SVG badges in shields.io's styles; [`format`](mod@format) (pure): which count and how
//!   it is written; [`sparkline`] (pure): the history chart; [`stamp`]: count badges cut from
//!   one rendered badge per look and message shape, rather than laid out on every request.
//! - [`clock`]: the wall clock and UTC days, injectable for tests; [`memory`]: the allocator's
//!   settings, made once by the binary.
//! - [`cookie`] (pure): anti-refresh cookie names and signed values.
//! - [`top`]: the top sites, ranked in the background.
//! - [`transfer`]: export, import and migration from the original's SQLite file.
//! - [`cache`]: the bounded DashMap front cache; [`store`]: sled; [`counter`]: both, and the
//!   flusher task.

#![warn(missing_docs, clippy::unwrap_used, clippy::expect_used)]

pub mod admin;
pub mod badge;
pub mod body;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cookie;
pub mod counter;
pub mod error;
pub mod format;
pub mod guard;
pub mod handlers;
pub mod headers;
pub mod key;
pub mod memory;
pub mod params;
pub mod reports;
pub mod routes;
pub mod serve;
pub mod server;
pub mod sparkline;
pub mod stamp;
pub mod store;
pub mod telemetry;
pub mod top;
pub mod transfer;
pub mod web;

pub use config::Config;
pub use server::{RunError, run, run_with_clock};
