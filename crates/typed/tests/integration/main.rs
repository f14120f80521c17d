//! The integration tests of `shmkit-typed`, one module per subject, all in one test
//! binary (one link instead of one per file). Run one subject with
//! `cargo test -p shmkit-typed --test integration ring::`.
//!
//! The modules run beside each other on the harness's threads, so none may change
//! process-wide state; the futex fault hook used by `futex_errors` is per thread.

mod array;
mod channel;
mod deadlines;
mod futex_errors;
mod fuzz;
mod homes;
mod latest;
mod pid_namespace;
mod queue;
mod ring;
mod topic;
mod value;
mod versions;

/// Two sleeping waits through `reader` (a reader's handle) of the writer process
/// `pid`, each in a thread of its own: the writer is told (`go.send(n)`, `n` = 1, then
/// 2) to publish only once the wait has registered it with the death watcher, so the
/// wait sleeps first. Returns each wait's result, whether the writer was still
/// registered after each wait (the reader judges its writer once per handle, not on
/// every sleep), and whether it was unregistered once `reader` was dropped.
fn two_sleeping_waits<H: Send, R: Send>(
    pid: u32,
    go: &shmkit_testkit::Pipe,
    mut reader: H,
    mut wait: impl FnMut(&mut H, u8) -> R + Send,
) -> (Vec<R>, Vec<bool>, bool) {
    use shmkit_sys::watcher;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut got, mut registered) = (Vec::new(), Vec::new());
    for n in 1..=2u8 {
        got.push(std::thread::scope(|s| {
            let waiting = s.spawn(|| wait(&mut reader, n));
            while !watcher::is_watched(pid) && std::time::Instant::now() < until {
                std::thread::yield_now();
            }
            go.send(n);
            waiting.join().unwrap()
        }));
        registered.push(watcher::is_watched(pid));
    }
    drop(reader);
    (got, registered, !watcher::is_watched(pid))
}
