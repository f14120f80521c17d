//! The one way shmkit busy-waits before it sleeps: spin with loads and a CPU pause
//! hint, then yield the CPU a few times, then (the caller's choice) sleep on a futex or,
//! where there is no futex to sleep on, in short doubling steps.
//!
//! Written by hand rather than taken from `crossbeam-utils`: its `Backoff` has no time
//! budget (rings and queues poll for a fixed time, about what a futex wake costs), no
//! sleeping stage (segment creation waits without a futex), and no `cfg(loom)` switch
//! (under loom every spin must be a loom yield so models stay finite); and shmkit needs
//! nothing else from that crate.
//!
//! # Examples
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use shmkit_sys::Backoff;
//!
//! let word = AtomicU32::new(1);
//! let mut backoff = Backoff::new();
//! while word.load(Ordering::Acquire) != 0 {
//!     if !backoff.snooze() {
//!         word.store(0, Ordering::Release); // here: sleep on a futex instead
//!     }
//! }
//! assert!(backoff.step() > 0);
//! ```

use std::time::Duration;

use crate::atomic::{AtomicU32, Ordering};

/// Loads spun before yielding (std's futex mutex uses 100). On a 2-vCPU machine a
/// cross-CPU wake-up costs ~30 us and a shared-memory round trip ~150 ns, so ~100
/// spins plus a few `sched_yield`s catch the common short critical section.
#[cfg(not(loom))]
pub const SPIN_LIMIT: u32 = 100;
/// Under loom every spin is a schedule point: keep it to one.
#[cfg(loom)]
pub const SPIN_LIMIT: u32 = 1;
/// `sched_yield`s after the spins, before a caller sleeps.
#[cfg(not(loom))]
pub const YIELD_LIMIT: u32 = 3;
/// Under loom: none (a yield is a schedule point like a spin).
#[cfg(loom)]
pub const YIELD_LIMIT: u32 = 0;

/// While polling for a time budget, one `sched_yield` every this many spins (some
/// 20-40 us): when the peer shares our CPU, pure spinning would only delay it.
#[cfg(not(loom))]
const SPINS_PER_YIELD: u32 = 2048;

