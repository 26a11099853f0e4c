//! The real `hitcounter` binary as an operator runs it: signals, crashes and start-up errors.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{BIN, BoxError, Process, TestResult};

async fn hit(client: &reqwest::Client, base: &str, url: &str, n: u64) -> TestResult {
    for _ in 0..n {
        let response = client
            .get(format!("{base}/count/tag.svg?url={url}"))
            .send()
            .await?;
        assert_eq!(response.status(), 200);
    }
    Ok(())
}

async fn count(
    client: &reqwest::Client,
    base: &str,
    url: &str,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    Ok(client
        .get(format!("{base}/nocount?url={url}"))
        .send()
        .await?
        .text()
        .await?
        .parse()?)
}

/// Today's count of `url`, from `/nocount.json`.
async fn today(
    client: &reqwest::Client,
    base: &str,
    url: &str,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let body: serde_json::Value = client
        .get(format!("{base}/nocount.json?url={url}"))
        .send()
        .await?
        .json()
        .await?;
    body["today"]
        .as_u64()
        .ok_or_else(|| format!("no today in {body}").into())
}

#[tokio::test]
async fn sigterm_and_ctrl_c_flush_every_acknowledged_hit() -> TestResult {
    for signal in ["-TERM", "-INT"] {
        let dir = tempfile::tempdir()?;
        let client = reqwest::Client::new();
        // A long interval: only the shutdown's final flush can have written these hits.
        let args = [
            "--flush-interval-ms",
            "3600000",
            "--cookie-window-secs",
            "0",
        ];
        let mut server = Process::start(dir.path(), &args)?;
        hit(&client, &server.base, "term.example", 37).await?;
        hit(&client, &server.base, "term.example/b", 5).await?;
        server.signal(signal)?;
        let status = server.wait(Duration::from_secs(15))?;
        assert!(
            status.success(),
            "{signal}: exit status {status}; log: {}",
            server.log()
        );
        assert!(
            server.log().contains("final flush done"),
            "{}",
            server.log()
        );

        let server = Process::start(dir.path(), &args)?;
        assert_eq!(
            count(&client, &server.base, "term.example").await?,
            37,
            "{signal}"
        );
        assert_eq!(
            count(&client, &server.base, "term.example/b").await?,
            5,
            "{signal}"
        );
        let today = today(&client, &server.base, "term.example").await?;
        assert_eq!(today, 37, "{signal}: day buckets are flushed too");
    }
    Ok(())
}

#[tokio::test]
async fn kill_9_after_a_flush_interval_loses_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let client = reqwest::Client::new();
    let args = ["--flush-interval-ms", "100", "--cookie-window-secs", "0"];
    let mut server = Process::start(dir.path(), &args)?;
    hit(&client, &server.base, "crash.example", 23).await?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.signal("-KILL")?;
    let status = server.wait(Duration::from_secs(5))?;
    assert!(!status.success());

    let server = Process::start(dir.path(), &args)?;
    assert_eq!(count(&client, &server.base, "crash.example").await?, 23);
    assert_eq!(today(&client, &server.base, "crash.example").await?, 23);
    Ok(())
}

#[tokio::test]
async fn a_bare_rust_log_level_is_hitcounter_s_own_and_leaves_sled_at_warn() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut server = Process::start_logging(dir.path(), &[], "debug")?;
    let client = reqwest::Client::new();
    count(&client, &server.base, "log.example").await?;
    server.terminate()?;
    let status = server.wait(Duration::from_secs(15))?;
    assert!(status.success(), "{status}");
    let log = server.log();
    // A line is `<time> <LEVEL> <target>: <message>`.
    let targets: Vec<(&str, &str)> = log
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace().skip(1);
            Some((words.next()?, words.next()?))
        })
        .collect();
    assert!(
        targets
            .iter()
            .any(|&(level, target)| level == "DEBUG" && target.starts_with("hitcounter")),
        "no debug line of hitcounter's: {log}"
    );
    assert!(
        !targets.iter().any(|(_, target)| target.starts_with("sled")),
        "sled's lines: {log}"
    );
    Ok(())
}

/// Runs the binary expecting it to refuse to start; returns its stderr.
fn refused(
    args: &[&str],
    as_user: Option<(&str, &Path)>,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let mut command = match as_user {
        Some((uid, bin)) => {
            let mut command = Command::new("setpriv");
            command.args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
            ]);
            command.arg(bin);
            command
        }
        None => Command::new(BIN),
    };
    let output = command
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "{args:?} started; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    Ok(stderr)
}

