//! The async forms (`Event::wait_async`, `Semaphore::acquire_async`,
//! `Ring::read_async` / `write_async`, the channel's, the queue's, the topic's and
//! `Latest::wait_newer_async`) on tokio's current-thread and multi-thread
//! runtimes, across real processes: the fast path, cancel safety, peer death, and the
//! bound on the doorbell's helper threads.
//!
//! The tests take one lock each: the doorbell's counters (helper threads, registered
//! words) are per process, and each test asserts that it leaves them at zero.

use std::future::Future;
use std::io::{BufRead, Write};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use shmkit::sync::future as doorbell;
use shmkit::sync::{
    Event, FileLock, FileLockError, LockMode, NamedLock, NamedLockError, Semaphore,
};
use shmkit::typed::topic::{
    Block, Overwrite, ReadError as TopicReadError, Topic, TopicConfig, TypedTopic,
};
use shmkit::typed::{Channel, GetError, Latest, LatestError, Queue, ReadError, RecvError, Ring};
use shmkit_testkit::{child_role, test_path, unique_name, ShmCleanup, ROLE_ENV};

/// A re-executed copy of this test binary running test `test` in the child role (as
/// `shmkit_testkit::spawn_role`, with stdin and stdout piped); killed and reaped on
/// drop, so a failing test leaves no process behind.
struct Kid(std::process::Child);

impl Kid {
    fn spawn(test: &str, env: &[(&str, &str)]) -> Kid {
        let exe = std::env::current_exe().expect("current test binary");
        let mut cmd = std::process::Command::new(exe);
        cmd.args([test, "--exact", "--test-threads=1", "--quiet"])
            .env(ROLE_ENV, "writer")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Kid(cmd.spawn().expect("re-execute the test binary"))
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child says `what` on a line of its stdout, through the handle: `println!` goes
/// to the test harness's capture, not to the pipe.
fn say(what: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{what}").expect("say");
    out.flush().expect("flush");
}

/// Reads the child's stdout up to a line that says `what` (skipping the harness's own
/// lines); unbuffered, so nothing after that line is taken.
fn expect_line(child: &mut std::process::Child, what: &str) {
    use std::io::Read;
    let out = child.stdout.as_mut().expect("stdout");
    let mut line = Vec::new();
    let mut byte = [0u8];
    loop {
        let n = out.read(&mut byte).expect("read the child's stdout");
        assert_eq!(n, 1, "the child ended before it said {what:?}");
        if byte[0] != b'\n' {
            line.push(byte[0]);
        } else if line == what.as_bytes() {
            return;
        } else {
            line.clear();
        }
    }
}

/// Serialises the tests of this binary (see the module docs).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Polls `f` once with a waker that does nothing.
fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// Waits until no word is registered and the helper threads exited (they exit on
/// their own once their last word goes; a hang guard, not a timing assertion).
fn assert_doorbell_idle() {
    wait_until(
        Duration::from_secs(20),
        || {
            doorbell::registered_words() == 0
                && doorbell::helper_threads() == 0
                && doorbell::uring_rings() == 0
        },
        || {
            format!(
                "doorbell not idle: {} words, {} helpers, {} rings",
                doorbell::registered_words(),
                doorbell::helper_threads(),
                doorbell::uring_rings()
            )
        },
    );
}

/// Yields until `done()`; panics with `what()` after `limit` (a hang guard, never a
/// timing assertion).
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool, what: impl Fn() -> String) {
    let guard = std::time::Instant::now() + limit;
    while !done() {
        assert!(std::time::Instant::now() < guard, "{}", what());
        std::thread::yield_now();
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A hang guard around a whole test body (never a timing assertion).
const HANG: Duration = Duration::from_secs(60);

#[test]
fn what_is_there_completes_on_the_first_poll_without_the_doorbell() {
    let _s = serial();
    let mut ring = Ring::anonymous(4096).expect("ring");
    ring.write(b"ready").expect("write");
    let mut buf = Vec::new();
    assert!(matches!(
        poll_once(pin!(ring.read_async(&mut buf))),
        Poll::Ready(Ok(5))
    ));
    assert_eq!(buf, b"ready");
    assert!(matches!(
        poll_once(pin!(ring.write_async(b"space"))),
        Poll::Ready(Ok(()))
    ));
    let ev = Event::new();
    ev.set();
    assert!(matches!(
        poll_once(pin!(ev.wait_async())),
        Poll::Ready(Ok(()))
    ));
    let sem = Semaphore::new(1);
    assert!(matches!(
        poll_once(pin!(sem.acquire_async())),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(sem.value(), 0);
    // No registration was made: no helper thread was started.
    assert_eq!(doorbell::registered_words(), 0);
    assert_eq!(doorbell::helper_threads(), 0);
    assert_eq!(ring.sleepers(), (0, 0));
    assert_eq!((ev.waiters(), sem.waiters()), (0, 0));
}

/// The child side of the cross-process ring tests: opens the ring named in
/// `RING_NAME`, waits for a line on stdin ("go"), then writes `RING_COUNT` messages
/// and, with `RING_HANG` set, says so on stdout and waits for ever (to be killed).
fn ring_child() {
    let name = std::env::var("RING_NAME").expect("RING_NAME");
    let count: u32 = std::env::var("RING_COUNT")
        .expect("count")
        .parse()
        .expect("n");
    let mut ring = Ring::open(&name).expect("open");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).expect("go");
    if std::env::var("RING_ATTACH").is_ok() {
        // Takes the writer role without writing (the ring is empty), says so, and waits
        // for ever (to be killed).
        ring.wait_consumed().expect("attach");
        say("attached");
        loop {
            std::thread::park();
        }
    }
    for i in 0..count {
        ring.write(&i.to_le_bytes()).expect("write");
    }
    if std::env::var("RING_HANG").is_ok() {
        say("written");
        loop {
            std::thread::park();
        }
    }
    // Dropping the writer closes the ring.
}

fn reads_from_a_child_that_publishes_after_the_parent_awaits(rt: tokio::runtime::Runtime) {
    let name = unique_name("async-ring");
    let _cleanup = ShmCleanup::new(&name);
    let mut ring = Ring::create(&name, 1 << 12).expect("create");
    let mut kid = Kid::spawn(
        test_path!(a_child_process_publishes_to_a_ring_the_parent_awaits),
        &[("RING_NAME", &name), ("RING_COUNT", "2000")],
    );
    let child = &mut kid.0;
    let mut go = Some(child.stdin.take().expect("stdin"));
    let got = rt.block_on(async {
        tokio::time::timeout(HANG, async {
            let mut buf = Vec::new();
            let mut next = 0u32;
            loop {
                let r = {
                    let mut read = pin!(ring.read_async(&mut buf));
                    if let Some(mut stdin) = go.take() {
                        // Pending first: the child writes only after this.
                        let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx)));
                        assert!(first.await.is_pending(), "nothing was written yet");
                        writeln!(stdin, "go").expect("tell the child");
                    }
                    read.await
                };
                match r {
                    Ok(4) => {
                        assert_eq!(buf, next.to_le_bytes());
                        next += 1;
                    }
                    Ok(n) => panic!("a {n}-byte message"),
                    Err(ReadError::Closed) => return next,
                    Err(e) => panic!("{e}"),
                }
            }
        })
        .await
        .expect("no hang")
    });
    assert_eq!(got, 2000);
    assert!(child.wait().expect("reap").success());
    assert_eq!(ring.sleepers(), (0, 0));
    drop(rt);
    assert_doorbell_idle();
}

#[test]
fn a_child_process_publishes_to_a_ring_the_parent_awaits() {
    if child_role().is_some() {
        return ring_child();
    }
    let _s = serial();
    reads_from_a_child_that_publishes_after_the_parent_awaits(current_thread());
    reads_from_a_child_that_publishes_after_the_parent_awaits(multi_thread());
}

/// A new ring (removed on drop) and a child running `test`'s child role ([`ring_child`])
/// on it with `env` besides its name.
fn ring_and_child(test: &str, env: &[(&str, &str)]) -> (ShmCleanup, Ring, Kid) {
    let name = unique_name("async-ring-kid");
    let cleanup = ShmCleanup::new(&name);
    let ring = Ring::create(&name, 1 << 12).expect("create");
    let mut env = env.to_vec();
    env.push(("RING_NAME", &name));
    let kid = Kid::spawn(test, &env);
    (cleanup, ring, kid)
}

/// Checks that a pending read ended with the death of `kid`, then that nothing was
/// left behind (the child reaped, no sleeper, the doorbell idle once `rt` is gone).
fn assert_read_ended_by_death(
    end: Result<usize, ReadError>,
    mut kid: Kid,
    ring: &Ring,
    rt: tokio::runtime::Runtime,
) {
    match end {
        Err(ReadError::PeerDied { pid }) => assert_eq!(pid, kid.0.id()),
        other => panic!("expected PeerDied, got {other:?}"),
    }
    kid.0.wait().expect("reap");
    assert_eq!(ring.sleepers(), (0, 0));
    drop(rt);
    assert_doorbell_idle();
}

#[test]
fn a_killed_writer_ends_a_pending_read_with_peer_died() {
    if child_role().is_some() {
        return ring_child();
    }
    let _s = serial();
    let (_cleanup, mut ring, mut kid) = ring_and_child(
        test_path!(a_killed_writer_ends_a_pending_read_with_peer_died),
        &[("RING_COUNT", "1"), ("RING_HANG", "1")],
    );
    let child = &mut kid.0;
    writeln!(child.stdin.take().expect("stdin"), "go").expect("go");
    expect_line(child, "written");
    let rt = multi_thread();
    let end = rt.block_on(async {
        tokio::time::timeout(HANG, async {
            let mut buf = Vec::new();
            assert_eq!(ring.read_async(&mut buf).await.expect("the one message"), 4);
            let mut read = pin!(ring.read_async(&mut buf));
            let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx)));
            assert!(first.await.is_pending());
            child.kill().expect("kill");
            read.await
        })
        .await
        .expect("no hang")
    });
    assert_read_ended_by_death(end, kid, &ring, rt);
}

