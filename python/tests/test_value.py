"""shmkit.Value and shmkit.Array: typecodes, the lock, bad input, processes."""

import math
import pickle

import pytest

import shmkit

INTS = {
    "b": (-(2**7), 2**7 - 1),
    "B": (0, 2**8 - 1),
    "h": (-(2**15), 2**15 - 1),
    "H": (0, 2**16 - 1),
    "i": (-(2**31), 2**31 - 1),
    "I": (0, 2**32 - 1),
    "l": (-(2**63), 2**63 - 1),
    "L": (0, 2**64 - 1),
    "q": (-(2**63), 2**63 - 1),
    "Q": (0, 2**64 - 1),
}


@pytest.mark.parametrize("code", sorted(INTS))
def test_integer_typecodes_hold_their_range(names, code):
    lo, hi = INTS[code]
    name = names()
    v = shmkit.Value.create(name, code, hi)
    assert v.value == hi
    v.value = lo
    assert shmkit.Value.open(name, code).value == lo
    with pytest.raises(OverflowError):
        v.value = hi + 1
    with pytest.raises(OverflowError):
        v.value = lo - 1
    assert v.value == lo  # unchanged by the refused writes
    assert v.typecode == code


@pytest.mark.parametrize("code", ["f", "d"])
def test_float_typecodes(names, code):
    v = shmkit.Value.create(names(), code, 1.5)
    v.value += 1
    assert v.value == 2.5
    v.value = 3  # an int is accepted, as by multiprocessing
    assert v.value == 3.0
    if code == "f":
        v.value = 0.1
        assert v.value != 0.1 and math.isclose(v.value, 0.1, rel_tol=1e-7)


def test_default_is_zero_and_constructor_family(names):
    name = names()
    assert shmkit.Value.anonymous("i").value == 0
    a = shmkit.Value.open_or_create(name, "i", 7)
    b = shmkit.Value.open_or_create(name, "i", 99)  # opens: init unused
    assert b.value == 7
    with pytest.raises(shmkit.AlreadyExists):
        shmkit.Value.create(name, "i", 1)
    assert a.name == name


def test_bad_input_raises_clear_exceptions(names):
    name = names()
    with pytest.raises(ValueError, match="typecode"):
        shmkit.Value.create(name, "z", 0)
    with pytest.raises(ValueError, match="typecode"):
        shmkit.Array.anonymous("x", 3)
    with pytest.raises(shmkit.NotFound):
        shmkit.Value.open(name, "i")
    v = shmkit.Value.create(name, "i", 0)
    with pytest.raises(shmkit.TypeMismatch, match="holds i32"):
        shmkit.Value.open(name, "d")
    with pytest.raises(TypeError):  # TypeMismatch is a TypeError too
        shmkit.Value.open(name, "I")
    with pytest.raises(shmkit.TypeMismatch):
        shmkit.Array.open(name, "i")  # a value is not an array
    with pytest.raises(TypeError):
        v.value = "seven"
    with pytest.raises(OverflowError):
        shmkit.Value.create(names(), "B", 256)


def test_l_and_q_are_the_same_rust_type(names):
    """'l' is a C long: i64 on 64-bit Linux, like 'q'."""
    name = names()
    v = shmkit.Value.create(name, "l", -5)
    assert shmkit.Value.open(name, "q").value == -5
    del v


def test_get_lock_makes_read_modify_write_atomic_across_4_processes(names, fork):
    name = names()
    counter = shmkit.Value.create(name, "i", 0)

    def worker():
        mine = shmkit.Value.open(name, "i")
        for _ in range(1000):
            with mine.get_lock():
                mine.value += 1

    kids = [fork(worker) for _ in range(4)]
    for k in kids:
        k.join()
    assert counter.value == 4000


def test_get_lock_is_the_values_own_lock(names):
    v = shmkit.Value.create(names(), "q", 0)
    lock = v.get_lock()
    assert isinstance(lock, shmkit.Lock)
    with lock:
        assert lock.locked()
        v.value = 5  # no deadlock: this thread holds the lock
        assert v.value == 5
    assert not lock.locked()


