//! The four top-level TUF roles.

use std::fmt;

/// A top-level TUF role. Implements `AsRef<str>`, so APIs taking a role name accept both
/// `Role::Timestamp` and `"timestamp"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Root of trust: lists the keys and thresholds of every role.
    Root,
    /// Freshness: names the current snapshot; re-signed often.
    Timestamp,
    /// Consistency: names the current version of every targets metadata file.
    Snapshot,
    /// What to install: target names, lengths, hashes and custom data.
    Targets,
}

impl Role {
    /// All roles, in the order a client loads them.
    pub const ALL: [Role; 4] = [Role::Root, Role::Timestamp, Role::Snapshot, Role::Targets];

    /// The role name as written in `_type` and in root's `roles`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Timestamp => "timestamp",
            Role::Snapshot => "snapshot",
            Role::Targets => "targets",
        }
    }

    /// The unversioned metadata file name, e.g. `snapshot.json` (also the key in `meta` maps).
    pub fn file_name(self) -> String {
        format!("{}.json", self.as_str())
    }

    /// The versioned file name served with consistent snapshots, e.g. `3.snapshot.json`.
    pub fn versioned_file_name(self, version: u64) -> String {
        format!("{version}.{}.json", self.as_str())
    }

    /// The role named `name`, if it is a top-level role.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl AsRef<str> for Role {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_file_names_follow_tuf() {
        assert_eq!(Role::Snapshot.file_name(), "snapshot.json");
        assert_eq!(Role::Targets.versioned_file_name(7), "7.targets.json");
        assert_eq!(Role::from_name("timestamp"), Some(Role::Timestamp));
        assert_eq!(Role::from_name("mirrors"), None);
    }
}
