//! `shmkit ls`, `inspect` and `rm` against real segments made by real processes.

use std::process::Command;

use shmkit_segment::{Segment, TypeTag};
use shmkit_testkit::{fork_child, unique_name, Exit, ShmCleanup};

fn shmkit(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shmkit"))
        .args(args)
        .output()
        .expect("run shmkit");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ls_and_inspect_show_a_live_typed_segment() {
    let name = unique_name("cli-ls");
    let _cleanup = ShmCleanup::new(&name);
    let _seg = Segment::options()
        .posix(&name)
        .size(4096)
        .type_tag(TypeTag::new(7, "demo::Thing", 16, 8))
        .create()
        .expect("create");

    let (ok, out, err) = shmkit(&["ls"]);
    assert!(ok, "ls failed: {err}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{name} missing from:\n{out}"));
    assert!(line.contains("posix"), "{line}");
    assert!(line.contains("demo::Thing"), "{line}");
    assert!(line.contains(&std::process::id().to_string()), "{line}");
    assert!(line.ends_with("alive"), "{line}");

    let (ok, out, err) = shmkit(&["inspect", &name]);
    assert!(ok, "inspect failed: {err}");
    assert!(
        out.contains(&format!(
            "layout version  {}",
            shmkit_segment::LAYOUT_VERSION
        )),
        "{out}"
    );
    assert!(out.contains("payload size    4096"), "{out}");
    assert!(out.contains("type kind       7"), "{out}");
    assert!(out.contains("mode            0600"), "{out}");
}

#[test]
fn inspect_and_rm_of_a_missing_name_fail_with_a_message() {
    let name = unique_name("cli-missing");
    let (ok, _, err) = shmkit(&["inspect", &name]);
    assert!(!ok);
    assert!(err.contains("no shmkit segment named"), "{err}");
    let (ok, _, err) = shmkit(&["rm", &name]);
    assert!(!ok);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn rm_removes_by_name() {
    let name = unique_name("cli-rm");
    let _cleanup = ShmCleanup::new(&name);
    let mut seg = Segment::options()
        .posix(&name)
        .size(64)
        .create()
        .expect("create");
    seg.persist();
    let (ok, out, err) = shmkit(&["rm", &name]);
    assert!(ok, "rm failed: {err}");
    assert!(out.contains("removed"), "{out}");
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
}

#[test]
fn rm_dead_removes_segments_whose_creator_is_gone() {
    let name = unique_name("cli-dead");
    let _cleanup = ShmCleanup::new(&name);
    let child_name = name.clone();
    let mut child =
        fork_child(
            move || match Segment::options().posix(&child_name).size(64).create() {
                Ok(mut seg) => {
                    seg.persist();
                    0
                }
                Err(_) => 1,
            },
        );
    assert_eq!(child.wait(), Exit::Code(0));

    let (ok, out, _) = shmkit(&["ls"]);
    assert!(ok);
    let line = out.lines().find(|l| l.starts_with(&name)).expect("listed");
    assert!(line.ends_with("dead"), "{line}");

    let (ok, out, err) = shmkit(&["rm", "--dead"]);
    assert!(ok, "rm --dead failed: {err}");
    assert!(out.contains(&name), "{out}");
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
}

#[test]
fn bench_quick_json_has_every_transport_and_verifies() {
    let dir = std::env::temp_dir().join(unique_name("bench-json"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("bench.json");
    let svg = dir.join("bench.svg");
    let (ok, out, err) = shmkit(&[
        "bench",
        "--quick",
        "--size",
        "64,65536",
        "--repeats",
        "1",
        "--json",
        json.to_str().expect("utf-8"),
        "--plot",
        svg.to_str().expect("utf-8"),
    ]);
    assert!(ok, "bench failed: {err}");
    assert!(out.contains("× pipe"), "{out}");
    let text = std::fs::read_to_string(&json).expect("json written");
    let svg_text = std::fs::read_to_string(&svg).expect("svg written");
    let _ = std::fs::remove_dir_all(&dir);
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let rows = v.as_array().expect("an array");
    assert_eq!(rows.len(), 8, "4 transports x 2 sizes");
    for t in ["ring", "queue", "pipe", "unix-socket"] {
        for size in [64, 65536] {
            let row = rows
                .iter()
                .find(|r| r["transport"] == t && r["size"] == size)
                .unwrap_or_else(|| panic!("{t} {size} missing from {text}"));
            for field in [
                "messages_per_s",
                "bytes_per_s",
                "rtt_median_ns",
                "rtt_p99_ns",
            ] {
                assert!(
                    row[field].as_f64().is_some_and(|x| x > 0.0),
                    "{field} in {row}"
                );
            }
        }
    }
    assert!(
        svg_text.starts_with("<svg") && svg_text.contains("ring"),
        "an SVG plot"
    );
}
