//! The ceiling for `benches/load.sh`: the fastest a badge server can be on this stack.
//!
//! The same stack and runtime settings as `hitcounter` (warp 0.4 on tokio's default
//! multi-thread runtime, and the same allocator settings, [`hitcounter::memory`]), but every
//! request, whatever its method or path, gets one fixed ~200-byte SVG badge and nothing else: no routing, no key, no counting, no rendering, no
//! logging. Our throughput divided by this one's, on the same core, is how much of the stack's
//! ceiling hitcounter's own work leaves.
//!
//! ```sh
//! cargo run --release --example ceiling -- --bind 127.0.0.1:8081
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use warp::Filter;

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
    warp::serve(badge).incoming(listener).run().await;
    ExitCode::SUCCESS
}
