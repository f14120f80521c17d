//! The two halves of a bridge: [`export`] (local object → key expression) and
//! [`import`] (key expression → local object), their credit path and their counters.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use shmkit_typed::channel::RecvError;
use shmkit_typed::Select;
use zenoh::bytes::ZBytes;
use zenoh::key_expr::OwnedKeyExpr;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::{Session, Wait};

use crate::envelope::{self, Envelope};
use crate::local::{self, Kind, LocalSpec};
use crate::state::{self, ImportState, NO_COUNTER};
use crate::BridgeError;

/// An idle importer re-announces itself this often (a 28-byte message; this is also
/// how a lost message or a dropped connection is noticed when nothing else arrives).
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// An importer acknowledges what it delivered after its queue stayed empty this long
/// (or after a quarter window, whichever comes first).
pub const ACK_DELAY: Duration = Duration::from_millis(1);
/// The default credit window: messages an exporter sends beyond the importer's last
/// acknowledgement (also bounded by [`WINDOW_BYTES`]). Large enough that small messages
/// are not held back by the acknowledgements' round trip (measured: 256 capped 64-byte
/// messages at 0.3 - 0.5x plain Zenoh's rate on a loaded machine).
pub const DEFAULT_WINDOW: u32 = 4096;
/// Payload bytes an exporter sends beyond the importer's last acknowledgement, whatever
/// the window in messages (at least one message).
pub const WINDOW_BYTES: usize = 16 << 20;
/// An importer acknowledges after this many payload bytes delivered (or a quarter
/// window of messages, or [`ACK_DELAY`] of quiet), so that [`WINDOW_BYTES`] never
/// stalls an exporter waiting for an acknowledgement.
pub const ACK_BYTES: usize = WINDOW_BYTES / 4;

/// What a bridge counted (relaxed snapshots of its counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Exporter: messages taken from the local object and published.
    pub sent: u64,
    /// Exporter: messages published again after an importer announced itself.
    pub resent: u64,
    /// Exporter: the importer's last acknowledged sequence number.
    pub acked: u64,
    /// Importer: messages put into the local object.
    pub delivered: u64,
    /// Importer: messages received again and dropped (already delivered).
    pub duplicates: u64,
    /// Importer: messages known or possibly lost (see docs/distributed.md).
    pub gaps: u64,
    /// Importer: messages received ahead of a hole (or from a new exporter before its
    /// handover), dropped and asked for again.
    pub out_of_order: u64,
    /// Importer: samples dropped because its slow-path queue (the window) was full.
    pub overflow: u64,
    /// Importer: new exporters seen (an exporter restart starts a new source).
    pub sources: u64,
    /// Envelopes that did not decode (garbled or hostile), or of a kind not expected
    /// on their key.
    pub bad_envelopes: u64,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent={} resent={} acked={} delivered={} duplicates={} gaps={} out_of_order={} overflow={} sources={} bad_envelopes={}",
            self.sent,
            self.resent,
            self.acked,
            self.delivered,
            self.duplicates,
            self.gaps,
            self.out_of_order,
            self.overflow,
            self.sources,
            self.bad_envelopes
        )
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    resent: AtomicU64,
    acked: AtomicU64,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    gaps: AtomicU64,
    out_of_order: AtomicU64,
    overflow: AtomicU64,
    sources: AtomicU64,
    bad_envelopes: AtomicU64,
}

// Relaxed everywhere: counters for display, nothing is published through them.
fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> Stats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            sent: g(&self.sent),
            resent: g(&self.resent),
            acked: g(&self.acked),
            delivered: g(&self.delivered),
            duplicates: g(&self.duplicates),
            gaps: g(&self.gaps),
            out_of_order: g(&self.out_of_order),
            overflow: g(&self.overflow),
            sources: g(&self.sources),
            bad_envelopes: g(&self.bad_envelopes),
        }
    }
}

