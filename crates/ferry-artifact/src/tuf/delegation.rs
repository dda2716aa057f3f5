//! Targets delegations (TUF 1.0 §5.6.7): delegated roles, their `paths` / `path_hash_prefixes`,
//! succinct hash bins (TAP 15), and python-tuf's `fnmatch` path patterns.

use super::role::Role;
use crate::keys::PublicKey;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// The `delegations` member of targets metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delegations {
    /// Keys of the delegated roles, by key id.
    pub keys: BTreeMap<String, PublicKey>,
    /// Delegated roles in priority order (exactly one of `roles` and `succinct_roles` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<DelegatedRole>>,
    /// Hash-bin delegation (TAP 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succinct_roles: Option<SuccinctRoles>,
    /// Fields Ferry does not know, kept as written.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// One delegated targets role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegatedRole {
    /// Role name (also its metadata file name, percent-encoded, with `.json`).
    pub name: String,
    /// Keys allowed to sign for the role.
    pub keyids: Vec<String>,
    /// Distinct keys that must sign.
    pub threshold: u64,
    /// Whether the search stops at this role when it is responsible for a target.
    pub terminating: bool,
    /// Path patterns (`fnmatch` per `/`-separated segment) the role is trusted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Prefixes of the hex sha256 of target names the role is trusted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    /// Fields Ferry does not know, kept as written.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// Succinct hash-bin delegation: `2^bit_length` terminating roles `name_prefix-XX`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuccinctRoles {
    /// Keys allowed to sign every bin.
    pub keyids: Vec<String>,
    /// Distinct keys that must sign a bin.
    pub threshold: u64,
    /// Number of leading bits of the target name's sha256 selecting the bin (1..=32).
    pub bit_length: u32,
    /// Bin role names are `{name_prefix}-{index in hex}`.
    pub name_prefix: String,
    /// Fields Ferry does not know, kept as written.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

impl Delegations {
    /// Parses and validates the `delegations` value of targets metadata: exactly one of `roles`
    /// and `succinct_roles`, role names unique, non-empty and not top-level role names, each
    /// role with exactly one of `paths` and `path_hash_prefixes`, thresholds ≥ 1, key ids unique.
    pub fn from_value(value: &Value) -> Result<Delegations, String> {
        let delegations: Delegations =
            serde_json::from_value(value.clone()).map_err(|e| format!("delegations: {e}"))?;
        match (&delegations.roles, &delegations.succinct_roles) {
            (Some(roles), None) => {
                let mut names = BTreeSet::new();
                for role in roles {
                    if role.name.is_empty() || Role::from_name(&role.name).is_some() {
                        return Err(format!(
                            "delegated role name '{}' is empty or a top-level role name",
                            role.name
                        ));
                    }
                    if !names.insert(role.name.as_str()) {
                        return Err(format!("delegated role '{}' is listed twice", role.name));
                    }
                    if role.paths.is_some() == role.path_hash_prefixes.is_some() {
                        return Err(format!(
                            "delegated role '{}' must have exactly one of paths and path_hash_prefixes",
                            role.name
                        ));
                    }
                    check_role_keys(&role.name, &role.keyids, role.threshold)?;
                }
            }
            (None, Some(succinct)) => {
                if !(1..=32).contains(&succinct.bit_length) {
                    return Err(format!(
                        "succinct_roles bit_length {} is not between 1 and 32",
                        succinct.bit_length
                    ));
                }
                check_role_keys(&succinct.name_prefix, &succinct.keyids, succinct.threshold)?;
            }
            _ => return Err("exactly one of roles and succinct_roles must be set".into()),
        }
        Ok(delegations)
    }

    /// The roles responsible for `target`, in priority order, with their `terminating` flag
    /// (succinct bins are always terminating).
    pub fn roles_for_target(&self, target: &str) -> Vec<(String, bool)> {
        if let Some(roles) = &self.roles {
            return roles
                .iter()
                .filter(|r| r.is_delegated_path(target))
                .map(|r| (r.name.clone(), r.terminating))
                .collect();
        }
        match &self.succinct_roles {
            Some(succinct) => vec![(succinct.role_for_target(target), true)],
            None => Vec::new(),
        }
    }

