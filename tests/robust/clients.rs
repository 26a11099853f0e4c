//! Hostile clients above the connection: admin brute force, forged and rotating client
//! addresses, new-page floods and the page limit.
