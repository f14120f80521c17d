//! [`Latest<T>`]: a latest-value cell in shared memory. One writer publishes values of
//! `T`; any number of readers, in any process, read the newest complete one without a
//! lock, never torn, never blocking the writer and never blocked by it, not even by a
//! writer killed in the middle of a write. Readers may wait for a value newer than the
//! one they saw.
//!
//! For a config that every worker must see, a sensor's last reading, a price: where
//! only the newest value matters and a slow reader may skip values. (Every value to
//! every reader is a broadcast topic's job; one value under a lock that readers and
//! writers take in turn is [`SharedValue`](crate::SharedValue)'s.)
//!
//! # Example
//! ```
//! use shmkit_typed::Latest;
//!
//! let name = format!("shmkit-doc-latest-{}", std::process::id());
//! let mut cell = Latest::<[f64; 2]>::create(&name, [0.0, 0.0])?; // value 1
//! let reader = Latest::<[f64; 2]>::open(&name)?; // in another process, usually
//! assert_eq!(reader.get()?, [0.0, 0.0]);
//! let seen = reader.sequence();
//! cell.publish([1.5, -2.0])?; // the writer never waits for readers
//! // A reader that saw value `seen` waits for a newer one (here it is there already).
//! let (seq, value) = reader.wait_newer(seen)?;
//! assert_eq!((seq, value), (seen + 1, [1.5, -2.0]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Protocol
//! The cell holds [`LATEST_BUFFERS`] (4) buffers and `latest`, the sequence number of
//! the newest complete value (the value made at create is 1). Value `s` lives in buffer
//! `s % 4`, each buffer a stamp word followed by the value as 64-bit words (a seqlock
//! per buffer):
//!
//! - The writer of value `s` stores the buffer's stamp `2s + 1` (odd: being written),
//!   a Release fence, the value's words (Relaxed), then the stamp `2s` (Release), then
//!   `latest = s` (Release), then wakes readers that sleep (one futex wake for all,
//!   and only if one sleeps).
//! - A reader loads `latest` (Acquire), then the stamp of buffer `latest % 4`
//!   (Acquire), copies the words (Relaxed atomic loads: never a plain read of memory the
//!   writer may be changing), an Acquire fence, and the stamp again. It keeps the copy
//!   only if both stamps are `2 * latest`; else the writer has moved on at least three
//!   values since and is rewriting that buffer, and the reader starts again from the
//!   new `latest`. (The odd stamp is stored with Release, so a reader that Acquires it
//!   also sees the newer `latest`.) Every retry follows the writer's progress, so a read is lock-free,
//!   and with four buffers a reader is only sent round again if the writer publishes
//!   three values while it copies one.
//! - A writer killed in the middle of value `s + 1` leaves buffer `(s + 1) % 4` odd and
//!   `latest = s`: readers keep reading value `s`, complete. A new writer takes the role
//!   over (the dead writer's identity is checked as the Ring's roles are, see
//!   `crate::peer`) and continues with `s + 1`.
//! - A stamp that can only come from corruption (Acquired, not value `latest`'s, and
//!   `latest` unchanged when loaded again) is [`LatestError::Corrupt`], never a loop.
//!
//! # Peers that leave
//! The first [`Latest::publish`] through a handle takes the writer role: one live
//! writer at a time ([`LatestError::RoleTaken`] for a second). A reader waiting in
//! [`Latest::wait_newer`] learns that the writer left ([`LatestError::WriterLeft`], once
//! its handle dropped) or died ([`LatestError::PeerDied`]) instead of waiting for ever;
//! a writer that never attached is waited for. The latest value stays readable in both
//! cases. Readers hold no role: they may come and go, or be killed, without any effect
//! on the writer or on each other.
//!
//! # Layout
//! See `docs/layout.md`: three 128-byte lines (metadata with the writer's role slot,
//! `latest`, the readers' parker), then four buffers of
//! `round_up(8 + round_up(size_of::<T>(), 8), 128)` bytes each. Version 1.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use shmkit_sys::owner;
use shmkit_sys::parker::Parker;

