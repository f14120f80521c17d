//! The command line of `shmkit-bridge` (and of `shmkit bridge`, which embeds
//! [`BridgeArgs`]).
//!
//! ```text
//! shmkit-bridge --export channel:jobs --key site/a/jobs --listen tcp/127.0.0.1:7447
//! shmkit-bridge --import site/a/jobs --into channel:jobs --connect tcp/127.0.0.1:7447
//! ```
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::bridge::{self, DEFAULT_WINDOW};
use crate::{BridgeError, LocalSpec, ZenohOptions};

/// One half of a bridge.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("side").required(true).args(["export", "import"])))]
pub struct BridgeArgs {
    /// Export this local object (channel:NAME, topic:NAME or ring:NAME) to --key.
    #[arg(long, value_name = "KIND:NAME", requires = "key")]
    pub export: Option<String>,
    /// The key expression to export to.
    #[arg(long)]
    pub key: Option<String>,
    /// Import this key expression into --into.
    #[arg(long, value_name = "KEY", requires = "into")]
    pub import: Option<String>,
    /// The local object to import into (it must exist).
    #[arg(long, value_name = "KIND:NAME")]
    pub into: Option<String>,
    /// Zenoh endpoint to listen on (repeatable); default tcp/127.0.0.1:7447 when no
    /// --connect is given.
    #[arg(long, value_name = "ENDPOINT")]
    pub listen: Vec<String>,
    /// Zenoh endpoint to connect to (repeatable), retried with backoff.
    #[arg(long, value_name = "ENDPOINT")]
    pub connect: Vec<String>,
    /// A Zenoh configuration file (json5: TLS, authentication...), applied first.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Messages in flight beyond the importer's acknowledgement (and at most 16 MiB).
    #[arg(long, default_value_t = DEFAULT_WINDOW)]
    pub window: u32,
    /// Print the counters to stderr every SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub stats: Option<u64>,
}

/// Blocks SIGINT and SIGTERM in this thread (and every thread started after it,
/// Zenoh's included), so that [`wait_signal`] receives them.
fn block_signals() -> libc::sigset_t {
    // libc: rustix has no sigprocmask/sigtimedwait outside its unstable runtime module.
    // SAFETY: sigemptyset/sigaddset initialise a local set; pthread_sigmask changes
    // only this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits up to `timeout` for a signal of `set`; `true` if one came.
fn wait_signal(set: &libc::sigset_t, timeout: Duration) -> bool {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `set` is an initialised signal set, `ts` a valid timespec; a null info.
    let r = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    r > 0
}

/// Runs one half of a bridge until SIGINT/SIGTERM or an error; prints the counters
/// on stderr then (and every `--stats` seconds). Returns the process exit code.
pub fn run(args: BridgeArgs) -> i32 {
    let set = block_signals();
    match start(&args) {
        Ok((bridge, what)) => {
            eprintln!("shmkit-bridge: {what}");
            let bridge = Arc::new(bridge);
            let (stop_tx, stop_rx) = std::sync::mpsc::channel::<BridgeError>();
            {
                let bridge = bridge.clone();
                std::thread::spawn(move || {
                    let _ = stop_tx.send(bridge.wait());
                });
            }
            let period = args.stats.map(Duration::from_secs);
            let step = period.unwrap_or(Duration::from_secs(3600));
            // This thread waits for signals (sigtimedwait wakes at a signal or at the
            // stats period); the bridge's end is turned into a SIGTERM to itself.
            let failed = Arc::new(AtomicBool::new(false));
            {
                let pid = std::process::id();
                let failed = failed.clone();
                std::thread::spawn(move || {
                    if let Ok(e) = stop_rx.recv() {
                        eprintln!("shmkit-bridge: stopped: {e}");
                        // Relaxed: the signal that follows orders it (sigtimedwait).
                        failed.store(true, Ordering::Relaxed);
                        let _ = rustix::process::kill_process(
                            rustix::process::Pid::from_raw(pid as i32).expect("own pid"),
                            rustix::process::Signal::TERM,
                        );
                    }
                });
            }
            loop {
                let signalled = wait_signal(&set, step);
                if signalled || period.is_some() {
                    eprintln!("shmkit-bridge: {}", bridge.stats());
                }
                if signalled {
                    return if failed.load(Ordering::Relaxed) { 1 } else { 0 };
                }
            }
        }
        Err(e) => {
            eprintln!("shmkit-bridge: {e}");
            2
        }
    }
}

fn start(args: &BridgeArgs) -> Result<(bridge::Bridge, String), BridgeError> {
    let opts = ZenohOptions {
        listen: args.listen.clone(),
        connect: args.connect.clone(),
        config: args.config.clone(),
        connect_for: None,
    };
    match (&args.export, &args.import) {
        (Some(local), None) => {
            let spec: LocalSpec = local.parse()?;
            let key = args.key.as_deref().unwrap_or_default();
            bridge::check_key(key)?;
            let session = opts.open()?;
            let b = bridge::export(&session, &spec, key, args.window)?;
            Ok((b, format!("exporting {local} to {key}")))
        }
        (None, Some(key)) => {
            let into = args.into.as_deref().unwrap_or_default();
            let spec: LocalSpec = into.parse()?;
            bridge::check_key(key)?;
            let session = opts.open()?;
            let b = bridge::import(&session, key, &spec, args.window)?;
            Ok((b, format!("importing {key} into {into}")))
        }
        _ => Err(BridgeError::Spec(
            "give either --export KIND:NAME --key KEY or --import KEY --into KIND:NAME".into(),
        )),
    }
}
