//! Runs the benchmark binary on two sizes and checks that every case ran, verified,
//! and that the iceoryx2 cases left nothing behind (no timing is asserted).

use std::collections::BTreeSet;
use std::process::Command;

/// The iceoryx2 files in /dev/shm, less its global management file (one per version,
/// shared by every iceoryx2 process, which it keeps).
fn iceoryx2_leftovers() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir("/dev/shm").expect("/dev/shm") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.starts_with("iox2_") && !name.ends_with(".global_mgmt") {
            names.insert(name);
        }
    }
    for dir in ["/tmp/iceoryx2/nodes", "/tmp/iceoryx2/services"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries {
                names.insert(format!("{dir}/{:?}", entry.expect("entry").file_name()));
            }
        }
    }
    names
}

#[test]
fn every_case_runs_verified_and_iceoryx2_cleans_up() {
    let before = iceoryx2_leftovers();
    let json = std::env::temp_dir().join(format!("shmkit-peers-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_shmkit-bench-peers"))
        .args(["--quick", "--size", "8,4096", "--repeats", "1", "--json"])
        .arg(&json)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parses");
    std::fs::remove_file(&json).expect("removes the json");
    let cases: BTreeSet<(String, u64)> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            assert!(r["messages_per_s"].as_f64().expect("rate") > 0.0, "{r}");
            (
                r["transport"].as_str().expect("name").to_owned(),
                r["size"].as_u64().expect("size"),
            )
        })
        .collect();
    for name in [
        "ring",
        "queue",
        "pipe",
        "unix-socket",
        "floor",
        "iceoryx2",
        "ipc-channel",
        "channel",
        "channel-serde",
        "pipe-serde",
        "ipc-channel-serde",
    ] {
        for size in [8, 4096] {
            assert!(
                cases.contains(&(name.to_owned(), size)),
                "{name} {size}: {stdout}"
            );
        }
    }
    assert!(
        stdout.contains("iceoryx2") && stdout.contains("ipc-channel"),
        "{stdout}"
    );
    let after = iceoryx2_leftovers();
    let left: Vec<_> = after.difference(&before).collect();
    assert!(left.is_empty(), "iceoryx2 left {left:?}");
}
