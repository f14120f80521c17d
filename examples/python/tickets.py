"""Python processes (and, optionally, a Rust process) buy tickets from one shared count.

The Python version of examples/tickets.rs with the `shmkit` module. Every sale is a
check-and-decrement under the count's own lock (`with count.get_lock():`), so exactly
the available tickets are sold, however many processes buy. With `--no-lock` the
check and the decrement are two separately locked steps, as `multiprocessing.Value`'s
`v.value -= 1` outside `get_lock()`: two buyers see the same count and tickets are
oversold.

With `--rust-buyer PATH` (the binary of python/rust_peer: `cargo build --manifest-path
python/rust_peer/Cargo.toml`), a Rust process sells from the same count next to the
Python ones: it opens the segment as `SharedValue::<i64>` and sells under the same lock.

Run: pip install ./python && python3 examples/python/tickets.py [--no-lock] [--rust-buyer PATH]
"""

import argparse
import os
import subprocess
import sys

import shmkit

TICKETS = 2000
BUYERS = 4


def buy(name, sold, index, locked, start):
    count = shmkit.Value.open(name, "q")
    start.wait(timeout=30)  # every buyer starts at once
    mine = 0
    while True:
        if locked:
            with count.get_lock():
                left = count.value
                if left <= 0:
                    break
                count.value = left - 1
        else:
            left = count.value  # read under the lock ...
            if left <= 0:
                break
            os.sched_yield()  # ... another buyer runs here ...
            count.value = left - 1  # ... and this write loses its sale
        mine += 1
    sold[index] = mine


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-lock", action="store_true", help="show the race")
    parser.add_argument("--rust-buyer", metavar="PATH", help="add the Rust peer as a buyer")
    args = parser.parse_args()
    name = f"tickets-py-{os.getpid()}"
    count = shmkit.Value.create(name, "q", TICKETS)
    sold = shmkit.Array.anonymous("q", BUYERS)  # each buyer's sales
    start = shmkit.Barrier.create(f"{name}-start", BUYERS + (1 if args.rust_buyer else 0))
    rust = None
    if args.rust_buyer:
        rust = subprocess.Popen(
            [args.rust_buyer, "tickets-buy", name, start.name], stdout=subprocess.PIPE, text=True
        )
    pids = []
    for i in range(BUYERS):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                buy(name, sold, i, not args.no_lock, start)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert status == 0, f"buyer {pid} failed"
    rust_sold = 0
    if rust is not None:
        out, _ = rust.communicate()
        assert rust.returncode == 0, "the Rust buyer failed"
        rust_sold = int(out)
    total = sum(sold) + rust_sold
    who = f"{BUYERS} Python buyers" + (" and a Rust buyer" if rust else "")
    print(f"{who} sold {total} of {TICKETS} tickets: {list(sold)}"
          + (f" + Rust {rust_sold}" if rust else "") + f"; {count.value} left")
    if args.no_lock:
        print("without the lock the count was overwritten: oversold" if total > TICKETS
              else "no race this time (rerun: it is timing-dependent)")
        return 0
    assert total == TICKETS and count.value == 0, "oversold or undersold with the lock"
    print("OK: every ticket sold exactly once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
