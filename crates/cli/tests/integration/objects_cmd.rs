//! `shmkit ls` / `inspect` name every shmkit-typed object, including the named homes
//! of the sync objects, and say when an object's layout version is not this build's.

use std::process::Command;

use shmkit_sync::{Barrier, Condvar, Event, Semaphore};
use shmkit_testkit::{unique_name, ShmCleanup};
use shmkit_typed::{
    Latest, Queue, SharedBarrier, SharedCondvar, SharedEvent, SharedRwValue, SharedSemaphore,
    SharedValue,
};

fn shmkit(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shmkit"))
        .args(args)
        .output()
        .expect("run shmkit");
    assert!(
        out.status.success(),
        "shmkit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ls_and_inspect_name_each_typed_object() {
    let base = unique_name("cli-objects");
    let names: Vec<String> = (0..8).map(|i| format!("{base}-{i}")).collect();
    let _cleanup: Vec<_> = names.iter().map(|n| ShmCleanup::new(n)).collect();
    let _v = SharedValue::<u64>::create(&names[0], 1).expect("value");
    let _rw = SharedRwValue::<u32>::create(&names[1], 1).expect("rw value");
    let _s = SharedSemaphore::create(&names[2], Semaphore::new(1)).expect("semaphore");
    let _e = SharedEvent::create(&names[3], Event::new()).expect("event");
    let _b = SharedBarrier::create(&names[4], Barrier::new(2)).expect("barrier");
    let _c = SharedCondvar::create(&names[5], Condvar::new()).expect("condvar");
    let _q = Queue::<u16>::create(&names[6], 4).expect("queue");
    let _l = Latest::<u64>::create(&names[7], 0).expect("latest");
    let expected = [
        "SharedValue<u64>",
        "SharedRwValue<u32>",
        "SharedSemaphore",
        "SharedEvent",
        "SharedBarrier",
        "SharedCondvar",
        "Queue<u16>",
        "Latest<u64>",
    ];

    let ls = shmkit(&["ls"]);
    for (name, object) in names.iter().zip(expected) {
        let line = ls
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("{name} missing from:\n{ls}"));
        assert_eq!(line.split_whitespace().nth(4), Some(object), "{line}"); // size is "152 B"
    }

    let out = shmkit(&["inspect", &names[2]]);
    assert!(out.contains("object          SharedSemaphore"), "{out}");
    assert!(
        out.contains("object layout   1 (this build reads 1)"),
        "{out}"
    );
}

#[test]
fn ls_and_inspect_show_a_topic_with_its_readers() {
    use shmkit_typed::topic::{Block, Topic, TopicConfig};
    let name = unique_name("cli-topic");
    let _cleanup = ShmCleanup::new(&name);
    let mut writer =
        Topic::<Block>::create(&name, TopicConfig::new(4096).max_readers(4)).expect("topic");
    let readers = Topic::<Block>::open(&name).expect("open");
    let mut a = readers.subscribe().expect("a");
    let _b = readers.subscribe().expect("b");
    for i in 0..3u8 {
        writer.write(&[i; 10]).expect("write");
    }
    a.read_with(|_| ()).expect("read one");

    let ls = shmkit(&["ls"]);
    let line = ls
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))
        .unwrap_or_else(|| panic!("{name} missing from:\n{ls}"));
    assert!(line.contains("Topic<Block>"), "{line}");

    let out = shmkit(&["inspect", &name]);
    let me = std::process::id();
    assert!(out.contains("topic policy    Block"), "{out}");
    assert!(out.contains("published       3 messages"), "{out}");
    assert!(
        out.contains(&format!("writer          pid {me} (alive)")),
        "{out}"
    );
    assert!(out.contains("readers         2 of 4 slots"), "{out}");
    let lags: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("slot"))
        .map(|l| l.split_whitespace().last().unwrap_or(""))
        .collect();
    assert_eq!(lags, ["2", "3"], "{out}");
    assert!(out.contains(&format!("pid {me:<8} alive")), "{out}");
}
