//! [`RawValue<T>`] (= `multiprocessing.Value(lock=False)`): one `T` in a segment,
//! without a lock; and [`LockResult`], what locking a [`SharedValue`](crate::SharedValue)
//! or [`SharedArray`](crate::SharedArray) returns.

use std::ptr::NonNull;

use bytemuck::Pod;
use shmkit_segment::{Segment, TypeTag};
use shmkit_sync::{LockError, MutexGuard};

use crate::error::{CreateError, OpenError};
use crate::family::family_forms;
use crate::types::{kind, tag_of};

/// The result of locking a shared value or array: the guard, or why there is none (or
/// why it comes with a warning: `OwnerDied` and `Poisoned` carry it).
pub type LockResult<'a, T> = Result<MutexGuard<'a, T>, LockError<MutexGuard<'a, T>>>;

/// An opened payload must hold `need` bytes; the header said so, but it comes from
/// shared memory, so check before building a reference into it.
pub(crate) fn check_fits(seg: &Segment, need: usize) -> Result<(), OpenError> {
    if seg.payload_len() >= need {
        Ok(())
    } else {
        Err(OpenError::Corrupt {
            name: seg.name().unwrap_or("").to_owned(),
            reason: format!(
                "payload of {} bytes is smaller than the {need} bytes its type needs",
                seg.payload_len()
            ),
        })
    }
}

/// One `T` in shared memory without a lock (= `multiprocessing.Value(lock=False)` /
/// `RawValue`): each [`get`](Self::get) and [`set`](Self::set) is a copy made of
/// atomic loads or stores, never a plain access to memory other processes write.
/// Made and opened as every object is ([the family](crate::family); `init` is the
/// initial value).
///
/// # What a reader sees
/// - A `T` of 1, 2, 4 or 8 bytes (`u8`..`u64`, `f64`, `[u16; 2]`...) is one atomic
///   word (the payload is 128-byte aligned, so it is always aligned to its size): a
///   `get` returns exactly what one `set` wrote, never a mix.
/// - A larger (or odd-sized) `T` is copied in pieces: 8-byte words, then a 4-, 2- and
///   1-byte tail, each piece atomic. While another process `set`s it, a `get` **can
///   tear**: it may return some pieces of one write and some of another (each piece
///   whole). Use [`SharedValue`](crate::SharedValue) (locked) when readers must see whole updates.
/// - Ordering: a `set` is Release and a `get` Acquire (fences around the pieces): if a
///   `get` returns a piece some `set` wrote, whatever the writer did before that `set`
///   is visible after the `get`. So a `RawValue<u32>` works as a "data is ready" flag.
///   Nothing orders the pieces of one value among themselves (that is the tearing).
///
/// Every process uses the same pieces for the same `T` (the type tag pins `T`, and the
/// payload address is 128-aligned everywhere), so the atomics never overlap with
/// different sizes. Access the value through [`as_ptr`](Self::as_ptr) with atomics
/// of the same width too.
///
/// # Examples
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use shmkit_typed::RawValue;
///
/// let name = format!("shmkit-doc-raw-value-{}", std::process::id());
/// let flag = RawValue::<u64>::create(&name, 0)?;
/// let seen = RawValue::<u64>::open(&name)?; // as another process would
/// flag.set(5); // one atomic store: no lock, no syscall
/// assert_eq!(seen.get(), 5);
/// // For read-modify-write without a lock, use an atomic through the pointer.
/// // SAFETY: the payload is 128-byte aligned and shared only as a `u64`, accessed
/// // atomically by every user (`get`/`set` included).
/// let counter = unsafe { AtomicU64::from_ptr(seen.as_ptr()) };
/// counter.fetch_add(1, Ordering::Relaxed);
/// assert_eq!(flag.get(), 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RawValue<T: Pod> {
    seg: Segment,
    ptr: NonNull<T>,
}

// SAFETY: RawValue hands out copies only (atomic loads/stores of a Pod `T`, valid for
// any bytes), never references into the shared value; concurrent `get`/`set` from
// several threads are atomic accesses, not data races.
unsafe impl<T: Pod + Send> Send for RawValue<T> {}
// SAFETY: as above.
unsafe impl<T: Pod + Send> Sync for RawValue<T> {}

impl<T: Pod> crate::family::sealed::Layout for RawValue<T> {
    type Init = T;
    const OBJECT: &'static str = "RawValue";

    fn tag() -> TypeTag {
        tag_of::<T>(kind::RAW_VALUE)
    }

    fn payload_size(_init: &T) -> Result<usize, CreateError> {
        let () = Self::FITS;
        Ok(std::mem::size_of::<T>().max(1))
    }

    unsafe fn init_payload(ptr: *mut u8, len: usize, init: T) {
        debug_assert!(len >= std::mem::size_of::<T>());
        // SAFETY: the trait's contract: a fresh, private payload of at least
        // size_of::<T>() bytes, 128-byte aligned (FITS).
        unsafe { ptr.cast::<T>().write(init) }
    }

    fn from_segment(seg: Segment) -> Result<Self, OpenError> {
        check_fits(&seg, std::mem::size_of::<T>())?;
        let ptr = NonNull::new(seg.payload_ptr().cast::<T>()).expect("a mapped payload");
        Ok(RawValue { seg, ptr })
    }
}

impl<T: Pod> RawValue<T> {
    const FITS: () = assert!(
        std::mem::align_of::<T>() <= 128,
        "a raw value's type must have an alignment of at most 128 (the payload's)"
    );

    family_forms!(init: T);

