//! Segmented, resumable download of an artifact.
//!
//! Bytes go to `downloads/<file>.part`; after each segment is written and fsynced, the sidecar
//! `downloads/<file>.part.json` records how many bytes are safely on disk. A restart resumes
//! from there. Every segment is a `Range` request guarded by `If-Range: <etag>`; the answer
//! must be a 206 whose `Content-Range` and length match exactly what was asked, so the file
//! can never grow past the length the signed metadata gives. At the end, length and sha256
//! are checked against the signed metadata.

use crate::error::{AgentError, io_err};
use crate::state::{fsync_dir, read_json, remove_if_exists, write_json};
use ferry_core::api::UpdateOffer;
use ferry_core::segments::{Segment, check_content_range, remaining};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, RANGE};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest segment the agent requests, whatever the server's chunk size.
pub const MAX_SEGMENT: u32 = 16 * 1024 * 1024;

/// What the agent remembers about a download in progress (`<file>.part.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sidecar {
    /// TUF target name.
    pub target: String,
    /// URL the bytes come from.
    pub url: String,
    /// Length from the signed targets metadata.
    pub length: u64,
    /// sha256 (hex) from the signed targets metadata.
    pub sha256: String,
    /// The server's entity tag, sent back as `If-Range`.
    pub etag: Option<String>,
    /// Bytes written and fsynced.
    pub done: u64,
    /// The offer being fulfilled (to resume after a restart).
    pub offer: UpdateOffer,
}

/// The files of one download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadPaths {
    /// Bytes being fetched.
    pub part: PathBuf,
    /// Sidecar JSON.
    pub sidecar: PathBuf,
    /// The complete file, after its length and hash verified.
    pub complete: PathBuf,
}

/// The file names used for `target_name` inside `downloads_dir`.
pub fn paths(downloads_dir: &Path, target_name: &str) -> DownloadPaths {
    let safe: String = target_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.').to_string();
    DownloadPaths {
        part: downloads_dir.join(format!("{safe}.part")),
        sidecar: downloads_dir.join(format!("{safe}.part.json")),
        complete: downloads_dir.join(safe),
    }
}

/// A download that failed for good (the attempt fails) or for this run (it resumes later).
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The file service refused the request.
    #[error("{url} answered HTTP {status} for {target}: {hint}")]
    Refused {
        /// URL.
        url: String,
        /// Target.
        target: String,
        /// HTTP status.
        status: u16,
        /// What it means.
        hint: String,
    },
    /// One segment failed; it is retried.
    #[error("{url} bytes {start}-{end}: {reason}")]
    Segment {
        /// URL.
        url: String,
        /// First byte asked.
        start: u64,
        /// Last byte asked.
        end: u64,
        /// What went wrong.
        reason: String,
    },
    /// Too many failed segments in this run; the download resumes next run.
    #[error(
        "{target}: giving up for this run after {failures} failed segment requests at {done} of {length} bytes; last error: {last}. The next run resumes from byte {done}"
    )]
    Deferred {
        /// Target.
        target: String,
        /// Failures in this run.
        failures: u32,
        /// Bytes safely on disk.
        done: u64,
        /// Total length.
        length: u64,
        /// Last error.
        last: String,
    },
    /// The complete file has the wrong length.
    #[error(
        "{path}: downloaded {found} bytes, but the signed targets metadata says {target} has {expected}; the partial file was deleted and nothing installed was changed"
    )]
    LengthMismatch {
        /// The downloaded file.
        path: PathBuf,
        /// Target.
        target: String,
        /// Length from the signed metadata.
        expected: u64,
        /// Length found.
        found: u64,
    },
    /// The complete file has the wrong hash.
    #[error(
        "{path}: sha256 {found} does not match {expected} from the signed targets metadata for {target} (corrupted or tampered in transit); the partial file was deleted and nothing installed was changed"
    )]
    HashMismatch {
        /// The downloaded file.
        path: PathBuf,
        /// Target.
        target: String,
        /// sha256 from the signed metadata.
        expected: String,
        /// sha256 found.
        found: String,
    },
}

