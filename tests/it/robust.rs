//! Robustness of the whole server: the real binary crashed (`kill -9`) and stopped (SIGTERM)
//! while clients hammer it, a sweep of hostile requests against it, and property tests of the
//! parsers those requests reach (key normalisation, anti-refresh cookies).

mod clients;
mod connections;
mod disk;
mod pages;
mod storage;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::HEAVY;
use crate::common::{BoxError, Process, TestResult, encode};
use hitcounter::request::cookie::AntiRefresh;
use hitcounter::request::key::normalise;
use proptest::prelude::*;
use rand::RngExt;

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
const LOAD_LOG: &str = "info,hitcounter::counting=debug";

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
    let mut server = Process::start_logging(dir.path(), &args, LOAD_LOG)?;
    let mut before = [0; KEYS.len()];
    for round in 1..=ROUNDS {
        let load = Load::start(&server.base)?;
        let delay = rand::rng().random_range(200..=800);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        load.signal_coming();
        let killed_at = server.kill_9()?;
        let tally = load.finish().await?;
        let status = server.wait_async(Duration::from_secs(5)).await?;
        assert!(!status.success(), "round {round}: {status}");
        let log = server.log();
        assert_no_panic(&log, "before the kill");

        // The store always reopens after a crash.
        server = Process::start_logging(dir.path(), &args, LOAD_LOG)?;
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
    let mut server = Process::start_logging(dir.path(), &args, LOAD_LOG)?;
    let mut before = [0; KEYS.len()];
    for round in 1..=ROUNDS {
        let load = Load::start(&server.base)?;
        let delay = rand::rng().random_range(200..=800);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        load.signal_coming();
        let signalled_at = Instant::now();
        server.terminate()?;
        let status = server.wait_async(STOP_LIMIT).await?;
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

        server = Process::start_logging(dir.path(), &args, LOAD_LOG)?;
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

// ---------------------------------------------------------------------------------------------
// Bad input: a sweep of hostile requests against the real binary.

/// Requests in the sweep.
const SWEEP_REQUESTS: usize = 10_000;
/// Concurrent senders.
const SWEEP_TASKS: usize = 16;
/// The whole sweep must end within this.
const SWEEP_LIMIT: Duration = Duration::from_secs(90);
/// Every route that reads `url`, a Referer and the badge parameters.
const ROUTES: [&str; 10] = [
    "/count",
    "/nocount",
    "/count/tag.svg",
    "/nocount/tag.svg",
    "/count.json",
    "/nocount.json",
    "/count/shields.json",
    "/nocount/shields.json",
    "/nocount/history.json",
    "/nocount/history.svg",
];
/// The badge and history parameters.
const PARAMS: [&str; 7] = [
    "style",
    "label",
    "color",
    "labelColor",
    "format",
    "show",
    "days",
];
/// Percent-encodings that are not one: truncated, not hex, or not UTF-8 once decoded
/// (a lone continuation byte, overlong forms, a surrogate, bytes that never occur in UTF-8).
const BAD_PERCENT: [&str; 16] = [
    "%",
    "%%",
    "%G0",
    "%0",
    "%2",
    "%zz",
    "%C3",
    "%C3%28",
    "%E2%82",
    "%ED%A0%80",
    "%C0%AF",
    "%E0%80%AF",
    "%F8%88%80%80%80",
    "%FF%FE",
    "%80",
    "%00",
];
/// The page the sweep counts before it starts and checks afterwards.
const KNOWN: &str = "known.robust.example/before-the-sweep";

type Rng = rand::rngs::ThreadRng;

/// A request of the sweep.
enum Probe {
    /// Sent with reqwest: a path and query (reqwest percent-encodes what a URL cannot hold) and
    /// headers of any bytes a header may hold. `long` when it is meant to exceed a limit.
    Client {
        method: reqwest::Method,
        target: String,
        headers: Vec<(&'static str, Vec<u8>)>,
        long: bool,
    },
    /// Written as is to a TCP connection: raw bytes no client library would send.
    Raw(Vec<u8>),
}

impl Probe {
    /// What to print of it when it fails.
    fn describe(&self) -> String {
        let cut = |text: String| text.chars().take(300).collect::<String>();
        match self {
            Probe::Client {
                method,
                target,
                headers,
                ..
            } => {
                let headers: Vec<String> = headers
                    .iter()
                    .map(|(name, value)| format!("{name}: {}", value.escape_ascii()))
                    .collect();
                cut(format!("{method} {target} {headers:?}"))
            }
            Probe::Raw(bytes) => cut(format!("raw {}", bytes.escape_ascii())),
        }
    }
}

fn random_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    let len = rng.random_range(0..=max);
    (0..len).map(|_| rng.random::<u8>()).collect()
}

/// Random text: ASCII, Latin-1, other scripts, emoji, combining marks and controls.
fn random_text(rng: &mut Rng, max: usize) -> String {
    let len = rng.random_range(0..=max);
    (0..len)
        .map(|_| match rng.random_range(0..6) {
            0 | 1 => char::from(rng.random_range(0x20_u8..0x7f)),
            2 => char::from(rng.random_range(0x00_u8..0x20)),
            3 => char::from_u32(rng.random_range(0x80..0x800)).unwrap_or('?'),
            4 => char::from_u32(rng.random_range(0x3000..0xa000)).unwrap_or('?'),
            _ => char::from_u32(rng.random_range(0x1f300..0x1f700)).unwrap_or('?'),
        })
        .collect()
}

/// A query value: percent-encoded random bytes (mostly not UTF-8), bad percent-encodings,
/// percent-encoded random text, raw text (reqwest encodes what it must), or odd numbers.
fn random_value(rng: &mut Rng) -> String {
    match rng.random_range(0..5) {
        0 => encode_bytes(&random_bytes(rng, 40)),
        1 => {
            let bad = BAD_PERCENT[rng.random_range(0..BAD_PERCENT.len())];
            format!(
                "{}{bad}{}",
                encode(&random_text(rng, 8)),
                random_text(rng, 4)
            )
        }
        2 => encode(&random_text(rng, 40)),
        3 => random_text(rng, 20).replace(['&', '#'], ""),
        _ => [
            "-1",
            "0",
            "1",
            "401",
            "4294967296",
            "99999999999999999999",
            "1e3",
            " 7",
        ][rng.random_range(0..8)]
        .to_owned(),
    }
}

/// A value of `param` that passes validation, so that another parameter's junk is what the
/// request tests.
fn good_value(param: &str, rng: &mut Rng) -> &'static str {
    let values: &[&'static str] = match param {
        "style" => &["flat", "flat-square", "plastic", "for-the-badge"],
        "label" => &["views", "", "page views"],
        "color" | "labelColor" => &["blue", "abc", "ff69b4", "lightgrey"],
        "format" => &["plain", "comma", "short"],
        "show" => &["total", "today", "both"],
        _ => &["1", "7", "400"],
    };
    values[rng.random_range(0..values.len())]
}

fn encode_bytes(bytes: &[u8]) -> String {
    url::form_urlencoded::byte_serialize(bytes).collect()
}

/// A target: one that works, random bytes or text, or a URL with a random host or path.
fn random_target(rng: &mut Rng) -> String {
    match rng.random_range(0..5) {
        0 => "sweep.robust.example/page".to_owned(),
        1 => random_value(rng),
        2 => encode(&format!(
            "https://{}/{}",
            random_text(rng, 12),
            random_text(rng, 12)
        )),
        3 => encode(&format!(
            "{}.example:{}",
            random_text(rng, 10),
            rng.random::<u32>()
        )),
        _ => format!("sweep.robust.example/{}", random_value(rng)),
    }
}

/// Bytes a header value may hold (reqwest refuses the other controls), at random.
fn header_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    random_bytes(rng, max)
        .into_iter()
        .map(|b| {
            if b < 0x20 && b != b'\t' || b == 0x7f {
                b'x'
            } else {
                b
            }
        })
        .collect()
}

