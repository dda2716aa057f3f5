//! The checkpoint taken when a patch is applied: everything needed to undo it.

use crate::bundle::{FieldCopy, FunctionMapping};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// State saved by [`crate::apply()`] and consumed by [`crate::rollback()`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The patched process.
    pub pid: i32,
    /// Id of the applied bundle.
    pub bundle_id: String,
    /// Load bias of the executable.
    pub bias: u64,
    /// Link-time address of the old binary's entry point (scratch for injected system calls).
    pub old_entry: u64,
    /// Runtime address and size of the code block.
    pub code: (u64, u64),
    /// New-binary address that the code block's start corresponds to.
    pub code_base_vaddr: u64,
    /// Runtime address and size of the data block.
    pub data: (u64, u64),
    /// Redirected function entries.
    pub entries: Vec<EntryPatch>,
    /// Transformed statics.
    pub statics: Vec<StaticState>,
    /// Mapping table of the bundle (to move threads back at rollback).
    pub mapping: Vec<FunctionMapping>,
    /// Ranges (new-binary vaddr, size, name) of every function in the code block.
    pub new_functions: Vec<(u64, u64, String)>,
}

/// An overwritten function entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryPatch {
    /// Function.
    pub function: String,
    /// Runtime address.
    pub addr: u64,
    /// Original bytes, hex.
    pub original: String,
}

/// A static moved to new storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticState {
    /// Static.
    pub name: String,
    /// Runtime address of the old storage.
    pub old_addr: u64,
    /// Runtime address of the new storage.
    pub new_addr: u64,
    /// Old storage contents when the patch was applied, hex.
    pub old_bytes: String,
    /// Fields carried over.
    pub copies: Vec<FieldCopy>,
}

impl Checkpoint {
    /// Default place of the checkpoint of process `pid`.
    pub fn default_path(pid: i32) -> PathBuf {
        std::env::temp_dir().join("ferry-livepatch").join(format!("{pid}.checkpoint.json"))
    }

    /// Writes the checkpoint to `path` (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_vec_pretty(self).expect("checkpoint serialises");
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    /// Reads a checkpoint written by [`Checkpoint::save`].
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_slice(&text).map_err(|e| Error::Checkpoint(format!("{}: {e}", path.display())))
    }

    /// Runtime address of new-binary address `vaddr` inside the code block.
    pub fn code_rt(&self, vaddr: u64) -> u64 {
        self.code.0 + (vaddr - self.code_base_vaddr)
    }
}
