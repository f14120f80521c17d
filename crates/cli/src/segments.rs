//! `shmkit ls`, `shmkit inspect NAME` and `shmkit rm NAME|--dead`: what `ipcs`/`ipcrm` do,
//! knowing shmkit's header (type, version, creator alive or dead).

use std::fmt::Write as _;

use shmkit_segment::{list, remove, remove_sysv, Backend, SegmentInfo};

use crate::bench::human_size;

/// The `shmkit ls` table: name, backend, size, type, creator pid, alive/dead.
pub fn ls_table(segments: &[SegmentInfo]) -> String {
    let header = ["name", "backend", "size", "type", "creator", "state"];
    let rows: Vec<[String; 6]> = segments
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                s.backend.as_str().to_string(),
                human_size(s.size as usize),
                s.header.type_tag.name().to_string(),
                s.creator_pid().to_string(),
                state(s).to_string(),
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

/// `alive`, `dead` (creator gone: a stale segment `rm --dead` removes) or
/// `initialising` / `abandoned` for a segment whose creator has not published READY.
pub fn state(s: &SegmentInfo) -> &'static str {
    match (s.ready(), s.creator_alive) {
        (true, true) => "alive",
        (true, false) => "dead",
        (false, true) => "initialising",
        (false, false) => "abandoned",
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
    let _ = writeln!(out, "size            {} bytes", s.size);
    let _ = writeln!(out, "owner uid       {}", s.uid);
    let _ = writeln!(out, "mode            {:04o}", s.mode);
    let _ = writeln!(out, "magic           {:#018x}", h.magic);
    let _ = writeln!(out, "layout version  {}", h.version);
    let _ = writeln!(out, "ready           {}", h.ready);
    let _ = writeln!(
        out,
        "creator pid     {} ({})",
        h.creator_pid,
        if s.creator_alive { "alive" } else { "dead" }
    );
    let _ = writeln!(out, "header length   {}", h.header_len);
    let _ = writeln!(out, "total size      {}", h.total_size);
    let _ = writeln!(out, "payload offset  {}", h.payload_offset);
    let _ = writeln!(out, "payload size    {}", h.payload_size);
    let _ = writeln!(out, "type name       {}", t.name());
    let _ = writeln!(out, "type kind       {}", t.kind());
    let _ = writeln!(out, "type size       {}", t.size());
    let _ = writeln!(out, "type align      {}", t.align());
    let _ = writeln!(out, "type fingerprint {:#018x}", t.fingerprint());
    out
}

/// Finds the segment `name` (a POSIX name, or a System V key as `0x%08x`).
pub fn find(name: &str) -> Result<SegmentInfo, String> {
    let all = list().map_err(|e| e.to_string())?;
    let wanted = name.trim_start_matches('/');
    all.into_iter().find(|s| s.name == wanted).ok_or_else(|| {
        format!("no shmkit segment named '{wanted}' (see `shmkit ls`; foreign segments without a shmkit header are not listed)")
    })
}

/// Removes one listed segment (either backend).
pub fn remove_one(s: &SegmentInfo) -> Result<(), String> {
    match s.backend {
        Backend::SysV => {
            let key = parse_key(&s.name).ok_or_else(|| format!("bad System V key {}", s.name))?;
            remove_sysv(key).map_err(|e| e.to_string())
        }
        _ => remove(&s.name).map_err(|e| e.to_string()),
    }
}

/// Parses a System V key written as `0x%08x` or decimal.
pub fn parse_key(text: &str) -> Option<i32> {
    match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok().map(|k| k as i32),
        None => text.parse().ok(),
    }
}

/// Removes by name: a listed shmkit segment, or else any POSIX object of that name.
pub fn remove_by_name(name: &str) -> Result<(), String> {
    match find(name) {
        Ok(s) => remove_one(&s),
        Err(_) => remove(name.trim_start_matches('/')).map_err(|e| e.to_string()),
    }
}

/// Removes every listed segment whose creator is dead; returns the names removed.
pub fn remove_dead() -> Result<Vec<String>, String> {
    let all = list().map_err(|e| e.to_string())?;
    let mut removed = Vec::new();
    for s in all.iter().filter(|s| !s.creator_alive) {
        remove_one(s)?;
        removed.push(s.name.clone());
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_in_hex_and_decimal() {
        assert_eq!(parse_key("0x0000002a"), Some(42));
        assert_eq!(parse_key("42"), Some(42));
        assert_eq!(parse_key("0xffffffff"), Some(-1));
        assert_eq!(parse_key("zz"), None);
    }
}
