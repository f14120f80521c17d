//! iceoryx2 publish-subscribe as a harness channel: a `[u8]` slice service, the
//! publisher loaning each message in the shared memory and filling it in place
//! (zero-copy), the subscriber checking it in place.
//!
//! The harness makes the channel before it forks and uses the tx half in one process
//! and the rx half in the other. iceoryx2's nodes and ports are not made to survive a
//! `fork`, so a channel holds only the service name and the size until first use; each
//! half then creates its own node, opens (or creates) the service and its port, in the
//! process that uses it. (One thing does cross the fork: iceoryx2's cached unique
//! process id, which makes the peers' nodes look like the benchmark's own; see
//! [`clean_dead_nodes`].)
//!
//! No message may be lost: the service has no safe overflow and the publisher's
//! backpressure strategy is `RetryUntilDelivered` (it waits while the subscriber's
//! buffer is full), and the publisher's first send waits until the subscriber exists,
//! so it is connected before the first message goes out (the service keeps no history).
//!
//! Latency: iceoryx2's own benchmark prints the mean round trip divided by two (a
//! one-way estimate); this harness reports the full round trip, median and p99, as for
//! every other row.

use std::hash::{BuildHasher, RandomState};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSub;
use shmkit_cli::bench::{Channel, MsgReceiver, MsgSender, PEER_TIMEOUT};

/// The port types: `[u8]` slices, no user header.
pub(crate) type Pub = Publisher<ipc::Service, [u8], ()>;
pub(crate) type Sub = Subscriber<ipc::Service, [u8], ()>;

/// Buffering per channel: 4 MiB of messages, as shmkit's ring and the floor have, in
/// 2 to 1024 slots.
const BUFFER_BYTES: usize = 4 << 20;

fn buffer_slots(size: usize) -> usize {
    (BUFFER_BYTES / size.max(1)).clamp(2, 1024)
}

pub(crate) fn other(what: &str, e: impl std::fmt::Debug) -> io::Error {
    io::Error::other(format!("iceoryx2: {what}: {e:?}"))
}

/// A service name no other channel (of this or another run) has: pid, a counter, and
/// random bits.
pub(crate) fn unique_name() -> String {
    // Relaxed: the counter only has to hand out distinct values within this process.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let random = RandomState::new().hash_one(n);
    format!("shmkit-peers/{}/{n}/{random:016x}", std::process::id())
}

