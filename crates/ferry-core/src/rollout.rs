//! Staged rollouts: a release reaches the fleet in waves (canary groups or a share of the
//! fleet first), the next wave opening only once the previous one has enough successful
//! installs and has soaked long enough, and the whole rollout halts itself when too many
//! attempts fail (as hawkBit's rollout groups and error thresholds do).
//!
//! Pure: membership comes from a stable hash of the device id, progress from success times the
//! caller gathers, and the current time is a parameter.

use crate::{Component, Version};
use serde::{Deserialize, Serialize};

/// A release's rollout plan as the server keeps it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutRecord {
    /// Component of the release.
    pub component: Component,
    /// Version of the release.
    pub version: Version,
    /// The plan.
    pub plan: RolloutPlan,
    /// When the plan was set (Unix milliseconds); waves count from the later of this, the
    /// release's upload and its go-live.
    pub created_at: u64,
    /// Set when the failure threshold halted the rollout.
    #[serde(default)]
    pub halted: Option<RolloutHalt>,
}

/// Why and since when a rollout halted itself.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutHalt {
    /// The failure figures that crossed the threshold.
    pub reason: String,
    /// When (Unix milliseconds, server clock).
    pub since: u64,
}

/// How one release is rolled out. Devices that fall in no wave form an implicit last wave that
/// opens when the last listed wave completes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPlan {
    /// The waves, in order.
    pub waves: Vec<Wave>,
    /// Halt the rollout when more than this percentage of finished attempts failed (once
    /// `min_attempts` have finished). `None`: never halt on failures.
    #[serde(default)]
    pub max_failure_percent: Option<u8>,
    /// Finished attempts needed before the failure percentage is judged.
    #[serde(default = "default_min_attempts")]
    pub min_attempts: u32,
}

fn default_min_attempts() -> u32 {
    5
}

/// One wave of a [`RolloutPlan`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wave {
    /// Name shown to operators (`canary`, `early`, …).
    pub name: String,
    /// Device groups this wave draws from; empty = every group.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Cumulative share (1..=100) of the matching devices, by a stable hash of the device id:
    /// waves of 5, 25 and 100 over the same groups hold 5 %, then 20 % more, then the rest.
    #[serde(default = "hundred")]
    pub percent: u8,
    /// The next wave opens once this share (0..=100) of this wave's devices installed it …
    #[serde(default = "hundred")]
    pub success_percent: u8,
    /// … and this wave has been open at least this long (milliseconds).
    #[serde(default)]
    pub soak_ms: u64,
}

fn hundred() -> u8 {
    100
}

/// A plan that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No wave listed.
    #[error("a rollout plan needs at least one wave")]
    NoWaves,
    /// A percentage is out of range.
    #[error("wave {wave:?}: {field} is {value}, it must be {range}")]
    BadPercent {
        /// The wave.
        wave: String,
        /// Which field.
        field: &'static str,
        /// The value given.
        value: u8,
        /// The allowed range.
        range: &'static str,
    },
    /// `max_failure_percent` above 100.
    #[error("max_failure_percent is {0}, it must be 0..=100")]
    BadFailurePercent(u8),
}

impl RolloutPlan {
    /// Checks percentages and that there is a wave.
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.waves.is_empty() {
            return Err(PlanError::NoWaves);
        }
        for w in &self.waves {
            if !(1..=100).contains(&w.percent) {
                return Err(PlanError::BadPercent { wave: w.name.clone(), field: "percent", value: w.percent, range: "1..=100" });
            }
            if w.success_percent > 100 {
                return Err(PlanError::BadPercent {
                    wave: w.name.clone(),
                    field: "success_percent",
                    value: w.success_percent,
                    range: "0..=100",
                });
            }
        }
        match self.max_failure_percent {
            Some(p) if p > 100 => Err(PlanError::BadFailurePercent(p)),
            _ => Ok(()),
        }
    }

    /// Number of waves including the implicit last one.
    pub fn wave_count(&self) -> usize {
        self.waves.len() + 1
    }

    /// The wave (index into `waves`; `waves.len()` = the implicit last wave) holding a device.
    pub fn wave_of(&self, device_id: &str, group: &str) -> usize {
        let bucket = bucket(device_id);
        self.waves
            .iter()
            .position(|w| (w.groups.is_empty() || w.groups.iter().any(|g| g == group)) && bucket < w.percent)
            .unwrap_or(self.waves.len())
    }

    /// Whether the failures so far should halt the rollout; the reason, in words, if so.
    pub fn failure_halt(&self, successes: u32, failures: u32) -> Option<String> {
        let max = self.max_failure_percent?;
        let finished = successes + failures;
        if finished == 0 || finished < self.min_attempts {
            return None;
        }
        (u64::from(failures) * 100 > u64::from(max) * u64::from(finished)).then(|| {
            format!(
                "{failures} of {finished} finished attempts failed ({} %), above the plan's max_failure_percent of {max} %",
                u64::from(failures) * 100 / u64::from(finished)
            )
        })
    }
}

