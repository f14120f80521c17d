//! `shmkit ls [--dir DIR]`, `shmkit inspect NAME|PATH` and `shmkit rm NAME|PATH|--dead`:
//! what `ipcs`/`ipcrm` do, knowing shmkit's header (type, version, creator alive or
//! dead), judging every header with the validation `open` uses, and refusing to
//! remove what is not a stale shmkit segment unless forced.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use shmkit_segment::{
    info, info_file, info_sysv, list, list_dir, remove, remove_sysv, Backend, OpenError,
    SegmentInfo, SegmentState,
};

use crate::bench::human_size;

/// What a command-line argument names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A POSIX name (a leading `/` is allowed, as `shm_open` spells it).
    Posix(String),
    /// A System V key, written `0x` and 1 to 8 hex digits.
    SysVKey(i32),
    /// A System V segment without a key (removed, or private): `shmid:N`.
    SysVId(i32),
    /// A file-backed segment: any argument with a `/` past its first character.
    File(PathBuf),
}

impl Target {
    /// Reads `arg`: `shmid:N`, `0xKEY`, a path (a `/` after the first character, e.g.
    /// `/var/lib/app/state` or `./state`), else a POSIX name (`name` or `/name`).
    pub fn parse(arg: &str) -> Target {
        if let Some(id) = arg.strip_prefix("shmid:").and_then(|n| n.parse().ok()) {
            return Target::SysVId(id);
        }
        if let Some(key) = parse_key(arg) {
            return Target::SysVKey(key);
        }
        let rest = arg.strip_prefix('/').unwrap_or(arg);
        if rest.contains('/') {
            Target::File(PathBuf::from(arg))
        } else {
            Target::Posix(rest.to_owned())
        }
    }
}

/// Parses a System V key written as `0x` followed by 1 to 8 hex digits.
pub fn parse_key(text: &str) -> Option<i32> {
    let hex = text.strip_prefix("0x")?;
    if hex.is_empty() || hex.len() > 8 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok().map(|k| k as i32)
}

/// Everything `ls` shows: POSIX and System V segments, plus the file segments in `dirs`.
pub fn list_all(dirs: &[PathBuf]) -> Result<Vec<SegmentInfo>, String> {
    let mut all = list().map_err(|e| e.to_string())?;
    for dir in dirs {
        all.extend(list_dir(dir).map_err(|e| e.to_string())?);
    }
    Ok(all)
}