impl DownloadError {
    /// Whether the attempt should wait for the next run rather than fail.
    pub fn is_deferred(&self) -> bool {
        matches!(self, DownloadError::Deferred { .. })
    }
}

/// How a download call ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Every byte is on disk (not yet hash-checked: see [`verify_and_complete`]).
    AllBytes,
    /// The progress callback asked to stop.
    Stopped,
}

/// Retry policy for segments.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Failed segment requests allowed in one run.
    pub max_failures: u32,
    /// First pause; doubles each failure, capped at 30 s.
    pub backoff: Duration,
}

impl RetryPolicy {
    /// Pause before retry number `n` (1-based).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(16);
        self.backoff
            .saturating_mul(factor)
            .min(Duration::from_secs(30))
    }
}

/// Opens (or restarts) the download described by `fresh`; returns the sidecar in effect.
///
/// A sidecar for the same target, length and hash is resumed: the part file is cut back to
/// the bytes the sidecar says were fsynced. Anything else starts from zero.
pub fn prepare(p: &DownloadPaths, fresh: Sidecar) -> Result<Sidecar, AgentError> {
    let existing: Option<Sidecar> = read_json(&p.sidecar).unwrap_or(None);
    let on_disk = std::fs::metadata(&p.part).map(|m| m.len()).unwrap_or(0);
    let mut side = match existing {
        Some(old)
            if old.target == fresh.target
                && old.length == fresh.length
                && old.sha256 == fresh.sha256 =>
        {
            Sidecar {
                done: old.done.min(on_disk).min(fresh.length),
                url: fresh.url,
                offer: fresh.offer,
                ..old
            }
        }
        _ => Sidecar {
            done: 0,
            etag: None,
            ..fresh
        },
    };
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&p.part)
        .map_err(|e| io_err(&p.part, "open download", e))?;
    file.set_len(side.done)
        .map_err(|e| io_err(&p.part, "truncate download to its last fsynced segment", e))?;
    file.sync_all()
        .map_err(|e| io_err(&p.part, "fsync download", e))?;
    if side.done == 0 {
        side.etag = None;
    }
    write_json(&p.sidecar, &side, 0o600)?;
    Ok(side)
}

enum SegmentFailure {
    Retry(String),
    Fatal(DownloadError),
}

async fn fetch_segment(
    http: &reqwest::Client,
    token: &str,
    side: &Sidecar,
    seg: Segment,
) -> Result<(Vec<u8>, Option<String>), SegmentFailure> {
    let url = &side.url;
    let mut req = http
        .get(url)
        .bearer_auth(token)
        .header(RANGE, seg.range_header());
    if let Some(etag) = &side.etag {
        req = req.header(IF_RANGE, etag);
    }
    let mut resp = req
        .send()
        .await
        .map_err(|e| SegmentFailure::Retry(format!("request failed: {e}")))?;
    let status = resp.status();
    let etag = resp
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match status {
        StatusCode::PARTIAL_CONTENT => {}
        StatusCode::OK => {
            return Err(SegmentFailure::Retry(format!(
                "answered 200 with the whole file instead of 206 (ETag now {}, was {}); segment discarded",
                etag.as_deref().unwrap_or("none"),
                side.etag.as_deref().unwrap_or("none")
            )));
        }
        s if s.is_server_error()
            || s == StatusCode::TOO_MANY_REQUESTS
            || s == StatusCode::REQUEST_TIMEOUT =>
        {
            return Err(SegmentFailure::Retry(format!(
                "answered HTTP {}",
                s.as_u16()
            )));
        }
        s => {
            let hint = match s {
                StatusCode::NOT_FOUND => "the file service does not have this artifact".to_string(),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    "the file service refused this device's credential".to_string()
                }
                StatusCode::RANGE_NOT_SATISFIABLE => format!(
                    "the file is shorter than the {} bytes the signed metadata promises",
                    side.length
                ),
                _ => "unexpected answer".to_string(),
            };
            return Err(SegmentFailure::Fatal(DownloadError::Refused {
                url: url.clone(),
                target: side.target.clone(),
                status: s.as_u16(),
                hint,
            }));
        }
    }
    let header = resp
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    check_content_range(&header, seg, side.length)
        .map_err(|e| SegmentFailure::Retry(e.to_string()))?;
    let want = seg.len() as usize;
    let mut body = Vec::with_capacity(want);
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > want {
                    return Err(SegmentFailure::Retry(format!(
                        "sent more than the {want} bytes asked for; segment discarded"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(SegmentFailure::Retry(format!(
                    "connection dropped after {} of {want} bytes: {e}",
                    body.len()
                )));
            }
        }
    }
    if body.len() != want {
        return Err(SegmentFailure::Retry(format!(
            "segment ended after {} of {want} bytes",
            body.len()
        )));
    }
    Ok((body, etag))
}