/// A running bridge (either half). Dropping it undeclares its Zenoh entities; its
/// threads end with the process or at the first error.
pub struct Bridge {
    counters: Arc<Counters>,
    done: Mutex<mpsc::Receiver<BridgeError>>,
    _threads: Vec<JoinHandle<()>>,
    _subscriber: Subscriber<()>,
    _session: Session,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Bridge {
    /// The counters now.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// Blocks until the bridge stops, and returns why (the local object closed, was
    /// found corrupt, or Zenoh failed).
    pub fn wait(&self) -> BridgeError {
        self.done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv()
            .unwrap_or_else(|_| BridgeError::Zenoh("bridge threads ended".into()))
    }
}

/// Checks that `key` is a key expression a bridge can publish on: valid, without
/// wildcards, and without a chunk starting with `@` (the bridge's own sub-keys).
///
/// # Errors
/// [`BridgeError::Key`] saying why.
pub fn check_key(key: &str) -> Result<OwnedKeyExpr, BridgeError> {
    let bad = |why: String| BridgeError::Key {
        key: key.to_owned(),
        why,
    };
    let ke = OwnedKeyExpr::try_from(key.to_owned()).map_err(|e| bad(e.to_string()))?;
    if ke.is_wild() {
        return Err(bad(
            "wildcards (`*`, `**`, `$*`) are for subscribers; a bridge needs one exact key".into(),
        ));
    }
    if key.split('/').any(|c| c.starts_with('@')) {
        return Err(bad(
            "chunks starting with `@` are reserved (the bridge uses `<key>/@ack`)".into(),
        ));
    }
    Ok(ke)
}

fn ack_key(key: &OwnedKeyExpr) -> Result<OwnedKeyExpr, BridgeError> {
    OwnedKeyExpr::try_from(format!("{key}/@ack")).map_err(|e| BridgeError::Zenoh(e.to_string()))
}

fn zerr(e: zenoh::Error) -> BridgeError {
    BridgeError::Zenoh(e.to_string())
}

fn fresh_source() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS's random source: a 64-bit id that another
    // exporter (or this one, restarted) will not repeat.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish().max(1)
}

/// What an exporter holds between taking a message and its acknowledgement. Taken by
/// the exporting thread once per message and by the announce thread once per announce
/// (never per message: acknowledgements go through [`Credit`]).
struct Out {
    /// The last sequence number assigned.
    last: u64,
    /// The acknowledgement `unacked` was last trimmed to.
    acked: u64,
    /// Published, not acknowledged: (seq, envelope).
    unacked: VecDeque<(u64, ZBytes)>,
    /// Their bytes.
    bytes: usize,
    publisher: Publisher<'static>,
}

impl Out {
    /// Forgets what the importer acknowledged (`delivered`, already clamped to `last`).
    fn trim(&mut self, delivered: u64, counters: &Counters) {
        if delivered > self.acked {
            self.acked = delivered;
            while self.unacked.front().is_some_and(|(s, _)| *s <= delivered) {
                if let Some((_, env)) = self.unacked.pop_front() {
                    self.bytes -= env.len();
                }
            }
            counters.acked.store(delivered, Ordering::Relaxed);
        }
    }
}

/// The credit an exporter's importer granted: its last acknowledgement of this
/// exporter's numbers, written by Zenoh's callback (which never blocks: a store and an
/// unpark), read by the exporting thread, which parks while the window is used up.
struct Credit {
    /// The largest `delivered` acknowledged for this exporter's source (as received:
    /// the exporting thread clamps it to what it sent, a hostile ack cannot open the
    /// window further).
    acked: AtomicU64,
    /// The exporting thread, unparked at each acknowledgement.
    pump: OnceLock<Thread>,
}

impl Credit {
    fn grant(&self, delivered: u64) {
        // Relaxed: the number is the whole message (nothing else is published through
        // it); the wake-up is `unpark`'s, whose token makes a grant between the
        // exporting thread's check and its `park` return at once.
        self.acked.fetch_max(delivered, Ordering::Relaxed);
        if let Some(t) = self.pump.get() {
            t.unpark();
        }
    }
}

/// The local object an exporter reads.
enum Source {
    Channel(local::AnyChannel),
    Topic(shmkit_typed::topic::Topic),
    Ring(shmkit_typed::Ring),
}

