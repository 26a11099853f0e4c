//! Configuration: the command line and `HITCOUNTER_*` environment (clap), validated into
//! the settings the server runs with.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use ipnet::IpNet;

use crate::counting::top::DEFAULT_IGNORE;

mod settings;

pub use settings::{ConfigError, Settings};

/// A self-hosted page-view counter: every view of a page bumps a durable count, served as an SVG
/// badge or as plain text.
#[derive(Debug, Clone, Parser)]
#[command(version = crate::cli::VERSION, about, max_term_width = 100)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(
        long,
        help_heading = "Serving and storage",
        hide_env = true,
        value_name = "ADDR",
        env = "HITCOUNTER_BIND",
        default_value = "127.0.0.1:8080"
    )]
    pub bind: SocketAddr,

    /// Where the counts are kept; made if missing.
    ///
    /// Directory of the sled database; created if missing (systemd passes its StateDirectory).
    #[arg(
        long,
        help_heading = "Serving and storage",
        hide_env = true,
        value_name = "DIR",
        env = "HITCOUNTER_DATA_DIR",
        default_value = "./hitcounter-data"
    )]
    pub data_dir: PathBuf,

    /// How often hits are made durable.
    ///
    /// How often counted hits are written to disk and made durable, in milliseconds. A crash
    /// (kill -9, power loss) loses at most about this much; a clean stop loses nothing.
    #[arg(
        long,
        help_heading = "Serving and storage",
        hide_env = true,
        value_name = "MS",
        env = "HITCOUNTER_FLUSH_INTERVAL_MS",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(10..=3_600_000),
    )]
    pub flush_interval_ms: u64,

    /// Pages held in the front cache.
    ///
    /// How many URLs the in-memory front cache holds (about 150 bytes each). Past a third full,
    /// a URL is cached from its second recent hit, so a flood of URLs hit once each is written
    /// straight to the store; when full, so is every uncached hit. Memory stays bounded and no
    /// hit is dropped.
    #[arg(
        long,
        help_heading = "Serving and storage",
        hide_env = true,
        value_name = "PAGES",
        env = "HITCOUNTER_CACHE_CAPACITY",
        default_value_t = 150_000,
        value_parser = clap::value_parser!(u64).range(1..=100_000_000),
    )]
    pub cache_capacity: u64,

    /// Anti-refresh window; 0 turns it off.
    ///
    /// Anti-refresh window in seconds: after a counted hit, the same browser does not count again
    /// for that URL until the window has passed. 0 turns the feature (and its cookie) off.
    #[arg(
        long,
        help_heading = "Counting and limits",
        hide_env = true,
        value_name = "SECS",
        env = "HITCOUNTER_COOKIE_WINDOW_SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(0..=31_536_000),
    )]
    pub cookie_window_secs: u64,

    /// Random characters in the cookie value.
    ///
    /// Length of the random part of the anti-refresh cookie value ([0-9A-Za-z]).
    #[arg(
        long,
        help_heading = "Counting and limits",
        hide_env = true,
        value_name = "CHARS",
        env = "HITCOUNTER_COOKIE_VALUE_LENGTH",
        default_value_t = 12,
        value_parser = clap::value_parser!(u64).range(1..=128),
    )]
    pub cookie_value_length: u64,

    /// SameSite=None; Secure: auto, always, never.
    ///
    /// When the cookie gets `SameSite=None; Secure`: `auto` when the request came over HTTPS
    /// (seen through `X-Forwarded-Proto` with --trust-proxy), `always`, or `never`.
    #[arg(
        long,
        help_heading = "Counting and limits",
        hide_env = true,
        env = "HITCOUNTER_COOKIE_SECURE",
        value_enum,
        value_name = "WHEN",
        hide_possible_values = true,
        default_value_t = CookieSecure::Auto,
    )]
    pub cookie_secure: CookieSecure,

    /// Read client and scheme from forwarding headers.
    ///
    /// Trust the `X-Forwarded-Proto` and `Forwarded` headers of a reverse proxy in front.
    #[arg(
        long,
        help_heading = "Connections and proxies",
        hide_env = true,
        env = "HITCOUNTER_TRUST_PROXY"
    )]
    pub trust_proxy: bool,

    /// SVG served instead of the badge, with {count}.
    ///
    /// An SVG file to serve instead of the default badge; `{count}` is replaced by the count and
    /// `{url}` by the counted key.
    #[arg(
        long,
        help_heading = "Badges, reports, admin",
        hide_env = true,
        value_name = "FILE",
        env = "HITCOUNTER_SVG_TEMPLATE"
    )]
    pub svg_template: Option<PathBuf>,

    /// Longest page URL.
    ///
    /// Longest target URL accepted, in bytes.
    #[arg(
        long,
        help_heading = "Counting and limits",
        hide_env = true,
        value_name = "BYTES",
        env = "HITCOUNTER_MAX_URL_LENGTH",
        default_value_t = 2048,
        value_parser = clap::value_parser!(u64).range(16..=65_536),
    )]
    pub max_url_length: u64,

    /// Days of daily counts kept.
    ///
    /// How many days of daily counts to keep (for `today` and the history endpoints); older
    /// days are pruned in the background once a day. Totals are never pruned.
    #[arg(
        long,
        help_heading = "Serving and storage",
        hide_env = true,
        value_name = "DAYS",
        env = "HITCOUNTER_HISTORY_DAYS",
        default_value_t = 400,
        value_parser = clap::value_parser!(u32).range(1..=36_500),
    )]
    pub history_days: u32,

    /// Rows of the top-domains table.
    ///
    /// How many of the most-viewed domains the tool page shows (from `/nocount/top.json`).
    #[arg(
        long,
        help_heading = "Badges, reports, admin",
        hide_env = true,
        value_name = "N",
        env = "HITCOUNTER_TOP_DOMAINS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u16).range(0..=1000),
    )]
    pub top_domains: u16,

    /// Rows of the top-pages table; 0 hides it.
    ///
    /// How many of the most-viewed URLs the tool page shows; 0 hides the table.
    #[arg(
        long,
        help_heading = "Badges, reports, admin",
        hide_env = true,
        value_name = "N",
        env = "HITCOUNTER_TOP_URLS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u16).range(0..=1000),
    )]
    pub top_urls: u16,

    /// Domains left out of the tables [default: private].
    ///
    /// Regular expressions of domains (host and port, the whole of it) left out of the top
    /// tables; repeat the flag, or separate them with spaces in the variable. Giving any replaces
    /// the defaults, which leave out loopback and private addresses.
    #[arg(
        long,
        help_heading = "Badges, reports, admin",
        hide_env = true,
        value_name = "REGEX",
        hide_default_value = true,
        env = "HITCOUNTER_TOP_IGNORE",
        value_delimiter = ' ',
        default_values = DEFAULT_IGNORE,
    )]
    pub top_ignore: Vec<String>,

    /// How often the tables are ranked.
    ///
    /// How often the top tables are recomputed from the store, in seconds (a background scan).
    #[arg(
        long,
        help_heading = "Badges, reports, admin",
        hide_env = true,
        value_name = "SECS",
        env = "HITCOUNTER_TOP_REFRESH_SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400),
    )]
    pub top_refresh_secs: u64,

    /// Turns the admin API on, for this bearer token.
    ///
    /// Turns the admin API on (/admin/count, /admin/export), for requests that send
    /// `Authorization: Bearer <this token>`. Without it the admin routes do not exist.
    #[arg(
        long,
        help_heading = "Badges, reports, admin",
        hide_env = true,
        value_name = "TOKEN",
        env = "HITCOUNTER_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// Serve Prometheus metrics at /metrics.
    ///
    /// Serve Prometheus metrics at /metrics.
    #[arg(
        long,
        help_heading = "Badges, reports, admin",
        hide_env = true,
        env = "HITCOUNTER_METRICS"
    )]
    pub metrics: bool,

    /// Per-URL view gauges for the N most viewed.
    ///
    /// Also export the views of the N most-viewed URLs as a labelled gauge (0: none, so that no
    /// metric has a label per URL).
    #[arg(
        long,
        help_heading = "Badges, reports, admin",
        hide_env = true,
        value_name = "N",
        env = "HITCOUNTER_METRICS_TOP_URLS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u16).range(0..=1000),
    )]
    pub metrics_top_urls: u16,

    /// Count only keys matching one of these.
    ///
    /// Count only keys matching one of these regular expressions (each must match the whole
    /// key, e.g. `example\.com(/.*)?`); repeat the flag, or separate with spaces in the variable.
    #[arg(
        long,
        help_heading = "Counting and limits",
        hide_env = true,
        value_name = "REGEX",
        env = "HITCOUNTER_ALLOW",
        value_delimiter = ' '
    )]
    pub allow: Vec<String>,

    /// Refuse keys matching one of these.
    ///
    /// Refuse keys matching one of these regular expressions (whole key); deny wins over allow.
    #[arg(
        long,
        help_heading = "Counting and limits",
        hide_env = true,
        value_name = "REGEX",
        env = "HITCOUNTER_DENY",
        value_delimiter = ' '
    )]
    pub deny: Vec<String>,

    /// Repeats known by cookie, visitor, both, off.
    ///
    /// How a repeat view within the cookie window is recognised: `cookie` (the original's),
    /// `visitor` (a keyed hash of address, User-Agent and page, kept in memory only), `both`, or
    /// `off`.
    #[arg(
        long,
        help_heading = "Counting and limits",
        hide_env = true,
        env = "HITCOUNTER_DEDUPE",
        value_enum,
        value_name = "HOW",
        hide_possible_values = true,
        default_value_t = DedupeMode::Cookie,
    )]
    pub dedupe: DedupeMode,

    /// Visitors remembered at most.
    ///
    /// How many visitors the `visitor` dedupe remembers at most.
    #[arg(
        long,
        help_heading = "Counting and limits",
        hide_env = true,
        value_name = "VISITORS",
        env = "HITCOUNTER_DEDUPE_CAPACITY",
        default_value_t = 100_000,
        value_parser = clap::value_parser!(u64).range(1..=100_000_000),
    )]
    pub dedupe_capacity: u64,

    /// Counted hits per client a minute; 0: off.
    ///
    /// Counted hits allowed per client address per minute; more are served but not counted.
    /// 0 turns the limit off.
    #[arg(
        long,
        help_heading = "Counting and limits",
        hide_env = true,
        value_name = "HITS",
        env = "HITCOUNTER_RATE_LIMIT",
        default_value_t = 0
    )]
    pub rate_limit: u32,

    /// Clients tracked at most.
    ///
    /// How many client addresses the rate limit (and, apart, the new-pages allowance) tracks at
    /// most.
    #[arg(
        long,
        help_heading = "Counting and limits",
        hide_env = true,
        value_name = "CLIENTS",
        env = "HITCOUNTER_RATE_LIMIT_CAPACITY",
        default_value_t = 100_000,
        value_parser = clap::value_parser!(u64).range(1..=100_000_000),
    )]
    pub rate_limit_capacity: u64,

    /// Pages held at most; 0: no limit.
    ///
    /// Most pages the counter holds; past it a new page is refused (403, a badge saying so) and
    /// known pages keep counting. The default bounds the data dir to about 4 GB even if every
    /// URL is 2 KB long (about 300 MB at 100-byte URLs). 0 means no limit.
    #[arg(
        long,
        help_heading = "Counting and limits",
        hide_env = true,
        value_name = "PAGES",
        env = "HITCOUNTER_MAX_PAGES",
        default_value_t = 1_000_000
    )]
    pub max_pages: u64,

    /// New pages one client may make a minute.
    ///
    /// New pages one client address may make per minute (IPv6: one --ipv6-prefix); past it a
    /// new page gets 429 with Retry-After, known pages keep counting. GitHub's image proxy
    /// (User-Agent github-camo…) shares ten times this. 0 turns the allowance off.
    #[arg(
        long,
        help_heading = "Counting and limits",
        hide_env = true,
        value_name = "PAGES",
        env = "HITCOUNTER_NEW_PAGES_PER_MINUTE",
        default_value_t = 300
    )]
    pub new_pages_per_minute: u32,

    /// Addresses of proxies to skip.
    ///
    /// Proxies (CIDR) whose X-Forwarded-For / Forwarded entries are skipped when finding the
    /// client's address with --trust-proxy.
    #[arg(
        long,
        help_heading = "Connections and proxies",
        hide_env = true,
        value_name = "NET",
        env = "HITCOUNTER_TRUSTED_PROXY",
        value_delimiter = ' ',
        default_values = ["127.0.0.0/8", "::1/128"],
    )]
    pub trusted_proxy: Vec<IpNet>,

    /// Time for requests and the flush at a stop.
    ///
    /// On shutdown, how long in-flight requests may take to finish before the final flush, in
    /// seconds.
    #[arg(
        long,
        help_heading = "Serving and storage",
        hide_env = true,
        value_name = "SECS",
        env = "HITCOUNTER_SHUTDOWN_TIMEOUT_SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(0..=3600),
    )]
    pub shutdown_timeout_secs: u64,

    /// A request head must arrive within this.
    ///
    /// A request's head (request line and headers) must arrive within this many seconds, else
    /// the connection is closed.
    #[arg(
        long,
        help_heading = "Connections and proxies",
        hide_env = true,
        value_name = "SECS",
        env = "HITCOUNTER_HEADER_TIMEOUT_SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=3600),
    )]
    pub header_timeout_secs: u64,

    /// An idle connection is closed after this.
    ///
    /// A keep-alive connection with no request under way is closed after this many seconds.
    #[arg(
        long,
        help_heading = "Connections and proxies",
        hide_env = true,
        value_name = "SECS",
        env = "HITCOUNTER_IDLE_TIMEOUT_SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400),
    )]
    pub idle_timeout_secs: u64,

    /// Connections at once [default: open files less 64].
    ///
    /// Open connections allowed at once; past it new ones are closed at accept. Default: the
    /// file-descriptor limit (raised to its hard limit at start) less 64 kept for the store.
    #[arg(
        long,
        help_heading = "Connections and proxies",
        hide_env = true,
        value_name = "N",
        env = "HITCOUNTER_MAX_CONNECTIONS",
        value_parser = clap::value_parser!(u64).range(1..=10_000_000),
    )]
    pub max_connections: Option<u64>,

    /// Connections at once from one client.
    ///
    /// Open connections allowed at once from one client address (IPv6: one --ipv6-prefix);
    /// never applied to a trusted proxy with --trust-proxy.
    #[arg(
        long,
        help_heading = "Connections and proxies",
        hide_env = true,
        value_name = "N",
        env = "HITCOUNTER_MAX_CONNECTIONS_PER_IP",
        default_value_t = 256,
        value_parser = clap::value_parser!(u64).range(1..=10_000_000),
    )]
    pub max_connections_per_ip: u64,

    /// Also serve HTTP/2 (h2c).
    ///
    /// Also serve HTTP/2 (cleartext, h2c), with bounded streams and buffers per connection.
    /// Off by default: browsers use HTTP/2 only over TLS, so only a proxy in front needs it.
    #[arg(
        long,
        help_heading = "Connections and proxies",
        hide_env = true,
        env = "HITCOUNTER_HTTP2"
    )]
    pub http2: bool,

    /// IPv6 clients grouped by this prefix.
    ///
    /// IPv6 clients are one client per prefix of this many bits (an ISP gives a home a /64),
    /// for the rate limit, the visitor dedupe, the admin lockout and the connection cap.
    #[arg(
        long,
        help_heading = "Connections and proxies",
        hide_env = true,
        value_name = "BITS",
        env = "HITCOUNTER_IPV6_PREFIX",
        default_value_t = 64,
        value_parser = clap::value_parser!(u8).range(8..=128),
    )]
    pub ipv6_prefix: u8,
}

/// When anti-refresh cookies are marked `Secure` (and so may be `SameSite=None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CookieSecure {
    /// Secure when the request came over HTTPS.
    Auto,
    /// Always Secure (the server is only ever reached over HTTPS).
    Always,
    /// Never Secure (plain HTTP only).
    Never,
}

/// How repeat views within the cookie window are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DedupeMode {
    /// The anti-refresh cookie (the original's way).
    Cookie,
    /// A keyed hash of client address, User-Agent and page, kept in memory for the window.
    Visitor,
    /// Either one.
    Both,
    /// Every hit counts.
    Off,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Config::command().debug_assert();
    }

    #[test]
    fn every_argument_has_help_and_an_env_var() {
        for arg in Config::command().get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            assert!(arg.get_help().is_some(), "--{id} has no help");
            let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or_default();
            assert_eq!(env, format!("HITCOUNTER_{}", id.to_uppercase()), "--{id}");
        }
    }
}
