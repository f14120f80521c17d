//! Cross-process tests of `Mutex`: real processes made by `fork`, sharing an anonymous
//! `MAP_SHARED` region.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmkit_sync::{LockError, Mutex};
use shmkit_testkit::{fork_child, stress, Exit, Pipe, SharedRegion};

/// A zeroed `T` at the start of a fresh shared region (valid when zeroed).
fn shared<T>(region: &SharedRegion) -> &T {
    assert!(std::mem::size_of::<T>() <= region.len());
    // SAFETY: the region is page aligned, large enough, zero-filled, and lives as long
    // as the returned reference; every T used here is valid when zeroed and Sync.
    unsafe { &*(region.as_ptr() as *const T) }
}

#[test]
fn eight_processes_increment_a_plain_counter_exactly() {
    let region = SharedRegion::new(4096);
    let m: &Mutex<u64> = shared(&region);
    let per = stress(100_000, 1_000_000);
    let procs = 8;
    let children: Vec<_> = (0..procs)
        .map(|_| {
            fork_child(|| {
                for _ in 0..per {
                    let mut g = match m.lock() {
                        Ok(g) => g,
                        Err(_) => return 2,
                    };
                    // A non-atomic read-modify-write: loses updates without exclusion.
                    let v = *g;
                    *g = std::hint::black_box(v) + 1;
                }
                0
            })
        })
        .collect();
    for c in children {
        c.join_ok();
    }
    let g = m.lock().expect("lock after the children");
    assert_eq!(*g, (procs * per) as u64);
}

#[test]
fn owner_killed_with_sigkill_gives_owner_died_then_normal_locking() {
    let region = SharedRegion::new(4096);
    let m: &Mutex<u64> = shared(&region);
    let ready = Pipe::new();
    let mut child = fork_child(|| {
        let mut g = m.lock().map_err(|_| ()).unwrap();
        *g = 41; // half of an update
        ready.send(1);
        loop {
            std::hint::spin_loop(); // hold the lock until killed
        }
    });
    ready.recv_n(1);
    child.kill();
    let start = Instant::now();
    let g = match m.lock() {
        Err(LockError::OwnerDied(g)) => g,
        other => panic!("expected OwnerDied, got {:?}", other.map(|_| ())),
    };
    let recovered_in = start.elapsed();
    assert_eq!(*g, 41, "the dead holder's write is visible");
    g.make_consistent();
    drop(g);
    assert_eq!(child.wait(), Exit::Signal(libc::SIGKILL));
    let mut g = m.lock().expect("consistent again");
    *g += 1;
    drop(g);
    assert_eq!(*m.lock().expect("normal"), 42);
    eprintln!("owner death recovered in {recovered_in:?}");
}

/// A waiter behind a live holder process does not poll it on a timer: it registers
/// the holder's process with the death watcher (checked here), whose wake on the
/// holder's SIGKILL ends the wait; the registration is gone once the wait returns.
#[test]
fn a_waiter_registers_the_holder_process_with_the_death_watcher_and_recovers() {
    use shmkit_sys::watcher;
    if !shmkit_testkit::skip_or_fail(watcher::pidfds_available(), "pidfd_open (Linux 5.3+)") {
        return;
    }
    let region = SharedRegion::new(4096);
    let m: &Mutex<u64> = shared(&region);
    let ready = Pipe::new();
    let never = Pipe::new();
    let mut child = fork_child(|| {
        let _g = m.lock().map_err(|_| ()).unwrap();
        ready.send(1);
        never.recv();
        0
    });
    ready.recv_n(1);
    let pid = child.pid() as u32;
    std::thread::scope(|s| {
        let waiter = s.spawn(|| matches!(m.lock(), Err(LockError::OwnerDied(_))));
        let until = Instant::now() + Duration::from_secs(10);
        let mut registered = watcher::is_watched(pid);
        while !registered && Instant::now() < until {
            std::thread::yield_now();
            registered = watcher::is_watched(pid);
        }
        // Killed either way, so that a failure does not leave the waiter blocked.
        child.kill();
        assert!(waiter.join().unwrap(), "the waiter recovers with OwnerDied");
        assert!(
            registered,
            "the waiter never registered the holder's process"
        );
    });
    assert!(!watcher::is_watched(pid), "unregistered after the wait");
    assert_eq!(child.wait(), Exit::Signal(libc::SIGKILL));
}

