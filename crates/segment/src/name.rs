//! Name validation, done before any system call.

use std::ffi::CString;

/// Longest POSIX name we accept, in bytes (`NAME_MAX`; `/dev/shm` entries are files).
pub const MAX_NAME_LEN: usize = 255;

/// Checks a POSIX shared-memory name as Python spells it: no leading `/`.
///
/// Returns the reason it is unacceptable.
pub(crate) fn check_posix(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("the name is longer than 255 bytes");
    }
    if name.contains('/') {
        return Err("the name contains '/' (give it without a leading slash, as Python does)");
    }
    if name.contains('\0') {
        return Err("the name contains a NUL byte");
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("the name contains a non-printable character or whitespace");
    }
    if name == "." || name == ".." {
        return Err("'.' and '..' are not names");
    }
    Ok(())
}

/// `"/" + name` as a C string for `shm_open`/`shm_unlink`. Call after [`check_posix`].
pub(crate) fn posix_cstring(name: &str) -> CString {
    CString::new(format!("/{name}")).expect("checked: no NUL in name")
}

/// Checks a file path for the file backend.
pub(crate) fn check_path(path: &std::path::Path) -> Result<CString, &'static str> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err("the path is empty");
    }
    CString::new(bytes).map_err(|_| "the path contains a NUL byte")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_python_style_names() {
        assert_eq!(check_posix("psm_1a2b3c4d"), Ok(()));
        assert_eq!(check_posix("shmkit-demo.v1"), Ok(()));
        assert_eq!(check_posix(&"a".repeat(255)), Ok(()));
    }

    #[test]
    fn rejects_bad_names_with_reasons() {
        assert!(check_posix("").unwrap_err().contains("empty"));
        assert!(check_posix("/x").unwrap_err().contains('/'));
        assert!(check_posix("a/b").unwrap_err().contains('/'));
        assert!(check_posix(&"a".repeat(256)).unwrap_err().contains("255"));
        assert!(check_posix("a\0b").unwrap_err().contains("NUL"));
        assert!(check_posix("a\nb").unwrap_err().contains("non-printable"));
        assert!(check_posix("a b").unwrap_err().contains("whitespace"));
        assert!(check_posix("..").is_err());
    }

    #[test]
    fn paths() {
        assert!(check_path(std::path::Path::new("")).is_err());
        assert!(check_path(std::path::Path::new("/tmp/x")).is_ok());
    }
}
