//! `manifest.json` of a bundle: what it holds, every file with its size and SHA-256, and the
//! manifest's own checksum (SHA-256 of its compact JSON with the checksum field empty).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::FieldType;

/// The `format` of every bundle manifest.
pub const FORMAT: &str = "fineo-bundle";

/// The newest bundle format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// A bundle's manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub tenant: String,
    /// UTC day, `YYYY-MM-DD`.
    pub date: String,
    /// The lake version the bundle reflects.
    pub lake_version: u64,
    /// fineo-batch version that wrote it.
    pub tool_version: String,
    /// Fingerprint of the lake files the bundle was made from: a backup of an unchanged day
    /// compares it and writes nothing.
    pub source: String,
    /// The tenant catalog the partitions were built with (`None`: the tenant had none).
    pub catalog: Option<CatalogRef>,
    /// Records of the day, all metrics.
    pub records: u64,
    pub min_ts: Option<i64>,
    pub max_ts: Option<i64>,
    /// By partition metric (canonical name, or the name as sent for unknown metrics).
    pub metrics: BTreeMap<String, MetricEntry>,
    /// Every file of the bundle but the manifest, sorted by path.
    pub files: Vec<FileEntry>,
    /// SHA-256 of this manifest's compact JSON with this field empty.
    #[serde(default)]
    pub manifest_sha256: String,
}

/// The catalog file of a bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogRef {
    /// Path inside the bundle.
    pub file: String,
    /// The lake's catalog version that holds this document (`None`: the lake was compacted with
    /// `--catalog DIR` and the document is in no version of its own).
    pub version: Option<u64>,
}

/// One metric (one lake partition) of the day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricEntry {
    /// The partition index: every record as sent, with its provenance.
    pub index: String,
    /// Typed Parquet files (with the Delta statistics a restore commits them with).
    pub typed: Vec<TypedEntry>,
    /// Untyped JSON Lines, gzip.
    pub untyped: Option<String>,
    /// Typed columns after `timestamp` (`None`: the metric has no typed table).
    pub columns: Option<Vec<(String, FieldType)>>,
    pub records: u64,
    pub typed_rows: u64,
    pub untyped_lines: u64,
    pub min_ts: i64,
    pub max_ts: i64,
}

/// A typed file of a metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypedEntry {
    pub file: String,
    pub rows: u64,
    /// Delta `stats` JSON.
    pub stats: String,
}

/// A file of the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Manifest {
    /// The checksum this manifest should carry.
    pub fn checksum(&self) -> String {
        let mut body = self.clone();
        body.manifest_sha256 = String::new();
        sha256_hex(&serde_json::to_vec(&body).expect("manifest json"))
    }

    /// The manifest with its checksum set, as written (pretty JSON, newline-terminated).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut sealed = self.clone();
        sealed.manifest_sha256 = self.checksum();
        let mut out = serde_json::to_vec_pretty(&sealed).expect("manifest json");
        out.push(b'\n');
        out
    }

    /// The file entry of `path`.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }

    /// Typed rows of the day, all metrics.
    pub fn typed_rows(&self) -> u64 {
        self.metrics.values().map(|m| m.typed_rows).sum()
    }

    /// Untyped lines of the day, all metrics.
    pub fn untyped_lines(&self) -> u64 {
        self.metrics.values().map(|m| m.untyped_lines).sum()
    }

    /// Bytes of the bundle's files (the manifest aside).
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            tenant: "t01".into(),
            date: "2026-01-01".into(),
            lake_version: 3,
            tool_version: "0.1.0".into(),
            source: "abc".into(),
            catalog: None,
            records: 2,
            min_ts: Some(1),
            max_ts: Some(2),
            metrics: BTreeMap::new(),
            files: vec![FileEntry {
                path: "metric=m/index.parquet".into(),
                size: 3,
                sha256: sha256_hex(b"abc"),
            }],
            manifest_sha256: String::new(),
        }
    }

    #[test]
    fn the_checksum_covers_every_field_and_survives_a_round_trip() {
        let m = manifest();
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let read: Manifest = serde_json::from_slice(&m.to_bytes()).unwrap();
        assert_eq!(read.manifest_sha256, read.checksum());
        let mut lie = read.clone();
        lie.records = 3;
        assert_ne!(lie.checksum(), read.manifest_sha256);
    }
}
