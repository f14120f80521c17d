"""shmkit.Ring: byte messages between processes, zero-copy reads, close, dead peers."""

import hashlib
import os

import pytest

import shmkit


def test_write_read_and_roles(names):
    name = names()
    w = shmkit.Ring.create(name, 4096)
    r = shmkit.Ring.open(name)
    w.write(b"hello")
    w.write(bytearray(b"world"))
    assert r.read() == b"hello"
    assert r.try_read() == b"world"
    assert r.try_read() is None
    assert w.capacity == 4096 and w.max_message_len == 4080
    with pytest.raises(ValueError, match="larger than"):
        w.write(b"x" * 4081)
    with pytest.raises(TimeoutError):
        r.read(timeout=0.05)


def test_read_into_gives_a_memoryview_released_after_the_callback(names):
    ring = shmkit.Ring.anonymous(4096)
    ring.write(b"abcdef")
    kept = []

    def cb(view):
        assert isinstance(view, memoryview) and view.readonly
        kept.append(view)
        return bytes(view[2:4])

    assert ring.read_into(cb) == b"cd"
    with pytest.raises(ValueError):
        kept[0][0]  # released: never a dangling view of shared memory
    ring.write(b"x")
    with pytest.raises(ZeroDivisionError):
        ring.read_into(lambda v: 1 / 0)  # the callback's error comes through


def test_close_drains_then_closed_and_iteration_stops(names):
    ring = shmkit.Ring.anonymous(4096)
    for i in range(3):
        ring.write(b"m%d" % i)
    ring.close()
    assert ring.closed
    assert list(ring) == [b"m0", b"m1", b"m2"]
    with pytest.raises(shmkit.Closed):
        ring.read()
    with pytest.raises(EOFError):  # Closed is an EOFError
        ring.read(timeout=1)
    with pytest.raises(shmkit.Closed):
        ring.write(b"late")


def test_full_ring_try_write_and_write_timeout(names):
    ring = shmkit.Ring.anonymous(64)
    assert ring.try_write(b"x" * 40)
    assert not ring.try_write(b"y" * 40)
    with pytest.raises(TimeoutError):
        ring.write(b"y" * 40, timeout=0.05)


def test_bytes_between_two_processes(names, fork):
    name = names()
    ring = shmkit.Ring.create(name, 1 << 16)
    n = 20000

    def writer():
        w = shmkit.Ring.open(name)
        for i in range(n):
            w.write(i.to_bytes(4, "little") * (1 + i % 50))
        w.close()

    kid = fork(writer)
    digest = hashlib.sha256()
    count = 0
    for msg in ring:
        i = int.from_bytes(msg[:4], "little")
        assert i == count and msg == i.to_bytes(4, "little") * (1 + i % 50)
        digest.update(msg)
        count += 1
    assert count == n
    kid.join()


def test_killed_writer_is_peer_died_after_its_messages(names, fork, pipe):
    name = names()
    ring = shmkit.Ring.create(name, 4096)
    wrote = pipe()

    def writer():
        w = shmkit.Ring.open(name)
        w.write(b"last words")
        wrote.send()
        os.read(os.pipe()[0], 1)  # blocks until killed

    kid = fork(writer)
    wrote.recv()
    kid.kill()
    assert ring.read(timeout=5) == b"last words"
    with pytest.raises(shmkit.PeerDied, match="died"):
        ring.read(timeout=5)


def test_detach_and_with(names):
    name = names()
    with shmkit.Ring.create(name, 4096) as w:
        w.write(b"1")
    # The writer's handle was let go: that closed the ring (the name went with it).
    with pytest.raises(ValueError, match="detached"):
        w.write(b"2")
    with pytest.raises(shmkit.NotFound):
        shmkit.Ring.open(name)


def test_bad_capacity_and_wrong_object(names):
    with pytest.raises(ValueError, match="power of two"):
        shmkit.Ring.anonymous(1000)
    name = names()
    v = shmkit.Value.create(name, "q", 0)
    with pytest.raises(shmkit.TypeMismatch):
        shmkit.Ring.open(name)
    del v


def test_anonymous_ring_with_a_forked_writer(fork):
    ring = shmkit.Ring.anonymous(1 << 12)

    def writer():
        for i in range(1000):
            ring.write(b"%d" % i)
        ring.close()

    kid = fork(writer)
    assert [int(m) for m in ring] == list(range(1000))
    kid.join()
