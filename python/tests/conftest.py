"""Fixtures of the shmkit Python tests.

- ``names``: unique segment names, removed after the test even when it fails;
- ``fork``: runs a function in a forked child and checks how it ended;
- the session checks that /dev/shm holds no segment of these tests afterwards.

No test synchronises with sleeps: processes signal each other through pipes,
events, barriers and exit statuses.
"""

import itertools
import os
import signal
import traceback
import uuid

import pytest

import shmkit

PREFIX = f"shmkit-pytest-{os.getpid()}-{uuid.uuid4().hex[:8]}"
_counter = itertools.count()


def in_ci():
    return os.environ.get("SHMKIT_CI") == "1"


def shm_entries():
    return {n for n in os.listdir("/dev/shm") if n.startswith(PREFIX)}


@pytest.fixture(scope="session", autouse=True)
def dev_shm_stays_clean():
    """/dev/shm as clean after the tests as before them."""
    yield
    import gc

    gc.collect()
    left = shm_entries()
    for n in left:
        os.unlink(os.path.join("/dev/shm", n))
    assert not left, f"tests left these segments in /dev/shm: {sorted(left)}"


@pytest.fixture
def names():
    """A factory of unique segment names; each is removed after the test."""
    made = []

    def new(tag="obj"):
        name = f"{PREFIX}-{tag}-{next(_counter)}"
        made.append(name)
        return name

    yield new
    import gc

    gc.collect()
    for name in made:
        try:
            shmkit.remove(name)
        except shmkit.NotFound:
            pass


class Child:
    """A forked child process (see the ``fork`` fixture)."""

    def __init__(self, pid):
        self.pid = pid
        self.status = None

    def kill(self):
        os.kill(self.pid, signal.SIGKILL)
        return self.wait()

    def wait(self):
        if self.status is None:
            _, self.status = os.waitpid(self.pid, 0)
        return self.status

    def join(self):
        """Waits and asserts that the child's function returned normally."""
        status = self.wait()
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (
            f"child {self.pid} failed (status {status:#x}); its traceback is on stderr"
        )


@pytest.fixture
def fork():
    """``fork(fn, *args)`` runs ``fn(*args)`` in a forked child, which exits 0 if it
    returned and 1 if it raised (printing the traceback); children still running at
    the end of the test are killed."""
    children = []

    def start(fn, *args):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                fn(*args)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        child = Child(pid)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.status is None:
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()


class Pipe:
    """A one-way pipe for "I am ready" messages between forked processes."""

    def __init__(self):
        self.r, self.w = os.pipe()

    def send(self, msg=b"!"):
        os.write(self.w, msg)

    def recv(self, n=1):
        data = b""
        while len(data) < n:
            chunk = os.read(self.r, n - len(data))
            assert chunk, "the other side closed the pipe"
            data += chunk
        return data

    def close(self):
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def pipe():
    made = []

    def new():
        p = Pipe()
        made.append(p)
        return p

    yield new
    for p in made:
        p.close()
