//! The lake log: one JSON commit record per run under `_fineo/log/`, created with a
//! conditional put. Creating version N+1 is the single atomic step of a run.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::{Created, Location};
use crate::write::index::DataFile;
use crate::write::typed::Columns;

const LOG_DIR: &str = "_fineo/log";
const HINT: &str = "_fineo/_last.json";

/// A staged object the run processed (the ledger entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub key: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    pub delivery_ms: i64,
    /// The lake version that last read it (its commit names the file of what it fed).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A typed data file with its Delta statistics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypedFile {
    #[serde(flatten)]
    pub file: DataFile,
    pub stats: String,
}

/// What a run changed in one partition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionChange {
    pub tenant: String,
    pub metric: String,
    pub date: String,
    /// Table columns after `timestamp` when the metric is declared (typed table exists).
    pub columns: Option<Vec<(String, crate::model::FieldType)>>,
    pub typed_add: Vec<TypedFile>,
    pub typed_remove: Vec<DataFile>,
    /// Staged new untyped file, `None` when the partition has no untyped lines now (or keeps
    /// its file, `untyped_kept`).
    pub untyped_staged: Option<String>,
    /// The partition's untyped file stays as it is (records were appended, none untyped).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub untyped_kept: bool,
    /// The partition's untyped file (fixed name, replaced on publish).
    pub untyped_path: String,
    /// Staged new partition index (`None`: the partition is now empty), and where it goes.
    pub index_staged: Option<String>,
    pub index_path: String,
}

impl PartitionChange {
    /// The table columns as [`Columns`].
    pub fn table_columns(&self) -> Option<Columns> {
        self.columns.as_ref().map(|c| {
            Columns(
                c.iter()
                    .map(|(n, t)| (std::sync::Arc::from(n.as_str()), *t))
                    .collect(),
            )
        })
    }
}

/// A staged file copied to its final place on publish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedCopy {
    pub staged: String,
    pub path: String,
}

/// One committed run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommitRecord {
    pub version: u64,
    pub run_id: String,
    /// Deterministic name part of every file the run wrote.
    pub tag: String,
    pub committed_ms: i64,
    pub ledger: Vec<LedgerEntry>,
    pub partitions: Vec<PartitionChange>,
    pub errors: Vec<StagedCopy>,
    /// Other staged files: schema proposals, the applied catalog.
    #[serde(default)]
    pub files: Vec<StagedCopy>,
    /// Tables whose columns change with the catalog even where no partition is rewritten.
    #[serde(default)]
    pub schemas: Vec<TableSchema>,
    /// Staged files put at their place only where nothing is yet (never overwritten): catalog
    /// versions a restore brings to a lake that has none for the tenant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub creates: Vec<StagedCopy>,
    /// Ledger entries removed: archive objects a restore queued to be read again by the next
    /// compaction (their records in the restored days were replaced).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ledger_removed: Vec<String>,
    /// The file of what the objects this run read fed ([`super::fed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fed: Option<String>,
    /// Where the next compaction's listing of its staged location may start (set by
    /// compactions; [`super::shards`] carries it from version to version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<StagedWatermark>,
}

/// The greatest key a compaction has read from a staged location so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedWatermark {
    /// The staged location's URL.
    pub staged: String,
    pub key: String,
}

/// The columns a typed table must have after a version (applied only to existing tables).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableSchema {
    pub tenant: String,
    pub metric: String,
    pub columns: Vec<(String, crate::model::FieldType)>,
}

/// Path of a log version.
fn version_path(v: u64) -> String {
    format!("{LOG_DIR}/{v:020}.json")
}

fn published_path(v: u64) -> String {
    format!("{LOG_DIR}/{v:020}.published")
}

/// Access to the lake log.
pub struct LakeLog<'a> {
    lake: &'a Location,
}

impl<'a> LakeLog<'a> {
    /// The log of a lake.
    pub fn new(lake: &'a Location) -> Self {
        LakeLog { lake }
    }

    /// The latest committed version (0 when the lake has none).
    pub async fn latest(&self) -> Result<u64> {
        let mut v = match self.lake.get_opt(HINT).await? {
            Some(b) => serde_json::from_slice::<serde_json::Value>(&b)
                .ok()
                .and_then(|j| j["version"].as_u64())
                .unwrap_or(0),
            None => self.list_latest().await?,
        };
        while self.lake.exists(&version_path(v + 1)).await? {
            v += 1;
        }
        Ok(v)
    }

    async fn list_latest(&self) -> Result<u64> {
        let mut best = 0;
        for meta in self.lake.list(LOG_DIR).await? {
            let rel = self.lake.relative(&meta.location);
            if let Some(v) = rel
                .strip_prefix("_fineo/log/")
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                best = best.max(v);
            }
        }
        Ok(best)
    }

    /// The latest version once it is published: a lake that is only read waits for a run
    /// finishing its publish (up to a minute), never publishes itself.
    pub async fn latest_published(&self) -> Result<u64> {
        for _ in 0..60 {
            let v = self.latest().await?;
            if self.is_published(v).await? {
                return Ok(v);
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        Err(Error::Unpublished {
            version: self.latest().await?,
        })
    }

    /// Reads one version.
    pub async fn read(&self, v: u64) -> Result<CommitRecord> {
        let path = version_path(v);
        let bytes = self
            .lake
            .get_opt(&path)
            .await?
            .ok_or_else(|| Error::metadata(&path, "missing log version"))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::metadata(&path, e))
    }

    /// Tries to create version `record.version`; `false` when another run took it.
    pub async fn create(&self, record: &CommitRecord) -> Result<bool> {
        let bytes = serde_json::to_vec_pretty(record).expect("commit json");
        let created = self
            .lake
            .put_create(&version_path(record.version), Bytes::from(bytes))
            .await?;
        Ok(created == Created::Yes)
    }

    /// Whether version `v` was committed.
    pub async fn exists(&self, v: u64) -> Result<bool> {
        self.lake.exists(&version_path(v)).await
    }

    /// Whether version `v` was fully published.
    pub async fn is_published(&self, v: u64) -> Result<bool> {
        Ok(v == 0 || self.lake.exists(&published_path(v)).await?)
    }

    /// Marks version `v` published and moves the hint forward.
    pub async fn mark_published(&self, v: u64) -> Result<()> {
        self.lake
            .put(&published_path(v), Bytes::from_static(b"{}"))
            .await?;
        let hint = serde_json::json!({ "version": v }).to_string();
        self.lake.put(HINT, Bytes::from(hint)).await
    }
}
