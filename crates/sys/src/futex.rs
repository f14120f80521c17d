//! Process-shared futex wait/wake and monotonic deadlines.
//!
//! This is the only place in shmkit that calls `futex(2)`. Every wait is a *shared*
//! futex (no `FUTEX_PRIVATE_FLAG`), because the word lives in memory mapped by several
//! processes; the kernel keys shared futexes by the backing page, not the address, so
//! two processes that map the same segment at different addresses still meet.
//!
//! Timeouts are absolute deadlines on `CLOCK_MONOTONIC` (`FUTEX_WAIT_BITSET` takes an
//! absolute time, `FUTEX_WAIT` a relative one): a wait that is interrupted and resumed
//! does not stretch its timeout, and a change of the wall clock does not shorten or
//! lengthen it (the bug behind raw_sync #39).
//!
//! The syscalls go through `rustix::thread::futex` (`wait_bitset` with
//! `FUTEX_BITSET_MATCH_ANY`, `wake`, and `waitv` for [`wait_any`]): safe wrappers, no
//! `unsafe` here.

use std::num::NonZeroU32;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex::{self as sys_futex, Flags, Timespec};

/// An absolute point in time on `CLOCK_MONOTONIC`, the clock the kernel uses for
/// `FUTEX_WAIT_BITSET` without `FUTEX_CLOCK_REALTIME`.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shmkit_sys::futex::Deadline;
///
/// let later = Deadline::after(Duration::from_secs(60));
/// assert!(!later.has_passed());
/// assert!(later.remaining() <= Duration::from_secs(60));
/// let now = Deadline::now();
/// assert!(now.has_passed() && now < later);
/// assert_eq!(now.remaining(), Duration::ZERO);
/// assert_eq!(Deadline::from_timeout(None), None); // no timeout: wait forever
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline {
    /// Nanoseconds since the (arbitrary) epoch of `CLOCK_MONOTONIC`.
    nanos: u128,
}

fn monotonic_now_nanos() -> u128 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

impl Deadline {
    /// The current time.
    ///
    /// # Examples
    /// ```
    /// use shmkit_sys::futex::Deadline;
    ///
    /// let a = Deadline::now();
    /// let b = Deadline::now();
    /// assert!(a <= b && a.has_passed()); // monotonic: never goes backwards
    /// ```
    pub fn now() -> Self {
        Deadline {
            nanos: monotonic_now_nanos(),
        }
    }

    /// The point `timeout` from now. Saturates instead of overflowing for huge timeouts.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shmkit_sys::futex::Deadline;
    ///
    /// let d = Deadline::after(Duration::from_secs(5));
    /// assert!(d > Deadline::now() && d.remaining() <= Duration::from_secs(5));
    /// let forever = Deadline::after(Duration::MAX); // saturates: effectively no deadline
    /// assert!(!forever.has_passed());
    /// ```
    pub fn after(timeout: Duration) -> Self {
        Deadline {
            nanos: monotonic_now_nanos().saturating_add(timeout.as_nanos()),
        }
    }

    /// The point `when`, read on the same clock (`Instant` is `CLOCK_MONOTONIC` on
    /// Linux). An `Instant` in the past is a deadline that has passed; one too far
    /// ahead to reach saturates, which means no deadline.
    ///
    pub fn at(when: Instant) -> Self {
        Self::after(when.saturating_duration_since(Instant::now()))
    }

    /// `None` → no deadline; `Some(d)` → `Deadline::after(d)`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shmkit_sys::futex::Deadline;
    ///
    /// assert_eq!(Deadline::from_timeout(None), None); // wait forever
    /// let d = Deadline::from_timeout(Some(Duration::from_secs(1))).expect("some");
    /// assert!(!d.has_passed());
    /// ```
    pub fn from_timeout(timeout: Option<Duration>) -> Option<Self> {
        timeout.map(Self::after)
    }

    /// Whether the deadline is now or in the past.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shmkit_sys::futex::Deadline;
    ///
    /// assert!(!Deadline::after(Duration::from_secs(60)).has_passed());
    /// assert!(Deadline::after(Duration::ZERO).has_passed());
    /// ```
    pub fn has_passed(&self) -> bool {
        monotonic_now_nanos() >= self.nanos
    }

