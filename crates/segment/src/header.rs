//! The 128-byte header at offset 0 of every segment shmkit creates, and the type tag
//! stored in it. `docs/layout.md` gives the same bytes as a table for Python and C.
//!
//! ```text
//! offset size field            notes
//!      0    8 magic            b"SHMKITSG" (u64 LE 0x4753_5449_4b4d_4853)
//!      8    4 version          LAYOUT_VERSION (2)
//!     12    4 state            bits 0..16: 0 = being created, 1 = READY, 2 = init failed;
//!                              bit 16: shared across pid namespaces (atomic)
//!     16    4 creator_pid      pid of the creating process (atomic; 0 = header not written yet)
//!     20    4 header_len       128
//!     24    8 total_size       header + payload bytes
//!     32    8 payload_offset   128
//!     40    8 payload_size     usable payload bytes
//!     48    4 tag_kind         TypeTag::kind
//!     52    4 tag_name_len     bytes used in tag_name (<= 40)
//!     56    8 tag_size         TypeTag::size
//!     64    8 tag_align        TypeTag::align
//!     72    8 tag_fingerprint  TypeTag::fingerprint (FNV-1a 64)
//!     80   40 tag_name         UTF-8, zero padded
//!    120    8 creator_pidns    inode of the creator's /proc/self/ns/pid (0 = unknown)
//! ```
//! An opener in another pid namespace than `creator_pidns` is refused unless it opts in
//! ([`SegmentOptions::allow_foreign_pid_namespace`](crate::SegmentOptions::allow_foreign_pid_namespace));
//! one that opts in sets the `state` flag, which tells every process that liveness
//! checks on objects in this segment cannot be trusted.
//! All integers are little-endian (the host order on every Linux target we build for).

use std::fmt;
use std::marker::PhantomData;
use std::ptr::{addr_of_mut, NonNull};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// The first 8 bytes of every shmkit segment.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMKITSG");
/// The header layout this build writes and reads. Version 2 added the "shared across
/// pid namespaces" flag (bit 16 of `state`); version 1 segments are refused.
pub const LAYOUT_VERSION: u32 = 2;
/// Header length; the payload starts here (128-byte aligned, since mappings are page aligned).
pub const HEADER_LEN: usize = 128;
/// Bytes of a type name kept in the header (the fingerprint covers the whole name).
pub const TAG_NAME_LEN: usize = 40;

/// `state` while the creator is still initialising.
pub(crate) const STATE_CREATING: u32 = 0;
/// `state` once the payload is initialised: published with Release.
pub(crate) const STATE_READY: u32 = 1;
/// `state` after the creator's `init` panicked (the name is removed as well).
pub(crate) const STATE_FAILED: u32 = 2;
/// The bits of `state` that hold the init state (CREATING, READY, FAILED).
pub(crate) const STATE_INIT_MASK: u32 = 0xFFFF;
/// Flag in `state`: a process in another pid namespace than the creator's opened the
/// segment (or the creator allowed that up front), so process ids in it cannot be
/// checked for liveness. Set once, never cleared.
pub(crate) const STATE_SHARED_PID_NAMESPACES: u32 = 1 << 16;

/// The in-memory header. Fields that are read while the creator may still be writing
/// are atomics; the rest are written once before `creator_pid` is published (Release)
/// and never again, so readers that Acquire a non-zero `creator_pid` may read them.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) magic: AtomicU64,
    pub(crate) version: u32,
    pub(crate) state: AtomicU32,
    pub(crate) creator_pid: AtomicU32,
    pub(crate) header_len: u32,
    pub(crate) total_size: u64,
    pub(crate) payload_offset: u64,
    pub(crate) payload_size: u64,
    pub(crate) tag_kind: u32,
    pub(crate) tag_name_len: u32,
    pub(crate) tag_size: u64,
    pub(crate) tag_align: u64,
    pub(crate) tag_fingerprint: u64,
    pub(crate) tag_name: [u8; TAG_NAME_LEN],
    pub(crate) creator_pidns: u64,
}

const _: () = assert!(std::mem::size_of::<Header>() == HEADER_LEN);
const _: () = assert!(std::mem::align_of::<Header>() == 8);
const _: () = assert!(std::mem::offset_of!(Header, state) == 12);
const _: () = assert!(std::mem::offset_of!(Header, creator_pid) == 16);
const _: () = assert!(std::mem::offset_of!(Header, tag_fingerprint) == 72);
const _: () = assert!(std::mem::offset_of!(Header, tag_name) == 80);
const _: () = assert!(std::mem::offset_of!(Header, creator_pidns) == 120);

