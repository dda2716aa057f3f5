//! OLPC canonical JSON, byte for byte as securesystemslib's `encode_canonical` writes it.
//!
//! Rules: object keys sorted by code point (UTF-8 byte order is the same order), no whitespace,
//! strings written raw except that `\` and `"` are escaped with a backslash, integers in
//! decimal, `true`/`false`/`null` as usual. Non-integer numbers are not part of the dialect.

use serde_json::{Number, Value};

/// A value that canonical JSON cannot represent: a non-integer number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "number {number} at {pointer} is not an integer: canonical JSON (securesystemslib \
     encode_canonical) allows integers only — write it as an integer or a string"
)]
pub struct CanonicalJsonError {
    /// JSON pointer (RFC 6901) to the offending number, `""` for the root value.
    pub pointer: String,
    /// The number as it appeared.
    pub number: String,
}

/// The canonical JSON encoding of `value`.
///
/// Identical to securesystemslib `encode_canonical` for every value it accepts. A non-integer
/// number, which securesystemslib refuses, is written as serde_json prints it; use
/// [`try_canonical_json`] to refuse it instead (TUF signatures always do).
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut enc = Encoder::default();
    enc.value(value);
    enc.out
}

/// The canonical JSON encoding of `value`, refusing non-integer numbers like securesystemslib.
pub fn try_canonical_json(value: &Value) -> Result<Vec<u8>, CanonicalJsonError> {
    let mut enc = Encoder::default();
    enc.value(value);
    match enc.first_float {
        Some(err) => Err(err),
        None => Ok(enc.out),
    }
}

#[derive(Default)]
struct Encoder {
    out: Vec<u8>,
    path: Vec<String>,
    first_float: Option<CanonicalJsonError>,
}

impl Encoder {
    fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.out.extend_from_slice(b"null"),
            Value::Bool(true) => self.out.extend_from_slice(b"true"),
            Value::Bool(false) => self.out.extend_from_slice(b"false"),
            Value::Number(n) => self.number(n),
            Value::String(s) => self.string(s),
            Value::Array(items) => {
                self.out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.path.push(i.to_string());
                    self.value(item);
                    self.path.pop();
                }
                self.out.push(b']');
            }
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                self.out.push(b'{');
                for (i, (key, item)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.string(key);
                    self.out.push(b':');
                    self.path.push(key.replace('~', "~0").replace('/', "~1"));
                    self.value(item);
                    self.path.pop();
                }
                self.out.push(b'}');
            }
        }
    }

    fn number(&mut self, n: &Number) {
        let text = n.to_string();
        if !(n.is_i64() || n.is_u64()) && self.first_float.is_none() {
            let pointer = self.path.iter().map(|p| format!("/{p}")).collect();
            self.first_float = Some(CanonicalJsonError {
                pointer,
                number: text.clone(),
            });
        }
        self.out.extend_from_slice(text.as_bytes());
    }

    fn string(&mut self, s: &str) {
        self.out.push(b'"');
        for b in s.bytes() {
            if b == b'\\' || b == b'"' {
                self.out.push(b'\\');
            }
            self.out.push(b);
        }
        self.out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn canon(v: Value) -> String {
        String::from_utf8(canonical_json(&v)).unwrap()
    }

    #[test]
    fn matches_securesystemslib_doctests() {
        assert_eq!(canon(json!("")), r#""""#);
        assert_eq!(canon(json!([1, 2, 3])), "[1,2,3]");
        assert_eq!(canon(json!([])), "[]");
        assert_eq!(canon(json!({"A": [99]})), r#"{"A":[99]}"#);
        assert_eq!(canon(json!({"x": 3, "y": 2})), r#"{"x":3,"y":2}"#);
    }

    #[test]
    fn sorts_keys_by_code_point_at_every_level() {
        let v = json!({"b": {"z": 1, "a": 2}, "a": null, "B": true, "é": 1, "e": false});
        assert_eq!(
            canon(v),
            r#"{"B":true,"a":null,"b":{"a":2,"z":1},"e":false,"é":1}"#
        );
    }

    #[test]
    fn escapes_only_quote_and_backslash() {
        let v = json!("a\"b\\c\nd\u{1}é\t/");
        assert_eq!(canonical_json(&v), "\"a\\\"b\\\\c\nd\u{1}é\t/\"".as_bytes());
    }

    #[test]
    fn writes_negative_and_large_integers_in_decimal() {
        assert_eq!(
            canon(json!([-5, u64::MAX, i64::MIN])),
            format!("[-5,{},{}]", u64::MAX, i64::MIN)
        );
    }

    #[test]
    fn refuses_floats_with_their_location() {
        let err = try_canonical_json(&json!({"a": [1, {"b/c": 1.5}]})).unwrap_err();
        assert_eq!(err.pointer, "/a/1/b~1c");
        assert_eq!(err.number, "1.5");
        assert!(err.to_string().contains("not an integer"), "{err}");
        assert_eq!(canonical_json(&json!(1.5)), b"1.5");
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((any::<String>(), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn keys_sorted_everywhere(v: &Value) -> bool {
        match v {
            Value::Array(a) => a.iter().all(keys_sorted_everywhere),
            Value::Object(m) => {
                let keys: Vec<&String> = m.keys().collect();
                keys.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes())
                    && m.values().all(keys_sorted_everywhere)
            }
            _ => true,
        }
    }

    proptest! {
        #[test]
        fn canonical_json_round_trips_and_is_a_fixed_point(v in arb_json()) {
            let bytes = try_canonical_json(&v).unwrap();
            let parsed: Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(&parsed, &v);
            // preserve_order keeps the parsed key order: it must already be sorted.
            prop_assert!(keys_sorted_everywhere(&parsed));
            prop_assert_eq!(canonical_json(&parsed), bytes);
        }

        #[test]
        fn canonical_json_ignores_input_key_order(kv in prop::collection::vec((any::<String>(), any::<i64>()), 0..12)) {
            let forward: serde_json::Map<String, Value> = kv.iter().map(|(k, n)| (k.clone(), Value::from(*n))).collect();
            let mut reversed = serde_json::Map::new();
            for (k, n) in forward.iter().rev() {
                reversed.insert(k.clone(), n.clone());
            }
            prop_assert_eq!(canonical_json(&Value::Object(forward)), canonical_json(&Value::Object(reversed)));
        }

        #[test]
        fn canonical_strings_escape_exactly_quote_and_backslash(s in any::<String>()) {
            let bytes = canonical_json(&Value::String(s.clone()));
            prop_assert_eq!(bytes.first(), Some(&b'"'));
            prop_assert_eq!(bytes.last(), Some(&b'"'));
            let mut decoded = Vec::new();
            let mut inner = bytes[1..bytes.len() - 1].iter();
            while let Some(&b) = inner.next() {
                if b == b'\\' {
                    let next = *inner.next().expect("dangling backslash");
                    prop_assert!(next == b'\\' || next == b'"', "unexpected escape \\{}", next as char);
                    decoded.push(next);
                } else {
                    prop_assert!(b != b'"', "unescaped quote");
                    decoded.push(b);
                }
            }
            prop_assert_eq!(decoded, s.into_bytes());
        }
    }
}
