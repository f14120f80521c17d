//! Bridges local shmkit objects over [Zenoh](https://zenoh.io): a [`Channel`], a
//! broadcast [`Topic`] or a [`Ring`] on one host is exported to a Zenoh key
//! expression and imported into an object of the same kind on another, so that a
//! pipeline that outgrows one host keeps its API (see docs/distributed.md for the
//! semantics: exactly once and in order while nothing fails; across restarts no
//! duplicates, gaps reported).
//!
//! - [`export`](bridge::export) takes the messages of the local object (a channel's
//!   receiver; a topic's subscriber; the ring's **reader role**) and publishes each,
//!   unchanged, in an [`envelope`] numbered from 1 under a fresh source id.
//! - [`import`](bridge::import) puts them into the local object (a channel's sender;
//!   the topic's **single writer**; the ring's writer), in order, each once, and
//!   acknowledges on `<key>/@ack`; the exporter keeps at most a window of messages
//!   unacknowledged (the credit path: no Zenoh callback ever blocks).
//! - The importer persists what it delivered in a small shared object
//!   ([`state`]), so a restarted importer drops duplicates; the exporter persists
//!   what it took, so that what a killed exporter held is counted as gaps.
//!
//! The `shmkit-bridge` binary (and `shmkit bridge` with the CLI's `bridge` feature)
//! runs one half from the command line ([`cli`]).
//!
//! ```no_run
//! use shmkit_zenoh::{bridge, ZenohOptions};
//!
//! // Host A: the channel `jobs` to `site/a/jobs`, listening on loopback.
//! let session = ZenohOptions::listen("tcp/127.0.0.1:7447").open()?;
//! let exporter = bridge::export(&session, &"channel:jobs".parse()?, "site/a/jobs", 256)?;
//! // Host B (another process): `site/a/jobs` into its own channel `jobs`.
//! let session_b = ZenohOptions::connect("tcp/127.0.0.1:7447").open()?;
//! let importer = bridge::import(&session_b, "site/a/jobs", &"channel:jobs".parse()?, 256)?;
//! println!("{}", importer.stats());
//! # Ok::<(), shmkit_zenoh::BridgeError>(())
//! ```
//!
//! [`Channel`]: shmkit_typed::Channel
//! [`Topic`]: shmkit_typed::topic::Topic
//! [`Ring`]: shmkit_typed::Ring
use std::path::PathBuf;
use std::time::Duration;

use zenoh::{Config, Session, Wait};

pub mod bridge;
pub mod cli;
pub mod envelope;
pub mod local;
pub mod state;

pub use bridge::{Bridge, Stats};
pub use envelope::EnvelopeError;
pub use local::LocalSpec;

/// Why a bridge could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// Not a usable key expression.
    #[error("bad key expression {key:?}: {why}")]
    Key {
        /// The key given.
        key: String,
        /// Why it is refused.
        why: String,
    },
    /// Not `channel:NAME`, `topic:NAME` or `ring:NAME`.
    #[error("bad local object {0:?}: write channel:NAME, topic:NAME or ring:NAME")]
    Spec(String),
    /// The local object could not be opened (missing, another type, corrupt).
    #[error("cannot open the local object {name}: {source}")]
    Open {
        /// Its segment name.
        name: String,
        /// shmkit's reason.
        #[source]
        source: shmkit_typed::OpenError,
    },
    /// The local object failed (closed, corrupt, its peer died...).
    #[error("local object: {0}")]
    Local(String),
    /// The importer's state object is unusable.
    #[error("importer state: {0}")]
    State(String),
    /// Zenoh failed (configuration, session, declaration).
    #[error("zenoh: {0}")]
    Zenoh(String),
}

/// Where a bridge's Zenoh session listens and connects.
#[derive(Debug, Clone, Default)]
pub struct ZenohOptions {
    /// Endpoints to listen on (`tcp/127.0.0.1:7447`).
    pub listen: Vec<String>,
    /// Endpoints to connect to.
    pub connect: Vec<String>,
    /// A Zenoh configuration file (json5), applied first.
    pub config: Option<PathBuf>,
    /// Give up connecting after this long (`None`: retry forever).
    pub connect_for: Option<Duration>,
}

impl ZenohOptions {
    /// Listen on `endpoint`.
    pub fn listen(endpoint: &str) -> Self {
        ZenohOptions {
            listen: vec![endpoint.to_owned()],
            ..Self::default()
        }
    }

    /// Connect to `endpoint`.
    pub fn connect(endpoint: &str) -> Self {
        ZenohOptions {
            connect: vec![endpoint.to_owned()],
            ..Self::default()
        }
    }

    /// The Zenoh configuration: the file if any, then the endpoints given. Without a
    /// file: peer mode, no multicast scouting, listening on `tcp/127.0.0.1:7447` when
    /// neither endpoint kind is given (loopback only, never every interface).
    ///
    /// # Errors
    /// [`BridgeError::Zenoh`] for a file or endpoint Zenoh refuses.
    pub fn config(&self) -> Result<Config, BridgeError> {
        let z = |e: zenoh::Error| BridgeError::Zenoh(e.to_string());
        let list = |v: &[String]| {
            let quoted: Vec<String> = v.iter().map(|e| format!("{e:?}")).collect();
            format!("[{}]", quoted.join(","))
        };
        let mut c = match &self.config {
            Some(p) => Config::from_file(p).map_err(z)?,
            None => {
                let mut c = Config::default();
                c.insert_json5("mode", r#""peer""#).map_err(z)?;
                c.insert_json5("scouting/multicast/enabled", "false")
                    .map_err(z)?;
                let listen = if self.listen.is_empty() && self.connect.is_empty() {
                    vec!["tcp/127.0.0.1:7447".to_owned()]
                } else {
                    self.listen.clone()
                };
                c.insert_json5("listen/endpoints", &list(&listen))
                    .map_err(z)?;
                c
            }
        };
        if self.config.is_some() && !self.listen.is_empty() {
            c.insert_json5("listen/endpoints", &list(&self.listen))
                .map_err(z)?;
        }
        if !self.connect.is_empty() {
            c.insert_json5("connect/endpoints", &list(&self.connect))
                .map_err(z)?;
            // Fail fast so that `open` retries with a visible backoff.
            c.insert_json5("connect/timeout_ms", "0").map_err(z)?;
            c.insert_json5("connect/exit_on_failure", "true")
                .map_err(z)?;
        }
        Ok(c)
    }

    /// Opens the session; an unreachable endpoint is retried with an exponential
    /// backoff (0.1 s to 5 s), each attempt said on stderr.
    ///
    /// # Errors
    /// [`BridgeError::Zenoh`]: a bad configuration, or `connect_for` passed.
    pub fn open(&self) -> Result<Session, BridgeError> {
        let config = self.config()?;
        let start = std::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            match zenoh::open(config.clone()).wait() {
                Ok(s) => return Ok(s),
                Err(e) => {
                    let late = self.connect_for.is_some_and(|d| start.elapsed() >= d);
                    if self.connect.is_empty() || late {
                        return Err(BridgeError::Zenoh(e.to_string()));
                    }
                    eprintln!(
                        "shmkit-bridge: cannot reach {}: {e}; retrying in {delay:?}",
                        self.connect.join(", ")
                    );
                    // A retry backoff in seconds between connection attempts (not a
                    // wait on shared memory: shmkit_sys::Backoff is for those).
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
