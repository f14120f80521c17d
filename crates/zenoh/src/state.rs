//! The bridge's persistent state. The importer's: one [`ImportState`] in a
//! [`SharedValue`] named after the local object
//! (`<name>-zimport`), so that an importer that restarts (after a crash, `kill -9`
//! included) drops the messages it already delivered.
//!
//! A delivery is three steps: under the lock, `pending = seq` and `counter_before =`
//! the local object's write counter (if it has one); the local put; under the lock,
//! `delivered = seq`. [`resolve`] decides, at the next start, whether a put that
//! was pending happened (see docs/distributed.md).
//!
//! The exporter's: one [`ExportState`] in `<name>-zexport`, so that the exporter
//! started after a killed one can tell the importer how many messages the dead one
//! took (those it never delivered are counted as gaps).
//!
//! ```
//! use shmkit_zenoh::state::{resolve, ImportState, Resolution};
//!
//! let mut s = ImportState::new();
//! s.source = 9;
//! s.pending = 5; // died between the two steps, the put of 5 unresolved
//! s.delivered = 4;
//! s.counter_before = 10;
//! // The topic counted 11 writes: the put of 5 happened.
//! assert_eq!(resolve(&mut s, Some(11), false), Resolution::Happened);
//! assert_eq!(s.delivered, 5);
//! ```
use shmkit_typed::{LockError, MutexGuard, Pod, SharedValue, Zeroable};

/// The layout version of [`ImportState`] (docs/layout.md, "Zenoh importer state").
pub const STATE_LAYOUT: u32 = 1;
/// `counter_before` when the local object has no write counter.
pub const NO_COUNTER: u64 = u64::MAX;

/// What an importer persists: 64 bytes, `#[repr(C)]`, no padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[bytemuck(crate = "shmkit_typed::bytemuck")]
#[repr(C)]
pub struct ImportState {
    /// [`STATE_LAYOUT`].
    pub layout: u32,
    /// Zero.
    pub _reserved: u32,
    /// The exporter whose sequence numbers `delivered`/`pending` count (0: none yet).
    pub source: u64,
    /// The last sequence number put into the local object.
    pub delivered: u64,
    /// The sequence number being put (== `delivered` when no put is in progress).
    pub pending: u64,
    /// The local object's write counter before the pending put ([`NO_COUNTER`]).
    pub counter_before: u64,
    /// Messages delivered, over every run.
    pub delivered_total: u64,
    /// Duplicates dropped, over every run.
    pub duplicates: u64,
    /// Gaps found (possible gaps included), over every run.
    pub gaps: u64,
}

impl ImportState {
    /// A fresh state: nothing delivered.
    pub fn new() -> Self {
        ImportState {
            layout: STATE_LAYOUT,
            ..Zeroable::zeroed()
        }
    }
}

impl Default for ImportState {
    fn default() -> Self {
        Self::new()
    }
}

/// The shared value holding an importer's state.
pub type StateValue = SharedValue<ImportState>;

/// The segment name of the state of the importer into `local` (a segment name).
pub fn state_name(local: &str) -> String {
    format!("{local}-zimport")
}

/// How a pending put was resolved at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Nothing was pending.
    Clean,
    /// The local object's counter shows the put happened: `delivered = pending`.
    Happened,
    /// The counter shows it did not: the message will be received again.
    NotHappened,
    /// No counter (or a torn state after a death under the lock): counted as a possible
    /// gap and skipped (`delivered = pending`), never risking a duplicate.
    PossibleGap,
}

/// Resolves a pending put in `s` with the local object's write counter `counter` now
/// (`None`: it has none). `torn`: the state's last writer died under its lock, so
/// `counter_before` may be stale.
pub fn resolve(s: &mut ImportState, counter: Option<u64>, torn: bool) -> Resolution {
    if s.pending <= s.delivered && !torn {
        s.pending = s.delivered;
        return Resolution::Clean;
    }
    if s.pending <= s.delivered {
        // A death under the lock with nothing pending after all: `delivered` was
        // written last or never, either way it names a put that happened.
        s.pending = s.delivered;
        return Resolution::Clean;
    }
    let r = match (counter, torn || s.counter_before == NO_COUNTER) {
        (Some(now), false) if now > s.counter_before => Resolution::Happened,
        (Some(_), false) => Resolution::NotHappened,
        _ => Resolution::PossibleGap,
    };
    match r {
        Resolution::Happened => {
            s.delivered = s.pending;
            s.delivered_total += 1;
        }
        Resolution::NotHappened => s.pending = s.delivered,
        Resolution::PossibleGap => {
            s.delivered = s.pending;
            s.gaps += 1;
        }
        Resolution::Clean => {}
    }
    r
}

