//! Hostile disks and damaged files: a full or read-only data dir, a damaged journal, counts at
//! their limit. Each drives the real binary; the disk tests mount a small tmpfs (as root, as CI
//! runs) and are skipped, saying why, where mounting is not allowed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{BIN, BoxError, Process, TestResult, encode};

/// A tmpfs of `size` mounted on a new temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one, or says why not and gives `None`.
    fn mount(size: &str) -> Result<Option<Self>, BoxError> {
        let dir = tempfile::tempdir()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()?;
        if !out.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return Ok(None);
        }
        Ok(Some(Self { dir }))
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills what space is left with one file; returns its path.
    fn fill(&self) -> Result<PathBuf, BoxError> {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path)?;
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
        Ok(path)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// Counts one hit of `url` through `/count`; returns the status.
async fn hit(http: &reqwest::Client, base: &str, url: &str) -> Result<u16, BoxError> {
    let response = http
        .get(format!("{base}/count?url={}", encode(url)))
        .send()
        .await?;
    Ok(response.status().as_u16())
}

/// Hits every key of `plan` as often as it says; adds the answered (200) hits to `answered`.
async fn hit_all(
    http: &reqwest::Client,
    base: &str,
    plan: &[(String, u64)],
    answered: &mut BTreeMap<String, u64>,
) -> TestResult {
    for (url, times) in plan {
        for _ in 0..*times {
            let status = hit(http, base, url).await?;
            assert_eq!(status, 200, "hit of {url}");
            *answered.entry(url.clone()).or_insert(0) += 1;
        }
    }
    Ok(())
}

/// The counts `base` reports for the keys of `answered`.
async fn counts_of(
    http: &reqwest::Client,
    base: &str,
    answered: &BTreeMap<String, u64>,
) -> Result<BTreeMap<String, u64>, BoxError> {
    let mut counts = BTreeMap::new();
    for url in answered.keys() {
        let text = http
            .get(format!("{base}/nocount?url={}", encode(url)))
            .send()
            .await?
            .text()
            .await?;
        counts.insert(url.clone(), text.trim().parse()?);
    }
    Ok(counts)
}

