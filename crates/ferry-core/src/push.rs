//! The push contract between server and agents over an MQTT broker: where the broker is,
//! which topics carry check-in nudges, what a nudge says, and how long an agent waits before
//! acting on one (jitter, so a fleet does not check in all at once).
//!
//! A nudge carries no authority: it only makes an agent check in earlier. Everything it then
//! installs is still authenticated by the check-in, TUF metadata and artifact signatures, so a
//! forged or replayed nudge costs one extra check-in at most.

use crate::{Component, Version};
use serde::{Deserialize, Serialize};

/// Topic prefix when the configuration sets none.
pub const DEFAULT_TOPIC_PREFIX: &str = "ferry";
/// MQTT port when the URL names none.
pub const DEFAULT_MQTT_PORT: u16 = 1883;
/// Largest nudge payload an agent accepts (bytes); larger messages are ignored.
pub const MAX_NUDGE_BYTES: usize = 4096;

/// Host and port of an MQTT broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttEndpoint {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// A broker URL or topic name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The URL is not `mqtt://HOST[:PORT]`.
    #[error("push broker URL {url:?}: {why}; write it as mqtt://HOST[:PORT], e.g. mqtt://127.0.0.1:1883")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// The prefix cannot be used in a topic.
    #[error("push topic prefix {0:?} must be non-empty and hold no '+', '#', NUL or leading/trailing '/'")]
    BadPrefix(String),
}

/// Parses `mqtt://HOST[:PORT]` (IPv6 hosts in brackets). TLS (`mqtts://`) is refused with a
/// clear message rather than silently sent in clear text.
pub fn parse_mqtt_url(url: &str) -> Result<MqttEndpoint, PushError> {
    let bad = |why: &str| PushError::BadUrl { url: url.to_string(), why: why.to_string() };
    let rest = match url.split_once("://") {
        Some(("mqtt" | "tcp", rest)) => rest,
        Some(("mqtts" | "ssl", _)) => return Err(bad("TLS brokers are not supported yet; use a plain listener on a trusted network (nudges carry no authority)")),
        Some((scheme, _)) => return Err(bad(&format!("unknown scheme {scheme:?}"))),
        None => return Err(bad("no scheme")),
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(bad("expected only HOST[:PORT] after the scheme"));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '[' in IPv6 host"))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(bad("unexpected text after the IPv6 host")),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad(&format!("port {p:?} is not 1..65535")))?,
        None => DEFAULT_MQTT_PORT,
    };
    Ok(MqttEndpoint { host: host.to_string(), port })
}

/// Whether `s` can be one topic level: non-empty, no `/`, `+`, `#` or NUL.
pub fn topic_level_ok(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', '+', '#', '\0'])
}

/// Checks a topic prefix (it may have several levels, e.g. `acme/ferry`).
pub fn check_prefix(prefix: &str) -> Result<(), PushError> {
    let ok = !prefix.is_empty()
        && !prefix.starts_with('/')
        && !prefix.ends_with('/')
        && !prefix.contains(['+', '#', '\0'])
        && prefix.split('/').all(|level| !level.is_empty());
    if ok { Ok(()) } else { Err(PushError::BadPrefix(prefix.to_string())) }
}

/// The topic every agent listens on: `{prefix}/checkin/all`.
pub fn fleet_topic(prefix: &str) -> String {
    format!("{prefix}/checkin/all")
}

/// The topic of one device type, if the type can be a topic level.
pub fn device_type_topic(prefix: &str, device_type: &str) -> Option<String> {
    topic_level_ok(device_type).then(|| format!("{prefix}/checkin/type/{device_type}"))
}

/// The topic of one device, if its id can be a topic level.
pub fn device_topic(prefix: &str, device_id: &str) -> Option<String> {
    topic_level_ok(device_id).then(|| format!("{prefix}/checkin/device/{device_id}"))
}

/// What an agent subscribes to: the fleet, its type and itself.
pub fn agent_topics(prefix: &str, device_id: &str, device_type: &str) -> Vec<String> {
    let mut topics = vec![fleet_topic(prefix)];
    topics.extend(device_type_topic(prefix, device_type));
    topics.extend(device_topic(prefix, device_id));
    topics
}