    /// Time left until the deadline (zero once it has passed).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shmkit_sys::futex::Deadline;
    ///
    /// let d = Deadline::after(Duration::from_secs(30));
    /// assert!(d.remaining() > Duration::ZERO && d.remaining() <= Duration::from_secs(30));
    /// assert_eq!(Deadline::now().remaining(), Duration::ZERO); // passed: zero, not negative
    /// ```
    pub fn remaining(&self) -> Duration {
        let now = monotonic_now_nanos();
        let left = self.nanos.saturating_sub(now);
        Duration::from_nanos(u64::try_from(left).unwrap_or(u64::MAX))
    }

    /// As a normalised `timespec` (0 <= tv_nsec < 1e9), as the kernel requires.
    fn as_timespec(&self) -> Timespec {
        let secs = self.nanos / 1_000_000_000;
        Timespec {
            tv_sec: i64::try_from(secs).unwrap_or(i64::MAX),
            tv_nsec: (self.nanos % 1_000_000_000) as _,
        }
    }

    /// Nanoseconds since the (arbitrary) epoch of `CLOCK_MONOTONIC`.
    pub fn as_nanos(&self) -> u128 {
        self.nanos
    }

    /// The earlier of `self` and `other` (`None`: no deadline).
    pub fn min_with(self, other: Option<Deadline>) -> Deadline {
        match other {
            Some(o) if o < self => o,
            _ => self,
        }
    }
}

/// Why [`wait`] returned. Callers must re-check their condition in every case: a
/// futex wait can also return spuriously.
///
/// # Examples
/// ```
/// use std::sync::atomic::AtomicU32;
/// use shmkit_sys::futex::{self, Deadline, WaitOutcome};
///
/// let word = AtomicU32::new(5);
/// assert_eq!(futex::wait(&word, 4, None)?, WaitOutcome::ValueChanged); // not 4: no sleep
/// let soon = Deadline::after(std::time::Duration::from_millis(5));
/// let mut out = futex::wait(&word, 5, Some(&soon))?;
/// while out == WaitOutcome::Woken {
///     out = futex::wait(&word, 5, Some(&soon))?; // spurious: wait again, same deadline
/// }
/// assert_eq!(out, WaitOutcome::TimedOut);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Woken by [`wake`], or returned spuriously, or interrupted by a signal (EINTR).
    Woken,
    /// The word did not hold the expected value when the kernel checked it (EAGAIN).
    ValueChanged,
    /// The deadline passed.
    TimedOut,
}

/// Sleeps while `*word == expected`, until woken by [`wake`] or until `deadline`.
///
/// Returns immediately with [`WaitOutcome::ValueChanged`] if the word already differs
/// (the kernel compares atomically with enqueueing the waiter, so a wake between the
/// caller's check and this call is never lost).
///
/// # Errors
/// Any other failure of `futex(2)` (`EFAULT`, `EINVAL`, `ENOSYS`, ...: an unmapped or
/// misaligned word, a kernel without futexes). It is returned as it is, never mapped
/// to "woken": a caller that retried it would spin on the CPU for ever. Every blocking
/// call of shmkit passes it on as its error type's `Os` variant.
///
/// # Examples
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use shmkit_sys::futex::{self, Deadline, WaitOutcome};
///
/// let word = AtomicU32::new(0);
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         word.store(1, Ordering::Release);
///         futex::wake(&word, 1);
///     });
///     // Re-check after every return: a wait may also end spuriously.
///     while word.load(Ordering::Acquire) == 0 {
///         futex::wait(&word, 0, None)?;
///     }
///     Ok::<(), std::io::Error>(())
/// })?;
/// assert_eq!(futex::wait(&word, 0, None)?, WaitOutcome::ValueChanged);
/// let past = Deadline::now();
/// assert_eq!(futex::wait(&word, 1, Some(&past))?, WaitOutcome::TimedOut);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn wait(
    word: &AtomicU32,
    expected: u32,
    deadline: Option<&Deadline>,
) -> Result<WaitOutcome, crate::OsError> {
    if let Some(d) = deadline {
        if d.has_passed() {
            return Ok(WaitOutcome::TimedOut);
        }
    }
    let ts = deadline.map(Deadline::as_timespec);
    let result = match fault::take() {
        Some(errno) => Err(Errno::from_raw_os_error(errno)),
        // FUTEX_WAIT_BITSET with FUTEX_BITSET_MATCH_ANY behaves as FUTEX_WAIT with an
        // absolute CLOCK_MONOTONIC timeout. No FUTEX_PRIVATE_FLAG: the word is shared
        // between processes.
        None => sys_futex::wait_bitset(word, Flags::empty(), expected, ts.as_ref(), MATCH_ANY),
    };
    match result {
        Ok(()) => Ok(WaitOutcome::Woken),
        Err(Errno::AGAIN) => Ok(WaitOutcome::ValueChanged),
        Err(Errno::TIMEDOUT) => Ok(WaitOutcome::TimedOut),
        // EINTR: a signal arrived; the caller re-checks and waits again with the same
        // absolute deadline.
        Err(Errno::INTR) => Ok(WaitOutcome::Woken),
        // EFAULT/EINVAL/ENOSYS mean a bug (an unmapped or misaligned word, a bad
        // timespec) or a kernel without futexes. Retrying would never sleep again (the
        // same call fails at once), so the caller must give up: return the error.
        Err(errno) => Err(errno.into()),
    }
}

