//! `shmkit ls`, `inspect` and `rm` against real segments made by real processes.

use std::path::{Path, PathBuf};
use std::process::Command;

use shmkit_segment::{list, remove_sysv, Segment, TypeTag, MAGIC};
use shmkit_testkit::{fork_child, skip_or_fail, unique_name, Exit, ShmCleanup};

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
fn inspect_shows_a_channels_fill_level_and_registries() {
    let name = unique_name("cli-chan");
    let _cleanup = ShmCleanup::new(&name);
    let bounds = shmkit_typed::ChannelBounds::bytes(4096).messages(8);
    let tx = shmkit_typed::Channel::<String>::create(&name, bounds).expect("create");
    let rx = tx.clone();
    tx.send("one".to_owned()).expect("send");
    tx.send("two".to_owned()).expect("send");
    assert_eq!(rx.recv().expect("recv"), "one");
    let (ok, out, _) = shmkit(&["ls"]);
    assert!(ok);
    let line = out.lines().find(|l| l.starts_with(&name)).expect("listed");
    assert!(line.contains("Channel<alloc::string::String>"), "{line}");
    let (ok, out, err) = shmkit(&["inspect", &name]);
    assert!(ok, "inspect failed: {err}");
    assert!(out.contains("object          Channel"), "{out}");
    assert!(
        out.contains("channel fill    1 messages of at most 8, 32 of 4096 bytes"),
        "{out}"
    );
    let me = std::process::id();
    assert!(
        out.contains(&format!("senders         1\n  [0] pid {me} attached")),
        "{out}"
    );
    assert!(
        out.contains(&format!("receivers       1\n  [0] pid {me} attached")),
        "{out}"
    );
    drop(rx);
    let (_, out, _) = shmkit(&["inspect", &name]);
    assert!(out.contains("receivers       1\n  [0] left"), "{out}");
}

#[test]
fn inspect_and_rm_of_a_missing_name_fail_with_a_message() {
    let name = unique_name("cli-missing");
    let (ok, _, err) = shmkit(&["inspect", &name]);
    assert!(!ok);
    assert!(err.contains("does not exist"), "{err}");
    let (ok, _, err) = shmkit(&["rm", &name]);
    assert!(!ok);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn rm_removes_by_name_a_segment_whose_creator_is_gone() {
    let name = unique_name("cli-rm");
    let _cleanup = ShmCleanup::new(&name);
    create_in_dead_child(&name);
    let (ok, out, err) = shmkit(&["rm", &name]);
    assert!(ok, "rm failed: {err}");
    assert!(out.contains("removed"), "{out}");
    assert!(!shm_path(&name).exists());
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
    assert!(out.contains("× pipe") && out.contains("÷ floor"), "{out}");
    let text = std::fs::read_to_string(&json).expect("json written");
    let svg_text = std::fs::read_to_string(&svg).expect("svg written");
    let _ = std::fs::remove_dir_all(&dir);
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let rows = v.as_array().expect("an array");
    assert_eq!(rows.len(), 18, "9 transports x 2 sizes");
    for t in [
        "ring",
        "queue",
        "channel",
        "channel-serde",
        "topic",
        "pipe",
        "pipe-serde",
        "unix-socket",
        "floor",
    ] {
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
            // The ring and the floor also run batched; the others do not batch.
            let batched = row["batched_messages_per_s"].as_f64();
            if t == "ring" || t == "floor" {
                assert!(batched.is_some_and(|x| x > 0.0), "batched rate in {row}");
            } else {
                assert_eq!(batched, None, "{row}");
            }
        }
    }
    assert!(
        svg_text.starts_with("<svg") && svg_text.contains("ring"),
        "an SVG plot"
    );
}

fn shm_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name)
}

/// Creates the persistent POSIX segment `name` in a child that then exits: a segment
/// whose creator is gone.
fn create_in_dead_child(name: &str) {
    let mut child = fork_child(|| match Segment::options().posix(name).size(64).create() {
        Ok(mut seg) => {
            seg.persist();
            0
        }
        Err(_) => 1,
    });
    assert_eq!(child.wait(), Exit::Code(0));
}

/// The `ls` line of `name` (the first cell), if listed.
fn ls_line(out: &str, name: &str) -> Option<String> {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(str::to_owned)
}

/// `n` bytes that look random (xorshift), seeded so each test differs.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A directory the test owns, removed with everything in it on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `rm` refuses what it did not make or cannot tell is stale, says why, and names
/// `--force`; the object is still there afterwards.
fn assert_refused(name: &str, why: &str) {
    let (ok, out, err) = shmkit(&["rm", name]);
    assert!(!ok, "rm {name} succeeded: {out}");
    assert!(err.contains(why), "rm {name}: expected {why:?} in: {err}");
    assert!(
        err.contains("--force"),
        "rm {name}: no hint at --force in: {err}"
    );
}