/// A live header, read and written in place: the one place where a pointer to a
/// mapped header is dereferenced. Other processes may write the header at any time, so
/// no reference to a plain field is ever formed: the atomics are handed out by
/// reference, the plain fields as volatile copies.
///
/// Invariant: `ptr` points to at least [`HEADER_LEN`] readable and writable bytes,
/// 8-aligned, that stay mapped (or borrowed) for `'a`.
#[derive(Clone, Copy)]
pub(crate) struct HeaderRef<'a> {
    ptr: NonNull<Header>,
    _life: PhantomData<&'a Header>,
}

impl<'a> HeaderRef<'a> {
    /// The header at `ptr`.
    ///
    /// # Safety
    /// `ptr` points to at least [`HEADER_LEN`] readable and writable bytes, 8-aligned,
    /// that stay mapped for `'a`.
    pub(crate) unsafe fn new(ptr: *mut u8) -> Self {
        debug_assert!((ptr as usize).is_multiple_of(std::mem::align_of::<Header>()));
        HeaderRef {
            ptr: NonNull::new(ptr.cast()).expect("a mapping is never at address 0"),
            _life: PhantomData,
        }
    }

    /// A header in a buffer of this process (tests, fuzzing): 128 bytes, 8-aligned,
    /// borrowed for `'a`.
    pub(crate) fn from_buf(buf: &'a mut [u64; HEADER_LEN / 8]) -> Self {
        HeaderRef {
            ptr: NonNull::from(buf).cast(),
            _life: PhantomData,
        }
    }

    /// The atomic fields.
    fn atomics(self) -> (&'a AtomicU64, &'a AtomicU32, &'a AtomicU32) {
        let h = self.ptr.as_ptr();
        // SAFETY: `h` is a live, aligned header for `'a` (type invariant); references to
        // its atomic fields are fine while other processes write them, atomically.
        unsafe { (&(*h).magic, &(*h).state, &(*h).creator_pid) }
    }

