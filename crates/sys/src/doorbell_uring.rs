//! The doorbell's io_uring backend for tokio (feature `tokio`): a future polled inside
//! a tokio runtime is woken by the kernel through the runtime's own reactor, one
//! cross-CPU wake-up instead of two.
//!
//! Through the helper threads, a wake-up travels twice: the waker side's futex wake
//! reaches a helper thread, which then wakes the task, whose runtime thread sleeps in
//! `epoll_wait` (tens of µs each on a loaded VM). Here the future's thread submits the
//! wait itself, as an `IORING_OP_FUTEX_WAITV` (Linux 6.7+) on a ring of its own, and
//! the ring's file descriptor sits in the runtime's reactor ([`AsyncFd`]): the futex
//! wake completes the request, the ring becomes readable, and the runtime thread
//! wakes from `epoll_wait` for it, as for a socket. A small task per ring (the
//! *reaper*, spawned on the runtime) takes the completions and wakes the wakers armed
//! on their words. The waker side is unchanged (a plain futex wake, which reaches
//! io_uring's futex waits as any other waiter's).
//!
//! # Shape
//! - One ring per thread that polls futures inside a runtime (a current-thread
//!   runtime: one; a multi-thread runtime: one per worker), made on its first pending
//!   poll; its reaper runs on that runtime; a thread that exits retires its ring.
//!   Interests on one word of one ring share one request, as they share one slot of a
//!   helper's wait.
//! - Each request waits on two words: the armed word (expecting its value) and the
//!   death word every helper waits on too, so a watched peer's exit completes it and
//!   the futures look at their peers (see the doorbell's "Peers that die").
//! - Timers, and interests on a peer the death watcher cannot watch (paced checks),
//!   stay with the helper threads, as does everything polled outside a tokio runtime
//!   or when this kernel (or a seccomp filter) refuses io_uring or its futex ops.
//!
//! # Cancel and shutdown
//! The last interest of a word leaving cancels its request (`IORING_OP_ASYNC_CANCEL`):
//! no kernel waiter outlives the futures. When the runtime shuts down, its reaper
//! task is dropped: the ring is then marked dead, every interest still armed on it is
//! woken (its future, if it is polled again, arms on another ring or a helper), and
//! the ring is closed once the last reference goes, which ends whatever the kernel
//! still held. A forked child never uses its parent's ring (it makes its own).
//!
//! # Lock order
//! The doorbell's state lock, then a ring's lock; the reaper takes the ring's lock
//! alone (to drain completions), then the state lock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;

use io_uring::{opcode, types, IoUring};
use tokio::io::unix::AsyncFd;

use super::{take_wakers, State, DEATH};

/// `FUTEX2_SIZE_U32`: a 32-bit word, shared (not `FUTEX2_PRIVATE`: the words live in
/// mappings other processes wake).
const FUTEX2_SIZE_U32: u32 = 0x02;

/// Whether this process may use io_uring: 0 not probed yet, 1 yes, 2 no.
static USABLE: AtomicU8 = AtomicU8::new(0);

/// Set by [`force_helpers`](super::force_helpers): every interest goes to the helper
/// threads, as where io_uring is refused.
pub(super) static FORCE_HELPERS: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread's ring, if it made one (see the module docs); retired when the
    /// thread exits ([`Here`]).
    static HERE: RefCell<Option<Here>> = const { RefCell::new(None) };
}

/// The user data of the no-op that tells a reaper its thread is gone.
const RETIRE: u64 = u64::MAX;

/// A thread's hold on its ring. A thread that exits (a blocking-pool thread of the
/// runtime, say, or any thread that entered the runtime's context) would otherwise
/// leave its ring and reaper to the runtime's end: dropped with the thread, it asks
/// the reaper to end (a no-op request, so that the ring turns readable), which marks
/// the ring dead and wakes whatever is still armed on it, to arm again elsewhere.
struct Here(Arc<Ring>);

