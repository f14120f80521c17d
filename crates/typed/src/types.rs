//! What may live in shared memory, and how its type is recorded.
//!
//! Element types are bounded by [`Pod`](crate::Pod) (bytemuck's, re-exported here and
//! as `shmkit::Pod`): `Copy`, `'static`, no padding, no pointers or references, valid
//! for any bit pattern (so a value another process wrote, or a zeroed segment, is never
//! undefined behaviour to read). Derive it with `#[derive(Clone, Copy, Pod, Zeroable)]`
//! on a `#[repr(C)]` struct; a crate without a bytemuck dependency of its own points the
//! derive at the re-export with `#[bytemuck(crate = "shmkit::bytemuck")]` (or
//! `"shmkit_typed::bytemuck"`), as the example of `shmkit::Pod` shows. A file
//! descriptor is a plain integer to `Pod` but means nothing in another process: do not
//! share one this way.
//!
//! Each container records a [`shmkit_segment::TypeTag`] of its element type:
//! kind (which container), `std::any::type_name`, size and alignment; opening with
//! another type is a `TypeMismatch` error naming both types.

use shmkit_segment::TypeTag;

/// Tag kinds of the typed objects (the segment header's `type_tag.kind`).
///
/// A kind is `0x5459_VVNN`: `0x5459` ("TY") marks a shmkit-typed object, `NN` says
/// which object, and `VV` is the **layout version** of that object's payload. Any change
/// to a payload's bytes (including a change of a `shmkit-sync` lock it holds) bumps
/// its `VV`; a build opening an object of another version gets
/// [`OpenError::Version`](crate::OpenError::Version), never a misread. The constants
/// are the kinds this build writes; [`object`] and [`layout_version`] split a kind.
///
/// # Examples
/// ```
/// use shmkit_typed::types::{kind, layout_version, object};
/// use shmkit_typed::SharedValue;
///
/// let v = SharedValue::<u8>::anonymous(0)?;
/// let tag = v.segment().header().expect("header").type_tag;
/// assert_eq!(tag.kind(), kind::SHARED_VALUE);
/// assert_eq!(object(tag.kind()), Some(("SharedValue", 1)));
/// assert_eq!(layout_version(tag.kind()), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub mod kind {
    use super::typed_kind;

    /// `SharedValue<T>`: a `Mutex<T>`.
    pub const SHARED_VALUE: u32 = typed_kind(0x01, 1);
    /// `SharedArray<T>`: a length, then a `Mutex<[T]>`.
    pub const SHARED_ARRAY: u32 = typed_kind(0x02, 1);
    /// `Ring`: the same version as its payload header's `RING_VERSION`.
    pub const RING: u32 = typed_kind(0x03, crate::ring::RING_VERSION);
    /// `Queue<T>`: the same version as its payload header's `QUEUE_VERSION`.
    pub const QUEUE: u32 = typed_kind(0x04, crate::queue::QUEUE_VERSION);
    /// `RawValue<T>`: a bare `T` (no lock).
    pub const RAW_VALUE: u32 = typed_kind(0x05, 1);
    /// `SharedRwValue<T>`: an `RwLock<T>`.
    pub const SHARED_RW_VALUE: u32 = typed_kind(0x06, 1);
    /// `SharedSemaphore`: a `Semaphore`.
    pub const SEMAPHORE: u32 = typed_kind(0x07, 1);
    /// `SharedEvent`: an `Event`.
    pub const EVENT: u32 = typed_kind(0x08, 1);
    /// `SharedBarrier`: a `Barrier`.
    pub const BARRIER: u32 = typed_kind(0x09, 1);
    /// `SharedCondvar`: a `Condvar`.
    pub const CONDVAR: u32 = typed_kind(0x0a, 1);
    /// `Channel<T>`: the same version as its payload header's `CHANNEL_VERSION`.
    pub const CHANNEL: u32 = typed_kind(0x0b, crate::channel::CHANNEL_VERSION);
    /// `Latest<T>`: the same version as its payload header's `LATEST_VERSION`.
    pub const LATEST: u32 = typed_kind(0x10, crate::latest::LATEST_VERSION);
    /// `Topic<Block>` / `TypedTopic<T, Block>`: the same version as `TOPIC_VERSION`.
    pub const TOPIC_BLOCK: u32 = typed_kind(0x0c, crate::topic::TOPIC_VERSION);
    /// `Topic<Overwrite>` / `TypedTopic<T, Overwrite>`: as [`TOPIC_BLOCK`].
    pub const TOPIC_OVERWRITE: u32 = typed_kind(0x0d, crate::topic::TOPIC_VERSION);

    /// Every kind this build writes, with the object's name.
    pub(crate) const ALL: [(u32, &str); 14] = [
        (SHARED_VALUE, "SharedValue"),
        (SHARED_ARRAY, "SharedArray"),
        (RING, "Ring"),
        (QUEUE, "Queue"),
        (RAW_VALUE, "RawValue"),
        (SHARED_RW_VALUE, "SharedRwValue"),
        (SEMAPHORE, "SharedSemaphore"),
        (EVENT, "SharedEvent"),
        (BARRIER, "SharedBarrier"),
        (CONDVAR, "SharedCondvar"),
        (CHANNEL, "Channel"),
        (LATEST, "Latest"),
        (TOPIC_BLOCK, "Topic"),
        (TOPIC_OVERWRITE, "Topic"),
    ];
}

