//! The settings the server runs with: a [`Config`] checked and loaded (patterns compiled, the
//! template read), and what can be wrong with it.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::{Config, CookieSecure, DedupeMode};
use crate::counting::top::Ranking;
use crate::render::badge::{MissingCount, Template};
use crate::request::guards::UrlRules;

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
    use clap::Parser;

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
