//! The patch bundle: what `build_patch` produces and `apply` consumes, signed with ed25519.
//!
//! On disk a bundle is one JSON file `{"payload": "<bundle JSON text>", "signatures": [...]}`;
//! the signatures cover the exact bytes of `payload`, so verification never depends on how a
//! JSON library re-serialises the bundle.

use crate::error::{Error, Result};
use ferry_artifact::keys::{PublicKey, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Format version written into every bundle.
pub const BUNDLE_FORMAT: u32 = 1;

/// A live patch for one exact build of a program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchBundle {
    /// [`BUNDLE_FORMAT`].
    pub format: u32,
    /// GNU build id (hex) of the binary the patch applies to.
    pub target_build_id: String,
    /// GNU build id (hex) of the binary the new code comes from.
    pub new_build_id: String,
    /// Link-time address of the old binary's first loadable segment (to compute the load bias).
    pub old_load_vaddr: u64,
    /// Link-time address of the old binary's entry point (used to inject system calls).
    pub old_entry: u64,
    /// The new code and read-only data, laid out as in the new binary.
    pub code: CodeImage,
    /// Storage for added static variables and for statics whose layout changed.
    pub data: DataImage,
    /// Functions replaced or added by the patch.
    pub functions: Vec<PatchedFunction>,
    /// Static variables added or transformed by the patch.
    pub statics: Vec<StaticPatch>,
    /// Old-binary symbols the new code refers to.
    pub symbols: Vec<SymbolRef>,
    /// Semantic mapping table: safe update points and frame transfer per changed function.
    pub mapping: Vec<FunctionMapping>,
}

/// Code and read-only data, kept at the same relative addresses as in the new binary so that
/// references between them (string literals, jump tables, calls between patched functions)
/// need no relocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeImage {
    /// New-binary address that the start of the mapped block corresponds to (page aligned).
    pub base_vaddr: u64,
    /// Size of the block in bytes (page multiple).
    pub size: u64,
    /// The pieces of the new binary copied into the block.
    pub pieces: Vec<Piece>,
    /// Places in the block that refer to the old binary or to the data block.
    pub relocs: Vec<Reloc>,
    /// Offset in the block of an `int3` byte used as the return address of helpers.
    pub trap_offset: u64,
}

/// A run of bytes of the new binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Piece {
    /// What it is (a function or section name).
    pub name: String,
    /// New-binary address of the first byte.
    pub vaddr: u64,
    /// The bytes, hex.
    pub bytes: String,
}

/// A 32-bit PC-relative field in the code block to fill in at apply time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reloc {
    /// Offset of the 4-byte field from the block start.
    pub offset: u64,
    /// Offset from the block start of the address the field is relative to (end of instruction).
    pub pc_after: u64,
    /// What it must point to.
    pub target: RelocTarget,
}

/// The target of a [`Reloc`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RelocTarget {
    /// `symbols[index]` in the running old binary, plus `addend`.
    Symbol {
        /// Index into [`PatchBundle::symbols`].
        index: usize,
        /// Byte offset from the symbol.
        addend: i64,
    },
    /// An offset in the data block.
    Data {
        /// Byte offset in the data block.
        offset: u64,
    },
}

/// A symbol of the old binary resolved at apply time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolRef {
    /// Name (`file.c:name` for file-local symbols, `plt:name` / `got:name` for imports).
    pub name: String,
    /// Link-time address in the old binary.
    pub old_vaddr: u64,
}

/// Storage for statics allocated at apply time next to the code block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataImage {
    /// Size in bytes (page multiple, at least one page).
    pub size: u64,
}

/// Why a function is in the patch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// Its code differs (after relocation-aware comparison).
    Changed,
    /// It refers to a static whose layout changed.
    UsesTransformedStatic,
    /// It exists only in the new build.
    Added,
}

/// A function of the new build shipped in the patch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchedFunction {
    /// Symbol key.
    pub name: String,
    /// Why it is included.
    pub kind: ChangeKind,
    /// Address and size of the old version (None when added).
    pub old: Option<(u64, u64)>,
    /// Address and size of the new version in the new binary.
    pub new: (u64, u64),
}

/// A static variable of the new build that needs new storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticPatch {
    /// Symbol key.
    pub name: String,
    /// Address and size in the old binary when the static existed before.
    pub old: Option<(u64, u64)>,
    /// Offset of its new storage in the data block.
    pub data_offset: u64,
    /// Its new size.
    pub size: u64,
    /// Initial bytes (hex) of the new storage: the new build's initial value.
    pub init: String,
    /// Fields copied from the old storage into the new at apply time (and back at rollback).
    pub copies: Vec<FieldCopy>,
}

/// One field carried from the old layout to the new.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldCopy {
    /// Field name ("" for a whole scalar).
    pub field: String,
    /// Offset in the old layout.
    pub old_offset: u64,
    /// Offset in the new layout.
    pub new_offset: u64,
    /// Bytes to copy.
    pub len: u64,
}

