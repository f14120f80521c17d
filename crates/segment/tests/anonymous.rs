//! Anonymous segments are inherited by fork children: writes in any process are seen
//! by all, and the memory outlives every child.

use std::sync::atomic::{AtomicU64, Ordering};

use shmkit_segment::{Backend, Segment};
use shmkit_testkit::{fork_child, Exit};

#[test]
fn fork_children_share_anonymous_memory() {
    let seg = Segment::options()
        .anonymous()
        .size(4096)
        .create_with(|p, _| {
            // SAFETY: the payload is ours alone until READY; 128-aligned, 8 bytes fit.
            unsafe { p.cast::<u64>().write(1000) };
        })
        .unwrap();
    assert_eq!(seg.backend(), Backend::Anonymous);
    // SAFETY: the payload is 128-byte aligned and 4096 bytes long; only atomics touch
    // this word from here on, in every process.
    let counter = unsafe { &*seg.payload_ptr().cast::<AtomicU64>() };
    assert_eq!(
        counter.load(Ordering::Relaxed),
        1000,
        "init ran before READY"
    );
    let per_child = shmkit_testkit::stress(10_000, 1_000_000) as u64;
    let children: Vec<_> = (0..4)
        .map(|_| {
            fork_child(|| {
                for _ in 0..per_child {
                    // Relaxed: a counter; the parent reads it after waitpid.
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                0
            })
        })
        .collect();
    for mut c in children {
        assert_eq!(c.wait(), Exit::Code(0));
    }
    assert_eq!(counter.load(Ordering::Relaxed), 1000 + 4 * per_child);
}
