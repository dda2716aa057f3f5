//! Key validation and the object_store operations both artifact stores share.

use crate::{ObjectInfo, StoreError};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, PutPayload};
use std::ops::Range;
use std::sync::Arc;

/// Longest key accepted (S3's limit).
pub const MAX_KEY_LEN: usize = 1024;

/// Checks an object key: 1–1024 bytes of `/`-separated segments, each non-empty, not `.` or
/// `..`, made of `A-Z a-z 0-9 . _ - + = @ , ~` (no leading or trailing `/`).
/// The same rule holds for every backend, so a key valid on one works on all.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let bad = |why: &str| {
        Err(StoreError::Config(format!(
            "object key '{}' is invalid: {why}; keys are '/'-separated segments of A-Z a-z 0-9 . _ - + = @ , ~ \
             such as 'main/1.2.0.ferry'",
            key.escape_debug()
        )))
    };
    if key.is_empty() {
        return bad("it is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("it is longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return bad("it starts with '/'");
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return bad("it has an empty segment ('//' or a trailing '/')");
        }
        if segment == "." || segment == ".." {
            return bad("it has a '.' or '..' segment");
        }
        if let Some(c) = segment.chars().find(|c| !(c.is_ascii_alphanumeric() || "._-+=@,~".contains(*c))) {
            return bad(&format!("it contains the character {:?}", c));
        }
    }
    Ok(())
}

/// Checks a listing prefix: empty, or a valid key optionally followed by one `/`.
pub fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.is_empty() {
        return Ok(());
    }
    let body = prefix.strip_suffix('/').unwrap_or(prefix);
    validate_key(body).map_err(|e| match e {
        StoreError::Config(m) => StoreError::Config(format!("listing prefix '{}': {m}", prefix.escape_debug())),
        other => other,
    })
}

/// The object_store path of a validated key.
pub(crate) fn object_path(key: &str) -> Result<ObjectPath, StoreError> {
    validate_key(key)?;
    ObjectPath::parse(key).map_err(|e| StoreError::Config(format!("object key '{key}' is invalid: {e}")))
}

/// The entity tag of an object: the backend's own (quotes and `W/` removed), or a strong tag
/// derived from size and modification time.
pub(crate) fn etag_of(meta: &ObjectMeta) -> String {
    match meta.e_tag.as_deref().map(|t| t.trim_start_matches("W/").trim_matches('"')) {
        Some(tag) if !tag.is_empty() => tag.to_string(),
        _ => {
            let mtime =
                meta.last_modified.timestamp_nanos_opt().unwrap_or_else(|| meta.last_modified.timestamp_micros());
            format!("{:x}-{:x}", meta.size, mtime)
        }
    }
}

/// An object_store backend plus the words that name it in errors.
pub(crate) struct Objects {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// e.g. `local artifact store /srv/ferry` or `s3 bucket 'b' at http://…`.
    pub(crate) desc: String,
    /// What to check when an operation fails.
    pub(crate) hint: &'static str,
}

