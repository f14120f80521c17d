//! Part 4: two senders and two receivers share a named `Channel<u64>`; the harness
//! SIGKILLs a random one at random moments and restarts it.
//!
//! What a kill may cost, from the Channel's docs (`crates/typed/src/channel.rs`): a
//! sender killed inside `send` loses the message it was sending (never torn, never
//! blocking the others); a receiver killed inside `recv` loses the message it was
//! reading (never redelivered); nothing else is lost or duplicated. As in the queue
//! part, a sender stores "next index = i + 1" *before* sending message `i`, so the one
//! message a sender kill can lose is known; a receiver marks each message right after
//! `recv` returns, so a receiver kill loses at most one message whose id is unknown.
//! There is no close: after the last kill the senders stop and leave (their handles
//! drop), and the receivers drain the channel and get `Disconnected`, which also
//! checks that killed senders are found dead (their registry entries reaped).
//!
//! Two kills in quick succession can leave no live receiver (or no live sender) for a
//! moment, before the restarted one registers: the channel then rightly answers
//! `Disconnected` (crossbeam's rule, across processes). So that this is not taken for
//! a failure, the harness keeps a handle registered on both sides for the whole round
//! (a receiver that never takes a message, and a sender of one [`KEEPER`] message that
//! consumers skip) and drops it once the producers are done.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use shmkit_testkit::{unique_name, ShmCleanup};
use shmkit_typed::{Channel, RecvError, SendError};

use crate::common::{
    code, ld, spawn, AtomicsOnly, Config, Control, Fleet, Rng, Totals, Violation, DEADLINE,
};

/// Small, so senders often wait for room and the buffer wraps many times.
const CAPACITY: usize = 1024;
const PRODUCERS: usize = 2;
const CONSUMERS: usize = 2;
/// The message by which the harness's keeper handle registers as a sender (skipped
/// by consumers; never a producer's id).
const KEEPER: u64 = u64::MAX;
/// Largest pause before each kill (uniformly random below it).
const KILL_GAP: Duration = Duration::from_millis(30);

#[repr(C)]
struct ChannelCtl {
    /// Per producer: the index it puts next (stored before the put).
    p_next: [AtomicU64; PRODUCERS],
    /// Detail of a failure reported by a child's exit code.
    bad_id: AtomicU64,
    /// Set by the harness after its last kill: producers stop putting.
    stop: AtomicU64,
}

// SAFETY: repr(C), atomics only.
unsafe impl AtomicsOnly for ChannelCtl {}

/// Item ids are `1..=PRODUCERS * per`: producer `p`'s item `i` is `p * per + i + 1`.
fn producer(name: &str, ctl: &ChannelCtl, p: usize, per: u64) -> i32 {
    let Ok(q) = Channel::<u64>::open(name) else {
        return code::OPEN;
    };
    loop {
        let i = ld(&ctl.p_next[p]);
        if i >= per || ld(&ctl.stop) != 0 {
            return code::OK;
        }
        // Intent first: a kill from here until `put` returns loses exactly this item.
        ctl.p_next[p].store(i + 1, Ordering::SeqCst);
        match q.send_timeout(p as u64 * per + i + 1, DEADLINE) {
            Ok(()) => {}
            Err(SendError::Timeout(_)) => return code::TIMEOUT,
            Err(SendError::Corrupt(_)) => return code::CORRUPT,
            Err(e) => {
                // The exit code alone does not say which error: the child's stderr does.
                eprintln!("channel torture: producer {p}: {e:?}");
                return code::ERROR;
            }
        }
    }
}

fn consumer(name: &str, ctl: &ChannelCtl, got: &[AtomicU8], total: u64) -> i32 {
    let Ok(q) = Channel::<u64>::open(name) else {
        return code::OPEN;
    };
    loop {
        match q.recv_timeout(DEADLINE) {
            Ok(KEEPER) => {}
            Ok(id) if id == 0 || id > total => {
                ctl.bad_id.store(id, Ordering::SeqCst);
                return code::CORRUPT;
            }
            Ok(id) => {
                if got[id as usize].fetch_add(1, Ordering::SeqCst) != 0 {
                    ctl.bad_id.store(id, Ordering::SeqCst);
                    return code::DUPLICATE;
                }
            }
            Err(RecvError::Disconnected) => return code::OK,
            Err(RecvError::Timeout) => return code::TIMEOUT,
            Err(RecvError::Corrupt { .. } | RecvError::Decode { .. }) => return code::CORRUPT,
            Err(e) => {
                eprintln!("channel torture: consumer: {e:?}");
                return code::ERROR;
            }
        }
    }
}

/// Channel totals beyond [`Totals`].
#[derive(Debug, Default)]
pub struct ChannelTotals {
    /// The common figures.
    pub t: Totals,
    /// Producer kills.
    pub producer_kills: usize,
    /// Consumer kills.
    pub consumer_kills: usize,
    /// Lost items that were in flight in a killed producer (the rest were lost by
    /// killed consumers).
    pub lost_by_producers: u64,
}

