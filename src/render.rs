//! What a reply shows: badges, stamped badges and their body buffers, the message's number
//! formats, and the history chart.

pub mod badge;
pub(crate) mod chart;
pub(crate) mod message;
pub mod stamp;