/// Frame transfer for one changed function that a thread may be running inside of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionMapping {
    /// Symbol key of the function.
    pub function: String,
    /// Entry of the old version (old vaddr).
    pub old_entry: u64,
    /// Entry of the new version (new vaddr).
    pub new_entry: u64,
    /// Parameter names of the old version, in order (for moving a thread back at rollback).
    pub old_params: Vec<Param>,
    /// Parameter names of the new version, in order.
    pub new_params: Vec<Param>,
    /// The patch author's helper compiled into the new build, if any.
    pub helper: Option<Helper>,
    /// Safe update points: call sites where old and new state correspond.
    pub points: Vec<SafePoint>,
}

/// A function parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// Name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

/// An intermediate helper: called in the moving thread with the old frame's variables (matched to
/// its parameters by name); returns 0 to let the thread enter the new function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Helper {
    /// Symbol key.
    pub name: String,
    /// Address in the new binary.
    pub new_vaddr: u64,
    /// Its parameters.
    pub params: Vec<Param>,
}

/// One entry of the semantic mapping table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SafePoint {
    /// The function called at this point.
    pub callee: String,
    /// Which call to `callee` in the function (0-based).
    pub ordinal: u32,
    /// True when the patch author declared that the call tolerates EINTR, so a thread blocked in
    /// it may be woken with EINTR to reach the point.
    pub interruptible: bool,
    /// The point in the old function.
    pub old: FramePoint,
    /// The corresponding point in the new function.
    pub new: FramePoint,
}

/// A call instruction with the frame description valid there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FramePoint {
    /// Address of the call instruction (binary vaddr).
    pub addr: u64,
    /// Length of the call instruction.
    pub call_len: u64,
    /// Canonical frame address: DWARF register number and offset.
    pub cfa: (u16, i64),
    /// Callee-saved registers saved in the frame: (DWARF register, offset from CFA).
    pub saved: Vec<(u16, i64)>,
    /// Variables live here.
    pub vars: Vec<VarLoc>,
}

/// Where a variable lives at a point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VarLoc {
    /// Variable name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Location.
    pub loc: Loc,
}

/// A DWARF location reduced to what the applier evaluates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Loc {
    /// In a register (DWARF number).
    Reg(u16),
    /// In memory at register + offset.
    Mem(u16, i64),
    /// In memory at CFA + offset.
    Cfa(i64),
    /// A known constant.
    Const(u64),
}

/// A bundle file: the payload text and its signatures.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SignedFile {
    payload: String,
    signatures: Vec<ferry_artifact::tuf::Signature>,
}

impl PatchBundle {
    /// Hex sha256 of the bundle's JSON payload, naming it in checkpoints and reports.
    pub fn id(&self) -> String {
        hex::encode(Sha256::digest(self.payload()))
    }

    fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("bundle serialises")
    }

    /// Serialises and signs the bundle with `key`.
    pub fn to_signed_bytes(&self, key: &SigningKey) -> Vec<u8> {
        let payload = String::from_utf8(self.payload()).expect("JSON is UTF-8");
        let signatures = vec![key.sign(payload.as_bytes())];
        serde_json::to_vec(&SignedFile {
            payload,
            signatures,
        })
        .expect("bundle file serialises")
    }

    /// Parses a signed bundle, checking a signature by `key` over the payload.
    pub fn from_signed_bytes(bytes: &[u8], key: &PublicKey) -> Result<PatchBundle> {
        let file: SignedFile = serde_json::from_slice(bytes)
            .map_err(|e| Error::Bundle(format!("not a Ferry patch file: {e}")))?;
        let keyid = key.key_id();
        let sig = file.signatures.iter().find(|s| s.keyid == keyid).ok_or_else(|| {
            Error::Bundle(format!(
                "no signature by key {keyid}; sign the patch with the release key"
            ))
        })?;
        key.verify(file.payload.as_bytes(), &sig.sig)
            .map_err(|e| Error::Bundle(format!("signature does not verify: {e}")))?;
        let bundle: PatchBundle = serde_json::from_str(&file.payload)
            .map_err(|e| Error::Bundle(format!("payload is malformed: {e}")))?;
        if bundle.format != BUNDLE_FORMAT {
            return Err(Error::Bundle(format!(
                "format {} is not supported (expected {BUNDLE_FORMAT})",
                bundle.format
            )));
        }
        Ok(bundle)
    }

    /// Signs and writes the bundle to `path`.
    pub fn save(&self, path: &Path, key: &SigningKey) -> Result<()> {
        std::fs::write(path, self.to_signed_bytes(key)).map_err(|e| Error::io(path, e))
    }

    /// Reads and verifies a bundle from `path`.
    pub fn load(path: &Path, key: &PublicKey) -> Result<PatchBundle> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        PatchBundle::from_signed_bytes(&bytes, key)
    }

    /// The mapping entry of function `name`.
    pub fn mapping_for(&self, name: &str) -> Option<&FunctionMapping> {
        self.mapping.iter().find(|m| m.function == name)
    }
}

/// Decodes a hex field of a bundle.
pub(crate) fn unhex(what: &str, s: &str) -> Result<Vec<u8>> {
    hex::decode(s).map_err(|e| Error::Bundle(format!("{what}: bad hex: {e}")))
}
