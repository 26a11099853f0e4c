//! Robustness of the whole server: the real binary crashed (`kill -9`) and stopped (SIGTERM)
//! while clients hammer it, and property tests of the parsers hostile requests reach (key
//! normalisation, anti-refresh cookies).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BoxError, TestResult, encode};
use hitcounter::cookie::AntiRefresh;
use hitcounter::key::normalise;
use proptest::prelude::*;
use rand::RngExt;

const BIN: &str = env!("CARGO_BIN_EXE_hitcounter");

/// The process tests share two cores, and their timing is part of what they check (a flush
/// interval, a stop within systemd's limit): they run one at a time.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running `hitcounter` binary on 127.0.0.1:0, its address read from its start-up log line
/// (as in tests/process.rs), its stderr kept.
struct Process {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Process {
    fn start(data_dir: &Path, extra: &[&str], log_filter: &str) -> Result<Self, BoxError> {
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
                    let address = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(address.to_owned());
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
                let log = log.lock().map(|l| l.clone()).unwrap_or_default();
                Err(format!("no listening line; log: {log}").into())
            }
        }
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// SIGKILL, sent with kill(2) itself (std's `Child::kill`). Returns the instant just before
    /// it: the process cannot have died earlier.
    fn kill_9(&mut self) -> Result<Instant, BoxError> {
        let before = Instant::now();
        self.child.kill()?;
        Ok(before)
    }

    /// SIGTERM, as systemd sends on stop.
    fn terminate(&self) -> TestResult {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        assert!(status.success(), "kill -TERM failed");
        Ok(())
    }