#[test]
fn zombie_owner_is_dead_even_before_it_is_reaped() {
    // Same as above but the parent does not reap the child before locking: a zombie
    // still "exists" for kill(pid, 0), so the liveness check must look at its state.
    let region = SharedRegion::new(4096);
    let m: &Mutex<u32> = shared(&region);
    let ready = Pipe::new();
    let child = fork_child(|| {
        let g = m.lock();
        ready.send(1);
        std::mem::forget(g);
        loop {
            std::hint::spin_loop();
        }
    });
    ready.recv_n(1);
    child.kill();
    assert!(m.lock().is_err_and(|e| e.is_owner_died()));
    drop(child);
}

#[test]
fn ignoring_owner_died_leaves_the_mutex_poisoned_not_deadlocked() {
    let region = SharedRegion::new(4096);
    let m: &Mutex<u32> = shared(&region);
    let ready = Pipe::new();
    let mut holder = fork_child(|| {
        let g = m.lock();
        ready.send(1);
        std::mem::forget(g);
        loop {
            std::hint::spin_loop();
        }
    });
    ready.recv_n(1);
    holder.kill();
    assert_eq!(holder.wait(), Exit::Signal(libc::SIGKILL));
    let died = m.lock();
    assert!(died.as_ref().is_err_and(|e| e.is_owner_died()));
    drop(died); // guard dropped without make_consistent
    assert!(m.is_poisoned());
    // Another process sees Poisoned (with the lock held), every time.
    let other = fork_child(|| {
        for _ in 0..3 {
            match m.lock() {
                Err(LockError::Poisoned(g)) => drop(g),
                _ => return 1,
            }
        }
        0
    });
    other.join_ok();
    let g = m.lock().expect_err("still poisoned").into_guard().unwrap();
    g.make_consistent();
    drop(g);
    assert!(m.lock().is_ok());
}

#[test]
fn exactly_one_of_several_waiters_sees_owner_died() {
    let region = SharedRegion::new(4096);
    let m: &Mutex<u32> = shared(&region);
    // SAFETY: offset 64 is inside the zeroed, page-aligned region and 4-aligned.
    let died_count = unsafe { &*(region.as_ptr().add(64) as *const AtomicU32) };
    let ready = Pipe::new();
    let mut holder = fork_child(|| {
        let g = m.lock();
        ready.send(1);
        std::mem::forget(g);
        loop {
            std::hint::spin_loop();
        }
    });
    ready.recv_n(1);
    let waiting = Pipe::new();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            fork_child(|| {
                waiting.send(1);
                match m.lock() {
                    Ok(_) => 0,
                    Err(LockError::OwnerDied(g)) => {
                        died_count.fetch_add(1, Ordering::Relaxed);
                        g.make_consistent();
                        0
                    }
                    Err(_) => 3,
                }
            })
        })
        .collect();
    waiting.recv_n(3);
    holder.kill();
    assert_eq!(holder.wait(), Exit::Signal(libc::SIGKILL));
    for w in waiters {
        w.join_ok();
    }
    assert_eq!(died_count.load(Ordering::Relaxed), 1);
    assert!(!m.is_poisoned());
}

#[test]
fn lock_timeout_on_a_held_lock_times_out_after_at_least_the_duration() {
    let region = SharedRegion::new(4096);
    let m: &Mutex<u32> = shared(&region);
    let ready = Pipe::new();
    let release = Pipe::new();
    let child = fork_child(|| {
        let g = m.lock();
        ready.send(1);
        release.recv();
        drop(g);
        0
    });
    ready.recv_n(1);
    for ms in [0u64, 30, 80] {
        let d = Duration::from_millis(ms);
        let start = Instant::now();
        assert!(matches!(m.lock_timeout(d), Err(LockError::Timeout)));
        assert!(start.elapsed() >= d, "returned before {d:?}");
    }
    assert!(matches!(m.try_lock(), Err(LockError::WouldBlock)));
    release.send(1);
    child.join_ok();
    assert!(m.lock_timeout(Duration::from_secs(10)).is_ok());
    assert!(m.try_lock().is_ok());
}

