//! The Rust side of python/tests/test_interop.py: one command per run, on objects
//! opened (or created) by name with shmkit's Rust API. Prints its result on stdout;
//! any failure exits non-zero with the error on stderr.
//!
//! ```text
//! shmkit-pypeer value-get NAME           prints a SharedValue<i64>
//! shmkit-pypeer value-add NAME N         adds 1 to it N times, each under its lock
//! shmkit-pypeer array-sum NAME           prints the sum of a SharedArray<f64>
//! shmkit-pypeer lock-hold NAME           locks a SharedValue<()> (a Python Lock), prints
//!                                        "locked", then waits to be killed
//! shmkit-pypeer lock-check NAME          locks it (repairing a dead holder's lock),
//!                                        prints "consistent" or "owner-died", unlocks
//! shmkit-pypeer ring-write NAME N        writes N messages "msg-<i>" into a Ring, closes
//! shmkit-pypeer ring-read NAME           reads a Ring to its close, prints "<n> <bytes>"
//! shmkit-pypeer named-lock-hold NAME     takes the NamedLock NAME, prints "locked", then
//!                                        waits to be killed
//! shmkit-pypeer queue-put NAME N        puts N byte items "item-<i>" into a Python
//!                                        shmkit.Queue (tag byte 0, then the bytes),
//!                                        then leaves (the getters see it go)
//! shmkit-pypeer queue-put-raw NAME HEX.. puts each HEX as one whole record (tag byte
//!                                        and payload, as another program might), stays
//! shmkit-pypeer queue-get NAME           gets items of a shmkit.Queue until every putter
//!                                        left; prints "<bytes items> <pickles> <bytes>
//!                                        <ints> <their sum> <strs and floats> <plain
//!                                        data>" (the raw items' total length; pickles,
//!                                        strs, floats and plain data are counted, not
//!                                        decoded)
//! shmkit-pypeer queue-fill NAME          puts 8-byte items (tag byte 0) without waiting
//!                                        until the queue refuses one; prints "<how
//!                                        many got in> <the queue's maxsize>"
//! shmkit-pypeer tickets-buy NAME [START]  sells tickets from a SharedValue<i64> count, one
//!                                        locked check-and-decrement each, until none
//!                                        are left (after waiting at the SharedBarrier
//!                                        START, if given); prints how many it sold
//! ```

use std::io::Write;
use std::time::Duration;

use shmkit_sync::{LockError, NamedLock};
use shmkit_typed::{
    Channel, ReadError, RecvError, Ring, SendError, SharedArray, SharedBarrier, SharedValue,
    TypeName,
};

type Res = Result<(), Box<dyn std::error::Error>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let r = match arg(0) {
        "value-get" => value_get(arg(1)),
        "value-add" => value_add(arg(1), arg(2).parse().unwrap_or(0)),
        "array-sum" => array_sum(arg(1)),
        "lock-hold" => lock_hold(arg(1)),
        "lock-check" => lock_check(arg(1)),
        "ring-write" => ring_write(arg(1), arg(2).parse().unwrap_or(0)),
        "ring-read" => ring_read(arg(1)),
        "named-lock-hold" => named_lock_hold(arg(1)),
        "queue-put" => queue_put(arg(1), arg(2).parse().unwrap_or(0)),
        "queue-put-raw" => queue_put_raw(arg(1), args.get(2..).unwrap_or_default()),
        "queue-get" => queue_get(arg(1)),
        "queue-fill" => queue_fill(arg(1)),
        "tickets-buy" => tickets_buy(arg(1), arg(2)),
        other => Err(format!("unknown command {other:?}").into()),
    };
    if let Err(e) = r {
        eprintln!("shmkit-pypeer: {e}");
        std::process::exit(1);
    }
}

fn value_get(name: &str) -> Res {
    let v = SharedValue::<i64>::open(name)?;
    println!("{}", v.get()?);
    Ok(())
}

fn value_add(name: &str, n: u64) -> Res {
    let v = SharedValue::<i64>::open(name)?;
    for _ in 0..n {
        v.update(|x| *x += 1)?;
    }
    println!("done");
    Ok(())
}

fn array_sum(name: &str) -> Res {
    let a = SharedArray::<f64>::open_any_len(name)?;
    println!("{}", a.copy_to_vec()?.iter().sum::<f64>());
    Ok(())
}

fn lock_hold(name: &str) -> Res {
    let lock = SharedValue::<()>::open(name)?;
    let guard = lock.lock().map_err(LockError::without_guard)?;
    println!("locked");
    std::io::stdout().flush()?;
    loop {
        std::thread::sleep(Duration::from_secs(60)); // until killed
        let _ = &guard;
    }
}

fn named_lock_hold(name: &str) -> Res {
    let guard = NamedLock::acquire(name, Duration::from_secs(10))?;
    println!("locked");
    std::io::stdout().flush()?;
    loop {
        std::thread::sleep(Duration::from_secs(60)); // until killed
        let _ = &guard;
    }
}

fn lock_check(name: &str) -> Res {
    let lock = SharedValue::<()>::open(name)?;
    let state = match lock.lock_timeout(Duration::from_secs(10)) {
        Ok(_) => "consistent",
        Err(LockError::OwnerDied(g)) | Err(LockError::Poisoned(g)) => {
            g.make_consistent();
            "owner-died"
        }
        Err(e) => return Err(e.without_guard().into()),
    };
    println!("{state}");
    Ok(())
}

