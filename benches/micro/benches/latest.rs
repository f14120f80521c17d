//! What reading a `Latest<T>` costs with the writer idle, against its floor: eight
//! relaxed 8-byte atomic loads of the same 64 bytes (what any torn-free copy of 64 bytes
//! out of shared memory must do), both over the same kind of shared mapping. Run:
//! `cargo bench -p shmkit-benches --features bench --bench latest`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use shmkit_typed::Latest;

fn read_64_bytes(c: &mut Criterion) {
    let mut g = c.benchmark_group("read 64 B, writer idle");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut cell = Latest::<[u64; 8]>::anonymous([1; 8]).expect("latest");
    cell.publish([2; 8]).expect("publish");
    g.bench_function("Latest<[u64; 8]>::read", |b| {
        b.iter(|| black_box(cell.read()))
    });
    g.bench_function("Latest<[u64; 8]>::get", |b| {
        b.iter(|| black_box(cell.get()))
    });
    g.bench_function("Latest<[u64; 8]>::sequence", |b| {
        b.iter(|| black_box(cell.sequence()))
    });
    // The floor: the same 64 bytes of the same kind of mapping, eight Relaxed loads.
    let seg = shmkit_segment::Segment::options()
        .anonymous()
        .size(64)
        .create()
        .expect("segment");
    // SAFETY: the payload is 128-byte aligned, 64 bytes long, zeroed (valid atomics),
    // and `seg` outlives every use of `words`.
    let words = unsafe { &*seg.payload_ptr().cast::<[AtomicU64; 8]>() };
    g.bench_function("8 relaxed AtomicU64 loads", |b| {
        b.iter(|| {
            let mut out = [0u64; 8];
            for (o, w) in out.iter_mut().zip(black_box(words)) {
                *o = w.load(Ordering::Relaxed);
            }
            black_box(out)
        })
    });
    g.finish();
}

/// `criterion_group!` makes an undocumented `pub fn`; keep the allowance to it.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, read_64_bytes);
}
criterion_main!(group::benches);