/// Spin, then yield; tells the caller when to sleep instead. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct Backoff {
    step: u32,
    /// Polling for a time instead of a number of steps: (budget, start).
    #[cfg(not(loom))]
    budget: Option<(Duration, Option<std::time::Instant>)>,
    /// Next sleep of the sleeping stage.
    #[cfg_attr(loom, allow(dead_code))]
    nap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// [`SPIN_LIMIT`] spins, then [`YIELD_LIMIT`] yields.
    pub const fn new() -> Self {
        Backoff {
            step: 0,
            #[cfg(not(loom))]
            budget: None,
            nap: Duration::from_micros(20),
        }
    }

    /// Polls for `budget` of wall time (the clock read every 32 steps), yielding once
    /// every 2048 spins; under loom, a few yields.
    pub fn polling_for(budget: Duration) -> Self {
        #[cfg(loom)]
        let _ = budget;
        Backoff {
            #[cfg(not(loom))]
            budget: Some((budget, None)),
            ..Self::new()
        }
    }

    /// Steps taken so far.
    pub fn step(&self) -> u32 {
        self.step
    }

    /// Whether the spinning stage is over (a syscall per step is then fine).
    pub fn is_spun(&self) -> bool {
        self.step >= SPIN_LIMIT
    }

    /// One step: a spin, or a yield once the spins are used up. Returns `false` (and
    /// does nothing) once the budget is spent: the caller should sleep now.
    pub fn snooze(&mut self) -> bool {
        #[cfg(not(loom))]
        if let Some((budget, start)) = &mut self.budget {
            self.step += 1;
            // Read the clock (vDSO, ~20 ns) only every 32 spins.
            if self.step % 32 == 1 {
                let now = std::time::Instant::now();
                if now.duration_since(*start.get_or_insert(now)) >= *budget {
                    return false;
                }
            }
            if self.step.is_multiple_of(SPINS_PER_YIELD) {
                yield_now();
            } else {
                spin_hint();
            }
            return true;
        }
        #[cfg(loom)]
        const LOOM_STEPS: u32 = 4;
        #[cfg(loom)]
        if self.step >= LOOM_STEPS {
            return false;
        }
        if self.step < SPIN_LIMIT {
            spin_hint();
        } else if self.step < SPIN_LIMIT + YIELD_LIMIT {
            yield_now();
        } else {
            #[cfg(not(loom))]
            return false;
            #[cfg(loom)]
            yield_now();
        }
        self.step += 1;
        true
    }

    /// A step for a wait that has no futex to sleep on: [`snooze`](Self::snooze) while
    /// it lasts, then sleeps in doubling steps from 20 us up to `cap`, never past
    /// `deadline` (under loom: yields instead, as time does not pass).
    pub fn snooze_or_sleep(&mut self, cap: Duration, deadline: Option<std::time::Instant>) {
        if self.snooze() {
            return;
        }
        #[cfg(loom)]
        {
            let _ = (cap, deadline);
            yield_now();
        }
        #[cfg(not(loom))]
        self.sleep_step(cap, deadline);
    }

    #[cfg(not(loom))]
    fn sleep_step(&mut self, cap: Duration, deadline: Option<std::time::Instant>) {
        std::thread::sleep(self.next_nap(cap, deadline));
    }

    /// The sleeping stage's next delay, without sleeping: 20 us doubling up to `cap`,
    /// never past `deadline`. For a waiter that sleeps elsewhere (the retries of a
    /// non-blocking `flock`, where an async future is woken by the doorbell's timer
    /// after this delay).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shmkit_sys::Backoff;
    ///
    /// let mut b = Backoff::new();
    /// let cap = Duration::from_millis(10);
    /// let naps: Vec<Duration> = (0..12).map(|_| b.next_nap(cap, None)).collect();
    /// assert_eq!(naps[0], Duration::from_micros(20));
    /// assert_eq!(naps[1], Duration::from_micros(40)); // doubling
    /// assert_eq!(naps[11], cap); // capped
    /// ```
    pub fn next_nap(&mut self, cap: Duration, deadline: Option<std::time::Instant>) -> Duration {
        let mut d = self.nap.min(cap);
        if let Some(dl) = deadline {
            d = d.min(dl.saturating_duration_since(std::time::Instant::now()));
        }
        self.nap = (self.nap * 2).min(cap);
        d
    }
}

/// Whether polling before a sleep pays off for one waiter, learnt from its last waits:
/// a waiter whose polls keep running out (a peer that answers slowly, or a machine
/// with more runnable threads than CPUs, where our spinning only keeps the peer off
/// the CPU it needs) stops polling and sleeps at once, as a pipe reader does. It polls
/// again after a sleep that was costly yet short enough for a poll to have caught
/// ([`COSTLY_SLEEP`] up to twice the budget: on an idle machine a wake-up across CPUs
/// costs tens of microseconds, and polling is what saves it), and for one wait in
/// [`PROBE_EVERY`].
///
/// Measured on the 2-vCPU machine with other load (a 64 B ring ping-pong): polling
/// 50 us before each sleep made the round trip ~100 us; sleeping at once, 6-16 us,
/// about a pipe's. On the idle machine polling succeeds (0.3-0.9 us round trips) and
/// this keeps it.
///
/// One relaxed word, so a handle shared by threads can keep one: the low 8 bits count
/// the polls in a row that ran out (saturating), the rest count waits (for probing).
/// It is a hint: a lost update between threads only changes one wait's polling.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shmkit_sys::backoff::PollGauge;
///
/// let gauge = PollGauge::new();
/// for _ in 0..3 {
///     let mut poll = gauge.poll(Duration::from_micros(20));
///     while poll.snooze() {} // the awaited change never comes: the poll runs out
/// }
/// // Polls keep running out: the next wait sleeps at once.
/// assert!(!gauge.poll(Duration::from_micros(20)).snooze());
/// ```
#[derive(Debug, Default)]
pub struct PollGauge {
    state: std::sync::atomic::AtomicU32,
}