/// Exports the local object `spec` to `key`: takes its messages (a channel's receiver;
/// a topic's subscriber, from now on; the ring's reader role) and publishes each in
/// an envelope, at most `window` beyond the importer's acknowledgement.
///
/// Records its source id and the last sequence number it took in `<name>-zexport`
/// (see [`state::ExportState`]), so that its successor can tell the importer what was
/// lost if it is killed.
///
/// One thread reads the local object and publishes; acknowledgements are taken in
/// Zenoh's callback (a store and a wake-up); a second thread answers the importer's
/// announces (resends), rarely.
///
/// # Errors
/// A bad key, a local object missing or of another type, a Zenoh declaration failing.
pub fn export(
    session: &Session,
    spec: &LocalSpec,
    key: &str,
    window: u32,
) -> Result<Bridge, BridgeError> {
    let key = check_key(key)?;
    let window = u64::from(window.max(1));
    let source = match spec.kind {
        Kind::Channel => Source::Channel(local::open_channel(&spec.name)?),
        Kind::Topic => Source::Topic(local::open_topic(&spec.name)?),
        Kind::Ring => Source::Ring(local::open_ring(&spec.name)?),
    };
    let publisher = session
        .declare_publisher(key.clone())
        .congestion_control(CongestionControl::Block)
        .wait()
        .map_err(zerr)?;
    let counters = Arc::new(Counters::default());
    let out = Arc::new(Mutex::new(Out {
        last: 0,
        acked: 0,
        unacked: VecDeque::new(),
        bytes: 0,
        publisher,
    }));
    let credit = Arc::new(Credit {
        acked: AtomicU64::new(0),
        pump: OnceLock::new(),
    });
    let id = fresh_source();
    // Recorded before anything is taken: the exporter before this one, and what it took.
    let (mut taken, st) = state::open_export_state(&spec.name, id)?;
    taken.segment_mut().persist();
    let (prev_source, prev_taken) = (st.prev_source, st.prev_taken);
    let (done_tx, done) = mpsc::channel();
    // Announces are rare (an importer's start, a hole, a heartbeat of silence) and are
    // answered by resending, which takes the lock: handed to the announce thread;
    // dropped if it is far behind (the next announce says the same and more).
    let (announce_tx, announce_rx) = mpsc::sync_channel::<(u64, u64)>(64);
    let subscriber = {
        let (credit, counters) = (credit.clone(), counters.clone());
        session
            .declare_subscriber(ack_key(&key)?)
            .callback(move |sample| {
                let raw = sample.payload().to_bytes();
                match envelope::decode(&raw) {
                    Ok(Envelope::Ack {
                        source, delivered, ..
                    }) => {
                        // An ack for an earlier exporter on this key is ignored.
                        if source == id {
                            credit.grant(delivered);
                        }
                    }
                    Ok(Envelope::Announce {
                        source, delivered, ..
                    }) => {
                        if source == id {
                            credit.grant(delivered);
                        }
                        let _ = announce_tx.try_send((source, delivered));
                    }
                    _ => add(&counters.bad_envelopes, 1),
                }
            })
            .wait()
            .map_err(zerr)?
    };

    let control = {
        let (out, counters, done_tx) = (out.clone(), counters.clone(), done_tx.clone());
        std::thread::Builder::new()
            .name("bridge-announces".into())
            .spawn(move || {
                let mut wire = Vec::new();
                while let Ok((from, delivered)) = announce_rx.recv() {
                    let mut o = out.lock().unwrap_or_else(PoisonError::into_inner);
                    // An importer that knows another source has delivered none of ours.
                    let d = if from == id { delivered.min(o.last) } else { 0 };
                    o.trim(d, &counters);
                    if from != id && from != 0 {
                        // It still follows an earlier exporter: say how far that one
                        // got (its messages the importer lacks are lost: gaps), before
                        // our own messages, which it takes only after this.
                        let last = if from == prev_source {
                            prev_taken
                        } else {
                            u64::MAX
                        };
                        envelope::encode_handover(&mut wire, id, from, last);
                        if let Err(e) = o.publisher.put(std::mem::take(&mut wire)).wait() {
                            let _ = done_tx.send(zerr(e));
                            return;
                        }
                    }
                    for (_, env) in o.unacked.iter().filter(|(s, _)| *s > d) {
                        if let Err(e) = o.publisher.put(env.clone()).wait() {
                            let _ = done_tx.send(zerr(e));
                            return;
                        }
                        add(&counters.resent, 1);
                    }
                }
            })
            .map_err(|e| BridgeError::Zenoh(e.to_string()))?
    };

    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), BridgeError>>();
    let reader = {
        let (out, counters, credit) = (out.clone(), counters.clone(), credit.clone());
        std::thread::Builder::new()
            .name("bridge-export".into())
            .spawn(move || {
                let _ = credit.pump.set(std::thread::current());
                let pump = Pump {
                    out: &out,
                    credit: &credit,
                    counters: &counters,
                    taken: &taken,
                    id,
                    window,
                };
                let err = pump.run(source, &ready_tx);
                let _ = ready_tx.send(Err(err));
            })
            .map_err(|e| BridgeError::Zenoh(e.to_string()))?
    };
    // Returns once the local side is attached (a topic's subscriber made: what is
    // published after `export` returns is exported).
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(BridgeError::Local("the exporter ended".into())),
    }
    std::thread::Builder::new()
        .name("bridge-export-end".into())
        .spawn(move || {
            if let Ok(Err(e)) = ready_rx.recv() {
                let _ = done_tx.send(e);
            }
        })
        .map_err(|e| BridgeError::Zenoh(e.to_string()))?;
    Ok(Bridge {
        counters,
        done: Mutex::new(done),
        _threads: vec![control, reader],
        _subscriber: subscriber,
        _session: session.clone(),
    })
}

