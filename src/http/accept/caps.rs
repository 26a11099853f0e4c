//! Connection caps: how many connections may be open at once, in all and from one client
//! (an IPv6 client is its prefix); trusted proxies are not capped per address. A connection over
//! a cap gets a short `503` and is closed at accept.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::IpNet;

use crate::request::guards::client_group;

/// What a server's connections are capped at.
#[derive(Debug, Clone)]
pub struct Caps {
    /// Open connections at once, in all.
    pub total: usize,
    /// Open connections at once from one client.
    pub per_client: usize,
    /// IPv6 clients are grouped by this prefix length.
    pub ipv6_prefix: u8,
    /// Peers never capped per address (the proxies in front, with `--trust-proxy`).
    pub exempt: Vec<IpNet>,
}

impl Caps {
    /// No cap a test or a benchmark would reach.
    pub fn unlimited() -> Self {
        Self {
            total: usize::MAX,
            per_client: usize::MAX,
            ipv6_prefix: 64,
            exempt: Vec::new(),
        }
    }
}

/// The open connections, counted against [`Caps`].
pub(super) struct Counted {
    caps: Caps,
    open: AtomicUsize,
    /// Open connections per client. A mutex, not a concurrent map: taken at accept and close,
    /// never per request; bounded, since each entry holds at least one open connection.
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; it counts as closed when dropped.
pub(super) struct Admitted {
    counted: Arc<Counted>,
    client: Option<IpAddr>,
}

impl Counted {
    pub(super) fn new(caps: Caps) -> Arc<Self> {
        Arc::new(Self {
            caps,
            open: AtomicUsize::new(0),
            per_client: Mutex::new(HashMap::new()),
        })
    }

    /// Admits a connection from `peer`, or says which cap it is over.
    pub(super) fn admit(self: &Arc<Self>, peer: SocketAddr) -> Result<Admitted, &'static str> {
        let claimed = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.caps.total).then_some(open + 1)
            });
        if claimed.is_err() {
            return Err("the server has too many connections open");
        }
        let ip = peer.ip();
        let client = (!self.caps.exempt.iter().any(|net| net.contains(&ip)))
            .then(|| client_group(ip, self.caps.ipv6_prefix));
        let mut admitted = Admitted {
            counted: Arc::clone(self),
            client: None,
        };
        let Some(client) = client else {
            return Ok(admitted);
        };
        let mut per_client = self.lock();
        let open = per_client.entry(client).or_insert(0);
        if *open >= self.caps.per_client {
            return Err("too many connections from one address");
        }
        *open += 1;
        admitted.client = Some(client);
        Ok(admitted)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(client) = self.client {
            let mut per_client = self.counted.lock();
            if let Some(open) = per_client.get_mut(&client) {
                *open -= 1;
                if *open == 0 {
                    per_client.remove(&client);
                }
            }
        }
        self.counted.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The reply a connection over a cap gets before it is closed, written without waiting.
pub(super) fn refusal(reason: &str) -> String {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{reason}",
        reason.len()
    )
}

/// File descriptors kept for the store (sled's files, the journal) and the process itself.
const RESERVED_FDS: u64 = 64;

/// The soft limit on open files, raised to the hard limit: at start, so that the default
/// connection cap is as high as the system allows. Returns the soft limit in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            ..limit
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok(limit.rlim_cur)
}

/// The default cap on open connections: the soft limit on open files less [`RESERVED_FDS`].
pub fn default_total() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 1024,
        rlim_max: 1024,
    };
    // SAFETY: getrlimit only writes the struct passed to it.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    let usable = limit.rlim_cur.saturating_sub(RESERVED_FDS).max(1);
    usize::try_from(usable).unwrap_or(usize::MAX)
}
