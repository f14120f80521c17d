"""shmkit.Lock and shmkit.RLock: the threading.Lock API, across processes, and a
holder killed with SIGKILL."""

import os
import pickle
import signal
import threading

import pytest

import shmkit


def test_acquire_release_and_context_manager(names):
    lock = shmkit.Lock.create(names())
    assert not lock.locked()
    assert lock.acquire() is True
    assert lock.locked()
    lock.release()
    assert not lock.locked()
    with lock:
        assert lock.locked()
    assert not lock.locked()


def test_open_shares_the_lock_and_timeouts_return_false(names):
    name = names()
    a = shmkit.Lock.create(name)
    b = shmkit.Lock.open(name)
    assert a.acquire()
    result = []
    # Another thread (the lock belongs to a thread) finds it taken.
    t = threading.Thread(
        target=lambda: result.extend([b.acquire(blocking=False), b.acquire(timeout=0.05)])
    )
    t.start()
    t.join()
    assert result == [False, False]
    a.release()
    assert b.acquire(timeout=1)
    b.release()


def test_thread_ownership_and_bad_arguments(names):
    lock = shmkit.Lock.create(names())
    with pytest.raises(RuntimeError):
        lock.release()  # not held
    lock.acquire()
    with pytest.raises(RuntimeError, match="already holds"):
        lock.acquire()  # would deadlock: an error, not a hang
    errors = []

    def other_thread():
        try:
            lock.release()
        except RuntimeError as e:
            errors.append(e)

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert len(errors) == 1  # only the acquiring thread may release
    lock.release()
    with pytest.raises(ValueError):
        lock.acquire(blocking=False, timeout=1)
    with pytest.raises(ValueError):
        lock.acquire(timeout=-5)


def test_constructor_family_and_errors(names):
    name = names()
    with pytest.raises(shmkit.NotFound):
        shmkit.Lock.open(name)
    with pytest.raises(FileNotFoundError):  # NotFound is one
        shmkit.Lock.open(name)
    first = shmkit.Lock.open_or_create(name)
    second = shmkit.Lock.open_or_create(name)
    with pytest.raises(shmkit.AlreadyExists):
        shmkit.Lock.create(name)
    with first:
        assert second.locked()
    other = names()
    value = shmkit.Value.create(other, "q", 1)  # kept: dropping it removes the name
    with pytest.raises(shmkit.TypeMismatch):
        shmkit.Lock.open(other)
    with pytest.raises(ValueError):
        shmkit.Lock.create("bad/name")
    assert first.name == name
    assert shmkit.Lock.anonymous().name is None
    del value


def test_mutual_exclusion_between_processes(names, fork, pipe):
    name = names()
    lock = shmkit.Lock.create(name)
    counter = shmkit.Value.create(names(), "q", 0)
    ready = pipe()

    def child():
        mine = shmkit.Lock.open(name)
        ready.send()
        for _ in range(500):
            with mine:
                # A read-modify-write in two locked steps of the value's own lock:
                # only the outer named lock makes it atomic.
                v = counter.value
                counter.value = v + 1

    kids = [fork(child) for _ in range(2)]
    ready.recv(2)
    for _ in range(500):
        with lock:
            v = counter.value
            counter.value = v + 1
    for k in kids:
        k.join()
    assert counter.value == 1500


def test_killed_holder_next_acquire_succeeds_with_owner_died(names, fork, pipe):
    name = names()
    lock = shmkit.Lock.create(name)
    held = pipe()

    def holder():
        mine = shmkit.Lock.open(name)
        mine.acquire()
        held.send()
        os.read(os.pipe()[0], 1)  # blocks until killed

    child = fork(holder)
    held.recv()
    assert lock.locked()
    assert not lock.acquire(blocking=False)
    child.kill()
    assert lock.acquire(timeout=5) is True
    assert lock.owner_died is True
    lock.release()  # released without repair: still reported
    with lock:
        assert lock.owner_died
        lock.make_consistent()
    assert lock.owner_died is False
    with pytest.raises(RuntimeError):
        lock.make_consistent()  # only the holder may


def test_killed_holder_raise_owner_died_opt_in(names, fork, pipe):
    name = names()
    lock = shmkit.Lock.create(name, raise_owner_died=True)
    held = pipe()

    def holder():
        shmkit.Lock.open(name).acquire()
        held.send()
        os.read(os.pipe()[0], 1)  # blocks until killed

    child = fork(holder)
    held.recv()
    child.kill()
    with pytest.raises(shmkit.OwnerDied):
        lock.acquire(timeout=5)
    # Raised with the lock held (as pthread's EOWNERDEAD): repair, then go on.
    assert lock.locked()
    lock.make_consistent()
    lock.release()
    with lock:  # consistent again: no error
        pass