/// A Cookie header: random bytes, or pairs named for a page with values shaped like ours.
fn random_cookie(rng: &mut Rng, max: usize) -> Vec<u8> {
    if rng.random_bool(0.5) {
        return header_bytes(rng, max);
    }
    let name = AntiRefresh::name(if rng.random_bool(0.5) {
        "sweep.robust.example/page"
    } else {
        KNOWN
    });
    let mut header = format!(
        "a=b; {name}={}.{}.{}",
        random_text(rng, 12).escape_default(),
        rng.random::<u64>(),
        encode_bytes(&random_bytes(rng, 16)),
    )
    .into_bytes();
    header.extend(header_bytes(rng, 8));
    header
}

/// One request of the sweep; `i` decides its kind, the rest is random.
fn probe(i: usize) -> Probe {
    let mut rng = rand::rng();
    let rng = &mut rng;
    let route = ROUTES[rng.random_range(0..ROUTES.len())];
    let mut query: Vec<String> = Vec::new();
    let mut headers: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut long = false;
    match i % 10 {
        // The url parameter at random.
        0 => query.push(format!("url={}", random_target(rng))),
        // One parameter at random among valid ones, so the junk reaches the renderers.
        1 => {
            query.push("url=sweep.robust.example/page".into());
            let junk = PARAMS[rng.random_range(0..PARAMS.len())];
            for param in PARAMS {
                if param == junk {
                    query.push(format!("{param}={}", random_value(rng)));
                } else if rng.random_bool(0.5) {
                    query.push(format!("{param}={}", good_value(param, rng)));
                }
            }
        }
        // Everything at random.
        2 => {
            query.push(format!("url={}", random_target(rng)));
            for param in PARAMS {
                if rng.random_bool(0.4) {
                    query.push(format!("{param}={}", random_value(rng)));
                }
            }
        }
        // No url: the Referer (or Referrer) decides, with any bytes a header may hold.
        3 => {
            let name = if rng.random_bool(0.8) {
                "referer"
            } else {
                "referrer"
            };
            let mut value = header_bytes(rng, 60);
            if rng.random_bool(0.5) {
                value.splice(0..0, b"https://sweep.robust.example/".iter().copied());
            }
            headers.push((name, value));
        }
        // Cookies, and the headers the server echoes or reads (Origin, forwarding).
        4 => {
            query.push(format!("url={}", random_target(rng)));
            headers.push(("cookie", random_cookie(rng, 80)));
            headers.push(("origin", header_bytes(rng, 40)));
            headers.push(("x-forwarded-proto", header_bytes(rng, 12)));
            headers.push(("forwarded", header_bytes(rng, 40)));
        }
        // Repeated and unknown parameters, stray separators.
        5 => {
            for _ in 0..rng.random_range(1..20) {
                let name = match rng.random_range(0..3) {
                    0 => PARAMS[rng.random_range(0..PARAMS.len())].to_owned(),
                    1 => "url".to_owned(),
                    _ => encode_bytes(&random_bytes(rng, 6)),
                };
                query.push(format!("{name}={}", random_value(rng)));
            }
            query.push(
                ["&&", "=", "==", "url", "url=&url=x.example"][rng.random_range(0..5)].into(),
            );
        }
        // Over-long: the url, a label, a Referer, a Cookie, or a hundred headers.
        6 => {
            long = true;
            let size = rng.random_range(2_000..100_000);
            match rng.random_range(0..5) {
                0 => query.push(format!("url=sweep.robust.example/{}", "a".repeat(size))),
                1 => {
                    query.push("url=sweep.robust.example/page".into());
                    query.push(format!("label={}", "%C3%A9".repeat(size / 6)));
                }
                2 => headers.push(("referer", header_bytes(rng, size))),
                3 => {
                    query.push("url=sweep.robust.example/page".into());
                    headers.push(("cookie", random_cookie(rng, size)));
                }
                _ => {
                    query.push("url=sweep.robust.example/page".into());
                    for _ in 0..rng.random_range(90..200) {
                        headers.push(("x-junk", header_bytes(rng, 100)));
                    }
                }
            }
        }
        // Raw bytes on a TCP connection.
        _ => return Probe::Raw(raw_request(rng, route)),
    }
    let method = if rng.random_bool(0.9) {
        reqwest::Method::GET
    } else {
        reqwest::Method::HEAD
    };
    Probe::Client {
        method,
        target: format!("{route}?{}", query.join("&")),
        headers,
        long,
    }
}