use crate::peer::{in_segment, HolderWatch, PeerSlot, PeerWait, PeerWaitOn};
use crate::shim::{fence, AtomicU32, AtomicU64, Deadline, Ordering};

#[cfg(not(loom))]
#[path = "latest_async.rs"]
mod async_impl;
#[cfg(not(loom))]
pub use async_impl::WaitNewerAsync;

/// Magic number at offset 0 of the payload ("SLST" little-endian).
pub const LATEST_MAGIC: u32 = u32::from_le_bytes(*b"SLST");
/// Layout version of the payload (also in the segment's type tag).
/// Version 2 wakes each sleeper once however many values are published before it runs
/// ([`Parker::wake_all_once`](shmkit_sys::parker::Parker::wake_all_once)); its
/// sleepers arm, which version 1 peers do not.
pub const LATEST_VERSION: u32 = 2;
/// Bytes of the header before the buffers.
pub const LATEST_HEADER_SIZE: usize = 384;
/// Buffers the values rotate through.
pub const LATEST_BUFFERS: u32 = 4;
/// Largest `T` a cell holds (1 MiB): a value is copied word by word on every read.
pub const MAX_LATEST_VALUE: usize = 1 << 20;

/// Line 0: written at create and on writer-role changes.
#[repr(C, align(128))]
struct MetaLine {
    /// [`LATEST_MAGIC`], stored last at create with Release.
    magic: AtomicU32,
    /// [`LATEST_VERSION`].
    version: AtomicU32,
    /// `size_of::<T>()`.
    value_size: AtomicU32,
    /// [`LATEST_BUFFERS`].
    buffers: AtomicU32,
    /// Bytes from one buffer to the next (a multiple of 128).
    stride: AtomicU32,
    _reserved: AtomicU32,
    /// The writer's role (see `crate::peer`); its count is the values it published.
    writer: PeerSlot,
}

/// Line 1: written by the writer once per value.
#[repr(C, align(128))]
struct SeqLine {
    /// Sequence number of the newest complete value (1 after create).
    latest: AtomicU64,
}

/// Line 2: written only on the sleep path.
#[repr(C, align(128))]
struct WaitLine {
    /// Where readers sleep for a newer value; the writer wakes them all.
    newer: Parker,
}

#[repr(C)]
struct LatestHeader {
    meta: MetaLine,
    seq: SeqLine,
    wait: WaitLine,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<LatestHeader>() == LATEST_HEADER_SIZE);
#[cfg(not(loom))]
const _: () = assert!(std::mem::align_of::<LatestHeader>() == 128);

/// What a [`Latest`] operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LatestError {
    /// Another live process holds the writer role.
    #[error("another live process (pid {pid}) is this cell's writer: one writer at a time")]
    RoleTaken {
        /// The writer's pid.
        pid: u32,
    },
    /// No newer value came before the deadline.
    #[error("no newer value was published before the deadline")]
    Timeout,
    /// The writer left (its handle dropped): no newer value comes until a new writer
    /// attaches. The latest value stays readable.
    #[error("the writer left: no newer value comes until another writer attaches")]
    WriterLeft,
    /// The writer process died: no newer value comes until a new writer takes over.
    /// The latest value stays readable and complete.
    #[error("the writer (pid {pid}) died: no newer value comes until another writer takes over")]
    PeerDied {
        /// The dead writer's pid.
        pid: u32,
    },
    /// The shared state is inconsistent (corrupted or hostile memory).
    #[error("the cell's shared state is corrupt ({what}): recreate it")]
    Corrupt {
        /// What was found wrong.
        what: &'static str,
    },
    /// Sleeping until a newer value failed in the kernel (`futex(2)`).
    #[error("sleeping until a newer value failed in the kernel (futex)")]
    Os(#[source] shmkit_sync::OsError),
}

/// What one copy attempt of [`Latest::read`] found.
enum Copied<T> {
    /// The value, whole.
    Whole(T),
    /// The buffer did not hold the value asked for when the copy began.
    Stale,
    /// It did, but the writer began rewriting it during the copy.
    Overwritten,
}