/// The exporting thread: reads the local object whenever the credit allows, and
/// publishes each message in its envelope.
struct Pump<'a> {
    out: &'a Mutex<Out>,
    credit: &'a Credit,
    counters: &'a Counters,
    /// The persisted last sequence number taken (see [`state::ExportState`]).
    taken: &'a state::ExportValue,
    id: u64,
    window: u64,
}

/// Reads one message of the local object: calls `record` while the object still holds
/// the message (see [`Pump::pump`]), then hands its bytes to `take`.
type ReadFn<'r> = dyn FnMut(&mut Record<'_>, &mut dyn FnMut(&[u8])) -> Result<(), BridgeError> + 'r;

/// Persists the sequence number of the message about to be taken.
type Record<'r> = dyn FnMut() -> Result<(), BridgeError> + 'r;

fn local_err(e: impl std::fmt::Display) -> BridgeError {
    BridgeError::Local(e.to_string())
}

/// One read by `read` (a ring's or topic's `read_with`) whose callback records, then
/// takes the bytes: the message stays readable until the read returns.
fn recorded_inside(
    record: &mut Record<'_>,
    take: &mut dyn FnMut(&[u8]),
    read: impl FnOnce(&mut dyn FnMut(&[u8])) -> Result<(), BridgeError>,
) -> Result<(), BridgeError> {
    let mut recorded = Ok(());
    read(&mut |b| {
        recorded = record();
        take(b);
    })?;
    recorded
}

impl Pump<'_> {
    fn run(&self, source: Source, ready: &mpsc::Sender<Result<(), BridgeError>>) -> BridgeError {
        match source {
            // A channel gives up the record of a receiver killed while it held it: the
            // number is recorded *before* the message is claimed. `Select` waits for a
            // message without claiming it; the claim (`try_recv_with`) may then find it
            // taken by another receiver (`Empty`: wait again, recording the same number).
            Source::Channel(c) => {
                let _ = ready.send(Ok(()));
                let mut sel = Select::new();
                sel.recv(&c);
                self.pump(&mut |record, take| loop {
                    sel.ready().map_err(local_err)?;
                    record()?;
                    match c.try_recv_with(|b| take(b)) {
                        Err(RecvError::Empty) => continue,
                        r => return r.map_err(local_err),
                    }
                })
            }
            // A ring's or topic's message stays readable until the read returns: the
            // number is recorded inside the read.
            Source::Ring(mut r) => {
                let _ = ready.send(Ok(()));
                self.pump(&mut |record, take| {
                    recorded_inside(record, take, |f| r.read_with(f).map_err(local_err))
                })
            }
            // The topic's subscriber borrows the topic: made once, here (it sees what
            // is published from now on).
            Source::Topic(t) => match t.subscribe() {
                Ok(mut s) => {
                    let _ = ready.send(Ok(()));
                    self.pump(&mut |record, take| {
                        recorded_inside(record, take, |f| s.read_with(f).map_err(local_err))
                    })
                }
                Err(e) => local_err(e),
            },
        }
    }

    /// Exports messages until an error. Each message's sequence number is persisted
    /// (`record`) while the local object still holds the message: a death before the
    /// record leaves the message to the next exporter; a death after it counts one
    /// message too many (a gap the importer reports), never one too few.
    fn pump(&self, read: &mut ReadFn<'_>) -> BridgeError {
        let mut last = 0u64;
        // `Out::bytes` after the last publish (refreshed under the lock when above
        // WINDOW_BYTES).
        let mut bytes = 0;
        loop {
            // Parks while the window is used up; `Credit::grant` unparks.
            let acked = loop {
                let a = self.credit.acked.load(Ordering::Relaxed).min(last);
                if last - a < self.window {
                    if bytes < WINDOW_BYTES {
                        break a;
                    }
                    let mut o = self.out.lock().unwrap_or_else(PoisonError::into_inner);
                    o.trim(a, self.counters);
                    bytes = o.bytes;
                    if bytes < WINDOW_BYTES {
                        break a;
                    }
                }
                std::thread::park();
            };
            let seq = last + 1;
            let mut env = Vec::new();
            if let Err(e) = read(
                &mut || state::write_state(self.taken.lock(), |g| g.taken = seq),
                &mut |b| envelope::encode_data(&mut env, self.id, seq, b),
            ) {
                return e;
            }
            let env = ZBytes::from(env);
            let mut o = self.out.lock().unwrap_or_else(PoisonError::into_inner);
            o.trim(acked, self.counters);
            o.last = seq;
            last = seq;
            if let Err(e) = o.publisher.put(env.clone()).wait() {
                return zerr(e);
            }
            o.bytes += env.len();
            bytes = o.bytes;
            o.unacked.push_back((seq, env));
            add(&self.counters.sent, 1);
        }
    }
}

