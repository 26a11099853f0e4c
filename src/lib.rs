//! hitcounter: a self-hosted page-view counter. Every view of a page bumps a durable count, served
//! as an SVG badge (`/count/tag.svg`) or as text (`/count`); `/nocount` reads without counting.
//!
//! # Layout
//! Data flows one way: request → [`http`] → [`endpoints`] → [`request`] (query, key, guards) →
//! [`counting`] (front cache → [`store`]) → [`render`] → reply. `docs/ARCHITECTURE.md` follows
//! one request and one hit through them.
//! - [`app`]: [`run`], the lifecycle: store, flusher, serving, graceful shutdown.
//! - [`http`]: the accept loop and its connection limits, the warp route tree, the error enum and
//!   the replies' common headers.
//! - [`endpoints`]: what each endpoint does: count, reports, admin, the tool page.
//! - [`request`]: a request's query, its page's key (pure), cookies, and the guards (rules, the
//!   client's address, dedupe and limits).
//! - [`counting`]: the counter: the bounded front cache, the flusher task, the page limit, health,
//!   and the background ranking of top sites.
//! - [`store`]: durable counts in sled: encoding, journal, checkpoints.
//! - [`render`] (pure): badges, stamped badges, the message's number formats, the history chart.
//! - [`transfer`]: export, import and the original's SQLite file.
//! - [`config`] and [`cli`]: the options and subcommands; [`clock`], [`memory`], `telemetry`:
//!   time, the allocator's settings, metrics; `bounded`: the bounded map every in-memory table
//!   of the guards, memos and front cache is.

#![warn(missing_docs, clippy::unwrap_used, clippy::expect_used)]

pub mod app;
mod bounded;
pub mod cli;
pub mod clock;
pub mod config;
pub mod counting;
pub mod endpoints;
pub mod http;
pub mod memory;
pub mod render;
pub mod request;
pub mod store;
pub(crate) mod telemetry;
pub mod transfer;

pub use app::{RunError, run, run_with_clock};
pub use config::Config;
