//! The floor: the least a shared-memory transport can do on this machine, measured
//! in the same run as everything else so that every other row can be read as a ratio
//! to it ("how far from the limit are we here?").
//!
//! A minimal single-producer single-consumer ring of fixed-size slots over the same
//! kind of mapping shmkit's ring uses (an anonymous shmkit segment shared across
//! `fork`): one head and one tail counter on their own 128-byte lines, the sender
//! spins while the ring is full, the receiver spins while it is empty, and nothing
//! else — no framing, no liveness checks, no sleeping, no layout validation, no
//! peer-state bookkeeping. Its ping-pong (two such rings, one each way, one message
//! in flight) is the spin ping-pong floor of round trips.
//!
//! Written here by hand on purpose: a floor must not share code with what it is the
//! floor of. Not for use outside the benchmark: a peer that dies leaves the other
//! spinning for ever (the harness kills it at [`PEER_TIMEOUT`](super::PEER_TIMEOUT)).

use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use shmkit_segment::Segment;

use super::transport::{Channel, MsgReceiver, MsgSender};

/// Slot bytes in all: 4 MiB, as shmkit's ring (twice the largest benchmark message).
const FLOOR_BYTES: usize = 4 << 20;

/// One counter alone on its cache-line pair (no false sharing with the other side).
#[repr(C, align(128))]
struct Counter(AtomicU64);

/// The shared part: where the sender and the receiver are. Slots follow it.
#[repr(C)]
struct FloorHeader {
    /// Messages published (written only by the sender).
    tail: Counter,
    /// Messages consumed (written only by the receiver).
    head: Counter,
}

/// One end of a floor ring (both ends hold the same mapping; the sender's copy and
/// the receiver's copy live in different processes after the fork).
struct FloorEnd {
    /// Keeps the mapping alive for `header` and `slots`.
    _seg: Rc<Segment>,
    header: *const FloorHeader,
    slots: *mut u8,
    slot_size: usize,
    /// A power of two.
    slot_count: u64,
    /// This end's own counter (tail for the sender, head for the receiver).
    mine: u64,
    /// The last value read of the other end's counter.
    seen: u64,
    /// Sender: the tail last published (a batch publishes once, at its end).
    published: u64,
    /// Whether this process has faulted the mapping in (once, on first use: a
    /// forked child does not inherit the parent's page-table entries of a shared
    /// mapping). shmkit's ring does the same when it takes a role; without it the
    /// first lap of large messages would time page faults, not the transport.
    mapped: bool,
}

impl FloorEnd {
    fn header(&self) -> &FloorHeader {
        // SAFETY: `header` points at the start of the payload of `_seg`, which this end
        // keeps mapped; the payload is 128-byte aligned (shmkit segments align their
        // payload to 128) and large enough (checked in `channel`); its fields are
        // atomics, the only way either process touches them.
        unsafe { &*self.header }
    }

    /// Slot `n` (modulo the slot count), lent to this end while it owns that slot:
    /// the sender from "free" (head > n - slot_count, seen with Acquire) until its
    /// Release store of tail; the receiver from "published" (tail > n, Acquire) until
    /// its Release store of head. The other process does not touch a slot while it is
    /// lent here (the trust model of the floor: both ends are this benchmark).
    fn slot(&mut self, n: u64) -> &mut [u8] {
        // A mask, not `%`: a division per message would weigh on 8-byte messages.
        let i = (n & (self.slot_count - 1)) as usize;
        // SAFETY: i < slot_count and slot_count * slot_size bytes follow the header in
        // the mapping `_seg` keeps alive; the caller owns slot `n` as described above,
        // so no one else reads or writes these bytes while the borrow lives, and
        // `&mut self` keeps this end from lending a second slot meanwhile.
        unsafe {
            std::slice::from_raw_parts_mut(self.slots.add(i * self.slot_size), self.slot_size)
        }
    }

    /// Faults the whole mapping into this process the first time this end is used.
    fn map_in(&mut self) -> io::Result<()> {
        if !self.mapped {
            self._seg.prefault()?;
            self.mapped = true;
        }
        Ok(())
    }