#[test]
fn rm_refuses_an_object_without_a_shmkit_header_unless_forced() {
    // What Python's SharedMemory (or any shm_open caller) makes: no header, any bytes.
    let name = unique_name("cli-rm-foreign");
    let _cleanup = ShmCleanup::new(&name);
    std::fs::write(shm_path(&name), noise(4096, 1)).expect("foreign object");
    assert_refused(&name, "not a shmkit segment");
    assert!(shm_path(&name).exists(), "refused, yet removed");

    // An empty object too (a creator that died before sizing it, or anybody's).
    let empty = unique_name("cli-rm-empty");
    let _cleanup_empty = ShmCleanup::new(&empty);
    std::fs::write(shm_path(&empty), b"").expect("empty object");
    assert_refused(&empty, "not a shmkit segment");
    assert!(shm_path(&empty).exists());

    let (ok, out, err) = shmkit(&["rm", "--force", &name]);
    assert!(ok, "rm --force failed: {err}");
    assert!(out.contains("removed"), "{out}");
    assert!(!shm_path(&name).exists());
}

#[test]
fn rm_refuses_a_segment_python_created_unless_forced() {
    let available = Command::new("python3")
        .args(["-c", "import multiprocessing.shared_memory"])
        .status()
        .is_ok_and(|s| s.success());
    if !skip_or_fail(
        available,
        "python3 with multiprocessing.shared_memory not found",
    ) {
        return;
    }
    let name = unique_name("cli-rm-py");
    let _cleanup = ShmCleanup::new(&name);
    // Create and leave it (the resource tracker would remove it at exit otherwise).
    let script = r#"
import sys
from multiprocessing import shared_memory, resource_tracker
shm = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=4096)
shm.buf[:5] = b"hello"
resource_tracker.unregister(shm._name, "shared_memory")
shm.close()
"#;
    let status = Command::new("python3")
        .args(["-c", script, &name])
        .status()
        .expect("run python3");
    assert!(status.success(), "python3 failed to create {name}");
    assert!(shm_path(&name).exists());
    assert_refused(&name, "not a shmkit segment");
    assert!(shm_path(&name).exists(), "refused, yet removed");
    let (ok, _, err) = shmkit(&["rm", "--force", &name]);
    assert!(ok, "rm --force failed: {err}");
    assert!(!shm_path(&name).exists());
}

#[test]
fn rm_refuses_a_segment_whose_creator_is_alive_unless_forced() {
    let name = unique_name("cli-rm-alive");
    let _cleanup = ShmCleanup::new(&name);
    let mut seg = Segment::options()
        .posix(&name)
        .size(64)
        .create()
        .expect("create");
    seg.persist(); // we stay alive: the segment is in use
    assert_refused(&name, "alive");
    let (_, _, err) = shmkit(&["rm", &name]);
    assert!(err.contains(&std::process::id().to_string()), "{err}");
    assert!(shm_path(&name).exists(), "refused, yet removed");
    let (ok, _, err) = shmkit(&["rm", "--force", &name]);
    assert!(ok, "rm --force failed: {err}");
    assert!(!shm_path(&name).exists());
}

#[test]
fn ls_and_inspect_show_a_garbage_header_as_corrupt() {
    let name = unique_name("cli-garbage");
    let _cleanup = ShmCleanup::new(&name);
    // The right magic, then noise: as a buggy or hostile peer would leave it.
    let mut bytes = noise(4096, 0x5eed);
    bytes[..8].copy_from_slice(&MAGIC.to_le_bytes());
    std::fs::write(shm_path(&name), &bytes).expect("garbage segment");

    let (ok, out, err) = shmkit(&["ls"]);
    assert!(ok, "ls failed: {err}");
    let line = ls_line(&out, &name).unwrap_or_else(|| panic!("{name} missing from:\n{out}"));
    assert!(line.ends_with("corrupt"), "{line}");

    let (ok, out, err) = shmkit(&["inspect", &name]);
    assert!(ok, "inspect failed: {err}");
    assert!(out.contains("corrupt"), "{out}");
    assert!(
        !out.contains("(alive)"),
        "a garbage pid shown as alive:\n{out}"
    );
    assert!(!out.contains("initialising"), "{out}");
    // The reason is the one `open` gives.
    let open_err = Segment::options()
        .posix(&name)
        .any_type()
        .open()
        .expect_err("garbage does not open");
    let reason = open_err.to_string();
    assert!(
        out.contains(&reason),
        "inspect does not give open's reason {reason:?}:\n{out}"
    );

    assert_refused(&name, "corrupt");
    assert!(shm_path(&name).exists());
}

