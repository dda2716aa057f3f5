//! When the agent next asks the server for updates. Pure: `now` and a random `seed` come in.

use serde::{Deserialize, Serialize};

/// A check-in schedule, as written in `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// Every `every_secs`, plus a random delay of up to `jitter_secs` (spreads a fleet's load).
    Interval {
        /// Base period in seconds.
        every_secs: u64,
        /// Maximum random extra delay in seconds.
        #[serde(default)]
        jitter_secs: u64,
    },
    /// Once a day at a random moment inside a window, e.g. `start = "02:00"`, `end = "04:30"` (UTC).
    Daily {
        /// Window start, `HH:MM`.
        start: String,
        /// Window end, `HH:MM` (may wrap past midnight).
        end: String,
    },
}

/// A schedule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Interval of zero seconds.
    #[error("schedule: every_secs must be at least 1")]
    ZeroInterval,
    /// Time of day not `HH:MM`.
    #[error("schedule: '{0}' is not a time of day (expected HH:MM, 00:00-23:59)")]
    BadTime(String),
}

const DAY: u64 = 86_400;

fn parse_hhmm(s: &str) -> Result<u64, ScheduleError> {
    let bad = || ScheduleError::BadTime(s.to_string());
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u64, u64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60)
}

impl Schedule {
    /// Checks the schedule's values.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        match self {
            Schedule::Interval { every_secs: 0, .. } => Err(ScheduleError::ZeroInterval),
            Schedule::Interval { .. } => Ok(()),
            Schedule::Daily { start, end } => parse_hhmm(start).and(parse_hhmm(end)).map(|_| ()),
        }
    }

    /// The next check-in time (Unix seconds) strictly after `now`, using `seed` for the jitter.
    pub fn next_after(&self, now: u64, seed: u64) -> Result<u64, ScheduleError> {
        self.validate()?;
        Ok(match self {
            Schedule::Interval { every_secs, jitter_secs } => now + every_secs + seed % (jitter_secs + 1),
            Schedule::Daily { start, end } => {
                let (s, e) = (parse_hhmm(start)?, parse_hhmm(end)?);
                let width = if e > s { e - s } else { DAY - s + e };
                let offset = seed % width.max(1);
                let day_start = now - now % DAY;
                let mut t = day_start + s + offset;
                while t <= now {
                    t += DAY;
                }
                t
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_adds_bounded_jitter() {
        let s = Schedule::Interval { every_secs: 60, jitter_secs: 10 };
        for seed in 0..100 {
            let t = s.next_after(1000, seed).unwrap();
            assert!((1060..=1070).contains(&t));
        }
        assert_ne!(s.next_after(1000, 1).unwrap(), s.next_after(1000, 2).unwrap());
    }

    #[test]
    fn daily_window_lands_inside_the_window_tomorrow_when_passed() {
        let s = Schedule::Daily { start: "02:00".into(), end: "04:00".into() };
        let now = 10 * DAY + 5 * 3600; // 05:00 on day 10
        for seed in [0, 1, 7199, 123_456] {
            let t = s.next_after(now, seed).unwrap();
            assert!(t >= 11 * DAY + 2 * 3600 && t < 11 * DAY + 4 * 3600, "{t}");
        }
        let early = 10 * DAY + 3600; // 01:00, window still ahead today
        assert!(s.next_after(early, 0).unwrap() == 10 * DAY + 2 * 3600);
    }

    #[test]
    fn daily_window_may_wrap_midnight() {
        let s = Schedule::Daily { start: "23:00".into(), end: "01:00".into() };
        let t = s.next_after(0, 3600 + 30).unwrap() % DAY;
        assert!(t >= 23 * 3600 || t < 3600, "{t}");
    }

    #[test]
    fn rejects_bad_schedules_with_the_offending_value() {
        assert_eq!(Schedule::Interval { every_secs: 0, jitter_secs: 0 }.validate(), Err(ScheduleError::ZeroInterval));
        let bad = Schedule::Daily { start: "25:00".into(), end: "01:00".into() };
        assert_eq!(bad.validate(), Err(ScheduleError::BadTime("25:00".into())));
    }

    #[test]
    fn parses_from_toml_shape() {
        let s: Schedule = serde_json::from_str(r#"{"kind":"interval","every_secs":300,"jitter_secs":30}"#).unwrap();
        assert_eq!(s, Schedule::Interval { every_secs: 300, jitter_secs: 30 });
    }
}
