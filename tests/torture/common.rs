//! What the three parts share: configuration, the seeded RNG, child exit codes, a
//! typed view of an anonymous shared control region, and the fleet of child
//! processes that the harness kills and restarts.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use shmkit_testkit::{fork_child, Child, Exit, SharedRegion};

/// How long any single blocking operation in a child, or any wait of the harness for
/// a child, may take before the round fails. Generous: a healthy round takes well
/// under a second even on a loaded 2-vCPU machine.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Run settings, read once from the environment.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Seed of the run (`SHMKIT_TORTURE_SEED`, else from the clock and pid).
    pub seed: u64,
    /// `SHMKIT_TORTURE_ROUNDS`, if set; else each part picks its default.
    pub rounds: Option<usize>,
    /// `SHMKIT_STRESS=1`.
    pub stress: bool,
}

impl Config {
    /// Reads the environment. A seed may be decimal or `0x` hex.
    pub fn from_env() -> Result<Config, String> {
        let seed = match std::env::var("SHMKIT_TORTURE_SEED") {
            Ok(s) => {
                parse_u64(&s).ok_or_else(|| format!("SHMKIT_TORTURE_SEED={s:?} is not a number"))?
            }
            Err(_) => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                nanos ^ (u64::from(std::process::id()) << 40) ^ 0x9E37_79B9_7F4A_7C15
            }
        };
        let rounds = match std::env::var("SHMKIT_TORTURE_ROUNDS") {
            Ok(s) => Some(
                s.trim()
                    .parse()
                    .map_err(|_| format!("SHMKIT_TORTURE_ROUNDS={s:?} is not a number"))?,
            ),
            Err(_) => None,
        };
        let stress = std::env::var("SHMKIT_STRESS").is_ok_and(|v| v == "1");
        Ok(Config {
            seed,
            rounds,
            stress,
        })
    }

    /// The number of rounds: the override, else `quick` (or `heavy` under stress).
    pub fn rounds(&self, quick: usize, heavy: usize) -> usize {
        self.rounds
            .unwrap_or(if self.stress { heavy } else { quick })
    }

    /// `quick` or `heavy` by `SHMKIT_STRESS`.
    pub fn size(&self, quick: usize, heavy: usize) -> usize {
        if self.stress {
            heavy
        } else {
            quick
        }
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// xorshift64*: small, seedable, good enough to pick kill moments and victims.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value; 0 is remapped).
    pub fn new(seed: u64) -> Rng {
        Rng(splitmix(seed) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Sleeps a random time in `0..max`: the moment of the next kill. This is the
    /// test's randomness, not synchronisation.
    pub fn pause(&mut self, max: Duration) {
        let us = self.below(max.as_micros().max(1) as u64);
        std::thread::sleep(Duration::from_micros(us));
    }
}

/// splitmix64: derives independent seeds (per part, per round) from one seed and
/// the deterministic message contents from a sequence number.
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Exit codes of child processes (children never print: they report this way, and
/// put details in their control region).
pub mod code {
    /// Finished its work.
    pub const OK: i32 = 0;
    /// A blocking operation did not complete within [`super::DEADLINE`].
    pub const TIMEOUT: i32 = 2;
    /// A torn or corrupted message / item, or a corrupt-state error from shmkit.
    pub const CORRUPT: i32 = 3;
    /// A message or item seen twice (or out of order).
    pub const DUPLICATE: i32 = 4;
    /// An unexpected error from a shmkit call.
    pub const ERROR: i32 = 5;
    /// A lock reported `Poisoned` (nobody in this test unlocks without repairing).
    pub const POISONED: i32 = 6;
    /// Lock-protected data found half-updated without an `OwnerDied` report.
    pub const INCONSISTENT: i32 = 7;
    /// A child could not open the shared object.
    pub const OPEN: i32 = 8;
    /// shmkit said the peer died while the peer was running.
    pub const FALSE_DEATH: i32 = 9;
    /// shmkit said the peer left cleanly, which no peer here does mid-stream (a reader
    /// stops early only when it failed: its own exit code says why).
    pub const PEER_LEFT: i32 = 10;

    /// Human-readable meaning of a code.
    pub fn describe(code: i32) -> &'static str {
        match code {
            OK => "ok",
            TIMEOUT => "an operation did not complete within the deadline",
            CORRUPT => "saw a torn or corrupted message/item",
            DUPLICATE => "saw a message/item twice or out of order",
            ERROR => "got an unexpected error from shmkit",
            POISONED => "found the lock poisoned",
            INCONSISTENT => "found half-updated data behind a lock that reported no owner death",
            OPEN => "could not open the shared object",
            FALSE_DEATH => "was told its peer died while the peer was still running",
            PEER_LEFT => "was told its peer left before the end of the stream",
            101 => "panicked",
            _ => "unknown exit code",
        }
    }
}

/// A `#[repr(C)]` struct of atomics followed by `extra` atomic bytes, in anonymous
/// `MAP_SHARED` memory inherited by every forked child.
pub struct Control<C> {
    region: SharedRegion,
    extra: usize,
    _c: std::marker::PhantomData<C>,
}

/// Marker for structs made only of atomics (valid when zeroed, shareable).
///
/// # Safety
/// The type must be `#[repr(C)]`, contain only atomics (or arrays of them), and have
/// an alignment of at most 4096.
pub unsafe trait AtomicsOnly: Sync {}

impl<C: AtomicsOnly> Control<C> {
    /// A zeroed control block with `extra` trailing bytes.
    pub fn new(extra: usize) -> Self {
        let len = (std::mem::size_of::<C>() + extra).next_multiple_of(4096);
        Control {
            region: SharedRegion::new(len),
            extra,
            _c: std::marker::PhantomData,
        }
    }

    /// The struct at the start of the region.
    pub fn ctl(&self) -> &C {
        // SAFETY: the region is page aligned, at least size_of::<C>() bytes, zeroed at
        // map time, and C is atomics only (AtomicsOnly), valid when zeroed and safe
        // to share between processes; the reference lives no longer than the region.
        unsafe { &*(self.region.as_ptr() as *const C) }
    }

    /// The trailing bytes, as atomics.
    pub fn bytes(&self) -> &[AtomicU8] {
        // SAFETY: the `extra` bytes after the struct are inside the region (see
        // `new`), zeroed, and AtomicU8 has alignment 1 and is valid when zeroed.
        unsafe {
            std::slice::from_raw_parts(
                self.region.as_ptr().add(std::mem::size_of::<C>()) as *const AtomicU8,
                self.extra,
            )
        }
    }
}

/// One failed invariant (the message says which and where).
pub type Violation = String;

/// The processes of one round: role `i` is started by `start(i)`; the harness kills
/// and restarts them. Dropping the fleet SIGKILLs and reaps whatever still runs.
pub struct Fleet<'a> {
    start: Box<dyn Fn(usize) -> Child + 'a>,
    names: &'a [&'a str],
    procs: Vec<Option<Child>>,
    /// Roles that finished (exit code 0).
    finished: Vec<bool>,
}