/// What [`fetch`] tells its caller as it goes.
pub trait FetchObserver {
    /// A segment is written and fsynced: `done` bytes are on disk, `fetched` came in just now.
    /// Persist progress here; `Break` stops the download.
    fn segment_done(&mut self, done: u64, fetched: u64) -> Result<ControlFlow<()>, AgentError>;
    /// A segment failed and will be retried (`failure` of `allowed` in this run).
    fn segment_failed(&mut self, error: &DownloadError, failure: u32, allowed: u32);
}

/// Fetches the remaining segments of `side`, telling `observer` about each one.
pub async fn fetch(
    http: &reqwest::Client,
    token: &str,
    p: &DownloadPaths,
    side: &mut Sidecar,
    chunk_size: u32,
    retry: RetryPolicy,
    observer: &mut (dyn FetchObserver + Send),
) -> Result<Finished, AgentError> {
    let chunk = chunk_size.clamp(1, MAX_SEGMENT);
    let mut file = OpenOptions::new()
        .write(true)
        .open(&p.part)
        .map_err(|e| io_err(&p.part, "open download", e))?;
    let mut failures = 0u32;
    while side.done < side.length {
        let seg = remaining(side.length, side.done, chunk)
            .next()
            .expect("done < length leaves a segment");
        match fetch_segment(http, token, side, seg).await {
            Ok((bytes, etag)) => {
                file.seek(SeekFrom::Start(seg.start))
                    .map_err(|e| io_err(&p.part, "seek", e))?;
                file.write_all(&bytes)
                    .map_err(|e| io_err(&p.part, "write segment", e))?;
                file.sync_data()
                    .map_err(|e| io_err(&p.part, "fsync segment", e))?;
                side.done = seg.end + 1;
                if side.etag.is_none() {
                    side.etag = etag;
                }
                write_json(&p.sidecar, side, 0o600)?;
                if observer.segment_done(side.done, seg.len())?.is_break() {
                    return Ok(Finished::Stopped);
                }
            }
            Err(SegmentFailure::Fatal(e)) => return Err(e.into()),
            Err(SegmentFailure::Retry(reason)) => {
                failures += 1;
                let err = DownloadError::Segment {
                    url: side.url.clone(),
                    start: seg.start,
                    end: seg.end,
                    reason,
                };
                observer.segment_failed(&err, failures, retry.max_failures);
                if failures > retry.max_failures {
                    return Err(DownloadError::Deferred {
                        target: side.target.clone(),
                        failures,
                        done: side.done,
                        length: side.length,
                        last: err.to_string(),
                    }
                    .into());
                }
                tokio::time::sleep(retry.delay(failures)).await;
            }
        }
    }
    Ok(Finished::AllBytes)
}