/// The `shmkit ls` table: name, backend, size, type, creator pid, state.
pub fn ls_table(segments: &[SegmentInfo]) -> String {
    let header = ["name", "backend", "size", "type", "creator", "state"];
    let rows: Vec<[String; 6]> = segments
        .iter()
        .map(|s| {
            let trusted = s.corrupt.is_none();
            [
                s.name.clone(),
                s.backend.as_str().to_string(),
                human_size(s.size as usize),
                if trusted {
                    // A shmkit-typed object by its Rust name (`SharedValue<u64>`,
                    // `SharedSemaphore`...), any other tag by its recorded name.
                    shmkit_typed::types::describe_object(&s.header.type_tag)
                } else {
                    "?".to_string()
                },
                if trusted {
                    s.creator_pid().to_string()
                } else {
                    "?".to_string()
                },
                state(s),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 6]| {
        let mut l = String::new();
        for (cell, w) in cells.iter().zip(widths) {
            let _ = write!(l, "{cell:<w$}  ");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
    }
    out
}

/// `alive`, `dead` (creator gone: a stale segment `rm --dead` removes),
/// `initialising` / `abandoned` (creator has not published READY), `init failed`,
/// `corrupt` (the header fails `open`'s checks), or `removed (N attached)` (a System V
/// segment marked for removal, freed when the last process detaches).
pub fn state(s: &SegmentInfo) -> String {
    match s.state() {
        SegmentState::Removed => format!("removed ({} attached)", s.attached.unwrap_or(0)),
        other => other.to_string(),
    }
}

/// Every header field of one segment, one per line.
pub fn inspect_text(s: &SegmentInfo) -> String {
    let h = &s.header;
    let t = &h.type_tag;
    let mut out = String::new();
    let _ = writeln!(out, "name            {}", s.name);
    let _ = writeln!(out, "backend         {}", s.backend.as_str());
    if let Some(id) = s.shmid {
        let _ = writeln!(out, "shmid           {id}");
    }
    if let Some(n) = s.attached {
        let _ = writeln!(out, "attached        {n}");
    }
    let _ = writeln!(out, "state           {}", state(s));
    if let Some(reason) = &s.corrupt {
        let _ = writeln!(out, "corrupt         {reason}");
        let _ = writeln!(
            out,
            "                (the fields below are as found and mean nothing)"
        );
    }
    let _ = writeln!(out, "size            {} bytes", s.size);
    let _ = writeln!(out, "owner uid       {}", s.uid);
    let _ = writeln!(out, "mode            {:04o}", s.mode);
    let _ = writeln!(out, "magic           {:#018x}", h.magic);
    let _ = writeln!(out, "layout version  {}", h.version);
    let _ = writeln!(out, "ready           {}", h.ready);
    let creator = if s.corrupt.is_some() {
        "not checked: the header is corrupt"
    } else if s.creator_alive {
        "alive"
    } else {
        "dead"
    };
    let _ = writeln!(out, "creator pid     {} ({creator})", h.creator_pid);
    let _ = writeln!(out, "header length   {}", h.header_len);
    let _ = writeln!(out, "total size      {}", h.total_size);
    let _ = writeln!(out, "payload offset  {}", h.payload_offset);
    let _ = writeln!(out, "payload size    {}", h.payload_size);
    if let Some((object, reads)) = shmkit_typed::types::object(t.kind()) {
        let found = shmkit_typed::types::layout_version(t.kind()).unwrap_or(0);
        let _ = writeln!(out, "object          {object}");
        let _ = writeln!(
            out,
            "object layout   {found} (this build reads {reads}{})",
            if found == reads {
                ""
            } else {
                ": it cannot open it"
            }
        );
    }
    let _ = writeln!(out, "type name       {}", t.name());
    let _ = writeln!(out, "type kind       {} ({:#010x})", t.kind(), t.kind());
    let _ = writeln!(out, "type size       {}", t.size());
    let _ = writeln!(out, "type align      {}", t.align());
    let _ = writeln!(out, "type fingerprint {:#018x}", t.fingerprint());
    out
}

/// The topic section of `inspect` (policy, writer, readers with pid, alive, position
/// and lag) when `s` holds a topic that can be opened, else nothing.
pub fn topic_text(arg: &str, s: &SegmentInfo) -> String {
    use shmkit_typed::types::kind::{TOPIC_BLOCK, TOPIC_OVERWRITE};
    let kind = s.header.type_tag.kind();
    if s.corrupt.is_some() || (kind != TOPIC_BLOCK && kind != TOPIC_OVERWRITE) {
        return String::new();
    }
    let options = match Target::parse(arg) {
        Target::Posix(name) => shmkit_segment::Segment::options().posix(&name),
        Target::SysVKey(key) => shmkit_segment::Segment::options().sysv(key),
        Target::File(path) => shmkit_segment::Segment::options().file(path),
        Target::SysVId(_) => return String::new(),
    };
    let mut out = String::new();
    let v = match shmkit_typed::topic::inspect(options) {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(out, "topic           cannot be opened: {e}");
            return out;
        }
    };
    let alive = |a: bool| if a { "alive" } else { "dead" };
    let _ = writeln!(out, "topic policy    {:?}", v.policy);
    let _ = writeln!(out, "topic capacity  {} bytes", v.capacity);
    let _ = writeln!(
        out,
        "published       {} messages{}",
        v.published,
        if v.closed { " (closed)" } else { "" }
    );
    match v.writer {
        Some((pid, a)) => {
            let _ = writeln!(out, "writer          pid {pid} ({})", alive(a));
        }
        None => {
            let _ = writeln!(out, "writer          none");
        }
    }
    let _ = writeln!(
        out,
        "readers         {} of {} slots",
        v.readers.len(),
        v.max_readers
    );
    for r in &v.readers {
        let _ = writeln!(
            out,
            "  slot {:<3} pid {:<8} {:<5} position {:<12} lag {}",
            r.slot,
            r.pid,
            alive(r.alive),
            r.position,
            r.lag
        );
    }
    out
}

/// The channel section of `inspect` (its fill level and registries), after mapping the segment `arg` names; empty for
/// any other object or when the segment cannot be mapped.
pub fn channel_text(arg: &str, s: &SegmentInfo) -> String {
    if s.corrupt.is_some() || s.header.type_tag.kind() != shmkit_typed::types::kind::CHANNEL {
        return String::new();
    }
    let options = shmkit_segment::Segment::options();
    let options = match Target::parse(arg) {
        Target::Posix(name) => options.posix(name.trim_start_matches('/')),
        Target::SysVKey(key) => options.sysv(key),
        Target::File(path) => options.file(path),
        Target::SysVId(_) => return String::new(),
    };
    let Some(stats) = options
        .any_type()
        .open()
        .ok()
        .and_then(|seg| shmkit_typed::channel::inspect(&seg))
    else {
        return String::new();
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "channel fill    {} messages{}, {} of {} bytes{}",
        stats.messages,
        stats
            .max_messages
            .map_or(String::new(), |m| format!(" of at most {m}")),
        stats.used_bytes,
        stats.capacity,
        if stats.corrupt {
            " (marked corrupt)"
        } else {
            ""
        }
    );
    for (label, entries) in [("senders", &stats.senders), ("receivers", &stats.receivers)] {
        let _ = writeln!(out, "{label:<16}{}", entries.len());
        for e in entries {
            let holds = e
                .holds
                .map_or(String::new(), |p| format!(", holds record at {p}"));
            let who = if e.pid == 0 {
                String::new()
            } else {
                format!(" pid {}", e.pid)
            };
            let _ = writeln!(out, "  [{}]{who} {}{holds}", e.index, e.state);
        }
    }
    out
}

/// Looks up what `arg` names (see [`Target::parse`]): a shmkit segment, or why not.
pub fn find(arg: &str) -> Result<SegmentInfo, OpenError> {
    match Target::parse(arg) {
        Target::Posix(name) => info(&name),
        Target::SysVKey(key) => info_sysv(key),
        Target::File(path) => info_file(&path),
        Target::SysVId(id) => list()
            .ok()
            .and_then(|all| all.into_iter().find(|s| s.shmid == Some(id)))
            .ok_or_else(|| OpenError::NotFound {
                name: format!("shmid:{id}"),
            }),
    }
}

/// The message for a lookup that found no shmkit segment.
pub fn explain(arg: &str, e: &OpenError) -> String {
    match e {
        OpenError::NotShmkit { .. } => format!(
            "'{arg}' is not a shmkit segment: it has no shmkit header (made by another program, e.g. Python's SharedMemory)"
        ),
        OpenError::TooSmall { len: 0, .. } => format!(
            "'{arg}' is empty (0 bytes): not a shmkit segment, or one whose creator died before sizing it"
        ),
        OpenError::TooSmall { len, .. } => format!(
            "'{arg}' is {len} bytes, shorter than a shmkit header: not a shmkit segment"
        ),
        other => other.to_string(),
    }
}

/// Removes what `arg` names if it is a stale shmkit segment (its creator is gone), or
/// anything but a directory with `force`. Otherwise says why not.
pub fn remove_by_name(arg: &str, force: bool) -> Result<(), String> {
    let refuse = |why: String| {
        Err(format!(
            "{why}; not removed. Pass --force to remove it anyway (processes that have it mapped keep their mapping)"
        ))
    };
    match find(arg) {
        Ok(s) => match s.state() {
            SegmentState::Removed => Err(format!(
                "'{arg}' is already removed: the kernel frees it when its {} attached process(es) detach",
                s.attached.unwrap_or(0)
            )),
            st if st.is_stale() || force => remove_one(&s),
            SegmentState::Corrupt => refuse(format!(
                "'{arg}' has a corrupt header ({}), so whether it is in use cannot be told",
                s.corrupt.as_deref().unwrap_or("?")
            )),
            _ => refuse(format!(
                "'{arg}' is in use: its creator (pid {}) is alive{}",
                s.creator_pid(),
                if s.ready() { "" } else { " and still initialising it" }
            )),
        },
        Err(e @ (OpenError::NotFound { .. } | OpenError::NotRegularFile { .. })) => {
            Err(e.to_string())
        }
        Err(e @ (OpenError::NotShmkit { .. } | OpenError::TooSmall { .. })) => {
            if force {
                remove_target(&Target::parse(arg))
            } else {
                refuse(explain(arg, &e))
            }
        }
        Err(e) if force => remove_target(&Target::parse(arg)).map_err(|r| format!("{e}; {r}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Removes one looked-up segment (any backend with a name).
pub fn remove_one(s: &SegmentInfo) -> Result<(), String> {
    let target = match (s.backend, s.shmid) {
        (Backend::SysV, Some(id)) if parse_key(&s.name).is_none() => Target::SysVId(id),
        (Backend::File, _) => Target::File(PathBuf::from(&s.name)),
        _ => Target::parse(&s.name),
    };
    remove_target(&target)
}

fn remove_target(t: &Target) -> Result<(), String> {
    match t {
        Target::Posix(name) => remove(name).map_err(|e| e.to_string()),
        Target::SysVKey(key) => remove_sysv(*key).map_err(|e| e.to_string()),
        Target::SysVId(id) => Err(format!(
            "shmid:{id} has no key: it is already removed, or private to its creator"
        )),
        Target::File(path) => remove_file(path),
    }
}

fn remove_file(path: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| format!("cannot remove '{}': {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "'{}' is not a regular file, so it is not a segment; nothing was removed",
            path.display()
        ));
    }
    std::fs::remove_file(path).map_err(|e| format!("cannot remove '{}': {e}", path.display()))
}

/// Removes every stale segment (creator gone: dead, abandoned or failed), also among
/// the file segments in `dirs`; returns the names removed. Segments in use, corrupt or
/// already removed are left alone.
pub fn remove_dead(dirs: &[PathBuf]) -> Result<Vec<String>, String> {
    let all = list_all(dirs)?;
    let mut removed = Vec::new();
    for s in all.iter().filter(|s| s.state().is_stale()) {
        remove_one(s)?;
        removed.push(s.name.clone());
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_in_hex_only() {
        assert_eq!(parse_key("0x0000002a"), Some(42));
        assert_eq!(parse_key("0xffffffff"), Some(-1));
        assert_eq!(parse_key("42"), None);
        assert_eq!(parse_key("0x"), None);
        assert_eq!(parse_key("0x123456789"), None);
        assert_eq!(parse_key("zz"), None);
    }

    #[test]
    fn arguments_name_posix_sysv_or_file_segments() {
        assert_eq!(Target::parse("psm_1"), Target::Posix("psm_1".into()));
        assert_eq!(Target::parse("/psm_1"), Target::Posix("psm_1".into()));
        assert_eq!(Target::parse("0x0000002a"), Target::SysVKey(42));
        assert_eq!(Target::parse("shmid:7"), Target::SysVId(7));
        assert_eq!(
            Target::parse("/var/lib/app/state"),
            Target::File("/var/lib/app/state".into())
        );
        assert_eq!(Target::parse("./state"), Target::File("./state".into()));
    }
}