/// A read pending while the ring had no writer learns of the writer that attaches
/// later (its attach wakes the ring's readers), so the writer's death ends the read.
#[test]
fn a_writer_that_attaches_after_a_read_is_pending_then_dies_ends_it_with_peer_died() {
    if child_role().is_some() {
        return ring_child();
    }
    let _s = serial();
    let (_cleanup, mut ring, mut kid) = ring_and_child(
        test_path!(a_writer_that_attaches_after_a_read_is_pending_then_dies_ends_it_with_peer_died),
        &[("RING_COUNT", "0"), ("RING_ATTACH", "1")],
    );
    let child = &mut kid.0;
    // A handle without a role, to see the read's announcement from another thread.
    let name = ring.segment().and_then(|s| s.name()).expect("a named ring");
    let observer = Ring::open(name).expect("open");
    let rt = current_thread();
    let end = std::thread::scope(|s| {
        // The child attaches and is killed while the read is pending: only a wake can
        // get the read polled again (nothing else polls it).
        let child = &mut *child;
        s.spawn(move || {
            wait_until(
                HANG,
                || observer.sleepers().0 != 0,
                || "the read never waited".into(),
            );
            writeln!(child.stdin.take().expect("stdin"), "go").expect("go");
            expect_line(child, "attached");
            child.kill().expect("kill");
        });
        rt.block_on(async {
            let mut buf = Vec::new();
            tokio::time::timeout(HANG, ring.read_async(&mut buf))
                .await
                .expect("no hang: the read must learn of the writer that attached, then died")
        })
    });
    assert_read_ended_by_death(end, kid, &ring, rt);
}

#[test]
fn dropping_at_every_await_loses_nothing_and_leaves_no_sleeper() {
    let _s = serial();
    for rt in [current_thread(), multi_thread()] {
        let mut ring = Ring::anonymous(256).expect("ring");
        let ev = Event::new_auto_reset();
        let sem = Semaphore::new(0);
        rt.block_on(async {
            tokio::time::timeout(HANG, async {
                // Each future is polled to Pending (registered), then dropped; the
                // value published after it must still be there for the next one.
                let mut buf = Vec::new();
                for i in 0u32..200 {
                    {
                        let read = pin!(ring.read_async(&mut buf));
                        assert!(poll_once(read).is_pending());
                    }
                    ring.write(&i.to_le_bytes()).expect("write");
                    assert_eq!(ring.read_async(&mut buf).await.expect("read"), 4);
                    assert_eq!(buf, i.to_le_bytes());
                    {
                        let wait = pin!(ev.wait_async());
                        assert!(poll_once(wait).is_pending());
                    }
                    ev.set();
                    ev.wait_async().await.expect("the set is still there");
                    {
                        let acq = pin!(sem.acquire_async());
                        assert!(poll_once(acq).is_pending());
                    }
                    sem.release().expect("release");
                    sem.acquire_async()
                        .await
                        .expect("the permit is still there");
                }
            })
            .await
            .expect("no hang")
        });
        // A writer cancelled on a full ring wrote nothing.
        let mut filled = 0u32;
        while ring.try_write(&filled.to_le_bytes()).is_ok() {
            filled += 1;
        }
        {
            let write = pin!(ring.write_async(b"late"));
            assert!(poll_once(write).is_pending());
        }
        let mut buf = Vec::new();
        for i in 0..filled {
            ring.try_read_into(&mut buf).expect("read back");
            assert_eq!(buf, i.to_le_bytes());
        }
        assert!(
            ring.try_read_into(&mut buf).is_err(),
            "the cancelled write wrote nothing"
        );
        assert_eq!(ring.sleepers(), (0, 0));
        assert_eq!((ev.waiters(), sem.waiters()), (0, 0));
        assert_eq!(sem.value(), 0);
        drop(rt);
        assert_doorbell_idle();
    }
}