#[test]
fn waiter_sleeping_on_a_held_lock_gets_it_when_released() {
    let region = SharedRegion::new(4096);
    let m: &Mutex<u64> = shared(&region);
    let ready = Pipe::new();
    let release = Pipe::new();
    let holder = fork_child(|| {
        let mut g = m.lock().map_err(|_| ()).unwrap();
        ready.send(1);
        release.recv();
        *g = 7;
        0
    });
    ready.recv_n(1);
    let waiting = Pipe::new();
    let waiter = fork_child(|| {
        waiting.send(1);
        match m.lock() {
            Ok(g) if *g == 7 => 0,
            _ => 1,
        }
    });
    waiting.recv_n(1);
    release.send(1);
    holder.join_ok();
    waiter.join_ok();
}

#[test]
fn relocking_from_the_same_thread_is_reported_not_deadlocked() {
    let m = Mutex::new(0u8);
    let g = m.lock().unwrap();
    assert!(matches!(m.lock(), Err(LockError::WouldDeadlock)));
    assert!(matches!(m.try_lock(), Err(LockError::WouldDeadlock)));
    drop(g);
    assert!(m.try_lock().is_ok());
}

#[test]
fn forked_child_does_not_inherit_the_lock_or_unlock_the_parents() {
    let region = SharedRegion::new(4096);
    let m: &Mutex<u32> = shared(&region);
    let g = m.lock().unwrap();
    let child = fork_child(|| {
        // The child inherited a copy of `g`: it is not the holder.
        if !matches!(m.try_lock(), Err(LockError::WouldBlock)) {
            return 1;
        }
        0
    });
    child.join_ok();
    // Our guard still holds it.
    assert!(m.raw().is_locked());
    drop(g);
    assert!(!m.raw().is_locked());
}

#[test]
fn slice_mutex_works_through_a_fat_pointer() {
    let region = SharedRegion::new(4096);
    let len = 10;
    let ptr = std::ptr::slice_from_raw_parts_mut(region.as_ptr(), len) as *mut Mutex<[u32]>;
    // SAFETY: the region is zeroed and large enough for a RawMutex plus 10 u32s; a
    // slice-tailed Mutex is valid when zeroed.
    let m: &Mutex<[u32]> = unsafe { &*ptr };
    m.lock().unwrap()[9] = 5;
    assert_eq!(m.lock().unwrap().len(), 10);
    assert_eq!(m.lock().unwrap()[9], 5);
}

#[test]
fn lock_error_is_an_error_and_question_mark_works() {
    fn f(m: &Mutex<u8>) -> Result<u8, Box<dyn std::error::Error + '_>> {
        Ok(*m.lock()?)
    }
    let m = Mutex::new(3);
    assert_eq!(f(&m).unwrap(), 3);
    let _g = m.lock().unwrap();
    let e = m.try_lock().unwrap_err();
    assert_eq!(format!("{e:?}"), "WouldDeadlock");
    assert!(e.to_string().contains("already holds"));
}

