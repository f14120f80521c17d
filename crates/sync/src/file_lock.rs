//! Kernel file locks: whole-file `flock(2)` and byte-range open-file-description locks
//! (`F_OFD_SETLK`/`F_OFD_SETLKW`).
//!
//! Both kinds belong to the *open file description*: two [`FileLock`]s opened on the
//! same path conflict even inside one process, and the kernel releases the lock when
//! the last descriptor of that description is closed — in particular when the holding
//! process dies, SIGKILL included. (A forked child shares its parent's descriptions, so
//! a lock is released only once both have closed it; files are opened close-on-exec.)
//!
//! # Which lock another program sees
//! Linux keeps `flock` locks and POSIX record locks in separate tables: a `flock` does
//! not conflict with a record lock and vice versa. Python's usual file lock,
//! `fcntl.lockf` (as `fcntl(F_SETLK)` in C, Perl's and many tools' "lockf"), is a
//! record lock, so [`FileLock::lock`] does **not** exclude it. To exclude such a
//! program use the range locks, [`FileLock::lock_range`]`(0, 0, mode)` for the whole
//! file: open-file-description locks and classic record locks are the same kind of
//! lock to the kernel and conflict both ways (tests/integration/python_lockf.rs checks this
//! against `fcntl.lockf`). Python's `fcntl.flock` is the one that meets [`FileLock::lock`].
//!
//! The kernel has no timed variant of either call: `*_timeout` retries the non-blocking
//! call with the one backoff (20 us doubling to 10 ms), so a timed acquisition can lag
//! the release by up to ~10 ms. The async forms ([`FileLock::lock_async`],
//! [`FileLock::lock_range_async`]) retry the same way, woken by the doorbell's timer
//! (see [`crate::future`]).

use std::fs::File;
use std::os::fd::AsRawFd;

use rustix::fs::FlockOperation;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::FileLockError;
use crate::futex::Deadline;

/// Shared (many holders) or exclusive (one holder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// A read lock: any number of shared holders, no exclusive one.
    Shared,
    /// A write lock: a single holder.
    Exclusive,
}

/// A file used as a lock.
///
/// # Examples
/// ```
/// use shmkit_sync::{FileLock, FileLockError, LockMode};
///
/// let path = std::env::temp_dir().join(format!("shmkit-doc-{}.lock", std::process::id()));
/// let a = FileLock::open(&path)?;
/// let b = FileLock::open(&path)?; // another open file description: they conflict
/// let held = a.lock(LockMode::Exclusive)?;
/// assert!(matches!(b.try_lock(LockMode::Shared), Err(FileLockError::WouldBlock)));
/// drop(held);
/// let _r1 = a.lock(LockMode::Shared)?;
/// let _r2 = b.try_lock(LockMode::Shared)?; // shared holders coexist
/// std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct FileLock {
    file: File,
}

/// `flock(2)` through rustix, retried on EINTR: `Ok(false)` when a non-blocking
/// `op` finds the lock held elsewhere.
pub(crate) fn flock(fd: impl std::os::fd::AsFd, op: FlockOperation) -> std::io::Result<bool> {
    let nonblocking = matches!(
        op,
        FlockOperation::NonBlockingLockShared
            | FlockOperation::NonBlockingLockExclusive
            | FlockOperation::NonBlockingUnlock
    );
    loop {
        match rustix::fs::flock(&fd, op) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::WOULDBLOCK) if nonblocking => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
}

fn io_err(op: &'static str) -> FileLockError {
    FileLockError::Io {
        op,
        source: std::io::Error::last_os_error(),
    }
}

/// The longest delay between two tries of a lock that has no readiness to wait on
/// (the blocking `*_timeout` forms and the async forms alike): a release is seen at
/// most this late.
pub(crate) const RETRY_CAP: Duration = Duration::from_millis(10);