def test_array_indexing_slicing_and_iteration(names):
    name = names()
    a = shmkit.Array.create(name, "d", [0, 1, 4, 9])
    assert len(a) == 4
    assert a[2] == 4.0 and a[-1] == 9.0
    a[1] = 2.5
    assert a[:] == [0.0, 2.5, 4.0, 9.0]
    assert a[::2] == [0.0, 4.0]
    a[1:3] = [7, 8]
    assert list(a) == [0.0, 7.0, 8.0, 9.0]
    assert a.tolist() == [0.0, 7.0, 8.0, 9.0]
    with pytest.raises(IndexError):
        a[4]
    with pytest.raises(IndexError):
        a[-5] = 1
    with pytest.raises(ValueError, match="same size"):
        a[0:2] = [1, 2, 3]
    b = shmkit.Array.open(name, "d")
    assert b[1] == 7.0
    with pytest.raises(ValueError, match="4 elements"):
        shmkit.Array.open(name, "d", 5)  # wrong size
    assert shmkit.Array.anonymous("i", 3)[:] == [0, 0, 0]
    with pytest.raises(ValueError):
        shmkit.Array.anonymous("i", 0)
    with pytest.raises(OverflowError):
        shmkit.Array.anonymous("b", [1, 300])


def test_array_across_processes(names, fork):
    name = names()
    a = shmkit.Array.create(name, "q", 8)

    def worker(k):
        mine = shmkit.Array.open(name, "q", 8)
        for _ in range(200):
            with mine.get_lock():
                mine[k] += 1
                mine[7] += 1

    kids = [fork(worker, k) for k in range(3)]
    for kid in kids:
        kid.join()
    assert a[:] == [200, 200, 200, 0, 0, 0, 0, 600]


def test_pickle_reopens_by_name(names):
    v = shmkit.Value.create(names(), "h", 3)
    a = shmkit.Array.create(names(), "H", [1, 2])
    v2, a2 = pickle.loads(pickle.dumps((v, a)))
    v2.value = 4
    a2[0] = 9
    assert (v.value, a[:]) == (4, [9, 2])
    with pytest.raises(TypeError):
        pickle.dumps(shmkit.Value.anonymous("i"))


@pytest.mark.parametrize("anonymous", [False, True])
def test_array_memoryview_is_zero_copy_and_outlives_the_array(names, fork, anonymous):
    a = shmkit.Array.anonymous("i", 4) if anonymous else shmkit.Array.create(names(), "i", 4)
    view = a.memoryview()
    assert view.format == "i" and view.shape == (4,) and not view.readonly
    view[0] = 5
    a[1] = 7
    assert a[0] == 5 and view[1] == 7

    def child():
        with a.get_lock():  # the view bypasses the lock: hold it for consistency
            view[2] = 9

    fork(child).join()
    assert a[2] == 9
    del a  # the view has its own mapping
    assert view.tolist() == [5, 7, 9, 0]
    view.release()


def test_array_memoryview_with_numpy(names):
    np = pytest.importorskip("numpy")
    a = shmkit.Array.create(names(), "d", [1, 2, 3])
    arr = np.frombuffer(a.memoryview(), dtype=np.float64)
    arr *= 2  # writes shared memory in place
    assert a[:] == [2.0, 4.0, 6.0]


def _fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def test_another_layout_version_is_refused(names):
    """A segment made by a shmkit with another layout version of the object (an older
    or newer wheel) is refused with the versions named, never misread."""
    import struct

    name = names()
    v = shmkit.Value.create(name, "q", 1)
    with open(f"/dev/shm/{name}", "r+b") as f:
        header = bytearray(f.read(128))
        kind, name_len = struct.unpack_from("<II", header, 48)
        size, align = struct.unpack_from("<QQ", header, 56)
        type_name = bytes(header[80 : 80 + name_len])
        kind = (kind & ~0xFF00) | (9 << 8)  # layout version 9
        fingerprint = _fnv1a64(struct.pack("<IQQ", kind, size, align) + type_name)
        struct.pack_into("<I", header, 48, kind)
        struct.pack_into("<Q", header, 72, fingerprint)
        f.seek(0)
        f.write(header)
    with pytest.raises(shmkit.ShmkitError, match="layout version 9"):
        shmkit.Value.open(name, "q")
    del v


def test_value_whose_lock_holder_was_killed_stays_usable(names, fork, pipe):
    import os

    name = names()
    v = shmkit.Value.create(name, "q", 1)
    held = pipe()

    def holder():
        mine = shmkit.Value.open(name, "q")
        mine.get_lock().acquire()
        mine.value = 2  # mid-update when killed
        held.send()
        os.read(os.pipe()[0], 1)  # until killed

    kid = fork(holder)
    held.recv()
    kid.kill()
    assert v.value == 2  # access goes on: no hang, no error
    lock = v.get_lock()
    assert lock.owner_died  # ... and the death is reported until repaired
    with lock:
        v.value = 3
        lock.make_consistent()
    assert not lock.owner_died and v.value == 3
