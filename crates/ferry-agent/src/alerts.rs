//! Security alerts the server has not received yet. A preflight that judged an update unsafe
//! must reach the server (it halts the rollout for the whole fleet), so an alert that cannot be
//! delivered is kept in `state_dir/alerts/` and sent again before every check-in until the
//! server archives it.

use crate::error::{AgentError, io_err};
use crate::state::write_atomic;
use ferry_core::api::SecurityAlert;
use std::path::{Path, PathBuf};

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("alerts")
}

/// Keeps `alert` for a later attempt (written atomically; one file per alert).
pub fn keep(state_dir: &Path, alert: &SecurityAlert) -> Result<PathBuf, AgentError> {
    let dir = dir(state_dir);
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, "create the pending-alerts directory", e))?;
    let bytes = serde_json::to_vec_pretty(alert).expect("an alert serialises");
    let name = format!("{}-{}-{}-{}.json", alert.detected_at, alert.component, alert.version, &hex_sha(&bytes)[..12]);
    let path = dir.join(name);
    write_atomic(&path, &bytes, 0o600)?;
    Ok(path)
}

fn hex_sha(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// The alerts waiting to be sent, oldest first, with their files. Unreadable files are skipped
/// with a warning (and left for an operator to look at).
pub fn pending(state_dir: &Path) -> Vec<(PathBuf, SecurityAlert)> {
    let Ok(entries) = std::fs::read_dir(dir(state_dir)) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| match std::fs::read(&p).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
            Ok(alert) => Some((p, alert)),
            Err(e) => {
                tracing::warn!(file = %p.display(), "pending security alert unreadable, left in place: {e}");
                None
            }
        })
        .collect()
}

/// Whether sending an alert again can succeed: not when the server refused it for what it is
/// (4xx other than 401 credential, 408 timeout and 429 too many requests).
pub fn worth_resending(e: &AgentError) -> bool {
    match e {
        AgentError::Status { status, .. } => !(400..500).contains(status) || matches!(status, 401 | 408 | 429),
        _ => true,
    }
}

/// Sets aside an alert the server refused for good (`….json.rejected`, kept for an operator
/// to read; no longer sent).
pub fn rejected(path: &Path) -> Result<PathBuf, AgentError> {
    let mut target = path.as_os_str().to_owned();
    target.push(".rejected");
    let target = PathBuf::from(target);
    std::fs::rename(path, &target).map_err(|e| io_err(path, "set aside a refused security alert", e))?;
    Ok(target)
}

/// Forgets an alert the server archived.
pub fn delivered(path: &Path) -> Result<(), AgentError> {
    std::fs::remove_file(path).map_err(|e| io_err(path, "remove a delivered security alert", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::Component;

    fn alert(at: u64) -> SecurityAlert {
        SecurityAlert {
            device_id: "dev-1".parse().unwrap(),
            component: Component::Main,
            version: "2.0.0".parse().unwrap(),
            stage: "scan".into(),
            findings: vec![],
            evidence: vec![],
            detected_at: at,
        }
    }

    #[test]
    fn kept_alerts_come_back_oldest_first_until_delivered() {
        let dir = tempfile::tempdir().unwrap();
        assert!(pending(dir.path()).is_empty());
        keep(dir.path(), &alert(20)).unwrap();
        keep(dir.path(), &alert(10)).unwrap();
        let got = pending(dir.path());
        assert_eq!(got.iter().map(|(_, a)| a.detected_at).collect::<Vec<_>>(), [10, 20]);
        delivered(&got[0].0).unwrap();
        assert_eq!(pending(dir.path()).len(), 1);
    }

    fn status(status: u16) -> AgentError {
        AgentError::Status { device: "dev-1".into(), url: "http://s/api/v1/alerts".into(), status, body: String::new() }
    }

    #[test]
    fn alerts_refused_for_what_they_are_are_not_resent_but_kept_aside() {
        assert!(worth_resending(&status(503)));
        assert!(worth_resending(&status(401)));
        assert!(worth_resending(&status(429)));
        assert!(!worth_resending(&status(404)));
        assert!(!worth_resending(&status(400)));
        let dir = tempfile::tempdir().unwrap();
        let path = keep(dir.path(), &alert(5)).unwrap();
        let aside = rejected(&path).unwrap();
        assert!(aside.exists() && pending(dir.path()).is_empty());
    }

    #[test]
    fn a_corrupt_pending_file_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        keep(dir.path(), &alert(1)).unwrap();
        std::fs::write(dir.path().join("alerts/0-broken.json"), b"{not json").unwrap();
        assert_eq!(pending(dir.path()).len(), 1);
    }
}