    /// The magic word.
    pub(crate) fn magic(self) -> &'a AtomicU64 {
        self.atomics().0
    }

    /// The state word (init state and flags).
    pub(crate) fn state(self) -> &'a AtomicU32 {
        self.atomics().1
    }

    /// The creator's pid, published (Release) after the plain fields.
    pub(crate) fn creator_pid(self) -> &'a AtomicU32 {
        self.atomics().2
    }

    /// A volatile copy of the plain `T` at byte `offset` (a field's `offset_of!`).
    fn read_plain<T: Copy>(self, offset: usize) -> T {
        assert!(offset + std::mem::size_of::<T>() <= HEADER_LEN);
        assert!(offset.is_multiple_of(std::mem::align_of::<T>()) && std::mem::align_of::<T>() <= 8);
        let p = self
            .ptr
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(offset)
            .cast::<T>();
        // SAFETY: `p` lies inside the header's HEADER_LEN live bytes (type invariant and
        // the asserts) and is aligned for `T` (an 8-aligned base plus a multiple of
        // T's alignment); volatile, and a copy: the memory is shared.
        unsafe { p.read_volatile() }
    }

    /// The layout version (meaningful once `creator_pid` is Acquired non-zero).
    pub(crate) fn version(self) -> u32 {
        self.read_plain(std::mem::offset_of!(Header, version))
    }

    /// The creator's pid namespace (meaningful once `creator_pid` is Acquired non-zero).
    pub(crate) fn creator_pidns(self) -> u64 {
        self.read_plain(std::mem::offset_of!(Header, creator_pidns))
    }

    /// Writes every field but `state` (left at CREATING) and publishes `creator_pid`.
    ///
    /// # Safety
    /// The header's bytes are zeroed and no other process or thread reads or writes
    /// them until `creator_pid` is published here.
    pub(crate) unsafe fn write_creating(
        self,
        total_size: u64,
        payload_size: u64,
        tag: &TypeTag,
        pid: u32,
        pidns: u64,
    ) {
        let h = self.ptr.as_ptr();
        // SAFETY: `h` is valid for writes of a whole header (type invariant) and only we
        // access it (the caller's promise); plain fields are written before the Release
        // below.
        unsafe {
            addr_of_mut!((*h).version).write(LAYOUT_VERSION);
            addr_of_mut!((*h).header_len).write(HEADER_LEN as u32);
            addr_of_mut!((*h).total_size).write(total_size);
            addr_of_mut!((*h).payload_offset).write(HEADER_LEN as u64);
            addr_of_mut!((*h).payload_size).write(payload_size);
            addr_of_mut!((*h).tag_kind).write(tag.kind);
            addr_of_mut!((*h).tag_name_len).write(tag.name_len as u32);
            addr_of_mut!((*h).tag_size).write(tag.size);
            addr_of_mut!((*h).tag_align).write(tag.align);
            addr_of_mut!((*h).tag_fingerprint).write(tag.fingerprint);
            addr_of_mut!((*h).tag_name).write(tag.name);
            addr_of_mut!((*h).creator_pidns).write(pidns);
        }
        // Relaxed: the memory is fresh (zero already); READY comes later with Release.
        self.state().store(STATE_CREATING, Ordering::Relaxed);
        // Relaxed: readers only trust the other fields after the Acquire of a non-zero
        // creator_pid or READY; the magic alone is read to tell a foreign segment
        // (non-zero, wrong) from one not written yet (zero).
        self.magic().store(MAGIC, Ordering::Relaxed);
        // Release: pairs with the Acquire in `wait_ready`; publishes the fields above.
        self.creator_pid().store(pid, Ordering::Release);
    }

    /// Sets the "shared across pid namespaces" flag, then a SeqCst fence: every lock or
    /// role this process takes afterwards is ordered after the flag, so a waiter that
    /// sees such an owner and then runs [`HeaderRef::shared_pid_namespaces`] sees the
    /// flag.
    pub(crate) fn mark_shared_pid_namespaces(self) {
        // Relaxed RMW + SeqCst fence: the fence pairs with the one in
        // `shared_pid_namespaces` (fence-to-fence: an owner word written after this
        // fence and read before that one makes this flag visible after it).
        self.state()
            .fetch_or(STATE_SHARED_PID_NAMESPACES, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Whether the "shared across pid namespaces" flag is set, read after a SeqCst
    /// fence (see [`HeaderRef::mark_shared_pid_namespaces`]): call it after reading the
    /// owner word whose liveness is in question.
    pub(crate) fn shared_pid_namespaces(self) -> bool {
        // SeqCst fence: pairs with the fence in `mark_shared_pid_namespaces`.
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence above.
        self.state().load(Ordering::Relaxed) & STATE_SHARED_PID_NAMESPACES != 0
    }

    /// A copy of the header's 128 bytes, read as 16 volatile `u64` words: another
    /// process may (wrongly) write them at any time, so we never form references to
    /// them, and everything an opener decides is decided on this one copy (a peer that
    /// changes the header after the copy cannot make a checked value unchecked).
    pub(crate) fn read_bytes(self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
            let w: u64 = self.read_plain(i * 8);
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Plain copy of the fields, decoded from [`HeaderRef::read_bytes`]: meaningful once
    /// the caller has Acquired a non-zero `creator_pid` or READY.
    pub(crate) fn snapshot(self) -> HeaderInfo {
        Header::from_bytes(&self.read_bytes())
    }
}

impl Header {
    /// Decodes a header from bytes read with `pread` (no mapping), e.g. for `list()`.
    pub(crate) fn from_bytes(b: &[u8; HEADER_LEN]) -> HeaderInfo {
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let mut name = [0u8; TAG_NAME_LEN];
        name.copy_from_slice(&b[80..80 + TAG_NAME_LEN]);
        let name_len = (u32_at(52) as usize).min(TAG_NAME_LEN);
        HeaderInfo {
            magic: u64_at(0),
            version: u32_at(8),
            ready: u32_at(12) & STATE_INIT_MASK == STATE_READY,
            shared_pid_namespaces: u32_at(12) & STATE_SHARED_PID_NAMESPACES != 0,
            creator_pid: u32_at(16),
            creator_pidns: u64_at(120),
            header_len: u32_at(20),
            total_size: u64_at(24),
            payload_offset: u64_at(32),
            payload_size: u64_at(40),
            type_tag: TypeTag {
                kind: u32_at(48),
                size: u64_at(56),
                align: u64_at(64),
                fingerprint: u64_at(72),
                name,
                name_len: valid_utf8_prefix(&name[..name_len]),
            },
        }
    }
}

fn valid_utf8_prefix(b: &[u8]) -> usize {
    match std::str::from_utf8(b) {
        Ok(_) => b.len(),
        Err(e) => e.valid_up_to(),
    }
}

/// A plain copy of a segment's header fields (see `docs/layout.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeaderInfo {
    /// The magic word ([`MAGIC`] for shmkit segments).
    pub magic: u64,
    /// Layout version ([`LAYOUT_VERSION`]).
    pub version: u32,
    /// Whether the creator has published READY.
    pub ready: bool,
    /// Pid of the creating process.
    pub creator_pid: u32,
    /// Inode of the creator's pid namespace (`/proc/self/ns/pid`); 0 if unknown. A pid
    /// only means something in that namespace.
    pub creator_pidns: u64,
    /// Whether a process in another pid namespace than the creator's opened the segment
    /// (with [`allow_foreign_pid_namespace`](crate::SegmentOptions::allow_foreign_pid_namespace)):
    /// liveness checks on objects in it then never declare an owner dead.
    pub shared_pid_namespaces: bool,
    /// Header length in bytes (128).
    pub header_len: u32,
    /// Header plus payload, bytes.
    pub total_size: u64,
    /// Offset of the payload (128).
    pub payload_offset: u64,
    /// Payload bytes.
    pub payload_size: u64,
    /// What type lives in the payload.
    pub type_tag: TypeTag,
}

/// What type lives in a segment's payload; stored in the header and compared on open.
///
/// Two tags match when kind, size, align and fingerprint are equal. The fingerprint is
/// FNV-1a 64 over `kind`, `size`, `align` (little-endian) and the full name, so it is
/// stable across builds, compilers and machines (unlike `TypeId`). Only the first
/// [`TAG_NAME_LEN`] bytes of the name are kept for display.
///
/// # Examples
/// ```
/// use shmkit_segment::TypeTag;
///
/// #[repr(C)]
/// struct Point { x: f32, y: f32 }
/// const POINT: TypeTag = TypeTag::new(1, "myapp::Point", 8, 4);
/// assert_eq!(POINT.size(), size_of::<Point>() as u64);
/// assert_eq!((POINT.kind(), POINT.name(), POINT.align()), (1, "myapp::Point", 4));
/// // Equal inputs give equal tags in every build; any difference tells them apart.
/// assert_eq!(POINT, TypeTag::new(1, "myapp::Point", 8, 4));
/// assert_ne!(POINT, TypeTag::new(1, "myapp::Point", 8, 8));
/// assert_ne!(POINT.fingerprint(), TypeTag::BYTES.fingerprint());
/// assert_eq!(TypeTag::default(), TypeTag::BYTES);
/// ```
#[derive(Clone, Copy)]
pub struct TypeTag {
    kind: u32,
    size: u64,
    align: u64,
    fingerprint: u64,
    name: [u8; TAG_NAME_LEN],
    name_len: usize,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

const fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

impl TypeTag {
    /// Untyped bytes: kind 0, name `"bytes"`, size 1, align 1. The default.
    pub const BYTES: TypeTag = TypeTag::new(0, "bytes", 1, 1);

    /// A tag for a type: `kind` is a namespace chosen by the caller (e.g. which shmkit
    /// container), `name` a stable type name, `size`/`align` its layout.
    pub const fn new(kind: u32, name: &str, size: u64, align: u64) -> TypeTag {
        let bytes = name.as_bytes();
        let mut h = fnv1a(FNV_OFFSET, &kind.to_le_bytes());
        h = fnv1a(h, &size.to_le_bytes());
        h = fnv1a(h, &align.to_le_bytes());
        h = fnv1a(h, bytes);
        // Keep the longest prefix of at most TAG_NAME_LEN bytes that ends on a char
        // boundary, so `name()` is always valid UTF-8.
        let mut keep = if bytes.len() < TAG_NAME_LEN {
            bytes.len()
        } else {
            TAG_NAME_LEN
        };
        while keep > 0 && keep < bytes.len() && (bytes[keep] & 0xC0) == 0x80 {
            keep -= 1;
        }
        let mut stored = [0u8; TAG_NAME_LEN];
        let mut i = 0;
        while i < keep {
            stored[i] = bytes[i];
            i += 1;
        }
        TypeTag {
            kind,
            size,
            align,
            fingerprint: h,
            name: stored,
            name_len: keep,
        }
    }

    /// The caller-chosen kind.
    pub fn kind(&self) -> u32 {
        self.kind
    }

    /// The type name (at most the first [`TAG_NAME_LEN`] bytes).
    pub fn name(&self) -> &str {
        // The constructors only keep whole UTF-8 characters.
        std::str::from_utf8(&self.name[..self.name_len]).unwrap_or("")
    }

    /// The type's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The type's alignment in bytes.
    pub fn align(&self) -> u64 {
        self.align
    }

    /// FNV-1a 64 of kind, size, align and the full name.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

impl PartialEq for TypeTag {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.size == other.size
            && self.align == other.align
            && self.fingerprint == other.fingerprint
    }
}

impl Eq for TypeTag {}

impl fmt::Debug for TypeTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypeTag")
            .field("kind", &self.kind)
            .field("name", &self.name())
            .field("size", &self.size)
            .field("align", &self.align)
            .field("fingerprint", &format_args!("{:#018x}", self.fingerprint))
            .finish()
    }
}