/// Workers hammer a mutex guarding a two-word invariant (`a == b`) while the parent
/// SIGKILLs them at arbitrary points and starts replacements. Whoever gets `OwnerDied`
/// or `Poisoned` repairs the invariant; whoever gets a plain guard must find it intact.
/// A broken exclusion after a recovery, or a recovery that never happens, fails this.
#[test]
fn random_kills_under_contention_never_break_exclusion_or_wedge_the_lock() {
    let region = SharedRegion::new(4096);
    let m: &Mutex<[u64; 2]> = shared(&region);
    // SAFETY: offsets 256/320 are inside the zeroed page-aligned region, 4-aligned.
    let violations = unsafe { &*(region.as_ptr().add(256) as *const AtomicU32) };
    // SAFETY: as above.
    let recoveries = unsafe { &*(region.as_ptr().add(320) as *const AtomicU32) };
    let worker = || {
        loop {
            let mut g = match m.lock() {
                Ok(g) => {
                    if g[0] != g[1] {
                        violations.fetch_add(1, Ordering::Relaxed);
                    }
                    g
                }
                Err(LockError::OwnerDied(mut g)) | Err(LockError::Poisoned(mut g)) => {
                    recoveries.fetch_add(1, Ordering::Relaxed);
                    g[1] = g[0]; // repair
                    g.make_consistent();
                    g
                }
                Err(_) => return 2,
            };
            g[0] = std::hint::black_box(g[0]) + 1;
            std::hint::spin_loop();
            g[1] = std::hint::black_box(g[1]) + 1;
        }
    };
    let mut workers: Vec<_> = (0..3).map(|_| fork_child(worker)).collect();
    let kills = stress(15, 200);
    for k in 0..kills {
        // Let the workers make progress (observed through the lock itself), then kill one.
        let seen = |g: &[u64; 2]| g[0];
        let before = match m.lock() {
            Ok(g) => seen(&g),
            Err(e) => seen(&e.into_guard().expect("a guard")),
        };
        loop {
            let now = match m.lock() {
                Ok(g) => seen(&g),
                Err(e) => seen(&e.into_guard().expect("a guard")),
            };
            if now >= before + 2_000 {
                break;
            }
            std::thread::yield_now();
        }
        let mut victim = workers.swap_remove(k % workers.len());
        victim.kill();
        assert_eq!(victim.wait(), Exit::Signal(libc::SIGKILL));
        workers.push(fork_child(worker));
    }
    for w in &workers {
        w.kill();
    }
    for mut w in workers {
        assert_eq!(w.wait(), Exit::Signal(libc::SIGKILL));
    }
    // The last kill may have hit a holder: recover like anyone else would.
    let g = match m.lock() {
        Ok(g) => g,
        Err(e) => {
            let g = e.into_guard().expect("a guard");
            recoveries.fetch_add(1, Ordering::Relaxed);
            let mut g = g;
            g[1] = g[0];
            g.make_consistent();
            g
        }
    };
    assert_eq!(g[0], g[1]);
    assert_eq!(violations.load(Ordering::Relaxed), 0);
    eprintln!(
        "{kills} kills, {} recoveries, {} increments",
        recoveries.load(Ordering::Relaxed),
        g[0]
    );
}

#[test]
fn lock_timeout_waiter_gets_the_lock_when_it_is_released_in_time() {
    let region = SharedRegion::new(4096);
    let m: &Mutex<u32> = shared(&region);
    let ready = Pipe::new();
    let release = Pipe::new();
    let holder = fork_child(|| {
        let Ok(mut g) = m.lock() else { return 2 };
        ready.send(1);
        release.recv();
        *g = 3;
        0
    });
    ready.recv_n(1);
    let waiting = Pipe::new();
    let waiter = fork_child(|| {
        waiting.send(1);
        match m.lock_timeout(Duration::from_secs(30)) {
            Ok(g) if *g == 3 => 0,
            _ => 1,
        }
    });
    waiting.recv_n(1);
    release.send(1);
    holder.join_ok();
    waiter.join_ok();
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Signals interrupting the futex wait (EINTR) neither end the wait early nor stretch
/// it: the deadline is absolute.
#[test]
fn signals_during_lock_timeout_do_not_cut_the_wait_short() {
    let region = SharedRegion::new(4096);
    let m: &Mutex<u32> = shared(&region);
    let g = m.lock().unwrap();
    let waiting = Pipe::new();
    let mut child = fork_child(|| {
        // SAFETY: installing a no-op handler (async-signal-safe) without SA_RESTART, so
        // the futex wait really returns EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
        }
        waiting.send(1);
        let d = Duration::from_millis(200);
        let start = Instant::now();
        match m.lock_timeout(d) {
            Err(LockError::Timeout) if start.elapsed() >= d => 0,
            Err(LockError::Timeout) => 3,
            _ => 1,
        }
    });
    waiting.recv_n(1);
    for _ in 0..20 {
        // SAFETY: signalling our own live child.
        unsafe { libc::kill(child.pid(), libc::SIGUSR1) };
        std::thread::yield_now();
    }
    assert_eq!(child.wait(), Exit::Code(0));
    drop(g);
}

