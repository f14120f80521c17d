//! `shmkit bridge`: built in with the `bridge` feature, otherwise a message saying how
//! to get it (the bridge itself is tested in `crates/zenoh/tests`).

use std::process::Command;

fn shmkit(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shmkit"))
        .args(args)
        .output()
        .expect("run shmkit");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[cfg(not(feature = "bridge"))]
fn without_the_feature_bridge_says_how_to_get_it() {
    let (code, _, err) = shmkit(&["bridge", "--export", "channel:jobs", "--key", "a/b"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--features bridge"), "{err}");
    assert!(err.contains("shmkit-bridge"), "{err}");
}

#[test]
#[cfg(feature = "bridge")]
fn with_the_feature_bridge_runs_and_checks_its_arguments() {
    let (code, out, err) = shmkit(&["bridge", "--help"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("--export") && out.contains("--into"), "{out}");
    let (code, _, err) = shmkit(&["bridge", "--export", "channel:x", "--key", "a/**"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad key expression"), "{err}");
}

#[test]
#[cfg(feature = "bridge")]
fn inspect_shows_a_zenoh_importers_state() {
    use shmkit_zenoh::state::{state_name, ImportState, StateValue};
    let name = state_name(&shmkit_testkit::unique_name("zstate"));
    let _clean = shmkit_testkit::ShmCleanup::new(&name);
    let mut s = ImportState::new();
    s.delivered = 41;
    s.pending = 42;
    s.gaps = 3;
    let _v = StateValue::create(&name, s).expect("state");
    let (code, out, err) = shmkit(&["inspect", &name]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("delivered seq   41"), "{out}");
    assert!(out.contains("pending         42 (one put pending"), "{out}");
    assert!(out.contains("gaps            3"), "{out}");
}

#[test]
#[cfg(feature = "bridge")]
fn inspect_shows_a_zenoh_exporters_state() {
    use shmkit_zenoh::state::{export_state_name, ExportState, ExportValue};
    let name = export_state_name(&shmkit_testkit::unique_name("zxstate"));
    let _clean = shmkit_testkit::ShmCleanup::new(&name);
    let mut s = ExportState::new();
    s.source = 0x10;
    s.taken = 77;
    s.prev_source = 0x20;
    s.prev_taken = 5;
    let _v = ExportValue::create(&name, s).expect("state");
    let (code, out, err) = shmkit(&["inspect", &name]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("taken seq       77"), "{out}");
    assert!(
        out.contains("previous source 0x0000000000000020 (took 5)"),
        "{out}"
    );
}
