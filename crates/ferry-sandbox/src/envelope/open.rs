//! Opening: decrypt with the group secret, verify the vendor signature, then release.

use super::error::EnvelopeError;
use super::format::{
    FLAG_LAST, FLAG_MORE, HEADER_LEN, Header, SIG_BLOCK_LEN, SIG_MAGIC, TAG_LEN, decrypt_chunk,
    payload_cipher, signed_message,
};
use super::group_key::GroupSecret;
use super::seal::read_full;
use ferry_artifact::keys::PublicKey;
use sha2::{Digest, Sha256};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// What [`open`] established about a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Key id of the trusted vendor key whose signature verified.
    pub vendor_key_id: String,
    /// Plaintext length in bytes.
    pub plaintext_len: u64,
    /// sha256 of the plaintext, lowercase hex.
    pub plaintext_sha256: String,
}

/// Decrypts the envelope at `envelope` with `group`, verifies the vendor signature against
/// `trusted_vendors`, and only then creates `output` (which must not exist) holding the
/// plaintext. On any error nothing is left at `output`.
pub fn open(
    envelope: &Path,
    group: &GroupSecret,
    trusted_vendors: &[PublicKey],
    output: &Path,
) -> Result<Opened, EnvelopeError> {
    if std::fs::symlink_metadata(output).is_ok() {
        return Err(EnvelopeError::DestinationExists {
            path: output.into(),
        });
    }
    let file = std::fs::File::open(envelope).map_err(|source| EnvelopeError::Io {
        path: envelope.into(),
        action: "open the envelope",
        source,
    })?;
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let io_out = |action| {
        move |source| EnvelopeError::Io {
            path: PathBuf::from(output),
            action,
            source,
        }
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".ferry-open-")
        .tempfile_in(dir)
        .map_err(io_out("create a temporary file beside the destination"))?;
    let opened = {
        let mut sink = io::BufWriter::new(tmp.as_file_mut());
        let opened = open_stream(
            &mut BufReader::new(file),
            group,
            trusted_vendors,
            &mut sink,
            envelope,
        )?;
        sink.flush().map_err(io_out("write the plaintext"))?;
        opened
    };
    tmp.as_file()
        .sync_all()
        .map_err(io_out("sync the plaintext"))?;
    tmp.persist_noclobber(output).map_err(|e| {
        if e.error.kind() == io::ErrorKind::AlreadyExists {
            EnvelopeError::DestinationExists {
                path: output.into(),
            }
        } else {
            io_out("move the plaintext into place")(e.error)
        }
    })?;
    Ok(opened)
}

/// [`open`] for an in-memory envelope: the plaintext is returned only once the vendor
/// signature has verified.
pub fn open_bytes(
    envelope: &[u8],
    group: &GroupSecret,
    trusted_vendors: &[PublicKey],
) -> Result<(Vec<u8>, Opened), EnvelopeError> {
    let mut plain = Vec::new();
    let opened = open_stream(
        &mut &envelope[..],
        group,
        trusted_vendors,
        &mut plain,
        Path::new("<memory>"),
    )?;
    Ok((plain, opened))
}

/// Decrypts into `sink` (which the caller discards on error) and verifies the signature.
fn open_stream(
    input: &mut impl Read,
    group: &GroupSecret,
    trusted: &[PublicKey],
    sink: &mut impl Write,
    path: &Path,
) -> Result<Opened, EnvelopeError> {
    if trusted.is_empty() {
        return Err(EnvelopeError::NoTrustedKeys);
    }
    let io_in = |action| {
        move |source| EnvelopeError::Io {
            path: path.into(),
            action,
            source,
        }
    };
    let head = read_full(input, HEADER_LEN).map_err(io_in("read the envelope header"))?;
    if head.len() < 8 || head[..8] != super::MAGIC[..] {
        return Err(EnvelopeError::NotAnEnvelope);
    }
    let head: [u8; HEADER_LEN] = head
        .try_into()
        .map_err(|_| EnvelopeError::BadHeader("the header is cut short".into()))?;
    let header = Header::parse(&head)?;
    let ours = group.public();
    if header.recipient != ours.0 {
        return Err(EnvelopeError::WrongRecipient {
            envelope_key: hex::encode(header.recipient),
            our_key: ours.to_string(),
        });
    }
    let shared = group
        .agree(&header.ephemeral)
        .ok_or_else(|| EnvelopeError::BadHeader("the ephemeral key is a low-order point".into()))?;
    let cipher = payload_cipher(&shared, &head);
    let mut transcript = Sha256::new();
    transcript.update(head);
    let mut plain_hash = Sha256::new();
    let mut plaintext_len = 0u64;
    let max_ct = header.chunk_size as usize + TAG_LEN;
    let mut index = 0u64;
    loop {
        let prefix = read_full(input, 5).map_err(io_in("read a chunk"))?;
        if prefix.len() < 5 {
            return Err(EnvelopeError::Truncated { chunks: index });
        }
        let last = match prefix[0] {
            FLAG_LAST => true,
            FLAG_MORE => false,
            other => {
                return Err(EnvelopeError::BadHeader(format!(
                    "chunk {index} has frame flag {other}, expected 0 or 1"
                )));
            }
        };
        let len = u32::from_be_bytes(prefix[1..5].try_into().expect("4 bytes")) as usize;
        let expected_ok = if last {
            (TAG_LEN..=max_ct).contains(&len)
        } else {
            len == max_ct
        };
        if !expected_ok {
            return Err(EnvelopeError::Tampered { index });
        }
        let ct = read_full(input, len).map_err(io_in("read a chunk"))?;
        if ct.len() < len {
            return Err(EnvelopeError::Truncated { chunks: index });
        }
        transcript.update(&prefix);
        transcript.update(&ct);
        let plain = decrypt_chunk(&cipher, index, last, &ct)?;
        plain_hash.update(plain.as_slice());
        plaintext_len += plain.len() as u64;
        sink.write_all(&plain)
            .map_err(io_in("write the decrypted plaintext"))?;
        if last {
            break;
        }
        index += 1;
    }
    let block = read_full(input, SIG_BLOCK_LEN).map_err(io_in("read the vendor signature"))?;
    if block.is_empty() {
        return Err(EnvelopeError::Unsigned);
    }
    if block.len() < SIG_BLOCK_LEN || &block[..4] != SIG_MAGIC {
        return Err(EnvelopeError::BadHeader(
            "the vendor signature block after the final chunk is malformed or cut short".into(),
        ));
    }
    let signer = hex::encode(&block[4..36]);
    let sig_hex = hex::encode(&block[36..100]);
    let key = trusted
        .iter()
        .find(|k| k.key_id() == signer)
        .ok_or_else(|| EnvelopeError::UntrustedSigner {
            signer: signer.clone(),
            trusted: trusted.iter().map(PublicKey::key_id).collect(),
        })?;
    key.verify(&signed_message(transcript), &sig_hex)
        .map_err(|_| EnvelopeError::BadSignature {
            keyid: signer.clone(),
        })?;
    let mut extra = Vec::new();
    let extra_len = input
        .take(1 << 20)
        .read_to_end(&mut extra)
        .map_err(io_in("read past the vendor signature"))?;
    if extra_len > 0 {
        return Err(EnvelopeError::TrailingData {
            extra: extra_len as u64,
        });
    }
    Ok(Opened {
        vendor_key_id: signer,
        plaintext_len,
        plaintext_sha256: hex::encode(plain_hash.finalize()),
    })
}
