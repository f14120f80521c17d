#!/usr/bin/env python3
"""Python's multiprocessing.Queue carrying pickled dicts of the same content as the
serde structs of the channel comparison (crates/cli/src/bench/serde_msg.rs), between
two processes: items/s one way and the ping-pong round trip (median, p99), written as
the same JSON rows as `shmkit bench --json` (transport "python-mp-queue").

    python3 benches/python_queue.py                      # 64 B, 1 KiB, 64 KiB
    python3 benches/python_queue.py --size 64 --repeats 3 --json py.json

Messages, by size (as in serde_msg.rs):
  64:    {"id": int, "name": str (16), "data": bytes (40)}
  1024:  {"id": int, "name": str (24), "values": [int] * 32, "data": bytes (736)}
  0:     the int itself (the small-int baseline of the Queue<T: Pod> table)
  other: bytes of that size
Every message is built new by the sender and checked field by field by the receiver.
Standard library only; the `fork` start method (the parent's state is not re-imported).
"""

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time

LETTERS = bytes(ord("a") + (i * 31 + 7) % 26 for i in range(1 << 16))


def make(size, seq):
    """Message `seq` of the type for `size` (content as the harness's template)."""
    if size == 0:
        return seq
    if size == 64:
        return {"id": seq, "name": LETTERS[8:24].decode(), "data": LETTERS[24:64]}
    if size == 1024:
        values = [int.from_bytes(LETTERS[32 + 8 * i : 40 + 8 * i], "little") for i in range(32)]
        return {"id": seq, "name": LETTERS[8:32].decode(), "values": values, "data": LETTERS[288:1024]}
    return seq.to_bytes(8, "little") + LETTERS[8:size] if size >= 8 else LETTERS[:size]


def check(msg, size, seq):
    return msg == make(size, seq)


def consumer(q, size, count, done):
    ok = True
    for seq in range(count):
        ok &= check(q.get(), size, seq)
    done.put(ok)


def echo(there, back, size, rounds):
    for seq in range(rounds):
        msg = there.get()
        back.put(msg if check(msg, size, seq) else None)


def throughput(ctx, size, count):
    q, done = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=consumer, args=(q, size, count, done))
    p.start()
    start = time.perf_counter()
    for seq in range(count):
        q.put(make(size, seq))
    ok = done.get()
    secs = time.perf_counter() - start
    p.join()
    if not ok:
        sys.exit(f"python-mp-queue {size}: a message arrived corrupted or out of order")
    return count / secs


def pingpong(ctx, size, rounds):
    there, back = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=echo, args=(there, back, size, rounds))
    p.start()
    rtts = []
    for seq in range(rounds):
        t = time.perf_counter_ns()
        there.put(make(size, seq))
        msg = back.get()
        rtts.append(time.perf_counter_ns() - t)
        if msg is None or not check(msg, size, seq):
            sys.exit(f"python-mp-queue {size}: an echoed message arrived corrupted")
    p.join()
    rtts.sort()
    return rtts


def percentile(sorted_ns, p):
    """Nearest rank, as the Rust harness's `percentile`."""
    rank = -(-p * len(sorted_ns) // 100)
    return sorted_ns[min(max(rank, 1), len(sorted_ns)) - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="64,1024,65536", help="sizes in bytes, comma-separated")
    ap.add_argument("--repeats", type=int, default=3, help="repeats per size (median reported)")
    ap.add_argument("--count", type=int, default=100_000, help="most messages per throughput run")
    ap.add_argument("--rounds", type=int, default=5_000, help="most ping-pong rounds per run")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    ctx = mp.get_context("fork")
    rows = []
    for size in [int(s) for s in args.size.split(",")]:
        count = max(16, min(args.count, (64 << 20) // max(size, 1)))
        rounds = max(16, min(args.rounds, (16 << 20) // max(size, 1)))
        rates, medians, p99s = [], [], []
        for _ in range(max(1, args.repeats)):
            rates.append(throughput(ctx, size, count))
            rtts = pingpong(ctx, size, rounds)
            medians.append(percentile(rtts, 50))
            p99s.append(percentile(rtts, 99))
        rate = statistics.median_high(rates)
        rows.append(
            {
                "transport": "python-mp-queue",
                "size": size,
                "messages_per_s": rate,
                "bytes_per_s": rate * size,
                "rtt_median_ns": statistics.median_high(medians),
                "rtt_p99_ns": statistics.median_high(p99s),
            }
        )
        r = rows[-1]
        print(
            f"python-mp-queue {size:>6} B  {r['messages_per_s'] / 1e3:9.1f} kmsg/s  "
            f"rtt median {r['rtt_median_ns'] / 1e3:8.1f} µs  p99 {r['rtt_p99_ns'] / 1e3:8.1f} µs"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
