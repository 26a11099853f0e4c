//! Configuration: the command line and `HITCOUNTER_*` environment (clap), validated into
//! the settings the server runs with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use ipnet::IpNet;

use crate::counting::top::{DEFAULT_IGNORE, Ranking};
use crate::render::badge::{MissingCount, Template};
use crate::request::guards::UrlRules;

/// A self-hosted page-view counter: every view of a page bumps a durable count, served as an SVG
/// badge or as plain text.
#[derive(Debug, Clone, Parser)]
#[command(version, about, max_term_width = 100)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(long, env = "HITCOUNTER_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Directory of the sled database; created if missing (systemd passes its StateDirectory).
    #[arg(long, env = "HITCOUNTER_DATA_DIR", default_value = "./hitcounter-data")]
    pub data_dir: PathBuf,

    /// How often counted hits are written to disk and made durable, in milliseconds. A crash
    /// (kill -9, power loss) loses at most about this much; a clean stop loses nothing.
    #[arg(long, env = "HITCOUNTER_FLUSH_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub flush_interval_ms: u64,

    /// How many URLs the in-memory front cache holds (about 150 bytes each). Past a third full,
    /// a URL is cached from its second recent hit, so a flood of URLs hit once each is written
    /// straight to the store; when full, so is every uncached hit. Memory stays bounded and no
    /// hit is dropped.
    #[arg(long, env = "HITCOUNTER_CACHE_CAPACITY", default_value_t = 150_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub cache_capacity: u64,

    /// Anti-refresh window in seconds: after a counted hit, the same browser does not count again
    /// for that URL until the window has passed. 0 turns the feature (and its cookie) off.
    #[arg(long, env = "HITCOUNTER_COOKIE_WINDOW_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub cookie_window_secs: u64,

    /// Length of the random part of the anti-refresh cookie value ([0-9A-Za-z]).
    #[arg(long, env = "HITCOUNTER_COOKIE_VALUE_LENGTH", default_value_t = 12,
          value_parser = clap::value_parser!(u64).range(1..=128))]
    pub cookie_value_length: u64,

    /// When the cookie gets `SameSite=None; Secure`: `auto` when the request came over HTTPS
    /// (seen through `X-Forwarded-Proto` with --trust-proxy), `always`, or `never`.
    #[arg(long, env = "HITCOUNTER_COOKIE_SECURE", value_enum, default_value_t = CookieSecure::Auto)]
    pub cookie_secure: CookieSecure,

    /// Trust the `X-Forwarded-Proto` and `Forwarded` headers of a reverse proxy in front.
    #[arg(long, env = "HITCOUNTER_TRUST_PROXY")]
    pub trust_proxy: bool,

    /// An SVG file to serve instead of the default badge; `{count}` is replaced by the count and
    /// `{url}` by the counted key.
    #[arg(long, env = "HITCOUNTER_SVG_TEMPLATE")]
    pub svg_template: Option<PathBuf>,

    /// Longest target URL accepted, in bytes.
    #[arg(long, env = "HITCOUNTER_MAX_URL_LENGTH", default_value_t = 2048,
          value_parser = clap::value_parser!(u64).range(16..=65_536))]
    pub max_url_length: u64,

    /// How many days of daily counts to keep (for `today` and the history endpoints); older
    /// days are pruned in the background once a day. Totals are never pruned.
    #[arg(long, env = "HITCOUNTER_HISTORY_DAYS", default_value_t = 400,
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub history_days: u32,

    /// How many of the most-viewed domains the tool page shows (from `/nocount/top.json`).
    #[arg(long, env = "HITCOUNTER_TOP_DOMAINS", default_value_t = 10,
          value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub top_domains: u16,

    /// How many of the most-viewed URLs the tool page shows; 0 hides the table.
    #[arg(long, env = "HITCOUNTER_TOP_URLS", default_value_t = 0,
          value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub top_urls: u16,

    /// Regular expressions of domains (host and port, the whole of it) left out of the top
    /// tables; repeat the flag, or separate them with spaces in the variable. Giving any replaces
    /// the defaults, which leave out loopback and private addresses.
    #[arg(long, env = "HITCOUNTER_TOP_IGNORE", value_delimiter = ' ', default_values = DEFAULT_IGNORE)]
    pub top_ignore: Vec<String>,

    /// How often the top tables are recomputed from the store, in seconds (a background scan).
    #[arg(long, env = "HITCOUNTER_TOP_REFRESH_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub top_refresh_secs: u64,

    /// Turns the admin API on (/admin/count, /admin/export), for requests that send
    /// `Authorization: Bearer <this token>`. Without it the admin routes do not exist.
    #[arg(long, env = "HITCOUNTER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Serve Prometheus metrics at /metrics.
    #[arg(long, env = "HITCOUNTER_METRICS")]
    pub metrics: bool,

    /// Also export the views of the N most-viewed URLs as a labelled gauge (0: none, so that no
    /// metric has a label per URL).
    #[arg(long, env = "HITCOUNTER_METRICS_TOP_URLS", default_value_t = 0,
          value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub metrics_top_urls: u16,

    /// Count only keys matching one of these regular expressions (each must match the whole
    /// key, e.g. `example\.com(/.*)?`); repeat the flag, or separate with spaces in the variable.
    #[arg(long, env = "HITCOUNTER_ALLOW", value_delimiter = ' ')]
    pub allow: Vec<String>,

    /// Refuse keys matching one of these regular expressions (whole key); deny wins over allow.
    #[arg(long, env = "HITCOUNTER_DENY", value_delimiter = ' ')]
    pub deny: Vec<String>,

    /// How a repeat view within the cookie window is recognised: `cookie` (the original's),
    /// `visitor` (a keyed hash of address, User-Agent and page, kept in memory only), `both`, or
    /// `off`.
    #[arg(long, env = "HITCOUNTER_DEDUPE", value_enum, default_value_t = DedupeMode::Cookie)]
    pub dedupe: DedupeMode,

    /// How many visitors the `visitor` dedupe remembers at most.
    #[arg(long, env = "HITCOUNTER_DEDUPE_CAPACITY", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub dedupe_capacity: u64,

    /// Counted hits allowed per client address per minute; more are served but not counted.
    /// 0 turns the limit off.
    #[arg(long, env = "HITCOUNTER_RATE_LIMIT", default_value_t = 0)]
    pub rate_limit: u32,

    /// How many client addresses the rate limit (and, apart, the new-pages allowance) tracks at
    /// most.
    #[arg(long, env = "HITCOUNTER_RATE_LIMIT_CAPACITY", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub rate_limit_capacity: u64,

    /// Most pages the counter holds; past it a new page is refused (403, a badge saying so) and
    /// known pages keep counting. The default bounds the data dir to about 4 GB even if every
    /// URL is 2 KB long (about 300 MB at 100-byte URLs). 0 means no limit.
    #[arg(long, env = "HITCOUNTER_MAX_PAGES", default_value_t = 1_000_000)]
    pub max_pages: u64,

    /// New pages one client address may make per minute (IPv6: one --ipv6-prefix); past it a
    /// new page gets 429 with Retry-After, known pages keep counting. GitHub's image proxy
    /// (User-Agent github-camo…) shares ten times this. 0 turns the allowance off.
    #[arg(long, env = "HITCOUNTER_NEW_PAGES_PER_MINUTE", default_value_t = 300)]
    pub new_pages_per_minute: u32,

    /// Proxies (CIDR) whose X-Forwarded-For / Forwarded entries are skipped when finding the
    /// client's address with --trust-proxy.
    #[arg(long, env = "HITCOUNTER_TRUSTED_PROXY", value_delimiter = ' ',
          default_values = ["127.0.0.0/8", "::1/128"])]
    pub trusted_proxy: Vec<IpNet>,

    /// On shutdown, how long in-flight requests may take to finish before the final flush, in
    /// seconds.
    #[arg(long, env = "HITCOUNTER_SHUTDOWN_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_timeout_secs: u64,

    /// A request's head (request line and headers) must arrive within this many seconds, else
    /// the connection is closed.
    #[arg(long, env = "HITCOUNTER_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_secs: u64,

    /// A keep-alive connection with no request under way is closed after this many seconds.
    #[arg(long, env = "HITCOUNTER_IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_secs: u64,

    /// Open connections allowed at once; past it new ones are closed at accept. Default: the
    /// file-descriptor limit (raised to its hard limit at start) less 64 kept for the store.
    #[arg(long, env = "HITCOUNTER_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_connections: Option<u64>,

    /// Open connections allowed at once from one client address (IPv6: one --ipv6-prefix);
    /// never applied to a trusted proxy with --trust-proxy.
    #[arg(long, env = "HITCOUNTER_MAX_CONNECTIONS_PER_IP", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_connections_per_ip: u64,

    /// Also serve HTTP/2 (cleartext, h2c), with bounded streams and buffers per connection.
    /// Off by default: browsers use HTTP/2 only over TLS, so only a proxy in front needs it.
    #[arg(long, env = "HITCOUNTER_HTTP2")]
    pub http2: bool,

    /// IPv6 clients are one client per prefix of this many bits (an ISP gives a home a /64),
    /// for the rate limit, the visitor dedupe, the admin lockout and the connection cap.
    #[arg(long, env = "HITCOUNTER_IPV6_PREFIX", default_value_t = 64,
          value_parser = clap::value_parser!(u8).range(8..=128))]
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