const TYPED_PREFIX: u32 = 0x5459_0000;

const fn typed_kind(object: u32, version: u32) -> u32 {
    assert!(object <= 0xff && version <= 0xff);
    TYPED_PREFIX | (version << 8) | object
}

/// The layout version recorded in a typed object's `kind`, or `None` if `kind` is not
/// a shmkit-typed kind.
pub fn layout_version(kind: u32) -> Option<u32> {
    (kind & 0xffff_0000 == TYPED_PREFIX).then_some((kind >> 8) & 0xff)
}

/// Which typed object a `kind` names, whatever its layout version: its name and the
/// layout version this build reads, or `None` if this build knows no such object.
pub fn object(kind: u32) -> Option<(&'static str, u32)> {
    layout_version(kind)?;
    kind::ALL
        .iter()
        .find(|(k, _)| k & 0xff == kind & 0xff)
        .map(|&(k, name)| (name, (k >> 8) & 0xff))
}

/// How `shmkit ls` names what a segment holds: `SharedValue<u64>`, `Ring`,
/// `SharedSemaphore`..., with `(layout vN, this build reads vM)` when the versions
/// differ; any other tag by its recorded type name.
pub fn describe_object(tag: &TypeTag) -> String {
    let Some((name, current)) = object(tag.kind()) else {
        return tag.name().to_owned();
    };
    let mut s = match tag.kind() & 0xff {
        0x01 | 0x02 | 0x04 | 0x05 | 0x06 | 0x0b | 0x10 => format!("{name}<{}>", tag.name()),
        // No space, so that `shmkit ls` keeps one word per column.
        0x0c | 0x0d => {
            let policy = if tag.kind() & 0xff == 0x0c {
                "Block"
            } else {
                "Overwrite"
            };
            match tag.name() {
                "[u8]" => format!("{name}<{policy}>"),
                t => format!("Typed{name}<{t},{policy}>"),
            }
        }
        _ => name.to_owned(),
    };
    let found = (tag.kind() >> 8) & 0xff;
    if found != current {
        s.push_str(&format!(" (layout v{found}, this build reads v{current})"));
    }
    s
}

// The payloads embed these `shmkit-sync` types byte for byte: a change of their size
// is a layout change of the objects holding them, so it must come with a bump of the
// versions in `kind` (and a row in docs/layout.md). These assertions make such a
// change fail to compile here until the versions are looked at.
#[cfg(not(loom))]
const _: () = {
    use std::mem::size_of;
    assert!(
        size_of::<shmkit_sync::RawMutex>() == 16,
        "bump SHARED_VALUE, SHARED_ARRAY"
    );
    assert!(
        size_of::<shmkit_sync::RawRwLock>() == 152,
        "bump SHARED_RW_VALUE"
    );
    assert!(size_of::<shmkit_sync::Semaphore>() == 144, "bump SEMAPHORE");
    assert!(size_of::<shmkit_sync::Event>() == 16, "bump EVENT");
    assert!(size_of::<shmkit_sync::Barrier>() == 272, "bump BARRIER");
    assert!(size_of::<shmkit_sync::Condvar>() == 8, "bump CONDVAR");
};

/// The tag of element type `T` in a container of `kind`.
///
/// `type_name` is stable for a given type and compiler; two programs built by very
/// different compiler versions could in principle spell a name differently, in which
/// case opening fails with `TypeMismatch` (safe) rather than succeeding wrongly.
pub fn tag_of<T>(kind: u32) -> TypeTag {
    TypeTag::new(
        kind,
        std::any::type_name::<T>(),
        std::mem::size_of::<T>() as u64,
        std::mem::align_of::<T>() as u64,
    )
}

/// A readable description of a tag for error messages.
pub(crate) fn describe(tag: &TypeTag) -> String {
    format!(
        "{} (size {}, align {}, kind {:#x})",
        tag.name(),
        tag.size(),
        tag.align(),
        tag.kind()
    )
}

#[cfg(test)]
mod tests {
    // What the functions' doc examples checked before they were folded into the one on
    // `kind`.
    use super::*;

    #[test]
    fn tags_tell_types_and_containers_apart_and_describe_themselves() {
        let tag = tag_of::<u64>(kind::QUEUE);
        assert_eq!((tag.name(), tag.size(), tag.align()), ("u64", 8, 8));
        assert_eq!(tag, crate::Queue::<u64>::type_tag());
        assert_ne!(tag, tag_of::<i64>(kind::QUEUE)); // same layout, another type
        assert_ne!(tag, tag_of::<u64>(kind::SHARED_VALUE)); // another container
        assert_eq!(describe_object(&tag), "Queue<u64>");
        #[cfg(not(loom))]
        assert_eq!(
            describe_object(&crate::Topic::<crate::topic::Block>::type_tag()),
            "Topic<Block>"
        );
        #[cfg(not(loom))]
        assert_eq!(
            describe_object(&crate::TypedTopic::<u32, crate::topic::Overwrite>::type_tag()),
            "TypedTopic<u32,Overwrite>"
        );
        let old = tag_of::<u64>(0x5459_0001); // a SharedValue of layout version 0
        assert_eq!(
            describe_object(&old),
            "SharedValue<u64> (layout v0, this build reads v1)"
        );
    }
}
