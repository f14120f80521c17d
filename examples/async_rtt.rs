//! Round trips between two processes, in one run: a ring ping-pong where the parent
//! waits blocking (spin, then futex), the same where it awaits `read_async` on a tokio
//! current-thread runtime (with the `tokio` feature, on Linux 6.7+, woken through the
//! runtime's reactor by io_uring, else by the doorbell's helper thread), and a tokio
//! `UnixStream` ping-pong; a futex ping-pong where both sides sleep (the floor of the
//! sleeping regime); and `read_async` again with the optional bounded spin in
//! poll (`shmkit::sync::future::set_poll_spin`, 50 µs, as long as the blocking read
//! polls), beside the spinning blocking read. The echoing child is the same blocking
//! program in the ring cases and a blocking `UnixStream` echo in the socket case.
//!
//! Run: `cargo run --release --example async_rtt [-- --rounds N]`. Prints the median and
//! p99 of each, and the ratios the async issue asks for (async / blocking, async /
//! Unix socket). The machine's noise shows in repeated runs: give ranges.

mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmkit_sys::futex;

use shmkit::typed::Ring;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--child") if args[2] == "ring" => return ring_echo(&args[3], &args[4]),
        Some("--child") if args[2] == "unix" => return unix_echo(&args[3]),
        Some("--child") if args[2] == "futex" => return futex_echo(&args[3], &args[4]),
        _ => {}
    }
    let rounds: usize = match args.iter().position(|a| a == "--rounds") {
        Some(i) => args[i + 1].parse()?,
        None => 20_000,
    };
    let blocking = ring_rtt(rounds, false)?;
    let asynch = ring_rtt(rounds, true)?;
    let unix = unix_rtt(rounds)?;
    let futex = futex_rtt(rounds)?;
    shmkit::sync::future::set_poll_spin(Duration::from_micros(50));
    let spun = ring_rtt(rounds, true)?;
    shmkit::sync::future::set_poll_spin(Duration::ZERO);
    let s = median(&spun);
    let (b, a, u, f) = (
        median(&blocking),
        median(&asynch),
        median(&unix),
        median(&futex),
    );
    println!("{rounds} round trips of 8 bytes between two processes (median / p99):");
    println!(
        "  ring, blocking read       {:>8.2} µs / {:>8.2} µs",
        us(b),
        us(p99(&blocking))
    );
    println!(
        "  ring, read_async (tokio)  {:>8.2} µs / {:>8.2} µs",
        us(a),
        us(p99(&asynch))
    );
    println!(
        "  tokio UnixStream          {:>8.2} µs / {:>8.2} µs",
        us(u),
        us(p99(&unix))
    );
    println!(
        "  futex ping-pong, sleeping {:>8.2} µs / {:>8.2} µs",
        us(f),
        us(p99(&futex))
    );
    println!(
        "  ring, read_async + spin   {:>8.2} µs / {:>8.2} µs",
        us(s),
        us(p99(&spun))
    );
    println!(
        "  async / blocking = {:.2}, async / unix socket = {:.2}, async / sleeping futex ping-pong = {:.2}, async with spin / blocking = {:.2}",
        a / b,
        a / u,
        a / f,
        s / b
    );
    Ok(())
}

/// A child process that is killed and reaped if the run stops early (an error).
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn us(nanos: f64) -> f64 {
    nanos / 1000.0
}

fn median(v: &[Duration]) -> f64 {
    let mut v: Vec<_> = v.iter().map(|d| d.as_nanos() as f64).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p99(v: &[Duration]) -> f64 {
    let mut v: Vec<_> = v.iter().map(|d| d.as_nanos() as f64).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() * 99 / 100]
}

/// The child of the ring cases: reads each message from `ping` and writes it to
/// `pong`, blocking, until `ping` is closed.
fn ring_echo(ping: &str, pong: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut rx = Ring::open(ping)?;
    let mut tx = Ring::open(pong)?;
    let mut buf = Vec::new();
    while rx.read_into(&mut buf).is_ok() {
        tx.write(&buf)?;
    }
    Ok(())
}

