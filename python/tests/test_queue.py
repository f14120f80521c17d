"""shmkit.Queue: the multiprocessing.Queue API over shmkit's channel, between Python
processes and with a Rust process (python/rust_peer)."""

import os
import pickle
import queue
import signal
import subprocess
import threading

import pytest

import shmkit
from test_interop import peer  # noqa: F401  (the built Rust peer, a fixture)

ITEMS = [0, -1, 2**70, 1.5, "text", "", None, True, (1, "a"), [1, [2, 3]], {"k": {"v": 1}},
         b"", b"raw bytes", bytearray(b"ba"), frozenset({1, 2}), b"\x00" * 1000]


def test_round_trip_of_bytes_and_objects_in_order(names):
    q = shmkit.Queue.create(names(), 1 << 16)
    assert q.empty() and q.qsize() == 0 and not q.full()
    for item in ITEMS:
        q.put(item)
    assert q.qsize() == len(ITEMS) and not q.empty()
    got = [q.get() for _ in ITEMS]
    assert got == ITEMS
    # Exact bytes come back as bytes, a bytearray as a bytearray (it was pickled).
    assert [type(x) for x in got] == [type(x) for x in ITEMS]
    assert q.empty() and q.qsize() == 0


class MyInt(int):
    pass


def test_ints_strs_and_floats_travel_as_themselves_and_keep_their_type(names):
    q = shmkit.Queue.create(names(), 1 << 16)
    items = [
        0, 1, -1, 2**63 - 1, -(2**63),  # tag 2, the whole i64 range
        2**63, -(2**63) - 1, 10**40,  # beyond i64: pickled, equal
        True, False, MyInt(5),  # int subclasses: pickled, same type
        "", "abc", "h\u00e9 \U0001f600", "\ud800",  # the last has no UTF-8: pickled
        0.0, -2.5, float("inf"), 1e-300,
    ]
    for x in items:
        q.put(x)
    got = [q.get_nowait() for _ in items]
    assert got == items
    assert [type(g) for g in got] == [type(x) for x in items]
    q.put(float("nan"))
    nan = q.get_nowait()
    assert type(nan) is float and nan != nan


class MyDict(dict):
    pass


def test_plain_data_travels_as_itself_and_what_is_not_plain_is_pickled_alike(names):
    q = shmkit.Queue.create(names(), 1 << 20)
    shared = [1, 2]
    cyclic = [0]
    cyclic.append(cyclic)
    deep = []
    for _ in range(40):  # deeper than the plain-data limit (32): pickled
        deep = [deep]
    items = [
        {"id": 12345, "user": "alice", "size": [640, 480], "ok": True, "score": 0.75},
        {1: None, (2, "t"): b"\x00b", 2.5: False, None: [], "": {}, True: ()},
        [-(2**63), 2**63 - 1, 0, -1, 1, 127, 128, -129], ((),), [[[["x"]]]],
        {"big": 2**64},  # an int beyond i64 inside: the whole item pickled
        {"s": "\ud800"},  # no UTF-8: pickled
        [MyInt(3)], MyDict(a=1), {"o": MyDict()},  # subclasses: pickled, same type
        [shared, shared],  # one list held twice: pickled, so it stays one list
        [list(range(3)) for _ in range(70)],  # more than 64 containers: pickled
        deep, {"k" * 100: "v" * 1000, "\u00e9": "\U0001f600"},
    ]
    for x in items:
        q.put(x)
    q.put(cyclic)
    got = [q.get_nowait() for _ in items]
    assert got == items
    assert type(got[7][0]) is MyInt and type(got[8]) is MyDict and type(got[9]["o"]) is MyDict
    assert list(got[1]) == list(items[1])  # the dict's order
    assert got[10][0] is got[10][1]
    back = q.get_nowait()
    assert back[1] is back
    # The same key, many times over (decoded keys are cached): values stay apart.
    for i in range(1000):
        q.put({"key": i, "k%d" % (i % 300): -i})
    for i in range(1000):
        assert q.get_nowait() == {"key": i, "k%d" % (i % 300): -i}


