//! Reads a stopped server's data dir and sums the stored totals of the pages named on stdin.
//!
//! `benches/scale.sh` uses it to check that every hit of its flood was stored. The library's
//! `Store` has no way to list its keys (there is no admin export yet), so the pages to sum are
//! given one per line on stdin; the number of keys in the store (`Store::len`) is printed beside
//! the sum, so a stray key would show too.
//!
//! ```sh
//! seq 0 9 | sed 's|^|bench.example/f|' | cargo run --release --example sum_counts -- DATA_DIR
//! # keys=10 listed=10 found=10 sum=10
//! ```
//!
//! The server must be stopped first: sled allows one process per data dir.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hitcounter::store::Store;

/// The command line.
#[derive(Parser)]
struct Args {
    /// The data dir of a stopped hitcounter.
    data_dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let store = match Store::open(&args.data_dir) {
        Ok(store) => store,
        Err(err) => {
            eprintln!("sum_counts: {err}");
            return ExitCode::FAILURE;
        }
    };
    let (mut listed, mut found, mut sum) = (0_u64, 0_u64, 0_u64);
    for line in std::io::stdin().lock().lines() {
        let key = match line {
            Ok(key) => key,
            Err(err) => {
                eprintln!("sum_counts: cannot read stdin: {err}");
                return ExitCode::FAILURE;
            }
        };
        listed += 1;
        match store.get(&key) {
            Ok(Some(count)) => {
                found += 1;
                sum += count;
            }
            Ok(None) => {}
            Err(err) => {
                eprintln!("sum_counts: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "keys={} listed={listed} found={found} sum={sum}",
        store.len()
    );
    ExitCode::SUCCESS
}
