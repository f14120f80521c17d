//! N consumers drain a job list; every job is done exactly once, because taking a job
//! happens under a named lock, as MySQL's `GET_LOCK('jobs', 10)` guards a jobs table.
//!
//! The jobs live in a plain file (one line per job: `pending`, `taken <pid>` or
//! `done <pid>`), standing for any resource that is not shared memory. Consumers are
//! unrelated processes that agree only on the lock's name: `NamedLock::acquire` takes
//! it with a timeout, and the kernel releases it if a consumer dies holding it.
//! (For jobs that live in shared memory, use `shmkit::typed::Queue` instead.)
//!
//! Run: `cargo run --release --example job_queue`

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use shmkit::sync::NamedLock;

const JOBS: usize = 60;
const CONSUMERS: usize = 4;

fn read_jobs(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read the job file")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_jobs(path: &Path, jobs: &[String]) {
    std::fs::write(path, jobs.join("\n") + "\n").expect("write the job file");
}

/// Under the lock: find a pending job, mark it taken by us. `None` when all are taken.
fn take_job(lock_name: &str, path: &Path) -> Option<usize> {
    let _lock = NamedLock::acquire(lock_name, Duration::from_secs(10)).expect("GET_LOCK");
    let mut jobs = read_jobs(path);
    let next = jobs.iter().position(|j| j == "pending")?;
    jobs[next] = format!("taken {}", std::process::id());
    write_jobs(path, &jobs);
    Some(next)
}

fn finish_job(lock_name: &str, path: &Path, job: usize) {
    let _lock = NamedLock::acquire(lock_name, Duration::from_secs(10)).expect("GET_LOCK");
    let mut jobs = read_jobs(path);
    jobs[job] = format!("done {}", std::process::id());
    write_jobs(path, &jobs);
}

fn consumer(lock_name: &str, path: &Path) -> usize {
    let mut done = 0;
    while let Some(job) = take_job(lock_name, path) {
        // The work itself (about 1 ms) happens outside the lock.
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(1) {
            std::hint::spin_loop();
        }
        finish_job(lock_name, path, job);
        done += 1;
    }
    done
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        let done = consumer(&args[1], Path::new(&args[2]));
        println!("{done}");
        return;
    }
    let lock_name = common::run_name("jobs");
    let path: PathBuf = std::env::temp_dir().join(format!("{lock_name}.jobs"));
    write_jobs(&path, &vec!["pending".to_owned(); JOBS]);

    let children: Vec<_> = (0..CONSUMERS)
        .map(|_| common::spawn_self(&["--child", &lock_name, path.to_str().expect("utf-8 path")]))
        .collect();
    let mut total = 0;
    for (i, c) in children.into_iter().enumerate() {
        let done: usize = common::output_of(c).trim().parse().expect("a count");
        println!("consumer {i}: did {done} jobs");
        total += done;
    }
    let jobs = read_jobs(&path);
    let _ = std::fs::remove_file(&path);
    let all_done = jobs.iter().all(|j| j.starts_with("done "));
    println!("{total} jobs done by {CONSUMERS} consumers; {JOBS} jobs in the list");
    assert!(all_done, "every job must be done");
    assert_eq!(total, JOBS, "every job exactly once");
    println!("OK: every job done exactly once");
}
