//! The counting hot path: a hit on a cached key, a hit on a key never seen, and a read; and the
//! flusher's work: writing and fsyncing many dirty keys at once.

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;

use hitcounter::clock::SystemClock;
use hitcounter::counting::Counter;
use hitcounter::store::Store;

/// A counter over a store in a fresh temporary directory (kept alive beside it).
fn new_counter() -> (tempfile::TempDir, Counter) {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => panic!("no temp dir: {err}"),
    };
    let store = match Store::open(dir.path()) {
        Ok(store) => store,
        Err(err) => panic!("cannot open the store: {err}"),
    };
    (dir, Counter::new(store, 10_000_000, Arc::new(SystemClock)))
}

fn counting(c: &mut Criterion) {
    let (_dir, counter) = new_counter();
    let mut group = c.benchmark_group("counter");

    let hot = "example.com/hot";
    let stored = "example.com/stored";
    let _ = counter.hit(hot);
    let _ = counter.hit(stored);
    group.bench_with_input(BenchmarkId::new("hit", "cached-key"), hot, |b, key| {
        b.iter(|| counter.hit(black_box(key)))
    });

    group.bench_with_input(BenchmarkId::new("peek", "cached-key"), hot, |b, key| {
        b.iter(|| counter.peek(black_box(key)))
    });
    // Two flushes: the first makes the keys clean, the second evicts them as idle.
    let _ = counter.flush();
    let _ = counter.flush();
    group.bench_with_input(BenchmarkId::new("peek", "stored-key"), stored, |b, key| {
        b.iter(|| counter.peek(black_box(key)))
    });

    // A counter of its own, never flushed: a run makes millions of new keys, and one flush of
    // them all (one sled transaction) takes gigabytes.
    let (_new_dir, fresh) = new_counter();
    let mut n = 0u64;
    group.bench_function(BenchmarkId::new("hit", "new-key"), |b| {
        b.iter(|| {
            n += 1;
            fresh.hit(black_box(&format!("example.com/new/{n}")))
        })
    });
    group.finish();
}

/// One flush of `n` (1k, 10k) dirty keys, each way it can go: appended to the journal and
/// fsynced (every flush between checkpoints), or a checkpoint (their packed counts written into
/// sled key by key, in key order, then fsynced, about once a minute). The hits that make them
/// dirty are set up outside the timing.
fn flushing(c: &mut Criterion) {
    let mut group = c.benchmark_group("counter::flush");
    // A flush is milliseconds, not nanoseconds: fewer samples keep the run short.
    group.sample_size(10);
    for n in [1_000_usize, 10_000] {
        let keys: Vec<String> = (0..n).map(|i| format!("example.com/page/{i}")).collect();
        group.throughput(Throughput::Elements(n as u64));
        for way in ["journal", "checkpoint"] {
            let (_dir, counter) = new_counter();
            let id = BenchmarkId::new(format!("dirty-keys/{way}"), n);
            group.bench_with_input(id, &keys, |b, keys| {
                b.iter_batched(
                    || {
                        for key in keys {
                            if let Err(err) = counter.hit(key) {
                                panic!("hit failed: {err}");
                            }
                        }
                    },
                    |()| {
                        let flushed = if way == "checkpoint" {
                            counter.checkpoint()
                        } else {
                            counter.flush()
                        };
                        match flushed {
                            // At least: a day that ends mid-run adds its retired counts.
                            Ok(report) => assert!(report.written >= n, "{report:?}"),
                            Err(err) => panic!("flush failed: {err}"),
                        }
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, counting, flushing);
criterion_main!(benches);
