//! What each endpoint does, given the parts its route took out of the request: counting, the
//! reports, the admin API and the tool page.

pub mod admin;
pub mod count;
pub mod page;
pub mod reports;
