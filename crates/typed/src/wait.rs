//! How long a blocking operation of the ring, the channel or the topic may wait: the
//! one shape behind their blocking, `_timeout`, `_deadline` and `try_` forms.

use std::time::{Duration, Instant};

use crate::shim::Deadline;

/// How long an operation may wait.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    /// Do not wait (`try_` forms).
    No,
    /// Wait until the deadline, or forever for `None`.
    Until(Option<Deadline>),
}

impl Wait {
    /// The `_timeout` forms: a deadline `t` from now.
    pub(crate) fn timeout(t: Duration) -> Self {
        Wait::Until(Some(Deadline::after(t)))
    }

    /// The `_deadline` forms: `when` on the monotonic clock (one too far ahead to
    /// reach means no deadline).
    pub(crate) fn at(when: Instant) -> Self {
        Wait::Until(Some(Deadline::at(when)))
    }
}
