//! # shmkit
//!
//! This facade re-exports the three crates: [`segment`], [`sync`], [`typed`].
//! The README follows (its examples are compiled and run as doctests).
#![doc = include_str!("../README.md")]

pub use shmkit_segment as segment;
pub use shmkit_sync as sync;
pub use shmkit_typed as typed;

/// The bytemuck shmkit is built with: the path for `#[bytemuck(crate = "shmkit::bytemuck")]`
/// and for casts (`shmkit::bytemuck::bytes_of`) without a dependency of your own.
pub use shmkit_typed::bytemuck;
/// Plain data that may live in shared memory: the element bound of
/// [`SharedValue`](typed::SharedValue), [`SharedArray`](typed::SharedArray) and
/// [`Queue`](typed::Queue) (bytemuck's trait and derive, re-exported).
///
/// Your crate needs no `bytemuck` dependency of its own: derive [`Pod`] and
/// [`Zeroable`] from here and point the derive at shmkit's bytemuck with
/// `#[bytemuck(crate = "shmkit::bytemuck")]` (without it the derive names `::bytemuck`,
/// which your crate does not have). The struct is `#[repr(C)]` with no padding: spell
/// out any filler as a field.
///
/// ```
/// use shmkit::typed::Queue;
/// use shmkit::{Pod, Zeroable};
///
/// #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
/// #[bytemuck(crate = "shmkit::bytemuck")]
/// #[repr(C)]
/// struct Job {
///     id: u64,
///     cost: f32,
///     _pad: u32,
/// }
///
/// let jobs = Queue::<Job>::anonymous(16)?; // shared with forked children
/// let job = Job { id: 7, cost: 1.5, _pad: 0 };
/// jobs.put(job)?;
/// assert_eq!(jobs.get()?, job);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use shmkit_typed::Pod;
/// Zero is a valid value (bytemuck's trait and derive, re-exported): derive it with
/// [`Pod`], as shown there.
pub use shmkit_typed::Zeroable;