def test_the_largest_item_fits_and_a_larger_one_is_refused(names):
    q = shmkit.Queue.create(names(), 1024)
    assert q.maxsize_bytes == 1024
    big = b"x" * q.max_message_len
    q.put(big)
    assert q.get() == big
    with pytest.raises(ValueError, match="larger than the channel's maximum"):
        q.put(big + b"y")
    with pytest.raises(ValueError):
        q.put(list(range(1000)))  # its pickle is too large
    assert q.empty()


def test_full_and_empty_with_and_without_timeout(names):
    q = shmkit.Queue.create(names(), 256)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(block=False, timeout=5)  # the timeout is ignored without block
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    n = _fill(q)
    assert n > 3 and q.full() and q.qsize() == n
    with pytest.raises(queue.Full):
        q.put(n, block=False)
    with pytest.raises(queue.Full):
        q.put(n, timeout=0.01)
    assert q.get() == 0
    assert [q.get_nowait() for _ in range(n - 1)] == list(range(1, n))
    q.put(b"again", timeout=1)
    assert q.get(timeout=1) == b"again"


def _fill(q):
    """Puts 0, 1, 2... without waiting until the queue is full; returns how many."""
    n = 0
    while True:
        try:
            q.put_nowait(n)
        except queue.Full:
            return n
        n += 1


def test_bad_input_is_refused_with_clear_exceptions(names):
    name = names()
    q = shmkit.Queue.create(name, 4096)
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)
    with pytest.raises(ValueError, match="non-negative"):
        q.put(1, timeout=float("nan"))
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        q.put(lambda: 1)  # not picklable: nothing is put
    with pytest.raises(TypeError):
        q.put(threading.Lock())
    assert q.empty()
    with pytest.raises(shmkit.AlreadyExists):
        shmkit.Queue.create(name)
    with pytest.raises(shmkit.NotFound):
        shmkit.Queue.open(names())
    with pytest.raises(ValueError, match="power of two"):
        shmkit.Queue.create(names(), 1000)
    with pytest.raises(ValueError, match="power of two"):
        shmkit.Queue.anonymous(16)
    with pytest.raises(ValueError):
        shmkit.Queue.open_or_create(name, 8192)  # exists with another capacity
    value_name = names()
    v = shmkit.Value.create(value_name, "q", 0)
    with pytest.raises(shmkit.TypeMismatch):
        shmkit.Queue.open(value_name)
    with pytest.raises(shmkit.TypeMismatch):
        shmkit.Ring.open(name)  # a queue is not a ring
    with pytest.raises(TypeError):
        pickle.dumps(shmkit.Queue.anonymous())
    del v


def test_close_lets_go_of_this_object_only(names):
    name = names()
    q = shmkit.Queue.create(name, 4096)
    other = shmkit.Queue.open(name)
    q.put(1)
    q.close()
    q.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        q.put(2)
    with pytest.raises(ValueError, match="closed"):
        q.get_nowait()
    # The queue goes on for the others: the item is there, then the only putter has
    # left, so the drained queue says so instead of waiting for ever.
    assert other.get(timeout=5) == 1
    with pytest.raises(shmkit.Closed):
        other.get(timeout=5)
    with pytest.raises(EOFError):  # shmkit.Closed is an EOFError
        other.get()
    # A new putter starts the stream again.
    other.put("more")
    assert other.get() == "more"
    q.join_thread()
    q.cancel_join_thread()


def test_pickle_reopens_by_name(names):
    q = shmkit.Queue.create(names())
    again = pickle.loads(pickle.dumps(q))
    assert again.name == q.name and "Queue" in repr(again)
    q.put({"a": 1})
    assert again.get(timeout=5) == {"a": 1}


