//! The server's lifecycle: open the store, start the flusher, serve until the shutdown future
//! resolves, let in-flight requests finish, then a final flush that is awaited.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::clock::{Clock, SystemClock};
use crate::config::DedupeMode;
use crate::config::{Config, ConfigError};
use crate::counting::top::{Latest, Limits, spawn_refresher};
use crate::counting::{Counter, spawn_flusher};
use crate::endpoints::count::App;
use crate::http::accept;
use crate::http::routes;
use crate::render::stamp::Stamps;
use crate::request::cookie::AntiRefresh;
use crate::request::guards::{Dedupe, RateLimit};
use crate::store::{OpenError, Store, StoreError};
use crate::telemetry;

/// Targets whose keys are remembered (each at most 256 bytes: under 2 MiB in all).
const KEY_MEMO_CAPACITY: usize = 4096;

/// Why the server could not start, or could not stop cleanly. One sentence each.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory cannot be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The store failed at start-up or in the final flush.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The final flush failed until the shutdown timeout: answered hits are lost.
    #[error("the final flush failed, {hits} answered hits could not be saved: {cause}")]
    Unsaved {
        /// Answered hits not durable.
        hits: u64,
        /// The last failure.
        cause: StoreError,
    },
    /// The listener has no local address.
    #[error("cannot read the listening address: {0}")]
    Listener(std::io::Error),
}

/// Serves hitcounter on `listener` until `shutdown` resolves, then drains and flushes.
///
/// Returns once every counted hit is durable; an error means the server could not start, or
/// the final flush failed.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    run_with_clock(config, listener, shutdown, Arc::new(SystemClock)).await
}

/// [`run`] with the clock that decides days and cookie windows (tests move it by hand).
pub async fn run_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    clock: Arc<dyn Clock>,
) -> Result<(), RunError> {
    let settings = config.validate()?;
    let store = Store::open(&settings.data_dir)?;
    let cookies = AntiRefresh::new(
        store.cookie_secret()?,
        settings.cookie_window_secs,
        settings.cookie_value_length,
    );
    let counter = Arc::new(
        Counter::new(store, settings.cache_capacity, Arc::clone(&clock))
            .with_max_pages(settings.max_pages),
    );
    let (stop_tasks, tasks_stop) = watch::channel(false);
    let flusher = spawn_flusher(
        Arc::clone(&counter),
        settings.flush_interval,
        settings.history_days,
        settings.shutdown_timeout,
        tasks_stop,
    );

    let page_count = {
        let (counter, stop) = (Arc::clone(&counter), stop_tasks.subscribe());
        tokio::task::spawn_blocking(move || {
            if let Err(cause) = counter.count_pages(|| *stop.borrow()) {
                tracing::error!(%cause, "cannot count the stored pages: --max-pages is not applied");
            }
        })
    };

    let metrics = if settings.metrics {
        // Per-URL gauges not refreshed for three rankings (URLs that left the top) disappear.
        telemetry::install(settings.top_refresh * 3)
    } else {
        None
    };
    let top = Arc::new(Latest::new(Limits {
        domains: settings.ranking.domains,
        urls: settings.top_urls,
    }));
    let refresher = spawn_refresher(
        Arc::clone(&counter),
        settings.ranking.clone(),
        Arc::clone(&top),
        Arc::clone(&clock),
        settings.top_refresh,
        metrics.is_some().then_some(settings.metrics_top_urls),
        stop_tasks.subscribe(),
    );
    let dedupe = matches!(settings.dedupe, DedupeMode::Visitor | DedupeMode::Both)
        .then(|| Dedupe::new(settings.cookie_window_secs, settings.dedupe_capacity));
    let rate_limit = (settings.rate_limit > 0)
        .then(|| RateLimit::new(settings.rate_limit, settings.rate_limit_capacity));
    let new_pages = (settings.new_pages_per_minute > 0)
        .then(|| RateLimit::new(settings.new_pages_per_minute, settings.rate_limit_capacity));
    if (dedupe.is_some() || rate_limit.is_some()) && !settings.trust_proxy {
        tracing::warn!(
            "visitor dedupe or the rate limit is on without --trust-proxy: behind a reverse proxy \
             every visitor has the proxy's address and would be treated as one"
        );
    }

    let address = listener.local_addr().map_err(RunError::Listener)?;
    tracing::info!(
        %address,
        data_dir = %settings.data_dir.display(),
        "hitcounter listening on http://{address}"
    );
    let grace = settings.shutdown_timeout;
    let health = Arc::clone(&counter);
    let app = Arc::new(App {
        counter,
        cookies,
        clock,
        keys: crate::request::key::Memo::new(KEY_MEMO_CAPACITY),
        stamps: Stamps::new(),
        top,
        dedupe,
        rate_limit,
        new_pages,
        admin_lockout: Default::default(),
        metrics,
        settings,
    });

    let shutting_down = Arc::new(Notify::new());
    let signal = {
        let shutting_down = Arc::clone(&shutting_down);
        async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            shutting_down.notify_one();
        }
    };
    let routes = routes::Routes::new(Arc::clone(&app));
    let service_for = move |peer| routes.service_for(peer);
    let options = accept::Options {
        timeouts: accept::Timeouts {
            header: app.settings.header_timeout,
            idle: app.settings.idle_timeout,
        },
        caps: accept::Caps {
            total: (app.settings.max_connections).unwrap_or_else(accept::default_total),
            per_client: app.settings.max_connections_per_ip,
            ipv6_prefix: app.settings.ipv6_prefix,
            exempt: if app.settings.trust_proxy {
                app.settings.trusted_proxies.clone()
            } else {
                Vec::new()
            },
        },
        http2: app.settings.http2,
    };
    let serve = accept::serve(listener, service_for, signal, options);
    tokio::select! {
        () = serve => {}
        () = async { shutting_down.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time");
        }
    }

    // Connection tasks drop their handle on the state a moment after the server stops: wait for
    // them (briefly), so that when `run` returns the store is closed and its lock released.
    let released = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while Arc::strong_count(&app) > 1 && tokio::time::Instant::now() < released {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    drop(app);

    // The flusher's last act is the final flush; its result is the run's result.
    let _ = stop_tasks.send(true);
    if let Err(join) = page_count.await {
        std::panic::resume_unwind(join.into_panic());
    }
    if let Err(join) = refresher.await {
        std::panic::resume_unwind(join.into_panic());
    }
    match flusher.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(cause)) => Err(RunError::Unsaved {
            hits: health.health().not_durable(),
            cause,
        }),
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}
