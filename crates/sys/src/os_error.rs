//! [`OsError`]: the one type every shmkit error carries for "the kernel failed".

use std::{error::Error, fmt, io, ops::Deref};

/// An OS error where shmkit expected none (e.g. `futex(2)` failing with an errno no
/// correct program should see): a [`std::io::Error`] that can be cloned and compared.
///
/// Every shmkit error enum's `Os` variant holds one, so those enums derive `Clone`,
/// `PartialEq` and `Eq` instead of writing them by hand. It derefs to the
/// [`io::Error`] (for [`raw_os_error`](io::Error::raw_os_error),
/// [`kind`](io::Error::kind)) and converts both ways.
///
/// Two are equal when they carry the same OS error code; errors without a code
/// (rare: made by hand) are equal when their kind and message are. A clone keeps the
/// code (or the kind and message) and drops any inner payload.
///
/// ```
/// use shmkit_sys::OsError;
///
/// let e = OsError::from(std::io::Error::from_raw_os_error(libc::EINVAL));
/// assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
/// assert_eq!(e.clone(), e);
/// assert_ne!(e, OsError::from(std::io::Error::from_raw_os_error(libc::EFAULT)));
/// ```
pub struct OsError(io::Error);

impl OsError {
    /// The `io::Error` inside.
    pub fn into_inner(self) -> io::Error {
        self.0
    }
}

impl From<io::Error> for OsError {
    fn from(e: io::Error) -> Self {
        OsError(e)
    }
}

impl From<rustix::io::Errno> for OsError {
    fn from(e: rustix::io::Errno) -> Self {
        OsError(e.into())
    }
}

impl From<OsError> for io::Error {
    fn from(e: OsError) -> Self {
        e.0
    }
}

impl Deref for OsError {
    type Target = io::Error;
    fn deref(&self) -> &io::Error {
        &self.0
    }
}

impl Clone for OsError {
    fn clone(&self) -> Self {
        OsError(match self.0.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.0.kind(), self.0.to_string()),
        })
    }
}

impl PartialEq for OsError {
    fn eq(&self, other: &Self) -> bool {
        match (self.0.raw_os_error(), other.0.raw_os_error()) {
            (Some(x), Some(y)) => x == y,
            (None, None) => {
                self.0.kind() == other.0.kind() && self.0.to_string() == other.0.to_string()
            }
            _ => false,
        }
    }
}

impl Eq for OsError {}

impl fmt::Debug for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for OsError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}