/// A waiter whose polls ran out this many times in a row sleeps without polling.
const RUN_OUTS_TO_STOP: u32 = 2;
/// Once it sleeps without polling, one wait in this many polls again (a probe).
pub const PROBE_EVERY: u32 = 64;
/// A sleeping wait at least this long (and at most twice the poll budget) says
/// polling would have paid: a wake-up of an idle CPU costs 30-50 us on the 2-vCPU VM,
/// one on a busy machine (the woken side runs where its waker ran) 3-6 us.
pub const COSTLY_SLEEP: std::time::Duration = std::time::Duration::from_micros(20);

impl PollGauge {
    /// A gauge that polls (nothing learnt yet).
    pub const fn new() -> Self {
        PollGauge {
            state: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// The polling of one wait: for `budget`, or not at all if polls have kept running
    /// out (see the [type docs](Self)). Its outcome is recorded when it is dropped: it
    /// ran out if [`GaugedPoll::snooze`] ever said "sleep now".
    pub fn poll(&self, budget: std::time::Duration) -> GaugedPoll<'_> {
        // Relaxed: a hint (see the type docs).
        let s = self.state.load(std::sync::atomic::Ordering::Relaxed);
        let (run_outs, waits) = (s & 0xff, s >> 8);
        // Under loom every wait polls (its few yields), so that models stay as they are.
        let stopped = !cfg!(loom) && run_outs >= RUN_OUTS_TO_STOP;
        let probe = stopped && waits.is_multiple_of(PROBE_EVERY);
        let polls = !stopped || probe;
        GaugedPoll {
            backoff: Backoff::polling_for(budget),
            gauge: self,
            polls,
            probe,
            ran_out: false,
            budget,
            slept_at: None,
        }
    }

    fn record(&self, ran_out: bool, probe: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let s = self.state.load(Relaxed);
        let run_outs = match (ran_out, probe) {
            (true, _) => (s & 0xff).saturating_add(1).min(0xff),
            // A probe that succeeds (or a costly short sleep) lets the next wait poll;
            // one more run-out stops it.
            (false, true) => RUN_OUTS_TO_STOP - 1,
            (false, false) => 0,
        };
        let waits = (s >> 8).wrapping_add(1) & 0x00ff_ffff;
        // Relaxed: a hint (see the type docs).
        self.state.store(waits << 8 | run_outs, Relaxed);
    }
}

/// One wait's polling, from [`PollGauge::poll`]: [`snooze`](Self::snooze) as
/// [`Backoff::snooze`]; records on drop whether it ran out.
#[derive(Debug)]
pub struct GaugedPoll<'a> {
    backoff: Backoff,
    gauge: &'a PollGauge,
    /// Whether this wait polls at all.
    polls: bool,
    probe: bool,
    ran_out: bool,
    budget: std::time::Duration,
    /// When a wait that does not poll went to sleep.
    slept_at: Option<std::time::Instant>,
}

impl GaugedPoll<'_> {
    /// One step of polling; `false` once the budget is spent (or at once if this wait
    /// does not poll): sleep now.
    pub fn snooze(&mut self) -> bool {
        if self.polls && self.backoff.snooze() {
            return true;
        }
        if !self.polls && !cfg!(loom) && self.slept_at.is_none() {
            self.slept_at = Some(std::time::Instant::now());
        }
        self.ran_out = true;
        false
    }
}

impl Drop for GaugedPoll<'_> {
    fn drop(&mut self) {
        if let Some(at) = self.slept_at {
            // Slept without polling: was that costly, yet short enough to poll for?
            let slept = at.elapsed();
            let costly = slept >= COSTLY_SLEEP && slept <= 2 * self.budget;
            self.gauge.record(!costly, costly);
        } else if self.polls || self.ran_out {
            // A wait that does not poll and ends without sleeping (its first look
            // found the change) tells nothing: it is not recorded as a success.
            self.gauge.record(self.ran_out, self.probe);
        }
    }
}

/// Spins ([`SPIN_LIMIT`] loads at most) on `word` until `done(value)`; returns the last
/// value read.
///
/// # Examples
/// ```
/// use std::sync::atomic::AtomicU32;
///
/// let word = AtomicU32::new(0);
/// assert_eq!(shmkit_sys::backoff::spin_until(&word, |v| v == 0), 0);
/// assert_eq!(shmkit_sys::backoff::spin_until(&word, |v| v == 1), 0); // gave up
/// ```
#[inline]
pub fn spin_until(word: &AtomicU32, done: impl Fn(u32) -> bool) -> u32 {
    let mut spins = SPIN_LIMIT;
    loop {
        // Relaxed: a hint only; the caller's CAS or Acquire load synchronises.
        let v = word.load(Ordering::Relaxed);
        if done(v) || spins == 0 {
            return v;
        }
        spins -= 1;
        spin_hint();
    }
}