def test_with_never_leaks_a_lock_whose_owner_died(names, fork, pipe):
    name = names()
    lock = shmkit.Lock.create(name, raise_owner_died=True)
    held = pipe()

    def holder():
        shmkit.Lock.open(name).acquire()
        held.send()
        os.read(os.pipe()[0], 1)

    child = fork(holder)
    held.recv()
    child.kill()
    with pytest.raises(shmkit.OwnerDied):
        with lock:
            pass
    assert not lock.locked()  # `with` released it before raising


def test_owner_died_is_shared_by_every_process(names, fork, pipe):
    name = names()
    lock = shmkit.Lock.create(name)
    held = pipe()

    def holder():
        shmkit.Lock.open(name).acquire()
        held.send()
        os.read(os.pipe()[0], 1)

    child = fork(holder)
    held.recv()
    child.kill()
    with lock:
        pass

    def observer():
        other = shmkit.Lock.open(name)
        assert other.owner_died
        with other:
            other.make_consistent()

    fork(observer).join()
    assert not lock.owner_died


def test_rlock_is_recursive_per_thread(names):
    name = names()
    r = shmkit.RLock.create(name)
    assert r.acquire()
    assert r.acquire()
    with r:
        pass
    r.release()
    assert r.locked()
    r.release()
    assert not r.locked()
    with pytest.raises(RuntimeError):
        r.release()
    # The same segment as a Lock.
    plain = shmkit.Lock.open(name)
    with r:
        assert plain.locked()


def test_anonymous_lock_is_shared_with_fork_children(fork, pipe):
    lock = shmkit.Lock.anonymous()
    held, go = pipe(), pipe()

    def child():
        with lock:
            held.send()
            go.recv()

    kid = fork(child)
    held.recv()
    assert lock.locked()
    assert not lock.acquire(blocking=False)
    go.send()
    assert lock.acquire(timeout=5)
    lock.release()
    kid.join()


def test_pickle_reopens_by_name(names):
    lock = shmkit.Lock.create(names())
    again = pickle.loads(pickle.dumps(lock))
    with lock:
        assert again.locked()
    with pytest.raises(TypeError):
        pickle.dumps(shmkit.Lock.anonymous())


def test_ctrl_c_interrupts_a_blocked_acquire(fork, pipe):
    """SIGINT reaches a thread blocked in acquire (the GIL is released and the wait
    wakes to run signal handlers), as KeyboardInterrupt."""
    lock = shmkit.Lock.anonymous()
    lock.acquire()
    waiting = pipe()

    def child():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            waiting.send()  # (the signal may come at once: inside the try)
            lock.acquire()  # held by the parent for ever
        except KeyboardInterrupt:
            os._exit(42)

    kid = fork(child)
    waiting.recv()
    # Signal it once it sleeps (in the lock's futex wait: it has nothing else to
    # wait for), so the signal interrupts the wait itself.
    for _ in range(1_000_000):
        with open(f"/proc/{kid.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "S":
                break
        os.sched_yield()
    os.kill(kid.pid, signal.SIGINT)
    status = kid.wait()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 42
    lock.release()


def _spawned_increment(lock, value, n):
    for _ in range(n):
        with lock:
            value.value += 1


def test_spawned_processes_get_named_objects_by_pickle(names):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    lock = shmkit.Lock.create(names())
    value = shmkit.Value.create(names(), "q", 0)
    procs = [ctx.Process(target=_spawned_increment, args=(lock, value, 200)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0]
    assert value.value == 400


def test_fast_methods_keep_the_api(names):
    """acquire/release/__enter__/__exit__ take the uncontended case without PyO3's
    trampoline; everything else reaches the full methods, with the same signatures."""
    import inspect

    lock = shmkit.Lock.create(names())
    assert str(inspect.signature(lock.acquire)) == "(blocking=True, timeout=None)"
    assert "threading.Lock.acquire" in shmkit.Lock.acquire.__doc__
    with pytest.raises(TypeError):
        shmkit.Lock.acquire(object())  # a descriptor of Lock checks self
    with pytest.raises(TypeError):
        lock.release(1)  # release takes no argument
    assert lock.acquire() is True  # fast
    other = []
    t = threading.Thread(target=lambda: other.append(lock.acquire(blocking=False)))
    t.start()
    t.join()
    assert other == [False]  # slow path: arguments, and held by another thread
    with pytest.raises(RuntimeError, match="already holds"):
        lock.acquire()  # slow path: held by this thread
    assert lock.release() is None
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.release()  # slow path: not held
    assert lock.__enter__() is True
    assert lock.__exit__(None, None, None) is False
    assert not lock.locked()
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.__exit__(None, None, None)
