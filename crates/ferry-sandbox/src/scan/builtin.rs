//! The rule database shipped with Ferry and the demo key that signs it.
//!
//! `rules/default.toml` is signed by the **demo** rule key in
//! `rules/DEMO-ONLY-rules-signing-key.json`, checked in so anyone can re-sign the default
//! database after editing it. It is not a production key: deployments sign their own
//! databases with a private rule key and trust only its public half.

use super::error::ScanError;
use super::rules::RuleDb;
use ferry_artifact::keys::PublicKey;

/// The default rule database, as shipped.
pub const DEFAULT_RULES: &str = include_str!("../../rules/default.toml");
/// Its signature by the demo rule key.
pub const DEFAULT_RULES_SIG: &str = include_str!("../../rules/default.toml.sig");
/// The public half of the demo rule key (TUF key JSON).
pub const DEMO_RULES_PUBLIC_KEY: &str = include_str!("../../rules/demo-rules.pub.json");

/// The demo rule key, trusted by [`super::scan_command`] for the shipped database and for
/// databases given on the command line.
pub fn demo_rule_key() -> PublicKey {
    serde_json::from_str(DEMO_RULES_PUBLIC_KEY).expect("the shipped demo rule key is valid JSON")
}

/// The shipped database, verified against the demo rule key.
pub fn default_rules() -> Result<RuleDb, ScanError> {
    RuleDb::from_signed(
        "built-in rules/default.toml",
        DEFAULT_RULES.as_bytes(),
        DEFAULT_RULES_SIG.as_bytes(),
        &[demo_rule_key()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rule_database_is_signed_by_the_demo_key() {
        let db = default_rules().unwrap_or_else(|e| {
            panic!(
                "{e}\nafter editing rules/default.toml, bump its version and re-sign it:\n  cargo run -p \
                 ferry-sandbox --example sign_rules -- rules/default.toml \
                 rules/DEMO-ONLY-rules-signing-key.json"
            )
        });
        assert_eq!(db.format, super::super::RULES_FORMAT);
        assert!(
            db.import
                .iter()
                .any(|r| r.symbols.iter().any(|s| s == "gets"))
        );
    }
}
