//! What a request says and whether it may count: its query, its page's key, its anti-refresh
//! cookie, and the guards (rules, the client's address, dedupe and limits).

pub mod cookie;
pub mod guards;
pub mod key;
pub(crate) mod query;
