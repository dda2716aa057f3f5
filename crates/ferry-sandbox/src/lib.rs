//! Ferry secure preflight, first half: what the agent checks before a vendor package may be
//! installed.
//!
//! - [`envelope`]: vendor encryption of packages to a device group key (X25519 + HKDF-SHA256 +
//!   ChaCha20-Poly1305 in authenticated chunks), signed by the vendor's ed25519 key; opened
//!   with the signature verified before the plaintext is released.
//! - [`unpack`]: unpack rules (tar, tar.gz, tar.zst, zip, cpio newc, squashfs, raw)
//!   extracted under limits that refuse traversal, escaping links, device nodes, setuid bits,
//!   duplicates and decompression bombs.
//! - [`scan`]: a static scan of the unpacked tree — ELF headers, disassembly, checksec-style
//!   hardening, dangerous imports, code signatures, embedded secrets — driven by a signed,
//!   versioned rule database, with a [`scan::Policy`] deciding block or warn.
//! - [`gate`]: the three above chained as the agent's install gate.
//! - [`sandbox`]: the sandboxes the new version rehearses in (Linux namespaces; QEMU with a
//!   kernel of its own).
//! - [`mirror`]: the HTTP / raw TCP proxy that mirrors live traffic to the sandbox, compares
//!   answers with noise learned from production, and switches traffic over without losing a
//!   request.
//! - [`preflight`]: gate, sandbox and mirror tied into a verdict: safe (switchover plan) or
//!   unsafe (security alert for the server).
//! - [`demo`]: `ferry demo preflight`, the whole path for real under client load.

#![deny(missing_docs)]

pub mod bench;
pub mod demo;
pub mod envelope;
pub mod gate;
pub mod mirror;
pub mod preflight;
pub mod sandbox;
pub mod scan;
pub mod unpack;
