"""Worker processes (and, optionally, a Rust process) drain one shared job queue: every
job is done exactly once.

The job queue of examples/channel_jobs.rs and examples/job_queue.rs, in Python with
`shmkit.Queue` (the multiprocessing.Queue API over shmkit's channel). The parent puts
the jobs, then closes its end; each worker takes jobs until the queue is drained and
every putter has left (`shmkit.Closed`), and marks each job it did in a shared array.
Jobs are `bytes` (they travel raw, so a Rust process reads them as they are).

With `--rust-worker PATH` (the binary of python/rust_peer: `cargo build --manifest-path
python/rust_peer/Cargo.toml`), a Rust process takes jobs from the same queue next to the
Python workers (`Channel::<Vec<u8>, _>` under the type name "shmkit.Queue/3") and
reports how many it did.

Run: pip install ./python && python3 examples/python/job_queue.py [--rust-worker PATH]
"""

import argparse
import os
import subprocess

import shmkit

JOBS = 3000
WORKERS = 3


def work(name, done):
    jobs = shmkit.Queue.open(name)
    while True:
        try:
            job = jobs.get(timeout=60)
        except shmkit.Closed:  # drained, and the parent (the only putter) has left
            return
        i = int(job)
        with done.get_lock():
            done[i] += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rust-worker", metavar="PATH", help="add the Rust peer as a worker")
    args = parser.parse_args()
    name = f"jobs-py-{os.getpid()}"
    jobs = shmkit.Queue.create(name, 1 << 16)
    done = shmkit.Array.anonymous("q", JOBS)  # how many times each job was done
    rust = None
    if args.rust_worker:
        rust = subprocess.Popen([args.rust_worker, "queue-get", name],
                                stdout=subprocess.PIPE, text=True)
    pids = []
    for _ in range(WORKERS):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                work(name, done)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for i in range(JOBS):
        jobs.put(b"%d" % i)  # waits while the queue is full
    jobs.close()  # this process puts no more: the workers drain, then stop
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert status == 0, f"worker {pid} failed"
    by_rust = 0
    if rust is not None:
        out, _ = rust.communicate()
        assert rust.returncode == 0, "the Rust worker failed"
        by_rust = int(out.split()[0])
    counts = done[:]
    by_python = sum(counts)
    print(f"{JOBS} jobs: {by_python} by {WORKERS} Python workers, {by_rust} by Rust")
    assert max(counts) <= 1, "a job was done twice"
    assert by_python + by_rust == JOBS and counts.count(0) == by_rust, "a job was lost"
    print("OK: every job done exactly once")


if __name__ == "__main__":
    main()