/// Most words one [`wait_any`] takes (the kernel's `FUTEX_WAITV_MAX`).
pub const WAIT_ANY_MAX: usize = 128;

/// Whether the kernel lacks `futex_waitv` (found out once, on the first ENOSYS).
static NO_WAITV: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How long one fallback sleep of [`wait_any`] lasts when the kernel has no
/// `futex_waitv`: the other words are looked at again this often.
pub const WAIT_ANY_FALLBACK_SLICE: Duration = Duration::from_millis(1);

/// Sleeps while every `(word, expected)` of `words` holds (`*word == expected`), until
/// one of the words is woken by [`wake`], or until `deadline`: the multi-word futex
/// wait (`futex_waitv`, Linux 5.16 and later), so a caller waiting for any of several
/// shared objects sleeps in one syscall instead of polling them.
///
/// On a kernel without `futex_waitv` (ENOSYS, remembered for the process) it falls
/// back to paced slices: a wait on the first word for at most
/// [`WAIT_ANY_FALLBACK_SLICE`], after which it returns [`WaitOutcome::Woken`] so the
/// caller re-checks every word (a wake on another word is then seen up to one slice
/// late). As with [`wait`], callers re-check their condition after every return.
///
/// # Errors
/// As [`wait`]; also `EINVAL` for an empty `words` or more than [`WAIT_ANY_MAX`].
///
/// # Examples
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use shmkit_sys::futex::{self, Deadline, WaitOutcome};
///
/// let (a, b) = (AtomicU32::new(0), AtomicU32::new(0));
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         b.store(1, Ordering::Release);
///         futex::wake(&b, 1); // wakes a waiter on `b`: one of the words waited on
///     });
///     while b.load(Ordering::Acquire) == 0 {
///         futex::wait_any(&[(&a, 0), (&b, 0)], None)?;
///     }
///     Ok::<(), std::io::Error>(())
/// })?;
/// // `b` no longer holds 0: no sleep.
/// assert_eq!(futex::wait_any(&[(&a, 0), (&b, 0)], None)?, WaitOutcome::ValueChanged);
/// let soon = Deadline::after(std::time::Duration::from_millis(2));
/// let mut out = futex::wait_any(&[(&a, 0), (&b, 1)], Some(&soon))?;
/// while out == WaitOutcome::Woken {
///     out = futex::wait_any(&[(&a, 0), (&b, 1)], Some(&soon))?;
/// }
/// assert_eq!(out, WaitOutcome::TimedOut);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn wait_any(
    words: &[(&AtomicU32, u32)],
    deadline: Option<&Deadline>,
) -> Result<WaitOutcome, crate::OsError> {
    if words.is_empty() || words.len() > WAIT_ANY_MAX {
        return Err(Errno::INVAL.into());
    }
    if let [(word, expected)] = words {
        return wait(word, *expected, deadline);
    }
    if let Some(d) = deadline {
        if d.has_passed() {
            return Ok(WaitOutcome::TimedOut);
        }
    }
    // Relaxed: a hint; a stale `false` costs one more ENOSYS.
    if NO_WAITV.load(std::sync::atomic::Ordering::Relaxed) {
        return wait_any_fallback(words, deadline);
    }
    let mut raw = [AnyWord {
        addr: 0,
        expected: 0,
    }; WAIT_ANY_MAX];
    for (r, (word, expected)) in raw.iter_mut().zip(words) {
        *r = AnyWord::new(word, *expected);
    }
    let result = match fault::take() {
        Some(errno) => Err(Errno::from_raw_os_error(errno).into()),
        None => wait_any_raw(&raw[..words.len()], deadline),
    };
    match result {
        Ok(WaitAny::Woken(_) | WaitAny::Interrupted) => Ok(WaitOutcome::Woken),
        Ok(WaitAny::SomeDiffers) => Ok(WaitOutcome::ValueChanged),
        Ok(WaitAny::TimedOut) => Ok(WaitOutcome::TimedOut),
        Err(e) if e.raw_os_error() == Some(Errno::NOSYS.raw_os_error()) => {
            NO_WAITV.store(true, std::sync::atomic::Ordering::Relaxed);
            wait_any_fallback(words, deadline)
        }
        Err(e) => Err(e),
    }
}

