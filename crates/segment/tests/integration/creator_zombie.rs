//! A creator killed during `init` but not yet reaped by its parent (a zombie) is dead:
//! an opener reports `CreatorDied` instead of waiting out its whole timeout. The segment
//! crate judges the creator with the floor's liveness check (`shmkit_sys::owner`), as
//! every other layer does; `kill(pid, 0)` (the check it used before) says a zombie
//! exists.

use std::time::Duration;

use shmkit_segment::{OpenError, Segment};
use shmkit_sys::Deadline;
use shmkit_testkit::{fork_child, unique_name, Pipe, ShmCleanup};

#[test]
fn a_zombie_creator_is_reported_dead() {
    let name = unique_name("zombie-creator");
    let _cleanup = ShmCleanup::new(&name);
    let in_init = Pipe::new();
    let never = Pipe::new();
    let child = fork_child(|| {
        let _ = Segment::options()
            .posix(&name)
            .size(64)
            .create_with(|_, _| {
                in_init.send(1);
                never.recv(); // blocks until killed
            });
        0
    });
    in_init.recv_n(1);
    child.kill();
    // Not reaped (`child` is dropped, and waited for, at the end): poll until the
    // kernel shows it as a zombie.
    let pid = child.pid();
    let shown = Deadline::after(Duration::from_secs(30));
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        if state.is_some_and(|s| s.starts_with('Z')) {
            break;
        }
        assert!(
            !shown.has_passed(),
            "the killed child never became a zombie"
        );
        std::thread::yield_now();
    }
    match Segment::options()
        .posix(&name)
        .open_timeout(Duration::from_secs(20))
        .open()
    {
        Err(OpenError::CreatorDied { pid: p }) => assert_eq!(p, pid as u32),
        other => panic!("expected CreatorDied from a zombie creator, got {other:?}"),
    }
    drop(child);
}