/// A waker that records that it was called.
struct Flag(std::sync::atomic::AtomicBool);
impl std::task::Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn an_acquire_woken_then_dropped_leaves_the_permit() {
    let _s = serial();
    let sem = Semaphore::new(0);
    let flag = Arc::new(Flag(Default::default()));
    let waker = Waker::from(flag.clone());
    {
        let mut acq = pin!(sem.acquire_async());
        assert!(acq
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(sem.waiters(), 1);
        sem.release().expect("release");
        // The doorbell's helper wakes the task (a hang guard bounds this loop).
        wait_until(
            HANG,
            || flag.0.load(std::sync::atomic::Ordering::SeqCst),
            || "never woken".into(),
        );
        // Dropped here, woken but not polled again.
    }
    assert_eq!(sem.waiters(), 0);
    sem.try_acquire().expect("the permit stayed");
    assert_doorbell_idle();
}

/// Whether the doorbell's io_uring backend serves tokio futures here (the tests of it
/// skip where it does not, and fail so under `SHMKIT_CI=1`).
fn uring_or_skip() -> bool {
    shmkit_testkit::skip_or_fail(
        doorbell::uring_available(),
        "needs io_uring with futex ops (Linux 6.7+, not refused by seccomp)",
    )
}

/// Sends every interest to the helper threads while it lives (as where io_uring is
/// refused), so that their bound and fallback are tested on any machine.
struct HelpersOnly;

impl HelpersOnly {
    fn new() -> Self {
        doorbell::force_helpers(true);
        HelpersOnly
    }
}

impl Drop for HelpersOnly {
    fn drop(&mut self) {
        doorbell::force_helpers(false);
    }
}

/// 10,000 futures on 100 events of a 2-worker runtime: all pending (counted on their
/// events, their words registered), then `bound` checks the doorbell, then every one
/// is woken; shutting the runtime down leaves the doorbell idle.
fn ten_thousand_futures_on_a_hundred_events(bound: impl FnOnce()) {
    const OBJECTS: usize = 100;
    const FUTURES: usize = 10_000;
    let events: Arc<Vec<Event>> = Arc::new((0..OBJECTS).map(|_| Event::new()).collect());
    let rt = multi_thread();
    rt.block_on(async {
        tokio::time::timeout(HANG, async {
            let tasks: Vec<_> = (0..FUTURES)
                .map(|i| {
                    let events = events.clone();
                    tokio::spawn(async move { events[i % OBJECTS].wait_async().await })
                })
                .collect();
            while events.iter().map(Event::waiters).sum::<u32>() < FUTURES as u32
                || doorbell::registered_words() < OBJECTS
            {
                tokio::task::yield_now().await;
            }
            bound();
            for ev in events.iter() {
                ev.set();
            }
            for t in tasks {
                t.await.expect("join").expect("woken");
            }
        })
        .await
        .expect("no hang")
    });
    assert!(events.iter().all(|e| e.waiters() == 0));
    drop(rt);
    assert_doorbell_idle();
}

/// The io_uring backend's bound: at most one ring per thread that polls (2 workers,
/// and `block_on`'s), one request per (ring, word), no helper thread.
#[test]
fn ten_thousand_futures_on_a_hundred_events_on_io_uring_need_no_helper_thread() {
    let _s = serial();
    if !uring_or_skip() {
        return;
    }
    ten_thousand_futures_on_a_hundred_events(|| {
        let rings = doorbell::uring_rings();
        assert!(
            (1..=3).contains(&rings),
            "{rings} rings for 2 workers and block_on"
        );
        assert!(doorbell::registered_words() <= 100 * rings);
        assert_eq!(doorbell::helper_threads(), 0);
    });
}

/// A thread that polled a future inside the runtime's context and then exits (as a
/// blocking-pool thread does) takes its ring with it: the rings do not pile up while
/// the runtime lives.
#[test]
fn a_thread_that_exits_takes_its_io_uring_ring_with_it() {
    let _s = serial();
    if !uring_or_skip() {
        return;
    }
    let rt = multi_thread();
    let ev = Event::new();
    for _ in 0..5 {
        std::thread::scope(|s| {
            s.spawn(|| {
                let _in = rt.enter();
                assert!(poll_once(pin!(ev.wait_async())).is_pending());
                assert!(
                    doorbell::uring_rings() >= 1,
                    "armed on a ring of this thread"
                );
            });
        });
    }
    wait_until(
        HANG,
        || doorbell::uring_rings() == 0,
        || format!("{} rings left", doorbell::uring_rings()),
    );
    assert_eq!(ev.waiters(), 0);
    drop(rt);
    assert_doorbell_idle();
}

/// The helpers' bound: one thread per 126 distinct words.
#[test]
fn ten_thousand_futures_on_a_hundred_events_need_one_helper_thread() {
    let _s = serial();
    let _helpers = HelpersOnly::new();
    ten_thousand_futures_on_a_hundred_events(|| {
        assert_eq!(doorbell::registered_words(), 100);
        assert_eq!(
            doorbell::helper_threads(),
            100usize.div_ceil(doorbell::WORDS_PER_HELPER)
        );
    });
}

#[test]
fn three_hundred_words_need_three_helper_threads() {
    let _s = serial();
    let _helpers = HelpersOnly::new();
    const OBJECTS: usize = 300;
    let events: Arc<Vec<Event>> = Arc::new((0..OBJECTS).map(|_| Event::new()).collect());
    let rt = current_thread();
    rt.block_on(async {
        let tasks: Vec<_> = (0..OBJECTS)
            .map(|i| {
                let events = events.clone();
                tokio::spawn(async move { events[i].wait_async().await })
            })
            .collect();
        while doorbell::registered_words() < OBJECTS {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            doorbell::helper_threads(),
            OBJECTS.div_ceil(doorbell::WORDS_PER_HELPER)
        );
        // Dropping the runtime's tasks (a shutdown with futures pending) ends them.
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            assert!(t.await.expect_err("aborted").is_cancelled());
        }
    });
    assert!(events.iter().all(|e| e.waiters() == 0));
    drop(rt);
    assert_doorbell_idle();
}

