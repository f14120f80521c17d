//! The local side of a bridge: which shmkit object, opened in which role.
use std::cell::Cell;

use shmkit_typed::channel::{Channel, TypeName};
use shmkit_typed::topic::{Block, Topic};
use shmkit_typed::{OpenError, Ring};

use crate::BridgeError;

/// The kinds of object a bridge forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A [`Channel`] (any message type: its bytes cross unchanged).
    Channel,
    /// A [`Topic`] in `Block` mode.
    Topic,
    /// A [`Ring`].
    Ring,
}

/// A local object: `channel:NAME`, `topic:NAME` or `ring:NAME` (NAME a segment name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSpec {
    /// Its kind.
    pub kind: Kind,
    /// Its segment name.
    pub name: String,
}

impl std::str::FromStr for LocalSpec {
    type Err = BridgeError;

    fn from_str(s: &str) -> Result<Self, BridgeError> {
        let (kind, name) = s
            .split_once(':')
            .ok_or_else(|| BridgeError::Spec(s.to_owned()))?;
        let kind = match kind {
            "channel" => Kind::Channel,
            "topic" => Kind::Topic,
            "ring" => Kind::Ring,
            _ => return Err(BridgeError::Spec(s.to_owned())),
        };
        if name.is_empty() {
            return Err(BridgeError::Spec(s.to_owned()));
        }
        Ok(LocalSpec {
            kind,
            name: name.to_owned(),
        })
    }
}

thread_local! {
    static WIRE_NAME: Cell<&'static str> = const { Cell::new("") };
}

/// The message type name of a channel opened by the bridge: the name recorded in its
/// segment, whatever it is (set for the duration of [`open_channel`]; the bridge only
/// moves bytes, so it opens a channel of any message type).
#[derive(Debug)]
pub enum Wire {}

impl TypeName for Wire {
    fn name<T: ?Sized>() -> &'static str {
        WIRE_NAME.with(Cell::get)
    }
}

/// A channel of any message type, as the bridge sees it (bytes only).
pub type AnyChannel = Channel<(), Wire>;

fn open_err(name: &str, e: OpenError) -> BridgeError {
    BridgeError::Open {
        name: name.to_owned(),
        source: e,
    }
}

/// Opens the channel `name` whatever its message type (the type check still refuses
/// any other kind of object).
///
/// # Errors
/// [`BridgeError::Open`]: missing, of another kind or layout version, corrupt.
pub fn open_channel(name: &str) -> Result<AnyChannel, BridgeError> {
    let info = shmkit_segment::info(name).map_err(|e| open_err(name, OpenError::from(e)))?;
    let tag = info.header.type_tag;
    // Leaked once per open: a few bytes, a bridge opens its channel once.
    let type_name: &'static str = Box::leak(tag.name().to_owned().into_boxed_str());
    WIRE_NAME.with(|c| c.set(type_name));
    let r = AnyChannel::open(name).map_err(|e| open_err(name, e));
    WIRE_NAME.with(|c| c.set(""));
    r
}

/// Opens the topic `name` (`Block` mode).
///
/// # Errors
/// [`BridgeError::Open`].
pub fn open_topic(name: &str) -> Result<Topic<Block>, BridgeError> {
    Topic::<Block>::open(name).map_err(|e| open_err(name, e))
}

/// Opens the ring `name`.
///
/// # Errors
/// [`BridgeError::Open`].
pub fn open_ring(name: &str) -> Result<Ring, BridgeError> {
    Ring::open(name).map_err(|e| open_err(name, e))
}
