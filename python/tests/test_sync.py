"""shmkit.Semaphore, Event, Barrier, NamedLock and FileLock."""

import os
import pickle
import threading

import pytest

import shmkit


def test_semaphore_counts_permits(names):
    name = names()
    s = shmkit.Semaphore.create(name, 2)
    other = shmkit.Semaphore.open(name)
    assert s.acquire() and other.acquire()
    assert s.get_value() == 0
    assert not s.acquire(blocking=False)
    assert not s.acquire(timeout=0.05)
    other.release(2)
    with s:
        assert s.get_value() == 1
    assert s.get_value() == 2
    assert s.max_value is None


def test_bounded_semaphore_refuses_extra_release(names):
    s = shmkit.Semaphore.anonymous(1, max_value=1)
    with pytest.raises(ValueError, match="released too many times"):
        s.release()
    with pytest.raises(ValueError):
        shmkit.Semaphore.anonymous(3, max_value=2)


def test_semaphore_across_processes(names, fork):
    name = names()
    s = shmkit.Semaphore.create(name, 0)

    def child():
        shmkit.Semaphore.open(name).release()

    kid = fork(child)
    assert s.acquire(timeout=10)
    kid.join()


def test_permits_of_a_killed_process_come_back(names, fork, pipe):
    name = names()
    s = shmkit.Semaphore.create(name, 2, max_value=2)
    assert s.owned
    held = pipe()

    def holder():
        mine = shmkit.Semaphore.open(name)
        assert mine.acquire() and mine.acquire(timeout=5)
        held.send()
        os.read(os.pipe()[0], 1)  # until killed

    kid = fork(holder)
    held.recv()
    assert not s.acquire(blocking=False)
    kid.kill()  # returns once the child has exited
    # Both permits come back (a waiter gives them back), each once.
    assert s.acquire(timeout=1.0)
    assert s.acquire(timeout=1.0)
    assert not s.acquire(blocking=False)
    s.release(2)
    assert s.get_value() == 2
    with pytest.raises(ValueError):
        s.release()


def test_ownerless_permits_stay_consumed(names, fork):
    name = names()
    signals = shmkit.Semaphore.create(name, 1, owned=False)
    assert not signals.owned
    # A child consumes the signal and exits: it does not come back.
    fork(lambda: signals.acquire(blocking=False) or os._exit(1)).join()
    assert not signals.acquire(timeout=0.05)
    # Pickling keeps the choice.
    assert not pickle.loads(pickle.dumps(signals)).owned
    assert pickle.loads(pickle.dumps(shmkit.Semaphore.open(name))).owned


def test_event_between_processes(names, fork):
    name = names()
    ev = shmkit.Event.create(name)
    back = shmkit.Event.create(names())
    back_name = back.name
    assert not ev.is_set()
    assert ev.wait(timeout=0.01) is False

    def child():
        assert shmkit.Event.open(name).wait(timeout=10)
        shmkit.Event.open(back_name).set()

    kid = fork(child)
    ev.set()
    assert back.wait(timeout=10)
    kid.join()
    ev.clear()
    assert not ev.is_set()


def test_auto_reset_event_is_consumed():
    ev = shmkit.Event.anonymous(auto_reset=True)
    ev.set()
    assert ev.wait(timeout=1)
    assert not ev.wait(timeout=0.01)


def test_barrier_between_processes(names, fork):
    name = names()
    b = shmkit.Barrier.create(name, 3)

    def party():
        shmkit.Barrier.open(name).wait(timeout=10)

    kids = [fork(party) for _ in range(2)]
    assert b.wait(timeout=10) in (0, 1, 2)
    for k in kids:
        k.join()
    assert b.parties == 3 and not b.broken


def test_barrier_timeout_breaks_it():
    b = shmkit.Barrier.anonymous(2)
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(timeout=0.05)
    assert b.broken
    b.reset()
    assert not b.broken


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    d = tmp_path / "locks"
    monkeypatch.setenv("SHMKIT_LOCK_DIR", str(d))
    return d


def test_named_lock(lock_dir, fork, pipe):
    name = f"pytest-{os.getpid()}"
    held = pipe()

    def holder():
        lock = shmkit.NamedLock(name)
        assert lock.acquire()
        held.send()
        os.read(os.pipe()[0], 1)  # until killed

    mine = shmkit.NamedLock(name, timeout=10)
    kid = fork(holder)
    held.recv()
    assert not mine.acquire(blocking=False)
    assert not mine.acquire(timeout=0.05)
    with pytest.raises(TimeoutError):
        with shmkit.NamedLock(name, timeout=0.05):
            pass
    kid.kill()  # the kernel releases it
    with mine:
        assert mine.locked()
    assert not mine.locked()
    with pytest.raises(RuntimeError):
        mine.release()
    with pytest.raises(ValueError, match="invalid lock name"):
        shmkit.NamedLock("no/slash").acquire()


def test_file_lock(tmp_path):
    path = str(tmp_path / "f.lock")
    a = shmkit.FileLock(path)
    b = shmkit.FileLock(path)  # another open file description: they conflict
    with a:
        assert a.locked()
        assert not b.acquire(blocking=False)
        assert not b.acquire(timeout=0.05)
    assert b.acquire(shared=True)
    assert a.acquire(blocking=False, shared=True)  # readers share
    a.release()
    b.release()
    with pytest.raises(RuntimeError):
        b.release()