/// Settings the server runs with, checked and loaded from a [`Config`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// See [`Config::data_dir`].
    pub data_dir: PathBuf,
    /// See [`Config::flush_interval_ms`].
    pub flush_interval: Duration,
    /// See [`Config::cache_capacity`].
    pub cache_capacity: usize,
    /// See [`Config::cookie_window_secs`].
    pub cookie_window_secs: u64,
    /// See [`Config::cookie_value_length`].
    pub cookie_value_length: usize,
    /// See [`Config::cookie_secure`].
    pub cookie_secure: CookieSecure,
    /// See [`Config::trust_proxy`].
    pub trust_proxy: bool,
    /// The loaded template of [`Config::svg_template`].
    pub svg_template: Option<Template>,
    /// See [`Config::max_url_length`].
    pub max_url_length: usize,
    /// The top tables, from [`Config::top_domains`], [`Config::top_urls`] (or
    /// [`Config::metrics_top_urls`] if larger) and [`Config::top_ignore`].
    pub ranking: Ranking,
    /// See [`Config::top_urls`]: how many URLs `/nocount/top.json` shows.
    pub top_urls: usize,
    /// See [`Config::top_refresh_secs`].
    pub top_refresh: Duration,
    /// See [`Config::history_days`].
    pub history_days: u32,
    /// See [`Config::admin_token`].
    pub admin_token: Option<String>,
    /// See [`Config::metrics`].
    pub metrics: bool,
    /// See [`Config::metrics_top_urls`].
    pub metrics_top_urls: usize,
    /// [`Config::allow`] and [`Config::deny`], compiled.
    pub url_rules: UrlRules,
    /// See [`Config::dedupe`].
    pub dedupe: DedupeMode,
    /// See [`Config::dedupe_capacity`].
    pub dedupe_capacity: usize,
    /// See [`Config::rate_limit`].
    pub rate_limit: u32,
    /// See [`Config::rate_limit_capacity`].
    pub rate_limit_capacity: usize,
    /// See [`Config::max_pages`]; 0 is `u64::MAX`.
    pub max_pages: u64,
    /// See [`Config::new_pages_per_minute`].
    pub new_pages_per_minute: u32,
    /// See [`Config::trusted_proxy`].
    pub trusted_proxies: Vec<IpNet>,
    /// See [`Config::shutdown_timeout_secs`].
    pub shutdown_timeout: Duration,
    /// See [`Config::header_timeout_secs`].
    pub header_timeout: Duration,
    /// See [`Config::idle_timeout_secs`].
    pub idle_timeout: Duration,
    /// See [`Config::max_connections`]; `None` derives it from the file-descriptor limit.
    pub max_connections: Option<usize>,
    /// See [`Config::max_connections_per_ip`].
    pub max_connections_per_ip: usize,
    /// See [`Config::http2`].
    pub http2: bool,
    /// See [`Config::ipv6_prefix`].
    pub ipv6_prefix: u8,
}