impl<'a> Fleet<'a> {
    /// Starts one process per role.
    pub fn start(names: &'a [&'a str], start: impl Fn(usize) -> Child + 'a) -> Fleet<'a> {
        let start: Box<dyn Fn(usize) -> Child + 'a> = Box::new(start);
        let procs = (0..names.len()).map(|i| Some(start(i))).collect();
        Fleet {
            start,
            names,
            procs,
            finished: vec![false; names.len()],
        }
    }

    fn check_exit(&mut self, i: usize, exit: Exit) -> Result<(), Violation> {
        self.procs[i] = None;
        match exit {
            Exit::Code(0) => {
                self.finished[i] = true;
                Ok(())
            }
            Exit::Code(c) => Err(format!(
                "{} exited with code {c}: {}",
                self.names[i],
                code::describe(c)
            )),
            Exit::Signal(s) => Err(format!("{} died of signal {s}", self.names[i])),
        }
    }

    /// Roles still running (reaping the ones that ended).
    fn running(&mut self) -> Result<Vec<usize>, Violation> {
        let mut alive = Vec::new();
        for i in 0..self.procs.len() {
            let ended = match self.procs[i].as_mut() {
                None => continue,
                Some(c) => c.wait_timeout(Duration::ZERO),
            };
            match ended {
                None => alive.push(i),
                Some(exit) => self.check_exit(i, exit)?,
            }
        }
        Ok(alive)
    }

    /// SIGKILLs a random running role, picking among `prefer` (when any of them runs)
    /// with probability `bias` out of 256, and reaps it. `Some(role)` if it was
    /// killed; `None` if nothing ran any more or the victim exited normally first.
    pub fn kill_random(
        &mut self,
        rng: &mut Rng,
        prefer: &[usize],
        bias: u64,
    ) -> Result<Option<usize>, Violation> {
        let alive = self.running()?;
        if alive.is_empty() {
            return Ok(None);
        }
        let preferred: Vec<usize> = alive
            .iter()
            .copied()
            .filter(|i| prefer.contains(i))
            .collect();
        let pool = if !preferred.is_empty() && rng.below(256) < bias {
            preferred
        } else {
            alive
        };
        let victim = pool[rng.below(pool.len() as u64) as usize];
        let mut child = self.procs[victim].take().expect("running");
        child.kill();
        match child.wait() {
            Exit::Signal(libc::SIGKILL) => Ok(Some(victim)),
            other => self.check_exit(victim, other).map(|()| None),
        }
    }

