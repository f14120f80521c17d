//! Mutex benchmarks: shmkit's `Mutex` against a process-shared pthread mutex, a robust
//! process-shared pthread mutex and `raw_sync`'s mutex, all placed in the same kind of
//! `MAP_SHARED` memory and driven by the same harness (a small local trait, as in
//! parking_lot's benchmark).
//!
//! - `uncontended`: one lock + increment + unlock in one process.
//! - `contended_2proc`: two processes (this one and a forked child) each do `iters`
//!   lock + increment + unlock on the same lock; the time reported per iteration is
//!   the wall time for both processes' `iters` rounds divided by `iters`.
//!
//! Run briefly: `cargo bench -p shmkit-benches --features bench --bench mutex -- --warm-up-time 1 --measurement-time 2`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use shmkit_sync::Mutex;
use shmkit_testkit::{fork_child, Pipe, SharedRegion};

/// A lock under test, living at the start of a shared region and protecting a `u64`.
trait BenchLock {
    /// Shown in the report.
    const NAME: &'static str;
    /// Builds the lock in `region` (zero-filled, page aligned, 4096 bytes).
    fn init(region: &SharedRegion) -> Self;
    /// Lock, increment the protected counter, unlock.
    fn locked_increment(&self);
    /// The counter (read without synchronisation after all users finished).
    fn count(&self) -> u64;
}

struct Shmkit(&'static Mutex<u64>);

impl BenchLock for Shmkit {
    const NAME: &'static str = "shmkit Mutex (owner-death detection on)";
    fn init(region: &SharedRegion) -> Self {
        // SAFETY: the region is zeroed, page aligned and outlives the benchmark (leaked
        // by the caller); Mutex<u64> is valid when zeroed.
        Shmkit(unsafe { &*(region.as_ptr() as *const Mutex<u64>) })
    }
    #[inline]
    fn locked_increment(&self) {
        let mut g = self.0.lock().unwrap_or_else(|_| unreachable!());
        *g += 1;
    }
    fn count(&self) -> u64 {
        *self.0.lock().unwrap_or_else(|_| unreachable!())
    }
}

/// glibc's `PTHREAD_MUTEX_ROBUST` (not exported by the libc crate for Linux).
const PTHREAD_MUTEX_ROBUST: libc::c_int = 1;

struct Pthread {
    m: *mut libc::pthread_mutex_t,
    counter: *mut u64,
}

fn pthread_init(region: &SharedRegion, robust: bool) -> Pthread {
    let m = region.as_ptr() as *mut libc::pthread_mutex_t;
    // SAFETY: standard attribute setup on a local attr object, then initialising a
    // mutex in our own zeroed, aligned shared memory; every call's result is checked.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        assert_eq!(libc::pthread_mutexattr_init(&mut attr), 0);
        assert_eq!(
            libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
            0
        );
        if robust {
            assert_eq!(
                libc::pthread_mutexattr_setrobust(&mut attr, PTHREAD_MUTEX_ROBUST),
                0
            );
        }
        assert_eq!(libc::pthread_mutex_init(m, &attr), 0);
        libc::pthread_mutexattr_destroy(&mut attr);
    }
    Pthread {
        m,
        // SAFETY: offset 128 is inside the 4096-byte region and 8-aligned.
        counter: unsafe { region.as_ptr().add(128) as *mut u64 },
    }
}

impl Pthread {
    #[inline]
    fn locked_increment(&self) {
        // SAFETY: the mutex was initialised by pthread_init; the counter is only
        // touched while it is held.
        unsafe {
            let rc = libc::pthread_mutex_lock(self.m);
            debug_assert_eq!(rc, 0);
            *self.counter += 1;
            libc::pthread_mutex_unlock(self.m);
        }
    }
    fn count(&self) -> u64 {
        // SAFETY: read after every user finished.
        unsafe { *self.counter }
    }
}

struct PthreadShared(Pthread);
impl BenchLock for PthreadShared {
    const NAME: &'static str = "pthread mutex (PROCESS_SHARED)";
    fn init(region: &SharedRegion) -> Self {
        PthreadShared(pthread_init(region, false))
    }
    fn locked_increment(&self) {
        self.0.locked_increment()
    }
    fn count(&self) -> u64 {
        self.0.count()
    }
}

struct PthreadRobust(Pthread);
impl BenchLock for PthreadRobust {
    const NAME: &'static str = "pthread mutex (PROCESS_SHARED + ROBUST)";
    fn init(region: &SharedRegion) -> Self {
        PthreadRobust(pthread_init(region, true))
    }
    fn locked_increment(&self) {
        self.0.locked_increment()
    }
    fn count(&self) -> u64 {
        self.0.count()
    }
}

struct RawSync {
    lock: Box<dyn raw_sync::locks::LockImpl>,
}
impl BenchLock for RawSync {
    const NAME: &'static str = "raw_sync Mutex (pthread, PROCESS_SHARED)";
    fn init(region: &SharedRegion) -> Self {
        use raw_sync::locks::LockInit;
        // SAFETY: the lock lives at the region's start, its data (a u64) at offset 256,
        // both inside our zeroed shared region, which outlives the benchmark.
        let (lock, _) = unsafe {
            raw_sync::locks::Mutex::new(region.as_ptr(), region.as_ptr().add(256))
                .expect("raw_sync mutex")
        };
        RawSync { lock }
    }
    #[inline]
    fn locked_increment(&self) {
        let g = self.lock.lock().expect("raw_sync lock");
        // SAFETY: the guard derefs to the data pointer (our u64), held exclusively.
        unsafe { *(*g as *mut u64) += 1 };
    }
    fn count(&self) -> u64 {
        let g = self.lock.lock().expect("raw_sync lock");
        // SAFETY: as above.
        unsafe { *(*g as *const u64) }
    }
}

fn bench_one<L: BenchLock>(c: &mut Criterion) {
    // Leaked on purpose: the locks refer to it for the whole run (a few pages).
    let region: &'static SharedRegion = Box::leak(Box::new(SharedRegion::new(4096)));
    let lock = L::init(region);

    c.benchmark_group("uncontended lock+unlock")
        .bench_function(L::NAME, |b| b.iter(|| lock.locked_increment()));

    c.benchmark_group("contended_2proc lock+unlock (per round of both)")
        .bench_function(L::NAME, |b| {
            b.iter_custom(|iters| {
                let go = Pipe::new();
                let before = lock.count();
                let child = fork_child(|| {
                    go.recv();
                    for _ in 0..iters {
                        lock.locked_increment();
                    }
                    0
                });
                let start = Instant::now();
                go.send(1);
                for _ in 0..iters {
                    lock.locked_increment();
                }
                child.join_ok();
                let elapsed = start.elapsed();
                assert_eq!(lock.count() - before, 2 * iters);
                elapsed
            })
        });
}

fn benches(c: &mut Criterion) {
    bench_one::<Shmkit>(c);
    bench_one::<PthreadShared>(c);
    bench_one::<PthreadRobust>(c);
    bench_one::<RawSync>(c);
}

/// `criterion_group!` makes an undocumented `pub fn`; keep the allowance to it.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group! {
        name = mutex;
        config = Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(2));
        targets = benches
    }
}
criterion_main!(group::mutex);
