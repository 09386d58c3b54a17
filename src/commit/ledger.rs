//! The ledger of processed staged objects: the entries of every commit record. Kept in shards
//! by staged directory ([`super::shards`]); lakes from before shards have full checkpoints
//! every few versions, read here until the first publish converts them.

use std::collections::HashMap;
use std::io::{Read, Write};

use super::log::{LakeLog, LedgerEntry};
use crate::error::{Error, Result};
use crate::storage::Location;

/// Lakes from before shards have a full checkpoint every this many versions.
const CHECKPOINT_EVERY: u64 = 16;

fn checkpoint_path(v: u64) -> String {
    format!("_fineo/ledger/{v:020}.jsonl.gz")
}

/// Processed objects by key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ledger {
    pub entries: HashMap<String, LedgerEntry>,
}

impl Ledger {
    /// The ledger as of version `v`, at least the entries `scope` asks for.
    pub async fn load(
        lake: &Location,
        log: &LakeLog<'_>,
        v: u64,
        scope: &super::shards::Scope,
    ) -> Result<Ledger> {
        super::shards::load(lake, log, v, scope).await
    }

    /// The whole ledger as of version `v` the way lakes kept it before shards: the last full
    /// checkpoint, then the log versions after it.
    pub(super) async fn load_whole(lake: &Location, log: &LakeLog<'_>, v: u64) -> Result<Ledger> {
        let mut ledger = Ledger::default();
        let mut base = v - v % CHECKPOINT_EVERY;
        // The checkpoint of `base` may not exist yet (its publish did not finish): go back.
        loop {
            if base == 0 {
                break;
            }
            if let Some(bytes) = lake.get_opt(&checkpoint_path(base)).await? {
                ledger.read_gz(&checkpoint_path(base), &bytes)?;
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

    /// Adds the entries of a gzip JSON Lines file (a checkpoint or a shard).
    pub(super) fn read_gz(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
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

    /// The entries as gzip JSON Lines, sorted by key.
    pub(super) fn to_gz(&self) -> Result<Vec<u8>> {
        let mut keys: Vec<&String> = self.entries.keys().collect();
        keys.sort();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for k in keys {
            serde_json::to_writer(&mut gz, &self.entries[k]).expect("ledger json");
            gz.write_all(b"\n").map_err(|e| Error::io("ledger", e))?;
        }
        gz.finish().map_err(|e| Error::io("ledger", e))
    }
}
