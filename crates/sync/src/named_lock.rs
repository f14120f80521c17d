//! Locks that unrelated processes take by name with no setup, like MySQL's
//! `GET_LOCK(name, timeout)`.
//!
//! A named lock is an exclusive `flock` on the file `<dir>/<name>.lock`, where `<dir>` is
//! (first that applies) `$SHMKIT_LOCK_DIR`, `$XDG_RUNTIME_DIR/shmkit-locks`, or
//! `/tmp/shmkit-locks-<uid>`. The directory is created with mode 0700 and must be a real
//! directory (not a symlink) owned by the caller and not writable by group or others;
//! lock files are created with mode 0600 and `O_NOFOLLOW`. Names are 1 to 200 characters
//! of `[A-Za-z0-9._-]`, not starting with `.`.
//!
//! The kernel releases the lock when the holder dies. A guard removes its file when
//! dropped, so no files pile up; to make that safe, an acquirer that wins the `flock`
//! checks the path still names the file it locked (a releaser may have unlinked it
//! meanwhile) and otherwise retries with a fresh file. Files of holders that were
//! killed stay behind (empty) and are reused by the next acquirer.
//!
//! Waiting polls a non-blocking `flock` with the one backoff, 20 us doubling to 10 ms
//! (the kernel has no timed `flock`); the async form
//! ([`NamedLock::acquire_async`]) retries the same way, woken by the doorbell's timer
//! (see [`crate::future`]).

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::NamedLockError;
use crate::file_lock::{flock, poll_until};
use crate::futex::Deadline;
use rustix::fs::FlockOperation;

/// Entry point for named locks (see the module docs).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shmkit_sync::{NamedLock, NamedLockError};
///
/// let name = format!("shmkit-doc-{}", std::process::id());
/// let guard = NamedLock::acquire(&name, Duration::from_secs(1))?;
/// // Held: any other acquirer (here a second attempt in this process) fails.
/// let again = NamedLock::try_acquire(&name);
/// assert!(matches!(again, Err(NamedLockError::WouldBlock(_))));
/// let file = guard.path().to_owned();
/// drop(guard); // releases the lock and removes its file
/// assert!(!file.exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct NamedLock;

/// A held named lock; released (and its file removed) on drop, or by the kernel if the
/// process dies.
#[derive(Debug)]
#[must_use = "the named lock is released as soon as the guard is dropped"]
pub struct NamedLockGuard {
    file: File,
    path: PathBuf,
}