/// A configuration that cannot be used; each message is one sentence naming the culprit.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The template file cannot be read.
    #[error("cannot read the SVG template {}: {source}", path.display())]
    TemplateUnreadable {
        /// The template path.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A `--top-ignore`, `--allow` or `--deny` pattern is not a regular expression.
    #[error("the {flag} pattern \"{pattern}\" is not a valid regular expression: {reason}")]
    BadPattern {
        /// The option that gave it.
        flag: &'static str,
        /// The pattern as given (or the patterns, if together they are too large).
        pattern: String,
        /// What the regex crate said, in one line.
        reason: String,
    },
    /// The template lacks `{count}`.
    #[error("the SVG template {} does not contain {{count}}", path.display())]
    TemplateWithoutCount {
        /// The template path.
        path: PathBuf,
    },
}

/// Checks each of `patterns` (given by `flag`) alone, so that an error names the pattern as
/// given rather than the anchored form it is compiled in.
fn check_patterns(flag: &'static str, patterns: &[String]) -> Result<(), ConfigError> {
    for pattern in patterns {
        regex::Regex::new(pattern).map_err(|err| bad_pattern(flag, pattern.clone(), &err))?;
    }
    Ok(())
}

/// A [`ConfigError::BadPattern`], with the last line of the regex crate's error (its first
/// lines repeat the pattern) as the reason.
fn bad_pattern(flag: &'static str, pattern: String, err: &regex::Error) -> ConfigError {
    let reason = match err {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("error: "))
            .unwrap_or(text)
            .to_owned(),
        other => other.to_string(),
    };
    ConfigError::BadPattern {
        flag,
        pattern,
        reason,
    }
}