/// A hand-made HTTP/1.1 request with raw bytes where a client library would refuse them: in
/// the request target (invalid UTF-8, controls, spaces), in header values, an over-long line,
/// or garbage.
fn raw_request(rng: &mut Rng, route: &str) -> Vec<u8> {
    let high = |rng: &mut Rng, max: usize| -> Vec<u8> {
        (0..rng.random_range(0..=max))
            .map(|_| match rng.random_range(0..3) {
                0 => rng.random_range(0x80_u8..=0xff),
                1 => rng.random_range(b'a'..=b'z'),
                _ => b"/%.?=&:"[rng.random_range(0..7)],
            })
            .collect()
    };
    let mut target = route.as_bytes().to_vec();
    let mut headers: Vec<u8> = b"Host: 127.0.0.1\r\nConnection: close\r\n".to_vec();
    match rng.random_range(0..6) {
        // Invalid UTF-8 in the query, raw.
        0 => {
            target.extend(b"?url=sweep.robust.example/");
            target.extend(high(rng, 40));
        }
        // Any bytes at all in the query (spaces, CR, LF, NUL included).
        1 => {
            target.extend(b"?url=");
            target.extend(random_bytes(rng, 40));
        }
        // Raw bytes in the Referer and Cookie, controls included (but not CR or LF).
        2 => {
            let mut value = |name: &[u8], rng: &mut Rng| {
                headers.extend(name);
                headers.extend(
                    random_bytes(rng, 60)
                        .into_iter()
                        .filter(|b| !b"\r\n".contains(b)),
                );
                headers.extend(b"\r\n");
            };
            value(b"Referer: ", rng);
            value(b"Cookie: ", rng);
        }
        // An over-long request line.
        3 => {
            target.extend(b"?url=sweep.robust.example/");
            let size = rng.random_range(10_000..100_000);
            target.extend(std::iter::repeat_n(b'a', size));
        }
        // Invalid UTF-8 in a badge parameter, raw.
        4 => {
            target.extend(b"?url=sweep.robust.example/page&");
            target.extend(PARAMS[rng.random_range(0..PARAMS.len())].as_bytes());
            target.push(b'=');
            target.extend(high(rng, 30));
        }
        // Garbage for a request (not only blank lines: a server waits for a request after them).
        _ => {
            let mut garbage = vec![rng.random_range(b'!'..=0xff)];
            garbage.extend(random_bytes(rng, 200));
            garbage.extend(b"\r\n\r\n");
            return garbage;
        }
    }
    let mut request = b"GET ".to_vec();
    request.extend(target);
    request.extend(b" HTTP/1.1\r\n");
    request.extend(headers);
    request.extend(b"\r\n");
    request
}

