//! Hostile connections: slow and partial heads, idle and flooding clients, HTTP/2 peers that
//! never read; a well-behaved client keeps being answered.