/// `make_consistent` and `poison` act only for the thread that holds the lock: a
/// caller that does not hold it (unlocked, or held by another process) gets `NotHeld`
/// and changes nothing. (Before, both stored their word regardless.)
#[test]
fn make_consistent_and_poison_refuse_a_caller_that_does_not_hold_the_lock() {
    use shmkit_sync::{Acquired, NotHeld, RawMutex};
    let region = SharedRegion::new(4096);
    let raw: &RawMutex = shared(&region);
    // Poisoned and unlocked.
    assert_eq!(raw.lock(), Ok(Acquired::Consistent));
    assert_eq!(raw.poison(), Ok(()));
    // SAFETY: this thread holds the lock.
    unsafe { raw.unlock() };
    assert!(raw.is_poisoned());
    // Not held: refused.
    assert_eq!(raw.make_consistent(), Err(NotHeld));
    assert!(
        raw.is_poisoned(),
        "make_consistent without the lock cleared the poison"
    );
    // Held by another process: refused too.
    let (held, release) = (Pipe::new(), Pipe::new());
    let child = fork_child(|| {
        let code = match raw.lock() {
            Ok(Acquired::Poisoned) => 0,
            _ => 2,
        };
        held.send(1);
        release.recv();
        let code = if raw.make_consistent().is_ok() {
            code
        } else {
            3
        }; // the holder may
           // SAFETY: this process holds the lock.
        unsafe { raw.unlock() };
        code
    });
    held.recv_n(1);
    assert_eq!(raw.make_consistent(), Err(NotHeld));
    assert!(
        raw.is_poisoned(),
        "a non-holder cleared the holder's poison"
    );
    release.send(1);
    child.join_ok();
    assert!(!raw.is_poisoned(), "the holder's make_consistent works");
    assert_eq!(raw.poison(), Err(NotHeld));
    assert!(!raw.is_poisoned(), "poison without the lock poisoned it");
}

/// A process restarted under the pid (here: thread id) of a holder that died — pid 1
/// in a restarted container over a persisted segment — is told apart by its start
/// time: it recovers the lock with `OwnerDied`, never `WouldDeadlock` or a timeout.
#[test]
fn a_lock_left_under_a_reused_thread_id_is_recovered_by_the_new_thread() {
    let region = SharedRegion::new(4096);
    let m: &Mutex<u64> = shared(&region);
    let child = fork_child(|| {
        // The forked child's only thread has tid == pid.
        let tid = std::process::id();
        let start = u64::from(shmkit_sys::owner::current_start_time());
        let other_start = if start == 0 { 1 } else { start - 1 };
        // Forge "held by a dead thread that had our tid": the lock word names our tid,
        // the owner word our tid with another start time (offsets 0 and 8 of RawMutex).
        // SAFETY: the region is page aligned and zeroed; offsets 0 and 8 hold the
        // mutex's AtomicU32 lock word and AtomicU64 owner word, and no other thread
        // or process touches the mutex while the child forges it.
        let (word, owner) = unsafe {
            (
                &*(region.as_ptr() as *const AtomicU32),
                &*(region.as_ptr().add(8) as *const std::sync::atomic::AtomicU64),
            )
        };
        word.store(tid, Ordering::Relaxed);
        owner.store(u64::from(tid) | (other_start << 32), Ordering::Release);
        match m.lock_timeout(Duration::from_secs(10)) {
            Err(LockError::OwnerDied(g)) => {
                g.make_consistent();
                0
            }
            Err(LockError::WouldDeadlock) => 2,
            Err(LockError::Timeout) => 3,
            _ => 4,
        }
    });
    let mut child = child;
    assert_eq!(
        child.wait(),
        Exit::Code(0),
        "0 = recovered; 2 = WouldDeadlock, 3 = Timeout, 4 = other"
    );
    assert!(
        m.try_lock().is_ok(),
        "the recovered lock was released normally"
    );
}