fn ring_rtt(rounds: usize, asynch: bool) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let id = format!(
        "{}-{}-{}",
        std::process::id(),
        asynch,
        shmkit::sync::future::poll_spin().as_nanos()
    );
    let (ping, pong) = (
        format!("shmkit-rtt-ping-{id}"),
        format!("shmkit-rtt-pong-{id}"),
    );
    let mut tx = Ring::create(&ping, 1 << 12)?;
    let mut rx = Ring::create(&pong, 1 << 12)?;
    let mut child = Reap(common::spawn_self_inherit(&[
        "--child", "ring", &ping, &pong,
    ]));
    let mut times = Vec::with_capacity(rounds);
    let mut buf = Vec::new();
    if asynch {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        rt.block_on(async {
            for i in 0..rounds as u64 {
                let t = Instant::now();
                tx.write(&i.to_le_bytes())?;
                rx.read_async(&mut buf).await?;
                times.push(t.elapsed());
            }
            Ok::<(), Box<dyn std::error::Error>>(())
        })?;
    } else {
        for i in 0..rounds as u64 {
            let t = Instant::now();
            tx.write(&i.to_le_bytes())?;
            rx.read_into(&mut buf)?;
            times.push(t.elapsed());
        }
    }
    tx.close()?;
    child.0.wait()?;
    Ok(times)
}

/// The child of the socket case: echoes 8-byte messages until the stream ends.
fn unix_echo(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    let mut buf = [0u8; 8];
    while s.read_exact(&mut buf).is_ok() {
        s.write_all(&buf)?;
    }
    Ok(())
}

fn unix_rtt(rounds: usize) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let path = std::env::temp_dir().join(format!("shmkit-rtt-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let times = rt.block_on(async {
        let listener = tokio::net::UnixListener::bind(&path)?;
        let path_str = path.to_str().ok_or("a UTF-8 temp path")?;
        let mut child = Reap(common::spawn_self_inherit(&["--child", "unix", path_str]));
        let (mut s, _) = listener.accept().await?;
        let mut times = Vec::with_capacity(rounds);
        let mut buf = [0u8; 8];
        for i in 0..rounds as u64 {
            let t = Instant::now();
            s.write_all(&i.to_le_bytes()).await?;
            s.read_exact(&mut buf).await?;
            times.push(t.elapsed());
        }
        drop(s);
        child.0.wait()?;
        Ok::<_, Box<dyn std::error::Error>>(times)
    })?;
    let _ = std::fs::remove_file(&path);
    Ok(times)
}

/// The two futex words of the sleeping ping-pong, on their own cache lines of the
/// segment's payload.
fn futex_words(seg: &shmkit::segment::Segment) -> (&AtomicU32, &AtomicU32) {
    let p = seg.payload_ptr();
    // SAFETY: the payload is at least 256 bytes (`futex_rtt`), 128-byte aligned and
    // mapped while `seg` lives; both processes touch these words only atomically.
    unsafe { (&*p.cast::<AtomicU32>(), &*p.add(128).cast::<AtomicU32>()) }
}

/// The child of the futex case: waits (sleeping, no spin) for each ping, answers it.
fn futex_echo(name: &str, rounds: &str) -> Result<(), Box<dyn std::error::Error>> {
    let seg = shmkit::segment::Segment::options().posix(name).open()?;
    let (ping, pong) = futex_words(&seg);
    for i in 1..=rounds.parse::<u32>()? {
        loop {
            let v = ping.load(Ordering::Acquire);
            if v == i {
                break;
            }
            futex::wait(ping, v, None)?;
        }
        pong.store(i, Ordering::Release);
        futex::wake(pong, 1);
    }
    Ok(())
}

/// The floor of the sleeping regime: a ping-pong on two futex words between two
/// processes, each side sleeping in `futex_wait` (no spin) until woken: one cross-CPU
/// wake-up per direction, the least any sleeping waiter pays.
fn futex_rtt(rounds: usize) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let name = format!("shmkit-rtt-futex-{}", std::process::id());
    let seg = shmkit::segment::Segment::options()
        .posix(&name)
        .size(256)
        .create()?;
    let (ping, pong) = futex_words(&seg);
    let mut child = Reap(common::spawn_self_inherit(&[
        "--child",
        "futex",
        &name,
        &rounds.to_string(),
    ]));
    let mut times = Vec::with_capacity(rounds);
    for i in 1..=rounds as u32 {
        let t = Instant::now();
        ping.store(i, Ordering::Release);
        futex::wake(ping, 1);
        loop {
            let v = pong.load(Ordering::Acquire);
            if v == i {
                break;
            }
            futex::wait(pong, v, None)?;
        }
        times.push(t.elapsed());
    }
    child.0.wait()?;
    Ok(times)
}
