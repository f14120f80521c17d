//! A cyclic barrier in shared memory, as Python's `multiprocessing.Barrier`: `wait`
//! returns the arrival index; a timeout breaks the barrier for everyone
//! (`BrokenBarrierError`) until `reset`.
//!
//! `generation` is the futex word: `round << 1 | BROKEN`. The last arrival resets the
//! count and advances the round (Release), waking all; a waiter that times out sets
//! `BROKEN` (only if its round is still current), waking all.

use std::time::Duration;

use crate::atomic::{AtomicU32, Ordering::*};
use crate::error::BarrierError;
use crate::futex::{Deadline, WaitOutcome};
use crate::wait::{spin_until, Futex, Waiter};

const BROKEN: u32 = 1;
const ROUND: u32 = 2;

/// A barrier for a fixed number of parties. `#[repr(C)]`, 16 bytes, pointer-free,
/// `Sync`. Not valid when zeroed (0 parties): use [`Barrier::new`] or
/// [`Barrier::init_in_place`].
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shmkit_sync::{Barrier, BarrierError};
///
/// let b = Barrier::new(2);
/// let (mine, theirs) = std::thread::scope(|s| {
///     let other = s.spawn(|| b.wait());
///     (b.wait(), other.join().unwrap())
/// });
/// let mut order = [mine?, theirs?];
/// order.sort();
/// assert_eq!(order, [0, 1]); // each party gets its arrival index
/// // A party that waits in vain breaks the barrier for everyone, until `reset`.
/// assert_eq!(b.wait_timeout(Duration::from_millis(10)), Err(BarrierError::Broken));
/// assert!(b.is_broken());
/// b.reset();
/// assert!(!b.is_broken());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct Barrier {
    /// Arrivals in the current round.
    arrived: AtomicU32,
    /// `round << 1 | BROKEN` (the futex word).
    generation: AtomicU32,
    /// Number of parties.
    parties: AtomicU32,
    _reserved: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Barrier>() == 16);

impl Barrier {
    /// A barrier for `parties` parties.
    ///
    /// # Panics
    /// If `parties == 0`.
    ///
    /// # Examples
    /// ```
    /// use shmkit_sync::Barrier;
    ///
    /// let b = Barrier::new(1);
    /// assert_eq!(b.parties(), 1);
    /// assert_eq!(b.wait()?, 0); // one party: never waits
    /// assert_eq!(b.wait()?, 0); // cyclic: usable again at once
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(parties: u32) -> Self {
        assert!(parties > 0, "a barrier needs at least one party");
        Barrier {
            arrived: AtomicU32::new(0),
            generation: AtomicU32::new(0),
            parties: AtomicU32::new(parties),
            _reserved: AtomicU32::new(0),
        }
    }

