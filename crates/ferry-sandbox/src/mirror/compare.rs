//! Response comparison with learned noise, as Twitter's Diffy does: a response is flattened into
//! named fields (status, each header, each JSON leaf of the body, or the whole body when it is
//! not JSON); fields that differ between two production samples of the same request are noise
//! for that endpoint and are ignored from then on; any other field where the candidate differs
//! from production is a mismatch.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One HTTP response, as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: bytes::Bytes,
}

/// Value used for a field one side lacks.
pub const ABSENT: &str = "<absent>";

/// A field whose value differs between two responses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDiff {
    /// Field name: `status`, `header:<name>`, `body`, or a JSON path such as `body.items[0].id`.
    pub field: String,
    /// Production's value.
    pub production: String,
    /// The other side's value.
    pub candidate: String,
}

/// Flattens a response into field → value, leaving out headers in `ignore_headers`
/// (lower-case names).
pub fn fields(sample: &Sample, ignore_headers: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("status".to_string(), sample.status.to_string());
    for (name, value) in &sample.headers {
        if ignore_headers.iter().any(|h| h == name) {
            continue;
        }
        out.entry(format!("header:{name}"))
            .and_modify(|v: &mut String| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    match serde_json::from_slice::<serde_json::Value>(&sample.body) {
        Ok(value) if !sample.body.is_empty() => flatten_json("body", &value, &mut out),
        _ => {
            let body = match std::str::from_utf8(&sample.body) {
                Ok(text) => text.to_string(),
                Err(_) => format!(
                    "{} bytes, sha256 {}",
                    sample.body.len(),
                    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&sample.body))
                ),
            };
            out.insert("body".to_string(), body);
        }
    }
    out
}

fn flatten_json(path: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten_json(&format!("{path}.{k}"), v, out);
            }
        }
        serde_json::Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                flatten_json(&format!("{path}[{i}]"), v, out);
            }
        }
        leaf => {
            out.insert(path.to_string(), leaf.to_string());
        }
    }
}

/// Fields whose values differ between `a` (production) and `b`, including fields only one has.
pub fn diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<FieldDiff> {
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let va = a.get(name).map_or(ABSENT, String::as_str);
            let vb = b.get(name).map_or(ABSENT, String::as_str);
            (va != vb).then(|| FieldDiff {
                field: name.clone(),
                production: va.to_string(),
                candidate: vb.to_string(),
            })
        })
        .collect()
}

/// The endpoint a request belongs to: method and path without the query.
pub fn endpoint(method: &str, path_and_query: &str) -> String {
    let path = path_and_query.split('?').next().unwrap_or("");
    format!("{method} {path}")
}

/// Noise learned per endpoint from pairs of production samples.
#[derive(Debug, Clone, Default)]
pub struct Noise {
    by_endpoint: HashMap<String, BTreeSet<String>>,
}

impl Noise {
    /// Learns from two production answers to the same request: every field that differs
    /// between them is noise on `endpoint`. Returns the fields newly learned.
    pub fn learn(
        &mut self,
        endpoint: &str,
        primary: &BTreeMap<String, String>,
        secondary: &BTreeMap<String, String>,
    ) -> Vec<String> {
        let set = self.by_endpoint.entry(endpoint.to_string()).or_default();
        diff(primary, secondary)
            .into_iter()
            .filter_map(|d| set.insert(d.field.clone()).then_some(d.field))
            .collect()
    }

    /// Whether `field` is noise on `endpoint`.
    pub fn is_noise(&self, endpoint: &str, field: &str) -> bool {
        self.by_endpoint
            .get(endpoint)
            .is_some_and(|s| s.contains(field))
    }

    /// The differences between production and candidate that are not noise on `endpoint`.
    pub fn significant(
        &self,
        endpoint: &str,
        production: &BTreeMap<String, String>,
        candidate: &BTreeMap<String, String>,
    ) -> Vec<FieldDiff> {
        diff(production, candidate)
            .into_iter()
            .filter(|d| !self.is_noise(endpoint, &d.field))
            .collect()
    }

    /// Every endpoint's noisy fields.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<String>> {
        self.by_endpoint
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(e, s)| (e.clone(), s.iter().cloned().collect()))
            .collect()
    }
}

/// Splits a byte stream into tokens: maximal runs of ASCII letters and digits, and every other
/// byte on its own.
fn tokens(bytes: &[u8]) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        if bytes[i].is_ascii_alphanumeric() {
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
        } else {
            i += 1;
        }
        out.push((start, &bytes[start..i]));
    }
    out
}