    /// Starts role `i` again (after a kill).
    pub fn restart(&mut self, i: usize) {
        assert!(self.procs[i].is_none(), "restart of a running role");
        self.procs[i] = Some((self.start)(i));
    }

    /// Waits for role `i` to exit with code 0 by `deadline`; a process still running
    /// then is SIGKILLed and fails the round.
    pub fn wait(&mut self, i: usize, deadline: Instant) -> Result<(), Violation> {
        let Some(child) = self.procs[i].as_mut() else {
            return if self.finished[i] {
                Ok(())
            } else {
                Err(format!("{} is not running", self.names[i]))
            };
        };
        let left = deadline.saturating_duration_since(Instant::now());
        match child.wait_timeout(left) {
            Some(exit) => self.check_exit(i, exit),
            None => {
                self.procs[i] = None; // Child's drop SIGKILLs and reaps it.
                Err(format!(
                    "{} was still running {}s after the deadline started: stuck",
                    self.names[i],
                    DEADLINE.as_secs()
                ))
            }
        }
    }
}

/// Forks a child running `f` (see `shmkit_testkit::fork_child`). The harness binary
/// runs without libtest's threads, so the child may allocate and open segments.
///
/// The child is SIGKILLed by the kernel if the harness dies (killed by a CI timeout,
/// say), so no worker outlives a run.
pub fn spawn(f: impl FnOnce() -> i32) -> Child {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    fork_child(move || {
        // SAFETY: PR_SET_PDEATHSIG with a valid signal number only sets an attribute
        // of the calling process.
        let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        // SAFETY: getppid has no preconditions.
        if rc != 0 || unsafe { libc::getppid() } != parent {
            // The harness died before the attribute was set: stop right away.
            return code::ERROR;
        }
        f()
    })
}

/// Totals of one part over all rounds, for the summary line.
#[derive(Debug, Default)]
pub struct Totals {
    /// Rounds completed.
    pub rounds: usize,
    /// Processes SIGKILLed (that were still running).
    pub kills: usize,
    /// Messages/items/increments that went through.
    pub moved: u64,
    /// Items lost.
    pub lost: u64,
    /// Largest loss the documentation allows for the kills made.
    pub allowed: u64,
    /// Recoveries (role takeovers, owner-death repairs, ...).
    pub recoveries: u64,
}

/// Loads `a` (harness bookkeeping: SeqCst everywhere, the harness is not what is
/// under test and waitpid orders a dead child's stores before the parent's loads).
pub fn ld(a: &AtomicU64) -> u64 {
    a.load(Ordering::SeqCst)
}

/// The ids in `1..=n` whose byte in `bytes` is 0 (never delivered); an error if one is
/// above 1 (delivered more than once).
pub fn missing(bytes: &[AtomicU8], n: usize, what: &str) -> Result<HashSet<u64>, Violation> {
    let mut lost = HashSet::new();
    for (id, b) in bytes.iter().enumerate().take(n + 1).skip(1) {
        match b.load(Ordering::SeqCst) {
            0 => {
                lost.insert(id as u64);
            }
            1 => {}
            k => return Err(format!("{what} {id} was delivered {k} times")),
        }
    }
    Ok(lost)
}

/// Removes `/dev/shm/shmkit-t-torture-*-<pid>-<n>` left by an earlier run whose
/// harness was itself killed (its guards never ran); only names of dead pids.
/// Returns how many were removed.
pub fn remove_stale_segments() -> usize {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return 0;
    };
    let mut removed = 0;
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("shmkit-t-torture-") else {
            continue;
        };
        // rest = "<part>-<pid>-<n>"
        let mut fields = rest.rsplitn(3, '-');
        let (_n, pid) = (fields.next(), fields.next());
        let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            drop(shmkit_testkit::ShmCleanup::new(&name));
            removed += 1;
        }
    }
    removed
}

/// Whether process `pid` exists and is not a zombie (what a false "peer died" report
/// would contradict). A killed process only goes from running to zombie to gone.
pub fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_ascii_whitespace().next());
    !matches!(state, None | Some("Z" | "X" | "x"))
}