#[allow(dead_code)] // the variants only hold their memory alive
enum Backing {
    #[cfg(not(loom))]
    Segment(shmkit_segment::Segment),
    #[cfg(loom)]
    Loom(std::sync::Arc<(LatestHeader, Vec<AtomicU64>)>),
}

/// A handle to a latest-value cell of `T` in shared memory: see the
/// [module docs](self). `Send + Sync` for reading; publishing takes `&mut self`, as
/// only one writer may write.
pub struct Latest<T: bytemuck::Pod> {
    hdr: NonNull<LatestHeader>,
    /// The buffers, as 64-bit words (stamp, then the value's words, per buffer).
    words: NonNull<AtomicU64>,
    /// Pid under which this handle holds the writer role (0: not held).
    writer_pid: u32,
    /// Writer: values published through this handle's role (for the role slot).
    published: u64,
    /// The readers' judge of the writer, kept across waits so that a reader that
    /// sleeps for every value judges its writer once, not on each sleep (see
    /// `HolderWatch`). Behind a mutex because `&self` may be shared between threads: a
    /// wait that finds it taken judges with its own. Declared before `_backing`, so it
    /// is dropped first (the contract of `PeerWaitOn::wait`).
    watch: std::sync::Mutex<HolderWatch>,
    _backing: Backing,
    _t: PhantomData<T>,
}

// SAFETY: the handle only points into shared memory that every process and thread
// reaches through atomics; `publish` (the only writer) takes `&mut self`.
unsafe impl<T: bytemuck::Pod> Send for Latest<T> {}
// SAFETY: as above: the `&self` methods only load atomics and sleep on the parker.
unsafe impl<T: bytemuck::Pod> Sync for Latest<T> {}

impl<T: bytemuck::Pod> std::fmt::Debug for Latest<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Latest")
            .field("sequence", &self.sequence())
            .field("writer", &(self.writer_pid != 0))
            .finish_non_exhaustive()
    }
}

/// Words of a value of `size` bytes.
const fn value_words(size: usize) -> usize {
    size.div_ceil(8)
}