/// The local object an importer writes.
enum Sink {
    Channel(local::AnyChannel),
    Topic(shmkit_typed::topic::Topic),
    Ring(shmkit_typed::Ring),
}

/// What a put into the local object did.
enum Put {
    /// Put (`true`), or refused for its size (`false`: counted as a gap).
    Done(bool),
    /// `try` put: no room now (nothing was put).
    Full,
}

impl Sink {
    /// The object's write counter, where it has one usable by the importer.
    fn counter(&self) -> Option<u64> {
        match self {
            Sink::Topic(t) => Some(t.published()),
            Sink::Channel(_) | Sink::Ring(_) => None,
        }
    }

    /// Puts one message, waiting for room if `wait`, else failing with [`Put::Full`].
    fn put(&mut self, p: Payload<'_>, wait: bool) -> Result<Put, BridgeError> {
        use shmkit_typed::channel::SendError;
        use shmkit_typed::topic::WriteError as TopicError;
        use shmkit_typed::WriteError as RingError;
        let local = |e: String| Err(BridgeError::Local(e));
        let (len, fill) = (p.len(), |b: &mut [u8]| p.fill(b));
        match self {
            Sink::Channel(c) => match if wait {
                c.send_with(len, fill)
            } else {
                c.try_send_with(len, fill)
            } {
                Ok(()) => Ok(Put::Done(true)),
                Err(SendError::TooLarge { .. }) => Ok(Put::Done(false)),
                Err(SendError::Full(())) => Ok(Put::Full),
                Err(e) => local(e.to_string()),
            },
            Sink::Topic(t) => match if wait {
                t.write_with(len, fill)
            } else {
                t.try_write_with(len, fill)
            } {
                Ok(()) => Ok(Put::Done(true)),
                Err(TopicError::TooLarge { .. }) => Ok(Put::Done(false)),
                Err(TopicError::Full) => Ok(Put::Full),
                Err(e) => local(e.to_string()),
            },
            Sink::Ring(r) => match if wait {
                r.write_with(len, fill)
            } else {
                r.try_write_with(len, fill)
            } {
                Ok(()) => Ok(Put::Done(true)),
                Err(RingError::TooLarge { .. }) => Ok(Put::Done(false)),
                Err(RingError::Full) => Ok(Put::Full),
                Err(e) => local(e.to_string()),
            },
        }
    }
}

