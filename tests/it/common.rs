//! What the integration tests share: a real server started through the library on 127.0.0.1:0,
//! the real binary as a child process, and a real HTTP client to talk to them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use clap::Parser;
use hitcounter::clock::{Clock, SystemClock};
use hitcounter::{Config, RunError};
use reqwest::{Method, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Any error, for tests that use `?`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The result of a test.
pub type TestResult = Result<(), BoxError>;

/// A server started through `hitcounter::run` on 127.0.0.1:0.
pub struct TestServer {
    pub base: String,
    pub data_dir: PathBuf,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), RunError>>,
    http: Http,
    client: reqwest::Client,
}

/// The HTTP version a [`TestServer`]'s client speaks: HTTP/1.1, or HTTP/2 without TLS (h2c, the
/// server then started with `--http2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Http {
    One,
    Two,
}

impl TestServer {
    pub async fn start(data_dir: &Path, extra: &[&str]) -> Result<Self, BoxError> {
        Self::launch(Http::One, data_dir, extra, Arc::new(SystemClock)).await
    }

    /// Starts a server whose client speaks `http`.
    pub async fn start_over(http: Http, data_dir: &Path, extra: &[&str]) -> Result<Self, BoxError> {
        Self::launch(http, data_dir, extra, Arc::new(SystemClock)).await
    }

    /// Starts a server whose days and cookie windows follow `clock`.
    pub async fn start_with_clock(
        data_dir: &Path,
        extra: &[&str],
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BoxError> {
        Self::launch(Http::One, data_dir, extra, clock).await
    }

    async fn launch(
        http: Http,
        data_dir: &Path,
        extra: &[&str],
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BoxError> {
        let data = data_dir.to_string_lossy().into_owned();
        let mut args = vec![
            "hitcounter",
            "--data-dir",
            &data,
            "--flush-interval-ms",
            "50",
        ];
        args.extend_from_slice(extra);
        let client = match http {
            Http::One => reqwest::Client::builder().http1_only().build()?,
            Http::Two => {
                args.push("--http2");
                reqwest::Client::builder().http2_prior_knowledge().build()?
            }
        };
        let config = Config::try_parse_from(args)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(hitcounter::run_with_clock(
            config, listener, shutdown, clock,
        ));
        Ok(Self {
            base,
            data_dir: data_dir.to_path_buf(),
            stop,
            task,
            http,
            client,
        })
    }

    /// The client of this server, speaking its HTTP version.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Stops the server through its shutdown future and waits for the final flush.
    pub async fn stop(self) -> TestResult {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task).await???;
        Ok(())
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Result<reqwest::Response> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await?;
        let version = match self.http {
            Http::One => reqwest::Version::HTTP_11,
            Http::Two => reqwest::Version::HTTP_2,
        };
        assert_eq!(response.version(), version, "{path}");
        Ok(response)
    }

    pub async fn get(&self, path: &str) -> reqwest::Result<reqwest::Response> {
        self.request(Method::GET, path, &[]).await
    }

    /// The body of a GET as text, asserting a 200.
    pub async fn text(&self, path: &str) -> Result<String, BoxError> {
        let response = self.get(path).await?;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        Ok(response.text().await?)
    }

    /// The count of `url` as `/nocount` reports it.
    pub async fn count_of(&self, url: &str) -> Result<u64, BoxError> {
        Ok(self
            .text(&format!("/nocount?url={}", encode(url)))
            .await?
            .parse()?)
    }
}

/// A response header as text ("" when absent or not text).
pub fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `text` percent-encoded for a query string.
pub fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_hitcounter");

/// A running `hitcounter` process on 127.0.0.1:0, its address read from its start-up log line.
pub struct Process {
    pub child: Child,
    pub base: String,
    log: Arc<Mutex<String>>,
}

impl Process {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Result<Self, BoxError> {
        Self::start_logging(data_dir, extra, "info")
    }

    /// [`Process::start`] with `RUST_LOG` set to `log_filter`.
    pub fn start_logging(
        data_dir: &Path,
        extra: &[&str],
        log_filter: &str,
    ) -> Result<Self, BoxError> {
        let mut child = Command::new(BIN)
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        // Drain stderr for the process's whole life so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let address = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(address);
                }
                if let Ok(mut log) = sink.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(address) => Ok(Self {
                child,
                base: format!("http://{address}"),
                log,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "no listening line; log: {}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                )
                .into())
            }
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The count of `url` as `/nocount` reports it.
    pub async fn count_of(&self, url: &str) -> Result<u64, BoxError> {
        let url = format!("{}/nocount?url={}", self.base, encode(url));
        Ok(reqwest::get(url).await?.text().await?.trim().parse()?)
    }

    pub fn signal(&self, signal: &str) -> TestResult {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()?;
        assert!(status.success(), "kill {signal}");
        Ok(())
    }

    pub fn wait(
        &mut self,
        limit: Duration,
    ) -> Result<ExitStatus, Box<dyn std::error::Error + Send + Sync>> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited(started, limit)? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Process {
    /// The exit status if the process has ended; an error (and a kill) once `limit` has passed
    /// since `started`.
    fn exited(
        &mut self,
        started: Instant,
        limit: Duration,
    ) -> Result<Option<ExitStatus>, BoxError> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(Some(status));
        }
        if started.elapsed() > limit {
            let _ = self.child.kill();
            return Err(format!("still running after {limit:?}; log: {}", self.log()).into());
        }
        Ok(None)
    }

    /// SIGKILL, sent with kill(2) itself (std's `Child::kill`). Returns the instant just before
    /// it: the process cannot have died earlier.
    pub fn kill_9(&mut self) -> Result<Instant, BoxError> {
        let before = Instant::now();
        self.child.kill()?;
        Ok(before)
    }

    /// SIGTERM, as systemd sends on stop.
    pub fn terminate(&self) -> TestResult {
        self.signal("-TERM")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to end without blocking the runtime (clients keep running).
    pub async fn wait_async(&mut self, limit: Duration) -> Result<ExitStatus, BoxError> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited(started, limit)? {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
