//! Every object in shared memory carries a layout version, and an object of another
//! version (made by an older or newer shmkit; here forged in the bytes) is refused with
//! `OpenError::Version`, by `open` and by `open_or_create`.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use shmkit_segment::TypeTag;
use shmkit_sync::{Barrier, Condvar, Event, Semaphore};
use shmkit_testkit::{unique_name, ShmCleanup};
use shmkit_typed::types::layout_version;
use shmkit_typed::{
    OpenError, OpenOrCreateError, Queue, RawValue, Ring, SharedArray, SharedBarrier, SharedCondvar,
    SharedEvent, SharedObject, SharedRwValue, SharedSemaphore, SharedValue,
};

fn shm_file(name: &str) -> std::fs::File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .expect("open the segment's file")
}

/// The layout version in the header's type tag of segment `name`.
fn tag_version(name: &str) -> u32 {
    let mut kind = [0u8; 4];
    shm_file(name).read_exact_at(&mut kind, 48).expect("read");
    layout_version(u32::from_le_bytes(kind)).expect("a typed kind")
}

/// Rewrites the layout version in the header's type tag of segment `name`, with the
/// fingerprint another build would have written for that tag.
fn forge_tag_version(name: &str, version: u32) {
    let f = shm_file(name);
    let mut h = [0u8; 128];
    f.read_exact_at(&mut h, 0).expect("read the header");
    let word = |at: usize| u64::from_le_bytes(h[at..at + 8].try_into().unwrap());
    let kind = u32::from_le_bytes(h[48..52].try_into().unwrap());
    let name_len = u32::from_le_bytes(h[52..56].try_into().unwrap()) as usize;
    let type_name = std::str::from_utf8(&h[80..80 + name_len]).expect("utf-8");
    let forged = (kind & !0xff00) | (version << 8);
    let fp = TypeTag::new(forged, type_name, word(56), word(64)).fingerprint();
    f.write_all_at(&forged.to_le_bytes(), 48).expect("write");
    f.write_all_at(&fp.to_le_bytes(), 72).expect("write");
}

/// Creates `O` as `name`, then checks that versions `current - 1` (at least 0) and
/// `current + 1` are refused as `Version` errors naming `object`.
fn other_versions_are_refused<O: SharedObject>(object: &str, init: impl Fn() -> O::Init) {
    let name = unique_name("version");
    let _cleanup = ShmCleanup::new(&name);
    let _made = O::create(&name, init()).expect("create");
    let current = tag_version(&name);
    assert!(current >= 1, "{object}: every object has a layout version");
    for other in [current - 1, current + 1] {
        forge_tag_version(&name, other);
        match O::open(&name) {
            Err(OpenError::Version {
                object: o,
                found,
                expected,
            }) => assert_eq!((o, found, expected), (object, other, current)),
            Err(e) => panic!("{object} v{other}: expected a Version error, got {e:?}"),
            Ok(_) => panic!("{object} v{other}: opened an object of another layout"),
        }
        match O::open_or_create(&name, init()) {
            Err(OpenOrCreateError::Open(OpenError::Version { found, .. })) => {
                assert_eq!(found, other)
            }
            Err(e) => panic!("{object} v{other}: expected a Version error, got {e:?}"),
            Ok(_) => panic!("{object} v{other}: opened an object of another layout"),
        }
    }
    let msg = O::open(&name)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("layout version"), "{msg}");
    forge_tag_version(&name, current);
    assert!(O::open(&name).is_ok(), "{object}: its own version opens");
}

#[test]
fn shared_value_of_another_layout_version_is_refused() {
    other_versions_are_refused::<SharedValue<u64>>("SharedValue", || 5);
}

#[test]
fn shared_array_of_another_layout_version_is_refused() {
    other_versions_are_refused::<SharedArray<u32>>("SharedArray", || 3);
}

#[test]
fn raw_value_of_another_layout_version_is_refused() {
    other_versions_are_refused::<RawValue<u32>>("RawValue", || 1);
}

#[test]
fn shared_rw_value_of_another_layout_version_is_refused() {
    other_versions_are_refused::<SharedRwValue<[u8; 3]>>("SharedRwValue", || [1, 2, 3]);
}

#[test]
fn shared_semaphore_of_another_layout_version_is_refused() {
    other_versions_are_refused::<SharedSemaphore>("SharedSemaphore", || Semaphore::new(1));
}

#[test]
fn shared_event_of_another_layout_version_is_refused() {
    other_versions_are_refused::<SharedEvent>("SharedEvent", Event::new);
}

#[test]
fn shared_barrier_of_another_layout_version_is_refused() {
    other_versions_are_refused::<SharedBarrier>("SharedBarrier", || Barrier::new(2));
}

#[test]
fn shared_condvar_of_another_layout_version_is_refused() {
    other_versions_are_refused::<SharedCondvar>("SharedCondvar", Condvar::new);
}

#[test]
fn ring_of_another_layout_version_is_refused() {
    other_versions_are_refused::<Ring>("Ring", || 4096);
}

#[test]
fn queue_of_another_layout_version_is_refused() {
    other_versions_are_refused::<Queue<u64>>("Queue", || 8);
}

/// Ring and Queue also record their version in their own payload header (they can be
/// built over raw memory with `init`/`attach`); a payload of another version is the
/// same `Version` error.
#[test]
fn ring_and_queue_payload_of_another_version_is_refused() {
    fn forge_payload_version(name: &str) -> u32 {
        let f = shm_file(name);
        let mut v = [0u8; 4];
        f.read_exact_at(&mut v, 128 + 4).expect("read");
        let current = u32::from_le_bytes(v);
        f.write_all_at(&(current + 1).to_le_bytes(), 128 + 4)
            .expect("write");
        current
    }
    let name = unique_name("version-ring");
    let _cleanup = ShmCleanup::new(&name);
    let _ring = Ring::create(&name, 4096).expect("create");
    let current = forge_payload_version(&name);
    match Ring::open(&name) {
        Err(OpenError::Version {
            object: "Ring",
            found,
            expected,
        }) => assert_eq!((found, expected), (current + 1, current)),
        other => panic!("expected a Version error, got {:?}", other.err()),
    }
    let name = unique_name("version-queue");
    let _cleanup = ShmCleanup::new(&name);
    let _queue = Queue::<u32>::create(&name, 8).expect("create");
    let current = forge_payload_version(&name);
    match Queue::<u32>::open(&name) {
        Err(OpenError::Version {
            object: "Queue",
            found,
            expected,
        }) => assert_eq!((found, expected), (current + 1, current)),
        other => panic!("expected a Version error, got {:?}", other.err()),
    }
}
