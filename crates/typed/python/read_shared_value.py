"""Reads a shmkit SharedValue<i64> from Python with ctypes (see crates/typed/LAYOUT.md).

Usage: python3 read_shared_value.py NAME   -> prints the value
"""
import ctypes
import sys
from multiprocessing import resource_tracker, shared_memory


class RawMutex(ctypes.LittleEndianStructure):
    _fields_ = [
        ("word", ctypes.c_uint32),         # 0 = unlocked, else holder TID | 1<<31 if contended
        ("consistency", ctypes.c_uint32),  # 0 consistent, 1 owner died, 2 poisoned
        ("owner", ctypes.c_uint64),        # holder identity (tid | start_time_low32 << 32)
    ]


class SharedValueI64(ctypes.LittleEndianStructure):
    _fields_ = [("lock", RawMutex), ("value", ctypes.c_int64)]  # value at offset 16


assert ctypes.sizeof(RawMutex) == 16 and SharedValueI64.value.offset == 16

name = sys.argv[1]
shm = shared_memory.SharedMemory(name=name)   # on 3.13+: track=False instead of:
resource_tracker.unregister(shm._name, "shared_memory")  # don't delete it when we exit

magic = bytes(shm.buf[0:8])
state = ctypes.c_uint32.from_buffer(shm.buf, 12).value
payload_offset = ctypes.c_uint64.from_buffer(shm.buf, 32).value
tag_kind = ctypes.c_uint32.from_buffer(shm.buf, 48).value
tag_size = ctypes.c_uint64.from_buffer(shm.buf, 56).value
assert magic == b"SHMKITSG" and state == 1, "not a ready shmkit segment"
assert tag_kind == 0x54590001 and tag_size == 8, "not a SharedValue of an 8-byte type"

v = SharedValueI64.from_buffer(shm.buf, payload_offset)
# Python cannot take the futex lock; an aligned 8-byte load is not torn on x86-64, and
# `lock.word == 0` says no writer held the lock at that moment.
print(v.value, "locked" if v.lock.word else "unlocked")
del v
shm.close()
