//! HTTP: the accept loop and its connection limits, the warp route tree, the request error enum
//! and the headers every reply carries.

pub mod accept;
pub mod error;
pub(crate) mod headers;
pub mod routes;