/// The next item of a stream (what `StreamExt::next` does).
async fn next<S: futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}

/// The child side of the cross-process channel tests: opens the channel named in
/// `CHAN_NAME`, waits for a line on stdin, sends `CHAN_COUNT` numbers and, with
/// `CHAN_HANG` set, says so on stdout and waits for ever (to be killed).
fn channel_child() {
    let name = std::env::var("CHAN_NAME").expect("CHAN_NAME");
    let count: u64 = std::env::var("CHAN_COUNT")
        .expect("count")
        .parse()
        .expect("n");
    let tx = Channel::<u64>::open(&name).expect("open");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).expect("go");
    for i in 0..count {
        tx.send(i).expect("send");
    }
    if std::env::var("CHAN_HANG").is_ok() {
        say("sent");
        loop {
            std::thread::park();
        }
    }
    // Dropping the only sender disconnects the channel.
}

#[test]
fn a_stream_receives_what_a_child_process_sends_after_the_parent_awaits() {
    if child_role().is_some() {
        return channel_child();
    }
    let _s = serial();
    for rt in [current_thread(), multi_thread()] {
        let name = unique_name("async-chan");
        let _cleanup = ShmCleanup::new(&name);
        let mut rx = Channel::<u64>::create(&name, 1 << 12).expect("create");
        let mut kid = Kid::spawn(
            test_path!(a_stream_receives_what_a_child_process_sends_after_the_parent_awaits),
            &[("CHAN_NAME", &name), ("CHAN_COUNT", "3000")],
        );
        let mut stdin = kid.0.stdin.take().expect("stdin");
        // On a task of its own: the future of a `&mut Channel` is `Send`.
        let got = rt.block_on(async move {
            let task = tokio::spawn(async move {
                let mut stream = rx.stream();
                let mut want = 0u64;
                {
                    let mut first = pin!(next(&mut stream));
                    let polled = std::future::poll_fn(|cx| Poll::Ready(first.as_mut().poll(cx)));
                    assert!(polled.await.is_pending(), "nothing was sent yet");
                    writeln!(stdin, "go").expect("tell the child");
                    assert_eq!(first.await.expect("an item").expect("a message"), 0);
                    want += 1;
                }
                while let Some(m) = next(&mut stream).await {
                    assert_eq!(m.expect("a message"), want);
                    want += 1;
                }
                want
            });
            tokio::time::timeout(HANG, task)
                .await
                .expect("no hang")
                .expect("join")
        });
        assert_eq!(got, 3000, "every message, then the end (Disconnected)");
        assert!(kid.0.wait().expect("reap").success());
        drop(rt);
        assert_doorbell_idle();
    }
}

#[test]
fn a_killed_sender_ends_a_pending_receive_with_disconnected() {
    if child_role().is_some() {
        return channel_child();
    }
    let _s = serial();
    let name = unique_name("async-chan-died");
    let _cleanup = ShmCleanup::new(&name);
    let mut rx = Channel::<u64>::create(&name, 1 << 12).expect("create");
    let mut kid = Kid::spawn(
        test_path!(a_killed_sender_ends_a_pending_receive_with_disconnected),
        &[
            ("CHAN_NAME", &name),
            ("CHAN_COUNT", "1"),
            ("CHAN_HANG", "1"),
        ],
    );
    writeln!(kid.0.stdin.take().expect("stdin"), "go").expect("go");
    expect_line(&mut kid.0, "sent");
    let rt = multi_thread();
    let end = rt.block_on(async {
        tokio::time::timeout(HANG, async {
            assert_eq!(rx.recv_async().await.expect("the one message"), 0);
            let mut recv = pin!(rx.recv_async());
            let first = std::future::poll_fn(|cx| Poll::Ready(recv.as_mut().poll(cx)));
            assert!(first.await.is_pending());
            kid.0.kill().expect("kill");
            recv.await
        })
        .await
        .expect("no hang")
    });
    assert_eq!(end, Err(RecvError::Disconnected));
    drop(rt);
    assert_doorbell_idle();
}

#[test]
fn a_dropped_channel_future_loses_nothing() {
    let _s = serial();
    let rt = current_thread();
    let mut rx = Channel::<u32>::anonymous(256).expect("channel");
    let mut tx = rx.clone();
    rt.block_on(async {
        for i in 0..200u32 {
            assert!(poll_once(pin!(rx.recv_async())).is_pending());
            tx.send_async(i).await.expect("room");
            assert_eq!(rx.recv_async().await.expect("still there"), i);
        }
        // A send cancelled on a full channel sent nothing.
        let mut filled = 0u32;
        while tx.try_send(filled).is_ok() {
            filled += 1;
        }
        assert!(poll_once(pin!(tx.send_async(u32::MAX))).is_pending());
        for i in 0..filled {
            assert_eq!(rx.try_recv().expect("read back"), i);
        }
        assert_eq!(
            rx.try_recv(),
            Err(RecvError::Empty),
            "the cancelled send sent nothing"
        );
    });
    drop(rt);
    assert_doorbell_idle();
}

#[test]
fn queue_tasks_on_a_small_queue_deliver_every_item_once() {
    let _s = serial();
    const PER_PRODUCER: u64 = 2000;
    const PRODUCERS: u64 = 4;
    for rt in [current_thread(), multi_thread()] {
        let q = Arc::new(Queue::<u64>::anonymous(4).expect("queue"));
        let (sum, count) = rt.block_on(async {
            tokio::time::timeout(HANG, async {
                let consumers: Vec<_> = (0..4)
                    .map(|_| {
                        let q = q.clone();
                        tokio::spawn(async move {
                            let (mut sum, mut n) = (0u64, 0u64);
                            loop {
                                match q.get_async().await {
                                    Ok(v) => {
                                        sum += v;
                                        n += 1;
                                    }
                                    Err(GetError::Closed) => return (sum, n),
                                    Err(e) => panic!("{e}"),
                                }
                            }
                        })
                    })
                    .collect();
                let producers: Vec<_> = (0..PRODUCERS)
                    .map(|p| {
                        let q = q.clone();
                        tokio::spawn(async move {
                            for i in 0..PER_PRODUCER {
                                q.put_async(p * PER_PRODUCER + i + 1).await.expect("put");
                            }
                        })
                    })
                    .collect();
                for p in producers {
                    p.await.expect("join");
                }
                q.close();
                let mut total = (0, 0);
                for c in consumers {
                    let (s, n) = c.await.expect("join");
                    total = (total.0 + s, total.1 + n);
                }
                total
            })
            .await
            .expect("no hang")
        });
        let n = PRODUCERS * PER_PRODUCER;
        assert_eq!(count, n);
        assert_eq!(sum, n * (n + 1) / 2, "every item exactly once");
        drop(rt);
        assert_doorbell_idle();
    }
}

