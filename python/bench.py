"""shmkit vs multiprocessing, same run, same machine (a benchmark, not a test).

    python3 python/bench.py            # after pip install ./python; --quick for a short run

Prints a Markdown table: Queue items/s from one process to another (small ints and
~100-byte dicts), uncontended and 2-process contended Lock, uncontended Semaphore,
Value increments under the lock, and how long a lock whose holder was SIGKILLed takes
to acquire. Every row runs --repeat trials of each module, interleaved, and shows the
best of each (other load only slows a trial down), their ratio and the range of the
per-trial ratios. --only TEXT runs the rows whose title contains TEXT.
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


# About 100 bytes pickled (93 with protocol 5).
DICT = {"id": 12345, "user": "alice", "op": "resize", "size": [640, 480], "ok": True,
        "score": 0.75}


def _produce(q, item, n, go):
    go.wait()
    for i in range(n):
        q.put(item if item is not None else i)


def queue_rate(q, item, n):
    """One producer process puts n items (`item`, or the ints 0..n if None), this
    process gets them; the wall time from the start signal to the last get."""
    go = FORK.Event()
    p = FORK.Process(target=_produce, args=(q, item, n, go))
    p.start()
    start = time.perf_counter()
    go.set()
    for _ in range(n):
        q.get()
    took = time.perf_counter() - start
    p.join()
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
    parser.add_argument("--repeat", type=int, default=5,
                        help="trials per row, multiprocessing and shmkit interleaved")
    parser.add_argument("--only", default="",
                        help="run only the rows whose title contains this text (e.g. Lock)")
    args = parser.parse_args()
    n = 50_000 if args.quick else 500_000
    rows = []

    def row(what, count, measure_mp, measure_sk):
        """Interleaved trials; the best of each side (noise only slows a trial down),
        their ratio, and the range of the per-trial ratios."""
        if args.only not in what:
            return
        mp, sk = [], []
        for _ in range(args.repeat):
            mp.append(measure_mp())
            sk.append(measure_sk())
        ratios = sorted(m / s for m, s in zip(mp, sk))
        rows.append((what, per_second(count, min(mp)), per_second(count, min(sk)),
                     f"{min(mp) / min(sk):.1f}x ({ratios[0]:.1f}-{ratios[-1]:.1f})"))

    q = n // 5
    for what, item in (("small ints", None), ("~100-byte dicts", DICT)):
        row(f"Queue, 1 process to another: {what}", q,
            lambda: queue_rate(FORK.Queue(), item, q),
            lambda: queue_rate(shmkit.Queue.anonymous(), item, q))
    # Bounded in items on both sides (the producer runs ahead and waits at the bound).
    row("Queue(maxsize=1000), 1 process to another: small ints", q,
        lambda: queue_rate(FORK.Queue(maxsize=1000), None, q),
        lambda: queue_rate(shmkit.Queue.anonymous(maxsize=1000), None, q))
    mp_lock, sk_lock = FORK.Lock(), shmkit.Lock.anonymous()
    row("Lock acquire+release, uncontended", n,
        lambda: uncontended(mp_lock, n), lambda: uncontended(sk_lock, n))
    row("Lock `with lock: pass`, uncontended", n,
        lambda: uncontended_with(mp_lock, n), lambda: uncontended_with(sk_lock, n))
    mp_sem, sk_sem = FORK.Semaphore(2), shmkit.Semaphore.anonymous(2)
    row("Semaphore acquire+release, uncontended", n,
        lambda: uncontended(mp_sem, n), lambda: uncontended(sk_sem, n))
    m = n // 5
    row("Lock, 2 processes contending (lock+unlock pairs)", 2 * m,
        lambda: contended(FORK.Lock, m), lambda: contended(shmkit.Lock.anonymous, m))
    row("Value += 1 under get_lock(), 2 processes", 2 * m,
        lambda: increments(FORK.Value("q", 0), m),
        lambda: increments(shmkit.Value.anonymous("q", 0), m))
    if args.only not in "acquire after the holder was SIGKILLed":
        return print_rows(args, rows)
    mp_rec = recovery(FORK.Lock(), 2.0)
    sk_rec = sorted(recovery(shmkit.Lock.anonymous(), 2.0) for _ in range(args.repeat))
    fmt = lambda t: "not within 2 s" if t is None else f"{t * 1e3:.1f} ms"  # noqa: E731
    rows.append(("acquire after the holder was SIGKILLed", fmt(mp_rec),
                 f"{fmt(sk_rec[0])}-{fmt(sk_rec[-1])}", ""))
    print_rows(args, rows)


def print_rows(args, rows):
    print(f"| Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, best of {args.repeat} "
          "| multiprocessing | shmkit | shmkit / mp (per-trial range) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