impl Drop for Here {
    fn drop(&mut self) {
        if self.0.usable_here() {
            // An error leaves the ring to its runtime's end, as before.
            let _ = self.0.submit(&opcode::Nop::new().build().user_data(RETIRE));
        }
    }
}

/// One ring: its submission and completion queues behind a lock.
pub(super) struct Ring {
    id: u64,
    pid: u32,
    io: Mutex<IoUring>,
    /// The ring's file descriptor (read by the reaper without the lock).
    fd: RawFd,
    /// Cleared when its reaper task ends (the runtime shut down).
    alive: AtomicBool,
}

impl Ring {
    fn usable_here(&self) -> bool {
        // Relaxed: a hint; a ring found dead late only costs a wake-up (its reaper
        // wakes every interest on it as it ends).
        self.alive.load(Ordering::Relaxed) && self.pid == crate::owner::current_pid()
    }

    /// Queues `entry` and submits it (an `io_uring_enter`).
    fn submit(&self, entry: &io_uring::squeue::Entry) -> std::io::Result<()> {
        let mut io = self.io.lock().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: the entry's pointers (a futex vector, see `Word::vec`) stay valid
        // until the kernel has read them: the vector is boxed in the state's word,
        // which outlives the submission (the kernel copies it when it takes the
        // entry, during the `submit` below); a cancel entry holds no pointer.
        while unsafe { io.submission().push(entry) }.is_err() {
            enter(&io)?; // full: hand the queued entries to the kernel first
        }
        enter(&io)
    }
}

/// `io_uring_enter` for the queued entries, again after a signal (`EINTR`).
fn enter(io: &IoUring) -> std::io::Result<()> {
    loop {
        match io.submit() {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One word armed on one ring: the request in flight for it.
pub(super) struct Word {
    /// The request's user data (0: none in flight).
    pub(super) request: u64,
    pub(super) expected: u32,
    pub(super) interests: std::collections::HashSet<u64>,
    /// The futex vector of the request in flight (the word, then the death word).
    vec: Box<[types::FutexWaitV; 2]>,
}

/// The backend's part of the doorbell's state.
#[derive(Default)]
pub(super) struct Table {
    pub(super) rings: HashMap<u64, Arc<Ring>>,
    /// Words by (ring, address).
    pub(super) words: HashMap<(u64, usize), Word>,
    /// Requests in flight: user data → (ring, address).
    requests: HashMap<u64, (u64, usize)>,
    next: u64,
}

/// Whether io_uring with `FUTEX_WAITV` works in this process (probed once).
pub(super) fn usable() -> bool {
    // Relaxed: a cached answer; probing twice is harmless.
    match USABLE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let ok = probe();
            USABLE.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
            ok
        }
    }
}

fn probe() -> bool {
    let Ok(ring) = IoUring::new(2) else {
        return false; // no io_uring (old kernel, seccomp, io_uring_disabled)
    };
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe).is_ok()
        && probe.is_supported(opcode::FutexWaitV::CODE)
        && probe.is_supported(opcode::AsyncCancel::CODE)
}

/// A reaper task to spawn once the doorbell's lock is released (a runtime that is
/// shutting down drops a new task at once, and its guard takes that lock).
pub(super) struct Reaper {
    handle: tokio::runtime::Handle,
    dead: Dead,
}

impl Reaper {
    pub(super) fn spawn(self) {
        drop(self.handle.spawn(reap(self.dead)));
    }
}