#[test]
fn a_dropped_queue_future_loses_nothing() {
    let _s = serial();
    let q = Queue::<u32>::anonymous(4).expect("queue");
    for i in 0..100u32 {
        assert!(poll_once(pin!(q.get_async())).is_pending());
        q.put(i).expect("put");
        assert!(matches!(poll_once(pin!(q.get_async())), Poll::Ready(Ok(v)) if v == i));
    }
    for i in 0..4 {
        q.put(i).expect("fill");
    }
    assert!(poll_once(pin!(q.put_async(99))).is_pending());
    for i in 0..4 {
        assert_eq!(q.try_get().expect("read back"), i);
    }
    assert_eq!(
        q.try_get(),
        Err(GetError::Empty),
        "the cancelled put put nothing"
    );
    assert_doorbell_idle();
}

/// Polls `f` to completion on this thread (a minimal executor: the waker unparks).
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn a_forked_child_starts_a_doorbell_of_its_own() {
    let _s = serial();
    // A pending future in the parent: its helper thread runs, and is not copied by fork.
    let parent_event = Event::new();
    let mut pending = Box::pin(parent_event.wait_async());
    assert!(poll_once(pending.as_mut()).is_pending());
    assert_eq!(doorbell::registered_words(), 1);
    let child = shmkit_testkit::fork_child(|| {
        if doorbell::registered_words() != 0 {
            return 2; // the parent's registrations are not the child's
        }
        let ev = Event::new();
        std::thread::scope(|s| {
            let mut wait = pin!(ev.wait_async());
            if poll_once(wait.as_mut()).is_ready() {
                return 3;
            }
            s.spawn(|| ev.set());
            // Only a helper thread of this child wakes it (the parent's is not here).
            block_on(wait).map_or(4, |()| 0)
        })
    });
    child.join_ok();
    // The parent's registration is untouched by the child.
    assert_eq!(doorbell::registered_words(), 1);
    parent_event.set();
    assert!(matches!(block_on(pending.as_mut()), Ok(())));
    drop(pending);
    assert_doorbell_idle();
}

// ----- the broadcast topic and the latest-value cell -----

/// The child side of the topic and `Latest` tests, as `TOPIC_MODE` says:
/// - `publish`: opens the topic `TOPIC_NAME`, waits for a line on stdin, writes
///   `TOPIC_COUNT` numbers (`u32`), then drops its handle (closing the topic), or with
///   `TOPIC_HANG` says "written" and waits for ever (to be killed);
/// - `latest`: the same with the `Latest<u64>` cell `TOPIC_NAME` (publishes 1..=count);
/// - `subscribe`: subscribes to the topic, says "subscribed", waits for a line, reads
///   `TOPIC_COUNT` messages, says "read" and waits for ever (to be killed).
fn topic_child() {
    let name = std::env::var("TOPIC_NAME").expect("TOPIC_NAME");
    let count: u32 = std::env::var("TOPIC_COUNT")
        .expect("count")
        .parse()
        .expect("n");
    let go = || {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).expect("go");
    };
    let hang = || loop {
        std::thread::park();
    };
    match std::env::var("TOPIC_MODE").expect("TOPIC_MODE").as_str() {
        "publish" => {
            let mut topic = Topic::<Block>::open(&name).expect("open");
            go();
            for i in 0..count {
                topic.write(&i.to_le_bytes()).expect("write");
            }
            if std::env::var("TOPIC_HANG").is_ok() {
                say("written");
                hang();
            }
        }
        "latest" => {
            let mut cell = Latest::<u64>::open(&name).expect("open");
            go();
            for i in 1..=u64::from(count) {
                cell.publish(i).expect("publish");
            }
            if std::env::var("TOPIC_HANG").is_ok() {
                say("written");
                hang();
            }
        }
        "subscribe" => {
            let topic = Topic::<Block>::open(&name).expect("open");
            let mut sub = topic.subscribe().expect("subscribe");
            say("subscribed");
            go();
            let mut buf = Vec::new();
            for _ in 0..count {
                sub.read_into(&mut buf).expect("read");
            }
            say("read");
            hang();
        }
        other => panic!("unknown TOPIC_MODE {other}"),
    }
}

#[test]
fn a_topic_or_latest_value_there_completes_on_the_first_poll_without_the_doorbell() {
    let _s = serial();
    let mut writer = Topic::<Block>::anonymous(TopicConfig::new(4096)).expect("topic");
    let handle = writer.reader_handle().expect("handle");
    let mut sub = handle.subscribe().expect("subscribe");
    assert!(matches!(
        poll_once(pin!(writer.write_async(b"ready"))),
        Poll::Ready(Ok(()))
    ));
    writer.write(b"again").expect("write");
    let mut buf = Vec::new();
    assert!(matches!(
        poll_once(pin!(sub.read_into_async(&mut buf))),
        Poll::Ready(Ok(5))
    ));
    assert_eq!(buf, b"ready");
    match poll_once(pin!(sub.read_async())) {
        Poll::Ready(Ok(m)) => assert_eq!(m, b"again"),
        other => panic!("expected the message, got {other:?}"),
    }
    // A typed topic's value, and an Overwrite writer (which never waits).
    let mut typed = TypedTopic::<u64, Overwrite>::anonymous(TopicConfig::new(256)).expect("typed");
    let typed_handle = typed.reader_handle().expect("handle");
    let mut typed_sub = typed_handle.subscribe().expect("subscribe");
    for v in 0..100u64 {
        assert!(matches!(
            poll_once(pin!(typed.as_bytes().write_async(&v.to_le_bytes()))),
            Poll::Ready(Ok(()))
        ));
    }
    assert!(matches!(
        poll_once(pin!(typed_sub.read_value_async())),
        Poll::Ready(Err(TopicReadError::Lagged(_)))
    ));
    assert!(matches!(
        poll_once(pin!(typed_sub.read_value_async())),
        Poll::Ready(Ok(_))
    ));
    let name = unique_name("async-latest-fast");
    let _cleanup = ShmCleanup::new(&name);
    let mut cell = Latest::<u64>::create(&name, 1).expect("latest");
    let seen = cell.sequence();
    cell.publish(7).expect("publish");
    assert!(matches!(
        poll_once(pin!(cell.wait_newer_async(seen))),
        Poll::Ready(Ok((s, 7))) if s == seen + 1
    ));
    assert_eq!(doorbell::registered_words(), 0);
    assert_eq!(doorbell::helper_threads(), 0);
    assert_eq!(writer.sleepers(), (0, 0));
    assert_eq!(cell.sleepers(), 0);
}