impl NamedLockGuard {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for NamedLockGuard {
    fn drop(&mut self) {
        // Unlink while still holding the lock: waiters on this inode then find the path
        // gone and retry on a fresh file. The flock goes with the descriptor.
        let _ = std::fs::remove_file(&self.path);
        // Closing the descriptor would do the same.
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

fn io(op: &'static str, path: &Path, source: std::io::Error) -> NamedLockError {
    NamedLockError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

impl NamedLock {
    /// Takes the lock `name`, waiting at most `timeout` (`Duration::MAX`: forever).
    ///
    /// # Errors
    /// [`NamedLockError::InvalidName`], [`NamedLockError::Timeout`],
    /// [`NamedLockError::UnsafeDir`], or [`NamedLockError::Io`].
    pub fn acquire(name: &str, timeout: Duration) -> Result<NamedLockGuard, NamedLockError> {
        Self::acquire_in(&Self::lock_dir(), name, timeout)
    }

    /// Takes the lock `name`, waiting until `deadline` at most (an `Instant` too far
    /// ahead to reach means no deadline). See [`acquire`](Self::acquire).
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub fn acquire_deadline(
        name: &str,
        deadline: Instant,
    ) -> Result<NamedLockGuard, NamedLockError> {
        Self::acquire_impl(&Self::lock_dir(), name, &Deadline::at(deadline), false)
    }

    /// Takes the lock `name` if nobody holds it now.
    ///
    /// # Errors
    /// [`NamedLockError::WouldBlock`] if another holder has it; otherwise as
    /// [`acquire`](Self::acquire) (never `Timeout`).
    pub fn try_acquire(name: &str) -> Result<NamedLockGuard, NamedLockError> {
        Self::acquire_impl(&Self::lock_dir(), name, &Deadline::now(), true)
    }

    /// As [`acquire`](Self::acquire), with lock files in `dir` instead of the default
    /// directory (same checks on `dir`).
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub fn acquire_in(
        dir: &Path,
        name: &str,
        timeout: Duration,
    ) -> Result<NamedLockGuard, NamedLockError> {
        Self::acquire_impl(dir, name, &Deadline::after(timeout), false)
    }

    /// As [`acquire_in`](Self::acquire_in), waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub fn acquire_in_deadline(
        dir: &Path,
        name: &str,
        deadline: Instant,
    ) -> Result<NamedLockGuard, NamedLockError> {
        Self::acquire_impl(dir, name, &Deadline::at(deadline), false)
    }

    /// `try_`: a busy lock is `WouldBlock` (the caller did not ask to wait), else
    /// `Timeout`.
    fn acquire_impl(
        dir: &Path,
        name: &str,
        deadline: &Deadline,
        try_: bool,
    ) -> Result<NamedLockGuard, NamedLockError> {
        let path = checked_path(dir, name)?;
        loop {
            let file = open_file(&path)?;
            poll_until(
                deadline,
                || {
                    flock(&file, FlockOperation::NonBlockingLockExclusive)
                        .map_err(|e| io("flock", &path, e))
                },
                || {
                    if try_ {
                        NamedLockError::WouldBlock(name.to_owned())
                    } else {
                        NamedLockError::Timeout(name.to_owned())
                    }
                },
            )?;
            if still_named(&file, &path)? {
                return Ok(NamedLockGuard { file, path });
            }
            // Stale inode: drop it and retry with the current file.
        }
    }

    /// The directory where lock files live (see the module docs).
    pub fn lock_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("SHMKIT_LOCK_DIR") {
            return PathBuf::from(d);
        }
        if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
            if !d.is_empty() {
                return Path::new(&d).join("shmkit-locks");
            }
        }
        let uid = rustix::process::geteuid().as_raw();
        PathBuf::from(format!("/tmp/shmkit-locks-{uid}"))
    }
}

/// The async form (not in loom builds, which have no doorbell): see
/// [`crate::future`] on locks.
#[cfg(not(loom))]
mod async_impl {
    use std::fs::File;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use rustix::fs::FlockOperation;

    use super::{checked_path, flock, io, open_file, still_named, NamedLock, NamedLockGuard};
    use crate::error::NamedLockError;
    use crate::future::Retry;

    impl NamedLock {
        /// Takes the lock `name`, as [`acquire`](Self::acquire) does, without blocking the
        /// thread: a bounded wait of timed retries, woken by the doorbell's timer (see the
        /// [`future` module](crate::future) on locks). A free lock is taken by the first
        /// poll.
        ///
        /// # Cancel safety
        /// Cancel-safe: the lock is held only by the guard that the poll returning `Ready`
        /// hands out; a dropped future holds no lock (its file is closed unlocked) and
        /// leaves no registration.
        ///
        /// # Errors
        /// As [`acquire`](Self::acquire): [`NamedLockError::Timeout`] after at least
        /// `timeout` (`Duration::MAX`: never), and `Io` if the doorbell's helper thread
        /// could not be started.
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
        /// use shmkit_sync::{NamedLock, NamedLockError};
        ///
        /// let name = format!("shmkit-doc-async-{}", std::process::id());
        /// let held = NamedLock::acquire(&name, Duration::from_secs(1))?;
        /// // `block_on` stands for any executor (tokio's `block_on`, an `.await`).
        /// let busy = block_on(NamedLock::acquire_async(&name, Duration::from_millis(20)));
        /// assert!(matches!(busy, Err(NamedLockError::Timeout(_))));
        /// drop(held);
        /// let _now = block_on(NamedLock::acquire_async(&name, Duration::from_secs(5)))?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        pub fn acquire_async(name: &str, timeout: Duration) -> NamedLockAcquire {
            Self::acquire_in_async(&Self::lock_dir(), name, timeout)
        }

        /// As [`acquire_async`](Self::acquire_async), with lock files in `dir` (see
        /// [`acquire_in`](Self::acquire_in)).
        ///
        /// # Cancel safety
        /// As [`acquire_async`](Self::acquire_async).
        ///
        /// # Errors
        /// As [`acquire_async`](Self::acquire_async).
        pub fn acquire_in_async(dir: &Path, name: &str, timeout: Duration) -> NamedLockAcquire {
            NamedLockAcquire {
                dir: dir.to_owned(),
                name: name.to_owned(),
                path: None,
                file: None,
                retry: Retry::new(timeout),
            }
        }
    }

