//! A panicking `init` removes the half-made segment.
//!
//! In its own test binary: a panic on one harness thread while another test forks can
//! leave the forked child blocked on the panic-hook lock (see testkit's fork notes).

mod common;

use common::{Kind, Target};

const NAMED: [Kind; 3] = [Kind::Posix, Kind::SysV, Kind::File];

#[test]
fn init_panic_removes_the_half_made_segment() {
    for kind in NAMED {
        let (t, _c) = Target::new(kind, "bad-panic");
        let r = std::panic::catch_unwind(|| {
            t.options()
                .size(64)
                .create_with(|_, _| panic!("init failed"))
        });
        assert!(r.is_err());
        assert!(!t.exists(), "{kind:?}: the half-made segment was removed");
    }
}