/// Runs the channel part.
pub fn run(cfg: &Config, seed: u64) -> Result<ChannelTotals, Violation> {
    let rounds = cfg.rounds(25, 200);
    // Upper bound of a producer's items per round (the harness stops them after its
    // kills).
    let per = 1 << 19;
    let kills = cfg.size(3, 6);
    let mut rng = Rng::new(seed);
    let mut tot = ChannelTotals::default();
    for round in 0..rounds {
        one_round(&mut rng, per, kills, &mut tot).map_err(|e| format!("round {round}: {e}"))?;
        tot.t.rounds += 1;
    }
    Ok(tot)
}

fn one_round(
    rng: &mut Rng,
    per: u64,
    kills: usize,
    tot: &mut ChannelTotals,
) -> Result<(), Violation> {
    let name = unique_name("torture-channel");
    let _cleanup = ShmCleanup::new(&name);
    let q = Channel::<u64>::create(&name, CAPACITY).map_err(|e| format!("create channel: {e}"))?;
    let total = PRODUCERS as u64 * per;
    let control = Control::<ChannelCtl>::new(total as usize + 1);
    let ctl = control.ctl();
    let got = control.bytes();

    // Registered as a receiver (the channel is empty: it takes nothing) and a sender
    // until the producers are done: see the module docs.
    let keeper = Channel::<u64>::open(&name).map_err(|e| format!("open channel: {e}"))?;
    match keeper.try_recv() {
        Err(RecvError::Empty) => {}
        other => return Err(format!("a new channel answered {other:?}, not Empty")),
    }
    keeper
        .send(KEEPER)
        .map_err(|e| format!("keeper send: {e:?}"))?;
    let names = ["producer 0", "producer 1", "consumer 0", "consumer 1"];
    let mut fleet = Fleet::start(&names, |role| {
        let name = name.as_str();
        if role < PRODUCERS {
            spawn(move || producer(name, ctl, role, per))
        } else {
            spawn(|| consumer(name, ctl, got, total))
        }
    });
    let detail = |e: Violation| format!("{e} (detail: id {})", ld(&ctl.bad_id));
    let mut inflight = HashSet::new();
    let (mut pk, mut ck) = (0, 0);
    for _ in 0..kills {
        rng.pause(KILL_GAP);
        match fleet.kill_random(rng, &[], 0).map_err(detail)? {
            Some(p) if p < PRODUCERS => {
                pk += 1;
                let next = ld(&ctl.p_next[p]);
                if next > 0 {
                    inflight.insert(p as u64 * per + next);
                }
                fleet.restart(p);
            }
            Some(c) => {
                ck += 1;
                fleet.restart(c);
            }
            None => {}
        }
    }
    rng.pause(KILL_GAP);
    ctl.stop.store(1, Ordering::SeqCst);
    let deadline = Instant::now() + DEADLINE + DEADLINE;
    for p in 0..PRODUCERS {
        fleet.wait(p, deadline).map_err(detail)?;
    }
    drop(keeper);
    // Every sender left (or was killed): the receivers drain and get Disconnected.
    for c in PRODUCERS..PRODUCERS + CONSUMERS {
        fleet.wait(c, deadline).map_err(detail)?;
    }
    match q.try_recv() {
        Err(RecvError::Disconnected) => {}
        other => {
            return Err(format!(
                "after the drain the channel answered {other:?}, not Disconnected"
            ))
        }
    }

    // Producer p put (or tried to put) its items 0..p_next[p].
    let mut attempted = 0;
    let mut lost = HashSet::new();
    for p in 0..PRODUCERS {
        let sent = ld(&ctl.p_next[p]);
        attempted += sent;
        for i in 0..per {
            let id = p as u64 * per + i + 1;
            match (got[id as usize].load(Ordering::SeqCst), i < sent) {
                (0, true) => {
                    lost.insert(id);
                }
                (0, false) | (1, true) => {}
                (1, false) => return Err(format!("item {id} arrived but was never put")),
                (k, _) => return Err(format!("item {id} was delivered {k} times")),
            }
        }
    }
    let unexplained = lost.iter().filter(|id| !inflight.contains(id)).count();
    if unexplained > ck {
        return Err(format!(
            "{} items lost ({unexplained} not in flight in a killed producer) with {ck} consumer kills: \
             at most one per killed consumer; lost {:?}",
            lost.len(),
            lost.iter().take(10).collect::<Vec<_>>()
        ));
    }
    tot.t.kills += pk + ck;
    tot.producer_kills += pk;
    tot.consumer_kills += ck;
    tot.t.moved += attempted - lost.len() as u64;
    tot.t.lost += lost.len() as u64;
    tot.lost_by_producers += (lost.len() - unexplained) as u64;
    tot.t.allowed += (pk + ck) as u64;
    Ok(())
}
