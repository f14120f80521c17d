"""Python <-> Rust: a Rust process (python/rust_peer, built here with cargo) opens the
objects Python made, through shmkit's Rust API, and the other way round.

Needs cargo; without it these tests are skipped, except in CI (SHMKIT_CI=1), where
that is a failure.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import shmkit
from conftest import in_ci

REPO = pathlib.Path(__file__).resolve().parents[2]
PEER = REPO / "python" / "rust_peer"


@pytest.fixture(scope="session")
def peer():
    """The path of the built Rust peer binary."""
    cargo = shutil.which("cargo")
    if cargo is None:
        if in_ci():
            pytest.fail("cargo is missing: the Python <-> Rust tests cannot run (SHMKIT_CI=1)")
        pytest.skip("cargo is missing: the Python <-> Rust tests need it")
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    subprocess.run(
        [cargo, "build", "-q", "--manifest-path", str(PEER / "Cargo.toml"),
         "--target-dir", str(target)],
        check=True,
    )
    exe = target / "debug" / "shmkit-pypeer"
    assert exe.exists(), exe
    return str(exe)


def run(peer, *args):
    out = subprocess.run([peer, *args], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def test_rust_reads_and_updates_a_python_value(peer, names, fork):
    name = names()
    v = shmkit.Value.create(name, "q", 40)
    assert run(peer, "value-get", name) == "40"

    def python_adder():
        mine = shmkit.Value.open(name, "q")
        for _ in range(1000):
            with mine.get_lock():
                mine.value += 1

    kid = fork(python_adder)
    assert run(peer, "value-add", name, "1000") == "done"
    kid.join()
    assert v.value == 2040


def test_rust_reads_a_python_array(peer, names):
    name = names()
    a = shmkit.Array.create(name, "d", [i * i for i in range(10)])
    assert float(run(peer, "array-sum", name)) == 285.0
    del a


def test_rust_holder_killed_python_recovers(peer, names):
    name = names()
    lock = shmkit.Lock.create(name)
    holder = subprocess.Popen([peer, "lock-hold", name], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert lock.locked()
        assert not lock.acquire(blocking=False)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert lock.acquire(timeout=5)
    assert lock.owner_died
    lock.make_consistent()
    lock.release()


def test_python_holder_killed_rust_recovers(peer, names, fork, pipe):
    name = names()
    lock = shmkit.Lock.create(name)
    held = pipe()

    def holder():
        shmkit.Lock.open(name).acquire()
        held.send()
        os.read(os.pipe()[0], 1)  # until killed

    kid = fork(holder)
    held.recv()
    kid.kill()
    assert run(peer, "lock-check", name) == "owner-died"
    assert not lock.owner_died  # Rust repaired it
    assert run(peer, "lock-check", name) == "consistent"


def test_ring_rust_to_python_and_back(peer, names):
    name = names()
    ring = shmkit.Ring.create(name, 1 << 12)
    writer = subprocess.Popen([peer, "ring-write", name, "5000"], stdout=subprocess.PIPE, text=True)
    try:
        got = list(ring)
    finally:
        out, _ = writer.communicate()
    assert writer.returncode == 0 and out.strip() == "done"
    assert got == [b"msg-%d" % i for i in range(5000)]

    back = names()
    out_ring = shmkit.Ring.create(back, 1 << 12)
    reader = subprocess.Popen([peer, "ring-read", back], stdout=subprocess.PIPE, text=True)
    try:
        for i in range(3000):
            out_ring.write(b"x" * (i % 100))
        out_ring.close()
    finally:
        out, _ = reader.communicate()
    assert reader.returncode == 0
    assert out.split() == ["3000", str(sum(i % 100 for i in range(3000)))]


def test_type_tags_match_what_rust_accepts(peer, names):
    """A Python 'd' value is not a SharedValue<i64> for Rust: refused, not misread."""
    name = names()
    v = shmkit.Value.create(name, "d", 1.0)
    r = subprocess.run([peer, "value-get", name], capture_output=True, text=True)
    assert r.returncode == 1 and "f64" in r.stderr and "i64" in r.stderr
    del v


def test_tickets_example_with_a_rust_buyer(peer):
    script = REPO / "examples" / "python" / "tickets.py"
    out = subprocess.run(
        [sys.executable, str(script), "--rust-buyer", peer],
        check=True, capture_output=True, text=True,
    ).stdout
    assert "OK: every ticket sold exactly once" in out


def test_named_lock_held_by_rust_is_released_when_it_is_killed(peer, tmp_path, monkeypatch):
    monkeypatch.setenv("SHMKIT_LOCK_DIR", str(tmp_path / "locks"))
    name = f"interop-{os.getpid()}"
    holder = subprocess.Popen([peer, "named-lock-hold", name], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        lock = shmkit.NamedLock(name)
        assert not lock.acquire(blocking=False)  # Rust and Python: one lock
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert lock.acquire(timeout=5)  # the kernel released the dead holder's lock
    lock.release()