fn a_stream_of_a_topic_and_a_latest_cell_see_what_a_child_publishes(rt: tokio::runtime::Runtime) {
    // The topic: a stream that is pending before the child writes, and ends when the
    // child's handle closes the topic.
    let name = unique_name("async-topic");
    let _cleanup = ShmCleanup::new(&name);
    let topic = Topic::<Block>::create(&name, TopicConfig::new(1 << 10)).expect("create");
    let mut sub = topic.subscribe().expect("subscribe");
    let mut kid = Kid::spawn(
        test_path!(a_child_process_publishes_to_a_topic_and_a_latest_cell_the_parent_awaits),
        &[
            ("TOPIC_NAME", &name),
            ("TOPIC_COUNT", "3000"),
            ("TOPIC_MODE", "publish"),
        ],
    );
    let mut stdin = kid.0.stdin.take().expect("stdin");
    let got = rt.block_on(async {
        tokio::time::timeout(HANG, async {
            let mut stream = sub.stream();
            let first = std::future::poll_fn(|cx| {
                Poll::Ready(futures_core::Stream::poll_next(
                    std::pin::Pin::new(&mut stream),
                    cx,
                ))
            });
            assert!(first.await.is_pending(), "nothing was written yet");
            writeln!(stdin, "go").expect("tell the child");
            let mut n = 0u32;
            while let Some(m) = next(&mut stream).await {
                assert_eq!(m.expect("message"), n.to_le_bytes());
                n += 1;
            }
            n
        })
        .await
        .expect("no hang")
    });
    assert_eq!(got, 3000, "every message, then the end of the stream");
    assert!(kid.0.wait().expect("reap").success());
    assert_eq!(topic.sleepers(), (0, 0));
    drop(sub);

    // The latest cell: a wait pending before the child publishes; the newest value
    // follows, and the writer's leaving ends the waits.
    let name = unique_name("async-latest");
    let _cleanup = ShmCleanup::new(&name);
    let cell = Latest::<u64>::create(&name, 0).expect("create");
    let mut kid = Kid::spawn(
        test_path!(a_child_process_publishes_to_a_topic_and_a_latest_cell_the_parent_awaits),
        &[
            ("TOPIC_NAME", &name),
            ("TOPIC_COUNT", "500"),
            ("TOPIC_MODE", "latest"),
        ],
    );
    let mut stdin = kid.0.stdin.take().expect("stdin");
    let (last, end) = rt.block_on(async {
        tokio::time::timeout(HANG, async {
            let mut seen = cell.sequence();
            let mut last = 0;
            {
                let mut wait = pin!(cell.wait_newer_async(seen));
                let first = std::future::poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx)));
                assert!(first.await.is_pending(), "nothing was published yet");
                writeln!(stdin, "go").expect("tell the child");
                let (s, v) = wait.await.expect("a newer value");
                assert!(s > seen && v > last);
                (seen, last) = (s, v);
            }
            loop {
                match cell.wait_newer_async(seen).await {
                    Ok((s, v)) => {
                        assert!(s > seen && v > last, "newer values only");
                        (seen, last) = (s, v);
                    }
                    Err(e) => return (last, e),
                }
            }
        })
        .await
        .expect("no hang")
    });
    assert_eq!(last, 500, "the newest value is always seen");
    assert_eq!(end, LatestError::WriterLeft);
    assert!(kid.0.wait().expect("reap").success());
    assert_eq!(cell.sleepers(), 0);
    drop(rt);
    assert_doorbell_idle();
}

#[test]
fn a_child_process_publishes_to_a_topic_and_a_latest_cell_the_parent_awaits() {
    if child_role().is_some() {
        return topic_child();
    }
    let _s = serial();
    a_stream_of_a_topic_and_a_latest_cell_see_what_a_child_publishes(current_thread());
    a_stream_of_a_topic_and_a_latest_cell_see_what_a_child_publishes(multi_thread());
}

#[test]
fn a_killed_topic_or_latest_writer_ends_a_pending_wait_with_peer_died() {
    if child_role().is_some() {
        return topic_child();
    }
    let _s = serial();
    let rt = multi_thread();
    for mode in ["publish", "latest"] {
        let name = unique_name("async-topic-died");
        let _cleanup = ShmCleanup::new(&name);
        let topic = (mode == "publish")
            .then(|| Topic::<Block>::create(&name, TopicConfig::new(1 << 10)).expect("create"));
        let cell = (mode == "latest").then(|| Latest::<u64>::create(&name, 0).expect("create"));
        let mut sub = topic.as_ref().map(|t| t.subscribe().expect("subscribe"));
        let mut kid = Kid::spawn(
            test_path!(a_killed_topic_or_latest_writer_ends_a_pending_wait_with_peer_died),
            &[
                ("TOPIC_NAME", &name),
                ("TOPIC_COUNT", "1"),
                ("TOPIC_MODE", mode),
                ("TOPIC_HANG", "1"),
            ],
        );
        let child = &mut kid.0;
        let pid = child.id();
        writeln!(child.stdin.take().expect("stdin"), "go").expect("go");
        expect_line(child, "written");
        rt.block_on(async {
            tokio::time::timeout(HANG, async {
                if let Some(sub) = &mut sub {
                    let mut buf = Vec::new();
                    assert_eq!(sub.read_into_async(&mut buf).await.expect("the message"), 4);
                    let mut read = pin!(sub.read_into_async(&mut buf));
                    let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx)));
                    assert!(first.await.is_pending());
                    child.kill().expect("kill");
                    match read.await {
                        Err(TopicReadError::PeerDied { pid: p }) => assert_eq!(p, pid),
                        other => panic!("expected PeerDied, got {other:?}"),
                    }
                }
                if let Some(cell) = &cell {
                    let seen = cell.sequence();
                    assert_eq!(cell.get().expect("value"), 1);
                    let mut wait = pin!(cell.wait_newer_async(seen));
                    let first = std::future::poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx)));
                    assert!(first.await.is_pending());
                    child.kill().expect("kill");
                    assert_eq!(wait.await, Err(LatestError::PeerDied { pid }));
                    assert_eq!(cell.get().expect("the last value stays"), 1);
                }
            })
            .await
            .expect("no hang")
        });
        child.wait().expect("reap");
        if let Some(t) = &topic {
            assert_eq!(t.sleepers(), (0, 0));
        }
        if let Some(c) = &cell {
            assert_eq!(c.sleepers(), 0);
        }
    }
    drop(rt);
    assert_doorbell_idle();
}