/// The ring of the calling thread for an interest polled inside a tokio runtime, made
/// if needed (then with its reaper, for the caller to spawn); `None` outside a
/// runtime or where io_uring is not usable: then the helper threads serve the
/// interest.
pub(super) fn ring_here(st: &mut State) -> Option<(u64, Option<Reaper>)> {
    // Relaxed: a test setting, read on its own.
    if FORCE_HELPERS.load(Ordering::Relaxed) {
        return None;
    }
    let handle = tokio::runtime::Handle::try_current().ok()?;
    if !usable() {
        return None;
    }
    HERE.with(|here| {
        let mut here = here.borrow_mut();
        if let Some(Here(r)) = here.as_ref().filter(|h| h.0.usable_here()) {
            if st.uring.rings.contains_key(&r.id) {
                return Some((r.id, None));
            }
        }
        let io = IoUring::new(256).ok()?;
        st.uring.next += 1;
        let ring = Arc::new(Ring {
            id: st.uring.next,
            pid: st.pid,
            fd: io.as_raw_fd(),
            io: Mutex::new(io),
            alive: AtomicBool::new(true),
        });
        st.uring.rings.insert(ring.id, ring.clone());
        *here = Some(Here(ring.clone()));
        let id = ring.id;
        // The guard is the task's argument, so that a task dropped before its first
        // poll (a runtime shut down first) drops it too.
        let dead = Dead(ring);
        Some((id, Some(Reaper { handle, dead })))
    })
}

/// Arms interest `id` on `addr` of ring `ring`, expecting `expected`: submits a
/// request unless one for that value is in flight. Wakers of interests armed with an
/// older value go to `to_wake` (as the helpers do: they look again).
pub(super) fn arm(
    st: &mut State,
    ring: u64,
    addr: usize,
    expected: u32,
    id: u64,
    to_wake: &mut Vec<Waker>,
) -> Result<(), crate::OsError> {
    let key = (ring, addr);
    let t = &mut st.uring;
    let w = t.words.entry(key).or_insert_with(|| Word {
        request: 0,
        expected,
        interests: Default::default(),
        vec: Box::new([types::FutexWaitV::new(), types::FutexWaitV::new()]),
    });
    w.interests.insert(id);
    if w.request != 0 && w.expected == expected {
        return Ok(()); // in flight for this value: no syscall
    }
    let stale = w.request != 0;
    let old = std::mem::take(&mut w.request);
    w.expected = expected;
    if stale {
        // The word moved on: the interests armed with the old value look again.
        let ids: Vec<u64> = w.interests.iter().copied().filter(|&i| i != id).collect();
        take_wakers(st, ids, to_wake);
        cancel(st, ring, old);
    }
    submit(st, key)
}

/// Submits the request of word `key` (none in flight).
fn submit(st: &mut State, key: (u64, usize)) -> Result<(), crate::OsError> {
    let t = &mut st.uring;
    let Some(ring) = t.rings.get(&key.0).cloned() else {
        return Ok(()); // the ring died: its reaper woke the interests
    };
    t.next += 1;
    let request = t.next;
    let w = t.words.get_mut(&key).expect("armed by the caller");
    // Acquire: pairs with the watcher's bump, which follows its Release of a
    // registration's `fired` flag (as in the helpers' `run`).
    let death = DEATH.event().load(Ordering::Acquire);
    *w.vec = [
        types::FutexWaitV::new()
            .uaddr(key.1 as u64)
            .val(u64::from(w.expected))
            .flags(FUTEX2_SIZE_U32),
        types::FutexWaitV::new()
            .uaddr(DEATH.event() as *const AtomicU32 as u64)
            .val(u64::from(death))
            .flags(FUTEX2_SIZE_U32),
    ];
    let entry = opcode::FutexWaitV::new(w.vec.as_ptr(), 2)
        .build()
        .user_data(request);
    ring.submit(&entry).map_err(crate::OsError::from)?;
    w.request = request;
    t.requests.insert(request, key);
    Ok(())
}

/// Cancels request `request` (0: none) on ring `ring`; its completion is ignored.
fn cancel(st: &mut State, ring: u64, request: u64) {
    if request == 0 {
        return;
    }
    st.uring.requests.remove(&request);
    if let Some(r) = st.uring.rings.get(&ring) {
        let entry = opcode::AsyncCancel::new(request).build().user_data(0);
        // An error only leaves the kernel's waiter until the word is woken or the
        // ring closes: nothing to undo.
        let _ = r.submit(&entry);
    }
}

