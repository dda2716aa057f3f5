//! A cpio `newc` writer (the format the Linux kernel unpacks as an initramfs), uncompressed:
//! under TCG a guest-side gunzip costs more boot time than reading the larger archive.

use crate::sandbox::SandboxError;
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// Writes a `newc` archive; every entry is owned by root. Directories are added once, parents
/// first.
pub(crate) struct CpioWriter<W: Write> {
    out: W,
    ino: u32,
    written: u64,
    dirs: BTreeSet<String>,
}

impl<W: Write> CpioWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        CpioWriter {
            out,
            ino: 1,
            written: 0,
            dirs: BTreeSet::new(),
        }
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> std::io::Result<()> {
        let name = name.trim_start_matches('/');
        let name = if name.is_empty() { "." } else { name };
        let header = format!(
            "070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
            self.ino,
            mode,
            0,
            0,
            if mode & S_IFDIR != 0 { 2 } else { 1 },
            0,
            data.len(),
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() + 1,
            0
        );
        self.ino += 1;
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.written += (header.len() + name.len() + 1) as u64;
        self.pad()?;
        self.out.write_all(data)?;
        self.written += data.len() as u64;
        self.pad()
    }

    fn pad(&mut self) -> std::io::Result<()> {
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.out.write_all(&[0u8; 3][..pad])?;
        self.written += pad as u64;
        Ok(())
    }

    /// Adds directory `name` (and its missing parents) with `perm`.
    pub(crate) fn dir(&mut self, name: &str, perm: u32) -> std::io::Result<()> {
        let name = name.trim_matches('/');
        if name.is_empty() || self.dirs.contains(name) {
            return Ok(());
        }
        if let Some((parent, _)) = name.rsplit_once('/') {
            self.dir(parent, 0o755)?;
        }
        self.dirs.insert(name.to_string());
        self.entry(name, S_IFDIR | (perm & 0o7777), (0, 0), &[])
    }

    fn parent(&mut self, name: &str) -> std::io::Result<()> {
        match name.trim_matches('/').rsplit_once('/') {
            Some((parent, _)) => self.dir(parent, 0o755),
            None => Ok(()),
        }
    }

    /// Adds a regular file.
    pub(crate) fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> std::io::Result<()> {
        self.parent(name)?;
        self.entry(name, S_IFREG | (perm & 0o7777), (0, 0), data)
    }

    /// Adds a symbolic link to `target`.
    pub(crate) fn symlink(&mut self, name: &str, target: &str) -> std::io::Result<()> {
        self.parent(name)?;
        self.entry(name, S_IFLNK | 0o777, (0, 0), target.as_bytes())
    }

    /// Adds a character device node.
    pub(crate) fn char_dev(&mut self, name: &str, major: u32, minor: u32) -> std::io::Result<()> {
        self.parent(name)?;
        self.entry(name, S_IFCHR | 0o600, (major, minor), &[])
    }

    /// Adds every directory, regular file and symbolic link under `src` below `prefix`
    /// (`""` for the archive root). Other file types are refused.
    pub(crate) fn tree(&mut self, src: &Path, prefix: &str) -> Result<(), SandboxError> {
        let mut entries: Vec<_> = std::fs::read_dir(src)
            .map_err(SandboxError::io(
                src,
                "list a directory for the guest's initramfs",
            ))?
            .collect::<Result<_, _>>()
            .map_err(SandboxError::io(
                src,
                "list a directory for the guest's initramfs",
            ))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
                return Err(SandboxError::BadSpec(format!(
                    "{} has a name that is not UTF-8",
                    path.display()
                )));
            };
            let name = format!("{prefix}/{file_name}");
            let meta = std::fs::symlink_metadata(&path)
                .map_err(SandboxError::io(&path, "read for the guest's initramfs"))?;
            let write_err = SandboxError::io(&path, "add to the guest's initramfs");
            let perm = meta.permissions().mode() & 0o7777;
            if meta.is_symlink() {
                let target = std::fs::read_link(&path)
                    .map_err(SandboxError::io(&path, "read a symbolic link"))?;
                self.symlink(&name, &target.to_string_lossy())
                    .map_err(write_err)?;
            } else if meta.is_dir() {
                self.dir(&name, perm).map_err(write_err)?;
                self.tree(&path, &name)?;
            } else if meta.is_file() {
                let data = std::fs::read(&path)
                    .map_err(SandboxError::io(&path, "read for the guest's initramfs"))?;
                self.file(&name, perm, &data).map_err(write_err)?;
            } else {
                return Err(SandboxError::BadSpec(format!(
                    "{} is neither a directory, a regular file nor a symbolic link",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// Writes the trailer and returns the output.
    pub(crate) fn finish(mut self) -> std::io::Result<W> {
        self.entry("TRAILER!!!", 0, (0, 0), &[])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_unpacks_with_the_crates_own_cpio_rule() {
        let mut w = CpioWriter::new(Vec::new());
        w.file("a/b/c.txt", 0o644, b"hello").unwrap();
        w.symlink("a/link", "b/c.txt").unwrap();
        w.dir("empty", 0o700).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(text.matches("a/b\0").count(), 1, "each directory once");
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("x.cpio");
        std::fs::write(&archive, &bytes).unwrap();
        let dest = dir.path().join("out");
        crate::unpack::unpack(
            crate::unpack::UnpackRule::Cpio,
            &archive,
            &dest,
            &crate::unpack::Limits::default(),
        )
        .unwrap();
        assert_eq!(std::fs::read(dest.join("a/b/c.txt")).unwrap(), b"hello");
        assert_eq!(
            std::fs::read_link(dest.join("a/link")).unwrap(),
            Path::new("b/c.txt")
        );
        assert!(dest.join("empty").is_dir());
    }
}