#[test]
fn a_block_writer_awaits_a_slow_reader_process_and_goes_on_when_it_reads_or_dies() {
    if child_role().is_some() {
        return topic_child();
    }
    let _s = serial();
    let rt = current_thread();
    for kill in [false, true] {
        let name = unique_name("async-topic-room");
        let _cleanup = ShmCleanup::new(&name);
        let mut writer = Topic::<Block>::create(&name, TopicConfig::new(256)).expect("create");
        let mut kid = Kid::spawn(
            test_path!(
                a_block_writer_awaits_a_slow_reader_process_and_goes_on_when_it_reads_or_dies
            ),
            &[
                ("TOPIC_NAME", &name),
                ("TOPIC_COUNT", "4"),
                ("TOPIC_MODE", "subscribe"),
            ],
        );
        let child = &mut kid.0;
        expect_line(child, "subscribed");
        // 8-byte messages take 32-byte records: 8 fill the 256 bytes.
        let mut filled = 0u32;
        while writer.try_write(&filled.to_le_bytes()).is_ok() {
            filled += 1;
        }
        assert_eq!(filled, 8);
        let mut stdin = child.stdin.take().expect("stdin");
        rt.block_on(async {
            tokio::time::timeout(HANG, async {
                let mut write = pin!(writer.write_async(b"late"));
                let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx)));
                assert!(first.await.is_pending(), "the reader holds the writer back");
                if kill {
                    child.kill().expect("kill");
                } else {
                    writeln!(stdin, "go").expect("go");
                }
                write
                    .await
                    .expect("room, once the reader read or was reaped");
            })
            .await
            .expect("no hang")
        });
        assert_eq!(writer.published(), 9);
        assert_eq!(writer.sleepers(), (0, 0));
        if !kill {
            expect_line(child, "read");
        }
    }
    drop(rt);
    assert_doorbell_idle();
}

#[test]
fn dropping_a_topic_or_latest_future_at_every_await_loses_nothing() {
    let _s = serial();
    for rt in [current_thread(), multi_thread()] {
        let mut writer = Topic::<Block>::anonymous(TopicConfig::new(256)).expect("topic");
        let handle = writer.reader_handle().expect("handle");
        let mut sub = handle.subscribe().expect("subscribe");
        let name = unique_name("async-latest-drop");
        let _cleanup = ShmCleanup::new(&name);
        let mut cell = Latest::<u64>::create(&name, 0).expect("latest");
        rt.block_on(async {
            tokio::time::timeout(HANG, async {
                let mut buf = Vec::new();
                for i in 0u32..200 {
                    // Each future is polled to Pending (registered), then dropped; what
                    // is published after it must still be there for the next one.
                    {
                        let read = pin!(sub.read_into_async(&mut buf));
                        assert!(poll_once(read).is_pending());
                    }
                    writer.write(&i.to_le_bytes()).expect("write");
                    assert_eq!(sub.read_into_async(&mut buf).await.expect("read"), 4);
                    assert_eq!(buf, i.to_le_bytes());
                    let seen = cell.sequence();
                    {
                        let wait = pin!(cell.wait_newer_async(seen));
                        assert!(poll_once(wait).is_pending());
                    }
                    cell.publish(u64::from(i)).expect("publish");
                    let (s, v) = cell.wait_newer_async(seen).await.expect("newer");
                    assert_eq!((s, v), (seen + 1, u64::from(i)));
                }
            })
            .await
            .expect("no hang")
        });
        // A write cancelled on a full topic published nothing.
        let before = writer.published();
        while writer.try_write(&0u32.to_le_bytes()).is_ok() {}
        let full = writer.published();
        assert!(full > before);
        {
            let write = pin!(writer.write_async(b"late"));
            assert!(poll_once(write).is_pending());
        }
        assert_eq!(
            writer.published(),
            full,
            "the cancelled write wrote nothing"
        );
        let mut buf = Vec::new();
        let mut read = 0;
        while sub.try_read_into(&mut buf).is_ok() {
            assert_eq!(buf, 0u32.to_le_bytes());
            read += 1;
        }
        assert_eq!(read, full - before);
        assert_eq!(writer.sleepers(), (0, 0));
        assert_eq!(cell.sleepers(), 0);
        drop(rt);
        assert_doorbell_idle();
    }
}

// ----- locks without readiness: NamedLock and FileLock -----

/// The child side of the lock test: takes (blocking) the named lock `LOCK_NAME` in
/// `LOCK_DIR` and the file lock on `LOCK_FILE` on the line "take" (then says
/// "locked"), releases both on "release" (then says "released"), exits at the end of
/// its stdin.
fn lock_child() {
    let dir = std::path::PathBuf::from(std::env::var("LOCK_DIR").expect("LOCK_DIR"));
    let name = std::env::var("LOCK_NAME").expect("LOCK_NAME");
    let file = FileLock::open(std::env::var("LOCK_FILE").expect("LOCK_FILE")).expect("open");
    let mut held = None;
    for line in std::io::stdin().lock().lines() {
        match line.expect("a line").as_str() {
            "take" => {
                let named = NamedLock::acquire_in(&dir, &name, HANG).expect("named lock");
                let flock = file.lock(LockMode::Exclusive).expect("file lock");
                held = Some((named, flock));
                say("locked");
            }
            "release" => {
                held = None;
                say("released");
            }
            other => panic!("unknown command {other}"),
        }
    }
    drop(held);
}

