"""The Python side of examples/python_interop.rs.

Attaches to a shmkit SharedArray<f64> by name with multiprocessing.shared_memory, reads
it through the layout in docs/layout.md, reads a SharedValue<i64> NAME-count with ctypes,
and answers with a plain segment holding the sum plus that value (a little-endian f64) that the Rust side opens with Segment::open_raw.

Usage: python3 examples/python_interop.py NAME
"""

import ctypes
import struct
import sys
from multiprocessing import resource_tracker, shared_memory

HEADER_LEN = 128          # shmkit segment header
MAGIC = b"SHMKITSG"       # first 8 bytes of every shmkit segment
READY_OFFSET = 12         # u32 init state: 1 = READY (see docs/layout.md)
PAYLOAD_OFFSET_FIELD = 32 # u64 offset of the payload (128)
ARRAY_LEN_OFFSET = 0      # payload offset of the u64 element count
ARRAY_DATA_OFFSET = 64    # payload offset of the Mutex<[T]>
LOCK_WORD_LEN = 16        # the robust mutex before the elements (f64: no padding)


class RawMutex(ctypes.LittleEndianStructure):
    _fields_ = [("word", ctypes.c_uint32), ("consistency", ctypes.c_uint32),
                ("owner", ctypes.c_uint64)]


class SharedValueI64(ctypes.LittleEndianStructure):  # Mutex<i64>
    _fields_ = [("lock", RawMutex), ("value", ctypes.c_int64)]


def read_value(name):
    """Reads a SharedValue<i64> with ctypes, exactly as docs/layout.md shows."""
    shm = attach(name)
    payload_offset = int.from_bytes(shm.buf[32:40], "little")
    v = SharedValueI64.from_buffer(shm.buf, payload_offset)
    value, locked = v.value, v.lock.word != 0
    del v
    shm.close()
    print(f"python: '{name}' holds {value} ({'locked' if locked else 'unlocked'})")
    return value


def attach(name):
    shm = shared_memory.SharedMemory(name=name)
    # Python < 3.13 registers attached segments with its resource tracker, which would
    # delete the Rust side's segment when this process exits (gh-82300).
    if sys.version_info < (3, 13):
        resource_tracker.unregister(shm._name, "shared_memory")
    return shm


def main():
    name = sys.argv[1]
    shm = attach(name)
    buf = shm.buf
    if bytes(buf[0:8]) != MAGIC:
        sys.exit(f"{name} is not a shmkit segment")
    (state,) = struct.unpack_from("<I", buf, READY_OFFSET)
    if state != 1:
        sys.exit(f"{name} is not ready (state {state})")
    (payload,) = struct.unpack_from("<Q", buf, PAYLOAD_OFFSET_FIELD)
    (n,) = struct.unpack_from("<Q", buf, payload + ARRAY_LEN_OFFSET)
    first = payload + ARRAY_DATA_OFFSET + LOCK_WORD_LEN
    # The Rust side finished writing before it started us, so reading without taking
    # the lock word is safe here; a concurrent writer would need the lock.
    values = struct.unpack_from(f"<{n}d", buf, first)
    total = sum(values)
    print(f"python: attached '{name}': {n} values {list(values)[:4]}... sum {total}")
    del buf
    shm.close()

    value = read_value(f"{name}-count")

    reply = shared_memory.SharedMemory(name=f"{name}-reply", create=True, size=8)
    struct.pack_into("<d", reply.buf, 0, total + value)
    # The Rust side removes the reply segment; stop Python's tracker from doing it too.
    resource_tracker.unregister(reply._name, "shared_memory")
    reply.close()


if __name__ == "__main__":
    main()
