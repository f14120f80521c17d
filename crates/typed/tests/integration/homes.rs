//! The named homes of the sync objects (`Shared<S>`): each opened by name in an
//! unrelated process (the test binary re-executed), and refused when opened as
//! another object.

use std::io::{BufRead, BufReader, Write};
use std::process::Child;
use std::time::Duration;

use shmkit_sync::{Barrier, Condvar, Event, LockError, Semaphore};
use shmkit_testkit::{child_role, spawn_role, unique_name, ShmCleanup};
use shmkit_typed::{
    OpenError, SharedBarrier, SharedCondvar, SharedEvent, SharedRwValue, SharedSemaphore,
    SharedValue,
};

/// Waits long enough for any healthy machine: reaching it means the test failed.
const LONG: Duration = Duration::from_secs(30);

/// A re-executed child that is killed if the test fails before reaping it.
struct Peer(Option<Child>);

impl Peer {
    fn spawn(test: &str, name: &str) -> Peer {
        Peer(Some(spawn_role(test, "peer", &[("HOME_NAME", name)])))
    }

    /// Blocks until the child says `word` (see [`say`]); false if it ended first.
    fn hear(&mut self, word: &str) -> bool {
        let out = self
            .0
            .as_mut()
            .and_then(|c| c.stdout.as_mut())
            .expect("stdout");
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .any(|line| line == word)
    }

    fn kill(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.0 = None;
    }