/// Opens (or creates) the state of the importer into `local`, checks its layout
/// version, repairs it after a death under its lock and resolves a pending put with
/// `counter` (see [`resolve`]).
///
/// # Errors
/// The state could not be opened or created, or has another layout version.
pub fn open_state(
    local: &str,
    counter: Option<u64>,
) -> Result<(StateValue, ImportState, Resolution), crate::BridgeError> {
    let name = state_name(local);
    let value = StateValue::open_or_create(&name, ImportState::new())
        .map_err(|e| crate::BridgeError::State(e.to_string()))?;
    let (s, r) = update_state(
        &value,
        &name,
        STATE_LAYOUT,
        |s| s.layout,
        |s, torn| resolve(s, counter, torn),
    )?;
    Ok((value, s, r))
}

/// Writes a state through `locked` (what a lock attempt on it gave): `f` changes it in
/// place; a state torn by a death under its lock is taken as it is (each field is
/// written whole) and marked consistent again after `f`.
pub(crate) fn write_state<T: Pod + Send>(
    locked: Result<MutexGuard<'_, T>, LockError<MutexGuard<'_, T>>>,
    f: impl FnOnce(&mut T),
) -> Result<(), crate::BridgeError> {
    match locked {
        Ok(mut g) => f(&mut g),
        Err(e) => match e.into_guard() {
            Some(mut g) => {
                f(&mut g);
                g.make_consistent();
            }
            None => return Err(crate::BridgeError::State("cannot lock".into())),
        },
    }
    Ok(())
}

/// The start of an importer's or exporter's run on its state `value` (the segment
/// `name`): locks it, taking a state torn by a death under its lock as it is (each
/// field is written whole); refuses another layout version than `layout` (read by
/// `layout_of`); lets `update` change a copy (told whether it was torn), stores it and
/// marks the lock consistent again. Returns the stored state and `update`'s result.
fn update_state<T: Pod + Send, R>(
    value: &SharedValue<T>,
    name: &str,
    layout: u32,
    layout_of: impl Fn(&T) -> u32,
    update: impl FnOnce(&mut T, bool) -> R,
) -> Result<(T, R), crate::BridgeError> {
    let (mut guard, torn) = match value.lock() {
        Ok(g) => (g, false),
        Err(e) => match e.into_guard() {
            Some(g) => (g, true),
            None => return Err(crate::BridgeError::State("cannot lock".into())),
        },
    };
    let found = layout_of(&guard);
    if found != layout {
        return Err(crate::BridgeError::State(format!(
            "{name}: layout version {found}, this build uses {layout}: remove it (shmkit rm {name})"
        )));
    }
    let mut s = *guard;
    let r = update(&mut s, torn);
    *guard = s;
    if torn {
        guard.make_consistent();
    }
    Ok((s, r))
}

/// The layout version of [`ExportState`] (docs/layout.md, "Zenoh exporter state").
pub const EXPORT_LAYOUT: u32 = 1;

/// What an exporter persists, in `<name>-zexport` beside the object it exports: its
/// source id and the last sequence number it took from the local object, so that the
/// exporter started after it (after a crash, `kill -9` included) can tell the importer
/// how many messages the dead one took and the importer can count those it never
/// delivered as gaps. 48 bytes, `#[repr(C)]`, no padding.
///
/// ```
/// use shmkit_zenoh::state::ExportState;
///
/// let mut dead = ExportState::new();
/// dead.source = 7;
/// dead.taken = 300; // took 300 messages, then was killed
/// let next = dead.successor(9);
/// assert_eq!((next.source, next.taken), (9, 0));
/// assert_eq!((next.prev_source, next.prev_taken), (7, 300));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[bytemuck(crate = "shmkit_typed::bytemuck")]
#[repr(C)]
pub struct ExportState {
    /// [`EXPORT_LAYOUT`].
    pub layout: u32,
    /// Zero.
    pub _reserved: u32,
    /// This exporter's source id (0: none yet).
    pub source: u64,
    /// The last sequence number taken from the local object (recorded before the
    /// message is released by the local object: at most one message too many).
    pub taken: u64,
    /// The exporter before it (0: none), and what it took: told to an importer still
    /// following it.
    pub prev_source: u64,
    /// What `prev_source` took.
    pub prev_taken: u64,
    /// Zero.
    pub _spare: u64,
}

impl ExportState {
    /// A fresh state: no exporter yet.
    pub fn new() -> Self {
        ExportState {
            layout: EXPORT_LAYOUT,
            ..Zeroable::zeroed()
        }
    }

    /// The state of the exporter `source` starting after the one recorded here: its
    /// predecessor is the recorded one, or (if that one took nothing) the recorded
    /// one's predecessor, so that a restart before anything was taken keeps the count.
    pub fn successor(&self, source: u64) -> ExportState {
        let (prev_source, prev_taken) = if self.source != 0 && self.taken > 0 {
            (self.source, self.taken)
        } else {
            (self.prev_source, self.prev_taken)
        };
        ExportState {
            source,
            prev_source,
            prev_taken,
            ..ExportState::new()
        }
    }
}

impl Default for ExportState {
    fn default() -> Self {
        Self::new()
    }
}

/// The shared value holding an exporter's state.
pub type ExportValue = SharedValue<ExportState>;