/// Retries `attempt` (which returns `Ok(false)` for "held elsewhere") until it succeeds
/// or `deadline` passes, sleeping between tries for the delays of the one backoff
/// ([`shmkit_sys::Backoff::next_nap`]: 20 us doubling to [`RETRY_CAP`]), as the async
/// forms wait on the doorbell's timer ([`crate::future`]).
pub(crate) fn poll_until<E>(
    deadline: &Deadline,
    mut attempt: impl FnMut() -> Result<bool, E>,
    timeout: impl FnOnce() -> E,
) -> Result<(), E> {
    let mut backoff = shmkit_sys::Backoff::new();
    loop {
        if attempt()? {
            return Ok(());
        }
        let left = deadline.remaining();
        if left.is_zero() {
            return Err(timeout());
        }
        // Backoff between non-blocking attempts (the kernel offers no timed flock).
        std::thread::sleep(backoff.next_nap(RETRY_CAP, None).min(left));
    }
}

impl FileLock {
    /// Opens (creating with mode 0600 if missing) `path` as a lock file.
    ///
    /// # Errors
    /// [`FileLockError::Io`] if the file cannot be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FileLockError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| FileLockError::Io { op: "open", source })?;
        Ok(FileLock { file })
    }

    /// Uses an already open file.
    pub fn from_file(file: File) -> Self {
        FileLock { file }
    }

    /// The underlying file.
    pub fn file(&self) -> &File {
        &self.file
    }

    fn flock(&self, mode: LockMode, nonblocking: bool) -> Result<bool, FileLockError> {
        let op = match (mode, nonblocking) {
            (LockMode::Shared, false) => FlockOperation::LockShared,
            (LockMode::Exclusive, false) => FlockOperation::LockExclusive,
            (LockMode::Shared, true) => FlockOperation::NonBlockingLockShared,
            (LockMode::Exclusive, true) => FlockOperation::NonBlockingLockExclusive,
        };
        flock(&self.file, op).map_err(|source| FileLockError::Io {
            op: "flock",
            source,
        })
    }

    /// Locks the whole file, waiting as long as needed.
    ///
    /// This is `flock(2)`: it excludes other `flock` users (Python's `fcntl.flock`, the
    /// `flock(1)` command) but not POSIX record locks such as Python's `fcntl.lockf`;
    /// for those use [`lock_range`](Self::lock_range)`(0, 0, mode)` (see the module
    /// docs).
    ///
    /// # Errors
    /// [`FileLockError::Io`] if `flock` fails.
    pub fn lock(&self, mode: LockMode) -> Result<FileLockGuard<'_>, FileLockError> {
        self.flock(mode, false)?;
        Ok(FileLockGuard { lock: self })
    }

    /// Locks the whole file if possible without waiting.
    ///
    /// # Errors
    /// [`FileLockError::WouldBlock`] if held elsewhere; `Io` if `flock` fails.
    pub fn try_lock(&self, mode: LockMode) -> Result<FileLockGuard<'_>, FileLockError> {
        if self.flock(mode, true)? {
            Ok(FileLockGuard { lock: self })
        } else {
            Err(FileLockError::WouldBlock)
        }
    }

    /// Locks the whole file, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`FileLockError::Timeout`] after at least `timeout`; `Io` if `flock` fails.
    pub fn lock_timeout(
        &self,
        mode: LockMode,
        timeout: Duration,
    ) -> Result<FileLockGuard<'_>, FileLockError> {
        self.lock_until(mode, &Deadline::after(timeout))
    }

    /// Locks the whole file, waiting until `deadline` at most (an `Instant` too far
    /// ahead to reach means no deadline). See [`lock_timeout`](Self::lock_timeout).
    ///
    /// # Errors
    /// [`FileLockError::Timeout`] once the deadline passed; `Io` if `flock` fails.
    pub fn lock_deadline(
        &self,
        mode: LockMode,
        deadline: Instant,
    ) -> Result<FileLockGuard<'_>, FileLockError> {
        self.lock_until(mode, &Deadline::at(deadline))
    }

    fn lock_until(
        &self,
        mode: LockMode,
        deadline: &Deadline,
    ) -> Result<FileLockGuard<'_>, FileLockError> {
        poll_until(
            deadline,
            || self.flock(mode, true),
            || FileLockError::Timeout,
        )?;
        Ok(FileLockGuard { lock: self })
    }

    fn ofd(
        &self,
        cmd: libc::c_int,
        ty: libc::c_int,
        start: u64,
        len: u64,
    ) -> Result<bool, FileLockError> {
        // libc: rustix's `fcntl_lock` takes only whole-file, process-associated locks
        // (F_SETLK); open-file-description locks on a byte range (F_OFD_SETLK) it has not.
        let offset = |v: u64| {
            libc::off_t::try_from(v).map_err(|_| FileLockError::Io {
                op: "fcntl(F_OFD_SETLK)",
                source: std::io::Error::from_raw_os_error(libc::EOVERFLOW),
            })
        };
        let mut fl = libc::flock {
            l_type: ty as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: offset(start)?,
            l_len: offset(len)?,
            l_pid: 0, // required to be 0 for OFD locks
        };
        loop {
            // SAFETY: `fl` is a valid flock struct that outlives the call; the fd is ours.
            let rc = unsafe { libc::fcntl(self.file.as_raw_fd(), cmd, &mut fl) };
            if rc == 0 {
                return Ok(true);
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) | Some(libc::EACCES) if cmd == libc::F_OFD_SETLK => {
                    return Ok(false)
                }
                _ => return Err(io_err("fcntl(F_OFD_SETLK)")),
            }
        }
    }

    fn range_type(mode: LockMode) -> libc::c_int {
        match mode {
            LockMode::Shared => libc::F_RDLCK,
            LockMode::Exclusive => libc::F_WRLCK,
        }
    }

    /// Locks bytes `start..start+len` (`len == 0`: to the end of the file, however it
    /// grows), waiting as long as needed.
    ///
    /// An open-file-description lock (`F_OFD_SETLKW`): it conflicts with POSIX record
    /// locks taken by other programs (Python's `fcntl.lockf`, C's `fcntl(F_SETLK)` and
    /// `lockf(3)`), so `lock_range(0, 0, mode)` is the whole-file lock that excludes
    /// them. Unlike those classic locks it is not dropped when the process closes some
    /// *other* descriptor of the file.
    ///
    /// # Errors
    /// [`FileLockError::Io`] if `fcntl` fails (e.g. `EDEADLK`).
    ///
    /// # Examples
    /// ```
    /// use shmkit_sync::{FileLock, FileLockError, LockMode};
    ///
    /// let path = std::env::temp_dir().join(format!("shmkit-doc-range-{}", std::process::id()));
    /// let (a, b) = (FileLock::open(&path)?, FileLock::open(&path)?);
    /// let _first = a.lock_range(0, 100, LockMode::Exclusive)?;
    /// let _second = b.try_lock_range(100, 100, LockMode::Exclusive)?; // disjoint: fine
    /// let overlap = b.try_lock_range(50, 10, LockMode::Shared);
    /// assert!(matches!(overlap, Err(FileLockError::WouldBlock)));
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_range(
        &self,
        start: u64,
        len: u64,
        mode: LockMode,
    ) -> Result<RangeGuard<'_>, FileLockError> {
        self.ofd(libc::F_OFD_SETLKW, Self::range_type(mode), start, len)?;
        Ok(RangeGuard {
            lock: self,
            start,
            len,
        })
    }

    /// Locks a byte range if possible without waiting.
    ///
    /// # Errors
    /// [`FileLockError::WouldBlock`] if a conflicting lock is held elsewhere.
    pub fn try_lock_range(
        &self,
        start: u64,
        len: u64,
        mode: LockMode,
    ) -> Result<RangeGuard<'_>, FileLockError> {
        if self.ofd(libc::F_OFD_SETLK, Self::range_type(mode), start, len)? {
            Ok(RangeGuard {
                lock: self,
                start,
                len,
            })
        } else {
            Err(FileLockError::WouldBlock)
        }
    }

    /// Locks a byte range, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`FileLockError::Timeout`] after at least `timeout`.
    pub fn lock_range_timeout(
        &self,
        start: u64,
        len: u64,
        mode: LockMode,
        timeout: Duration,
    ) -> Result<RangeGuard<'_>, FileLockError> {
        self.lock_range_until(start, len, mode, &Deadline::after(timeout))
    }

    /// As [`lock_range_timeout`](Self::lock_range_timeout), waiting until `deadline` at
    /// most (an `Instant` too far ahead to reach means no deadline).
    ///
    /// # Errors
    /// [`FileLockError::Timeout`] once the deadline passed.
    pub fn lock_range_deadline(
        &self,
        start: u64,
        len: u64,
        mode: LockMode,
        deadline: Instant,
    ) -> Result<RangeGuard<'_>, FileLockError> {
        self.lock_range_until(start, len, mode, &Deadline::at(deadline))
    }

    fn lock_range_until(
        &self,
        start: u64,
        len: u64,
        mode: LockMode,
        deadline: &Deadline,
    ) -> Result<RangeGuard<'_>, FileLockError> {
        let ty = Self::range_type(mode);
        poll_until(
            deadline,
            || self.ofd(libc::F_OFD_SETLK, ty, start, len),
            || FileLockError::Timeout,
        )?;
        Ok(RangeGuard {
            lock: self,
            start,
            len,
        })
    }
}