    fn succeeds(mut self) -> bool {
        let mut c = self.0.take().expect("child");
        c.wait().expect("wait").success()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Tells the parent `word` on stdout (written directly: the test harness captures
/// `println!`).
fn say(word: &str) {
    let mut out = std::io::stdout();
    writeln!(out, "{word}")
        .and_then(|()| out.flush())
        .expect("stdout");
}

fn peer_name() -> String {
    std::env::var("HOME_NAME").expect("HOME_NAME")
}

#[test]
fn named_semaphore_gives_back_the_permit_of_a_killed_process() {
    if child_role().is_some() {
        let sem = SharedSemaphore::open(&peer_name()).expect("open by name");
        let permit = sem.acquire_permit().expect("acquire");
        say("held");
        std::mem::forget(permit);
        loop {
            std::thread::park(); // until killed
        }
    }
    let name = unique_name("home-sem");
    let _cleanup = ShmCleanup::new(&name);
    let sem = SharedSemaphore::create(&name, Semaphore::bounded(1, 1)).expect("create");
    let mut peer = Peer::spawn(
        shmkit_testkit::test_path!(named_semaphore_gives_back_the_permit_of_a_killed_process),
        &name,
    );
    assert!(peer.hear("held"));
    assert_eq!(sem.value(), 0, "the peer holds the only permit");
    peer.kill();
    sem.acquire_timeout(LONG)
        .expect("the dead peer's permit comes back");
    assert!(matches!(
        SharedEvent::open(&name),
        Err(OpenError::TypeMismatch { .. })
    ));
}

#[test]
fn named_event_set_by_another_process_wakes_the_waiter() {
    if child_role().is_some() {
        let ev = SharedEvent::open(&peer_name()).expect("open by name");
        ev.set();
        return;
    }
    let name = unique_name("home-event");
    let _cleanup = ShmCleanup::new(&name);
    let ev = SharedEvent::create(&name, Event::new()).expect("create");
    let peer = Peer::spawn(
        shmkit_testkit::test_path!(named_event_set_by_another_process_wakes_the_waiter),
        &name,
    );
    assert!(ev.wait_timeout(LONG).expect("wait"), "the peer set it");
    assert!(peer.succeeds());
    assert!(matches!(
        SharedSemaphore::open(&name),
        Err(OpenError::TypeMismatch { .. })
    ));
}

#[test]
fn named_barrier_releases_both_processes() {
    if child_role().is_some() {
        let b = SharedBarrier::open(&peer_name()).expect("open by name");
        b.wait_timeout(LONG).expect("the parent arrives");
        return;
    }
    let name = unique_name("home-barrier");
    let _cleanup = ShmCleanup::new(&name);
    let b = SharedBarrier::create(&name, Barrier::new(2)).expect("create");
    let peer = Peer::spawn(
        shmkit_testkit::test_path!(named_barrier_releases_both_processes),
        &name,
    );
    b.wait_timeout(LONG).expect("the peer arrives");
    assert!(peer.succeeds());
    assert!(matches!(
        SharedCondvar::open(&name),
        Err(OpenError::TypeMismatch { .. })
    ));
}

#[test]
fn named_condvar_wakes_a_waiter_in_another_process() {
    if child_role().is_some() {
        let name = peer_name();
        let v = SharedValue::<u32>::open(&format!("{name}-v")).expect("open value");
        let cv = SharedCondvar::open(&name).expect("open condvar");
        v.set(7).expect("set");
        cv.notify_all();
        return;
    }
    let name = unique_name("home-condvar");
    let _cleanup = ShmCleanup::new(&name);
    let _cleanup_v = ShmCleanup::new(&format!("{name}-v"));
    let v = SharedValue::<u32>::create(&format!("{name}-v"), 0).expect("create value");
    let cv = SharedCondvar::create(&name, Condvar::new()).expect("create condvar");
    let mut guard = v.lock().map_err(|e| e.to_string()).expect("lock");
    let peer = Peer::spawn(
        shmkit_testkit::test_path!(named_condvar_wakes_a_waiter_in_another_process),
        &name,
    );
    while *guard == 0 {
        let (g, timed_out) = cv
            .wait_timeout(guard, LONG)
            .map_err(|e| e.to_string())
            .expect("wait");
        assert!(!timed_out, "the peer never notified");
        guard = g;
    }
    assert_eq!(*guard, 7);
    drop(guard);
    assert!(peer.succeeds());
    assert!(matches!(
        SharedBarrier::open(&name),
        Err(OpenError::TypeMismatch { .. })
    ));
}

#[test]
fn named_rw_value_written_by_another_process_and_a_dead_writer_is_reported() {
    if child_role().is_some() {
        let v = SharedRwValue::<u64>::open(&peer_name()).expect("open by name");
        v.update(|x| *x += 41).expect("update");
        std::mem::forget(v.write().map_err(|e| e.to_string()).expect("write"));
        say("holding");
        loop {
            std::thread::park(); // until killed
        }
    }
    let name = unique_name("home-rw");
    let _cleanup = ShmCleanup::new(&name);
    let v = SharedRwValue::<u64>::create(&name, 1).expect("create");
    let mut peer = Peer::spawn(
        shmkit_testkit::test_path!(
            named_rw_value_written_by_another_process_and_a_dead_writer_is_reported
        ),
        &name,
    );
    assert!(peer.hear("holding"));
    peer.kill();
    match v.write_timeout(LONG) {
        Err(LockError::OwnerDied(g)) => {
            assert_eq!(*g, 42, "the peer's update is there");
            g.make_consistent();
        }
        other => panic!("expected OwnerDied, got {:?}", other.map(|g| *g)),
    }
    assert_eq!(v.get().expect("get"), 42);
    // An RwLock-protected value is not a mutex-protected one, of the same type.
    assert!(matches!(
        SharedValue::<u64>::open(&name),
        Err(OpenError::TypeMismatch { .. })
    ));
}

/// In a segment shared across pid namespaces (its creator opted in), a holder that
/// looks dead may live in another namespace: the homes' lock and permit waits judge
/// liveness as the segment allows, so nobody is declared dead (the wait times out).
#[test]
fn homes_in_a_segment_shared_across_pid_namespaces_declare_nobody_dead() {
    use shmkit_segment::Segment;
    use shmkit_testkit::fork_child;
    let shared = || {
        Segment::options()
            .anonymous()
            .allow_foreign_pid_namespace(true)
    };
    let v = SharedValue::<u32>::create_in(shared(), 0).expect("value");
    let sem = SharedSemaphore::create_in(shared(), Semaphore::bounded(1, 1)).expect("sem");
    let rw = SharedRwValue::<u32>::create_in(shared(), 0).expect("rw value");
    fork_child(|| {
        std::mem::forget(v.lock());
        std::mem::forget(sem.acquire_permit());
        std::mem::forget(rw.write());
        0
    })
    .join_ok();
    let short = Duration::from_millis(50);
    assert!(matches!(v.lock_timeout(short), Err(LockError::Timeout)));
    assert!(sem.acquire_timeout(short).is_err(), "the permit stays held");
    assert_eq!(sem.value(), 0);
    assert!(matches!(rw.write_timeout(short), Err(LockError::Timeout)));
}