/// Spins (with `yield_now` between rounds, so on 2 vCPUs the peer gets the CPU) until
/// `ready` says yes, failing after [`PEER_TIMEOUT`]. Polling, as iceoryx2's own
/// benchmark does: no sleeping.
pub(crate) fn poll<T>(
    what: &str,
    mut ready: impl FnMut() -> io::Result<Option<T>>,
) -> io::Result<T> {
    let start = Instant::now();
    let mut round = 0u32;
    loop {
        if let Some(v) = ready()? {
            return Ok(v);
        }
        round = round.wrapping_add(1);
        if round.is_multiple_of(64) {
            if start.elapsed() > PEER_TIMEOUT {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("iceoryx2: {what}: the peer did not answer"),
                ));
            }
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// The node and the service a port lives in (dropped after the port: fields drop in
/// order, and the port is declared before this in its owner).
pub(crate) struct Endpoint {
    pub(crate) service: PubSub<ipc::Service, [u8], ()>,
    _node: Node<ipc::Service>,
}

impl Endpoint {
    fn open(name: &str, size: usize) -> io::Result<Self> {
        Self::open_for(name, 1, buffer_slots(size))
    }

    /// The service `name` for `subscribers` subscribers that each buffer `slots`
    /// messages.
    pub(crate) fn open_for(name: &str, subscribers: usize, slots: usize) -> io::Result<Self> {
        let node = NodeBuilder::new()
            // The benchmark's own signal handling stays as it is.
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()
            .map_err(|e| other("node", e))?;
        let name = ServiceName::new(name).map_err(|e| other("service name", e))?;
        // Both processes open or create the same service; when both try to create it at
        // once one of them fails and opens it on a later round. The last error is kept
        // for the message if it never succeeds.
        let mut last_error = None;
        let service = poll("service", || {
            match node
                .service_builder(&name)
                .publish_subscribe::<[u8]>()
                .enable_safe_overflow(false)
                .history_size(0)
                .subscriber_max_buffer_size(slots)
                .max_publishers(1)
                .max_subscribers(subscribers)
                .open_or_create()
            {
                Ok(service) => Ok(Some(service)),
                Err(e) => {
                    last_error = Some(e);
                    Ok(None)
                }
            }
        })
        .map_err(|e| match last_error {
            Some(last) => other("open or create the service", last),
            None => e,
        })?;
        Ok(Endpoint {
            service,
            _node: node,
        })
    }
}

/// The lazily made tx half.
struct IoxSender {
    name: String,
    size: usize,
    /// The publisher, then its service and node (a tuple drops its fields in order).
    port: Option<(Pub, Endpoint)>,
}

impl IoxSender {
    fn publisher(&mut self) -> io::Result<&Pub> {
        if self.port.is_none() {
            let end = Endpoint::open(&self.name, self.size)?;
            let publisher = end
                .service
                .publisher_builder()
                .initial_max_slice_len(self.size)
                .max_loaned_samples(1)
                .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                .create()
                .map_err(|e| other("publisher", e))?;
            // The subscriber must be there before the first message, or it would miss it.
            poll("waiting for the subscriber", || {
                Ok((end.service.dynamic_config().number_of_subscribers() > 0).then_some(()))
            })?;
            self.port = Some((publisher, end));
        }
        Ok(&self.port.as_ref().expect("made above").0)
    }
}

impl MsgSender for IoxSender {
    fn send_with(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> io::Result<()> {
        iox_send(self.publisher()?, len, fill)
    }
}

/// Loans a `len`-byte sample from `publisher`, lets `fill` write it in place and sends
/// it (zero-copy).
pub(crate) fn iox_send(
    publisher: &Pub,
    len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> io::Result<()> {
    let sample = publisher
        .loan_slice_uninit(len)
        .map_err(|e| other("loan", e))?;
    // SAFETY: the sample's payload is `len` bytes of the publisher's shared-memory data
    // segment, a mapping of a tmpfs file: every byte of it has a value the OS gave it
    // (zero) or an earlier sample wrote, so it is initialised memory for `u8`, which has
    // no invalid values; `fill` then writes the message over it.
    let mut sample = unsafe { sample.assume_init() };
    fill(sample.payload_mut());
    sample.send().map_err(|e| other("send", e))?;
    Ok(())
}

/// The lazily made rx half.
struct IoxReceiver {
    name: String,
    size: usize,
    port: Option<(Sub, Endpoint)>,
}

impl MsgReceiver for IoxReceiver {
    fn recv_with(&mut self, check: &mut dyn FnMut(&[u8]) -> bool) -> io::Result<bool> {
        if self.port.is_none() {
            let end = Endpoint::open(&self.name, self.size)?;
            let subscriber = end
                .service
                .subscriber_builder()
                .buffer_size(buffer_slots(self.size))
                .create()
                .map_err(|e| other("subscriber", e))?;
            self.port = Some((subscriber, end));
        }
        let subscriber = &self.port.as_ref().expect("made above").0;
        let sample = poll("receive", || {
            subscriber.receive().map_err(|e| other("receive", e))
        })?;
        Ok(check(sample.payload()))
    }
}

/// A harness channel over a new iceoryx2 service for `size`-byte messages.
pub fn channel(size: usize) -> io::Result<Channel> {
    if size == 0 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "iceoryx2: the benchmark sends messages of at least one byte",
        ));
    }
    let name = unique_name();
    Ok(Channel {
        tx: Box::new(IoxSender {
            name: name.clone(),
            size,
            port: None,
        }),
        rx: Box::new(IoxReceiver {
            name,
            size,
            port: None,
        }),
    })
}

/// Quietens iceoryx2's log to errors (it warns on every run that no config file was
/// found and it uses the defaults, which is what this benchmark wants).
pub fn quiet_log() {
    set_log_level(LogLevel::Error);
}

/// Removes what the iceoryx2 nodes of ended processes left behind in /dev/shm and
/// /tmp/iceoryx2 (the harness's peer processes end with `_exit`, without dropping their
/// ports and nodes). Returns how many dead nodes were cleaned up and how many could not
/// be.
///
/// Must run in a process that was not forked from the benchmark: iceoryx2 keeps the
/// process's unique id in a `LazyLock`, which a forked child inherits, so the peers'
/// nodes carry the benchmark's own id and look alive to it (and to any fork of it);
/// only another process sees them dead. `main` runs this in a new process of its own
/// executable.
pub fn clean_dead_nodes() -> io::Result<(u64, u64)> {
    let node = NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(|e| other("node", e))?;
    let state = node.try_cleanup_dead_nodes();
    Ok((state.cleanups, state.failed_cleanups))
}
