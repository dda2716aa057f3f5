//! apply(old, diff(old, new)) == new, for random and structured inputs, and bad patches.

use std::io::Cursor;

use ferry_delta::{DeltaError, DiffOptions, apply, apply_files, diff, diff_files};
use proptest::prelude::*;

fn fast() -> DiffOptions {
    DiffOptions {
        level: 3,
        ..DiffOptions::default()
    }
}

fn make_patch(old: &[u8], new: &[u8]) -> Vec<u8> {
    let mut patch = Vec::new();
    diff(old, new, &fast(), &mut patch).expect("diff");
    patch
}

fn rebuild(old: &[u8], patch: &[u8]) -> Result<Vec<u8>, DeltaError> {
    let mut out = Vec::new();
    apply(Cursor::new(old), patch, &mut out)?;
    Ok(out)
}

/// Pseudo-random bytes that look a little like code: repeated motifs with noise.
fn structured(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let motifs: Vec<Vec<u8>> = (0..16)
        .map(|m| (0..24).map(|i| (m * 31 + i * 7) as u8).collect())
        .collect();
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&motifs[(x % 16) as usize]);
        out.extend_from_slice(&x.to_le_bytes()[..(x >> 60) as usize % 5]);
    }
    out.truncate(len);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_inputs_round_trip(old in proptest::collection::vec(any::<u8>(), 0..3000),
                                new in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let patch = make_patch(&old, &new);
        prop_assert_eq!(rebuild(&old, &patch).unwrap(), new);
    }

    #[test]
    fn edited_inputs_round_trip(seed in 1u64.., len in 1usize..40_000,
                                edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0usize..300), 0..12)) {
        let old = structured(seed, len);
        let mut new = old.clone();
        for (at, byte, span) in edits {
            let at = at % (new.len() + 1);
            match byte % 3 {
                0 => new.splice(at..at, std::iter::repeat_n(byte, span)).for_each(drop),
                1 => { let end = (at + span).min(new.len()); new.drain(at..end); }
                _ => if at < new.len() { new[at] ^= byte | 1 },
            }
        }
        let patch = make_patch(&old, &new);
        prop_assert_eq!(rebuild(&old, &patch).unwrap(), new);
    }
}

#[test]
fn shifted_blocks_and_inserted_code_round_trip_compactly() {
    let old = structured(7, 200_000);
    let mut new = Vec::new();
    new.extend_from_slice(&old[100_000..150_000]);
    new.extend_from_slice(&structured(99, 3_000));
    new.extend_from_slice(&old[..100_000]);
    new.extend_from_slice(&old[150_000..]);
    let patch = make_patch(&old, &new);
    assert_eq!(rebuild(&old, &patch).unwrap(), new);
    assert!(
        patch.len() < 8_000,
        "moved blocks should cost little, patch is {} bytes",
        patch.len()
    );
}

#[test]
fn spans_several_chunks() {
    let old = structured(3, 2_500_000);
    let mut new = old.clone();
    for i in (0..new.len()).step_by(4099) {
        new[i] = new[i].wrapping_add(1);
    }
    let patch = make_patch(&old, &new);
    assert_eq!(rebuild(&old, &patch).unwrap(), new);
}

#[test]
fn rejects_patch_for_another_base() {
    let old = structured(1, 10_000);
    let new = structured(2, 10_000);
    let patch = make_patch(&old, &new);
    let other = structured(5, 9_000);
    match rebuild(&other, &patch) {
        Err(DeltaError::OldMismatch {
            expected,
            found,
            expected_size,
            found_size,
        }) => {
            assert_eq!(expected_size, 10_000);
            assert_eq!(found_size, 9_000);
            assert_ne!(expected, found);
            assert_eq!(expected.len(), 64);
        }
        other => panic!("expected OldMismatch, got {other:?}"),
    }
}

#[test]
fn rejects_truncated_patch() {
    let old = structured(1, 50_000);
    let mut new = old.clone();
    new.extend_from_slice(&structured(9, 5_000));
    let patch = make_patch(&old, &new);
    for cut in [10, 90, patch.len() / 2, patch.len() - 1] {
        let err = rebuild(&old, &patch[..cut]).expect_err("truncated patch must fail");
        assert!(
            matches!(err, DeltaError::Truncated { .. } | DeltaError::Corrupt(_)),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn rejects_corrupt_patch() {
    let old = structured(1, 50_000);
    let mut new = old.clone();
    new[1000] ^= 0x55;
    new.extend_from_slice(&structured(9, 5_000));
    let patch = make_patch(&old, &new);
    let mut bad_magic = patch.clone();
    bad_magic[3] ^= 1;
    assert!(matches!(
        rebuild(&old, &bad_magic),
        Err(DeltaError::Corrupt(_))
    ));
    // Flipping any byte of the body must never yield a wrong file silently.
    for at in (90..patch.len()).step_by(7) {
        let mut p = patch.clone();
        p[at] ^= 0xa5;
        if let Ok(out) = rebuild(&old, &p) {
            assert_eq!(out, new, "flip at {at} produced a wrong file");
        }
    }
}

#[test]
fn rejects_output_hash_mismatch() {
    let old = structured(1, 10_000);
    let new = structured(2, 10_000);
    let mut patch = make_patch(&old, &new);
    // The new-file hash sits at bytes 58..90 of the header.
    patch[60] ^= 0xff;
    match rebuild(&old, &patch) {
        Err(DeltaError::OutputMismatch { expected, found }) => assert_ne!(expected, found),
        other => panic!("expected OutputMismatch, got {other:?}"),
    }
    // Through the file API, nothing is left at the output path.
    let dir = tempfile::tempdir().unwrap();
    let (o, p, out) = (
        dir.path().join("old"),
        dir.path().join("patch"),
        dir.path().join("out"),
    );
    std::fs::write(&o, &old).unwrap();
    std::fs::write(&p, &patch).unwrap();
    assert!(apply_files(&o, &p, &out).is_err());
    assert!(
        !out.exists(),
        "a failed apply must not leave an output file"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "temporary files left behind: {leftovers:?}"
    );
}

#[test]
fn file_api_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (o, n, p, out) = (
        dir.path().join("old"),
        dir.path().join("new"),
        dir.path().join("patch"),
        dir.path().join("out"),
    );
    let old = structured(11, 30_000);
    let mut new = old.clone();
    new.splice(500..500, b"inserted".iter().copied());
    std::fs::write(&o, &old).unwrap();
    std::fs::write(&n, &new).unwrap();
    let d = diff_files(&o, &n, &p, &fast()).unwrap();
    assert_eq!(d.patch_size, std::fs::metadata(&p).unwrap().len());
    let a = apply_files(&o, &p, &out).unwrap();
    assert_eq!(a.new_size, new.len() as u64);
    assert_eq!(std::fs::read(&out).unwrap(), new);
}
