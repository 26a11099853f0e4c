//! The ceiling for `benches/load.sh`: the fastest a badge server can be on this stack.
//!
//! The same stack and runtime settings as `hitcounter` (warp 0.4 filters served by the same
//! accept loop, [`hitcounter::http::accept`], on tokio's default multi-thread runtime, and the same
//! allocator settings, [`hitcounter::memory`]), but every
//! request, whatever its method or path, gets one fixed ~200-byte SVG badge and nothing else: no routing, no key, no counting, no rendering, no
//! logging. Our throughput divided by this one's, on the same core, is how much of the stack's
//! ceiling hitcounter's own work leaves.
//!
//! ```sh
//! cargo run --release --example ceiling -- --bind 127.0.0.1:8081
//! cargo run --release --example ceiling -- --bind 127.0.0.1:8082 --floor
//! ```
//!
//! With `--floor` it is instead the floor under hitcounter's counting endpoints: it takes the
//! request apart as `routes::counting` does (path, method, query, headers, by the same warp
//! filters; the peer is in the filter, made per connection) and answers with hitcounter's headers and a badge of hitcounter's size (or the text
//! reply's), but does none of hitcounter's work. `benches/load.sh` (`FLOOR=1`) and
//! `benches/instructions.sh` measure it beside the other two, to show which part of the gap to the
//! ceiling is the filters and the reply every counting server on this stack needs, and which is
//! hitcounter's own.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use hitcounter::http::accept::serve as serve_connections;
use hitcounter::http::accept::{Caps, Options, Timeouts};
use warp::Filter;
use warp::http::HeaderMap;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

/// A fixed flat badge, "hits | 42", about 200 bytes: the size of a small real one.
const BADGE: &str = concat!(
    r#"<svg xmlns="http://www.w3.org/2000/svg" width="60" height="20" role="img" aria-label="hits: 42">"#,
    r##"<rect width="33" height="20" fill="#555"/><rect x="33" width="27" height="20" fill="#4c1"/>"##,
    "</svg>",
);

/// The ceiling server's command line.
#[derive(Parser)]
struct Args {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    bind: SocketAddr,
    /// Serve this file's bytes instead of the fixed badge: to measure what a bigger badge (ours
    /// is about 1.1 KB) costs the stack by itself.
    #[arg(long)]
    svg_file: Option<std::path::PathBuf>,
    /// Be the floor under hitcounter's counting endpoints instead (see the top of this file).
    #[arg(long, conflicts_with = "svg_file")]
    floor: bool,
}

fn main() -> ExitCode {
    hitcounter::memory::tune_allocator();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(serve()),
        Err(err) => {
            eprintln!("ceiling: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Serves the fixed badge until killed.
async fn serve() -> ExitCode {
    let args = Args::parse();
    let body: &'static [u8] = match &args.svg_file {
        None => BADGE.as_bytes(),
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => bytes.leak(),
            Err(err) => {
                eprintln!("ceiling: cannot read {}: {err}", path.display());
                return ExitCode::FAILURE;
            }
        },
    };
    let listener = match tokio::net::TcpListener::bind(args.bind).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("ceiling: cannot listen on {}: {err}", args.bind);
            return ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().unwrap_or(args.bind);
    eprintln!("ceiling listening on http://{address}");
    let badge =
        warp::any().map(move || warp::reply::with_header(body, "content-type", "image/svg+xml"));
    // Served until killed.
    let forever = std::future::pending();
    if args.floor {
        let rest = badge.map(warp::Reply::into_response);
        let replies = floor_replies();
        let service_for = |peer| warp::service(floor(&replies, peer).or(rest).unify());
        serve_connections(listener, service_for, forever, options()).await;
    } else {
        serve_connections(listener, |_| warp::service(badge), forever, options()).await;
    }
    ExitCode::SUCCESS
}

/// The floor's two replies' content types and bodies: a seven-digit badge for `*.svg` paths and a
/// number for the others. Behind an `Arc`, as hitcounter's state: hyper clones the whole filter
/// for every request.
fn floor_replies() -> Arc<[(&'static str, Bytes); 2]> {
    let message = "1234567";
    Arc::new([
        (
            "text/plain; charset=utf-8",
            Bytes::from_static(message.as_bytes()),
        ),
        (
            "image/svg+xml",
            hitcounter::render::badge::render(&Default::default(), message).into(),
        ),
    ])
}

/// Whether the floor's reply to `path` is a badge (or the text reply); `None` for a path that is
/// not one of hitcounter's counting endpoints served here.
fn floor_is_svg(path: &str) -> Option<bool> {
    match path {
        "/count" | "/nocount" => Some(false),
        "/count/tag.svg" | "/nocount/tag.svg" => Some(true),
        _ => None,
    }
}

/// `--floor`: what hitcounter's counting route takes, by the same filters in the same order, for
/// a connection from `peer`, and a reply of its shape: hitcounter's headers and a fixed body.
fn floor(
    replies: &Arc<[(&'static str, Bytes); 2]>,
    peer: SocketAddr,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    let replies = Arc::clone(replies);
    warp::path::full()
        .and(warp::method())
        .and_then(|path: warp::path::FullPath, method: Method| {
            std::future::ready(
                floor_is_svg(path.as_str())
                    .map(|is_svg| (is_svg, method))
                    .ok_or_else(warp::reject::not_found),
            )
        })
        .and(
            warp::query::raw()
                .or(warp::any().map(String::new))
                .unify()
                .and(warp::header::headers_cloned()),
        )
        .map(
            move |(is_svg, method): (bool, Method), query: String, request: HeaderMap| {
                // Everything hitcounter takes, and nothing done with it.
                std::hint::black_box((method, query, peer, request));
                // Made as hitcounter makes its replies: the body and its header template.
                let (content_type, body) = &replies[usize::from(is_svg)];
                hitcounter::http::error::reply(StatusCode::OK, content_type, body.clone())
            },
        )
}

/// hitcounter's default timeouts, so that the ceiling pays for them as hitcounter does.
fn options() -> Options {
    Options {
        timeouts: Timeouts {
            header: std::time::Duration::from_secs(10),
            idle: std::time::Duration::from_secs(60),
        },
        caps: Caps::unlimited(),
        http2: false,
    }
}