/// A device's bucket 0..100: FNV-1a of its id, so membership is stable across check-ins,
/// servers and releases' plans.
pub fn bucket(device_id: &str) -> u8 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in device_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % 100) as u8
}

/// What the caller knows about one wave: how many devices it holds and when each of them
/// installed the release successfully (Unix ms, any order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaveProgress {
    /// Devices in the wave.
    pub members: u32,
    /// Success times of its devices.
    pub successes: Vec<u64>,
}

/// How far a rollout has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutState {
    /// Waves open now (0..=wave_count); wave `i` is open when `i < open`.
    pub open: usize,
    /// When each open wave opened (Unix ms).
    pub opened_at: Vec<u64>,
    /// When the next wave opens, if its conditions are met but its time lies ahead.
    pub next_opens_at: Option<u64>,
}

impl RolloutState {
    /// Whether a device in `wave` may be offered the release.
    pub fn admits(&self, wave: usize) -> bool {
        wave < self.open
    }
}

/// Which waves are open at `now`, for a rollout that started at `start` (upload or go-live).
/// `progress[i]` describes wave `i` (missing entries count as empty waves).
pub fn state(plan: &RolloutPlan, start: u64, progress: &[WaveProgress], now: u64) -> RolloutState {
    let mut opened_at = Vec::new();
    if now < start {
        return RolloutState { open: 0, opened_at, next_opens_at: Some(start) };
    }
    let empty = WaveProgress::default();
    let mut open_at = start;
    for i in 0..plan.wave_count() {
        opened_at.push(open_at);
        let Some(wave) = plan.waves.get(i) else { break };
        let p = progress.get(i).unwrap_or(&empty);
        let needed = (u64::from(p.members) * u64::from(wave.success_percent)).div_ceil(100) as usize;
        let mut times: Vec<u64> = p.successes.iter().copied().filter(|t| *t >= open_at).collect();
        times.sort_unstable();
        let reached = if needed == 0 {
            Some(open_at)
        } else {
            // Successes recorded before the wave opened still count (a device may have taken
            // the release early, e.g. as a factory install); they count as of the opening.
            let early = p.successes.len() - times.len();
            if early >= needed { Some(open_at) } else { times.get(needed - early - 1).copied() }
        };
        let Some(reached) = reached else {
            return RolloutState { open: opened_at.len(), opened_at, next_opens_at: None };
        };
        let next = reached.max(open_at.saturating_add(wave.soak_ms));
        if next > now {
            return RolloutState { open: opened_at.len(), opened_at, next_opens_at: Some(next) };
        }
        open_at = next;
    }
    RolloutState { open: opened_at.len(), opened_at, next_opens_at: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(name: &str, groups: &[&str], percent: u8, success_percent: u8, soak_ms: u64) -> Wave {
        Wave { name: name.into(), groups: groups.iter().map(|g| g.to_string()).collect(), percent, success_percent, soak_ms }
    }

    fn plan(waves: Vec<Wave>) -> RolloutPlan {
        RolloutPlan { waves, max_failure_percent: Some(20), min_attempts: 5 }
    }

    fn progress(members: u32, successes: &[u64]) -> WaveProgress {
        WaveProgress { members, successes: successes.to_vec() }
    }

    #[test]
    fn buckets_are_stable_and_spread_over_0_to_99() {
        assert_eq!(bucket("dev-1"), bucket("dev-1"));
        let mut seen = [0u32; 100];
        for i in 0..10_000 {
            seen[usize::from(bucket(&format!("356938035{i:06}")))] += 1;
        }
        assert!(seen.iter().all(|n| (60..=140).contains(n)), "uneven buckets: {seen:?}");
    }

    #[test]
    fn wave_membership_is_cumulative_by_share_and_filtered_by_group() {
        let p = plan(vec![wave("canary", &["lab"], 100, 100, 0), wave("early", &[], 20, 100, 0), wave("all", &[], 100, 100, 0)]);
        assert_eq!(p.wave_of("anything", "lab"), 0);
        let ids: Vec<String> = (0..2_000).map(|i| format!("d{i}")).collect();
        let early = ids.iter().filter(|id| p.wave_of(id, "field") == 1).count();
        let all = ids.iter().filter(|id| p.wave_of(id, "field") == 2).count();
        assert!((300..=500).contains(&early), "about 20 % in the early wave, got {early}");
        assert_eq!(early + all, ids.len(), "100 % in the last listed wave leaves none for the implicit one");
        for id in &ids {
            assert_eq!(p.wave_of(id, "field") == 1, bucket(id) < 20);
        }
    }

    #[test]
    fn devices_outside_every_wave_fall_in_the_implicit_last_wave() {
        let p = plan(vec![wave("canary", &["lab"], 100, 100, 0)]);
        assert_eq!(p.wave_of("d1", "field"), 1);
        assert_eq!(p.wave_count(), 2);
    }

    #[test]
    fn nothing_is_open_before_the_rollout_starts() {
        let p = plan(vec![wave("canary", &[], 10, 100, 0)]);
        let s = state(&p, 1_000, &[], 999);
        assert_eq!((s.open, s.next_opens_at), (0, Some(1_000)));
        assert!(!s.admits(0));
    }

    #[test]
    fn first_wave_opens_at_start_and_the_next_waits_for_enough_successes() {
        let p = plan(vec![wave("canary", &[], 10, 50, 0), wave("rest", &[], 100, 100, 0)]);
        // 4 canaries, 50 % needed = 2 successes.
        let s = state(&p, 100, &[progress(4, &[150])], 1_000);
        assert_eq!(s.open, 1);
        assert!(s.admits(0) && !s.admits(1));
        let s = state(&p, 100, &[progress(4, &[150, 300]), progress(10, &[])], 1_000);
        assert_eq!(s.open, 2);
        assert_eq!(s.opened_at, [100, 300]);
    }

    #[test]
    fn soak_time_holds_the_next_wave_even_when_successes_are_in() {
        let p = plan(vec![wave("canary", &[], 10, 100, 10_000), wave("rest", &[], 100, 100, 0)]);
        let s = state(&p, 0, &[progress(2, &[10, 20])], 5_000);
        assert_eq!((s.open, s.next_opens_at), (1, Some(10_000)));
        let s = state(&p, 0, &[progress(2, &[10, 20]), progress(3, &[])], 10_000);
        assert_eq!(s.open, 2);
    }

    #[test]
    fn empty_wave_completes_at_once_after_its_soak() {
        let p = plan(vec![wave("canary", &["lab"], 100, 100, 500), wave("rest", &[], 100, 100, 0)]);
        let s = state(&p, 0, &[progress(0, &[])], 499);
        assert_eq!((s.open, s.next_opens_at), (1, Some(500)));
        assert_eq!(state(&p, 0, &[progress(0, &[]), progress(5, &[])], 500).open, 2);
    }

    #[test]
    fn all_waves_and_the_implicit_one_open_when_every_condition_is_met() {
        let p = plan(vec![wave("a", &[], 10, 100, 0), wave("b", &[], 50, 100, 0)]);
        let s = state(&p, 0, &[progress(1, &[5]), progress(2, &[7, 9])], 100);
        assert_eq!(s.open, 3);
        assert!(s.admits(2));
        assert_eq!(s.opened_at, [0, 5, 9]);
    }

    #[test]
    fn successes_before_a_wave_opened_count_as_of_its_opening() {
        let p = plan(vec![wave("a", &[], 10, 100, 0), wave("b", &[], 100, 100, 0)]);
        // Wave b's device installed early (factory); wave b completes the moment it opens.
        let s = state(&p, 0, &[progress(1, &[50]), progress(1, &[10])], 100);
        assert_eq!(s.open, 3);
        assert_eq!(s.opened_at, [0, 50, 50]);
    }

    #[test]
    fn zero_success_percent_lets_the_next_wave_follow_after_soak_only() {
        let p = plan(vec![wave("a", &[], 10, 0, 60_000), wave("b", &[], 100, 100, 0)]);
        assert_eq!(state(&p, 0, &[progress(10, &[])], 59_999).open, 1);
        assert_eq!(state(&p, 0, &[progress(10, &[]), progress(1, &[])], 60_000).open, 2);
    }

    #[test]
    fn failure_threshold_halts_only_after_enough_attempts() {
        let p = plan(vec![wave("a", &[], 10, 100, 0)]);
        assert_eq!(p.failure_halt(0, 4), None, "4 attempts are fewer than min_attempts 5");
        assert_eq!(p.failure_halt(4, 1), None, "20 % is not above 20 %");
        let why = p.failure_halt(3, 2).unwrap();
        assert!(why.contains("2 of 5") && why.contains("40 %") && why.contains("20 %"), "{why}");
        let never = RolloutPlan { max_failure_percent: None, ..p };
        assert_eq!(never.failure_halt(0, 100), None);
    }

    #[test]
    fn plans_with_impossible_numbers_are_refused() {
        assert_eq!(plan(vec![]).validate(), Err(PlanError::NoWaves));
        assert!(plan(vec![wave("a", &[], 0, 100, 0)]).validate().unwrap_err().to_string().contains("percent is 0"));
        assert!(plan(vec![wave("a", &[], 10, 101, 0)]).validate().is_err());
        let mut p = plan(vec![wave("a", &[], 10, 100, 0)]);
        assert!(p.validate().is_ok());
        p.max_failure_percent = Some(101);
        assert!(p.validate().is_err());
    }

    #[test]
    fn plan_reads_from_json_with_defaults() {
        let p: RolloutPlan = serde_json::from_str(r#"{"waves":[{"name":"canary","groups":["lab"]},{"name":"half","percent":50,"soak_ms":3600000}],"max_failure_percent":10}"#).unwrap();
        assert_eq!(p.min_attempts, 5);
        assert_eq!((p.waves[0].percent, p.waves[0].success_percent, p.waves[0].soak_ms), (100, 100, 0));
        assert_eq!(p.waves[1].percent, 50);
        assert!(serde_json::from_str::<RolloutPlan>(r#"{"waves":[],"oops":1}"#).is_err());
    }
}
