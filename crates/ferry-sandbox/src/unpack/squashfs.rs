//! squashfs 4.0 images, read with `backhand`; every node goes through the [`Extractor`].

use super::error::UnpackError;
use super::extractor::Extractor;
use backhand::{FilesystemReader, InnerNode};
use std::io::{BufReader, Read, Seek};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub(crate) fn extract<R: Read + Seek + Send + 'static>(
    reader: BufReader<R>,
    archive: &Path,
    x: &mut Extractor,
) -> Result<(), UnpackError> {
    let corrupt = |reason: String| UnpackError::Corrupt {
        archive: archive.into(),
        format: "squashfs",
        reason,
    };
    let fs = FilesystemReader::from_reader(reader).map_err(|e| corrupt(e.to_string()))?;
    for node in fs.files() {
        let full = node.fullpath.as_os_str().as_bytes();
        let name = full.strip_prefix(b"/").unwrap_or(full);
        let mode = u32::from(node.header.permissions);
        match &node.inner {
            InnerNode::Dir(_) => {
                if !name.is_empty() {
                    x.dir(name, mode)?;
                }
            }
            InnerNode::File(file) => {
                let size = file.file_len() as u64;
                x.check_declared(name, size)?;
                let mut data = fs.file(file).reader();
                x.file(name, mode, Some(size), &mut data)?;
            }
            InnerNode::Symlink(link) => x.symlink(name, link.link.as_os_str().as_bytes())?,
            InnerNode::CharacterDevice(_) => return Err(x.special(name, "character device")),
            InnerNode::BlockDevice(_) => return Err(x.special(name, "block device")),
            InnerNode::NamedPipe => return Err(x.special(name, "FIFO")),
            InnerNode::Socket => return Err(x.special(name, "socket")),
        }
    }
    Ok(())
}