/// Stores `value` into `words` as little-endian 64-bit words (the last one zero-padded),
/// Relaxed: the caller publishes them (a Release stamp store, or the magic at create).
fn store_words<T: bytemuck::Pod>(words: &[AtomicU64], value: &T) {
    for (chunk, w) in bytemuck::bytes_of(value).chunks(8).zip(words) {
        let mut bytes = [0u8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        w.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
    }
}

/// Bytes from one buffer to the next for values of `size` bytes.
const fn stride_bytes(size: usize) -> usize {
    (8 + value_words(size) * 8).next_multiple_of(128)
}

impl<T: bytemuck::Pod> Latest<T> {
    /// Payload bytes of a cell of `T`.
    pub fn region_size() -> usize {
        LATEST_HEADER_SIZE + LATEST_BUFFERS as usize * stride_bytes(std::mem::size_of::<T>())
    }

    /// The type tag of a `Latest<T>` in segment headers.
    #[cfg(not(loom))]
    pub fn type_tag() -> shmkit_segment::TypeTag {
        crate::types::tag_of::<T>(crate::types::kind::LATEST)
    }

    #[cfg(not(loom))]
    crate::family::family_forms!(initial: T);

    /// The segment behind this cell.
    #[cfg(not(loom))]
    pub fn segment(&self) -> &shmkit_segment::Segment {
        match &self._backing {
            Backing::Segment(s) => s,
        }
    }

    fn hdr(&self) -> &LatestHeader {
        // SAFETY: `hdr` stays valid while the handle lives (it keeps the mapping).
        unsafe { self.hdr.as_ref() }
    }

    /// Words from one buffer to the next (a constant of `T`, checked against the
    /// segment's `stride` at open).
    const STRIDE: usize = stride_bytes(std::mem::size_of::<T>()) / 8;
    /// Words of a buffer in use: the stamp, then the value's words.
    const USED: usize = 1 + value_words(std::mem::size_of::<T>());

    /// Buffer `b` as words: the stamp, then the value's words. Both lengths are
    /// constants of `T`, so a copy in or out is a fixed run of word moves (no loop
    /// bound read from the handle: this is the whole of a read's cost).
    #[inline]
    fn buffer(&self, b: usize) -> &[AtomicU64] {
        assert!(b < LATEST_BUFFERS as usize);
        // SAFETY: `b < LATEST_BUFFERS`, `USED <= STRIDE`, and the handle's mapping
        // holds `LATEST_BUFFERS * STRIDE` words at `words` (checked when it was made);
        // the words are only accessed atomically, by every process.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().add(b * Self::STRIDE), Self::USED) }
    }

    /// The sequence number of the newest complete value (1: the value made at create).
    pub fn sequence(&self) -> u64 {
        // Acquire: pairs with the writer's Release store of `latest`.
        self.hdr().seq.latest.load(Ordering::Acquire)
    }

    /// The newest complete value.
    ///
    /// # Errors
    /// [`LatestError::Corrupt`] if the shared state is inconsistent.
    #[inline]
    pub fn get(&self) -> Result<T, LatestError> {
        self.read().map(|(_, v)| v)
    }

    /// The newest complete value with its sequence number.
    ///
    /// # Errors
    /// As [`Latest::get`].
    #[inline]
    pub fn read(&self) -> Result<(u64, T), LatestError> {
        let mut s = self.sequence();
        loop {
            if s == 0 {
                return Err(LatestError::Corrupt {
                    what: "no value was ever published",
                });
            }
            match self.copy(s) {
                Copied::Whole(v) => return Ok((s, v)),
                // The writer began rewriting the buffer during the copy: value `s` is
                // no longer the newest. Load again (the next copy's Acquire of the
                // stamp then sees the rewrite, at the latest).
                Copied::Overwritten => s = self.sequence(),
                Copied::Stale => {
                    let now = self.sequence();
                    if now == s {
                        // The stamp we Acquired is not value `s`'s: a writer's newer
                        // stamp (Release) would have shown us a newer `latest`, and an
                        // older one cannot follow our Acquire of `latest = s` (see the
                        // module docs). Only corruption does that.
                        return Err(LatestError::Corrupt {
                            what: "the newest value's buffer does not hold it",
                        });
                    }
                    s = now;
                }
            }
        }
    }

    /// Copies value `s` out of its buffer.
    #[inline]
    fn copy(&self, s: u64) -> Copied<T> {
        let b = (s % u64::from(LATEST_BUFFERS)) as usize;
        let want = s.wrapping_mul(2);
        let buf = self.buffer(b);
        // Acquire: pairs with the writer's Release stores of the stamp (even: the
        // words loaded below are at least that value's; odd: the `latest` it stored
        // before is visible to our next load of it).
        if buf[0].load(Ordering::Acquire) != want {
            return Copied::Stale;
        }
        let mut out = T::zeroed();
        let mut chunks = bytemuck::bytes_of_mut(&mut out).chunks_exact_mut(8);
        let mut words = buf[1..].iter();
        for (chunk, w) in (&mut chunks).zip(&mut words) {
            // Relaxed: validated by the stamp re-check below.
            chunk.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if let (false, Some(w)) = (rest.is_empty(), words.next()) {
            // Relaxed: as above.
            let w = w.load(Ordering::Relaxed).to_le_bytes();
            rest.copy_from_slice(&w[..rest.len()]);
        }
        // Acquire fence: orders the word loads above before the stamp re-load; pairs
        // with the writer's Release fence after its odd stamp: if any word we loaded
        // was written for a later value, the re-load sees that value's odd (or later)
        // stamp.
        fence(Ordering::Acquire);
        // Relaxed: ordered by the fence above.
        if buf[0].load(Ordering::Relaxed) == want {
            Copied::Whole(out)
        } else {
            Copied::Overwritten
        }
    }

    // ----- writer -----

    /// Publishes `value` as the newest value; returns its sequence number. Never waits
    /// for readers. Takes the writer role if this handle does not hold it yet.
    ///
    /// # Errors
    /// [`LatestError::RoleTaken`] if another live process is the writer.
    pub fn publish(&mut self, value: T) -> Result<u64, LatestError> {
        self.ensure_writer()?;
        // Relaxed: only the writer stores `latest`, and our role claim (Acquire) saw a
        // predecessor's last store.
        let s = self
            .hdr()
            .seq
            .latest
            .load(Ordering::Relaxed)
            .wrapping_add(1);
        let b = (s % u64::from(LATEST_BUFFERS)) as usize;
        // Release: a reader whose Acquire load sees this odd stamp also sees `latest`
        // at `s - 1` or later (its corruption check relies on it). The Release fence
        // then keeps every word store below from becoming visible before the odd stamp
        // (pairs with the reader's Acquire fence).
        let buf = self.buffer(b);
        buf[0].store(s.wrapping_mul(2) | 1, Ordering::Release);
        fence(Ordering::Release);
        // Published by the Release stamp store below.
        store_words(&buf[1..], &value);
        // Release: the words happen-before a reader's Acquire of the even stamp.
        buf[0].store(s.wrapping_mul(2), Ordering::Release);
        let h = self.hdr();
        // Release: the stamp happens-before a reader's Acquire of `latest`.
        h.seq.latest.store(s, Ordering::Release);
        // Once per sleep of each reader, not once per publish until it runs.
        h.wait.newer.wake_all_once();
        self.published = self.published.wrapping_add(1);
        Ok(s)
    }

    fn ensure_writer(&mut self) -> Result<(), LatestError> {
        if self.writer_pid != 0 && self.writer_pid == owner::current_pid() {
            return Ok(());
        }
        let seg = self.segment_opt();
        self.published = in_segment(seg, || self.hdr().meta.writer.claim())
            .map_err(|pid| LatestError::RoleTaken { pid })?;
        self.writer_pid = owner::current_pid();
        // Readers waiting while the cell had no writer learn of this one (as the
        // ring's readers do, see `Ring::ensure_writer`); SeqCst fence inside (Dekker
        // with a waiter's announcement).
        self.hdr().wait.newer.wake(u32::MAX);
        Ok(())
    }

    fn segment_opt(&self) -> Option<&shmkit_segment::Segment> {
        #[cfg(not(loom))]
        return Some(self.segment());
        #[cfg(loom)]
        None
    }

    // ----- waiting readers -----

    /// Waits until a value newer than sequence `seen` is published, and returns it
    /// with its sequence number (the newest: values in between may be skipped). Returns
    /// at once if one is there already.
    ///
    /// # Errors
    /// [`LatestError::WriterLeft`] / [`LatestError::PeerDied`] when the writer left or
    /// died and nothing newer is there, [`LatestError::Corrupt`], [`LatestError::Os`].
    pub fn wait_newer(&self, seen: u64) -> Result<(u64, T), LatestError> {
        self.wait_newer_impl(seen, None)
    }

    /// As [`Latest::wait_newer`], giving up with [`LatestError::Timeout`] after
    /// `timeout`.
    ///
    /// # Errors
    /// As [`Latest::wait_newer`], plus [`LatestError::Timeout`].
    pub fn wait_newer_timeout(
        &self,
        seen: u64,
        timeout: Duration,
    ) -> Result<(u64, T), LatestError> {
        self.wait_newer_impl(seen, Some(Deadline::after(timeout)))
    }

    /// As [`Latest::wait_newer_timeout`], giving up at `deadline`.
    ///
    /// # Errors
    /// As [`Latest::wait_newer_timeout`].
    pub fn wait_newer_deadline(
        &self,
        seen: u64,
        deadline: Instant,
    ) -> Result<(u64, T), LatestError> {
        self.wait_newer_impl(seen, Some(Deadline::at(deadline)))
    }

    fn wait_newer_impl(
        &self,
        seen: u64,
        deadline: Option<Deadline>,
    ) -> Result<(u64, T), LatestError> {
        let h = self.hdr();
        let on = PeerWaitOn {
            segment: self.segment_opt(),
            parker: &h.wait.newer,
            peer: &h.meta.writer,
            closed: None,
        };
        // The handle's judge if no other thread of this process waits with it, else a
        // judge of this call's own.
        let mut kept = match self.watch.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        let mut own = HolderWatch::new();
        let watch = kept.as_deref_mut().unwrap_or(&mut own);
        // SAFETY: `own` is dropped at the end of this call and `self.watch` before
        // `_backing` (field order), both while this handle keeps the mapping.
        let end = unsafe { on.wait(watch, deadline, || self.sequence() > seen) };
        match end.map_err(LatestError::Os)? {
            PeerWait::Ready => self.read(),
            PeerWait::Died { pid } => Err(LatestError::PeerDied { pid }),
            PeerWait::Left { .. } => Err(LatestError::WriterLeft),
            PeerWait::TimedOut => Err(LatestError::Timeout),
            PeerWait::Closed => unreachable!("a Latest has no closed flag"),
        }
    }

    // ----- layout -----

    /// Lays out a cell holding `initial` (as value 1) in a fresh payload.
    ///
    /// # Safety
    /// `ptr..ptr + len` is fresh, zeroed, writable, 128-byte aligned, private to the
    /// caller, and at least [`Latest::region_size`] bytes.
    #[cfg(not(loom))]
    unsafe fn init(ptr: *mut u8, len: usize, initial: T) {
        debug_assert!(len >= Self::region_size() && (ptr as usize).is_multiple_of(128));
        // SAFETY: aligned, large enough and zeroed (caller); zeroed atomics are valid.
        let h = unsafe { &*ptr.cast::<LatestHeader>() };
        let size = std::mem::size_of::<T>();
        h.meta.version.store(LATEST_VERSION, Ordering::Relaxed);
        h.meta.value_size.store(size as u32, Ordering::Relaxed);
        h.meta.buffers.store(LATEST_BUFFERS, Ordering::Relaxed);
        h.meta
            .stride
            .store(stride_bytes(size) as u32, Ordering::Relaxed);
        // The initial value, as value 1 (written as the writer would, with no reader
        // yet: the segment is not READY).
        let stride = Self::STRIDE;
        // SAFETY: the `LATEST_BUFFERS * stride` words of the buffers follow the header
        // inside the payload (caller's size), 8-aligned; zeroed, they are valid atomics,
        // only ever accessed atomically.
        let words = unsafe {
            std::slice::from_raw_parts(
                ptr.add(LATEST_HEADER_SIZE).cast::<AtomicU64>(),
                LATEST_BUFFERS as usize * stride,
            )
        };
        store_words(&words[stride + 1..], &initial);
        words[stride].store(2, Ordering::Relaxed);
        h.seq.latest.store(1, Ordering::Relaxed);
        // Release: publishes everything above to `attach`'s Acquire of the magic.
        h.meta.magic.store(LATEST_MAGIC, Ordering::Release);
    }

    /// A handle over the cell in `seg`'s payload, after checking every field it will
    /// rely on.
    #[cfg(not(loom))]
    fn attach(seg: shmkit_segment::Segment) -> Result<Self, crate::OpenError> {
        let (ptr, len) = (seg.payload_ptr(), seg.payload_len());
        let corrupt = |reason: String| crate::OpenError::Corrupt {
            name: seg.name().unwrap_or("(anonymous)").to_owned(),
            reason,
        };
        if len < LATEST_HEADER_SIZE || !(ptr as usize).is_multiple_of(128) {
            return Err(corrupt(format!(
                "a payload of {len} bytes holds no cell header"
            )));
        }
        // SAFETY: aligned and large enough (checked); the header holds only atomics.
        let h = unsafe { &*ptr.cast::<LatestHeader>() };
        // Acquire: pairs with the Release of the magic in `init`.
        let magic = h.meta.magic.load(Ordering::Acquire);
        if magic != LATEST_MAGIC {
            return Err(corrupt(format!("bad magic {magic:#010x}")));
        }
        let version = h.meta.version.load(Ordering::Relaxed);
        if version != LATEST_VERSION {
            return Err(crate::OpenError::Version {
                object: "Latest",
                found: version,
                expected: LATEST_VERSION,
            });
        }
        let size = std::mem::size_of::<T>();
        let found = (
            h.meta.value_size.load(Ordering::Relaxed) as usize,
            h.meta.buffers.load(Ordering::Relaxed),
            h.meta.stride.load(Ordering::Relaxed) as usize,
        );
        if found != (size, LATEST_BUFFERS, stride_bytes(size)) {
            return Err(corrupt(format!(
                "value size, buffers and stride are {found:?}, not {:?}",
                (size, LATEST_BUFFERS, stride_bytes(size))
            )));
        }
        if len < Self::region_size() {
            return Err(corrupt(format!(
                "a payload of {len} bytes, {} needed",
                Self::region_size()
            )));
        }
        // Best effort: map the buffers now so reads take no page faults.
        let _ = seg.prefault();
        Ok(Latest {
            hdr: NonNull::from(h),
            // SAFETY (of the pointer arithmetic): inside the payload (len checked).
            words: NonNull::new(ptr.wrapping_add(LATEST_HEADER_SIZE).cast::<AtomicU64>())
                .expect("inside a mapping"),
            writer_pid: 0,
            published: 0,
            watch: std::sync::Mutex::new(HolderWatch::new()),
            _backing: Backing::Segment(seg),
            _t: PhantomData,
        })
    }

    /// Two handles on one heap cell holding `initial`, for loom models.
    #[cfg(loom)]
    pub(crate) fn new_for_loom(initial: T) -> (Self, Self) {
        let size = std::mem::size_of::<T>();
        let stride = Self::STRIDE;
        let hdr = LatestHeader {
            meta: MetaLine {
                magic: AtomicU32::new(LATEST_MAGIC),
                version: AtomicU32::new(LATEST_VERSION),
                value_size: AtomicU32::new(size as u32),
                buffers: AtomicU32::new(LATEST_BUFFERS),
                stride: AtomicU32::new((stride * 8) as u32),
                _reserved: AtomicU32::new(0),
                writer: PeerSlot::new(),
            },
            seq: SeqLine {
                latest: AtomicU64::new(1),
            },
            wait: WaitLine {
                newer: Parker::new(),
            },
        };
        let words: Vec<AtomicU64> = (0..stride * LATEST_BUFFERS as usize)
            .map(|_| AtomicU64::new(0))
            .collect();
        store_words(&words[stride + 1..], &initial);
        words[stride].store(2, Ordering::Relaxed);
        let shared = std::sync::Arc::new((hdr, words));
        let make = |s: &std::sync::Arc<(LatestHeader, Vec<AtomicU64>)>| Latest {
            hdr: NonNull::from(&s.0),
            words: NonNull::new(s.1.as_ptr().cast_mut()).expect("a vector's buffer"),
            writer_pid: 0,
            published: 0,
            watch: std::sync::Mutex::new(HolderWatch::new()),
            _backing: Backing::Loom(s.clone()),
            _t: PhantomData,
        };
        (make(&shared), make(&shared))
    }
}

impl<T: bytemuck::Pod> Drop for Latest<T> {
    fn drop(&mut self) {
        if self.writer_pid != 0 && self.writer_pid == owner::current_pid() {
            let h = self.hdr();
            // Release (in `release`): a reader that sees LEFT sees every value we
            // published.
            if h.meta.writer.release(self.published) {
                // Readers waiting for a newer value learn at once, not after a slice.
                h.wait.newer.bump_and_wake(u32::MAX);
            }
        }
    }
}

#[cfg(not(loom))]
impl<T: bytemuck::Pod> crate::family::sealed::Layout for Latest<T> {
    type Init = T;
    const OBJECT: &'static str = "Latest";

    fn tag() -> shmkit_segment::TypeTag {
        Self::type_tag()
    }

    fn payload_size(_initial: &T) -> Result<usize, crate::CreateError> {
        let size = std::mem::size_of::<T>();
        if size > MAX_LATEST_VALUE {
            return Err(crate::CreateError::TooLarge {
                len: 1,
                elem_size: size,
            });
        }
        Ok(Self::region_size())
    }

    unsafe fn init_payload(ptr: *mut u8, len: usize, initial: T) {
        // SAFETY: the trait's contract: fresh, zeroed, private, aligned, large enough.
        unsafe { Self::init(ptr, len, initial) }
    }

    fn from_segment(seg: shmkit_segment::Segment) -> Result<Self, crate::OpenError> {
        Self::attach(seg)
    }
}