/// A CPU pause hint (a loom yield under loom, so models stay finite).
#[inline]
pub fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Gives the CPU to another runnable thread (`sched_yield`; a loom yield under loom).
#[inline]
pub fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn spins_then_yields_then_tells_to_sleep() {
        let mut b = Backoff::new();
        for _ in 0..SPIN_LIMIT + YIELD_LIMIT {
            assert!(b.snooze());
        }
        assert!(b.is_spun());
        assert!(!b.snooze(), "the budget is spent: sleep now");
    }

    #[test]
    fn a_gauge_stops_polling_after_polls_run_out_and_probes_again() {
        let gauge = PollGauge::new();
        let budget = Duration::from_micros(5);
        let run_out = |g: &PollGauge| {
            let mut poll = g.poll(budget);
            let mut steps = 0;
            while poll.snooze() {
                steps += 1;
            }
            steps
        };
        // A success (the change came while polling) keeps polling on.
        assert!(gauge.poll(budget).snooze());
        for _ in 0..RUN_OUTS_TO_STOP {
            assert!(run_out(&gauge) > 0, "polls while it has not run out twice");
        }
        // From here on, waits sleep at once, except one probe in PROBE_EVERY.
        let (mut polled, mut waits) = (0, 0);
        while polled == 0 {
            waits += 1;
            assert!(waits <= PROBE_EVERY, "no probe within {PROBE_EVERY} waits");
            let mut poll = gauge.poll(budget);
            if poll.snooze() {
                polled += 1; // the probe: the change comes now
            }
        }
        // A probe that succeeded lets the next wait poll; one more run-out stops it.
        assert!(run_out(&gauge) > 0);
        assert_eq!(run_out(&gauge), 0, "stopped again after one more run-out");
    }

    #[test]
    fn a_costly_but_short_sleep_makes_a_stopped_gauge_poll_again() {
        let gauge = PollGauge::new();
        let budget = Duration::from_millis(20);
        for _ in 0..RUN_OUTS_TO_STOP {
            let mut poll = gauge.poll(Duration::ZERO);
            while poll.snooze() {}
        }
        // Stopped (waits % PROBE_EVERY != 0 from here on for a while).
        let mut poll = gauge.poll(budget);
        assert!(!poll.snooze(), "stopped: sleeps at once");
        // The sleep (here: the thread's) lasts longer than a busy machine's wake-up
        // and less than twice the budget: polling would have caught the change.
        std::thread::sleep(COSTLY_SLEEP * 5);
        drop(poll);
        assert!(gauge.poll(budget).snooze(), "polls again");
        // Stopped again; a sleep longer than twice the budget (a slow peer) keeps it so.
        for _ in 0..RUN_OUTS_TO_STOP {
            let mut poll = gauge.poll(Duration::ZERO);
            while poll.snooze() {}
        }
        let short = Duration::from_micros(5);
        let mut poll = gauge.poll(short);
        assert!(!poll.snooze());
        std::thread::sleep(COSTLY_SLEEP * 5);
        drop(poll);
        assert!(
            !gauge.poll(short).snooze(),
            "a slow peer: still sleeps at once"
        );
    }

    #[test]
    fn a_time_budget_ends() {
        let mut b = Backoff::polling_for(Duration::from_micros(200));
        let start = std::time::Instant::now();
        while b.snooze() {}
        assert!(start.elapsed() >= Duration::from_micros(200));
    }

    #[test]
    fn the_sleeping_stage_moves_on_and_respects_the_deadline() {
        let mut b = Backoff::new();
        let deadline = std::time::Instant::now() + Duration::from_millis(5);
        while std::time::Instant::now() < deadline {
            b.snooze_or_sleep(Duration::from_millis(1), Some(deadline));
        }
        assert!(b.is_spun());
    }
}