/// What came of a probe: a status, the connection closed without one, or nothing in time.
enum Outcome {
    Status(u16),
    Closed(String),
    Hung(String),
}

async fn send(http: &reqwest::Client, address: &str, probe: &Probe) -> Outcome {
    let (method, target, headers) = match probe {
        Probe::Raw(bytes) => return send_raw(address, bytes).await,
        Probe::Client {
            method,
            target,
            headers,
            ..
        } => (method, target, headers),
    };
    let mut request = http.request(method.clone(), format!("http://{address}{target}"));
    for (name, value) in headers {
        match reqwest::header::HeaderValue::from_bytes(value) {
            Ok(value) => request = request.header(*name, value),
            Err(err) => return Outcome::Closed(format!("not a header value: {err}")),
        }
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(_) => Outcome::Status(status),
                Err(err) => Outcome::Closed(format!("{status}, then {err}")),
            }
        }
        Err(err) if err.is_timeout() => Outcome::Hung(format!("{err:?}")),
        Err(err) => Outcome::Closed(format!("{err:?}")),
    }
}

async fn send_raw(address: &str, bytes: &[u8]) -> Outcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        // The server may answer and close before reading it all: then the write fails, and the
        // answer is still there to read.
        let written = stream.write_all(bytes).await;
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer).await;
        Ok::<_, std::io::Error>((answer, written, read))
    };
    match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Err(_) => Outcome::Hung("no answer within 5 s".into()),
        Ok(Err(err)) => Outcome::Closed(format!("connect: {err}")),
        Ok(Ok((answer, written, read))) => {
            let status = answer
                .strip_prefix(b"HTTP/1.1 ")
                .and_then(|rest| std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok());
            match status {
                Some(status) => Outcome::Status(status),
                None => Outcome::Closed(format!(
                    "{:?} (write {written:?}, read {read:?})",
                    String::from_utf8_lossy(&answer)
                )),
            }
        }
    }
}

/// What the sweep saw.
#[derive(Default)]
struct SweepTally {
    statuses: std::collections::BTreeMap<u16, usize>,
    /// Over-long requests whose connection closed without an answer.
    closed_long: usize,
    faults: Vec<String>,
}

