//! Byte patterns with `??` wildcards.

/// A byte sequence where `None` matches any byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BytePattern(Vec<Option<u8>>);

impl BytePattern {
    /// Parses `"48 31 ?? c0"`: hex bytes and `??`, separated by whitespace.
    pub fn parse(text: &str) -> Result<BytePattern, String> {
        let bytes: Result<Vec<_>, String> = text
            .split_whitespace()
            .map(|tok| match tok {
                "??" => Ok(None),
                t if t.len() == 2 => u8::from_str_radix(t, 16)
                    .map(Some)
                    .map_err(|_| format!("'{t}' is not a hex byte or ??")),
                t => Err(format!("'{t}' is not a hex byte or ??")),
            })
            .collect();
        let bytes = bytes?;
        match bytes.first() {
            None => Err("the byte pattern is empty".into()),
            Some(None) => Err("a byte pattern must start with a concrete byte".into()),
            Some(Some(_)) => Ok(BytePattern(bytes)),
        }
    }

    /// Offsets of every match in `hay`.
    pub fn find_all(&self, hay: &[u8]) -> Vec<usize> {
        let Some(Some(first)) = self.0.first().copied() else {
            return Vec::new();
        };
        let n = self.0.len();
        if hay.len() < n {
            return Vec::new();
        }
        (0..=hay.len() - n)
            .filter(|&i| hay[i] == first)
            .filter(|&i| {
                self.0
                    .iter()
                    .zip(&hay[i..i + n])
                    .all(|(p, b)| p.is_none_or(|p| p == *b))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_any_byte_and_literals_must_match() {
        let p = BytePattern::parse("de ?? be ef").unwrap();
        assert_eq!(
            p.find_all(&[0, 0xde, 1, 0xbe, 0xef, 0xde, 2, 0xbe, 0xee]),
            vec![1]
        );
    }

    #[test]
    fn rejects_bad_tokens() {
        assert!(BytePattern::parse("zz").is_err());
        assert!(BytePattern::parse("?? 01").is_err());
        assert!(BytePattern::parse("").is_err());
    }
}