/// The async forms (not in loom builds, which have no doorbell): see
/// [`crate::future`] on locks.
#[cfg(not(loom))]
mod async_impl {
    use std::time::Duration;

    use super::{FileLock, FileLockError, FileLockGuard, LockMode, RangeGuard};
    use crate::future::Retry;

    impl FileLock {
        /// Locks the whole file, as [`lock_timeout`](Self::lock_timeout) does, without
        /// blocking the thread: a bounded wait of timed retries, woken by the doorbell's
        /// timer (see the [`future` module](crate::future) on locks). A free lock is taken
        /// by the first poll (one `flock` call).
        ///
        /// # Cancel safety
        /// Cancel-safe: the lock is held only by the guard that the poll returning `Ready`
        /// hands out; a dropped future holds no lock and leaves no registration.
        ///
        /// # Errors
        /// [`FileLockError::Timeout`] after at least `timeout` (`Duration::MAX`: never);
        /// `Io` if `flock` fails or the doorbell's helper thread could not be started.
        ///
        /// # Examples
        /// ```
        /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
        /// #     struct T(std::thread::Thread);
        /// #     impl std::task::Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
        /// #     let waker = std::task::Waker::from(std::sync::Arc::new(T(std::thread::current())));
        /// #     let mut cx = std::task::Context::from_waker(&waker);
        /// #     let mut f = std::pin::pin!(f);
        /// #     loop {
        /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
        /// #         std::thread::park();
        /// #     }
        /// # }
        /// use std::time::Duration;
        /// use shmkit_sync::{FileLock, FileLockError, LockMode};
        ///
        /// let path = std::env::temp_dir().join(format!("shmkit-doc-async-{}.lock", std::process::id()));
        /// let (a, b) = (FileLock::open(&path)?, FileLock::open(&path)?);
        /// let held = a.lock(LockMode::Exclusive)?;
        /// // `block_on` stands for any executor (tokio's `block_on`, an `.await`).
        /// let busy = block_on(b.lock_async(LockMode::Exclusive, Duration::from_millis(20)));
        /// assert!(matches!(busy, Err(FileLockError::Timeout)));
        /// drop(held);
        /// let _now = block_on(b.lock_async(LockMode::Exclusive, Duration::from_secs(5)))?;
        /// std::fs::remove_file(&path)?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        pub fn lock_async(&self, mode: LockMode, timeout: Duration) -> FileLockAcquire<'_> {
            FileLockAcquire {
                lock: self,
                mode,
                retry: Retry::new(timeout),
            }
        }