#[test]
fn an_unusable_data_dir_is_refused_with_one_clear_sentence() -> TestResult {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("a-file");
    std::fs::write(&file, "")?;
    let under_file = file.join("data");
    let stderr = refused(&["--data-dir", &under_file.to_string_lossy()], None)?;
    assert!(
        stderr.contains(&format!(
            "cannot use data directory {}",
            under_file.display()
        )),
        "{stderr}"
    );

    // A directory this user may not write. Root may write anywhere, so as root drop to nobody.
    let locked_down = dir.path().join("read-only");
    std::fs::create_dir(&locked_down)?;
    let data = locked_down.join("data");
    let copy = dir.path().join("hitcounter");
    let is_root = Command::new("id")
        .arg("-u")
        .output()?
        .stdout
        .starts_with(b"0\n");
    let as_user = if is_root {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(&locked_down, std::fs::Permissions::from_mode(0o555))?;
        // A copy nobody can execute wherever the checkout lives (/root is not traversable).
        std::fs::copy(BIN, &copy)?;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))?;
        Some(("65534", copy.as_path()))
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked_down, std::fs::Permissions::from_mode(0o555))?;
        None
    };
    let stderr = refused(&["--data-dir", &data.to_string_lossy()], as_user)?;
    assert!(
        stderr.contains(&format!("cannot use data directory {}", data.display())),
        "{stderr}"
    );
    assert!(stderr.contains("Permission denied"), "{stderr}");
    Ok(())
}

#[test]
fn a_second_instance_on_one_data_dir_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let _first = Process::start(dir.path(), &[])?;
    let stderr = refused(&["--data-dir", &dir.path().to_string_lossy()], None)?;
    assert!(
        stderr.contains(&format!(
            "data directory {} is in use by another hitcounter process",
            dir.path().display()
        )),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn a_template_without_count_is_refused_naming_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let template = dir.path().join("badge.svg");
    std::fs::write(&template, "<svg>{url}</svg>")?;
    let data = dir.path().join("data");
    let stderr = refused(
        &[
            "--data-dir",
            &data.to_string_lossy(),
            "--svg-template",
            &template.to_string_lossy(),
        ],
        None,
    )?;
    assert!(
        stderr.contains(&format!(
            "the SVG template {} does not contain {{count}}",
            template.display()
        )),
        "{stderr}"
    );
    let missing = dir.path().join("missing.svg");
    let stderr = refused(
        &[
            "--data-dir",
            &data.to_string_lossy(),
            "--svg-template",
            &missing.to_string_lossy(),
        ],
        None,
    )?;
    assert!(
        stderr.contains(&format!(
            "cannot read the SVG template {}",
            missing.display()
        )),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn a_bad_pattern_is_refused_naming_it_as_given() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let data = data.to_string_lossy();
    for (flag, pattern, reason) in [
        ("--allow", "(", "unclosed group"),
        ("--deny", "b[", "unclosed character class"),
        ("--top-ignore", "a)|(?:b", "unopened group"),
    ] {
        let stderr = refused(&["--data-dir", &data, flag, pattern], None)?;
        assert!(
            stderr.contains(&format!(
                "the {flag} pattern \"{pattern}\" is not a valid regular expression: {reason}"
            )),
            "{stderr}"
        );
        assert!(!stderr.contains("^(?:"), "the anchored form: {stderr}");
    }
    Ok(())
}

/// The output of `hitcounter ARGS`, which must succeed.
fn stdout_of(args: &[&str]) -> Result<String, BoxError> {
    let output = Command::new(BIN).args(args).output()?;
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

#[test]
fn help_fits_a_screen_and_help_all_explains_every_option() -> TestResult {
    use clap::CommandFactory;
    let help = stdout_of(&["--help"])?;
    assert_eq!(stdout_of(&["-h"])?, help);
    let all = stdout_of(&["--help-all"])?;
    for (args, text) in [
        (&["--help"][..], &help),
        (&["export", "--help"], &stdout_of(&["export", "--help"])?),
        (&["import", "--help"], &stdout_of(&["import", "--help"])?),
        (
            &["import-seed", "--help"],
            &stdout_of(&["import-seed", "--help"])?,
        ),
    ] {
        let lines = text.lines().count();
        let widest = text
            .lines()
            .map(|line| line.chars().count())
            .max()
            .unwrap_or(0);
        assert!(
            lines <= 60 && widest <= 100,
            "{args:?}: {lines} lines, {widest} columns:\n{text}"
        );
    }
    // Every option in a line of --help, and at length (with its variable's rule) in --help-all.
    for arg in hitcounter::config::Config::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "help" || long == "version" {
            continue;
        }
        let flag = format!("--{long} ");
        assert_eq!(
            help.lines()
                .filter(|line| line.trim_start().starts_with(&flag)
                    || line.trim_start() == flag.trim_end())
                .count(),
            1,
            "--{long} in --help:\n{help}"
        );
        let long_help = arg
            .get_long_help()
            .or(arg.get_help())
            .ok_or(format!("--{long} has no help"))?;
        let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        let at_length = words(&long_help.to_string());
        assert!(
            words(&all).contains(&at_length),
            "--help-all lacks {at_length:?}"
        );
    }
    assert!(
        help.contains("HITCOUNTER_FLUSH_INTERVAL_MS=500")
            && all.contains("HITCOUNTER_FLUSH_INTERVAL_MS=500")
    );
    assert!(all.contains("a clean stop loses nothing"), "{all}");
    Ok(())
}
