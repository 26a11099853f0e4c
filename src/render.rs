//! What a reply shows: badges, stamped badges and their body buffers, the message's number
//! formats, and the history chart.

pub mod badge;
pub mod chart;
pub mod message;
pub mod stamp;
