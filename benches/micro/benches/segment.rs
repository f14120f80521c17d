//! What a segment costs to make and to attach, per backend: `create` + drop (which
//! removes the name) and `open` + drop of an existing segment, 4 KiB payload.
//! Quick settings (short warm-up and measurement): run with
//! `cargo bench -p shmkit-benches --features bench --bench segment`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use shmkit_segment::{Segment, SegmentOptions};

const PAYLOAD: usize = 4096;

/// One place per backend, removed on drop even if a benchmark panics.
struct Place {
    name: &'static str,
    posix: String,
    key: i32,
    path: std::path::PathBuf,
}

impl Place {
    fn all() -> Vec<Place> {
        let pid = std::process::id();
        ["posix", "sysv", "file", "anonymous"]
            .into_iter()
            .map(|name| Place {
                name,
                posix: format!("shmkit-bench-{pid}"),
                key: 0x5b00_0000 | (pid & 0xffff) as i32,
                path: std::env::temp_dir().join(format!("shmkit-bench-{pid}")),
            })
            .collect()
    }

    fn options(&self) -> SegmentOptions {
        match self.name {
            "posix" => Segment::options().posix(&self.posix),
            "sysv" => Segment::options().sysv(self.key),
            // Files persist by default: opt in to removal so each round starts clean.
            "file" => Segment::options().file(&self.path).unlink_on_drop(true),
            _ => Segment::options().anonymous(),
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let _ = shmkit_segment::remove(&self.posix);
        let _ = shmkit_segment::remove_sysv(self.key);
        let _ = std::fs::remove_file(&self.path);
    }
}

fn create_drop(c: &mut Criterion) {
    let mut g = c.benchmark_group("create+drop");
    for place in Place::all() {
        g.bench_function(place.name, |b| {
            b.iter(|| drop(place.options().size(PAYLOAD).create().expect("create")))
        });
    }
    g.finish();
}

fn open_drop(c: &mut Criterion) {
    let mut g = c.benchmark_group("open+drop");
    for place in Place::all() {
        if place.name == "anonymous" {
            continue; // no name to open by
        }
        let _creator = place.options().size(PAYLOAD).create().expect("create");
        g.bench_function(place.name, |b| {
            b.iter(|| drop(place.options().unlink_on_drop(false).open().expect("open")))
        });
    }
    g.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

/// `criterion_group!` makes an undocumented `pub fn`; keep the allowance to it.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group! {
        name = benches;
        config = quick();
        targets = create_drop, open_drop
    }
}
criterion_main!(group::benches);
