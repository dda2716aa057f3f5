//! The one-file form of a tree delta: magic, a JSON manifest, then the blobs it references.
//!
//! ```text
//! "FERRYTRE" | u32 LE version (1) | u64 LE manifest length | manifest (JSON) | blobs...
//! ```
//! The manifest lists the operations and the length of each blob; blobs follow in order.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use super::{TreeDelta, TreeOp};
use crate::error::{DeltaError, Result};

const MAGIC: &[u8; 8] = b"FERRYTRE";
const VERSION: u32 = 1;
/// Largest manifest accepted (bytes).
const MAX_MANIFEST: u64 = 64 << 20;

#[derive(Serialize, Deserialize)]
struct Manifest {
    ops: Vec<TreeOp>,
    blob_sizes: Vec<u64>,
}

impl TreeDelta {
    /// Writes the delta as one archive.
    pub fn write_to(&self, w: &mut impl Write) -> Result<()> {
        let manifest = Manifest {
            ops: self.ops.clone(),
            blob_sizes: self.blobs.iter().map(|b| b.len() as u64).collect(),
        };
        let json = serde_json::to_vec(&manifest)
            .map_err(|e| DeltaError::Tree(format!("encoding manifest: {e}")))?;
        let io = |e| DeltaError::stream("writing the tree delta", e);
        w.write_all(MAGIC).map_err(io)?;
        w.write_all(&VERSION.to_le_bytes()).map_err(io)?;
        w.write_all(&(json.len() as u64).to_le_bytes())
            .map_err(io)?;
        w.write_all(&json).map_err(io)?;
        for b in &self.blobs {
            w.write_all(b).map_err(io)?;
        }
        Ok(())
    }

    /// Reads an archive written by [`TreeDelta::write_to`], checking every blob reference.
    pub fn read_from(r: &mut impl Read) -> Result<TreeDelta> {
        let mut head = [0u8; 20];
        r.read_exact(&mut head)
            .map_err(|e| DeltaError::stream("tree delta header", e))?;
        if &head[..8] != MAGIC {
            return Err(DeltaError::Corrupt(
                "not a Ferry tree delta (bad magic)".into(),
            ));
        }
        let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(DeltaError::Corrupt(format!(
                "tree delta version {version} is not supported"
            )));
        }
        let len = u64::from_le_bytes(head[12..20].try_into().expect("8 bytes"));
        if len > MAX_MANIFEST {
            return Err(DeltaError::Corrupt(format!(
                "tree delta manifest of {len} bytes is too large"
            )));
        }
        let mut json = vec![0u8; len as usize];
        r.read_exact(&mut json)
            .map_err(|e| DeltaError::stream("tree delta manifest", e))?;
        let m: Manifest = serde_json::from_slice(&json)
            .map_err(|e| DeltaError::Corrupt(format!("tree delta manifest: {e}")))?;
        let mut blobs = Vec::with_capacity(m.blob_sizes.len());
        for size in m.blob_sizes {
            let mut b = Vec::new();
            r.by_ref()
                .take(size)
                .read_to_end(&mut b)
                .map_err(|e| DeltaError::stream("tree delta blob", e))?;
            if b.len() as u64 != size {
                return Err(DeltaError::Truncated {
                    what: "tree delta blob",
                });
            }
            blobs.push(b);
        }
        let delta = TreeDelta { ops: m.ops, blobs };
        for op in &delta.ops {
            if let Some(i) = op.blob()
                && i >= delta.blobs.len()
            {
                return Err(DeltaError::Corrupt(format!(
                    "operation refers to missing blob {i}"
                )));
            }
        }
        Ok(delta)
    }
}
