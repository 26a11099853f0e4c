//! Badge rendering, per style: every badge request renders one.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hitcounter::render::badge::{self, Look, Style};

fn rendering(c: &mut Criterion) {
    let mut group = c.benchmark_group("badge::render");
    for (name, style) in Style::ALL {
        let look = Look {
            style,
            ..Look::default()
        };
        group.bench_with_input(BenchmarkId::from_parameter(name), &look, |b, look| {
            b.iter(|| badge::render(black_box(look), black_box("12345")))
        });
    }
    group.finish();
}

criterion_group!(benches, rendering);
criterion_main!(benches);