/// The segment name of the state of the exporter of `local` (a segment name).
pub fn export_state_name(local: &str) -> String {
    format!("{local}-zexport")
}

/// Opens (or creates) the state of the exporter of `local`, checks its layout version
/// and records `source` as the running exporter (after the recorded one, see
/// [`ExportState::successor`]). A state torn by a death under its lock is taken as it
/// is (each field is written whole; `taken` is at most one behind).
///
/// # Errors
/// The state could not be opened or created, or has another layout version.
pub fn open_export_state(
    local: &str,
    source: u64,
) -> Result<(ExportValue, ExportState), crate::BridgeError> {
    let name = export_state_name(local);
    let value = ExportValue::open_or_create(&name, ExportState::new())
        .map_err(|e| crate::BridgeError::State(e.to_string()))?;
    let (s, ()) = update_state(
        &value,
        &name,
        EXPORT_LAYOUT,
        |s| s.layout,
        |s, _| {
            *s = s.successor(source);
        },
    )?;
    Ok((value, s))
}

/// The `shmkit inspect` section of an importer state segment (`name`, whose header
/// has the type tag `tag`): its fields, one per line; empty for any other segment.
pub fn inspect_text(name: &str, tag: &shmkit_segment::TypeTag) -> String {
    let name = name.trim_start_matches('/');
    if tag.name() == std::any::type_name::<ExportState>() {
        return match ExportValue::open(name).map(|v| v.get()) {
            Ok(Ok(s)) => format!(
                "exporter layout {} (this build reads {EXPORT_LAYOUT})\n\
                 source id       {:#018x}\n\
                 taken seq       {}\n\
                 previous source {:#018x} (took {})\n",
                s.layout, s.source, s.taken, s.prev_source, s.prev_taken
            ),
            Ok(Err(e)) => format!("exporter state  unreadable: {e}\n"),
            Err(e) => format!("exporter state  cannot open: {e}\n"),
        };
    }
    if tag.name() != std::any::type_name::<ImportState>() {
        return String::new();
    }
    let s = match StateValue::open(name).map(|v| v.get()) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return format!("importer state  unreadable: {e}\n"),
        Err(e) => return format!("importer state  cannot open: {e}\n"),
    };
    let resolved = if s.pending == s.delivered {
        "none"
    } else {
        "one put pending (resolved at the importer's next start)"
    };
    format!(
        "importer layout {} (this build reads {STATE_LAYOUT})\n\
         source id       {:#018x}\n\
         delivered seq   {}\n\
         pending         {} ({resolved})\n\
         delivered total {}\n\
         duplicates      {}\n\
         gaps            {}\n",
        s.layout, s.source, s.delivered, s.pending, s.delivered_total, s.duplicates, s.gaps
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes as a state (a hostile or garbled segment): resolving never panics,
        /// never moves `delivered` backwards, and leaves nothing pending.
        #[test]
        fn resolve_any_state(bytes in proptest::array::uniform32(any::<u8>()),
                             more in proptest::array::uniform32(any::<u8>()),
                             counter in proptest::option::of(any::<u64>()), torn in any::<bool>()) {
            let mut raw = [0u8; 64];
            raw[..32].copy_from_slice(&bytes);
            raw[32..].copy_from_slice(&more);
            let mut s: ImportState = bytemuck::pod_read_unaligned(&raw);
            let before = s.delivered;
            let _ = resolve(&mut s, counter, torn);
            prop_assert!(s.delivered >= before);
            prop_assert_eq!(s.pending, s.delivered);
        }
    }

    proptest! {
        /// Any bytes as an exporter state (a hostile or garbled segment): the successor
        /// is well formed and names a predecessor the bytes held.
        #[test]
        fn successor_of_any_state(bytes in proptest::array::uniform32(any::<u8>()),
                                  more in proptest::array::uniform16(any::<u8>()),
                                  source in 1..u64::MAX) {
            let mut raw = [0u8; 48];
            raw[..32].copy_from_slice(&bytes);
            raw[32..].copy_from_slice(&more);
            let s: ExportState = bytemuck::pod_read_unaligned(&raw);
            let n = s.successor(source);
            prop_assert_eq!((n.layout, n.source, n.taken, n._spare), (EXPORT_LAYOUT, source, 0, 0));
            prop_assert!((n.prev_source, n.prev_taken) == (s.source, s.taken)
                || (n.prev_source, n.prev_taken) == (s.prev_source, s.prev_taken));
        }
    }

    #[test]
    fn pending_without_counter_is_a_possible_gap() {
        let mut s = ImportState::new();
        s.delivered = 4;
        s.pending = 5;
        s.counter_before = NO_COUNTER;
        assert_eq!(resolve(&mut s, None, false), Resolution::PossibleGap);
        assert_eq!((s.delivered, s.gaps), (5, 1));
        let mut s = ImportState::new();
        s.delivered = 4;
        s.pending = 5;
        s.counter_before = 10;
        assert_eq!(resolve(&mut s, Some(10), false), Resolution::NotHappened);
        assert_eq!(s.delivered, 4);
    }
}
