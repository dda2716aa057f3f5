//! Sealing: encrypt to a group key, then sign as the vendor.

use super::error::EnvelopeError;
use super::format::{
    DEFAULT_CHUNK_SIZE, HEADER_LEN, Header, MAX_CHUNK_SIZE, SIG_MAGIC, encrypt_chunk, frame_prefix,
    payload_cipher, signed_message,
};
use super::group_key::{GroupPublicKey, GroupSecret};
use ferry_artifact::keys::SigningKey;
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::path::Path;

/// Encrypts everything `plain` yields to `recipient` in chunks of `chunk_size` plaintext
/// bytes, signs the result with `vendor`, and writes the envelope to `out`.
/// Returns the number of plaintext bytes sealed.
///
/// # Panics
/// If `chunk_size` is 0 or above [`MAX_CHUNK_SIZE`] (a programming error, not bad input).
pub fn seal(
    plain: &mut impl Read,
    out: &mut impl Write,
    recipient: &GroupPublicKey,
    vendor: &SigningKey,
    chunk_size: u32,
) -> io::Result<u64> {
    assert!(
        (1..=MAX_CHUNK_SIZE).contains(&chunk_size),
        "chunk size must be within 1..={MAX_CHUNK_SIZE}"
    );
    let ephemeral = GroupSecret::generate();
    let header = Header {
        chunk_size,
        recipient: recipient.0,
        ephemeral: ephemeral.public().0,
        salt: rand::random(),
    }
    .to_bytes();
    let shared = ephemeral.agree(&recipient.0).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the recipient group key is a low-order point and cannot be encrypted to",
        )
    })?;
    let cipher = payload_cipher(&shared, &header);
    let mut transcript = Sha256::new();
    transcript.update(header);
    out.write_all(&header)?;

    let size = chunk_size as usize;
    let mut current = read_full(plain, size)?;
    let mut total = 0u64;
    let mut index = 0u64;
    loop {
        let next = if current.len() == size {
            read_full(plain, size)?
        } else {
            Vec::new()
        };
        let last = next.is_empty();
        let ct = encrypt_chunk(&cipher, index, last, &current);
        let prefix = frame_prefix(last, ct.len());
        transcript.update(prefix);
        transcript.update(&ct);
        out.write_all(&prefix)?;
        out.write_all(&ct)?;
        total += current.len() as u64;
        if last {
            break;
        }
        current = next;
        index += 1;
    }
    let signature = vendor.sign(&signed_message(transcript));
    out.write_all(SIG_MAGIC)?;
    out.write_all(&hex::decode(&signature.keyid).expect("key ids are hex"))?;
    out.write_all(&hex::decode(&signature.sig).expect("signatures are hex"))?;
    out.flush()?;
    debug_assert_eq!(HEADER_LEN, header.len());
    Ok(total)
}

/// [`seal`] over in-memory bytes with the default chunk size.
pub fn seal_bytes(plain: &[u8], recipient: &GroupPublicKey, vendor: &SigningKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + 256);
    seal(
        &mut &plain[..],
        &mut out,
        recipient,
        vendor,
        DEFAULT_CHUNK_SIZE,
    )
    .expect("writing to memory cannot fail");
    out
}

/// Seals the file `input` into a new file `output` (which must not exist).
pub fn seal_file(
    input: &Path,
    output: &Path,
    recipient: &GroupPublicKey,
    vendor: &SigningKey,
) -> Result<u64, EnvelopeError> {
    let mut src = std::fs::File::open(input).map_err(|source| EnvelopeError::Io {
        path: input.into(),
        action: "open the package to seal",
        source,
    })?;
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let io_out = |action| {
        move |source| EnvelopeError::Io {
            path: output.into(),
            action,
            source,
        }
    };
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(io_out("create a temporary file"))?;
    let total = {
        let mut w = io::BufWriter::new(tmp.as_file_mut());
        seal(&mut src, &mut w, recipient, vendor, DEFAULT_CHUNK_SIZE)
            .map_err(io_out("write the envelope"))?
    };
    tmp.as_file()
        .sync_all()
        .map_err(io_out("sync the envelope"))?;
    tmp.persist_noclobber(output).map_err(|e| {
        if e.error.kind() == io::ErrorKind::AlreadyExists {
            EnvelopeError::DestinationExists {
                path: output.into(),
            }
        } else {
            io_out("move the envelope into place")(e.error)
        }
    })?;
    Ok(total)
}

/// Reads up to `n` bytes, fewer only at end of input.
pub(crate) fn read_full(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}
