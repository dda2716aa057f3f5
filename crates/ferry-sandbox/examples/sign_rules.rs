//! Signs a rule database: `sign_rules DB KEY` writes `DB.sig` with the ed25519 key file KEY
//! (created, as a new random key, if it does not exist; its public half goes to
//! `KEY` with `.json` replaced by `.pub.json`).

use ferry_artifact::keys::SigningKey;
use ferry_sandbox::scan::{sign_rules, signature_path};
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, key] = args.as_slice() else {
        return Err("usage: sign_rules RULES.toml SIGNING-KEY.json".into());
    };
    let key_path = Path::new(key);
    let key = if key_path.exists() {
        SigningKey::load(key_path)?
    } else {
        let k = SigningKey::generate();
        k.save(key_path)?;
        let public = key_path.with_file_name(
            key_path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace(".json", ".pub.json"),
        );
        k.public().save(&public)?;
        println!(
            "generated a new key: {} (public half: {})",
            key_path.display(),
            public.display()
        );
        k
    };
    let bytes = std::fs::read(db)?;
    let sig_path = signature_path(Path::new(db));
    std::fs::write(&sig_path, sign_rules(&bytes, &key))?;
    println!(
        "signed {db} with key {}: {}",
        key.key_id(),
        sig_path.display()
    );
    Ok(())
}