    /// The future of [`NamedLock::acquire_async`].
    #[must_use = "futures do nothing unless awaited"]
    #[derive(Debug)]
    pub struct NamedLockAcquire {
        dir: PathBuf,
        name: String,
        /// The lock file's path, once the name and directory were checked (first poll).
        path: Option<PathBuf>,
        /// The lock file opened by an earlier try (not locked).
        file: Option<File>,
        retry: Retry,
    }

    impl std::future::Future for NamedLockAcquire {
        type Output = Result<NamedLockGuard, NamedLockError>;

        fn poll(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Self::Output> {
            let this = self.get_mut();
            let path = match &this.path {
                Some(p) => p.clone(),
                None => match checked_path(&this.dir, &this.name) {
                    Ok(p) => this.path.insert(p).clone(),
                    Err(e) => return std::task::Poll::Ready(Err(e)),
                },
            };
            let (name, file) = (&this.name, &mut this.file);
            this.retry.poll(
                cx,
                || loop {
                    let f = match file.take() {
                        Some(f) => f,
                        None => open_file(&path)?,
                    };
                    if !flock(&f, FlockOperation::NonBlockingLockExclusive)
                        .map_err(|e| io("flock", &path, e))?
                    {
                        *file = Some(f); // busy: kept for the next try, unlocked
                        return Ok(None);
                    }
                    if still_named(&f, &path)? {
                        return Ok(Some(NamedLockGuard {
                            file: f,
                            path: path.clone(),
                        }));
                    }
                    // Stale inode: drop it (unlocking it) and try the current file.
                },
                || NamedLockError::Timeout(name.clone()),
                |e| io("start the doorbell's helper thread", &path, e.into()),
            )
        }
    }
}

#[cfg(not(loom))]
pub use async_impl::NamedLockAcquire;

/// The lock file of `name` in `dir`, after checking both (see the module docs).
fn checked_path(dir: &Path, name: &str) -> Result<PathBuf, NamedLockError> {
    validate(name)?;
    ensure_dir(dir)?;
    Ok(dir.join(format!("{name}.lock")))
}

/// Opens (creating) the lock file at `path`, never through a symlink.
fn open_file(path: &Path) -> Result<File, NamedLockError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io("open", path, e))
}

/// Whether `path` still names `file`, which we locked: a releaser unlinks the file
/// before unlocking, so a lock won on an unlinked inode is not the named lock.
fn still_named(file: &File, path: &Path) -> Result<bool, NamedLockError> {
    let ours = file.metadata().map_err(|e| io("fstat", path, e))?;
    match std::fs::symlink_metadata(path) {
        Ok(now) => Ok(now.dev() == ours.dev() && now.ino() == ours.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("stat", path, e)),
    }
}

fn validate(name: &str) -> Result<(), NamedLockError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(NamedLockError::InvalidName(name.to_owned()))
    }
}

fn ensure_dir(dir: &Path) -> Result<(), NamedLockError> {
    match rustix::fs::mkdir(dir, rustix::fs::Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(io("mkdir", dir, e.into())),
    }
    let md = std::fs::symlink_metadata(dir).map_err(|e| io("stat", dir, e))?;
    let unsafe_dir = |why| NamedLockError::UnsafeDir {
        path: dir.to_owned(),
        why,
    };
    if !md.file_type().is_dir() {
        return Err(unsafe_dir("it is not a directory (or is a symlink)"));
    }
    if md.uid() != rustix::process::geteuid().as_raw() {
        return Err(unsafe_dir("it is owned by another user"));
    }
    if md.mode() & 0o022 != 0 {
        return Err(unsafe_dir("it is writable by group or others"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for bad in ["", ".hidden", "a/b", "a b", "x\0", &"n".repeat(201), "é"] {
            assert!(
                matches!(validate(bad), Err(NamedLockError::InvalidName(_))),
                "{bad:?}"
            );
        }
        for good in ["a", "job-42", "my_lock.v2", &"n".repeat(200)] {
            assert!(validate(good).is_ok(), "{good:?}");
        }
    }
}
