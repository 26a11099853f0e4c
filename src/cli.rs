//! The command line: `hitcounter` alone serves; `export`, `import` and `import-seed` move counts
//! in and out of a data directory that no server holds.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::store::{OpenError, Store};
use crate::transfer::{self, ImportSummary, Mode, TransferError};

/// What `--version` says: the version and the target the binary was built for.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("HITCOUNTER_TARGET"),
    ")"
);

/// The end of `--help`: how the environment names the options, and where each is explained.
const ENVIRONMENT: &str = "Every option is also read from the environment: HITCOUNTER_ and its \
    name in capitals,\ndashes as underscores (HITCOUNTER_FLUSH_INTERVAL_MS=500). --help-all \
    explains each option.";

/// hitcounter: a self-hosted page-view counter. Without a subcommand it serves.
#[derive(Debug, Parser)]
#[command(
    version = VERSION,
    about,
    args_conflicts_with_subcommands = true,
    max_term_width = 100,
    disable_help_flag = true,
    disable_help_subcommand = true,
    after_help = ENVIRONMENT,
    after_long_help = ENVIRONMENT
)]
pub struct Cli {
    /// Print help: each option in a line.
    #[arg(short = 'h', long = "help", action = clap::ArgAction::HelpShort, global = true)]
    help: Option<bool>,
    /// Print help: each option at length.
    #[arg(long = "help-all", action = clap::ArgAction::HelpLong, global = true)]
    help_all: Option<bool>,
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The server's options.
    #[command(flatten)]
    pub serve: Config,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write every count as JSON Lines (url, total, days), from a stopped server's data dir.
    ///
    /// Write every count as JSON Lines ({"url", "total", "days"}). The data dir must not be held
    /// by a running server (use GET /admin/export then).
    Export {
        /// The data dir, as the server's --data-dir.
        #[arg(
            long,
            env = "HITCOUNTER_DATA_DIR",
            hide_env = true,
            default_value = "./hitcounter-data"
        )]
        data_dir: PathBuf,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Read JSON Lines made by `export` (or by hand) into the data dir.
    ///
    /// Read JSON Lines made by `export` (or by hand) into the data dir, in atomic batches.
    Import {
        /// The JSON Lines file.
        file: PathBuf,
        /// How to import it, and where.
        #[command(flatten)]
        into: ImportOptions,
    },
    /// Migrate the original Python server's SQLite file.
    ///
    /// Migrate the original Python server's SQLite file (table url(id, url, count)).
    ImportSeed {
        /// The SQLite database file.
        database: PathBuf,
        /// How to import it, and where.
        #[command(flatten)]
        into: ImportOptions,
    },
}

/// What both imports take.
#[derive(Debug, clap::Args)]
pub struct ImportOptions {
    /// `add` to the stored counts, or `replace` each imported page's total and days.
    #[arg(long, value_enum, hide_possible_values = true, default_value_t = Mode::Add)]
    pub mode: Mode,
    /// Import in add mode even though this very input was imported before.
    #[arg(long)]
    pub force: bool,
    /// The data dir, as the server's --data-dir.
    #[arg(
        long,
        env = "HITCOUNTER_DATA_DIR",
        hide_env = true,
        default_value = "./hitcounter-data"
    )]
    pub data_dir: PathBuf,
}

/// Why a subcommand failed: one sentence each.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The data dir cannot be opened (a running server holds it, say).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Moving the counts failed.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// A file cannot be opened or created.
    #[error("cannot open {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// Runs a subcommand, printing progress (on a terminal) and a summary line to standard error.