    /// Initialises a barrier in place.
    ///
    /// # Safety
    /// `ptr` must be valid for writes, 4-aligned, and not in use by anyone.
    ///
    /// # Panics
    /// If `parties == 0`.
    ///
    /// # Examples
    /// A parent and a forked child meet at a barrier in shared memory:
    /// ```
    /// use shmkit_segment::Segment;
    /// use shmkit_sync::Barrier;
    ///
    /// let seg = Segment::options().anonymous().size(size_of::<Barrier>()).create()?;
    /// let ptr = seg.payload_ptr().cast::<Barrier>();
    /// // SAFETY: the payload is 128-byte aligned, large enough, and nobody uses it yet.
    /// unsafe { Barrier::init_in_place(ptr, 2) };
    /// // SAFETY: initialised above; `seg` keeps it mapped while `b` is used.
    /// let b = unsafe { &*ptr };
    /// // SAFETY: this example is single-threaded, so the child may run any code.
    /// let child = unsafe { libc::fork() };
    /// if child == 0 {
    ///     let code = if b.wait().is_ok() { 0 } else { 1 };
    ///     // SAFETY: ends the child without running the parent's exit code.
    ///     unsafe { libc::_exit(code) }
    /// }
    /// b.wait()?;
    /// let mut status = 0;
    /// // SAFETY: `child` is our child's pid; `status` is a valid out-pointer.
    /// assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    /// assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub unsafe fn init_in_place(ptr: *mut Self, parties: u32) {
        let b = Self::new(parties);
        // SAFETY: the caller guarantees `ptr` is valid, aligned and unused.
        unsafe { ptr.write(b) }
    }

    /// The number of parties.
    ///
    /// # Examples
    /// ```
    /// use shmkit_sync::Barrier;
    ///
    /// assert_eq!(Barrier::new(4).parties(), 4);
    /// ```
    pub fn parties(&self) -> u32 {
        // Relaxed: fixed since initialisation.
        self.parties.load(Relaxed)
    }

    /// Whether the barrier is broken.
    ///
    /// # Examples
    /// ```
    /// use shmkit_sync::Barrier;
    ///
    /// let b = Barrier::new(2);
    /// assert!(!b.is_broken());
    /// b.abort();
    /// assert!(b.is_broken());
    /// ```
    pub fn is_broken(&self) -> bool {
        // Relaxed: a snapshot.
        self.generation.load(Relaxed) & BROKEN != 0
    }

    /// Waits until all parties have arrived; returns this caller's arrival index
    /// (`0..parties`).
    ///
    /// # Errors
    /// [`BarrierError::Broken`] if the barrier is or becomes broken.
    ///
    /// # Examples
    /// ```
    /// use shmkit_sync::Barrier;
    ///
    /// let b = Barrier::new(3);
    /// let mut indices: Vec<usize> = std::thread::scope(|s| {
    ///     let handles: Vec<_> = (0..3).map(|_| s.spawn(|| b.wait())).collect();
    ///     handles.into_iter().map(|h| h.join().unwrap()).collect::<Result<_, _>>()
    /// })?;
    /// indices.sort();
    /// assert_eq!(indices, [0, 1, 2]); // nobody passed before all three arrived
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(&self) -> Result<usize, BarrierError> {
        self.wait_with(&Futex, None)
    }

    /// As [`wait`](Self::wait), but breaks the barrier (for everyone) if the other
    /// parties do not arrive within `timeout`.
    ///
    /// # Errors
    /// [`BarrierError::Broken`] on timeout or if the barrier is broken.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shmkit_sync::Barrier;
    ///
    /// let b = Barrier::new(2);
    /// let r = std::thread::scope(|s| {
    ///     let other = s.spawn(|| b.wait_timeout(Duration::from_secs(10)));
    ///     (b.wait_timeout(Duration::from_secs(10)), other.join().unwrap())
    /// });
    /// assert!(r.0.is_ok() && r.1.is_ok()); // both arrived in time
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize, BarrierError> {
        self.wait_with(&Futex, Some(&Deadline::after(timeout)))
    }

    /// Breaks the barrier: current and future waiters get `Broken` until `reset`.
    ///
    /// # Examples
    /// ```
    /// use shmkit_sync::{Barrier, BarrierError};
    ///
    /// let b = Barrier::new(3);
    /// b.abort(); // e.g. one party failed: release the others with an error
    /// assert_eq!(b.wait(), Err(BarrierError::Broken));
    /// b.reset();
    /// assert!(!b.is_broken());
    /// ```
    pub fn abort(&self) {
        self.abort_with(&Futex)
    }

    /// Makes a broken (or used) barrier fresh again. Call it only while no party is
    /// waiting.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shmkit_sync::Barrier;
    ///
    /// let b = Barrier::new(2);
    /// assert!(b.wait_timeout(Duration::from_millis(5)).is_err()); // breaks it
    /// b.reset(); // with nobody waiting
    /// let n = std::thread::scope(|s| {
    ///     let other = s.spawn(|| b.wait());
    ///     b.wait().and(other.join().unwrap())
    /// })?;
    /// assert!(n < 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reset(&self) {
        // Relaxed: nobody is waiting (documented precondition); the Release below
        // publishes the reset count with the new round.
        self.arrived.store(0, Relaxed);
        let g = self.generation.load(Relaxed);
        self.generation
            .store((g & !BROKEN).wrapping_add(ROUND), Release);
        Futex.wake(&self.generation, u32::MAX);
    }

    fn abort_with<W: Waiter>(&self, w: &W) {
        // Relaxed: breaking publishes no data.
        self.generation.fetch_or(BROKEN, Relaxed);
        w.wake(&self.generation, u32::MAX);
    }

    pub(crate) fn wait_with<W: Waiter>(
        &self,
        w: &W,
        deadline: Option<&Deadline>,
    ) -> Result<usize, BarrierError> {
        // Acquire: pairs with the Release round advance of the previous round, so the
        // count reset is visible before we add to it.
        let gen = self.generation.load(Acquire);
        if gen & BROKEN != 0 {
            return Err(BarrierError::Broken);
        }
        // AcqRel: Release publishes our pre-barrier writes to the last arrival, Acquire
        // lets the last arrival see everyone's.
        let idx = self.arrived.fetch_add(1, AcqRel);
        if idx + 1 == self.parties() {
            // Relaxed: published by the Release CAS below.
            self.arrived.store(0, Relaxed);
            // Release: publishes every party's pre-barrier writes (gathered by the AcqRel
            // counts) to the waiters' Acquire loads.
            let advanced = self
                .generation
                .compare_exchange(gen, gen.wrapping_add(ROUND), Release, Relaxed)
                .is_ok();
            w.wake(&self.generation, u32::MAX);
            return if advanced {
                Ok(idx as usize)
            } else {
                Err(BarrierError::Broken)
            };
        }
        loop {
            let g = spin_until(&self.generation, |g| g != gen);
            if g == gen | BROKEN {
                return Err(BarrierError::Broken);
            }
            if g != gen {
                // Acquire: pairs with the last arrival's Release.
                let _ = self.generation.load(Acquire);
                return Ok(idx as usize);
            }
            let out = w.wait(&self.generation, gen, deadline);
            let give_up = match out {
                Ok(WaitOutcome::TimedOut) if deadline.is_some_and(Deadline::has_passed) => {
                    BarrierError::Broken
                }
                Ok(_) => continue,
                // A failing wait is never retried (a retry would fail at once): leave
                // as a timeout does, breaking the round so no party waits for us.
                Err(e) => BarrierError::Os(e),
            };
            // Break it only if our round is still current.
            // Relaxed: breaking publishes no data.
            match self
                .generation
                .compare_exchange(gen, gen | BROKEN, Relaxed, Relaxed)
            {
                Ok(_) => {
                    w.wake(&self.generation, u32::MAX);
                    return Err(give_up);
                }
                // The round completed (or broke) meanwhile: the next pass reports it.
                Err(_) => continue,
            }
        }
    }
}

/// Loom model of a barrier round (no lost wake-up, distinct indices). Run with:
/// `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p shmkit-sync --release --lib loom`
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::wait::loom_model::{Kernel, LoomWaiter};
    use loom::sync::Arc;

    #[test]
    fn loom_barrier_releases_every_party_with_distinct_indices() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let kernel = Kernel::with_dead(vec![]);
            let barrier = Arc::new(Barrier::new(3));
            let parties: Vec<_> = (1..=2)
                .map(|tid| {
                    let (barrier, kernel) = (barrier.clone(), kernel.clone());
                    loom::thread::spawn(move || {
                        let w = LoomWaiter { kernel, me: tid };
                        barrier.wait_with(&w, None).unwrap()
                    })
                })
                .collect();
            let mine = barrier
                .wait_with(&LoomWaiter { kernel, me: 3 }, None)
                .unwrap();
            let mut seen = 1u32 << mine;
            for p in parties {
                seen |= 1 << p.join().unwrap();
            }
            assert_eq!(seen, 0b111);
        });
    }
}
