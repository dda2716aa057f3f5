//! The pre-order depth-first search of the targets delegation tree (TUF 1.0 §5.6.7), one step
//! at a time so that the caller fetches each delegated role only when the search reaches it.

use super::error::TufError;
use super::metadata::TargetFile;
use super::role::Role;
use super::trusted_set::TrustedSet;
use std::collections::BTreeSet;

/// Most targets roles one search visits (python-tuf's `max_delegations`).
pub const MAX_DELEGATIONS: usize = 32;

/// What the search needs or found.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchStep {
    /// The target, in the most trusted role that lists it.
    Found {
        /// The role that lists it.
        role: String,
        /// Its signed description.
        target: TargetFile,
    },
    /// No visited role lists the target (or the visit limit was reached).
    NotFound,
    /// Load `role` as delegated by `delegator` into the trusted set
    /// ([`TrustedSet::update_delegated_targets`]), then call [`TargetSearch::next`] again.
    Load {
        /// The delegated role to load.
        role: String,
        /// The role that delegates to it.
        delegator: String,
    },
}

/// The delegation walk of python-tuf's `_preorder_depth_first_walk`: roles in listed order,
/// depth first, a terminating role cutting off the rest, each role visited once (cycles), at
/// most `max_delegations` roles visited.
#[derive(Debug, Clone)]
pub struct TargetSearch {
    name: String,
    to_visit: Vec<(String, String)>,
    visited: BTreeSet<String>,
    remaining: usize,
}

impl TargetSearch {
    /// A search for target `name` starting at top-level targets.
    pub fn new(name: &str, max_delegations: usize) -> TargetSearch {
        TargetSearch {
            name: name.to_string(),
            to_visit: vec![(Role::Targets.as_str().into(), Role::Root.as_str().into())],
            visited: BTreeSet::new(),
            remaining: max_delegations,
        }
    }

    /// The next step. Top-level targets must already be loaded in `set`.
    pub fn next(&mut self, set: &TrustedSet) -> Result<SearchStep, TufError> {
        while self.remaining > 0 {
            let Some((role, delegator)) = self.to_visit.last().cloned() else {
                return Ok(SearchStep::NotFound);
            };
            if self.visited.contains(&role) {
                self.to_visit.pop();
                continue;
            }
            if !set.is_loaded(&role, &delegator) {
                if role == Role::Targets.as_str() {
                    return Err(TufError::OutOfOrder {
                        action: "search for a target",
                        reason: "top-level targets metadata is not loaded yet",
                    });
                }
                return Ok(SearchStep::Load { role, delegator });
            }
            self.to_visit.pop();
            let targets = set.targets_role(&role).ok_or(TufError::OutOfOrder {
                action: "search for a target",
                reason: "a role reported as loaded has no metadata",
            })?;
            if let Some(target) = targets.targets.get(&self.name) {
                return Ok(SearchStep::Found {
                    role,
                    target: target.clone(),
                });
            }
            self.visited.insert(role.clone());
            self.remaining -= 1;
            if let Some(delegations) = set.delegations_of(&role) {
                let mut children = Vec::new();
                for (child, terminating) in delegations.roles_for_target(&self.name) {
                    children.push((child, role.clone()));
                    if terminating {
                        self.to_visit.clear();
                        break;
                    }
                }
                children.reverse();
                self.to_visit.extend(children);
            }
        }
        // The visit limit is reached: like python-tuf, the target counts as not found even if
        // roles are left to visit.
        Ok(SearchStep::NotFound)
    }

    /// Whether the last [`TargetSearch::next`] stopped at the visit limit with roles left.
    pub fn hit_visit_limit(&self) -> bool {
        self.remaining == 0 && !self.to_visit.is_empty()
    }
}