fn locks_held_by_another_process_are_awaited_with_timed_retries(rt: tokio::runtime::Runtime) {
    let dir = std::env::temp_dir().join(unique_name("async-locks"));
    std::fs::create_dir(&dir).expect("lock dir");
    let name = "job";
    let path = dir.join("file.lock");
    let mut kid = Kid::spawn(
        test_path!(locks_held_by_another_process_are_awaited_with_timed_retries_and_never_held_by_a_dropped_future),
        &[
            ("LOCK_DIR", dir.to_str().expect("utf-8")),
            ("LOCK_NAME", name),
            ("LOCK_FILE", path.to_str().expect("utf-8")),
        ],
    );
    let child = &mut kid.0;
    let mut stdin = child.stdin.take().expect("stdin");
    let file = FileLock::open(&path).expect("open");
    let short = Duration::from_millis(30);
    rt.block_on(async {
        tokio::time::timeout(HANG, async {
            writeln!(stdin, "take").expect("take");
            expect_line(child, "locked");
            // Held by the child: the timeout ends the wait with the typed error.
            let named = NamedLock::acquire_in_async(&dir, name, short).await;
            assert!(
                matches!(named, Err(NamedLockError::Timeout(_))),
                "{named:?}"
            );
            let flock = file.lock_async(LockMode::Exclusive, short).await;
            assert!(matches!(flock, Err(FileLockError::Timeout)), "{flock:?}");
            let range = file.lock_range_async(0, 0, LockMode::Shared, short).await;
            assert!(range.is_ok(), "the child holds a flock, not a range lock");
            drop(range);

            // Pending futures dropped after the release never hold the lock.
            {
                let mut named = pin!(NamedLock::acquire_in_async(&dir, name, HANG));
                let mut flock = pin!(file.lock_async(LockMode::Exclusive, HANG));
                assert!(poll_once(named.as_mut()).is_pending());
                assert!(poll_once(flock.as_mut()).is_pending());
                assert_eq!(doorbell::registered_words(), 1, "one timer word");
                writeln!(stdin, "release").expect("release");
                expect_line(child, "released");
            }
            assert_eq!(doorbell::registered_words(), 0, "no registration left");
            let other = FileLock::open(&path).expect("another open file description");
            drop(
                other
                    .try_lock(LockMode::Exclusive)
                    .expect("free: not held by a dropped future"),
            );
            drop(NamedLock::acquire_in(&dir, name, Duration::ZERO).expect("free"));

            // Pending futures complete once the child releases.
            writeln!(stdin, "take").expect("take");
            expect_line(child, "locked");
            let mut named = pin!(NamedLock::acquire_in_async(&dir, name, HANG));
            let mut flock = pin!(file.lock_async(LockMode::Exclusive, HANG));
            assert!(poll_once(named.as_mut()).is_pending());
            assert!(poll_once(flock.as_mut()).is_pending());
            writeln!(stdin, "release").expect("release");
            let (named, flock) = tokio::join!(named, flock);
            let (named, flock) = (named.expect("named lock"), flock.expect("file lock"));
            // Held now: nobody else gets them.
            assert!(matches!(
                other.try_lock(LockMode::Shared),
                Err(FileLockError::WouldBlock)
            ));
            assert!(matches!(
                NamedLock::acquire_in(&dir, name, Duration::ZERO),
                Err(NamedLockError::Timeout(_))
            ));
            drop((named, flock));
        })
        .await
        .expect("no hang")
    });
    drop(stdin);
    assert!(child.wait().expect("reap").success());
    drop(rt);
    assert_doorbell_idle();
    std::fs::remove_dir_all(&dir).expect("remove the lock dir");
}

#[test]
fn locks_held_by_another_process_are_awaited_with_timed_retries_and_never_held_by_a_dropped_future()
{
    if child_role().is_some() {
        return lock_child();
    }
    let _s = serial();
    locks_held_by_another_process_are_awaited_with_timed_retries(current_thread());
    locks_held_by_another_process_are_awaited_with_timed_retries(multi_thread());
}

// ----- the optional spin in poll, and kernels without futex_waitv -----

#[test]
fn a_bounded_spin_in_poll_catches_what_arrives_during_it_without_the_doorbell() {
    let _s = serial();
    assert_doorbell_idle();
    assert_eq!(doorbell::poll_spin(), Duration::ZERO, "off by default");
    let name = unique_name("async-spin");
    let _cleanup = ShmCleanup::new(&name);
    let mut reader = Ring::create(&name, 4096).expect("ring");
    let mut writer = Ring::open(&name).expect("open");
    let ev = Event::new();
    // A budget far longer than the writer thread needs: the poll returns as soon as
    // the message is there (a hang guard, not a timing assertion).
    doorbell::set_poll_spin(HANG);
    std::thread::scope(|s| {
        s.spawn(|| {
            writer.write(b"spun").expect("write");
            ev.set();
        });
        let mut buf = Vec::new();
        assert!(matches!(
            poll_once(pin!(reader.read_async(&mut buf))),
            Poll::Ready(Ok(4))
        ));
        assert_eq!(buf, b"spun");
        assert!(matches!(
            poll_once(pin!(ev.wait_async())),
            Poll::Ready(Ok(()))
        ));
    });
    doorbell::set_poll_spin(Duration::ZERO);
    // Completed in the spin: nothing was registered, no helper thread started.
    assert_eq!(doorbell::registered_words(), 0);
    assert_eq!(doorbell::helper_threads(), 0);
    assert_eq!(reader.sleepers(), (0, 0));
    assert_eq!(ev.waiters(), 0);
}

#[test]
fn without_futex_waitv_the_helpers_slices_still_wake_every_future() {
    let _s = serial();
    assert_doorbell_idle();
    let _helpers = HelpersOnly::new();
    shmkit_sys::doorbell::force_slices(true);
    let name = unique_name("async-slices");
    let _cleanup = ShmCleanup::new(&name);
    let mut reader = Ring::create(&name, 4096).expect("ring");
    let mut writer = Ring::open(&name).expect("open");
    let ev = Event::new();
    let path = std::env::temp_dir().join(format!("{}.lock", unique_name("async-slices")));
    let (holder, waiter) = (
        FileLock::open(&path).expect("open"),
        FileLock::open(&path).expect("open"),
    );
    let held = holder.lock(LockMode::Exclusive).expect("lock");
    let rt = current_thread();
    std::thread::scope(|s| {
        // The writer thread publishes only once both futures are armed with the
        // runtime's waker: only the helper's slices can wake them.
        s.spawn(|| {
            wait_until(
                HANG,
                || doorbell::registered_words() >= 2,
                || "never armed".into(),
            );
            writer.write(b"late").expect("write");
            ev.set();
        });
        rt.block_on(async {
            tokio::time::timeout(HANG, async {
                let mut buf = Vec::new();
                let (read, wait) = tokio::join!(reader.read_async(&mut buf), ev.wait_async());
                assert_eq!(read.expect("read"), 4);
                wait.expect("set");
                // The timer of the lock's retries runs on the slices too.
                let busy = waiter
                    .lock_async(LockMode::Exclusive, Duration::from_millis(30))
                    .await;
                assert!(matches!(busy, Err(FileLockError::Timeout)), "{busy:?}");
            })
            .await
            .expect("no hang")
        });
    });
    shmkit_sys::doorbell::force_slices(false);
    drop(held);
    std::fs::remove_file(&path).expect("remove the lock file");
    assert_eq!(reader.sleepers(), (0, 0));
    assert_eq!(ev.waiters(), 0);
    drop(rt);
    assert_doorbell_idle();
}