/// Where the server announces a release for `device_types` (empty = every type): one topic
/// per type, or the fleet topic when the release is for every type or a type cannot be a
/// topic level (so no device it is meant for misses the nudge).
pub fn release_topics(prefix: &str, device_types: &[String]) -> Vec<String> {
    let per_type: Option<Vec<String>> = device_types.iter().map(|t| device_type_topic(prefix, t)).collect();
    match per_type {
        Some(topics) if !topics.is_empty() => topics,
        _ => vec![fleet_topic(prefix)],
    }
}

/// The payload of a nudge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckinNudge {
    /// Why: `release` (a new release), `resumed` (a halted rollout resumed), `operator`.
    pub reason: String,
    /// The release concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<Component>,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
}

impl CheckinNudge {
    /// Reads a nudge; `None` for oversized or malformed payloads, which agents ignore (so
    /// garbage on the broker cannot drive devices).
    pub fn parse(payload: &[u8]) -> Option<CheckinNudge> {
        if payload.len() > MAX_NUDGE_BYTES {
            return None;
        }
        serde_json::from_slice(payload).ok()
    }
}

/// How long to wait before acting on a nudge: uniform in `0..=max_ms`, from a random `seed`
/// the caller draws (this crate draws none).
pub fn jitter_ms(max_ms: u64, seed: u64) -> u64 {
    if max_ms == 0 { 0 } else { seed % (max_ms + 1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_broker_urls_with_and_without_port() {
        assert_eq!(parse_mqtt_url("mqtt://127.0.0.1:1884").unwrap(), MqttEndpoint { host: "127.0.0.1".into(), port: 1884 });
        assert_eq!(parse_mqtt_url("mqtt://broker.example/").unwrap().port, 1883);
        assert_eq!(parse_mqtt_url("mqtt://[::1]:1885").unwrap(), MqttEndpoint { host: "::1".into(), port: 1885 });
        assert_eq!(parse_mqtt_url("tcp://h").unwrap().host, "h");
    }

    #[test]
    fn rejects_unusable_broker_urls_with_the_expected_form() {
        for url in ["127.0.0.1:1883", "http://h", "mqtt://", "mqtt://h:0", "mqtt://h:99999", "mqtt://u@h", "mqtt://h/x", "mqtt://[::1"] {
            let e = parse_mqtt_url(url).unwrap_err().to_string();
            assert!(e.contains("mqtt://HOST[:PORT]"), "{url}: {e}");
        }
        assert!(parse_mqtt_url("mqtts://h").unwrap_err().to_string().contains("TLS"));
    }

    #[test]
    fn topics_never_contain_wildcards_from_device_data() {
        assert_eq!(
            agent_topics("ferry", "dev-1", "gw"),
            ["ferry/checkin/all", "ferry/checkin/type/gw", "ferry/checkin/device/dev-1"]
        );
        assert_eq!(agent_topics("ferry", "dev-1", "gw/+"), ["ferry/checkin/all", "ferry/checkin/device/dev-1"]);
        assert_eq!(device_type_topic("p", "#"), None);
        assert_eq!(device_topic("p", ""), None);
    }

    #[test]
    fn release_for_every_type_or_an_unsafe_type_goes_to_the_whole_fleet() {
        assert_eq!(release_topics("f", &[]), ["f/checkin/all"]);
        assert_eq!(release_topics("f", &["gw".into(), "cam".into()]), ["f/checkin/type/gw", "f/checkin/type/cam"]);
        assert_eq!(release_topics("f", &["gw".into(), "a/b".into()]), ["f/checkin/all"]);
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("ferry").is_ok());
        assert!(check_prefix("acme/ferry").is_ok());
        for bad in ["", "/ferry", "ferry/", "a//b", "a/+", "#"] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nudges_round_trip_and_garbage_is_ignored() {
        let n = CheckinNudge { reason: "release".into(), component: Some(Component::Main), version: Some("1.2.0".parse().unwrap()) };
        assert_eq!(CheckinNudge::parse(&serde_json::to_vec(&n).unwrap()), Some(n));
        assert_eq!(CheckinNudge::parse(b"not json"), None);
        let huge = format!("{{\"reason\":\"{}\"}}", "x".repeat(MAX_NUDGE_BYTES));
        assert_eq!(CheckinNudge::parse(huge.as_bytes()), None);
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        assert_eq!(jitter_ms(0, 12345), 0);
        for seed in [0, 1, 999, 1000, 1001, u64::MAX] {
            assert!(jitter_ms(1000, seed) <= 1000);
        }
        assert_eq!(jitter_ms(1000, 1000), 1000);
    }
}