impl Config {
    /// Checks the configuration and loads the files it names.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        check_patterns("--top-ignore", &self.top_ignore)?;
        check_patterns("--allow", &self.allow)?;
        check_patterns("--deny", &self.deny)?;
        let svg_template = match self.svg_template {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| {
                    ConfigError::TemplateUnreadable {
                        path: path.clone(),
                        source,
                    }
                })?;
                Some(
                    Template::new(text)
                        .map_err(|MissingCount| ConfigError::TemplateWithoutCount { path })?,
                )
            }
        };
        // The ranges above bound these, so the conversions cannot saturate on 64-bit targets.
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Ok(Settings {
            data_dir: self.data_dir,
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            cache_capacity: to_usize(self.cache_capacity),
            cookie_window_secs: self.cookie_window_secs,
            cookie_value_length: to_usize(self.cookie_value_length),
            cookie_secure: self.cookie_secure,
            trust_proxy: self.trust_proxy,
            svg_template,
            max_url_length: to_usize(self.max_url_length),
            ranking: Ranking::new(
                usize::from(self.top_domains),
                usize::from(self.top_urls.max(self.metrics_top_urls)),
                &self.top_ignore,
            )
            .map_err(|err| bad_pattern("--top-ignore", self.top_ignore.join(" "), &err))?,
            top_refresh: Duration::from_secs(self.top_refresh_secs),
            top_urls: usize::from(self.top_urls),
            history_days: self.history_days,
            url_rules: UrlRules::new(&self.allow, &self.deny).map_err(|err| {
                let patterns = [self.allow.join(" "), self.deny.join(" ")].join(" ");
                bad_pattern("--allow or --deny", patterns, &err)
            })?,
            admin_token: self.admin_token.filter(|token| !token.is_empty()),
            metrics: self.metrics,
            metrics_top_urls: usize::from(self.metrics_top_urls),
            dedupe: self.dedupe,
            dedupe_capacity: to_usize(self.dedupe_capacity),
            rate_limit: self.rate_limit,
            rate_limit_capacity: to_usize(self.rate_limit_capacity),
            max_pages: match self.max_pages {
                0 => u64::MAX,
                max => max,
            },
            new_pages_per_minute: self.new_pages_per_minute,
            trusted_proxies: self.trusted_proxy,
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: self.max_connections.map(to_usize),
            max_connections_per_ip: to_usize(self.max_connections_per_ip),
            http2: self.http2,
            ipv6_prefix: self.ipv6_prefix,
        })
    }
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

    #[test]
    fn defaults_are_the_documented_ones() -> Result<(), Box<dyn std::error::Error>> {
        let settings = Config::try_parse_from(["hitcounter"])?.validate()?;
        assert_eq!(settings.flush_interval, Duration::from_millis(1000));
        assert_eq!(settings.cache_capacity, 150_000);
        assert_eq!(settings.cookie_window_secs, 60);
        assert_eq!(settings.cookie_value_length, 12);
        assert_eq!(settings.max_url_length, 2048);
        assert_eq!(settings.history_days, 400);
        assert_eq!((settings.ranking.domains, settings.ranking.urls), (10, 0));
        assert!(settings.ranking.ignore.is_match("127.0.0.1:8080"));
        assert_eq!(settings.top_refresh, Duration::from_secs(60));
        assert_eq!(settings.data_dir, PathBuf::from("./hitcounter-data"));
        Ok(())
    }

    #[test]
    fn a_template_without_count_is_refused_naming_the_file()
    -> Result<(), Box<dyn std::error::Error>> {
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), "<svg>{url}</svg>")?;
        let path = file.path().to_string_lossy().into_owned();
        let err = Config::try_parse_from(["hitcounter", "--svg-template", &path])?
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&path) && err.contains("{count}"), "{err}");
        Ok(())
    }
}