    /// Key ids and threshold of the delegated role `name`, if this delegates to it.
    pub fn role_keys(&self, name: &str) -> Option<(&[String], u64)> {
        if let Some(roles) = &self.roles {
            return roles
                .iter()
                .find(|r| r.name == name)
                .map(|r| (r.keyids.as_slice(), r.threshold));
        }
        let succinct = self.succinct_roles.as_ref()?;
        succinct
            .is_bin(name)
            .then_some((succinct.keyids.as_slice(), succinct.threshold))
    }
}

fn check_role_keys(name: &str, keyids: &[String], threshold: u64) -> Result<(), String> {
    if threshold == 0 {
        return Err(format!("delegated role '{name}' has threshold 0"));
    }
    let unique: BTreeSet<&String> = keyids.iter().collect();
    if unique.len() != keyids.len() {
        return Err(format!("delegated role '{name}' lists a key id more than once"));
    }
    Ok(())
}

impl DelegatedRole {
    /// Whether the role is trusted for `target`: a listed hash prefix of the hex sha256 of the
    /// name, else a path pattern matching segment by segment (`*` never crosses `/`).
    pub fn is_delegated_path(&self, target: &str) -> bool {
        if let Some(prefixes) = &self.path_hash_prefixes {
            let hash = hex::encode(Sha256::digest(target.as_bytes()));
            return prefixes.iter().any(|p| hash.starts_with(p.as_str()));
        }
        match &self.paths {
            Some(patterns) => patterns.iter().any(|p| path_matches(p, target)),
            None => false,
        }
    }
}

impl SuccinctRoles {
    fn suffix_len(&self) -> usize {
        format!("{:x}", (1u64 << self.bit_length) - 1).len()
    }

    /// The bin responsible for `target`: the leading `bit_length` bits of sha256(target).
    pub fn role_for_target(&self, target: &str) -> String {
        let hash = Sha256::digest(target.as_bytes());
        let first = u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]);
        let bin = u64::from(first) >> (32 - self.bit_length);
        format!("{}-{:0width$x}", self.name_prefix, bin, width = self.suffix_len())
    }

    /// Whether `name` is one of the bins.
    pub fn is_bin(&self, name: &str) -> bool {
        let Some(suffix) = name
            .strip_prefix(self.name_prefix.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
        else {
            return false;
        };
        suffix.len() == self.suffix_len()
            && u64::from_str_radix(suffix, 16).is_ok_and(|bin| bin < (1u64 << self.bit_length))
    }
}

/// python-tuf's `_is_target_in_pathpattern`: same number of `/`-separated segments, each
/// matching with `fnmatch`.
pub fn path_matches(pattern: &str, target: &str) -> bool {
    let pattern_parts: Vec<&str> = pattern.split('/').collect();
    let target_parts: Vec<&str> = target.split('/').collect();
    pattern_parts.len() == target_parts.len()
        && pattern_parts
            .iter()
            .zip(&target_parts)
            .all(|(p, t)| fnmatch(p, t))
}

/// Python's `fnmatch.fnmatchcase`: `*` any run, `?` one character, `[seq]` / `[!seq]` a class
/// with ranges; a `[` without a closing `]` is literal.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Dynamic programming over (pattern position, name position).
    let mut states = vec![false; n.len() + 1];
    states[0] = true;
    let mut i = 0;
    while i < p.len() {
        let mut next = vec![false; n.len() + 1];
        match p[i] {
            '*' => {
                let mut reached = false;
                for j in 0..=n.len() {
                    reached |= states[j];
                    next[j] = reached;
                }
                i += 1;
            }
            '[' => match parse_class(&p, i) {
                Some((class, end)) => {
                    for j in 0..n.len() {
                        if states[j] && class.matches(n[j]) {
                            next[j + 1] = true;
                        }
                    }
                    i = end;
                }
                None => {
                    step_literal(&states, &mut next, &n, '[');
                    i += 1;
                }
            },
            '?' => {
                for j in 0..n.len() {
                    if states[j] {
                        next[j + 1] = true;
                    }
                }
                i += 1;
            }
            c => {
                step_literal(&states, &mut next, &n, c);
                i += 1;
            }
        }
        states = next;
    }
    states[n.len()]
}

fn step_literal(states: &[bool], next: &mut [bool], n: &[char], c: char) {
    for j in 0..n.len() {
        if states[j] && n[j] == c {
            next[j + 1] = true;
        }
    }
}

