//! What each endpoint does, given the parts its route took out of the request: counting, the
//! reports, the admin API and the tool page.

pub mod admin;
pub mod count;
pub(crate) mod page;
pub(crate) mod reports;
