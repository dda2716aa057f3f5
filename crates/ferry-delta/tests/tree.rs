//! Tree deltas: round trip, pre-verification, and refusal of paths leaving the root.

use std::os::unix::fs::symlink;
use std::path::Path;

use ferry_delta::DeltaError;
use ferry_delta::tree::{self, TreeDelta, TreeOp};

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn body(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(seed).wrapping_add((i / 97) as u8))
        .collect()
}

/// An old and a new release exercising every operation.
fn releases(base: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (old, new) = (base.join("old"), base.join("new"));
    write(&old, "bin/app", &body(3, 20_000));
    write(&old, "lib/libx.so.1", &body(5, 5_000));
    write(&old, "share/readme", b"version 1\n");
    write(&old, "etc/obsolete.conf", b"gone in v2\n");
    write(&old, "data/old-name.bin", &body(7, 3_000));
    let mut app2 = body(3, 20_000);
    app2.splice(100..100, b"new code".iter().copied());
    write(&new, "bin/app", &app2);
    write(&new, "lib/libx.so.1", &body(5, 5_000));
    write(&new, "share/readme", b"version 2 with more words\n");
    write(&new, "data/new-name.bin", &body(7, 3_000));
    write(&new, "share/added.txt", b"added\n");
    symlink("libx.so.1", new.join("lib/libx.so")).unwrap();
    (old, new)
}

#[test]
fn tree_delta_round_trips_through_an_archive() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = releases(dir.path());
    let delta = tree::diff(&old, &new).unwrap();
    let kinds: Vec<&str> = delta
        .ops
        .iter()
        .map(|o| match o {
            TreeOp::Keep { .. } => "keep",
            TreeOp::Add { .. } => "add",
            TreeOp::Remove { .. } => "remove",
            TreeOp::Rename { .. } => "rename",
            TreeOp::Patch { .. } => "patch",
            TreeOp::Symlink { .. } => "symlink",
        })
        .collect();
    for k in ["keep", "add", "remove", "rename", "patch", "symlink"] {
        assert!(kinds.contains(&k), "no {k} op in {kinds:?}");
    }
    let mut bytes = Vec::new();
    delta.write_to(&mut bytes).unwrap();
    let read = TreeDelta::read_from(&mut bytes.as_slice()).unwrap();
    assert_eq!(read, delta);
    assert!(TreeDelta::read_from(&mut &bytes[..bytes.len() - 1]).is_err());

    tree::preverify(&old, &read).unwrap();
    let out = dir.path().join("out");
    let stats = tree::apply(&old, &read, &out).unwrap();
    assert_eq!(stats.links, 1);
    assert_eq!(stats.patched, 1);
    assert_eq!(
        tree::diff(&new, &out)
            .unwrap()
            .ops
            .iter()
            .filter(|o| !matches!(o, TreeOp::Keep { .. } | TreeOp::Symlink { .. }))
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_link(out.join("lib/libx.so")).unwrap(),
        Path::new("libx.so.1")
    );
}

#[test]
fn preverify_reports_each_tampered_file_with_expected_and_found() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = releases(dir.path());
    let delta = tree::diff(&old, &new).unwrap();
    write(&old, "bin/app", b"rooted device replaced this");
    write(&old, "lib/libx.so.1", b"and this");
    std::fs::remove_file(old.join("share/readme")).unwrap();
    let mismatches = tree::preverify(&old, &delta).unwrap_err();
    let paths: Vec<&str> = mismatches.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(paths, ["bin/app", "lib/libx.so.1", "share/readme"]);
    let app = &mismatches[0];
    assert_eq!(app.found, ferry_hash(b"rooted device replaced this"));
    assert_eq!(app.expected, ferry_hash(&body(3, 20_000)));
    assert_eq!(mismatches[2].found, "missing");

    let out = dir.path().join("out");
    match tree::apply(&old, &delta, &out) {
        Err(DeltaError::Preverify(m)) => assert_eq!(m, mismatches),
        other => panic!("expected a pre-verification failure, got {other:?}"),
    }
    assert!(
        !out.exists(),
        "nothing may be written when pre-verification fails"
    );
    assert_no_staging_left(dir.path());
}

fn ferry_hash(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}

fn assert_no_staging_left(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ferry"))
        .collect();
    assert!(left.is_empty(), "staging left behind: {left:?}");
}

#[test]
fn tree_delta_refuses_parent_dir_paths() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("root/old");
    write(&old, "a", b"a");
    let evil = [
        TreeOp::Add {
            path: "../evil".into(),
            sha256: ferry_hash(b"x"),
            mode: 0o644,
            blob: 0,
            replaces: None,
        },
        TreeOp::Add {
            path: "/tmp/evil".into(),
            sha256: ferry_hash(b"x"),
            mode: 0o644,
            blob: 0,
            replaces: None,
        },
        TreeOp::Rename {
            from: "../../etc/passwd".into(),
            to: "stolen".into(),
            expected: ferry_hash(b"x"),
            mode: 0o644,
        },
    ];
    for op in evil {
        let delta = TreeDelta {
            ops: vec![op.clone()],
            blobs: vec![b"x".to_vec()],
        };
        let out = dir.path().join("root/new");
        let err = tree::apply(&old, &delta, &out).expect_err("must refuse");
        assert!(matches!(err, DeltaError::Tree(_)), "{op:?}: {err}");
        assert!(!out.exists());
        assert!(!dir.path().join("root/evil").exists());
        assert!(!dir.path().join("evil").exists());
    }
}

#[test]
fn tree_delta_refuses_symlink_escape() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    write(&outside, "secret", b"secret");
    let old = dir.path().join("old");
    write(&old, "a", b"a");
    // A link inside the old tree that leads outside it: reading through it is refused.
    symlink(&outside, old.join("data")).unwrap();
    let through_link = TreeDelta {
        ops: vec![TreeOp::Keep {
            path: "data/secret".into(),
            sha256: ferry_hash(b"secret"),
            mode: 0o644,
        }],
        blobs: vec![],
    };
    let mism = tree::preverify(&old, &through_link).unwrap_err();
    assert!(mism[0].found.starts_with("unsafe path"), "{mism:?}");
    let out = dir.path().join("new");
    assert!(tree::apply(&old, &through_link, &out).is_err());
    assert!(!out.exists());
    // A symlink the delta creates may not point outside the new tree either.
    for target in ["../../outside/secret", "/etc/passwd"] {
        let escaping = TreeDelta {
            ops: vec![TreeOp::Symlink {
                path: "lib/x".into(),
                target: target.into(),
            }],
            blobs: vec![],
        };
        let err = tree::apply(&old, &escaping, &out).expect_err("must refuse");
        assert!(matches!(err, DeltaError::Tree(_)), "{err}");
        assert!(!out.exists());
    }
    // And a link followed by a file written through it is refused.
    let sneaky = TreeDelta {
        ops: vec![
            TreeOp::Symlink {
                path: "d".into(),
                target: ".".into(),
            },
            TreeOp::Add {
                path: "d/f".into(),
                sha256: ferry_hash(b"x"),
                mode: 0o644,
                blob: 0,
                replaces: None,
            },
        ],
        blobs: vec![b"x".to_vec()],
    };
    assert!(tree::apply(&old, &sneaky, &out).is_err());
    assert!(!out.exists());
    assert_no_staging_left(dir.path());
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"secret");
}
