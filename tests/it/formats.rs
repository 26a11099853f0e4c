//! Data dirs of every earlier format (tests/data/formats, made once with an earlier commit's
//! binary by make.sh there, journal of a `kill -9` included): the binary upgrades each in place
//! and reads every count and day, a crash in the middle of an upgrade loses nothing, and a
//! newer format is refused naming both versions.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hitcounter::store::FORMAT;

use crate::HEAVY;
use crate::common::{BIN, BoxError, Process, TestResult};

/// The earlier formats kept as test data, each as the commit that made it named it.
const EARLIER: &[u32] = &[1, 2];
/// How long a server has to stop after SIGTERM.
const STOP: Duration = Duration::from_secs(20);

/// The test data of format `format` unpacked into `into`; returns its data dir.
fn unpack(format: u32, into: &Path) -> Result<PathBuf, BoxError> {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/data/formats/format-{format}.tar.gz"));
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(into)
        .status()?;
    assert!(status.success(), "tar -xzf {}", archive.display());
    Ok(into.join("data"))
}

/// What the binary that made format `format` exported from its own dir, lines sorted.
fn expected(format: u32) -> Result<String, BoxError> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/data/formats/format-{format}.expected.jsonl"));
    Ok(std::fs::read_to_string(path)?)
}

/// `hitcounter export` of `dir`, lines sorted bytewise as the expected files are.
fn exported(dir: &Path) -> Result<String, BoxError> {
    let output = Command::new(BIN)
        .args(["export", "--data-dir"])
        .arg(dir)
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "export failed: {stderr}");
    let stdout = String::from_utf8(output.stdout)?;
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort_unstable();
    Ok(lines.iter().map(|line| format!("{line}\n")).collect())
}

/// Fails with the first lines that differ (the files are too long to print whole).
fn assert_same_lines(got: &str, want: &str, what: &str) {
    let differ: Vec<_> = got
        .lines()
        .zip(want.lines())
        .filter(|(got, want)| got != want)
        .take(3)
        .collect();
    assert!(
        differ.is_empty() && got.lines().count() == want.lines().count(),
        "{what}: {} lines, {} expected; first differences (got, expected): {differ:#?}",
        got.lines().count(),
        want.lines().count()
    );
}

/// The total of `url` in an export.
fn total_in(export: &str, url: &str) -> Result<u64, BoxError> {
    let needle = format!("{{\"url\":\"{url}\",");
    let line = export
        .lines()
        .find(|line| line.starts_with(&needle))
        .ok_or_else(|| format!("{url} is not in the export"))?;
    let row: serde_json::Value = serde_json::from_str(line)?;
    row["total"]
        .as_u64()
        .ok_or_else(|| format!("no total in {line}").into())
}

/// Serves `dir` until SIGTERM; returns the log.
async fn serve_and_stop(
    dir: &Path,
    check: impl AsyncFnOnce(&Process) -> TestResult,
) -> Result<String, BoxError> {
    let mut server = Process::start(dir, &[])?;
    check(&server).await?;
    server.terminate()?;
    let status = server.wait_async(STOP).await?;
    assert!(status.success(), "exit {status}; log: {}", server.log());
    Ok(server.log())
}

#[tokio::test]
async fn every_earlier_format_is_upgraded_in_place_and_read_whole() -> TestResult {
    let _heavy = HEAVY.lock().await;
    for &format in EARLIER {
        let tmp = tempfile::tempdir()?;
        let dir = unpack(format, tmp.path())?;
        let want = expected(format)?;
        let log = serve_and_stop(&dir, async |server| {
            for url in [
                "example.com/hot",
                "site-1.example/post/1",
                "site-2.example/post/9993",
            ] {
                assert_eq!(server.count_of(url).await?, total_in(&want, url)?, "{url}");
            }
            Ok(())
        })
        .await?;
        let upgraded = log.contains("upgraded the data dir");
        assert_eq!(upgraded, format < FORMAT, "format {format}: {log}");
        if upgraded {
            assert!(log.contains(&format!("from={format} to={FORMAT}")), "{log}");
        }
        let what = format!("format {format}: the export after the upgrade");
        assert_same_lines(&exported(&dir)?, &want, &what);
        // Once upgraded it opens as it is, and takes hits.
        let log = serve_and_stop(&dir, async |server| {
            reqwest::get(format!("{}/count?url=example.com/hot", server.base)).await?;
            let hot = total_in(&want, "example.com/hot")?;
            assert_eq!(server.count_of("example.com/hot").await?, hot + 1);
            Ok(())
        })
        .await?;
        assert!(
            !log.contains("upgrad"),
            "format {format}, second start: {log}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_crash_in_the_middle_of_an_upgrade_loses_nothing() -> TestResult {
    let _heavy = HEAVY.lock().await;
    let want = expected(1)?;
    // The kill must land before the upgrade ends; tried a few times, as a busy machine may let
    // it finish first.
    for _attempt in 0..3 {
        let tmp = tempfile::tempdir()?;
        let dir = unpack(1, tmp.path())?;
        let mut child = Command::new(BIN)
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut moving = false;
        for line in BufReader::new(stderr).lines() {
            if line?.contains("moving pages") {
                moving = true;
                break;
            }
        }
        child.kill()?;
        child.wait()?;
        assert!(moving, "the upgrade never said it was moving pages");
        let log = serve_and_stop(&dir, async |_| Ok(())).await?;
        if !log.contains("upgrading the data dir") {
            continue; // the upgrade had finished before the kill
        }
        assert!(log.contains("upgraded the data dir"), "{log}");
        assert_same_lines(
            &exported(&dir)?,
            &want,
            "the export after a crash mid-upgrade",
        );
        return Ok(());
    }
    Err("the kill never came before the upgrade's end".into())
}

#[tokio::test]
async fn a_newer_format_is_refused_naming_both_versions() -> TestResult {
    let _heavy = HEAVY.lock().await;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    serve_and_stop(&dir, async |server| {
        reqwest::get(format!("{}/count?url=example.com/kept", server.base)).await?;
        Ok(())
    })
    .await?;
    // What a later release would leave: a higher format, and its version.
    let set_format = |format: u32, by: &str| -> TestResult {
        let db = sled::open(&dir)?;
        let meta = db.open_tree("meta")?;
        meta.insert("format", &format.to_be_bytes())?;
        meta.insert("format-written-by", by)?;
        db.flush()?;
        Ok(())
    };
    set_format(FORMAT + 1, "9.0.0")?;
    for args in [&["--bind", "127.0.0.1:0"][..], &["export"][..]] {
        let output = Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(&dir)
            .output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{args:?} opened a newer format: {stderr}"
        );
        for part in [
            format!("data format {}", FORMAT + 1),
            "written by hitcounter 9.0.0".to_owned(),
            format!(
                "this hitcounter {} reads format {FORMAT} at most",
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(
                stderr.contains(&part),
                "{args:?}: {stderr:?} does not say {part:?}"
            );
        }
    }
    // Refusing it wrote nothing: back at this format, the page is there.
    set_format(FORMAT, env!("CARGO_PKG_VERSION"))?;
    serve_and_stop(&dir, async |server| {
        assert_eq!(server.count_of("example.com/kept").await?, 1);
        Ok(())
    })
    .await?;
    Ok(())
}