        /// Locks a byte range, as [`lock_range_timeout`](Self::lock_range_timeout) does,
        /// without blocking the thread: as [`lock_async`](Self::lock_async).
        ///
        /// # Cancel safety
        /// As [`lock_async`](Self::lock_async).
        ///
        /// # Errors
        /// As [`lock_async`](Self::lock_async) (`Io` if `fcntl` fails).
        pub fn lock_range_async(
            &self,
            start: u64,
            len: u64,
            mode: LockMode,
            timeout: Duration,
        ) -> RangeLockAcquire<'_> {
            RangeLockAcquire {
                lock: self,
                range: (start, len),
                mode,
                retry: Retry::new(timeout),
            }
        }
    }

    fn doorbell_err(e: crate::OsError) -> FileLockError {
        FileLockError::Io {
            op: "start the doorbell's helper thread",
            source: e.into(),
        }
    }

    /// The future of [`FileLock::lock_async`].
    #[must_use = "futures do nothing unless awaited"]
    pub struct FileLockAcquire<'a> {
        lock: &'a FileLock,
        mode: LockMode,
        retry: Retry,
    }

    /// The future of [`FileLock::lock_range_async`].
    #[must_use = "futures do nothing unless awaited"]
    pub struct RangeLockAcquire<'a> {
        lock: &'a FileLock,
        range: (u64, u64),
        mode: LockMode,
        retry: Retry,
    }

    impl std::fmt::Debug for FileLockAcquire<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("FileLockAcquire")
                .field("mode", &self.mode)
                .finish_non_exhaustive()
        }
    }

    impl std::fmt::Debug for RangeLockAcquire<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RangeLockAcquire")
                .field("range", &self.range)
                .field("mode", &self.mode)
                .finish_non_exhaustive()
        }
    }

    impl<'a> std::future::Future for FileLockAcquire<'a> {
        type Output = Result<FileLockGuard<'a>, FileLockError>;

        fn poll(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Self::Output> {
            let this = self.get_mut();
            let lock = this.lock;
            let mode = this.mode;
            this.retry.poll(
                cx,
                // `then`, not `then_some`: a guard made for a busy lock would unlock on drop.
                || Ok(lock.flock(mode, true)?.then(|| FileLockGuard { lock })),
                || FileLockError::Timeout,
                doorbell_err,
            )
        }
    }

    impl<'a> std::future::Future for RangeLockAcquire<'a> {
        type Output = Result<RangeGuard<'a>, FileLockError>;

        fn poll(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Self::Output> {
            let this = self.get_mut();
            let (lock, (start, len)) = (this.lock, this.range);
            let ty = FileLock::range_type(this.mode);
            this.retry.poll(
                cx,
                || {
                    let got = lock.ofd(libc::F_OFD_SETLK, ty, start, len)?;
                    Ok(got.then(|| RangeGuard { lock, start, len }))
                },
                || FileLockError::Timeout,
                doorbell_err,
            )
        }
    }
}

#[cfg(not(loom))]
pub use async_impl::{FileLockAcquire, RangeLockAcquire};

/// A whole-file lock; released on drop.
#[derive(Debug)]
#[must_use = "the file lock is released as soon as the guard is dropped"]
pub struct FileLockGuard<'a> {
    lock: &'a FileLock,
}

impl Drop for FileLockGuard<'_> {
    fn drop(&mut self) {
        // Failure leaves the lock to be released when the file is closed.
        let _ = flock(&self.lock.file, FlockOperation::Unlock);
    }
}

/// A byte-range lock; released on drop.
#[derive(Debug)]
#[must_use = "the range lock is released as soon as the guard is dropped"]
pub struct RangeGuard<'a> {
    lock: &'a FileLock,
    start: u64,
    len: u64,
}

impl Drop for RangeGuard<'_> {
    fn drop(&mut self) {
        // Failure leaves the range to be released when the file is closed.
        let _ = self
            .lock
            .ofd(libc::F_OFD_SETLK, libc::F_UNLCK, self.start, self.len);
    }
}