/// Waits until `/healthz` answers `status`; returns its body.
async fn health_becomes(
    http: &reqwest::Client,
    base: &str,
    status: u16,
    limit: Duration,
) -> Result<String, BoxError> {
    let started = Instant::now();
    loop {
        let response = http.get(format!("{base}/healthz")).send().await?;
        let got = response.status().as_u16();
        let body = response.text().await?;
        if got == status {
            return Ok(body);
        }
        if started.elapsed() > limit {
            return Err(format!("/healthz still {got} ({body}) after {limit:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ten hot keys and `distinct` keys hit once: enough flushes to fill a small disk.
fn plan(prefix: &str, distinct: usize, hot_hits: u64) -> Vec<(String, u64)> {
    let hot = (0..10).map(|i| (format!("{prefix}.example/hot/{i}"), hot_hits));
    let cold = (0..distinct).map(|i| (format!("{prefix}.example/cold/{i}"), 1));
    hot.chain(cold).collect()
}

fn error_lines(log: &str) -> usize {
    log.lines().filter(|line| line.contains("ERROR")).count()
}

#[tokio::test]
async fn a_full_disk_keeps_answered_hits_and_recovers_without_a_restart() -> TestResult {
    let _heavy = crate::HEAVY.lock().await;
    let Some(disk) = Tmpfs::mount("2m")? else {
        return Ok(());
    };
    let data = disk.path().join("data");
    // One client makes hundreds of pages: no new-pages allowance.
    let args = [
        "--flush-interval-ms",
        "100",
        "--metrics",
        "--new-pages-per-minute",
        "0",
    ];
    let mut server = Process::start(&data, &args)?;
    let http = reqwest::Client::new();
    let mut answered = BTreeMap::new();
    hit_all(&http, &server.base, &plan("before", 0, 3), &mut answered).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let filler = disk.fill()?;
    hit_all(&http, &server.base, &plan("full", 300, 10), &mut answered).await?;
    let health = health_becomes(&http, &server.base, 503, Duration::from_secs(5)).await?;
    assert!(health.contains("durable writes are failing"), "{health}");
    let metrics = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("hitcounter_store_errors_total"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("hitcounter_hits_not_durable 0\n"),
        "{metrics}"
    );
    // While it fails, more hits are still answered, and the log does not grow per request.
    hit_all(
        &http,
        &server.base,
        &plan("failing", 100, 10),
        &mut answered,
    )
    .await?;
    let errors_while_failing = error_lines(&server.log());
    std::fs::remove_file(filler)?;
    health_becomes(&http, &server.base, 200, Duration::from_secs(15)).await?;
    assert_eq!(counts_of(&http, &server.base, &answered).await?, answered);
    server.terminate()?;
    assert!(server.wait_async(Duration::from_secs(15)).await?.success());
    let log = server.log();
    assert!(log.contains("durable writes work again"), "{log}");
    assert!(
        errors_while_failing <= 12,
        "{errors_while_failing} ERROR lines for {} answered hits: {log}",
        answered.values().sum::<u64>()
    );
    let server = Process::start(&data, &args)?;
    assert_eq!(counts_of(&http, &server.base, &answered).await?, answered);
    Ok(())
}

#[tokio::test]
async fn sigterm_on_a_full_disk_retries_then_exits_non_zero_naming_the_lost_hits() -> TestResult {
    let _heavy = crate::HEAVY.lock().await;
    let Some(disk) = Tmpfs::mount("2m")? else {
        return Ok(());
    };
    let data = disk.path().join("data");
    let args = [
        "--flush-interval-ms",
        "100",
        "--shutdown-timeout-secs",
        "2",
        "--new-pages-per-minute",
        "0",
    ];
    let mut server = Process::start(&data, &args)?;
    let http = reqwest::Client::new();
    let mut answered = BTreeMap::new();
    hit_all(&http, &server.base, &plan("before", 0, 2), &mut answered).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    disk.fill()?;
    hit_all(&http, &server.base, &plan("full", 300, 5), &mut answered).await?;
    health_becomes(&http, &server.base, 503, Duration::from_secs(5)).await?;
    let asked = Instant::now();
    server.terminate()?;
    let status = server.wait_async(Duration::from_secs(20)).await?;
    let log = server.log();
    assert!(!status.success(), "exited 0 with hits unsaved: {log}");
    assert!(
        asked.elapsed() >= Duration::from_millis(1500),
        "gave up at once"
    );
    assert!(log.contains("answered hits could not be saved"), "{log}");
    Ok(())
}

/// An ext4 file system on a loop device, on a new temporary directory; gone on drop.
struct Ext4 {
    image: tempfile::TempDir,
    mount: tempfile::TempDir,
    device: String,
}

impl Ext4 {
    /// Makes and mounts one, or says why not and gives `None`.
    fn mount(megabytes: u64) -> Result<Option<Self>, BoxError> {
        let image = tempfile::tempdir()?;
        let file = image.path().join("fs.img");
        std::fs::File::create(&file)?.set_len(megabytes << 20)?;
        let made = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&file)
            .output();
        let attached = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&file)
            .output();
        let (Ok(made), Ok(attached)) = (made, attached) else {
            eprintln!("skipped: mkfs.ext4 or losetup is missing");
            return Ok(None);
        };
        if !made.status.success() || !attached.status.success() {
            eprintln!(
                "skipped: cannot make a loop device ({})",
                String::from_utf8_lossy(&attached.stderr).trim()
            );
            return Ok(None);
        }
        let device = String::from_utf8_lossy(&attached.stdout).trim().to_owned();
        let mount = tempfile::tempdir()?;
        let mounted = Command::new("mount")
            .arg(&device)
            .arg(mount.path())
            .status()?;
        let fs = Self {
            image,
            mount,
            device,
        };
        if !mounted.success() {
            eprintln!("skipped: cannot mount {}", fs.device);
            return Ok(None);
        }
        Ok(Some(fs))
    }

    fn path(&self) -> &Path {
        self.mount.path()
    }

    /// Makes every file and directory below `dir` immutable (`+i`), or writable again (`-i`):
    /// writes to files already open then fail too, as on a file system turned read-only (which
    /// the kernel refuses to remount while files are open for writing).
    fn set_immutable(&self, dir: &Path, flag: &str) -> TestResult {
        let status = Command::new("chattr")
            .args(["-R", flag])
            .arg(dir)
            .status()?;
        assert!(status.success(), "chattr {flag}");
        Ok(())
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("chattr")
            .args(["-R", "-i"])
            .arg(self.path())
            .status();
        let _ = Command::new("umount").arg(self.path()).status();
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
        let _ = &self.image;
    }
}

#[tokio::test]
async fn a_data_dir_that_refuses_writes_is_reported_and_recovers() -> TestResult {
    let _heavy = crate::HEAVY.lock().await;
    let Some(disk) = Ext4::mount(64)? else {
        return Ok(());
    };
    let data = disk.path().join("data");
    let args = ["--flush-interval-ms", "100"];
    let mut server = Process::start(&data, &args)?;
    let http = reqwest::Client::new();
    let mut answered = BTreeMap::new();
    hit_all(&http, &server.base, &plan("before", 0, 2), &mut answered).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    disk.set_immutable(&data, "+i")?;
    hit_all(
        &http,
        &server.base,
        &plan("read-only", 100, 5),
        &mut answered,
    )
    .await?;
    let health = health_becomes(&http, &server.base, 503, Duration::from_secs(5)).await?;
    assert!(health.contains("durable writes are failing"), "{health}");
    disk.set_immutable(&data, "-i")?;
    health_becomes(&http, &server.base, 200, Duration::from_secs(15)).await?;
    server.terminate()?;
    assert!(server.wait_async(Duration::from_secs(15)).await?.success());
    let server = Process::start(&data, &args)?;
    assert_eq!(counts_of(&http, &server.base, &answered).await?, answered);
    Ok(())
}

/// The record boundaries of a journal file (after its 16-byte header).
fn records(journal: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut at = 16;
    let mut records = Vec::new();
    while let Some(frame) = journal.get(at..at + 8) {
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        records.push(at..at + 8 + len);
        at += 8 + len;
    }
    records
}

/// The totals the records of `journal` leave, in order, but for the record at `skip`.
fn totals_without(journal: &[u8], skip: usize) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for (i, span) in records(journal).into_iter().enumerate() {
        let mut rest = &journal[span.start + 8..span.end];
        while rest.len() >= 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let key = String::from_utf8_lossy(&rest[4..4 + len]).into_owned();
            let mut total = [0; 8];
            total.copy_from_slice(&rest[4 + len..12 + len]);
            if i != skip {
                totals.insert(key, u64::from_be_bytes(total));
            }
            rest = &rest[4 + len + 20..];
        }
    }
    totals
}

/// Five flushes, one new page and one more hit of a shared page each, then `kill -9`; returns
/// the data dir's journal as it was left.
async fn five_journaled_flushes_then_kill_9(data: &Path) -> Result<Vec<u8>, BoxError> {
    let mut server = Process::start(data, &["--flush-interval-ms", "100"])?;
    let http = reqwest::Client::new();
    for round in 1..=5 {
        for url in [format!("j.example/{round}"), "j.example/all".to_owned()] {
            assert_eq!(hit(&http, &server.base, &url).await?, 200);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    server.kill_9()?;
    let _ = server.wait_async(Duration::from_secs(5)).await;
    Ok(std::fs::read(data.join("journal"))?)
}

fn kept_aside(data: &Path) -> Result<usize, BoxError> {
    Ok(std::fs::read_dir(data)?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("journal.damaged-")
        })
        .count())
}

#[tokio::test]
async fn a_damaged_journal_loses_only_the_damaged_record_says_so_and_is_kept_aside() -> TestResult {
    let _heavy = crate::HEAVY.lock().await;
    let http = reqwest::Client::new();
    // A flipped byte inside the second record: every record after it is still replayed.
    let dir = tempfile::tempdir()?;
    let journal = five_journaled_flushes_then_kill_9(dir.path()).await?;
    let spans = records(&journal);
    assert!(spans.len() >= 5, "one record per flush: {}", spans.len());
    let mut damaged = journal.clone();
    damaged[spans[1].start + 8 + 3] ^= 0x20;
    std::fs::write(dir.path().join("journal"), &damaged)?;
    let server = Process::start(dir.path(), &[])?;
    let expected = totals_without(&journal, 1);
    assert_eq!(expected.get("j.example/all"), Some(&5));
    assert!(expected.len() >= 5, "{expected:?}");
    assert_eq!(counts_of(&http, &server.base, &expected).await?, expected);
    let log = server.log();
    assert!(
        log.contains("ERROR") && log.contains("the journal is damaged"),
        "{log}"
    );
    assert!(
        log.contains(&format!("skipped_bytes={}", spans[1].len())),
        "{log}"
    );
    assert_eq!(kept_aside(dir.path())?, 1);
    drop(server);

    // A flipped byte in the header: every record is replayed, raising counts only.
    let dir = tempfile::tempdir()?;
    let mut journal = five_journaled_flushes_then_kill_9(dir.path()).await?;
    journal[3] ^= 0x01;
    std::fs::write(dir.path().join("journal"), &journal)?;
    let server = Process::start(dir.path(), &[])?;
    let expected = totals_without(&journal, usize::MAX);
    assert_eq!(counts_of(&http, &server.base, &expected).await?, expected);
    let log = server.log();
    assert!(log.contains("ERROR") && log.contains("Garbled"), "{log}");
    assert_eq!(kept_aside(dir.path())?, 1);
    drop(server);

    // A deleted journal: said at ERROR.
    let dir = tempfile::tempdir()?;
    five_journaled_flushes_then_kill_9(dir.path()).await?;
    std::fs::remove_file(dir.path().join("journal"))?;
    let server = Process::start(dir.path(), &[])?;
    let log = server.log();
    assert!(
        log.contains("ERROR") && log.contains("the journal is missing"),
        "{log}"
    );
    Ok(())
}

#[tokio::test]
async fn counts_saturate_at_the_largest_count_on_every_path() -> TestResult {
    let _heavy = crate::HEAVY.lock().await;
    let dir = tempfile::tempdir()?;
    let max = u64::MAX.to_string();
    let mut server = Process::start(dir.path(), &["--admin-token", "t0ken"])?;
    let http = reqwest::Client::new();
    let set = http
        .put(format!("{}/admin/count?url=sat.example", server.base))
        .header("Authorization", "Bearer t0ken")
        .body(max.clone())
        .send()
        .await?;
    assert!(set.status().is_success(), "{}", set.status());
    for _ in 0..3 {
        let text = http
            .get(format!("{}/count?url=sat.example", server.base))
            .send()
            .await?
            .text()
            .await?;
        assert_eq!(text.trim(), max);
    }
    server.terminate()?;
    assert!(server.wait_async(Duration::from_secs(10)).await?.success());

    // Imports add up to the largest count too.
    let file = dir.path().join("import.jsonl");
    let line = format!("{{\"url\":\"sat.example\",\"total\":{max},\"days\":{{}}}}\n");
    std::fs::write(&file, line.repeat(2))?;
    let import = Command::new(BIN)
        .args(["import", "--force", "--data-dir"])
        .arg(dir.path())
        .arg(&file)
        .output()?;
    assert!(import.status.success(), "{import:?}");
    let server = Process::start(dir.path(), &[])?;
    let text = http
        .get(format!("{}/count?url=sat.example", server.base))
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(text.trim(), max);
    Ok(())
}