    /// A copy of the value: one atomic load for a 1/2/4/8-byte `T`, else a load per
    /// piece, which may be torn while another process `set`s it (see the type's docs).
    pub fn get(&self) -> T {
        let mut out = T::zeroed();
        // SAFETY: `ptr` points to size_of::<T>() bytes inside the live mapping (checked
        // at open), 128-byte aligned; every process accesses them only atomically with
        // the same pieces (see `pieces`).
        unsafe {
            atomic_load(
                self.ptr.as_ptr().cast::<u8>(),
                bytemuck::bytes_of_mut(&mut out),
            )
        };
        out
    }

    /// Overwrites the value: one atomic store for a 1/2/4/8-byte `T`, else a store
    /// per piece (readers may see it torn; see the type's docs).
    pub fn set(&self, value: T) {
        // SAFETY: as in `get`; any bytes are a valid `T` (Pod).
        unsafe { atomic_store(self.ptr.as_ptr().cast::<u8>(), bytemuck::bytes_of(&value)) }
    }

    /// The raw pointer to the value, for atomics or `ctypes`-style access.
    pub fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// The segment holding the value.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }
}

/// The pieces a value at `addr` of `len` bytes is copied in: the widest of 8, 4, 2, 1
/// bytes that `addr` is aligned to and that fits in what is left. For the same address
/// alignment and length every process gets the same pieces.
fn pieces(addr: usize, len: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off == len {
            return None;
        }
        let left = len - off;
        let at = addr + off;
        let width = [8, 4, 2, 1]
            .into_iter()
            .find(|&w| w <= left && at.is_multiple_of(w))
            .expect("width 1 always fits");
        let piece = (off, width);
        off += width;
        Some(piece)
    })
}

/// Copies `dst.len()` bytes from shared memory at `src` into `dst`, piece by piece
/// (see [`pieces`]), each piece one Relaxed atomic load, then an Acquire fence.
///
/// # Safety
/// `src..src + dst.len()` is readable for the whole call, and other processes and
/// threads access it only atomically, with the same pieces.
unsafe fn atomic_load(src: *const u8, dst: &mut [u8]) {
    use std::sync::atomic::{fence, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
    for (off, width) in pieces(src as usize, dst.len()) {
        // SAFETY: `src + off` is inside the readable range (pieces stay within
        // `dst.len()`) and aligned to `width` (pieces chose it so); every access to
        // these bytes is atomic with this width, per the caller's contract. Relaxed:
        // the ordering comes from the fence after the loop.
        unsafe {
            let p = src.add(off).cast_mut();
            let out = &mut dst[off..off + width];
            match width {
                8 => out.copy_from_slice(
                    &AtomicU64::from_ptr(p.cast())
                        .load(Ordering::Relaxed)
                        .to_ne_bytes(),
                ),
                4 => out.copy_from_slice(
                    &AtomicU32::from_ptr(p.cast())
                        .load(Ordering::Relaxed)
                        .to_ne_bytes(),
                ),
                2 => out.copy_from_slice(
                    &AtomicU16::from_ptr(p.cast())
                        .load(Ordering::Relaxed)
                        .to_ne_bytes(),
                ),
                _ => out[0] = AtomicU8::from_ptr(p).load(Ordering::Relaxed),
            }
        }
    }
    // Acquire: pairs with the Release fence in `atomic_store`. If any piece came from a
    // `set`, whatever its writer did before that `set` is visible from here on.
    fence(Ordering::Acquire);
}

/// Copies `src` into shared memory at `dst`: a Release fence, then each piece (see
/// [`pieces`]) one Relaxed atomic store.
///
/// # Safety
/// `dst..dst + src.len()` is writable for the whole call, and other processes and
/// threads access it only atomically, with the same pieces.
unsafe fn atomic_store(dst: *mut u8, src: &[u8]) {
    use std::sync::atomic::{fence, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
    // Release: pairs with the Acquire fence in `atomic_load` (see there).
    fence(Ordering::Release);
    for (off, width) in pieces(dst as usize, src.len()) {
        let bytes = &src[off..off + width];
        // SAFETY: as in `atomic_load`: in range, aligned to `width`, only ever accessed
        // atomically with this width. Relaxed: ordered by the fence above.
        unsafe {
            let p = dst.add(off);
            match width {
                8 => AtomicU64::from_ptr(p.cast()).store(
                    u64::from_ne_bytes(bytes.try_into().expect("8 bytes")),
                    Ordering::Relaxed,
                ),
                4 => AtomicU32::from_ptr(p.cast()).store(
                    u32::from_ne_bytes(bytes.try_into().expect("4 bytes")),
                    Ordering::Relaxed,
                ),
                2 => AtomicU16::from_ptr(p.cast()).store(
                    u16::from_ne_bytes(bytes.try_into().expect("2 bytes")),
                    Ordering::Relaxed,
                ),
                _ => AtomicU8::from_ptr(p).store(bytes[0], Ordering::Relaxed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn pieces_are_the_widest_aligned_words_that_fit() {
        let p = |addr, len| pieces(addr, len).collect::<Vec<_>>();
        assert_eq!(p(128, 8), [(0, 8)]);
        assert_eq!(p(128, 4), [(0, 4)]);
        assert_eq!(p(128, 2), [(0, 2)]);
        assert_eq!(p(128, 1), [(0, 1)]);
        assert_eq!(p(128, 0), []);
        assert_eq!(p(128, 24), [(0, 8), (8, 8), (16, 8)]);
        assert_eq!(p(128, 13), [(0, 8), (8, 4), (12, 1)]);
        assert_eq!(p(128, 7), [(0, 4), (4, 2), (6, 1)]);
        // An unaligned start (not used by RawValue, whose payload is 128-aligned).
        assert_eq!(p(129, 9), [(0, 1), (1, 2), (3, 4), (7, 2)]);
    }
}
