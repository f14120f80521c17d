"""shmkit vs multiprocessing, same run, same machine (a benchmark, not a test).

    python3 python/bench.py            # after pip install ./python; --quick for a short run

Prints a Markdown table: uncontended and 2-process contended Lock, Value increments
under the lock, and how long a lock whose holder was SIGKILLed takes to acquire.
Queue rows come with shmkit.Queue (not in this module yet).
"""

import argparse
import multiprocessing
import os
import signal
import sys
import time

import shmkit

FORK = multiprocessing.get_context("fork")


def per_second(n, seconds):
    return f"{n / seconds / 1e6:.2f} M/s" if n / seconds >= 1e6 else f"{n / seconds / 1e3:.0f} k/s"


def uncontended(lock, n):
    start = time.perf_counter()
    for _ in range(n):
        lock.acquire()
        lock.release()
    return time.perf_counter() - start


def uncontended_with(lock, n):
    start = time.perf_counter()
    for _ in range(n):
        with lock:
            pass
    return time.perf_counter() - start


def _contender(lock, n, go):
    go.wait()
    for _ in range(n):
        with lock:
            pass


def contended(make_lock, n):
    """Two processes, n lock/unlock each; the wall time of the whole."""
    lock = make_lock()
    go = FORK.Event()
    procs = [FORK.Process(target=_contender, args=(lock, n, go)) for _ in range(2)]
    for p in procs:
        p.start()
    start = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
    return time.perf_counter() - start


def _increment(value, n, go):
    go.wait()
    for _ in range(n):
        with value.get_lock():
            value.value += 1


def increments(value, n):
    go = FORK.Event()
    procs = [FORK.Process(target=_increment, args=(value, n, go)) for _ in range(2)]
    for p in procs:
        p.start()
    start = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
    took = time.perf_counter() - start
    assert value.value == 2 * n, value.value
    return took


def _hold(lock, ready):
    lock.acquire()
    ready.set()
    signal.pause()


def recovery(lock, limit):
    """Seconds until `lock` is acquired after its holder was SIGKILLed (None: not
    within `limit`)."""
    ready = FORK.Event()
    p = FORK.Process(target=_hold, args=(lock, ready))
    p.start()
    ready.wait()
    start = time.perf_counter()  # from the kill: death detection included
    os.kill(p.pid, signal.SIGKILL)
    got = lock.acquire(timeout=limit)
    took = time.perf_counter() - start
    p.join()
    if got:
        lock.release()
        return took
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 50_000 if args.quick else 500_000
    rows = []

    mp_lock, sk_lock = FORK.Lock(), shmkit.Lock.anonymous()
    rows.append(("Lock acquire+release, uncontended",
                 per_second(n, uncontended(mp_lock, n)), per_second(n, uncontended(sk_lock, n))))
    rows.append(("Lock `with lock: pass`, uncontended",
                 per_second(n, uncontended_with(mp_lock, n)),
                 per_second(n, uncontended_with(sk_lock, n))))
    m = n // 5
    rows.append(("Lock, 2 processes contending (lock+unlock pairs)",
                 per_second(2 * m, contended(FORK.Lock, m)),
                 per_second(2 * m, contended(shmkit.Lock.anonymous, m))))
    rows.append(("Value += 1 under get_lock(), 2 processes",
                 per_second(2 * m, increments(FORK.Value("q", 0), m)),
                 per_second(2 * m, increments(shmkit.Value.anonymous("q", 0), m))))
    mp_rec = recovery(FORK.Lock(), 2.0)
    sk_rec = recovery(shmkit.Lock.anonymous(), 2.0)
    fmt = lambda t: "not within 2 s" if t is None else f"{t * 1e3:.1f} ms"  # noqa: E731
    rows.append(("acquire after the holder was SIGKILLed", fmt(mp_rec), fmt(sk_rec)))

    print(f"| Python {sys.version.split()[0]}, {os.cpu_count()} CPUs | multiprocessing | shmkit |")
    print("|---|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