/// [`wait_any`] without `futex_waitv`: one slice on the first word.
fn wait_any_fallback(
    words: &[(&AtomicU32, u32)],
    deadline: Option<&Deadline>,
) -> Result<WaitOutcome, crate::OsError> {
    // Relaxed: compared only; the caller re-checks what it waits for.
    if words
        .iter()
        .any(|(w, e)| w.load(std::sync::atomic::Ordering::Relaxed) != *e)
    {
        return Ok(WaitOutcome::ValueChanged);
    }
    let slice = Deadline::after(WAIT_ANY_FALLBACK_SLICE).min_with(deadline.copied());
    match wait(words[0].0, words[0].1, Some(&slice))? {
        WaitOutcome::TimedOut if !deadline.is_some_and(|d| d.has_passed()) => {
            Ok(WaitOutcome::Woken)
        }
        other => Ok(other),
    }
}

/// `FUTEX_BITSET_MATCH_ANY`.
const MATCH_ANY: NonZeroU32 = NonZeroU32::MAX;

/// Fault injection for tests of the error paths: makes the next `n` calls of [`wait`]
/// on the calling thread fail with a chosen errno *without* calling the kernel, exactly
/// as if `futex(2)` had returned -1 with that errno.
///
/// Not part of the API (hidden from the docs, may change at any time). It is always
/// compiled in because integration tests and other crates' tests need it: its cost
/// is one thread-local load per futex wait, next to a syscall.
///
/// The state is per thread, so a test arming it fails only its own thread's waits,
/// never those of other tests running beside it in the same test binary (each crate's
/// integration tests share one binary). A forked child inherits the forking thread's
/// state, as fork copies that thread. Call [`fault::reset`] when done.
#[doc(hidden)]
pub mod fault {
    use std::cell::Cell;

    thread_local! {
        /// Waits still to fail (`u32::MAX`: every one, for ever).
        static REMAINING: Cell<u32> = const { Cell::new(0) };
        /// The errno the failing waits report.
        static ERRNO: Cell<i32> = const { Cell::new(0) };
        /// How many waits failed because of this hook since it was last armed.
        static INJECTED: Cell<u32> = const { Cell::new(0) };
    }

    /// Makes the next `n` futex waits of the calling thread fail with `errno`
    /// (`n == u32::MAX`: every wait until [`reset`]).
    pub fn fail_next_waits(n: u32, errno: i32) {
        ERRNO.set(errno);
        INJECTED.set(0);
        REMAINING.set(n);
    }

    /// How many of the calling thread's waits failed through this hook since it was
    /// last armed.
    pub fn injected() -> u32 {
        INJECTED.get()
    }

    /// Disarms the hook for the calling thread.
    pub fn reset() {
        REMAINING.set(0);
    }

