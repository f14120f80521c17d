//! `list()` finds shmkit segments (POSIX and System V) with their header, owner and
//! whether the creator lives; `remove()` / `remove_sysv()` remove them.

use crate::common;

use common::{Kind, Target};
use shmkit_segment::{list, remove, remove_sysv, Backend, RemoveError, TypeTag};
use shmkit_testkit::{fork_child, Exit, ShmCleanup};

#[test]
fn lists_posix_and_sysv_segments_with_their_headers() {
    let tag = TypeTag::new(4, "list::Item", 32, 8);
    let (p, _pc) = Target::new(Kind::Posix, "list");
    let (s, _sc) = Target::new(Kind::SysV, "list");
    let _ps = p.options().size(500).type_tag(tag).create().unwrap();
    let _ss = s
        .options()
        .size(700)
        .type_tag(tag)
        .mode(0o640)
        .create()
        .unwrap();
    // A foreign object is not listed.
    let foreign = shmkit_testkit::unique_name("list-foreign");
    let _fc = ShmCleanup::new(&foreign);
    std::fs::write(format!("/dev/shm/{foreign}"), vec![7u8; 4096]).unwrap();

    let all = list().unwrap();
    let Target::Posix(pname) = &p else {
        unreachable!()
    };
    let Target::SysV(key) = &s else {
        unreachable!()
    };
    let pi = all.iter().find(|i| &i.name == pname).expect("posix listed");
    assert_eq!(pi.backend, Backend::Posix);
    assert_eq!(pi.size, 128 + 500);
    assert_eq!(pi.header.payload_size, 500);
    assert_eq!(pi.header.type_tag, tag);
    assert_eq!(pi.creator_pid(), std::process::id());
    assert!(pi.creator_alive && pi.ready());
    assert_eq!(pi.mode, 0o600);
    // SAFETY: geteuid has no preconditions.
    assert_eq!(pi.uid, unsafe { libc::geteuid() });

    let si = all
        .iter()
        .find(|i| i.name == format!("{key:#010x}"))
        .expect("sysv listed");
    assert_eq!(si.backend, Backend::SysV);
    assert_eq!(si.size, 128 + 700);
    assert_eq!(si.mode, 0o640);
    assert!(si.shmid.is_some());
    assert_eq!(si.header.type_tag.name(), "list::Item");
    assert!(!all.iter().any(|i| i.name == foreign));
}

#[test]
fn dead_creator_is_reported_and_remove_cleans_up() {
    let (p, _pc) = Target::new(Kind::Posix, "list-dead");
    let (s, _sc) = Target::new(Kind::SysV, "list-dead");
    let (p_ref, s_ref) = (&p, &s);
    let mut child = fork_child(|| {
        for t in [p_ref, s_ref] {
            match t.options().size(64).create() {
                Ok(mut seg) => seg.persist(),
                Err(_) => return 1,
            }
        }
        0
    });
    let pid = child.pid() as u32;
    assert_eq!(child.wait(), Exit::Code(0));
    let Target::Posix(pname) = &p else {
        unreachable!()
    };
    let Target::SysV(key) = &s else {
        unreachable!()
    };
    let all = list().unwrap();
    for name in [pname.clone(), format!("{key:#010x}")] {
        let i = all.iter().find(|i| i.name == name).expect("listed");
        assert_eq!(i.creator_pid(), pid);
        assert!(!i.creator_alive, "{name}: the creator exited");
        assert!(i.ready());
    }
    remove(pname).unwrap();
    remove_sysv(*key).unwrap();
    let all = list().unwrap();
    assert!(!all
        .iter()
        .any(|i| &i.name == pname || i.name == format!("{key:#010x}")));
    assert!(matches!(remove(pname), Err(RemoveError::NotFound { .. })));
    assert!(matches!(
        remove_sysv(*key),
        Err(RemoveError::NotFound { .. })
    ));
    assert!(!p.exists() && !s.exists());
}
