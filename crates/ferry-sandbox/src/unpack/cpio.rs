//! cpio `newc` ("070701") and `crc` ("070702") archives, parsed here with every header field
//! checked: 110-byte ASCII-hex header, NUL-terminated name, data, 4-byte alignment.

use super::error::UnpackError;
use super::extractor::Extractor;
use std::io::Read;
use std::path::Path;

const HEADER_LEN: usize = 110;
const MAX_NAME: usize = 4096;
const TRAILER: &[u8] = b"TRAILER!!!";
const S_IFMT: u32 = 0o170000;

struct Header {
    mode: u32,
    nlink: u32,
    filesize: u64,
    namesize: usize,
}

fn hex_field(bytes: &[u8]) -> Option<u32> {
    u32::from_str_radix(std::str::from_utf8(bytes).ok()?, 16).ok()
}

fn parse_header(h: &[u8; HEADER_LEN]) -> Result<Header, String> {
    if &h[..6] != b"070701" && &h[..6] != b"070702" {
        return Err(format!(
            "bad magic {:?}; only the newc format (070701/070702) is supported",
            String::from_utf8_lossy(&h[..6])
        ));
    }
    let field = |i: usize| {
        let start = 6 + i * 8;
        hex_field(&h[start..start + 8]).ok_or_else(|| format!("header field {i} is not hex"))
    };
    Ok(Header {
        mode: field(1)?,
        nlink: field(4)?,
        filesize: u64::from(field(6)?),
        namesize: field(11)? as usize,
    })
}

fn pad4(n: u64) -> u64 {
    (4 - n % 4) % 4
}

pub(crate) fn extract(
    mut r: impl Read,
    archive: &Path,
    x: &mut Extractor,
) -> Result<(), UnpackError> {
    let corrupt = |reason: String| UnpackError::Corrupt {
        archive: archive.into(),
        format: "cpio",
        reason,
    };
    let read_err = |e: std::io::Error| corrupt(format!("truncated or unreadable: {e}"));
    loop {
        let mut raw = [0u8; HEADER_LEN];
        r.read_exact(&mut raw).map_err(read_err)?;
        let h = parse_header(&raw).map_err(corrupt)?;
        if h.namesize == 0 || h.namesize > MAX_NAME {
            return Err(corrupt(format!("name size {} is out of range", h.namesize)));
        }
        let mut name = vec![0u8; h.namesize];
        r.read_exact(&mut name).map_err(read_err)?;
        if name.pop() != Some(0) {
            return Err(corrupt("an entry name is not NUL-terminated".into()));
        }
        skip(&mut r, pad4((HEADER_LEN + h.namesize) as u64)).map_err(read_err)?;
        if name == TRAILER {
            return Ok(());
        }
        let mode = h.mode & 0o7777;
        let mut data = (&mut r).take(h.filesize);
        match h.mode & S_IFMT {
            0o100000 => {
                if h.nlink > 1 {
                    return Err(UnpackError::Unsupported {
                        entry: String::from_utf8_lossy(&name).into_owned(),
                        reason: "cpio hard links (nlink > 1) are not supported; repack the \
                                 archive without hard links"
                            .into(),
                    });
                }
                x.file(&name, mode, Some(h.filesize), &mut data)?;
            }
            0o040000 => x.dir(&name, mode)?,
            0o120000 => {
                if h.filesize > MAX_NAME as u64 {
                    return Err(corrupt("a symlink target is longer than 4096 bytes".into()));
                }
                let mut target = Vec::new();
                data.read_to_end(&mut target).map_err(read_err)?;
                x.symlink(&name, &target)?;
            }
            0o020000 => return Err(x.special(&name, "character device")),
            0o060000 => return Err(x.special(&name, "block device")),
            0o010000 => return Err(x.special(&name, "FIFO")),
            0o140000 => return Err(x.special(&name, "socket")),
            other => {
                return Err(corrupt(format!(
                    "entry '{}' has unknown file type {other:o}",
                    String::from_utf8_lossy(&name)
                )));
            }
        }
        if data.limit() != 0 {
            return Err(corrupt("an entry's data is cut short".into()));
        }
        skip(&mut r, pad4(h.filesize)).map_err(read_err)?;
    }
}

fn skip(r: &mut impl Read, n: u64) -> std::io::Result<()> {
    let copied = std::io::copy(&mut r.take(n), &mut std::io::sink())?;
    if copied < n {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}
