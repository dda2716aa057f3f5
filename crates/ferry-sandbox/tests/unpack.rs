//! Unpack rules: each malicious archive is built by hand and must be refused, leaving nothing.

use ferry_sandbox::unpack::{Limits, UnpackError, UnpackRule, unpack};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy)]
enum E<'a> {
    File(&'a [u8], &'a [u8], u32),
    Dir(&'a [u8]),
    Symlink(&'a [u8], &'a [u8]),
    Hardlink(&'a [u8], &'a [u8]),
    Char(&'a [u8]),
    Fifo(&'a [u8]),
}

/// A tar with raw names written straight into the header (no validation by the builder).
fn tar_bytes(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, data, link, kind, mode): (&[u8], &[u8], &[u8], tar::EntryType, u32) = match *e {
            E::File(n, d, m) => (n, d, b"", tar::EntryType::Regular, m),
            E::Dir(n) => (n, b"", b"", tar::EntryType::Directory, 0o755),
            E::Symlink(n, t) => (n, b"", t, tar::EntryType::Symlink, 0o777),
            E::Hardlink(n, t) => (n, b"", t, tar::EntryType::Link, 0o644),
            E::Char(n) => (n, b"", b"", tar::EntryType::Char, 0o600),
            E::Fifo(n) => (n, b"", b"", tar::EntryType::Fifo, 0o600),
        };
        h.as_mut_bytes()[..name.len()].copy_from_slice(name);
        h.as_mut_bytes()[157..157 + link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zst(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// A cpio newc archive built field by field.
fn cpio_bytes(entries: &[(&[u8], u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |name: &[u8], mode: u32, data: &[u8], ino: u32| {
        let namesize = name.len() + 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            namesize,
            0
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(name);
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(data);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    };
    for (i, (name, mode, data)) in entries.iter().enumerate() {
        push(name, *mode, data, i as u32 + 1);
    }
    push(b"TRAILER!!!", 0, b"", 0);
    out
}

fn zip_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

struct Run {
    _dir: tempfile::TempDir,
    dest: PathBuf,
    archive: PathBuf,
}

fn setup(bytes: &[u8], name: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join(name);
    std::fs::write(&archive, bytes).unwrap();
    let dest = dir.path().join("root");
    Run {
        _dir: dir,
        dest,
        archive,
    }
}

fn refused(rule: UnpackRule, bytes: &[u8], limits: &Limits) -> UnpackError {
    let run = setup(bytes, "pkg");
    let err = unpack(rule, &run.archive, &run.dest, limits).unwrap_err();
    assert!(
        !run.dest.exists(),
        "{rule}: destination must be removed after: {err}"
    );
    let outside = run.dest.parent().unwrap().join("evil");
    assert!(!outside.exists(), "{rule}: wrote outside the root");
    err
}

fn is_traversal(e: &UnpackError) -> bool {
    matches!(
        e,
        UnpackError::Traversal { .. } | UnpackError::LinkEscapes { .. }
    )
}

#[test]
fn traversal_archive_rejected_for_tar_tar_gz_and_tar_zst() {
    for name in [
        &b"../evil"[..],
        b"a/../../evil",
        b"/tmp/evil",
        b"./ok/../../evil",
    ] {
        let t = tar_bytes(&[E::File(name, b"x", 0o644)]);
        for (rule, bytes) in [
            (UnpackRule::Tar, t.clone()),
            (UnpackRule::TarGz, gz(&t)),
            (UnpackRule::TarZstd, zst(&t)),
        ] {
            let err = refused(rule, &bytes, &Limits::default());
            assert!(
                is_traversal(&err),
                "{rule} {}: {err}",
                String::from_utf8_lossy(name)
            );
        }
    }
}

#[test]
fn traversal_archive_rejected_for_zip() {
    for name in ["../evil", "/evil", "dir/../../evil"] {
        let err = refused(
            UnpackRule::Zip,
            &zip_bytes(&[(name, b"x")]),
            &Limits::default(),
        );
        assert!(is_traversal(&err), "{name}: {err}");
    }
}

#[test]
fn traversal_archive_rejected_for_cpio() {
    for name in [&b"../evil"[..], b"/evil", b"bin/../../evil"] {
        let err = refused(
            UnpackRule::Cpio,
            &cpio_bytes(&[(name, 0o100644, b"x")]),
            &Limits::default(),
        );
        assert!(
            is_traversal(&err),
            "{}: {err}",
            String::from_utf8_lossy(name)
        );
    }
    let link = cpio_bytes(&[(b"sh", 0o120777, b"../../evil")]);
    assert!(is_traversal(&refused(
        UnpackRule::Cpio,
        &link,
        &Limits::default()
    )));
}

fn squashfs_with(build: impl FnOnce(&mut backhand::FilesystemWriter)) -> Vec<u8> {
    use backhand::compression::Compressor;
    use backhand::{FilesystemCompressor, FilesystemWriter, NodeHeader};
    let mut w = FilesystemWriter::default();
    w.set_compressor(FilesystemCompressor::new(Compressor::Gzip, None).unwrap());
    w.push_dir("bin", NodeHeader::new(0o755, 0, 0, 0)).unwrap();
    build(&mut w);
    let mut out = std::io::Cursor::new(Vec::new());
    w.write(&mut out).unwrap();
    out.into_inner()
}

#[test]
fn traversal_archive_rejected_for_squashfs() {
    use backhand::NodeHeader;
    let h = NodeHeader::new(0o777, 0, 0, 0);
    let img = squashfs_with(|w| w.push_symlink("../../evil", "bin/sh", h).unwrap());
    let err = refused(UnpackRule::Squashfs, &img, &Limits::default());
    assert!(is_traversal(&err), "{err}");
    let img = squashfs_with(|w| {
        w.push_char_device(0x0501, "bin/console", NodeHeader::new(0o600, 0, 0, 0))
            .unwrap()
    });
    let err = refused(UnpackRule::Squashfs, &img, &Limits::default());
    assert!(
        matches!(
            err,
            UnpackError::SpecialFile {
                kind: "character device",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn good_archives_unpack_in_every_format() {
    let t = tar_bytes(&[
        E::Dir(b"./bin"),
        E::File(b"./bin/app", b"#!/bin/sh\necho hi\n", 0o755),
        E::Symlink(b"bin/sh", b"/bin/app"),
        E::Symlink(b"bin/rel", b"app"),
        E::Hardlink(b"bin/app2", b"bin/app"),
    ]);
    let zip = zip_bytes(&[("bin/app", b"#!/bin/sh\necho hi\n")]);
    let cpio = cpio_bytes(&[
        (b"bin", 0o040755, b""),
        (b"bin/app", 0o100755, b"#!/bin/sh\necho hi\n"),
    ]);
    let sq = squashfs_with(|w| {
        w.push_file(
            std::io::Cursor::new(b"#!/bin/sh\necho hi\n".to_vec()),
            "bin/app",
            backhand::NodeHeader::new(0o755, 0, 0, 0),
        )
        .unwrap()
    });
    for (rule, bytes) in [
        (UnpackRule::Tar, t.clone()),
        (UnpackRule::TarGz, gz(&t)),
        (UnpackRule::TarZstd, zst(&t)),
        (UnpackRule::Zip, zip),
        (UnpackRule::Cpio, cpio),
        (UnpackRule::Squashfs, sq),
    ] {
        let run = setup(&bytes, "pkg");
        let out = unpack(rule, &run.archive, &run.dest, &Limits::default())
            .unwrap_or_else(|e| panic!("{rule}: {e}"));
        assert_eq!(
            std::fs::read(run.dest.join("bin/app")).unwrap(),
            b"#!/bin/sh\necho hi\n",
            "{rule}"
        );
        assert!(out.files >= 1 && out.bytes >= 18, "{rule}: {out:?}");
    }
    let run = setup(b"raw image", "fw.img");
    unpack(UnpackRule::Raw, &run.archive, &run.dest, &Limits::default()).unwrap();
    assert_eq!(
        std::fs::read(run.dest.join("fw.img")).unwrap(),
        b"raw image"
    );
}

#[test]
fn links_leaving_the_root_are_rejected_including_chains() {
    let cases: Vec<Vec<u8>> = vec![
        tar_bytes(&[E::Symlink(b"up", b"../evil")]),
        tar_bytes(&[E::Symlink(b"a/b/up", b"../../../evil")]),
        // Each link alone stays inside; following `loop/loop/..` through `loop -> .` escapes.
        tar_bytes(&[
            E::Symlink(b"loop", b"."),
            E::Symlink(b"esc", b"loop/loop/../x/../.."),
        ]),
        tar_bytes(&[E::Hardlink(b"h", b"../evil")]),
        tar_bytes(&[E::Hardlink(b"h", b"/etc/passwd")]),
    ];
    for t in cases {
        let err = refused(UnpackRule::Tar, &t, &Limits::default());
        assert!(
            matches!(
                err,
                UnpackError::LinkEscapes { .. } | UnpackError::HardlinkTarget { .. }
            ),
            "{err}"
        );
    }
}

#[test]
fn writing_through_a_symlink_is_rejected() {
    let t = tar_bytes(&[E::Symlink(b"etc", b"/"), E::File(b"etc/evil", b"x", 0o644)]);
    let err = refused(UnpackRule::Tar, &t, &Limits::default());
    assert!(
        matches!(
            err,
            UnpackError::BadParent {
                parent_kind: "symlink",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn device_nodes_fifos_and_setuid_files_are_rejected() {
    let err = refused(
        UnpackRule::Tar,
        &tar_bytes(&[E::Char(b"dev/mem")]),
        &Limits::default(),
    );
    assert!(
        matches!(
            err,
            UnpackError::SpecialFile {
                kind: "character device",
                ..
            }
        ),
        "{err}"
    );
    let err = refused(
        UnpackRule::Tar,
        &tar_bytes(&[E::Fifo(b"pipe")]),
        &Limits::default(),
    );
    assert!(
        matches!(err, UnpackError::SpecialFile { kind: "FIFO", .. }),
        "{err}"
    );
    let err = refused(
        UnpackRule::Tar,
        &tar_bytes(&[E::File(b"bin/su", b"x", 0o4755)]),
        &Limits::default(),
    );
    assert!(matches!(err, UnpackError::Setuid { .. }), "{err}");
    let err = refused(
        UnpackRule::Cpio,
        &cpio_bytes(&[(b"dev/sda", 0o060600, b"")]),
        &Limits::default(),
    );
    assert!(
        matches!(
            err,
            UnpackError::SpecialFile {
                kind: "block device",
                ..
            }
        ),
        "{err}"
    );
    let err = refused(
        UnpackRule::Cpio,
        &cpio_bytes(&[(b"bin/su", 0o106755, b"x")]),
        &Limits::default(),
    );
    assert!(matches!(err, UnpackError::Setuid { .. }), "{err}");
}

#[test]
fn duplicate_entries_are_rejected() {
    let t = tar_bytes(&[E::File(b"a", b"1", 0o644), E::File(b"./a", b"2", 0o644)]);
    assert!(matches!(
        refused(UnpackRule::Tar, &t, &Limits::default()),
        UnpackError::Duplicate { .. }
    ));
    let c = cpio_bytes(&[(b"a", 0o100644, b"1"), (b"a", 0o100644, b"2")]);
    assert!(matches!(
        refused(UnpackRule::Cpio, &c, &Limits::default()),
        UnpackError::Duplicate { .. }
    ));
}

#[test]
fn size_and_count_limits_are_enforced() {
    let limits = Limits {
        max_file_bytes: 10,
        max_total_bytes: 15,
        max_entries: 3,
        ..Limits::default()
    };
    let err = refused(
        UnpackRule::Tar,
        &tar_bytes(&[E::File(b"big", &[0u8; 11], 0o644)]),
        &limits,
    );
    assert!(
        matches!(err, UnpackError::FileTooLarge { limit: 10, .. }),
        "{err}"
    );
    let t = tar_bytes(&[
        E::File(b"a", &[0u8; 8], 0o644),
        E::File(b"b", &[0u8; 8], 0o644),
    ]);
    assert!(matches!(
        refused(UnpackRule::Tar, &t, &limits),
        UnpackError::TotalTooLarge { .. }
    ));
    let t = tar_bytes(&[E::Dir(b"a"), E::Dir(b"b"), E::Dir(b"c"), E::Dir(b"d")]);
    assert!(matches!(
        refused(UnpackRule::Tar, &t, &limits),
        UnpackError::TooManyEntries { limit: 3 }
    ));
    let err = refused(UnpackRule::Raw, &[0u8; 11], &limits);
    assert!(matches!(err, UnpackError::FileTooLarge { .. }), "{err}");
}

#[test]
fn zip_bomb_rejected() {
    let zeros = vec![0u8; 64 << 20];
    let bomb = zip_bytes(&[("firmware.bin", &zeros)]);
    assert!(
        bomb.len() < 200_000,
        "test archive should be small: {}",
        bomb.len()
    );
    let err = refused(
        UnpackRule::Zip,
        &bomb,
        &Limits {
            max_ratio: 100,
            ..Limits::default()
        },
    );
    assert!(matches!(err, UnpackError::Bomb { .. }), "{err}");
    // Streaming formats are stopped while writing, not after.
    let t = gz(&tar_bytes(&[E::File(b"firmware.bin", &zeros, 0o644)]));
    let err = refused(
        UnpackRule::TarGz,
        &t,
        &Limits {
            max_ratio: 100,
            ..Limits::default()
        },
    );
    assert!(matches!(err, UnpackError::Bomb { .. }), "{err}");
}

#[test]
fn unpack_rule_names_parse() {
    for r in UnpackRule::ALL {
        assert_eq!(r.name().parse::<UnpackRule>().unwrap(), r);
    }
    assert_eq!("tgz".parse::<UnpackRule>().unwrap(), UnpackRule::TarGz);
    assert!(
        "rar"
            .parse::<UnpackRule>()
            .unwrap_err()
            .contains("squashfs")
    );
    let existing = tempfile::tempdir().unwrap();
    let err = unpack(
        UnpackRule::Raw,
        Path::new("/etc/hostname"),
        existing.path(),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, UnpackError::DestinationExists { .. }),
        "{err}"
    );
}