def test_threads_of_one_process_share_one_queue_object(names):
    q = shmkit.Queue.create(names(), 1 << 12)  # small: putters wait for room
    n, got, lock = 2000, [], threading.Lock()

    def putter(k):
        for i in range(n):
            q.put((k, i))

    def getter():
        mine = []
        for _ in range(n):
            mine.append(q.get(timeout=30))
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=putter, args=(k,)) for k in range(2)]
    threads += [threading.Thread(target=getter) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted((k, i) for k in range(2) for i in range(n))


def _producer(q, k, n, start):
    q.put((k, 0))  # registered as a putter before the barrier
    start.wait()
    for i in range(1, n):
        q.put((k, i))
    q.close()  # this process puts no more


def _consumer(q, results):
    got = []
    while True:
        try:
            got.append(q.get(timeout=60))
        except shmkit.Closed:
            break
    results.put(got)


def test_exactly_once_two_producer_processes_three_consumer_processes(names):
    """Spawned processes (the queue crosses by name, pickled): every item reaches
    exactly one consumer, each producer's items in order; consumers end when both
    producers have closed and the queue is drained."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    n = 3000
    q = shmkit.Queue.create(names(), 1 << 14)
    start = ctx.Barrier(2)
    results = ctx.Queue()
    consumers = [ctx.Process(target=_consumer, args=(q, results)) for _ in range(3)]
    producers = [ctx.Process(target=_producer, args=(q, k, n, start)) for k in range(2)]
    for p in consumers + producers:
        p.start()
    per_consumer = [results.get(timeout=120) for _ in consumers]
    for p in consumers + producers:
        p.join(timeout=60)
    assert [p.exitcode for p in consumers + producers] == [0] * 5
    everything = [item for got in per_consumer for item in got]
    assert len(everything) == 2 * n
    assert sorted(everything) == [(k, i) for k in range(2) for i in range(n)]
    for got in per_consumer:
        for k in range(2):
            mine = [i for (kk, i) in got if kk == k]
            assert mine == sorted(mine), "a producer's items out of order"


def test_killed_putter_is_noticed_after_its_items(names, fork, pipe):
    q = shmkit.Queue.create(names(), 4096)
    put = pipe()

    def putter():
        for i in range(5):
            q.put(i)
        put.send()
        os.read(os.pipe()[0], 1)  # until killed

    kid = fork(putter)
    put.recv()
    kid.kill()
    assert [q.get(timeout=5) for _ in range(5)] == list(range(5))
    with pytest.raises(shmkit.Closed):
        q.get(timeout=30)  # the dead putter is found: no wait for ever


def test_put_when_every_getter_left_raises_closed(names, fork):
    q = shmkit.Queue.create(names(), 4096)
    q.put("first")

    def getter():
        assert q.get(timeout=10) == "first"
        q.close()

    fork(getter).join()
    with pytest.raises(shmkit.Closed, match="every getter"):
        q.put("nobody will get this")


def test_a_waiting_get_releases_the_gil(names):
    q = shmkit.Queue.create(names())
    got = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=30)))
    t.start()
    q.put("hello")  # runs while the thread waits in get
    t.join()
    assert got == ["hello"]


def test_ctrl_c_interrupts_a_blocked_get(fork, pipe):
    q = shmkit.Queue.anonymous()
    waiting = pipe()

    def child():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            waiting.send()
            q.get()  # nothing will come
        except KeyboardInterrupt:
            os._exit(42)

    kid = fork(child)
    waiting.recv()
    for _ in range(1_000_000):  # signal it once it sleeps
        with open(f"/proc/{kid.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "S":
                break
        os.sched_yield()
    os.kill(kid.pid, signal.SIGINT)
    status = kid.wait()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 42


def test_rust_puts_bytes_python_gets_them(peer, names):  # noqa: F811
    name = names()
    q = shmkit.Queue.create(name, 1 << 12)
    putter = subprocess.Popen([peer, "queue-put", name, "5000"], stdout=subprocess.PIPE, text=True)
    try:
        got = []
        while True:
            try:
                got.append(q.get(timeout=60))
            except shmkit.Closed:
                break
    finally:
        out, _ = putter.communicate(timeout=60)
    assert putter.returncode == 0 and out.strip() == "done"
    assert got == [b"item-%d" % i for i in range(5000)]


def test_python_puts_bytes_and_objects_rust_gets_them(peer, names):  # noqa: F811
    name = names()
    q = shmkit.Queue.create(name, 1 << 12)
    getter = subprocess.Popen([peer, "queue-get", name], stdout=subprocess.PIPE, text=True)
    try:
        for i in range(3000):
            q.put(b"y" * (i % 100))
            if i % 10 == 0:
                q.put({i})  # a set, pickled: Rust sees tag 1
                q.put({"i": [i, None]})  # plain data: tag 5
            if i % 30 == 0:
                q.put(-i * 1_000_003)  # an int: tag 2, i64 little-endian
                q.put("é%d" % i)  # a str: tag 3
                q.put(i / 7)  # a float: tag 4
        q.close()  # every putter gone: Rust drains and stops
    finally:
        out, _ = getter.communicate(timeout=60)
    assert getter.returncode == 0
    assert out.split() == [
        "3000", "300", str(sum(i % 100 for i in range(3000))),
        "100", str(sum(-i * 1_000_003 for i in range(0, 3000, 30))), "200", "300",
    ]


def test_plain_data_from_another_program_and_garbled_records(peer, names):  # noqa: F811
    """A Rust process puts plain-data records by the documented encoding
    (docs/layout.md), good and garbled: the good ones come out as the objects they
    encode, each garbled one as a ValueError naming what is wrong (and consumed)."""
    name = names()
    q = shmkit.Queue.create(name, 1 << 12)
    good = {
        # {"a": [1, -2, None], "b": (True, 0.5)}
        "05" "0902" "050161" "0703" "0302" "0303" "00"
        "050162" "0802" "02" "04" "000000000000e03f": {"a": [1, -2, None], "b": (True, 0.5)},
        "05" "0603" "616263": b"abc",
        "05" "03" "feffffffffffffffff01": 2**63 - 1,
    }
    bad = {
        "05": "truncated",
        "05" "07" "05" "03": "count of 5",
        "05" "0a": "unknown kind byte 10",
        "05" "00" "00": "1 bytes after",
        "05" "05" "02" "ff41": "not UTF-8",
        "05" "09" "01" "07" "00" "00": "cannot be one",  # a list as a dict key
        "05" + "07" "01" * 40 + "00": "deeper than 32",
        "05" "03" + "ff" * 11: "beyond 64 bits",
        "05" "03" + "80" * 9 + "02": "beyond 64 bits",
    }
    records = list(good) + list(bad) + ["0403"]  # the last: a float of the wrong size
    putter = subprocess.Popen([peer, "queue-put-raw", name, *records],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert putter.stdout.readline().strip() == "done"
        for want in good.values():
            got = q.get(timeout=60)
            assert got == want and type(got) is type(want)
        for why in bad.values():
            with pytest.raises(ValueError, match="tag 5 .plain data. that does not decode: .*" + why):
                q.get(timeout=60)
        with pytest.raises(ValueError, match="an 8-byte number"):
            q.get(timeout=60)
        assert q.empty()
        q.put({"still": "works"})
        assert q.get() == {"still": "works"}
    finally:
        putter.communicate("\n", timeout=60)
    assert putter.returncode == 0


def test_random_plain_data_records_come_out_as_objects_or_value_errors(peer, names):  # noqa: F811
    """Random bytes after tag 5, most of them starting with a container kind (so the
    decoder goes deep): each `get` gives an object or a ValueError, never a crash."""
    import random

    rng = random.Random(5)
    records = []
    for _ in range(400):
        body = bytes([rng.choice([7, 8, 9, rng.randrange(256)])])
        body += bytes(rng.choice([0, 1, 2, 3, 5, 7, 9, rng.randrange(256)])
                      for _ in range(rng.randrange(40)))
        records.append("05" + body.hex())
    name = names()
    q = shmkit.Queue.create(name, 1 << 16)
    putter = subprocess.Popen([peer, "queue-put-raw", name, *records],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    outcomes = {"object": 0, "refused": 0}
    try:
        assert putter.stdout.readline().strip() == "done"
        for _ in records:
            try:
                q.get(timeout=60)
                outcomes["object"] += 1
            except ValueError as e:
                assert "tag 5 (plain data) that does not decode" in str(e)
                outcomes["refused"] += 1
        assert q.empty()
    finally:
        putter.communicate("\n", timeout=60)
    assert putter.returncode == 0
    assert outcomes["object"] > 0 and outcomes["refused"] > 0, outcomes


def test_job_queue_example_with_a_rust_worker(peer):  # noqa: F811
    import pathlib
    import sys

    script = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python" / "job_queue.py"
    out = subprocess.run(
        [sys.executable, str(script), "--rust-worker", peer],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout
    assert "OK: every job done exactly once" in out


def test_maxsize_bounds_the_items_as_multiprocessing_does(names):
    name = names()
    q = shmkit.Queue.create(name, 1 << 16, maxsize=3)
    other = shmkit.Queue.open(name)
    assert q.maxsize == other.maxsize == 3
    assert shmkit.Queue.open_or_create(name, 1 << 16, maxsize=3).maxsize == 3
    with pytest.raises(ValueError, match="bound in messages is 3, not 9"):
        shmkit.Queue.open_or_create(name, 1 << 16, maxsize=9)
    for i in range(3):
        q.put_nowait(i)
    assert q.full() and other.full() and q.qsize() == 3
    with pytest.raises(queue.Full):
        other.put_nowait(3)
    with pytest.raises(queue.Full):
        other.put(3, timeout=0.01)
    assert other.get() == 0 and not q.full()
    q.put(3, timeout=1)
    assert [q.get_nowait() for _ in range(3)] == [1, 2, 3]
    for unbounded in (0, -1):
        assert shmkit.Queue.anonymous(4096, maxsize=unbounded).maxsize == 0
    with pytest.raises(ValueError, match="'maxsize' must be at most 4294967295 items"):
        shmkit.Queue.anonymous(maxsize=2**32)


def _putter_waiting_at_maxsize(names, fork, pipe, first, second):
    """A queue of maxsize 1 holding `first`, and a forked child that puts `second`
    (waiting: the queue is at its bound), once the child says it is about to."""
    q = shmkit.Queue.create(names(), 1 << 12, maxsize=1)
    q.put(first)
    ready = pipe()

    def putter():
        ready.send()
        q.put(second, timeout=60)

    kid = fork(putter)
    ready.recv()
    return q, kid


def test_a_put_blocked_at_maxsize_in_another_process_goes_on_after_a_get(names, fork, pipe):
    q, kid = _putter_waiting_at_maxsize(names, fork, pipe, "first", "second")
    assert q.get(timeout=5) == "first"
    kid.join()
    assert q.get(timeout=5) == "second"


def test_a_putter_killed_while_waiting_at_maxsize_leaves_nothing_behind(names, fork, pipe):
    q, kid = _putter_waiting_at_maxsize(names, fork, pipe, "a", "never")
    kid.kill()
    assert q.get(timeout=5) == "a"
    q.put_nowait("b")  # its place is free: the killed putter holds none
    assert q.qsize() == 1 and q.full()
    assert q.get_nowait() == "b"
    with pytest.raises(queue.Empty):
        q.get_nowait()


def test_maxsize_is_exact_between_python_and_rust_putter_processes(peer, names, fork, pipe):  # noqa: F811
    """Two forked Python putters and a Rust one fill a queue bounded to 40 items at
    once, with nobody getting: exactly 40 get in, and each item taken lets exactly one
    more in."""
    name = names()
    q = shmkit.Queue.create(name, 1 << 16, maxsize=40)
    go, counts = pipe(), pipe()

    def putter():
        go.recv()
        counts.send(bytes([_fill(q)]))

    kids = [fork(putter) for _ in range(2)]
    rust = subprocess.Popen([peer, "queue-fill", name], stdout=subprocess.PIPE, text=True)
    go.send(b"!!")
    out, _ = rust.communicate(timeout=60)
    for kid in kids:
        kid.join()
    python_in = sum(counts.recv(2))
    rust_in, rust_max = map(int, out.split())
    assert rust.returncode == 0 and rust_max == 40
    assert python_in + rust_in == 40 == q.qsize()
    assert q.full()
    q.get_nowait()
    q.put_nowait("one more")
    with pytest.raises(queue.Full):
        q.put_nowait("and no more")