/// A sample as received: contiguous bytes, or Zenoh's buffer of several slices (a
/// message reassembled from fragments), copied once, into the local object.
#[derive(Clone, Copy)]
enum Raw<'a> {
    Flat(&'a [u8]),
    Split(&'a ZBytes),
}

/// A data envelope's payload (after its header), in either form.
#[derive(Clone, Copy)]
enum Payload<'a> {
    Flat(&'a [u8]),
    /// The whole envelope: the payload is what follows the header.
    Split(&'a ZBytes),
}

impl Payload<'_> {
    fn len(&self) -> usize {
        match self {
            Payload::Flat(b) => b.len(),
            Payload::Split(z) => z.len() - envelope::HEADER_LEN,
        }
    }

    /// Copies the payload into `out` (`len()` bytes).
    fn fill(&self, out: &mut [u8]) {
        match self {
            Payload::Flat(b) => out.copy_from_slice(b),
            Payload::Split(z) => gather(z, envelope::HEADER_LEN, out),
        }
    }
}

/// Copies `out.len()` bytes of `z`, from offset `skip`, into `out`.
fn gather(z: &ZBytes, mut skip: usize, out: &mut [u8]) {
    let mut at = 0;
    for s in z.slices() {
        if at == out.len() {
            break;
        }
        if skip >= s.len() {
            skip -= s.len();
            continue;
        }
        let s = &s[skip..];
        skip = 0;
        let n = s.len().min(out.len() - at);
        out[at..at + n].copy_from_slice(&s[..n]);
        at += n;
    }
}

/// What the importer's subscriber hands its thread.
enum Item {
    /// A sample (an envelope) to handle, waiting for room in the local object if need be.
    Sample(Vec<u8>),
    /// Something was delivered in the callback and is not acknowledged yet: acknowledge
    /// it once the link has been quiet for [`ACK_DELAY`].
    Unacked,
}

/// The importer's side shared between Zenoh's callback and the importer's thread.
struct Inbox {
    importer: Mutex<Importer>,
    /// Samples queued to the thread and not handled yet (the callback delivers a sample
    /// itself only when this is 0, so that order is kept).
    backlog: AtomicUsize,
    /// Why the importer stopped (to [`Bridge::wait`]); sent once.
    done: Mutex<Option<mpsc::Sender<BridgeError>>>,
    counters: Arc<Counters>,
}

impl Inbox {
    fn fail(&self, e: BridgeError) {
        if let Some(tx) = self
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = tx.send(e);
        }
    }

    /// Zenoh's callback: never blocks. With nothing queued and the importer free, the
    /// sample is handled here, put into the local object with a `try` put; otherwise
    /// (or if the local object is full) it is queued for the importer's thread, which
    /// may wait; a full queue drops it (`overflow`, asked for again later).
    fn on_sample(&self, z: &ZBytes, tx: &SyncSender<Item>) {
        // Contiguous (the usual case): borrowed, no copy. Several slices: the header
        // is gathered, the payload copied straight into the local object.
        let flat = z.slices().next().is_none_or(|s| s.len() == z.len());
        let bytes = if flat {
            z.to_bytes()
        } else {
            Default::default()
        };
        let raw = if flat {
            Raw::Flat(&bytes)
        } else {
            Raw::Split(z)
        };
        // Acquire pairs with the importer thread's release decrement: a 0 seen here
        // means every queued sample was handled (the lock orders the rest).
        if self.backlog.load(Ordering::Acquire) == 0 {
            if let Ok(mut imp) = self.importer.try_lock() {
                if self.backlog.load(Ordering::Acquire) == 0 {
                    if imp.stopped {
                        return;
                    }
                    let first = imp.unacked == 0;
                    match imp.handle(raw, false) {
                        Ok(Put::Done(_)) => {
                            if first && imp.unacked > 0 {
                                // The thread starts the ack timer; one wake-up per
                                // ack, not per message (a full queue: the thread is
                                // busy and acknowledges anyway).
                                let _ = tx.try_send(Item::Unacked);
                            }
                            return;
                        }
                        Ok(Put::Full) => {}
                        Err(e) => {
                            imp.stopped = true;
                            self.fail(e);
                            return;
                        }
                    }
                }
            }
        }
        // Counted before the send so that the callback's check above never sees 0
        // while a sample is queued (Relaxed: the increment is read by the callback,
        // on this same thread, or by the importer thread after its receive).
        self.backlog.fetch_add(1, Ordering::Relaxed);
        let owned = match raw {
            Raw::Flat(b) => b.to_vec(),
            Raw::Split(z) => z.to_bytes().into_owned(),
        };
        if tx.try_send(Item::Sample(owned)).is_err() {
            self.backlog.fetch_sub(1, Ordering::Release);
            add(&self.counters.overflow, 1);
        }
    }
}

/// Imports `key` into the local object `spec`: puts every message once, in order
/// (the channel's sender; the topic's single writer; the ring's writer), persisting
/// the last delivered sequence number in `<name>-zimport` (see [`crate::state`]).
///
/// A sample is put into the local object straight from Zenoh's callback when nothing
/// is queued before it and the object has room (a `try` put, never waiting); otherwise
/// it goes through a queue of `window` samples to the importer's thread, which waits
/// for room.
///
/// # Errors
/// A bad key, a local object missing or of another type, the state unusable, a Zenoh
/// declaration failing.
pub fn import(
    session: &Session,
    key: &str,
    spec: &LocalSpec,
    window: u32,
) -> Result<Bridge, BridgeError> {
    let key = check_key(key)?;
    let window = window.max(1);
    let sink = match spec.kind {
        Kind::Channel => Sink::Channel(local::open_channel(&spec.name)?),
        Kind::Topic => Sink::Topic(local::open_topic(&spec.name)?),
        Kind::Ring => Sink::Ring(local::open_ring(&spec.name)?),
    };
    let (mut value, st, resolution) = state::open_state(&spec.name, sink.counter())?;
    value.segment_mut().persist();
    let counters = Arc::new(Counters::default());
    if resolution == state::Resolution::PossibleGap {
        add(&counters.gaps, 1);
    }
    let acks = session
        .declare_publisher(ack_key(&key)?)
        .congestion_control(CongestionControl::Drop)
        .wait()
        .map_err(zerr)?;
    let (done_tx, done) = mpsc::channel();
    let inbox = Arc::new(Inbox {
        importer: Mutex::new(Importer {
            sink,
            value,
            st,
            acks,
            counters: counters.clone(),
            window,
            wire: Vec::new(),
            unacked: 0,
            unacked_bytes: 0,
            received: 0,
            announced: None,
            stopped: false,
        }),
        backlog: AtomicUsize::new(0),
        done: Mutex::new(Some(done_tx)),
        counters: counters.clone(),
    });
    // The first announce before the subscriber exists: the exporter resends from
    // `delivered + 1`.
    inbox
        .importer
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .ack(true)?;
    let (tx, rx) = mpsc::sync_channel::<Item>(window as usize);
    let subscriber = {
        let inbox = inbox.clone();
        session
            .declare_subscriber(key.clone())
            .callback(move |sample| inbox.on_sample(sample.payload(), &tx))
            .wait()
            .map_err(zerr)?
    };
    let worker = std::thread::Builder::new()
        .name("bridge-import".into())
        .spawn(move || {
            let e = match run_importer(&inbox, &rx) {
                Ok(()) => BridgeError::Zenoh("subscriber closed".into()),
                Err(e) => e,
            };
            inbox
                .importer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .stopped = true;
            inbox.fail(e);
        })
        .map_err(|e| BridgeError::Zenoh(e.to_string()))?;
    Ok(Bridge {
        counters,
        done: Mutex::new(done),
        _threads: vec![worker],
        _subscriber: subscriber,
        _session: session.clone(),
    })
}