    /// Waits for the process to end (asynchronously: the clients keep running meanwhile).
    async fn wait(&mut self, limit: Duration) -> Result<ExitStatus, BoxError> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                return Err(format!("still running after {limit:?}; log: {}", self.log()).into());
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

/// The last `n` lines of a log.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Fails with the first panics of a server log, if it has any.
fn assert_no_panic(log: &str, what: &str) {
    let lines: Vec<&str> = log.lines().collect();
    let panics: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.contains("panicked"))
        .take(5)
        .map(|(i, line)| format!("{line}\n{}", lines.get(i + 1).unwrap_or(&"")))
        .collect();
    assert!(
        panics.is_empty(),
        "{what}: the server panicked:\n{}",
        panics.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Crash and shutdown under load.

/// The pages the load counts.
const KEYS: [&str; 4] = [
    "robust.example/a",
    "robust.example/b",
    "robust.example/c",
    "robust.example/d",
];
/// Concurrent clients.
const CLIENTS: usize = 8;
/// Rounds of each of kill -9 and SIGTERM.
const ROUNDS: usize = 5;
/// The server's `--flush-interval-ms`.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// What a crash may lose beyond one flush interval: the flush's own write and fsync, and the
/// flusher's tick arriving late on a busy machine.
const SCHEDULING_MARGIN: Duration = Duration::from_millis(50);
/// systemd's `TimeoutStopSec` in hitcounter.service: SIGTERM must end the process within it.
const STOP_LIMIT: Duration = Duration::from_secs(30);
/// Bounds on each client's loop (it normally ends at the signal, well before either).
const MAX_REQUESTS_PER_CLIENT: usize = 100_000;
const LOAD_LIMIT: Duration = Duration::from_secs(10);

fn server_args() -> Vec<String> {
    vec![
        "--flush-interval-ms".into(),
        FLUSH_INTERVAL.as_millis().to_string(),
        "--cookie-window-secs".into(),
        "0".into(),
    ]
}

/// Info logs plus the flusher's per-flush line with its duration (for the failure messages).
const LOAD_LOG: &str = "info,hitcounter::counter=debug";

/// One acknowledged hit: a 200 whose body is the key's new total.
struct Ack {
    key: usize,
    /// When the client had the whole answer: after the server counted the hit.
    at: Instant,
    total: u64,
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    /// Per key, requests whose send started (acknowledged, in flight at the signal, or failed).
    sent: [u64; KEYS.len()],
    acks: Vec<Ack>,
    /// What cannot be blamed on the signal: a wrong answer, or a failure before the signal.
    faults: Vec<String>,
}

/// Clients counting hits on [`KEYS`] until the server goes away.
struct Load {
    signalled: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Load {
    fn start(base: &str) -> Result<Self, BoxError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let signalled = Arc::new(AtomicBool::new(false));
        let clients = (0..CLIENTS)
            .map(|worker| {
                tokio::spawn(hammer(
                    http.clone(),
                    base.to_owned(),
                    Arc::clone(&signalled),
                    worker,
                ))
            })
            .collect();
        Ok(Self { signalled, clients })
    }

    /// Called just before the signal: from now on a failed request is expected.
    fn signal_coming(&self) {
        self.signalled.store(true, Ordering::SeqCst);
    }

    async fn finish(self) -> Result<Tally, BoxError> {
        let mut all = Tally::default();
        for client in self.clients {
            let tally = tokio::time::timeout(LOAD_LIMIT, client).await??;
            for (sum, sent) in all.sent.iter_mut().zip(tally.sent) {
                *sum += sent;
            }
            all.acks.extend(tally.acks);
            all.faults.extend(tally.faults);
        }
        Ok(all)
    }
}

/// One client: `/count` on the keys in turn until a request fails (the server is gone).
async fn hammer(
    http: reqwest::Client,
    base: String,
    signalled: Arc<AtomicBool>,
    worker: usize,
) -> Tally {
    let mut tally = Tally::default();
    let started = Instant::now();
    for i in 0..MAX_REQUESTS_PER_CLIENT {
        if started.elapsed() > LOAD_LIMIT {
            tally
                .faults
                .push(format!("still answering after {LOAD_LIMIT:?}"));
            break;
        }
        let key = (worker + i) % KEYS.len();
        tally.sent[key] += 1;
        let url = format!("{base}/count?url={}", encode(KEYS[key]));
        let response = match http.get(&url).send().await {
            Ok(response) => response,
            Err(err) => {
                if !signalled.load(Ordering::SeqCst) {
                    tally.faults.push(format!("before the signal: {err}"));
                }
                break;
            }
        };
        let status = response.status();
        let body = match response.text().await {
            Ok(body) => body,
            Err(err) => {
                if !signalled.load(Ordering::SeqCst) {
                    tally.faults.push(format!("reading the answer: {err}"));
                }
                break;
            }
        };
        match (status.as_u16(), body.parse::<u64>()) {
            (200, Ok(total)) => tally.acks.push(Ack {
                key,
                at: Instant::now(),
                total,
            }),
            _ => {
                tally.faults.push(format!("{url}: {status} {body:?}"));
                break;
            }
        }
    }
    tally
}

/// The total of every key as `/nocount` reports it.
async fn counts(base: &str) -> Result<[u64; KEYS.len()], BoxError> {
    let http = reqwest::Client::new();
    let mut counts = [0; KEYS.len()];
    for (count, key) in counts.iter_mut().zip(KEYS) {
        let response = http
            .get(format!("{base}/nocount?url={}", encode(key)))
            .send()
            .await?;
        assert_eq!(response.status(), 200, "/nocount of {key}");
        *count = response.text().await?.parse()?;
    }
    Ok(counts)
}

/// The longest flush the server logged, in ms (its debug line `flushed … took_ms=N`).
fn longest_flush_ms(log: &str) -> u64 {
    log.lines()
        .filter_map(|line| line.split("took_ms=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// Checks what the clients were told against each other: per key, every acknowledged total is
/// distinct (no two hits got the same count) and lies in (before, before + sent].
fn check_answers(what: &str, tally: &Tally, before: &[u64; KEYS.len()]) {
    assert!(tally.faults.is_empty(), "{what}: {:?}", tally.faults);
    for (key, name) in KEYS.iter().enumerate() {
        let mut totals: Vec<u64> = tally
            .acks
            .iter()
            .filter(|ack| ack.key == key)
            .map(|ack| ack.total)
            .collect();
        totals.sort_unstable();
        let len = totals.len();
        totals.dedup();
        assert_eq!(totals.len(), len, "{what}: {name}: two hits got one total");
        let (low, high) = (before[key], before[key] + tally.sent[key]);
        assert!(
            totals.iter().all(|&t| t > low && t <= high),
            "{what}: {name}: a total outside ({low}, {high}]: {totals:?}"
        );
    }
}

/// kill -9 at a random moment of a load of concurrent hits, then a restart on the same data dir.
///
/// The bound. The flusher snapshots the cache every `FLUSH_INTERVAL` (I) and writes and fsyncs
/// what it saw, taking some time d. A hit counted at h is in the next snapshot (at most I after
/// h) and durable when that flush ends: by h + I + d. Its client saw the answer at a ≥ h. So
/// every hit acknowledged at a ≤ K − (I + margin), where K is the instant just before SIGKILL,
/// is durable if d plus the flusher's lateness stays under the margin (50 ms): the count after
/// the restart must be at least the acknowledged hits minus those acknowledged in the last
/// 150 ms before the kill. It can be at most the hits sent (acknowledged or not: a hit in flight
/// at the kill may have been counted and flushed). The test fails if a flush interval is not
/// honoured, a flush is skipped or does not reach the disk's files (sled's buffers die with the
/// process), a total is written wrong, or the store does not reopen after a crash. It cannot see
/// a missing fsync (the OS keeps written pages across a process kill); only a power cut would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_at_most_the_last_flush_interval() -> TestResult {
    let _heavy = HEAVY.lock().await;
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let args = server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let forgiven = FLUSH_INTERVAL + SCHEDULING_MARGIN;
    let mut server = Process::start(dir.path(), &args, LOAD_LOG)?;
    let mut before = [0; KEYS.len()];
    for round in 1..=ROUNDS {
        let load = Load::start(&server.base)?;
        let delay = rand::rng().random_range(200..=800);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        load.signal_coming();
        let killed_at = server.kill_9()?;
        let tally = load.finish().await?;
        let status = server.wait(Duration::from_secs(5)).await?;
        assert!(!status.success(), "round {round}: {status}");
        let log = server.log();
        assert_no_panic(&log, "before the kill");

        // The store always reopens after a crash.
        server = Process::start(dir.path(), &args, LOAD_LOG)?;
        let after = counts(&server.base).await?;
        let what = format!("round {round} (kill -9 after {delay} ms)");
        check_answers(&what, &tally, &before);
        let cutoff = killed_at.checked_sub(forgiven).ok_or("clock too young")?;
        let mut required_total = 0;
        for (key, name) in KEYS.iter().enumerate() {
            let acked = tally.acks.iter().filter(|a| a.key == key).count() as u64;
            let late = tally
                .acks
                .iter()
                .filter(|a| a.key == key && a.at > cutoff)
                .count() as u64;
            let (low, high) = (before[key] + acked - late, before[key] + tally.sent[key]);
            required_total += acked - late;
            assert!(
                (low..=high).contains(&after[key]),
                "{what}: {name} has {} after the restart, outside [{low}, {high}]: {acked} \
                 acknowledged ({late} in the last {forgiven:?}), {} sent, {} before; longest \
                 flush {} ms; the log's end before the kill:\n{}",
                after[key],
                tally.sent[key],
                before[key],
                longest_flush_ms(&log),
                tail(&log, 20),
            );
        }
        eprintln!(
            "{what}: {} acknowledged, {required_total} required to survive, {} sent; after \
             {after:?}; longest flush {} ms",
            tally.acks.len(),
            tally.sent.iter().sum::<u64>(),
            longest_flush_ms(&log),
        );
        assert!(
            required_total > 0,
            "{what}: no hit was acknowledged before the last {forgiven:?}: the round proves nothing"
        );
        before = after;
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

/// SIGTERM at a random moment of a load of concurrent hits: the process finishes what is in
/// flight, flushes and exits 0 within systemd's stop limit, and after a restart every
/// acknowledged hit is there (and no more than were sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_keeps_every_acknowledged_hit() -> TestResult {
    let _heavy = HEAVY.lock().await;
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let args = server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Process::start(dir.path(), &args, LOAD_LOG)?;
    let mut before = [0; KEYS.len()];
    for round in 1..=ROUNDS {
        let load = Load::start(&server.base)?;
        let delay = rand::rng().random_range(200..=800);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        load.signal_coming();
        let signalled_at = Instant::now();
        server.terminate()?;
        let status = server.wait(STOP_LIMIT).await?;
        let stop_took = signalled_at.elapsed();
        let tally = load.finish().await?;
        let log = server.log();
        let what = format!("round {round} (SIGTERM after {delay} ms)");
        assert!(
            status.success(),
            "{what}: exit status {status}; log:\n{log}"
        );
        assert!(
            stop_took < STOP_LIMIT,
            "{what}: stopping took {stop_took:?}"
        );
        assert!(log.contains("final flush done"), "{what}: {log}");
        assert_no_panic(&log, &what);

        server = Process::start(dir.path(), &args, LOAD_LOG)?;
        let after = counts(&server.base).await?;
        check_answers(&what, &tally, &before);
        for (key, name) in KEYS.iter().enumerate() {
            let acked = tally.acks.iter().filter(|a| a.key == key).count() as u64;
            let (low, high) = (before[key] + acked, before[key] + tally.sent[key]);
            assert!(
                (low..=high).contains(&after[key]),
                "{what}: {name} has {} after the restart, outside [{low}, {high}]; the log's \
                 end:\n{}",
                after[key],
                tail(&log, 20),
            );
        }
        eprintln!(
            "{what}: {} acknowledged, {} sent, stopped in {stop_took:?}; after {after:?}",
            tally.acks.len(),
            tally.sent.iter().sum::<u64>(),
        );
        assert!(
            after.iter().sum::<u64>() > before.iter().sum::<u64>(),
            "{what}: no hit"
        );
        before = after;
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bad input: property tests of the parsers.

/// Targets: anything at all, and things shaped like URLs (a scheme or not, a host of letters,
/// digits, dots, brackets, colons, at signs, percent signs and non-ASCII, a port, a path, a
/// query, a fragment), so that most cases get past the first checks into the URL parser.
fn targets() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,80}",
        concat!(
            "((https?|HTTP|ftp|a+b)://|//)?",
            "[a-zA-Z0-9.\\-\\[\\]:@%_~ßÄöİı\u{ff21}-\u{ff3a}\u{3002}\u{200d}\u{0301}\u{05d0}]{0,24}",
            "(:[0-9]{0,6})?",
            "(/[a-zA-Z0-9.%/\\\\ ?#&=+ü\u{3000}]{0,30}){0,3}",
            "[?#]?\\PC{0,8}",
        ),
    ]
}

/// Limits: the default, and small ones where the bound is reached often.
fn limits() -> impl Strategy<Value = usize> {
    prop_oneof![Just(2048_usize), 16_usize..120]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// `normalise` never panics; a key it gives is within the limit, and normalising the key
    /// again gives the same key (so a key is a fixed point: two spellings cannot drift apart).
    #[test]
    fn key_normalisation_is_total_bounded_and_idempotent(target in targets(), max in limits()) {
        if let Ok(key) = normalise(&target, max) {
            prop_assert!(key.len() <= max, "{key:?} is longer than {max}");
            prop_assert_eq!(normalise(&key, max), Ok(key.clone()), "from {:?}", target);
        }
    }
}

/// Cookie headers: arbitrary bytes, and headers made of pairs named for the key (or close to
/// it) whose values are shaped like ours (`random.issued.mac`) with arbitrary parts.
fn cookie_headers(key: String) -> impl Strategy<Value = Vec<u8>> {
    let name = AntiRefresh::name(&key);
    let pair = (
        prop_oneof![Just(name.clone()), Just(format!(" {name}")), "[ -~]{0,20}"],
        "[0-9A-Za-z]{0,16}",
        prop_oneof!["[0-9]{0,22}", "\\PC{0,6}"],
        prop_oneof!["[0-9a-f]{32}", "[0-9a-fA-F]{0,40}", "\\PC{0,8}"],
        prop::collection::vec(any::<u8>(), 0..4),
    )
        .prop_map(|(name, random, issued, mac, junk)| {
            let mut pair = format!("{name}={random}.{issued}.{mac}").into_bytes();
            pair.extend(junk);
            pair
        });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        prop::collection::vec(pair, 0..4).prop_map(|pairs| pairs.join(&b';')),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// `is_fresh` never panics whatever the header, key, clock and window; and a forged or
    /// mangled value is never fresh (only `issue` makes fresh cookies).
    #[test]
    fn cookie_parsing_is_total_and_unforgeable(
        (key, header) in "\\PC{0,40}".prop_flat_map(|key| (Just(key.clone()), cookie_headers(key))),
        now in prop_oneof![any::<u64>(), 0_u64..10_000],
        window in prop_oneof![Just(0_u64), 1_u64..100, Just(u64::MAX)],
        secret in any::<[u8; 32]>(),
    ) {
        let jar = AntiRefresh::new(secret, window, 12);
        prop_assert!(!jar.is_fresh(&key, &header, now), "{:?}", String::from_utf8_lossy(&header));
    }

    /// A cookie `issue` made is found among any other bytes, and is fresh for its window only.
    #[test]
    fn an_issued_cookie_is_found_among_any_others(
        key in "\\PC{0,40}",
        others in prop::collection::vec(any::<u8>(), 0..100),
        more in prop::collection::vec(any::<u8>(), 0..100),
        issued in 0_u64..1 << 50,
        age in 0_u64..120_000,
    ) {
        let jar = AntiRefresh::new([7; 32], 60, 12);
        let set = jar.issue(&key, issued, false, &mut rand::rng());
        let pair = set.split(';').next().unwrap_or_default();
        let header = [&others[..], b"; ", pair.as_bytes(), b";", &more[..]].concat();
        prop_assert_eq!(jar.is_fresh(&key, &header, issued + age), age < 60_000);
    }
}
