//! The ledger of processed staged objects: the entries of every commit record, with a full
//! checkpoint every few versions so reading it does not replay the whole log.

use std::collections::HashMap;
use std::io::{Read, Write};

use bytes::Bytes;

use super::log::{LakeLog, LedgerEntry};
use crate::error::{Error, Result};
use crate::storage::Location;

/// A checkpoint is written every this many versions.
pub const CHECKPOINT_EVERY: u64 = 16;

fn checkpoint_path(v: u64) -> String {
    format!("_fineo/ledger/{v:020}.jsonl.gz")
}

/// Processed objects by key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ledger {
    pub entries: HashMap<String, LedgerEntry>,
}

impl Ledger {
    /// The ledger as of version `v`.
    pub async fn load(lake: &Location, log: &LakeLog<'_>, v: u64) -> Result<Ledger> {
        let mut ledger = Ledger::default();
        let mut base = v - v % CHECKPOINT_EVERY;
        // The checkpoint of `base` may not exist yet (its publish did not finish): go back.
        loop {
            if base == 0 {
                break;
            }
            if let Some(bytes) = lake.get_opt(&checkpoint_path(base)).await? {
                ledger.read_checkpoint(&checkpoint_path(base), &bytes)?;
                break;
            }
            base -= CHECKPOINT_EVERY;
        }
        for version in base + 1..=v {
            ledger.apply(&log.read(version).await?);
        }
        Ok(ledger)
    }

    /// Applies one version: its removed entries (objects a restore queued to be read again),
    /// then its new ones.
    pub fn apply(&mut self, record: &super::log::CommitRecord) {
        for key in &record.ledger_removed {
            self.entries.remove(key);
        }
        for e in &record.ledger {
            self.entries.insert(e.key.clone(), e.clone());
        }
    }

    fn read_checkpoint(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_string(&mut text)
            .map_err(|e| Error::metadata(path, e))?;
        for line in text.lines().filter(|l| !l.is_empty()) {
            let e: LedgerEntry =
                serde_json::from_str(line).map_err(|e| Error::metadata(path, e))?;
            self.entries.insert(e.key.clone(), e);
        }
        Ok(())
    }

    /// Writes the full ledger as the checkpoint of version `v` (when `v` is a checkpoint).
    pub async fn checkpoint(&self, lake: &Location, v: u64) -> Result<()> {
        if !v.is_multiple_of(CHECKPOINT_EVERY) {
            return Ok(());
        }
        let mut keys: Vec<&String> = self.entries.keys().collect();
        keys.sort();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for k in keys {
            serde_json::to_writer(&mut gz, &self.entries[k]).expect("ledger json");
            gz.write_all(b"\n").map_err(|e| Error::io("ledger", e))?;
        }
        let bytes = gz.finish().map_err(|e| Error::io("ledger", e))?;
        lake.put(&checkpoint_path(v), Bytes::from(bytes)).await
    }
}
