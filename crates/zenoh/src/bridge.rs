//! The two halves of a bridge: [`export`] (local object → key expression) and
//! [`import`] (key expression → local object), their credit path and their counters.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
/// acknowledgement.
pub const DEFAULT_WINDOW: u32 = 256;

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
    /// Importer: messages received ahead of a hole, dropped and asked for again.
    pub out_of_order: u64,
    /// Importer: samples dropped because its queue (the window) was full.
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

/// What an exporter holds between taking a message and its acknowledgement.
struct Out {
    /// The last sequence number assigned.
    last: u64,
    /// The importer's last acknowledgement.
    acked: u64,
    /// Published, not acknowledged: (seq, envelope).
    unacked: VecDeque<(u64, ZBytes)>,
    publisher: Publisher<'static>,
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
    let out = Arc::new((
        Mutex::new(Out {
            last: 0,
            acked: 0,
            unacked: VecDeque::new(),
            publisher,
        }),
        Condvar::new(),
    ));
    let id = fresh_source();
    let (done_tx, done) = mpsc::channel();
    // Acks arrive in the subscriber callback, which must never block (it would stall
    // the session): handed to the control thread, dropped if it is far behind (acks
    // are cumulative, the next one says the same and more).
    let (ack_tx, ack_rx) = mpsc::sync_channel::<Vec<u8>>(1024);
    let subscriber = session
        .declare_subscriber(ack_key(&key)?)
        .callback(move |sample| {
            let _ = ack_tx.try_send(sample.payload().to_bytes().into_owned());
        })
        .wait()
        .map_err(zerr)?;