/// Removes interest `id` from word `key`; the last one cancels the request.
pub(super) fn unlink(st: &mut State, id: u64, key: (u64, usize)) {
    let Some(w) = st.uring.words.get_mut(&key) else {
        return;
    };
    w.interests.remove(&id);
    if w.interests.is_empty() {
        let request = w.request;
        st.uring.words.remove(&key);
        cancel(st, key.0, request);
    }
}

/// Takes the completions of `ring` and wakes the interests of the words they end;
/// `false` once the ring's thread is gone (its [`Here`] was dropped: the reaper ends).
fn complete(ring: &Ring) -> bool {
    let done: Vec<u64> = {
        let mut io = ring.io.lock().unwrap_or_else(PoisonError::into_inner);
        io.completion().map(|c| c.user_data()).collect()
    };
    if done.contains(&RETIRE) {
        return false;
    }
    let mut to_wake = Vec::new();
    {
        let mut guard = super::lock();
        let Some(st) = guard.as_mut().filter(|s| s.pid == ring.pid) else {
            return true;
        };
        for request in done {
            // Cancelled or replaced requests (and the cancels' own completions,
            // user data 0) are no longer listed.
            let Some(key) = st.uring.requests.remove(&request) else {
                continue;
            };
            let Some(w) = st.uring.words.get_mut(&key) else {
                continue;
            };
            w.request = 0;
            let ids: Vec<u64> = w.interests.iter().copied().collect();
            take_wakers(st, ids, &mut to_wake);
        }
    }
    to_wake.into_iter().for_each(Waker::wake);
    true
}

/// Marks the ring dead when its reaper ends (the runtime shut down, or its reactor
/// refused the ring): wakes every interest on it and forgets its words.
struct Dead(Arc<Ring>);

impl Drop for Dead {
    fn drop(&mut self) {
        // Relaxed: see `Ring::usable_here`.
        self.0.alive.store(false, Ordering::Relaxed);
        let mut to_wake = Vec::new();
        {
            let mut guard = super::lock();
            let Some(st) = guard.as_mut().filter(|s| s.pid == self.0.pid) else {
                return;
            };
            st.uring.rings.remove(&self.0.id);
            let keys: Vec<(u64, usize)> = st
                .uring
                .words
                .keys()
                .copied()
                .filter(|k| k.0 == self.0.id)
                .collect();
            for key in keys {
                if let Some(w) = st.uring.words.remove(&key) {
                    st.uring.requests.remove(&w.request);
                    take_wakers(st, w.interests, &mut to_wake);
                }
            }
        }
        to_wake.into_iter().for_each(Waker::wake);
    }
}

/// The reaper task of the ring `dead` guards: waits for the ring to be readable in
/// the runtime's reactor, then hands its completions to [`complete`]; ending (or
/// dropped with its runtime), it marks the ring dead.
async fn reap(dead: Dead) {
    let ring = dead.0.clone();
    let fd = ring.fd;
    // tokio has no way to ask whether this runtime has I/O enabled: registering in
    // one without it panics. Caught once, it turns the backend off for the process
    // (the helpers serve every interest from then on; see the crate feature's docs).
    let registered = std::panic::catch_unwind(|| {
        // SAFETY: `fd` is the ring's, open while the ring lives; this task holds the
        // ring (`ring`, `dead`) and drops `afd` before either (end of this function).
        unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
    });
    let afd = match registered {
        Ok(Ok(afd)) => afd,
        // `dead` wakes whatever armed meanwhile: it arms again, with the helpers
        // (another ring would fail the same way).
        _ => {
            // Relaxed: a cached answer, as in `usable`.
            USABLE.store(2, Ordering::Relaxed);
            return;
        }
    };
    loop {
        let Ok(mut ready) = afd.readable().await else {
            break;
        };
        // Cleared before the drain: a completion posted after it makes the ring
        // readable again (a wake-up that finds nothing is harmless).
        ready.clear_ready();
        if !complete(&ring) {
            break;
        }
    }
    drop(afd); // out of the reactor before the ring may close
    drop(dead);
}