    /// The errno the current wait must fail with, if the hook is armed on this thread.
    #[inline]
    pub(super) fn take() -> Option<i32> {
        let n = REMAINING.get();
        if n == 0 {
            return None;
        }
        if n != u32::MAX {
            REMAINING.set(n - 1);
        }
        INJECTED.set(INJECTED.get() + 1);
        Some(ERRNO.get())
    }
}

/// Wakes up to `n` waiters sleeping on `word`; returns how many were woken.
///
/// This is a syscall (~450 ns with nobody waiting on this machine): callers keep a
/// "someone sleeps" flag and call it only when it is set.
///
/// # Examples
/// ```
/// use std::sync::atomic::AtomicU32;
/// use shmkit_sys::futex;
///
/// let word = AtomicU32::new(0);
/// assert_eq!(futex::wake(&word, 1), 0); // nobody sleeps on it
/// ```
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32);
    // An error (EFAULT on an unmapped word) wakes nobody; the matching wait reports it.
    sys_futex::wake(word, Flags::empty(), n).unwrap_or(0)
}

/// Wakes every waiter on `word`.
///
/// # Examples
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use shmkit_sys::futex;
///
/// let gate = AtomicU32::new(0);
/// std::thread::scope(|s| {
///     for _ in 0..2 {
///         s.spawn(|| {
///             while gate.load(Ordering::Acquire) == 0 {
///                 futex::wait(&gate, 0, None).expect("a valid, mapped futex word");
///             }
///         });
///     }
///     gate.store(1, Ordering::Release);
///     futex::wake_all(&gate); // opens the gate for every sleeper
/// });
/// ```
pub fn wake_all(word: &AtomicU32) -> usize {
    wake(word, u32::MAX)
}

/// One word of a [`wait_any`]: the address of a shared `u32` futex word and the value
/// to sleep on. Only the kernel reads the word, so an address that is no longer mapped
/// is not undefined behaviour here: the kernel answers `EFAULT` (see [`WaitAny`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnyWord {
    /// The word's address in this process.
    pub addr: usize,
    /// Sleep only while the word holds this value.
    pub expected: u32,
}

impl AnyWord {
    /// The word at `word` (its address only is kept), sleeping while it holds
    /// `expected`.
    pub fn new(word: &AtomicU32, expected: u32) -> Self {
        AnyWord {
            addr: word as *const AtomicU32 as usize,
            expected,
        }
    }
}

/// Why [`wait_any`] returned. Callers re-check what they wait for in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitAny {
    /// The word at this index was woken (or the wait returned spuriously).
    Woken(usize),
    /// Some word did not hold its expected value, or was not mapped (the kernel does
    /// not say which: `EAGAIN` or `EFAULT`); [`differs`] tells one word at a time.
    SomeDiffers,
    /// The deadline passed.
    TimedOut,
    /// A signal arrived (`EINTR`): wait again.
    Interrupted,
}

/// Sleeps until one of `words` is woken, one of them does not hold its expected
/// value, or `deadline`: `futex_waitv(2)` (Linux 5.16+; through `rustix`), on shared
/// (not process-private) 32-bit words, with an absolute `CLOCK_MONOTONIC` deadline.
///
/// # Errors
/// `ENOSYS` on a kernel before 5.16 (the caller falls back), `EINVAL` for more than
/// [`WAIT_ANY_MAX`] words or a misaligned address.
///
/// # Examples
/// ```
/// use std::sync::atomic::AtomicU32;
/// use shmkit_sys::futex::{self, AnyWord, Deadline, WaitAny};
///
/// let (a, b) = (AtomicU32::new(0), AtomicU32::new(7));
/// let words = [AnyWord::new(&a, 0), AnyWord::new(&b, 7)];
/// match futex::wait_any_raw(&words, Some(&Deadline::now())) {
///     Ok(end) => assert_eq!(end, WaitAny::TimedOut), // both hold their values
///     Err(e) => assert_eq!(e.raw_os_error(), Some(38)), // ENOSYS: a kernel before 5.16
/// }
/// ```
pub fn wait_any_raw(
    words: &[AnyWord],
    deadline: Option<&Deadline>,
) -> Result<WaitAny, crate::OsError> {
    use rustix::thread::futex::{Wait, WaitFlags, WaitPtr, WaitvFlags};
    let mut waits = [Wait::new(); WAIT_ANY_MAX];
    if words.len() > WAIT_ANY_MAX {
        return Err(Errno::INVAL.into());
    }
    for (w, word) in waits.iter_mut().zip(words) {
        w.val = u64::from(word.expected);
        w.uaddr = WaitPtr::new(word.addr as *mut std::ffi::c_void);
        // No FUTEX2_PRIVATE: the words are shared between processes.
        w.flags = WaitFlags::SIZE_U32;
    }
    let ts = deadline.map(Deadline::as_timespec);
    match sys_futex::waitv(
        &waits[..words.len()],
        WaitvFlags::empty(),
        ts.as_ref(),
        rustix::time::ClockId::Monotonic,
    ) {
        Ok(i) => Ok(WaitAny::Woken(i)),
        Err(Errno::AGAIN) | Err(Errno::FAULT) => Ok(WaitAny::SomeDiffers),
        Err(Errno::TIMEDOUT) => Ok(WaitAny::TimedOut),
        Err(Errno::INTR) => Ok(WaitAny::Interrupted),
        Err(errno) => Err(errno.into()),
    }
}