/// Checks the complete part file against the signed length and hash, then renames it to
/// `complete`. On mismatch the part file and sidecar are deleted.
pub fn verify_and_complete(p: &DownloadPaths, side: &Sidecar) -> Result<(), AgentError> {
    let found_len = std::fs::metadata(&p.part)
        .map_err(|e| io_err(&p.part, "stat download", e))?
        .len();
    let fail = |e: DownloadError| -> AgentError {
        let _ = remove_if_exists(&p.part);
        let _ = remove_if_exists(&p.sidecar);
        e.into()
    };
    if found_len != side.length {
        return Err(fail(DownloadError::LengthMismatch {
            path: p.part.clone(),
            target: side.target.clone(),
            expected: side.length,
            found: found_len,
        }));
    }
    let (_, found_hash) = hash_prefix(&p.part, side.length)?;
    if found_hash != side.sha256 {
        return Err(fail(DownloadError::HashMismatch {
            path: p.part.clone(),
            target: side.target.clone(),
            expected: side.sha256.clone(),
            found: found_hash,
        }));
    }
    std::fs::rename(&p.part, &p.complete)
        .map_err(|e| io_err(&p.complete, "rename verified download", e))?;
    fsync_dir(p.complete.parent().unwrap_or(Path::new(".")))
}

/// Re-checks a completed download (after a restart) against the sidecar's signed length and hash.
pub fn recheck_complete(p: &DownloadPaths) -> Result<Sidecar, AgentError> {
    let side: Sidecar = read_json(&p.sidecar)?.ok_or_else(|| AgentError::CorruptState {
        path: p.sidecar.clone(),
        reason: "missing; the verified download's expected length and hash are unknown".into(),
    })?;
    let len = std::fs::metadata(&p.complete)
        .map_err(|e| io_err(&p.complete, "stat download", e))?
        .len();
    if len != side.length {
        return Err(DownloadError::LengthMismatch {
            path: p.complete.clone(),
            target: side.target.clone(),
            expected: side.length,
            found: len,
        }
        .into());
    }
    let (_, hash) = hash_prefix(&p.complete, side.length)?;
    if hash != side.sha256 {
        return Err(DownloadError::HashMismatch {
            path: p.complete.clone(),
            target: side.target.clone(),
            expected: side.sha256.clone(),
            found: hash,
        }
        .into());
    }
    Ok(side)
}

/// Deletes every file of a download.
pub fn discard(p: &DownloadPaths) -> Result<(), AgentError> {
    remove_if_exists(&p.part)?;
    remove_if_exists(&p.complete)?;
    remove_if_exists(&p.sidecar)
}

