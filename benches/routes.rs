//! A whole request through the route tree, as warp's test client sends it (no socket): parsing,
//! normalising, counting (or reading), the cookie, the badge and the common headers.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use clap::Parser;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hitcounter::Config;
use hitcounter::clock::{Clock, SystemClock};
use hitcounter::counting::Counter;
use hitcounter::counting::top::{Latest, Limits};
use hitcounter::endpoints::count::App;
use hitcounter::http::routes;
use hitcounter::request::cookie::AntiRefresh;
use hitcounter::store::Store;

/// The state `hitcounter::run` builds, over a store in `dir`, with the default settings.
fn app(dir: &Path) -> Arc<App> {
    let data = dir.to_string_lossy();
    let settings = match Config::try_parse_from(["hitcounter", "--data-dir", &data]) {
        Ok(config) => match config.validate() {
            Ok(settings) => settings,
            Err(err) => panic!("bad settings: {err}"),
        },
        Err(err) => panic!("bad arguments: {err}"),
    };
    let store = match Store::open(&settings.data_dir) {
        Ok(store) => store,
        Err(err) => panic!("cannot open the store: {err}"),
    };
    let secret = match store.cookie_secret() {
        Ok(secret) => secret,
        Err(err) => panic!("no cookie secret: {err}"),
    };
    let cookies = AntiRefresh::new(
        secret,
        settings.cookie_window_secs,
        settings.cookie_value_length,
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let counter = Arc::new(
        Counter::new(store, settings.cache_capacity, Arc::clone(&clock))
            .with_max_pages(settings.max_pages),
    );
    let top = Arc::new(Latest::new(Limits {
        domains: settings.ranking.domains,
        urls: settings.ranking.urls,
    }));
    // As `hitcounter::run` builds it with the defaults: the new-pages allowance and no other guard.
    Arc::new(App {
        counter,
        cookies,
        clock,
        keys: hitcounter::request::key::Memo::new(4096),
        stamps: hitcounter::render::stamp::Stamps::new(),
        top,
        dedupe: None,
        rate_limit: None,
        new_pages: Some(hitcounter::request::guards::RateLimit::new(
            settings.new_pages_per_minute,
            settings.rate_limit_capacity,
        )),
        admin_lockout: Default::default(),
        metrics: None,
        settings,
    })
}

fn requests(c: &mut Criterion) {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => panic!("no temp dir: {err}"),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => panic!("no runtime: {err}"),
    };
    let filter = routes::Routes::new(app(dir.path())).for_peer(None);
    let mut group = c.benchmark_group("routes");
    for (name, path) in [
        (
            "count",
            "/count/tag.svg?url=https%3A%2F%2Fblog.example.com%2F2026%2Fa-post%2F",
        ),
        (
            "nocount",
            "/nocount/tag.svg?url=https%3A%2F%2Fblog.example.com%2F2026%2Fa-post%2F",
        ),
    ] {
        let request = |path: &str| warp::test::request().path(path).reply(&filter);
        // What is measured is the real answer, not a 404 or an error badge.
        let response = runtime.block_on(request(path));
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "image/svg+xml",
            "{path}"
        );
        group.bench_with_input(BenchmarkId::new("tag.svg", name), path, |b, path| {
            b.iter(|| black_box(runtime.block_on(request(black_box(path)))))
        });
    }
    group.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);