impl SweepTally {
    fn record(&mut self, probe: &Probe, outcome: Outcome) {
        match outcome {
            Outcome::Status(status) => {
                *self.statuses.entry(status).or_default() += 1;
                if status >= 500 {
                    self.faults
                        .push(format!("{status} for {}", probe.describe()));
                }
            }
            // An over-long request may be answered (414, 431) and closed while reqwest is still
            // writing it, so that reqwest sees only the close. Anything else gets an answer.
            Outcome::Closed(_) if matches!(probe, Probe::Client { long: true, .. }) => {
                self.closed_long += 1;
            }
            Outcome::Closed(why) => {
                let what = probe.describe();
                self.faults.push(format!("closed ({why}) on {what}"));
            }
            Outcome::Hung(why) => {
                let what = probe.describe();
                self.faults.push(format!("hung ({why}) on {what}"));
            }
        }
    }
}

/// One sender of the sweep: takes the next probe number until all are sent.
async fn sweeper(
    http: reqwest::Client,
    address: String,
    next: Arc<std::sync::atomic::AtomicUsize>,
    tally: Arc<Mutex<SweepTally>>,
) {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= SWEEP_REQUESTS {
            break;
        }
        let probe = probe(i);
        let outcome = send(&http, &address, &probe).await;
        match tally.lock() {
            Ok(mut tally) => tally.record(&probe, outcome),
            Err(_) => break,
        }
    }
}

/// Ten thousand hostile requests against the real binary, sixteen at a time: random bytes in
/// `url`, the Referer, the Cookie and every badge parameter; invalid percent-encodings and
/// invalid UTF-8, percent-encoded and raw; over-long request lines and headers; garbage. None
/// may get a 5xx, hang, or make the server panic, and afterwards it still counts right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_no_5xx_and_no_panic() -> TestResult {
    let _heavy = HEAVY.lock().await;
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    // --trust-proxy: the forwarding headers are read, so their junk is parsed too.
    let mut server = Process::start_logging(dir.path(), &["--trust-proxy"], "info")?;
    let address = server.base.trim_start_matches("http://").to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let known = format!("{}/count?url={}", server.base, encode(KNOWN));
    for _ in 0..3 {
        assert_eq!(http.get(&known).send().await?.status(), 200);
    }

    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(SweepTally::default()));
    let senders: Vec<_> = (0..SWEEP_TASKS)
        .map(|_| {
            let next = Arc::clone(&next);
            tokio::spawn(sweeper(
                http.clone(),
                address.clone(),
                next,
                Arc::clone(&tally),
            ))
        })
        .collect();
    tokio::time::timeout(SWEEP_LIMIT, async {
        for sender in senders {
            sender.await?;
        }
        Ok::<_, tokio::task::JoinError>(())
    })
    .await??;
    let swept_in = started.elapsed();

    let tally = std::mem::take(&mut *tally.lock().map_err(|_| "tally poisoned")?);
    let log = server.log();
    eprintln!(
        "sweep of {SWEEP_REQUESTS} in {swept_in:?}: statuses {:?}; {} over-long closed without \
         an answer",
        tally.statuses, tally.closed_long
    );
    assert_no_panic(&log, "the sweep");
    let faults = &tally.faults;
    assert!(
        faults.is_empty(),
        "{} faults, first ones: {:#?}",
        faults.len(),
        &faults[..faults.len().min(10)]
    );
    assert!(server.is_running(), "the server died; log:\n{log}");
    let answered: usize = tally.statuses.values().sum();
    assert!(
        answered + tally.closed_long == SWEEP_REQUESTS,
        "{answered} answered"
    );
    for status in [200, 400] {
        assert!(
            tally
                .statuses
                .get(&status)
                .is_some_and(|&n| n > answered / 10),
            "the sweep should reach both the handlers and the checks: {:?}",
            tally.statuses
        );
    }
    let count = http
        .get(format!("{}/nocount?url={}", server.base, encode(KNOWN)))
        .send()
        .await?;
    assert_eq!(count.status(), 200);
    assert_eq!(count.text().await?, "3", "the count from before the sweep");

    server.terminate()?;
    let status = server.wait_async(STOP_LIMIT).await?;
    let log = server.log();
    assert!(
        status.success(),
        "stopping after the sweep: {status}; log:\n{log}"
    );
    assert_no_panic(&log, "stopping after the sweep");
    Ok(())
}