impl Objects {
    /// Maps an object_store error: absent objects become `NotFound`.
    pub(crate) fn err(&self, operation: &str, key: &str, e: object_store::Error) -> StoreError {
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound(format!("object '{key}' in {}", self.desc)),
            other => {
                tracing::error!(store = %self.desc, operation, key, error = %other, "object store operation failed");
                StoreError::Object(format!("{}: {operation} '{key}' failed: {other}; {}", self.desc, self.hint))
            }
        }
    }

    pub(crate) fn not_found(&self, key: &str) -> StoreError {
        StoreError::NotFound(format!("object '{key}' in {}", self.desc))
    }

    pub(crate) async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        let path = object_path(key)?;
        self.store.put(&path, PutPayload::from_bytes(bytes)).await.map_err(|e| self.err("put", key, e))?;
        Ok(())
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = object_path(key)?;
        let got = self.store.get(&path).await.map_err(|e| self.err("get", key, e))?;
        got.bytes().await.map_err(|e| self.err("read", key, e))
    }

    pub(crate) async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let path = object_path(key)?;
        let invalid =
            |size: u64| StoreError::InvalidRange { key: key.to_string(), start: range.start, end: range.end, size };
        if range.start >= range.end {
            // Nothing to fetch: an empty range inside the object is empty bytes, anything else is invalid.
            let info = self.head(key).await?.ok_or_else(|| self.not_found(key))?;
            return if range.start == range.end && range.end <= info.size {
                Ok(Bytes::new())
            } else {
                Err(invalid(info.size))
            };
        }
        let options = GetOptions { range: Some(GetRange::Bounded(range.clone())), ..GetOptions::default() };
        match self.store.get_opts(&path, options).await {
            Ok(got) => {
                if got.range != range {
                    return Err(invalid(got.meta.size));
                }
                let bytes = got.bytes().await.map_err(|e| self.err("read range of", key, e))?;
                if bytes.len() as u64 != range.end - range.start {
                    return Err(StoreError::Object(format!(
                        "{}: read {} bytes of '{key}' where {} were asked for; the object changed while it was read, retry",
                        self.desc,
                        bytes.len(),
                        range.end - range.start
                    )));
                }
                Ok(bytes)
            }
            Err(object_store::Error::NotFound { .. }) => Err(self.not_found(key)),
            Err(e) => match self.head(key).await? {
                None => Err(self.not_found(key)),
                Some(info) if range.end > info.size => Err(invalid(info.size)),
                Some(_) => Err(self.err("get range of", key, e)),
            },
        }
    }

    pub(crate) async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let path = object_path(key)?;
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(ObjectInfo { size: meta.size, etag: etag_of(&meta) })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("head", key, e)),
        }
    }

    /// Keys starting with `prefix` (plain string prefix, as S3 lists), sorted.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        validate_prefix(prefix)?;
        // object_store lists whole path segments: list the enclosing "directory", then filter.
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let dir_path = if dir.is_empty() { None } else { Some(object_path(dir)?) };
        let listed: Result<Vec<ObjectMeta>, object_store::Error> =
            self.store.list(dir_path.as_ref()).try_collect().await;
        let metas = match listed {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(self.err("list", prefix, e)),
        };
        let mut keys: Vec<String> =
            metas.into_iter().map(|m| m.location.to_string()).filter(|k| k.starts_with(prefix)).collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = object_path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("delete", key, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_target_and_backup_keys() {
        for ok in ["main/1.2.0.ferry", "main/ab12.1.2.0+build.7.ferry", "backups/dev-1/main/1.0.0", "x"] {
            validate_key(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn rejects_keys_that_could_escape_or_alias() {
        for bad in ["", "/abs", "a//b", "a/", "../x", "a/../b", "a/./b", ".", "a\\b", "a b", "a#1", "a?b", "a%2e", "é"]
        {
            let err = validate_key(bad).expect_err(bad);
            assert!(matches!(err, StoreError::Config(_)), "{bad}: {err}");
        }
        assert!(validate_key(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn prefixes_may_be_empty_or_end_with_a_slash() {
        validate_prefix("").unwrap();
        validate_prefix("main/").unwrap();
        validate_prefix("main/1.").unwrap();
        assert!(validate_prefix("/main").is_err());
        assert!(validate_prefix("main//").is_err());
    }

    #[test]
    fn etag_drops_quotes_and_weak_marker_and_falls_back_to_size_and_time() {
        let mut meta = ObjectMeta {
            location: ObjectPath::from("a"),
            last_modified: chrono::DateTime::from_timestamp(1_700_000_000, 5).unwrap(),
            size: 10,
            e_tag: Some("W/\"abc\"".into()),
            version: None,
        };
        assert_eq!(etag_of(&meta), "abc");
        meta.e_tag = None;
        let a = etag_of(&meta);
        meta.size = 11;
        assert_ne!(etag_of(&meta), a);
    }
}