#[test]
fn file_backed_segments_are_listed_with_dir_and_inspected_by_path() {
    let dir = TempDir::new("cli-files");
    let path = dir.0.join("state.seg");
    let tag = TypeTag::new(9, "demo::Saved", 8, 8);
    let seg = Segment::options()
        .file(&path)
        .size(256)
        .type_tag(tag)
        .create()
        .expect("create file segment");
    // A file that is not a segment is not listed.
    std::fs::write(dir.0.join("notes.txt"), b"hello").expect("write");
    let path_str = path.to_str().expect("utf-8 path");
    let dir_str = dir.0.to_str().expect("utf-8 path");

    let (ok, out, err) = shmkit(&["ls", "--dir", dir_str]);
    assert!(ok, "ls --dir failed: {err}");
    let line = ls_line(&out, path_str).unwrap_or_else(|| panic!("{path_str} missing from:\n{out}"));
    assert!(line.contains("file"), "{line}");
    assert!(line.contains("demo::Saved"), "{line}");
    assert!(line.ends_with("alive"), "{line}");
    assert!(!out.contains("notes.txt"), "{out}");

    let (ok, out, err) = shmkit(&["inspect", path_str]);
    assert!(ok, "inspect {path_str} failed: {err}");
    assert!(out.contains("backend         file"), "{out}");
    assert!(out.contains("payload size    256"), "{out}");
    assert!(out.contains(path_str), "{out}");

    // Its creator (this process) lives: refused; once it is gone, removed.
    assert_refused(path_str, "alive");
    assert!(path.exists());
    drop(seg); // a file segment persists
    let dead = dir.0.join("dead.seg");
    let dead_str = dead.to_str().expect("utf-8 path").to_owned();
    let mut child = fork_child(|| match Segment::options().file(&dead).size(8).create() {
        Ok(_) => 0,
        Err(_) => 1,
    });
    assert_eq!(child.wait(), Exit::Code(0));
    let (ok, _, err) = shmkit(&["rm", &dead_str]);
    assert!(ok, "rm of a dead file segment failed: {err}");
    assert!(!Path::new(&dead_str).exists());
    let (ok, _, err) = shmkit(&["rm", "--force", path_str]);
    assert!(ok, "rm --force failed: {err}");
    assert!(!path.exists());
}

#[test]
fn ls_shows_a_sysv_segment_removed_by_ipcrm_as_removed() {
    let key = 0x5343_0000 ^ (std::process::id() as i32 & 0xffff);
    let seg = Segment::options()
        .sysv(key)
        .size(64)
        .create()
        .expect("create sysv");
    let key_name = format!("{key:#010x}");
    let shmid = list()
        .expect("list")
        .into_iter()
        .find(|s| s.name == key_name)
        .and_then(|s| s.shmid)
        .expect("listed with its shmid");
    // What `ipcrm -M key` does; we stay attached, so the memory lives on.
    remove_sysv(key).expect("IPC_RMID");

    let (ok, out, err) = shmkit(&["ls"]);
    assert!(ok, "ls failed: {err}");
    let me = std::process::id().to_string();
    assert!(
        !out.lines()
            .any(|l| l.starts_with("0x00000000") && l.contains(&me) && l.ends_with("alive")),
        "a removed segment listed as a live key 0:\n{out}"
    );
    let id_name = format!("shmid:{shmid}");
    let line = ls_line(&out, &id_name).unwrap_or_else(|| panic!("{id_name} missing from:\n{out}"));
    assert!(line.contains("removed"), "{line}");
    let (ok, out, err) = shmkit(&["inspect", &id_name]);
    assert!(ok, "inspect {id_name} failed: {err}");
    assert!(out.contains("removed"), "{out}");
    // `rm --dead` leaves it alone (it is already removed), and `rm` says so.
    let (ok, _, err) = shmkit(&["rm", &id_name]);
    assert!(!ok);
    assert!(err.contains("already removed"), "{err}");
    drop(seg);
}

#[test]
fn a_directory_in_dev_shm_is_not_a_regular_file_to_inspect_and_rm() {
    let name = unique_name("cli-dir");
    let path = shm_path(&name);
    std::fs::create_dir(&path).expect("mkdir in /dev/shm");
    struct Rmdir(PathBuf);
    impl Drop for Rmdir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _rmdir = Rmdir(path.clone());

    let (ok, _, err) = shmkit(&["inspect", &name]);
    assert!(!ok);
    assert!(err.contains("not a regular file"), "{err}");
    for args in [
        vec!["rm", name.as_str()],
        vec!["rm", "--force", name.as_str()],
    ] {
        let (ok, _, err) = shmkit(&args);
        assert!(!ok, "{args:?} succeeded");
        assert!(err.contains("not a regular file"), "{args:?}: {err}");
    }
    assert!(path.is_dir());
    let (ok, out, _) = shmkit(&["ls"]);
    assert!(ok && ls_line(&out, &name).is_none(), "{out}");
}
