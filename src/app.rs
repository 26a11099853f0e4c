//! The server's lifecycle: open the store, start the flusher, serve until the shutdown future
//! resolves, let in-flight requests finish, then a final flush that is awaited.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError, DedupeMode, Settings};
use crate::counting::top::{Latest, Limits, spawn_refresher};
use crate::counting::{Counter, FlushReport, spawn_flusher};
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
    let (counter, cookies) = open_counter(&settings, &clock)?;
    // Per-URL gauges not refreshed for three rankings (URLs that left the top) disappear.
    let metrics = settings
        .metrics
        .then(|| telemetry::install(settings.top_refresh * 3))
        .flatten();
    let top = Arc::new(Latest::new(Limits {
        domains: settings.ranking.domains,
        urls: settings.top_urls,
    }));
    let tasks = Tasks::start(&counter, &settings, &clock, &top, metrics.is_some());
    let address = listener.local_addr().map_err(RunError::Listener)?;
    let app = Arc::new(App {
        counter: Arc::clone(&counter),
        cookies,
        clock,
        keys: crate::request::key::Memo::new(KEY_MEMO_CAPACITY),
        stamps: Stamps::new(),
        top,
        dedupe: dedupe(&settings),
        rate_limit: rate_limit(&settings),
        new_pages: new_pages(&settings),
        admin_lockout: Default::default(),
        metrics,
        settings,
    });
    warn_of_guards_without_proxy(&app);
    serve(listener, address, &app, shutdown).await;
    release(app).await;
    tasks.finish(&counter).await
}

/// The store's counter (with its front cache and page limit) and the anti-refresh cookies
/// signed with the store's secret.
fn open_counter(
    settings: &Settings,
    clock: &Arc<dyn Clock>,
) -> Result<(Arc<Counter>, AntiRefresh), RunError> {
    let store = Store::open(&settings.data_dir)?;
    let cookies = AntiRefresh::new(
        store.cookie_secret()?,
        settings.cookie_window_secs,
        settings.cookie_value_length,
    );
    let counter = Counter::new(store, settings.cache_capacity, Arc::clone(clock))
        .with_max_pages(settings.max_pages);
    Ok((Arc::new(counter), cookies))
}

/// Cookieless dedupe, when `--dedupe` is `visitor` or `both`.
fn dedupe(settings: &Settings) -> Option<Dedupe> {
    matches!(settings.dedupe, DedupeMode::Visitor | DedupeMode::Both)
        .then(|| Dedupe::new(settings.cookie_window_secs, settings.dedupe_capacity))
}

/// The per-client rate limit of counted hits, when `--rate-limit` is above 0.
fn rate_limit(settings: &Settings) -> Option<RateLimit> {
    (settings.rate_limit > 0)
        .then(|| RateLimit::new(settings.rate_limit, settings.rate_limit_capacity))
}

/// The per-client allowance of new pages, when `--new-pages-per-minute` is above 0.
fn new_pages(settings: &Settings) -> Option<RateLimit> {
    (settings.new_pages_per_minute > 0)
        .then(|| RateLimit::new(settings.new_pages_per_minute, settings.rate_limit_capacity))
}

/// Warns when per-client guards are on but every client may look like the reverse proxy.
fn warn_of_guards_without_proxy(app: &App) {
    if (app.dedupe.is_some() || app.rate_limit.is_some()) && !app.settings.trust_proxy {
        tracing::warn!(
            "visitor dedupe or the rate limit is on without --trust-proxy: behind a reverse proxy \
             every visitor has the proxy's address and would be treated as one"
        );
    }
}

/// The background tasks: one stop signal, each awaited at the end.
struct Tasks {
    stop: watch::Sender<bool>,
    flusher: JoinHandle<Result<FlushReport, StoreError>>,
    page_count: JoinHandle<()>,
    refresher: JoinHandle<()>,
}

impl Tasks {
    /// Starts the flusher, the count of the stored pages (for `--max-pages`) and the refresher
    /// of `top` (and of the per-URL metrics, with `metrics`).
    fn start(
        counter: &Arc<Counter>,
        settings: &Settings,
        clock: &Arc<dyn Clock>,
        top: &Arc<Latest>,
        metrics: bool,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let flusher = spawn_flusher(
            Arc::clone(counter),
            settings.flush_interval,
            settings.history_days,
            settings.shutdown_timeout,
            stopped,
        );
        let page_count = {
            let (counter, stop) = (Arc::clone(counter), stop.subscribe());
            tokio::task::spawn_blocking(move || {
                if let Err(cause) = counter.count_pages(|| *stop.borrow()) {
                    tracing::error!(%cause, "cannot count the stored pages: --max-pages is not applied");
                }
            })
        };
        let refresher = spawn_refresher(
            Arc::clone(counter),
            settings.ranking.clone(),
            Arc::clone(top),
            Arc::clone(clock),
            settings.top_refresh,
            metrics.then_some(settings.metrics_top_urls),
            stop.subscribe(),
        );
        Self {
            stop,
            flusher,
            page_count,
            refresher,
        }
    }

    /// Stops every task and waits for it; the flusher's last act is the final flush, whose
    /// result is the run's. A task's panic goes on up.
    async fn finish(self, counter: &Counter) -> Result<(), RunError> {
        let _ = self.stop.send(true);
        if let Err(join) = self.page_count.await {
            std::panic::resume_unwind(join.into_panic());
        }
        if let Err(join) = self.refresher.await {
            std::panic::resume_unwind(join.into_panic());
        }
        match self.flusher.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(cause)) => Err(RunError::Unsaved {
                hits: counter.health().not_durable(),
                cause,
            }),
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves and the in-flight requests finish, or
/// the shutdown timeout after it runs out.
async fn serve(
    listener: TcpListener,
    address: SocketAddr,
    app: &Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    tracing::info!(
        %address,
        data_dir = %app.settings.data_dir.display(),
        "hitcounter listening on http://{address}"
    );
    let grace = app.settings.shutdown_timeout;
    let shutting_down = Arc::new(Notify::new());
    let signal = {
        let shutting_down = Arc::clone(&shutting_down);
        async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            shutting_down.notify_one();
        }
    };
    let routes = routes::Routes::new(Arc::clone(app));
    let service_for = move |peer| routes.service_for(peer);
    let serve = accept::serve(listener, service_for, signal, accept_options(&app.settings));
    tokio::select! {
        () = serve => {}
        () = async { shutting_down.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time");
        }
    }
}

/// The accept loop's timeouts, connection caps (trusted proxies exempt) and HTTP/2 switch.
fn accept_options(settings: &Settings) -> accept::Options {
    accept::Options {
        timeouts: accept::Timeouts {
            header: settings.header_timeout,
            idle: settings.idle_timeout,
        },
        caps: accept::Caps {
            total: (settings.max_connections).unwrap_or_else(accept::default_total),
            per_client: settings.max_connections_per_ip,
            ipv6_prefix: settings.ipv6_prefix,
            exempt: if settings.trust_proxy {
                settings.trusted_proxies.clone()
            } else {
                Vec::new()
            },
        },
        http2: settings.http2,
    }
}

/// Drops the state once the connection tasks dropped their handles on it (they do a moment
/// after the server stops; waited for briefly), so that when `run` returns the store is closed
/// and its lock released.
async fn release(app: Arc<App>) {
    let released = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while Arc::strong_count(&app) > 1 && tokio::time::Instant::now() < released {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