struct CharClass {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl CharClass {
    fn matches(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

/// Parses `[...]` starting at `start` (the `[`); returns the class and the index after `]`.
fn parse_class(p: &[char], start: usize) -> Option<(CharClass, usize)> {
    let mut j = start + 1;
    let negated = p.get(j) == Some(&'!');
    if negated {
        j += 1;
    }
    // A `]` right after `[` or `[!` is a member, not the end.
    let first = j;
    let mut end = None;
    let mut k = j;
    while k < p.len() {
        if p[k] == ']' && k > first {
            end = Some(k);
            break;
        }
        k += 1;
    }
    let end = end?;
    let body = &p[first..end];
    let mut ranges = Vec::new();
    let mut m = 0;
    while m < body.len() {
        if m + 2 < body.len() && body[m + 1] == '-' {
            // Python drops reversed ranges (they match nothing).
            if body[m] <= body[m + 2] {
                ranges.push((body[m], body[m + 2]));
            }
            m += 3;
        } else {
            ranges.push((body[m], body[m]));
            m += 1;
        }
    }
    Some((CharClass { negated, ranges }, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fnmatch_follows_python() {
        for (pattern, name, expected) in [
            ("*", "anything.txt", true),
            ("*.txt", "a.txt", true),
            ("*.txt", "a.tar", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[ab]x", "bx", true),
            ("[!ab]x", "bx", false),
            ("[!ab]x", "cx", true),
            ("[a-c]1", "b1", true),
            ("[a-c]1", "d1", false),
            ("[]]", "]", true),
            ("[!]]", "a", true),
            ("[abc", "[abc", true),
            ("[z-a]", "m", false),
            ("file-*-*.bin", "file-1-2.bin", true),
            ("", "", true),
            ("*", "", true),
        ] {
            assert_eq!(fnmatch(pattern, name), expected, "{pattern} vs {name}");
        }
    }

    #[test]
    fn star_does_not_cross_a_slash() {
        assert!(path_matches("targets/*.tgz", "targets/a.tgz"));
        assert!(!path_matches("targets/*.tgz", "targets/sub/a.tgz"));
        assert!(!path_matches("*", "dir/file"));
        assert!(path_matches("*/*", "dir/file"));
    }

    #[test]
    fn hash_prefixes_select_by_sha256_of_the_name() {
        let hash = hex::encode(Sha256::digest(b"main/1.0.0.ferry"));
        let role = |prefixes: Vec<String>| DelegatedRole {
            name: "bin".into(),
            keyids: vec![],
            threshold: 1,
            terminating: false,
            paths: None,
            path_hash_prefixes: Some(prefixes),
            unrecognized: Map::new(),
        };
        assert!(role(vec![hash[..2].to_string()]).is_delegated_path("main/1.0.0.ferry"));
        let other = if hash.starts_with('0') { "1" } else { "0" };
        assert!(!role(vec![other.into()]).is_delegated_path("main/1.0.0.ferry"));
    }

    #[test]
    fn validates_delegations_like_python_tuf() {
        let role = json!({"name": "a", "keyids": [], "threshold": 1, "terminating": false, "paths": ["*"]});
        assert!(Delegations::from_value(&json!({"keys": {}, "roles": [role]})).is_ok());
        for bad in [
            json!({"keys": {}}),
            json!({"keys": {}, "roles": [role, role]}),
            json!({"keys": {}, "roles": [{"name": "snapshot", "keyids": [], "threshold": 1, "terminating": false, "paths": []}]}),
            json!({"keys": {}, "roles": [{"name": "b", "keyids": [], "threshold": 1, "terminating": false}]}),
            json!({"keys": {}, "roles": [{"name": "b", "keyids": [], "threshold": 1, "terminating": false, "paths": [], "path_hash_prefixes": []}]}),
            json!({"keys": {}, "roles": [{"name": "b", "keyids": [], "threshold": 0, "terminating": false, "paths": []}]}),
            json!({"keys": {}, "succinct_roles": {"keyids": [], "threshold": 1, "bit_length": 33, "name_prefix": "bin"}}),
        ] {
            assert!(Delegations::from_value(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn succinct_bins_are_named_by_leading_hash_bits() {
        let s = SuccinctRoles {
            keyids: vec![],
            threshold: 1,
            bit_length: 8,
            name_prefix: "bin".into(),
            unrecognized: Map::new(),
        };
        let hash = Sha256::digest(b"x.txt");
        assert_eq!(s.role_for_target("x.txt"), format!("bin-{:02x}", hash[0]));
        assert!(s.is_bin("bin-ff") && !s.is_bin("bin-100") && !s.is_bin("bin-f") && !s.is_bin("other-00"));
    }
}
