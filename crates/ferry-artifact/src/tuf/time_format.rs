//! TUF `expires` timestamps: exactly `YYYY-MM-DDTHH:MM:SSZ`, as python-tuf reads and writes them.

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// The only accepted layout (python-tuf parses with `strptime` and this exact format).
pub(crate) const FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// Formats a time as TUF writes it (whole seconds, UTC, `Z`).
pub(crate) fn format(t: &DateTime<Utc>) -> String {
    t.format(FORMAT).to_string()
}

/// Drops sub-second precision, which TUF metadata cannot carry.
pub(crate) fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0).unwrap_or(t)
}

pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(t))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(d)?;
    NaiveDateTime::parse_from_str(&text, FORMAT)
        .map(|n| n.and_utc())
        .map_err(|e| {
            serde::de::Error::custom(format!(
                "expires '{text}' is not a TUF time (YYYY-MM-DDTHH:MM:SSZ): {e}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct T {
        #[serde(with = "super")]
        at: DateTime<Utc>,
    }

    #[test]
    fn round_trips_the_python_tuf_layout() {
        let t: T = serde_json::from_str(r#"{"at":"2030-01-02T03:04:05Z"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"at":"2030-01-02T03:04:05Z"}"#
        );
    }

    #[test]
    fn refuses_other_layouts() {
        for bad in [
            "2030-01-02T03:04:05.5Z",
            "2030-01-02T03:04:05+00:00",
            "2030-01-02 03:04:05Z",
        ] {
            assert!(
                serde_json::from_str::<T>(&format!(r#"{{"at":"{bad}"}}"#)).is_err(),
                "{bad} accepted"
            );
        }
    }
}