/// The importer's thread: handles what the callback queued (waiting for room in the
/// local object), acknowledges after [`ACK_DELAY`] of quiet, announces after a
/// [`HEARTBEAT`] of silence.
fn run_importer(inbox: &Inbox, rx: &mpsc::Receiver<Item>) -> Result<(), BridgeError> {
    // `received` when the last wait began: unchanged at its end means a quiet link.
    let mut heard = 0;
    loop {
        let unacked = {
            let imp = inbox
                .importer
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if imp.stopped {
                return Ok(());
            }
            imp.unacked
        };
        // Acknowledge once the queue has stayed empty for ACK_DELAY (not at every
        // drain: in a ping-pong that would be one ack per message, on the path of the
        // reply); announce after a heartbeat of silence.
        let wait = if unacked > 0 { ACK_DELAY } else { HEARTBEAT };
        match rx.recv_timeout(wait) {
            Ok(Item::Sample(raw)) => {
                let mut imp = inbox
                    .importer
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let r = imp.handle(Raw::Flat(&raw), true);
                // Release pairs with the callback's acquire load (see `on_sample`).
                inbox.backlog.fetch_sub(1, Ordering::Release);
                r?;
            }
            Ok(Item::Unacked) => {}
            Err(RecvTimeoutError::Timeout) => {
                let mut imp = inbox
                    .importer
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                // Samples handled in the callback during the wait: not quiet yet.
                let quiet = imp.received == heard;
                if quiet && imp.unacked > 0 {
                    imp.ack(false)?;
                } else if quiet && wait == HEARTBEAT {
                    imp.ack(true)?;
                }
                heard = imp.received;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

struct Importer {
    sink: Sink,
    value: state::StateValue,
    st: ImportState,
    acks: Publisher<'static>,
    counters: Arc<Counters>,
    window: u32,
    wire: Vec<u8>,
    /// Delivered since the last acknowledgement.
    unacked: u32,
    /// Their payload bytes.
    unacked_bytes: usize,
    /// Samples received (activity, for the heartbeat).
    received: u64,
    /// The hole last announced, and when: one announce per hole and heartbeat.
    announced: Option<(u64, Instant)>,
    /// Failed: the callback drops what comes.
    stopped: bool,
}

impl Importer {
    /// Applies `f` to the state and persists it. Without `wait`, gives up (`Ok(false)`,
    /// nothing changed) if the state's lock is held (by `shmkit inspect`, reading).
    fn save(&mut self, wait: bool, f: impl FnOnce(&mut ImportState)) -> Result<bool, BridgeError> {
        let mut st = self.st;
        f(&mut st);
        let locked = if wait {
            self.value.lock()
        } else {
            self.value.try_lock()
        };
        match locked {
            Err(shmkit_typed::LockError::WouldBlock) if !wait => return Ok(false),
            locked => state::write_state(locked, |g| *g = st)?,
        }
        self.st = st;
        Ok(true)
    }

    fn ack(&mut self, announce: bool) -> Result<(), BridgeError> {
        envelope::encode_ack(
            &mut self.wire,
            announce,
            self.st.source,
            self.st.delivered,
            self.window,
        );
        self.unacked = 0;
        self.unacked_bytes = 0;
        self.acks
            .put(std::mem::take(&mut self.wire))
            .wait()
            .map_err(zerr)
    }

    /// Announces (asks for everything after `delivered`), once per hole and heartbeat.
    fn announce_hole(&mut self) -> Result<(), BridgeError> {
        let now = Instant::now();
        let again = match self.announced {
            Some((d, at)) => d != self.st.delivered || now - at >= HEARTBEAT,
            None => true,
        };
        if again {
            self.announced = Some((self.st.delivered, now));
            self.ack(true)?;
        }
        Ok(())
    }

    /// The exporter `source` follows `old`, which took up to `last`: if `old` is the
    /// one followed, what it took and was not delivered is lost (gaps; one possible gap
    /// if `last` is unknown), and `source`'s numbers start at 1.
    fn handover(
        &mut self,
        wait: bool,
        source: u64,
        old: u64,
        last: u64,
    ) -> Result<Put, BridgeError> {
        if old != self.st.source || source == self.st.source {
            return Ok(Put::Done(false)); // about another exporter, or already known
        }
        let lost = if last == u64::MAX {
            1
        } else {
            last.saturating_sub(self.st.delivered)
        };
        if !self.save(wait, |s| {
            s.source = source;
            s.delivered = 0;
            s.pending = 0;
            s.gaps += lost;
        })? {
            return Ok(Put::Full);
        }
        add(&self.counters.sources, 1);
        add(&self.counters.gaps, lost);
        self.announced = None;
        Ok(Put::Done(false))
    }

    /// Handles one sample. Without `wait` (in Zenoh's callback) nothing waits: a state
    /// lock held elsewhere or a full local object returns [`Put::Full`] with nothing
    /// put (the sample is then queued and handled again with `wait`).
    fn handle(&mut self, raw: Raw<'_>, wait: bool) -> Result<Put, BridgeError> {
        self.received += 1;
        let decoded = match raw {
            Raw::Flat(b) => match envelope::decode(b) {
                Ok(Envelope::Data {
                    source,
                    seq,
                    payload,
                }) => Some((source, seq, Payload::Flat(payload))),
                Ok(Envelope::Handover { source, old, last }) => {
                    return self.handover(wait, source, old, last);
                }
                _ => None,
            },
            Raw::Split(z) => {
                let mut head = [0; envelope::HEADER_LEN];
                gather(z, 0, &mut head);
                match envelope::decode_data_head(&head, z.len()) {
                    Ok((source, seq)) => Some((source, seq, Payload::Split(z))),
                    Err(_) => None,
                }
            }
        };
        let Some((source, seq, payload)) = decoded else {
            add(&self.counters.bad_envelopes, 1);
            return Ok(Put::Done(false));
        };
        if source != self.st.source {
            if self.st.source != 0 {
                // Another exporter while this one follows an earlier one: dropped
                // until the new one says how far the earlier one got (a handover, in
                // answer to the announce).
                add(&self.counters.out_of_order, 1);
                self.announce_hole()?;
                return Ok(Put::Done(false));
            }
            // The first exporter: its numbers start at 1.
            if !self.save(wait, |s| {
                s.source = source;
                s.delivered = 0;
                s.pending = 0;
            })? {
                return Ok(Put::Full);
            }
            add(&self.counters.sources, 1);
        }
        if seq <= self.st.delivered {
            if !self.save(wait, |s| s.duplicates += 1)? {
                return Ok(Put::Full);
            }
            add(&self.counters.duplicates, 1);
            return Ok(Put::Done(false));
        }
        if seq > self.st.delivered + 1 {
            // A hole (a sample lost to a full queue, a dropped connection, an
            // importer restart): drop, and ask for everything after `delivered`.
            add(&self.counters.out_of_order, 1);
            self.announce_hole()?;
            return Ok(Put::Done(false));
        }
        let before = self.sink.counter().unwrap_or(NO_COUNTER);
        if !self.save(wait, |s| {
            s.pending = seq;
            s.counter_before = before;
        })? {
            return Ok(Put::Full);
        }
        let fitted = match self.sink.put(payload, wait)? {
            Put::Done(fitted) => fitted,
            // Nothing put: `pending` stays recorded until the thread puts it (a death
            // before then resolves it as for any pending put).
            Put::Full => return Ok(Put::Full),
        };
        // Waits for the lock even in the callback: the put happened and must be
        // recorded (the only other holder is a reader, for nanoseconds).
        self.save(true, |s| {
            s.delivered = seq;
            if fitted {
                s.delivered_total += 1;
            } else {
                s.gaps += 1;
            }
        })?;
        if fitted {
            add(&self.counters.delivered, 1);
        } else {
            add(&self.counters.gaps, 1);
        }
        self.unacked += 1;
        self.unacked_bytes += payload.len();
        if self.unacked >= (self.window / 4).max(1) || self.unacked_bytes >= ACK_BYTES {
            self.ack(false)?;
        }
        Ok(Put::Done(fitted))
    }
}