/// Whether `word` does not hold its expected value now, or is not mapped: one
/// [`wait_any`] of that word alone with a deadline that has passed (the kernel reads
/// the word, so an unmapped one is an answer, not a fault of ours).
pub fn differs(word: AnyWord) -> bool {
    let past = Deadline { nanos: 0 };
    !matches!(wait_any_raw(&[word], Some(&past)), Ok(WaitAny::TimedOut))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn wait_returns_when_value_differs() {
        let w = AtomicU32::new(1);
        assert_eq!(wait(&w, 0, None).unwrap(), WaitOutcome::ValueChanged);
    }

    #[test]
    fn wait_times_out_after_deadline() {
        let w = AtomicU32::new(0);
        let start = std::time::Instant::now();
        let d = Deadline::after(Duration::from_millis(20));
        let mut outcome = WaitOutcome::Woken;
        while outcome == WaitOutcome::Woken {
            outcome = wait(&w, 0, Some(&d)).unwrap();
        }
        assert_eq!(outcome, WaitOutcome::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn wait_any_sleeps_until_one_word_is_woken() {
        let words = [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)];
        assert_eq!(
            wait_any(&[(&words[0], 0), (&words[1], 1)], None).unwrap(),
            WaitOutcome::ValueChanged
        );
        assert!(wait_any(&[], None).is_err());
        std::thread::scope(|s| {
            s.spawn(|| {
                words[2].store(1, Ordering::Release);
                wake(&words[2], 1);
            });
            while words[2].load(Ordering::Acquire) == 0 {
                let all: Vec<_> = words.iter().map(|w| (w, 0)).collect();
                let out = wait_any(&all, None).unwrap();
                assert_ne!(out, WaitOutcome::TimedOut);
            }
        });
        let d = Deadline::after(Duration::from_millis(5));
        let mut out = WaitOutcome::Woken;
        while out == WaitOutcome::Woken {
            out = wait_any(&[(&words[0], 0), (&words[1], 0)], Some(&d)).unwrap();
        }
        assert_eq!(out, WaitOutcome::TimedOut);
        assert!(d.has_passed());
    }

    #[test]
    fn wake_with_nobody_waiting_wakes_nobody() {
        let w = AtomicU32::new(0);
        w.store(1, Ordering::Relaxed);
        assert_eq!(wake_all(&w), 0);
    }

    #[test]
    fn deadline_at_an_instant_reads_the_same_clock() {
        use std::time::Instant;
        let d = Deadline::at(Instant::now() + Duration::from_secs(5));
        assert!(!d.has_passed() && d.remaining() <= Duration::from_secs(5));
        assert!(Deadline::at(Instant::now()).has_passed());
    }

    #[test]
    fn deadline_timespec_is_normalised() {
        let d = Deadline::after(Duration::from_millis(1500));
        let ts = d.as_timespec();
        assert!((0..1_000_000_000).contains(&ts.tv_nsec));
        assert!(!d.has_passed());
        assert!(d.remaining() <= Duration::from_millis(1500));
    }
}