    /// Spins until `ready(counter)` holds for the other end's `counter`, starting from
    /// the last value `seen`; returns the value that satisfied it. Yields now and then
    /// so that a peer sharing this vCPU gets to run (2-vCPU machines, other load).
    fn spin_until(counter: &AtomicU64, mut seen: u64, ready: impl Fn(u64) -> bool) -> u64 {
        let mut spins = 0u32;
        while !ready(seen) {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1 << 14) {
                std::thread::yield_now();
            }
            // Acquire: pairs with the other end's Release store of its counter, so the
            // slot it published (or freed) is visible.
            seen = counter.load(Ordering::Acquire);
        }
        seen
    }
}

impl FloorEnd {
    /// Publishes this end's counter (tail for the sender, head for the receiver).
    fn publish(&self, counter: &AtomicU64) {
        // Release: the sender's slot bytes happen-before the receiver's Acquire load
        // of tail; the receiver's reads of freed slots happen-before the sender's
        // Acquire load of head and its reuse.
        counter.store(self.mine, Ordering::Release);
    }

    /// Sends `count` messages (one if not batching), publishing the tail once at the
    /// end, and before spinning on a full ring (the receiver frees only what it sees).
    fn send_some(
        &mut self,
        count: usize,
        fill: &mut dyn FnMut(&mut [u8], usize),
    ) -> io::Result<()> {
        self.map_in()?;
        let slots = self.slot_count;
        for i in 0..count {
            let mine = self.mine;
            if mine - self.seen >= slots {
                if self.published != mine {
                    self.publish(&self.header().tail.0);
                    self.published = mine;
                }
                self.seen =
                    Self::spin_until(&self.header().head.0, self.seen, |head| mine - head < slots);
            }
            // Slot `mine` is free: the receiver consumed its previous lap.
            fill(self.slot(mine), i);
            self.mine += 1;
        }
        self.publish(&self.header().tail.0);
        self.published = self.mine;
        Ok(())
    }
}

impl MsgSender for FloorEnd {
    fn send_with(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> io::Result<()> {
        debug_assert_eq!(len, self.slot_size);
        self.send_some(1, &mut |buf, _| fill(buf))
    }

    fn batches(&self) -> bool {
        true
    }

    fn send_batch(
        &mut self,
        len: usize,
        count: usize,
        fill: &mut dyn FnMut(&mut [u8], usize),
    ) -> io::Result<()> {
        debug_assert_eq!(len, self.slot_size);
        self.send_some(count, fill)
    }
}

impl MsgReceiver for FloorEnd {
    fn recv_with(&mut self, check: &mut dyn FnMut(&[u8]) -> bool) -> io::Result<bool> {
        let mut ok = true;
        self.recv_batch(1, &mut |m| ok = check(m))?;
        Ok(ok)
    }

    fn recv_batch(&mut self, max: usize, check: &mut dyn FnMut(&[u8])) -> io::Result<usize> {
        self.map_in()?;
        let mine = self.mine;
        self.seen = Self::spin_until(&self.header().tail.0, self.seen, |tail| tail > mine);
        // Slots `mine..seen` are published and the sender leaves them alone until our
        // head store.
        let n = (self.seen - mine).min(max as u64);
        for k in 0..n {
            check(self.slot(mine + k));
        }
        self.mine += n;
        self.publish(&self.header().head.0);
        Ok(n as usize)
    }
}

/// A floor ring for `size`-byte messages.
pub fn channel(size: usize) -> io::Result<Channel> {
    let size = size.max(1);
    // A power of two (at most FLOOR_BYTES in all), so a slot index is a mask.
    let slot_count = 1usize << (FLOOR_BYTES / size).max(2).ilog2();
    let header_len = std::mem::size_of::<FloorHeader>();
    let seg = Segment::options()
        .anonymous()
        .size(header_len + slot_count * size)
        .create()
        .map_err(io::Error::other)?;
    // The counters start at zero: a fresh segment's payload is zero-filled.
    let payload = seg.payload_ptr();
    if !(payload as usize).is_multiple_of(std::mem::align_of::<FloorHeader>())
        || seg.payload_len() < header_len + slot_count * size
    {
        return Err(io::Error::other(
            "floor: segment payload misaligned or short",
        ));
    }
    let seg = Rc::new(seg);
    let end = |seg: Rc<Segment>| FloorEnd {
        _seg: seg,
        header: payload.cast::<FloorHeader>(),
        slots: payload.wrapping_add(header_len),
        slot_size: size,
        slot_count: slot_count as u64,
        mine: 0,
        seen: 0,
        published: 0,
        mapped: false,
    };
    Ok(Channel {
        tx: Box::new(end(seg.clone())),
        rx: Box::new(end(seg)),
    })
}
