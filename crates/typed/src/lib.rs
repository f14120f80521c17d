//! # shmkit-typed
//!
//! Typed shared memory: [`SharedValue<T>`] and [`RawValue<T>`] (Python's
//! `multiprocessing.Value`), [`SharedArray<T>`] (`multiprocessing.Array`), an SPSC
//! [`Ring`] of byte messages, a bounded MPMC [`Queue<T>`], an MPMC serde
//! [`Channel<T>`] of variable-size messages, a broadcast [`Topic`] (one writer, many
//! readers), a latest-value cell [`Latest<T>`], and named homes for the
//! other sync objects: [`SharedRwValue<T>`], [`SharedSemaphore`], [`SharedEvent`],
//! [`SharedBarrier`], [`SharedCondvar`] (all [`Shared<S>`]).
//!
//! Every object is made and opened the same way: `create`, `open`, `open_or_create`,
//! `anonymous`, and `*_in(SegmentOptions)`; see [the family](family).
//!
//! What may live in shared memory: `T: bytemuck::Pod` (see [`types`]): `#[repr(C)]` or
//! primitive, no pointers, references or file descriptors, valid for any bytes (so a
//! value written by another process, or a zeroed one, is always a valid `T`). Every
//! object records its `T` in the segment header's type tag, so opening with another type
//! is an error.
//!
//! Pid namespaces: opening any of these from another pid namespace than the segment's
//! creator is refused (`OpenError::Segment(ForeignPidNamespace { .. })`) unless the
//! opener passes `SegmentOptions::allow_foreign_pid_namespace(true)` to an `open_in`;
//! in a segment shared that way, a lock holder, ring peer or queue claimer is never
//! declared dead (a dead one is never recovered: waits time out). A ring or queue
//! placed on a raw region (`attach`/`init`, no segment header) is not protected: all
//! its users must share one pid namespace. See `docs/reliability.md`.

// Under loom only the algorithms are built and checked; the constructors over raw
// memory and segments, and the lock-based values, are not.
#![cfg_attr(loom, allow(dead_code))]

#[cfg(not(loom))]
mod array;
#[cfg(not(loom))]
mod async_wait;
pub mod channel;
mod error;
#[cfg(not(loom))]
pub mod family;
pub mod latest;
pub mod queue;
pub mod ring;
pub mod select;
#[cfg(not(loom))]
mod shared;
pub mod topic;
pub mod types;
#[cfg(not(loom))]
mod value;

#[cfg(all(test, loom))]
mod loom_tests;
mod peer;
mod shim;
mod wait;

#[cfg(not(loom))]
pub use array::{data_offset, mutex_size, SharedArray};
/// The `bytemuck` this crate is built with, for `#[bytemuck(crate = "…")]` in a crate
/// that derives [`Pod`] without depending on bytemuck itself (see [`types`]).
pub use bytemuck;
/// What may live in shared memory (trait and derive): see [`types`].
pub use bytemuck::{Pod, Zeroable};
pub use channel::{
    Channel, ChannelBounds, ChannelLayoutError, ChannelStats, RecvError, RustName, SendError,
    TypeName,
};
pub use error::{AccessError, CreateError, IndexError, OpenError, OpenOrCreateError};
#[cfg(not(loom))]
pub use family::SharedObject;
pub use latest::{Latest, LatestError};
pub use queue::{GetError, PutError, Queue, QueueLayoutError};
pub use ring::{ReadError, Ring, RingLayoutError, WriteBatch, WriteError};
pub use select::{Select, SELECT_MAX};
#[cfg(not(loom))]
pub use shared::{
    Shared, SharedBarrier, SharedCondvar, SharedEvent, SharedRwValue, SharedSemaphore, SharedValue,
    SyncObject,
};
/// The segment layer's errors, under the names this crate's errors wrap them with
/// ([`OpenError::Segment`], [`CreateError::Segment`]).
pub use shmkit_segment::{CreateError as SegmentCreateError, OpenError as SegmentOpenError};
pub use shmkit_sync::{LockError, LockErrorKind, MutexGuard, OsError};
pub use topic::{
    Policy, ReadError as TopicReadError, Subscriber, Topic, TopicConfig, TypedSubscriber,
    TypedTopic, WriteError as TopicWriteError,
};
#[cfg(not(loom))]
pub use value::{LockResult, RawValue};
