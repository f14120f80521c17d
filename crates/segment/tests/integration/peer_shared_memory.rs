//! Interop with the `shared_memory` crate (a peer, not a foundation), both ways, with
//! the opening side in a separate (forked) process.

use shared_memory::ShmemConf;
use shmkit_segment::{Segment, HEADER_LEN};
use shmkit_testkit::{fork_child, Exit, ShmCleanup};

#[test]
fn open_raw_attaches_a_shared_memory_segment() {
    let name = shmkit_testkit::unique_name("peer-sm");
    let _c = ShmCleanup::new(&name);
    let peer = ShmemConf::new()
        .size(4096)
        .os_id(format!("/{name}"))
        .create()
        .expect("shared_memory create");
    // SAFETY: the peer mapping is 4096 bytes and ours alone until the fork.
    unsafe { std::ptr::copy_nonoverlapping(b"from the peer".as_ptr(), peer.as_ptr(), 13) };
    let name_ref = &name;
    let mut child = fork_child(|| {
        let Ok(seg) = Segment::open_raw(name_ref) else {
            return 2;
        };
        if seg.len() != 4096 || seg.header().is_some() {
            return 3;
        }
        // SAFETY: inside the mapping; the parent waits for our exit before reading.
        let got: Vec<u8> = (0..13)
            .map(|i| unsafe { seg.as_ptr().add(i).read_volatile() })
            .collect();
        if got != b"from the peer" {
            return 4;
        }
        // SAFETY: as above.
        unsafe { std::ptr::copy_nonoverlapping(b"shmkit".as_ptr(), seg.as_ptr().add(100), 6) };
        drop(seg);
        0
    });
    assert_eq!(child.wait(), Exit::Code(0));
    // SAFETY: the child has exited.
    let back = unsafe { std::slice::from_raw_parts(peer.as_ptr().add(100), 6) };
    assert_eq!(back, b"shmkit");
    assert!(
        std::path::Path::new("/dev/shm").join(&name).exists(),
        "open_raw never unlinks"
    );
}

#[test]
fn shared_memory_opens_a_segment_we_created() {
    let name = shmkit_testkit::unique_name("peer-ours");
    let _c = ShmCleanup::new(&name);
    let seg = Segment::options()
        .posix(&name)
        .size(1000)
        .create_with(|p, _| {
            // SAFETY: the payload is ours alone until READY.
            unsafe { std::ptr::copy_nonoverlapping(b"from shmkit".as_ptr(), p, 11) }
        })
        .unwrap();
    let os_id = format!("/{name}");
    let os_id_ref = &os_id;
    let mut child = fork_child(|| {
        let Ok(peer) = ShmemConf::new().os_id(os_id_ref).open() else {
            return 2;
        };
        if peer.len() != HEADER_LEN + 1000 || peer.is_owner() {
            return 3;
        }
        // SAFETY: inside the peer's mapping; the parent waits for our exit.
        let magic = unsafe { std::slice::from_raw_parts(peer.as_ptr(), 8) };
        // SAFETY: as above.
        let payload = unsafe { std::slice::from_raw_parts(peer.as_ptr().add(HEADER_LEN), 11) };
        if magic != b"SHMKITSG" || payload != b"from shmkit" {
            return 4;
        }
        0
    });
    assert_eq!(child.wait(), Exit::Code(0));
    assert!(seg.is_creator());
}
