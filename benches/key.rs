//! Key normalisation: the first work of every request.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hitcounter::request::key::normalise;

fn normalisation(c: &mut Criterion) {
    let mut group = c.benchmark_group("key::normalise");
    let long_path = format!("https://example.com/{}", "segment/".repeat(40));
    let inputs = [
        ("bare-host", "example.com"),
        (
            "referer",
            "https://blog.example.com/2026/11/a-post-title/?utm_source=x#comments",
        ),
        ("unicode-host", "https://bücher.example/straße/"),
        ("long-path", long_path.as_str()),
    ];
    for (name, input) in inputs {
        group.bench_with_input(BenchmarkId::from_parameter(name), input, |b, input| {
            b.iter(|| normalise(black_box(input), 2048))
        });
    }
    group.finish();
}

criterion_group!(benches, normalisation);
criterion_main!(benches);
