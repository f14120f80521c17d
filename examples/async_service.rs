//! An async service on tokio: one `select!` loop over a shmkit `Channel` fed by
//! another process, a Unix socket, a timer and Ctrl-C, on one executor thread and
//! without a thread per wait (shmkit's futures sleep through the per-process doorbell).
//!
//! Run: `cargo run --release --example async_service`. It starts a producer process
//! (this program again, `--child producer NAME`) that sends jobs through the channel,
//! and a client task that asks the service for its count over the Unix socket. The
//! service stops when the producer has left and the client was answered, or on Ctrl-C.
//! `--jobs N` sets how many jobs the producer sends (default 2000).

mod common;

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shmkit::typed::{Channel, RecvError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    id: u64,
    weight: u32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return producer(&args[3], args[4].parse()?);
    }
    let jobs: u64 = match args.iter().position(|a| a == "--jobs") {
        Some(i) => args[i + 1].parse()?,
        None => 2000,
    };
    // One executor thread: shmkit's waits do not block it.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(service(jobs))
}

/// The producer process: opens the channel by name and sends `jobs` jobs.
fn producer(name: &str, jobs: u64) -> Result<(), Box<dyn std::error::Error>> {
    let tx = Channel::<Job>::open(name)?;
    for id in 0..jobs {
        tx.send(Job {
            id,
            weight: (id % 7) as u32,
        })?;
    }
    Ok(()) // dropping the last sender disconnects the channel
}

async fn service(jobs: u64) -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("shmkit-example-async-{}", std::process::id());
    let mut rx = Channel::<Job>::create(&name, 1 << 16)?; // removes the name on drop
    let socket = std::env::temp_dir().join(format!("{name}.sock"));
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)?;
    let mut producer =
        common::spawn_self_inherit(&["--child", "producer", &name, &jobs.to_string()]);
    let served = serve(&mut rx, &listener, &socket).await;
    let _ = std::fs::remove_file(&socket);
    // Waited for on every path, also when serving failed.
    let status = producer.wait()?;
    let (received, weight, reply) = served?;
    println!("received {received} jobs (total weight {weight}) from a producer process");
    println!("the socket client was told: {}", reply.trim());
    if status.success() && received == jobs && reply.trim() == jobs.to_string() {
        println!("OK: every job received, the socket answered, on one executor thread");
        Ok(())
    } else {
        Err("the service missed jobs or the client's answer".into())
    }
}

/// The service loop over the channel, the socket, a timer and Ctrl-C, with a client
/// task that asks for the count over the socket. Returns the jobs received, their
/// total weight and what the client was told.
async fn serve(
    rx: &mut Channel<Job>,
    listener: &UnixListener,
    socket: &Path,
) -> Result<(u64, u64, String), Box<dyn std::error::Error>> {
    let client_path = socket.to_path_buf();
    let client = tokio::spawn(async move {
        let stream = UnixStream::connect(&client_path).await?;
        let (read, mut write) = stream.into_split();
        write.write_all(b"count\n").await?;
        let mut line = String::new();
        BufReader::new(read).read_line(&mut line).await?;
        Ok::<String, std::io::Error>(line)
    });
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    let (mut received, mut weight, mut producer_left) = (0u64, 0u64, false);
    let mut pending_client: Option<UnixStream> = None;
    let mut answered = false;
    while !(producer_left && answered) {
        tokio::select! {
            // Cancel-safe: a `recv_async` dropped because another branch won takes
            // nothing from the channel.
            msg = rx.recv_async(), if !producer_left => match msg {
                Ok(job) => {
                    received += 1;
                    weight += u64::from(job.weight);
                }
                Err(RecvError::Disconnected) => producer_left = true,
                Err(e) => return Err(e.into()),
            },
            conn = listener.accept(), if pending_client.is_none() && !answered => {
                pending_client = Some(conn?.0);
            }
            _ = ticks.tick() => {}
            _ = tokio::signal::ctrl_c() => {
                println!("Ctrl-C: shutting down with {received} jobs received");
                break;
            }
        }
        // The client is answered once every job is in.
        if producer_left && !answered {
            if let Some(mut conn) = pending_client.take() {
                let mut line = String::new();
                let (read, mut write) = conn.split();
                BufReader::new(read).read_line(&mut line).await?;
                if line.trim() == "count" {
                    write.write_all(format!("{received}\n").as_bytes()).await?;
                }
                answered = true;
            }
        }
    }
    let reply = client.await??;
    Ok((received, weight, reply))
}