fn ring_write(name: &str, n: u64) -> Res {
    let mut ring = Ring::open(name)?;
    for i in 0..n {
        ring.write(format!("msg-{i}").as_bytes())?;
    }
    ring.close()?;
    println!("done");
    Ok(())
}

fn ring_read(name: &str) -> Res {
    let mut ring = Ring::open(name)?;
    let (mut n, mut bytes) = (0u64, 0usize);
    let mut buf = Vec::new();
    loop {
        match ring.read_into_timeout(&mut buf, Duration::from_secs(30)) {
            Ok(len) => {
                n += 1;
                bytes += len;
            }
            Err(ReadError::Closed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("{n} {bytes}");
    Ok(())
}

fn tickets_buy(name: &str, start: &str) -> Res {
    let count = SharedValue::<i64>::open(name)?;
    if !start.is_empty() {
        SharedBarrier::open(start)?.wait_timeout(Duration::from_secs(30))?;
    }
    let mut sold = 0u64;
    while count.update(|left| {
        let sell = *left > 0;
        if sell {
            *left -= 1;
        }
        sell
    })? {
        sold += 1;
    }
    println!("{sold}");
    Ok(())
}

/// The message type name of a Python `shmkit.Queue`'s channel (python/src/queue.rs).
enum PyQueue {}

impl TypeName for PyQueue {
    fn name<T: ?Sized>() -> &'static str {
        "shmkit.Queue/3"
    }
}

/// Record tags of a `shmkit.Queue` (python/src/queue.rs): raw bytes, a pickle, an
/// `int` (i64 LE), a `str` (UTF-8), a `float` (f64 LE), plain data (docs/layout.md).
const TAG_BYTES: u8 = 0;
const TAG_PICKLE: u8 = 1;
const TAG_INT: u8 = 2;
const TAG_STR: u8 = 3;
const TAG_FLOAT: u8 = 4;
const TAG_DATA: u8 = 5;

fn queue_put_raw(name: &str, records: &[String]) -> Res {
    let q = Channel::<Vec<u8>, PyQueue>::open(name)?;
    for hex in records {
        let rec = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()?;
        q.send_bytes(&rec)?;
    }
    // Stays a putter until told to go, so that the getter finds every record first.
    println!("done");
    std::io::stdout().flush()?;
    let _ = std::io::stdin().read_line(&mut String::new());
    Ok(())
}

fn queue_put(name: &str, n: u64) -> Res {
    let q = Channel::<Vec<u8>, PyQueue>::open(name)?;
    for i in 0..n {
        let item = format!("item-{i}");
        q.send_with(1 + item.len(), |buf| {
            buf[0] = TAG_BYTES;
            buf[1..].copy_from_slice(item.as_bytes());
        })?;
    }
    drop(q); // leaves: the getters drain, then see every putter gone
    println!("done");
    Ok(())
}

/// Puts raw items without waiting until the queue refuses one (full in bytes or at
/// its bound in items), then prints how many got in and the queue's bound.
fn queue_fill(name: &str) -> Res {
    let q = Channel::<Vec<u8>, PyQueue>::open(name)?;
    let mut n = 0u64;
    loop {
        match q.try_send_with(9, |buf| {
            buf[0] = TAG_BYTES;
            buf[1..].copy_from_slice(&n.to_le_bytes());
        }) {
            Ok(()) => n += 1,
            Err(SendError::Full(())) => break,
            Err(e) => return Err(e.into()),
        }
    }
    // Stays registered as a putter until printed: the getters do not see it leave
    // before its items are counted.
    println!("{n} {}", q.max_messages().unwrap_or(0));
    Ok(())
}

fn queue_get(name: &str) -> Res {
    let q = Channel::<Vec<u8>, PyQueue>::open(name)?;
    let (mut raw, mut pickles, mut bytes) = (0u64, 0u64, 0usize);
    let (mut ints, mut int_sum, mut others, mut data) = (0u64, 0i64, 0u64, 0u64);
    loop {
        match q.recv_with_timeout(Duration::from_secs(30), |rec| {
            let word = rec.get(1..).and_then(|p| <[u8; 8]>::try_from(p).ok());
            (rec.first().copied(), rec.len().saturating_sub(1), word)
        }) {
            Ok((Some(TAG_BYTES), len, _)) => {
                raw += 1;
                bytes += len;
            }
            Ok((Some(TAG_PICKLE), _, _)) => pickles += 1,
            Ok((Some(TAG_INT), _, Some(w))) => {
                ints += 1;
                int_sum = int_sum.wrapping_add(i64::from_le_bytes(w));
            }
            Ok((Some(TAG_STR), _, _)) | Ok((Some(TAG_FLOAT), _, Some(_))) => others += 1,
            Ok((Some(TAG_DATA), _, _)) => data += 1,
            Ok((tag, len, _)) => {
                return Err(format!("a record of tag {tag:?} ({len} payload bytes)").into());
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("{raw} {pickles} {bytes} {ints} {int_sum} {others} {data}");
    Ok(())
}
