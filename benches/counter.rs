//! The counting hot path: a hit on a cached key, a hit on a key never seen, and a read.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::sync::Arc;

use hitcounter::clock::SystemClock;
use hitcounter::counter::Counter;
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

criterion_group!(benches, counting);
criterion_main!(benches);
