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
//! Waiting polls a non-blocking `flock` with a 1-10 ms backoff (the kernel has no timed
//! `flock`).

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
        validate(name)?;
        ensure_dir(dir)?;
        let path = dir.join(format!("{name}.lock"));
        loop {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)
                .map_err(|e| io("open", &path, e))?;
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
            // We hold a lock on *this* inode; it is the named lock only if the path
            // still names it (a releaser unlinks the file before unlocking).
            let ours = file.metadata().map_err(|e| io("fstat", &path, e))?;
            match std::fs::symlink_metadata(&path) {
                Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => {
                    return Ok(NamedLockGuard { file, path });
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("stat", &path, e)),
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
