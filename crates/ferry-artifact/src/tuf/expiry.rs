//! How long freshly signed metadata stays valid, per role.

use super::role::Role;
use chrono::TimeDelta;

/// Lifetime of each role's metadata from the moment it is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// Root lifetime (default 365 days).
    pub root: TimeDelta,
    /// Targets lifetime (default 90 days).
    pub targets: TimeDelta,
    /// Snapshot lifetime (default 7 days).
    pub snapshot: TimeDelta,
    /// Timestamp lifetime (default 1 day).
    pub timestamp: TimeDelta,
}

impl Default for Expiry {
    fn default() -> Self {
        Expiry {
            root: TimeDelta::days(365),
            targets: TimeDelta::days(90),
            snapshot: TimeDelta::days(7),
            timestamp: TimeDelta::days(1),
        }
    }
}

impl Expiry {
    /// The lifetime of `role`'s metadata.
    pub fn for_role(&self, role: Role) -> TimeDelta {
        match role {
            Role::Root => self.root,
            Role::Targets => self.targets,
            Role::Snapshot => self.snapshot,
            Role::Timestamp => self.timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_lifetimes() {
        let e = Expiry::default();
        assert_eq!(e.for_role(Role::Root), TimeDelta::days(365));
        assert_eq!(e.for_role(Role::Targets), TimeDelta::days(90));
        assert_eq!(e.for_role(Role::Snapshot), TimeDelta::days(7));
        assert_eq!(e.for_role(Role::Timestamp), TimeDelta::days(1));
    }
}