pub fn run_command(command: Command) -> Result<(), CliError> {
    match command {
        Command::Export { data_dir, output } => {
            let store = Store::open_existing(&data_dir)?;
            let bar = progress(store.len() as u64, "keys");
            let count = match &output {
                Some(path) => {
                    let file = File::create(path).map_err(|source| CliError::File {
                        path: path.clone(),
                        source,
                    })?;
                    let mut out = BufWriter::new(file);
                    let count = transfer::export(&store, &mut out, || bar.inc(1))?;
                    out.flush().map_err(TransferError::from)?;
                    count
                }
                None => {
                    let mut out = BufWriter::new(std::io::stdout().lock());
                    let count = transfer::export(&store, &mut out, || bar.inc(1))?;
                    out.flush().map_err(TransferError::from)?;
                    count
                }
            };
            bar.finish_and_clear();
            let to = output.map_or("standard output".into(), |p| p.display().to_string());
            eprintln!(
                "exported {} from {} to {to}",
                counted(count, "key"),
                data_dir.display()
            );
        }
        Command::Import { file, into } => undo_new_dir(&into.data_dir, || {
            let (store, fingerprint) = prepare_import(&into, &file)?;
            let input = open(&file)?;
            let size = input.metadata().map_or(0, |m| m.len());
            let bar = progress(size, "bytes");
            let summary = transfer::import(&store, BufReader::new(input), into.mode, |bytes| {
                bar.inc(bytes as u64)
            })?;
            bar.finish_and_clear();
            finish_import(
                &store,
                &fingerprint,
                into.mode,
                &summary,
                &file,
                Input::Lines,
            )
        })?,
        Command::ImportSeed { database, into } => undo_new_dir(&into.data_dir, || {
            let (store, fingerprint) = prepare_import(&into, &database)?;
            let summary = transfer::import_seed(&store, &database, into.mode)?;
            finish_import(
                &store,
                &fingerprint,
                into.mode,
                &summary,
                &database,
                Input::Rows,
            )
        })?,
    }
    Ok(())
}

/// Runs an import into `data_dir`; if it fails, removes what of `data_dir` it created, so that
/// a failed import leaves no empty store behind (an import may make a new data dir, to restore).
fn undo_new_dir(
    data_dir: &Path,
    import: impl FnOnce() -> Result<(), CliError>,
) -> Result<(), CliError> {
    // The outermost missing directory: opening the store creates it and everything under it.
    let created = data_dir
        .ancestors()
        .take_while(|dir| !dir.as_os_str().is_empty() && std::fs::symlink_metadata(dir).is_err())
        .last()
        .map(Path::to_path_buf);
    let result = import();
    if let (Err(_), Some(created)) = (&result, created) {
        match std::fs::remove_dir_all(&created) {
            // Not found: the import failed before it opened the store.
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                eprintln!("hitcounter: cannot remove {}: {err}", created.display());
            }
            _ => {}
        }
    }
    result
}

/// Fingerprints the input, then opens the data dir (so a missing input creates nothing),
/// refusing an add-mode re-import of it.
fn prepare_import(into: &ImportOptions, input: &PathBuf) -> Result<(Store, String), CliError> {
    let fingerprint = transfer::fingerprint(&mut open(input)?).map_err(TransferError::from)?;
    let store = Store::open(&into.data_dir)?;
    transfer::check_not_imported(&store, &fingerprint, into.mode, into.force)?;
    Ok((store, fingerprint))
}

fn open(path: &PathBuf) -> Result<File, CliError> {
    File::open(path).map_err(|source| CliError::File {
        path: path.clone(),
        source,
    })
}

/// A progress bar on standard error, drawn only on a terminal.
fn progress(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {unit}")) {
        bar.set_style(style);
    }
    bar
}

/// What an import reads: lines of JSON records, or the rows of a SQLite file.
#[derive(Debug, Clone, Copy)]
enum Input {
    Lines,
    Rows,
}

/// `n` and `noun`, the noun in the plural unless `n` is 1.
fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Reports skipped lines or rows, records the import, and prints the summary line.
fn finish_import(
    store: &Store,
    fingerprint: &str,
    mode: Mode,
    summary: &ImportSummary,
    from: &std::path::Path,
    input: Input,
) -> Result<(), CliError> {
    let (record, part) = match input {
        Input::Lines => ("record", "line"),
        Input::Rows => ("row", "row"),
    };
    for (number, reason) in &summary.skipped {
        if *number > 0 {
            eprintln!("{}: {part} {number} skipped: {reason}", from.display());
        } else {
            eprintln!("{}: skipped: {reason}", from.display());
        }
    }
    transfer::record_import(store, fingerprint, mode, SystemClock.now_ms())?;
    store.flush().map_err(TransferError::from)?;
    eprintln!(
        "imported {} into {} from {}; skipped {}",
        counted(summary.records, record),
        counted(summary.keys, "key"),
        from.display(),
        counted(summary.skipped.len(), part)
    );
    Ok(())
}