/// Length (reading at most `limit` bytes) and sha256 of a file.
fn hash_prefix(path: &Path, limit: u64) -> Result<(u64, String), AgentError> {
    let f = File::open(path).map_err(|e| io_err(path, "open download", e))?;
    let mut r = f.take(limit);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| io_err(path, "read download", e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::{Component, Version};

    fn offer() -> UpdateOffer {
        UpdateOffer {
            component: Component::Main,
            version: Version::new(1, 2, 0),
            target_name: "main/1.2.0.ferry".into(),
            file_base_url: "http://h/files".into(),
            metadata_base_url: "http://h/tuf".into(),
            chunk_size: 4,
            length: 10,
            sha256: "x".into(),
        }
    }

    fn side(sha: &str, len: u64) -> Sidecar {
        Sidecar {
            target: "main/1.2.0.ferry".into(),
            url: "http://h/files/main/1.2.0.ferry".into(),
            length: len,
            sha256: sha.into(),
            etag: None,
            done: 0,
            offer: offer(),
        }
    }

    #[test]
    fn file_names_cannot_escape_the_downloads_dir() {
        let p = paths(Path::new("/s/downloads"), "../../etc/main/1.2.0.ferry");
        assert_eq!(p.part.parent().unwrap(), Path::new("/s/downloads"));
        assert!(p.part.to_string_lossy().ends_with(".part"));
    }

    #[test]
    fn resume_cuts_back_to_the_last_fsynced_segment() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path(), "main/1.2.0.ferry");
        let mut s = prepare(&p, side("abc", 10)).unwrap();
        assert_eq!(s.done, 0);
        // 8 bytes on disk, but only 4 recorded as fsynced: a power cut mid-segment.
        std::fs::write(&p.part, b"01234567").unwrap();
        s.done = 4;
        s.etag = Some("\"e1\"".into());
        write_json(&p.sidecar, &s, 0o600).unwrap();
        let resumed = prepare(&p, side("abc", 10)).unwrap();
        assert_eq!(resumed.done, 4);
        assert_eq!(resumed.etag.as_deref(), Some("\"e1\""));
        assert_eq!(std::fs::read(&p.part).unwrap(), b"0123");
        let segs: Vec<_> = remaining(resumed.length, resumed.done, 4).collect();
        assert_eq!(segs.first().unwrap().start, 4);
    }

    #[test]
    fn sidecar_claiming_more_than_is_on_disk_resumes_from_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path(), "main/1.2.0.ferry");
        std::fs::write(&p.part, b"012").unwrap();
        write_json(
            &p.sidecar,
            &Sidecar {
                done: 8,
                ..side("abc", 10)
            },
            0o600,
        )
        .unwrap();
        assert_eq!(prepare(&p, side("abc", 10)).unwrap().done, 3);
    }

    #[test]
    fn a_different_target_hash_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path(), "main/1.2.0.ferry");
        std::fs::write(&p.part, b"01234567").unwrap();
        write_json(
            &p.sidecar,
            &Sidecar {
                done: 8,
                ..side("old", 10)
            },
            0o600,
        )
        .unwrap();
        let s = prepare(&p, side("new", 10)).unwrap();
        assert_eq!(s.done, 0);
        assert_eq!(std::fs::metadata(&p.part).unwrap().len(), 0);
    }

    #[test]
    fn hash_mismatch_deletes_the_partial_file_and_names_both_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path(), "main/1.2.0.ferry");
        let s = prepare(&p, side(&"0".repeat(64), 4)).unwrap();
        std::fs::write(&p.part, b"abcd").unwrap();
        let err = verify_and_complete(&p, &s).unwrap_err().to_string();
        assert!(
            err.contains(&"0".repeat(64)) && err.contains(&hex::encode(Sha256::digest(b"abcd"))),
            "{err}"
        );
        assert!(!p.part.exists() && !p.sidecar.exists() && !p.complete.exists());
    }

    #[test]
    fn oversized_file_is_a_length_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path(), "main/1.2.0.ferry");
        let s = prepare(&p, side("x", 4)).unwrap();
        std::fs::write(&p.part, b"abcdef").unwrap();
        let err = verify_and_complete(&p, &s).unwrap_err().to_string();
        assert!(
            err.contains("downloaded 6 bytes") && err.contains("has 4"),
            "{err}"
        );
    }

    #[test]
    fn good_file_is_completed() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path(), "main/1.2.0.ferry");
        let s = prepare(&p, side(&hex::encode(Sha256::digest(b"abcd")), 4)).unwrap();
        std::fs::write(&p.part, b"abcd").unwrap();
        verify_and_complete(&p, &s).unwrap();
        assert_eq!(std::fs::read(&p.complete).unwrap(), b"abcd");
        assert_eq!(recheck_complete(&p).unwrap().length, 4);
    }

    /// How the fake file service misbehaves.
    #[derive(Clone, Copy)]
    enum Mode {
        Good,
        WholeFileWith200,
        Oversized,
        WrongRange,
    }

    /// A one-file HTTP server answering Range requests over `body` as `mode` says.
    async fn file_server(body: Vec<u8>, mode: Mode) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/files/x.ferry", listener.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let body = body.clone();
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = sock.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        req.extend_from_slice(&buf[..n]);
                    }
                    let text = String::from_utf8_lossy(&req).to_lowercase();
                    let range = text
                        .lines()
                        .find_map(|l| l.strip_prefix("range: bytes="))
                        .unwrap_or("0-0")
                        .trim()
                        .to_string();
                    let (a, b) = range.split_once('-').unwrap();
                    let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
                    let (status, content_range, payload) = match mode {
                        Mode::Good => (
                            "206 Partial Content",
                            format!("bytes {a}-{b}/{}", body.len()),
                            body[a..=b].to_vec(),
                        ),
                        Mode::WholeFileWith200 => ("200 OK", String::new(), body.clone()),
                        Mode::Oversized => {
                            let mut p = body[a..=b].to_vec();
                            p.extend_from_slice(b"EXTRA BYTES");
                            (
                                "206 Partial Content",
                                format!("bytes {a}-{b}/{}", body.len()),
                                p,
                            )
                        }
                        Mode::WrongRange => (
                            "206 Partial Content",
                            format!("bytes {}-{}/{}", a + 1, b + 1, body.len()),
                            body[a..=b].to_vec(),
                        ),
                    };
                    let mut head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: \"e1\"\r\nConnection: close\r\n",
                        payload.len()
                    );
                    if !content_range.is_empty() {
                        head.push_str(&format!("Content-Range: {content_range}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(&payload).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        url
    }

    struct Counter {
        segments: u32,
        failures: Vec<String>,
    }

    impl FetchObserver for Counter {
        fn segment_done(
            &mut self,
            _done: u64,
            _fetched: u64,
        ) -> Result<ControlFlow<()>, AgentError> {
            self.segments += 1;
            Ok(ControlFlow::Continue(()))
        }
        fn segment_failed(&mut self, error: &DownloadError, _failure: u32, _allowed: u32) {
            self.failures.push(error.to_string());
        }
    }

    async fn fetch_from(mode: Mode) -> (Result<Finished, AgentError>, Counter, Vec<u8>, Vec<u8>) {
        let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let url = file_server(body.clone(), mode).await;
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path(), "main/1.2.0.ferry");
        let sha = hex::encode(Sha256::digest(&body));
        let mut s = prepare(
            &p,
            Sidecar {
                url,
                ..side(&sha, body.len() as u64)
            },
        )
        .unwrap();
        let mut counter = Counter {
            segments: 0,
            failures: vec![],
        };
        let retry = RetryPolicy {
            max_failures: 2,
            backoff: Duration::from_millis(1),
        };
        let result = fetch(
            &reqwest::Client::new(),
            "token",
            &p,
            &mut s,
            4096,
            retry,
            &mut counter,
        )
        .await;
        let on_disk = std::fs::read(&p.part).unwrap_or_default();
        (result, counter, on_disk, body)
    }

    #[tokio::test]
    async fn fetches_every_segment_in_order() {
        let (result, counter, on_disk, body) = fetch_from(Mode::Good).await;
        assert_eq!(result.unwrap(), Finished::AllBytes);
        assert_eq!(counter.segments, 3);
        assert_eq!(on_disk, body);
    }

    #[tokio::test]
    async fn a_200_instead_of_206_aborts_the_segment() {
        let (result, counter, on_disk, _) = fetch_from(Mode::WholeFileWith200).await;
        let err = result.unwrap_err();
        assert!(
            matches!(&err, AgentError::Download(e) if e.is_deferred()),
            "{err}"
        );
        assert_eq!(counter.segments, 0);
        assert!(
            counter.failures[0].contains("200"),
            "{:?}",
            counter.failures
        );
        assert!(
            on_disk.is_empty(),
            "nothing of the whole-file answer was written"
        );
    }

    #[tokio::test]
    async fn an_oversized_segment_is_discarded_and_never_written() {
        let (result, counter, on_disk, _) = fetch_from(Mode::Oversized).await;
        assert!(result.is_err());
        assert!(
            counter
                .failures
                .iter()
                .all(|f| f.contains("more than the 4096 bytes")),
            "{:?}",
            counter.failures
        );
        assert!(on_disk.is_empty());
    }

    #[tokio::test]
    async fn a_segment_for_the_wrong_range_is_discarded() {
        let (result, counter, on_disk, _) = fetch_from(Mode::WrongRange).await;
        assert!(result.is_err());
        assert!(
            counter.failures[0].contains("expected 0-4095/10000"),
            "{:?}",
            counter.failures
        );
        assert!(on_disk.is_empty());
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let r = RetryPolicy {
            max_failures: 5,
            backoff: Duration::from_millis(100),
        };
        assert_eq!(r.delay(1), Duration::from_millis(100));
        assert_eq!(r.delay(3), Duration::from_millis(400));
        assert_eq!(r.delay(40), Duration::from_secs(30));
    }
}