/// Byte-stream comparison for raw TCP. The streams are split into tokens (runs of letters and
/// digits, single other bytes); if two production samples (`production`, `secondary`) have
/// the same token structure, the tokens where they differ are noise (session ids, clocks).
/// Returns `None` when the candidate agrees with production beyond that noise, or a
/// description of the first disagreement.
pub fn compare_streams(
    production: &[u8],
    candidate: &[u8],
    secondary: Option<&[u8]>,
) -> Option<String> {
    let p = tokens(production);
    let c = tokens(candidate);
    let noisy: Vec<bool> = match secondary.map(tokens) {
        Some(s) if s.len() == p.len() => p.iter().zip(&s).map(|(a, b)| a.1 != b.1).collect(),
        _ => vec![false; p.len()],
    };
    let first = (0..p.len().min(c.len())).find(|&i| p[i].1 != c[i].1 && !noisy[i]);
    let (p_at, c_at) = match first {
        Some(i) => (p[i].0, c[i].0),
        None if p.len() == c.len() => return None,
        None => {
            let i = p.len().min(c.len());
            (
                p.get(i).map_or(production.len(), |t| t.0),
                c.get(i).map_or(candidate.len(), |t| t.0),
            )
        }
    };
    Some(format!(
        "production sent {} bytes, candidate {} bytes; first difference at production offset \
         {p_at}: production {}, candidate {}",
        production.len(),
        candidate.len(),
        excerpt(production, p_at),
        excerpt(candidate, c_at)
    ))
}

fn excerpt(bytes: &[u8], at: usize) -> String {
    let end = (at + 16).min(bytes.len());
    let part = bytes.get(at..end).unwrap_or(&[]);
    format!("{:?}", String::from_utf8_lossy(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(status: u16, headers: &[(&str, &str)], body: &str) -> Sample {
        Sample {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn json_bodies_flatten_to_leaf_paths() {
        let f = fields(
            &sample(
                200,
                &[("x-a", "1")],
                r#"{"a":{"b":[1,{"c":"x"}]},"e":null}"#,
            ),
            &[],
        );
        assert_eq!(f["status"], "200");
        assert_eq!(f["header:x-a"], "1");
        assert_eq!(f["body.a.b[0]"], "1");
        assert_eq!(f["body.a.b[1].c"], "\"x\"");
        assert_eq!(f["body.e"], "null");
    }

    #[test]
    fn noise_from_production_pair_is_ignored_but_real_differences_are_not() {
        let ep = endpoint("GET", "/items?x=1");
        assert_eq!(ep, "GET /items");
        let p1 = fields(&sample(200, &[], r#"{"id":"r1","n":5}"#), &[]);
        let p2 = fields(&sample(200, &[], r#"{"id":"r2","n":5}"#), &[]);
        let mut noise = Noise::default();
        assert_eq!(noise.learn(&ep, &p1, &p2), vec!["body.id".to_string()]);
        let same = fields(&sample(200, &[], r#"{"id":"c9","n":5}"#), &[]);
        assert!(noise.significant(&ep, &p1, &same).is_empty());
        let different = fields(&sample(200, &[], r#"{"id":"c9","n":6}"#), &[]);
        let d = noise.significant(&ep, &p1, &different);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "body.n");
        assert_eq!(
            (d[0].production.as_str(), d[0].candidate.as_str()),
            ("5", "6")
        );
        // Noise is per endpoint.
        assert_eq!(noise.significant("GET /other", &p1, &same).len(), 1);
    }

    #[test]
    fn missing_fields_and_statuses_are_differences() {
        let a = fields(&sample(200, &[("x", "1")], "hello"), &[]);
        let b = fields(&sample(500, &[], "hello"), &[]);
        let d = diff(&a, &b);
        let names: Vec<_> = d.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(names, ["header:x", "status"]);
        assert_eq!(d[0].candidate, ABSENT);
    }

    #[test]
    fn ignored_headers_are_left_out() {
        let f = fields(&sample(200, &[("date", "now")], ""), &["date".into()]);
        assert!(!f.contains_key("header:date"));
    }

    #[test]
    fn streams_compare_with_noise_mask() {
        assert!(compare_streams(b"id=1 ok", b"id=1 ok", None).is_none());
        let d = compare_streams(b"id=1 ok", b"id=1 no", None).unwrap();
        assert!(d.contains("offset 5"), "{d}");
        // The id differs between the production samples: noise.
        assert!(compare_streams(b"id=a1 ok", b"id=c3 ok", Some(b"id=b22 ok")).is_none());
        assert!(compare_streams(b"id=a1 ok", b"id=c3 no", Some(b"id=b2 ok")).is_some());
        let d = compare_streams(b"id=1 ok", b"id=1", None).unwrap();
        assert!(d.contains("candidate 4 bytes"), "{d}");
    }
}
