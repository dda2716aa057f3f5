//! Payload paths: relative, `/`-separated, and unable to escape the unpack directory.

/// Why `path` is not a safe payload path, if it is not.
///
/// Safe means: non-empty, relative, segments separated by single `/`, no `.` or `..`
/// segment, no backslash, NUL or other control character, at most 4096 bytes.
pub(crate) fn unsafe_reason(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("empty path");
    }
    if path.len() > 4096 {
        return Some("path longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return Some("absolute path");
    }
    if path.chars().any(char::is_control) {
        return Some("control character in path");
    }
    if path.contains('\\') {
        return Some("backslash in path");
    }
    for segment in path.split('/') {
        match segment {
            "" => return Some("empty path segment (// or trailing /)"),
            "." => return Some("'.' path segment"),
            ".." => return Some("'..' path segment (path traversal)"),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_relative_paths() {
        for ok in ["app", "bin/app", ".hidden/x", "a..b/c", "dir/file.tar.gz"] {
            assert_eq!(unsafe_reason(ok), None, "{ok}");
        }
    }

    #[test]
    fn refuses_paths_that_could_escape() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "a\\..\\b",
            "a\0b",
            "a\nb",
        ] {
            assert!(unsafe_reason(bad).is_some(), "{bad:?} accepted");
        }
        assert_eq!(
            unsafe_reason("x/../y"),
            Some("'..' path segment (path traversal)")
        );
    }
}