impl fmt::Display for TypeTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' (kind {}, size {}, align {}, fingerprint {:#018x})",
            self.name(),
            self.kind,
            self.size,
            self.align,
            self.fingerprint
        )
    }
}

impl Default for TypeTag {
    fn default() -> Self {
        TypeTag::BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_spell_shmkitsg() {
        assert_eq!(&MAGIC.to_le_bytes(), b"SHMKITSG");
    }

    #[test]
    fn fingerprint_is_fnv1a_and_stable() {
        // FNV-1a 64 of the empty input is the offset basis.
        assert_eq!(fnv1a(FNV_OFFSET, b""), FNV_OFFSET);
        // Known vector: FNV-1a 64("a") = 0xaf63dc4c8601ec8c.
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        let a = TypeTag::new(1, "u64", 8, 8);
        assert_eq!(a, TypeTag::new(1, "u64", 8, 8));
        assert_ne!(a, TypeTag::new(1, "f64", 8, 8));
        assert_ne!(a, TypeTag::new(2, "u64", 8, 8));
        assert_ne!(a, TypeTag::new(1, "u64", 8, 4));
        assert_ne!(TypeTag::BYTES, a);
        // Pinned: computed independently in Python from the recipe in docs/layout.md.
        assert_eq!(TypeTag::BYTES.fingerprint(), 0x913f_4189_ea6b_8854);
    }

    #[test]
    fn long_names_are_truncated_on_char_boundary_but_hashed_whole() {
        let long = "é".repeat(30); // 60 bytes
        let t = TypeTag::new(3, &long, 1, 1);
        assert!(t.name().len() <= TAG_NAME_LEN);
        assert_eq!(t.name(), "é".repeat(20));
        let other = TypeTag::new(3, &format!("{long}x"), 1, 1);
        assert_eq!(t.name(), other.name());
        assert_ne!(t, other);
    }

    #[test]
    fn from_bytes_matches_written_header() {
        let mut buf = [0u64; HEADER_LEN / 8];
        let h = HeaderRef::from_buf(&mut buf);
        let tag = TypeTag::new(7, "demo::Thing", 24, 8);
        // SAFETY: `buf` is zeroed and only this test touches it.
        unsafe { h.write_creating(4096, 4096 - 128, &tag, 42, 7) };
        let live = h.snapshot();
        let bytes: [u8; HEADER_LEN] = bytemuck::cast(buf);
        let decoded = Header::from_bytes(&bytes);
        assert_eq!(live, decoded);
        assert_eq!(decoded.magic, MAGIC);
        assert_eq!(decoded.creator_pid, 42);
        assert_eq!(decoded.creator_pidns, 7);
        assert_eq!(&bytes[120..128], &7u64.to_le_bytes());
        assert!(!decoded.ready);
        assert_eq!(decoded.type_tag, tag);
        assert_eq!(decoded.type_tag.name(), "demo::Thing");
        assert_eq!(&bytes[0..8], b"SHMKITSG");
        assert_eq!(&bytes[80..91], b"demo::Thing");
    }
}