    let control = {
        let (out, counters, done_tx) = (out.clone(), counters.clone(), done_tx.clone());
        std::thread::Builder::new()
            .name("bridge-acks".into())
            .spawn(move || {
                while let Ok(raw) = ack_rx.recv() {
                    let (announce, from, delivered) = match envelope::decode(&raw) {
                        Ok(Envelope::Ack {
                            source, delivered, ..
                        }) => (false, source, delivered),
                        Ok(Envelope::Announce {
                            source, delivered, ..
                        }) => (true, source, delivered),
                        _ => {
                            add(&counters.bad_envelopes, 1);
                            continue;
                        }
                    };
                    if from != id && !announce {
                        continue; // an ack for an earlier exporter on this key
                    }
                    let (lock, cv) = &*out;
                    let mut o = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    // An importer that knows another source has delivered none of ours.
                    let d = if from == id { delivered.min(o.last) } else { 0 };
                    if d > o.acked {
                        o.acked = d;
                        while o.unacked.front().is_some_and(|(s, _)| *s <= d) {
                            o.unacked.pop_front();
                        }
                        counters.acked.store(d, Ordering::Relaxed);
                        cv.notify_all();
                    }
                    if announce {
                        let o = &*o;
                        for (_, env) in o.unacked.iter().filter(|(s, _)| *s > d) {
                            if let Err(e) = o.publisher.put(env.clone()).wait() {
                                let _ = done_tx.send(zerr(e));
                                return;
                            }
                            add(&counters.resent, 1);
                        }
                    }
                }
            })
            .map_err(|e| BridgeError::Zenoh(e.to_string()))?
    };

    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), BridgeError>>();
    let reader = {
        let (out, counters) = (out.clone(), counters.clone());
        std::thread::Builder::new()
            .name("bridge-export".into())
            .spawn(move || {
                let err = export_loop(source, &out, &counters, id, window, &ready_tx);
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

fn export_loop(
    source: Source,
    out: &(Mutex<Out>, Condvar),
    counters: &Counters,
    id: u64,
    window: u64,
    ready: &mpsc::Sender<Result<(), BridgeError>>,
) -> BridgeError {
    let copy = |msg: &mut Vec<u8>, b: &[u8]| msg.extend_from_slice(b);
    match source {
        Source::Channel(c) => pump(out, counters, id, window, ready, |m| {
            c.recv_with(|b| copy(m, b)).map_err(|e| e.to_string())
        }),
        Source::Ring(mut r) => pump(out, counters, id, window, ready, |m| {
            r.read_with(|b| copy(m, b)).map_err(|e| e.to_string())
        }),
        // The topic's subscriber borrows the topic: made once, here (it sees what is
        // published from now on).
        Source::Topic(t) => match t.subscribe() {
            Ok(mut s) => pump(out, counters, id, window, ready, |m| {
                s.read_with(|b| copy(m, b)).map_err(|e| e.to_string())
            }),
            Err(e) => BridgeError::Local(e.to_string()),
        },
    }
}

/// Takes a message from the local object (`read`) whenever the credit allows,
/// publishes it and keeps it until acknowledged.
fn pump(
    (lock, cv): &(Mutex<Out>, Condvar),
    counters: &Counters,
    id: u64,
    window: u64,
    ready: &mpsc::Sender<Result<(), BridgeError>>,
    mut read: impl FnMut(&mut Vec<u8>) -> Result<(), String>,
) -> BridgeError {
    let _ = ready.send(Ok(()));
    let mut msg = Vec::new();
    loop {
        {
            let mut o = lock.lock().unwrap_or_else(PoisonError::into_inner);
            while o.last - o.acked >= window {
                o = cv.wait(o).unwrap_or_else(PoisonError::into_inner);
            }
        }
        msg.clear();
        if let Err(e) = read(&mut msg) {
            return BridgeError::Local(e);
        }
        let mut o = lock.lock().unwrap_or_else(PoisonError::into_inner);
        o.last += 1;
        let seq = o.last;
        let mut env = Vec::new();
        envelope::encode_data(&mut env, id, seq, &msg);
        let env = ZBytes::from(env);
        if let Err(e) = o.publisher.put(env.clone()).wait() {
            return zerr(e);
        }
        o.unacked.push_back((seq, env));
        add(&counters.sent, 1);
    }
}

/// The local object an importer writes.
enum Sink {
    Channel(local::AnyChannel),
    Topic(shmkit_typed::topic::Topic),
    Ring(shmkit_typed::Ring),
}

impl Sink {
    /// The object's write counter, where it has one usable by the importer.
    fn counter(&self) -> Option<u64> {
        match self {
            Sink::Topic(t) => Some(t.published()),
            Sink::Channel(_) | Sink::Ring(_) => None,
        }
    }

    /// Puts one message. `Ok(false)`: refused for its size (counted as a gap).
    fn put(&mut self, b: &[u8]) -> Result<bool, BridgeError> {
        use shmkit_typed::channel::SendError;
        let local = |e: String| Err(BridgeError::Local(e));
        match self {
            Sink::Channel(c) => match c.send_bytes(b) {
                Ok(()) => Ok(true),
                Err(SendError::TooLarge { .. }) => Ok(false),
                Err(e) => local(e.to_string()),
            },
            Sink::Topic(t) => match t.write(b) {
                Ok(()) => Ok(true),
                Err(shmkit_typed::topic::WriteError::TooLarge { .. }) => Ok(false),
                Err(e) => local(e.to_string()),
            },
            Sink::Ring(r) => match r.write(b) {
                Ok(()) => Ok(true),
                Err(shmkit_typed::WriteError::TooLarge { .. }) => Ok(false),
                Err(e) => local(e.to_string()),
            },
        }
    }
}

/// Imports `key` into the local object `spec`: puts every message once, in order
/// (the channel's sender; the topic's single writer; the ring's writer), persisting
/// the last delivered sequence number in `<name>-zimport` (see [`crate::state`]).
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
        .wait()
        .map_err(zerr)?;
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(window as usize);
    let subscriber = {
        let counters = counters.clone();
        let tx: SyncSender<Vec<u8>> = tx;
        session
            .declare_subscriber(key.clone())
            .callback(move |sample| {
                // Never blocks: a full queue drops the sample (asked for again later).
                if tx
                    .try_send(sample.payload().to_bytes().into_owned())
                    .is_err()
                {
                    add(&counters.overflow, 1);
                }
            })
            .wait()
            .map_err(zerr)?
    };
    let (done_tx, done) = mpsc::channel();
    let worker = {
        let counters = counters.clone();
        std::thread::Builder::new()
            .name("bridge-import".into())
            .spawn(move || {
                let mut imp = Importer {
                    sink,
                    value,
                    st,
                    acks,
                    counters,
                    window,
                    wire: Vec::new(),
                };
                let _ = done_tx.send(imp.run(&rx));
            })
            .map_err(|e| BridgeError::Zenoh(e.to_string()))?
    };
    Ok(Bridge {
        counters,
        done: Mutex::new(done),
        _threads: vec![worker],
        _subscriber: subscriber,
        _session: session.clone(),
    })
}

struct Importer {
    sink: Sink,
    value: state::StateValue,
    st: ImportState,
    acks: Publisher<'static>,
    counters: Arc<Counters>,
    window: u32,
    wire: Vec<u8>,
}

impl Importer {
    fn save(&mut self, f: impl FnOnce(&mut ImportState)) -> Result<(), BridgeError> {
        f(&mut self.st);
        let st = self.st;
        match self.value.lock() {
            Ok(mut g) => *g = st,
            Err(e) => match e.into_guard() {
                Some(mut g) => {
                    *g = st;
                    g.make_consistent();
                }
                None => return Err(BridgeError::State("cannot lock".into())),
            },
        }
        Ok(())
    }

    fn ack(&mut self, announce: bool) -> Result<(), BridgeError> {
        envelope::encode_ack(
            &mut self.wire,
            announce,
            self.st.source,
            self.st.delivered,
            self.window,
        );
        self.acks
            .put(std::mem::take(&mut self.wire))
            .wait()
            .map_err(zerr)
    }

    fn run(&mut self, rx: &mpsc::Receiver<Vec<u8>>) -> BridgeError {
        match self.run_inner(rx) {
            Ok(()) => BridgeError::Zenoh("subscriber closed".into()),
            Err(e) => e,
        }
    }

    fn run_inner(&mut self, rx: &mpsc::Receiver<Vec<u8>>) -> Result<(), BridgeError> {
        self.ack(true)?;
        let mut unacked = 0u32;
        // The hole last announced, and when: one announce per hole and heartbeat.
        let mut announced: Option<(u64, Instant)> = None;
        loop {
            let raw = match rx.try_recv() {
                Ok(raw) => raw,
                Err(TryRecvError::Disconnected) => return Ok(()),
                Err(TryRecvError::Empty) => {
                    // Acknowledge once the queue has stayed empty for ACK_DELAY (not at
                    // every drain: in a ping-pong that would be one ack per message, on
                    // the path of the reply); announce after a heartbeat of silence.
                    let wait = if unacked > 0 { ACK_DELAY } else { HEARTBEAT };
                    match rx.recv_timeout(wait) {
                        Ok(raw) => raw,
                        Err(RecvTimeoutError::Timeout) => {
                            self.ack(unacked == 0)?;
                            unacked = 0;
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => return Ok(()),
                    }
                }
            };
            let (source, seq, payload) = match envelope::decode(&raw) {
                Ok(Envelope::Data {
                    source,
                    seq,
                    payload,
                }) => (source, seq, payload),
                _ => {
                    add(&self.counters.bad_envelopes, 1);
                    continue;
                }
            };
            if source != self.st.source {
                // A new exporter (or the first): its numbers start at 1.
                add(&self.counters.sources, 1);
                self.save(|s| {
                    s.source = source;
                    s.delivered = 0;
                    s.pending = 0;
                })?;
            }
            if seq <= self.st.delivered {
                add(&self.counters.duplicates, 1);
                self.save(|s| s.duplicates += 1)?;
                continue;
            }
            if seq > self.st.delivered + 1 {
                // A hole (a sample lost to a full queue, a dropped connection, an
                // importer restart): drop, and ask for everything after `delivered`.
                add(&self.counters.out_of_order, 1);
                let now = Instant::now();
                let again = match announced {
                    Some((d, at)) => d != self.st.delivered || now - at >= HEARTBEAT,
                    None => true,
                };
                if again {
                    announced = Some((self.st.delivered, now));
                    self.ack(true)?;
                }
                continue;
            }
            let before = self.sink.counter().unwrap_or(NO_COUNTER);
            self.save(|s| {
                s.pending = seq;
                s.counter_before = before;
            })?;
            let fitted = self.sink.put(payload)?;
            self.save(|s| {
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
            unacked += 1;
            if unacked >= (self.window / 4).max(1) {
                self.ack(false)?;
                unacked = 0;
            }
        }
    }
}
