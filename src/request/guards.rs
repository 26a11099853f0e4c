//! Abuse and privacy guards, one module each: URL allow/deny rules (`rules`), who the client is
//! behind trusted proxies (`client`), cookieless visitor dedupe (`dedupe`) and per-client limits
//! of counted hits and of new pages (`rate_limit`). Every map has a capacity; no address or
//! User-Agent is ever written to disk or logs.

mod client;
mod dedupe;
mod rate_limit;
mod rules;

pub(crate) use client::{client_group, client_ip, forwarded_https};
pub use dedupe::Dedupe;
pub(crate) use rate_limit::is_image_proxy;
pub use rate_limit::{Allowance, RateLimit};
pub use rules::UrlRules;
