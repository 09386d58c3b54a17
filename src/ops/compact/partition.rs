//! Phase 2 of compact: for one touched partition, read what the lake holds, merge it with the
//! new records, and write the new partition files (typed Parquet in place but unreferenced,
//! untyped and index staged) for the commit to reference.

use std::sync::Arc;

use bytes::Bytes;

use super::read::on_rayon;
use crate::commit::log::{PartitionChange, TypedFile};
use crate::dedup::{codec, merge, Bucket, Keep, MergeStats};
use crate::error::Result;
use crate::model::{PartitionKey, Rec};
use crate::names;
use crate::storage::Location;
use crate::write::index::{self, DataFile, Entry, PartitionManifest};
use crate::write::typed::{self, Columns};
use crate::write::untyped;

/// What one partition contributes to the run.
pub struct PartitionResult {
    pub change: PartitionChange,
    pub stats: MergeStats,
    pub typed_rows: u64,
    pub untyped_lines: u64,
    pub bytes_written: u64,
}

/// Shared inputs of phase 2.
pub struct PartitionCtx {
    pub lake: Location,
    pub objects: Arc<Vec<(Arc<str>, i64)>>,
    pub keep: Keep,
    /// Deterministic run tag used in file names.
    pub tag: String,
    pub version: u64,
}

/// Where a partition's files live, relative to the lake.
pub struct PartitionPaths {
    pub table: String,
    pub typed_rel: String,
    pub untyped: String,
    pub index: String,
}

impl PartitionPaths {
    /// Paths of a partition.
    pub fn of(key: &PartitionKey) -> Self {
        let dir = names::table_dir(&key.tenant, &key.metric);
        let date = key.date();
        PartitionPaths {
            table: format!("typed/{dir}"),
            typed_rel: format!("date={date}"),
            untyped: format!("untyped/{dir}/date={date}/part-00000.jsonl"),
            index: format!("_fineo/index/{dir}/date={date}.parquet"),
        }
    }
}

/// Reads, merges and writes one partition.
pub async fn build(
    ctx: &PartitionCtx,
    key: PartitionKey,
    bucket: Bucket,
    columns: Option<Columns>,
) -> Result<PartitionResult> {
    let paths = PartitionPaths::of(&key);
    let (lake_recs, manifest) = read_lake_partition(&ctx.lake, &paths).await?;
    let objects = ctx.objects.clone();
    let keep = ctx.keep;
    let (winners, stats) = on_rayon(move || {
        let mut new = Vec::with_capacity(bucket.count as usize);
        codec::decode_all(
            &bucket.buf,
            &objects,
            &mut codec::Interner::default(),
            &mut new,
        );
        merge(lake_recs, new, keep)
    })
    .await?;
    let staging = format!("_fineo/staging/{}", ctx.tag);
    let rel_name = names::table_dir(&key.tenant, &key.metric);
    let date = key.date();
    let known = columns.is_some();
    let typed_path = format!("{}/part-{}-00000.parquet", paths.typed_rel, ctx.tag);
    let (typed_bytes, stats_json, lines, index_bytes, winners_len, untyped_count) = {
        let columns = columns.clone();
        let typed_path = typed_path.clone();
        let version = ctx.version;
        on_rayon(move || encode_partition(&winners, columns.as_ref(), &typed_path, version))
            .await??
    };
    let mut bytes_written = 0u64;
    let mut typed_add = Vec::new();
    if let (Some(bytes), Some(stats_json)) = (typed_bytes, stats_json) {
        bytes_written += bytes.len() as u64;
        let path = typed_path;
        typed_add.push(TypedFile {
            file: DataFile {
                path: path.clone(),
                size: bytes.len() as u64,
                rows: winners_len,
            },
            stats: stats_json,
        });
        ctx.lake
            .put(&format!("{}/{}", paths.table, path), bytes)
            .await?;
    }
    let untyped_staged = if untyped_count > 0 {
        let p = format!("{staging}/untyped/{rel_name}/date={date}.jsonl");
        bytes_written += lines.len() as u64;
        ctx.lake.put(&p, Bytes::from(lines)).await?;
        Some(p)
    } else {
        None
    };
    let index_staged = format!("{staging}/index/{rel_name}/date={date}.parquet");
    bytes_written += index_bytes.len() as u64;
    ctx.lake.put(&index_staged, index_bytes).await?;
    let change = PartitionChange {
        tenant: key.tenant.clone(),
        metric: key.metric.clone(),
        date,
        columns: columns.map(|c| c.0.iter().map(|(n, t)| (n.to_string(), *t)).collect()),
        typed_add,
        typed_remove: manifest.typed,
        untyped_staged,
        untyped_path: paths.untyped,
        index_staged,
        index_path: paths.index,
    };
    Ok(PartitionResult {
        change,
        stats,
        typed_rows: if known { winners_len } else { 0 },
        untyped_lines: untyped_count,
        bytes_written,
    })
}

type Encoded = (Option<Bytes>, Option<String>, Vec<u8>, Bytes, u64, u64);

/// CPU part of writing: Parquet + stats, JSON lines, index.
fn encode_partition(
    winners: &[Rec],
    columns: Option<&Columns>,
    typed_path: &str,
    version: u64,
) -> Result<Encoded> {
    let known = columns.is_some();
    let (typed_bytes, stats) = match columns {
        Some(cols) if !winners.is_empty() => {
            let batch = typed::to_batch(cols, winners)?;
            (
                Some(typed::to_parquet(&batch)?),
                Some(typed::delta_stats(&batch)),
            )
        }
        _ => (None, None),
    };
    let mut lines = Vec::new();
    let mut count = 0u64;
    for r in winners.iter().filter(|r| untyped::needs_line(r, known)) {
        untyped::write_line(&mut lines, r);
        count += 1;
    }
    let entries: Vec<Entry> = winners
        .iter()
        .map(|r| Entry {
            ts: r.ts,
            arrival: r.arrival.clone(),
            hash: r.hash,
        })
        .collect();
    let manifest = PartitionManifest {
        typed: match &typed_bytes {
            Some(b) => vec![DataFile {
                path: typed_path.to_string(),
                size: b.len() as u64,
                rows: winners.len() as u64,
            }],
            None => vec![],
        },
        untyped: None,
        version,
    };
    let manifest = PartitionManifest {
        untyped: (count > 0).then(|| DataFile {
            path: "part-00000.jsonl".into(),
            size: lines.len() as u64,
            rows: count,
        }),
        ..manifest
    };
    let index_bytes = index::encode(&entries, &manifest)?;
    Ok((
        typed_bytes,
        stats,
        lines,
        index_bytes,
        winners.len() as u64,
        count,
    ))
}

/// The lake's current records of a partition (from its index, typed files and untyped file).
async fn read_lake_partition(
    lake: &Location,
    paths: &PartitionPaths,
) -> Result<(Vec<Rec>, PartitionManifest)> {
    let Some(bytes) = lake.get_opt(&paths.index).await? else {
        return Ok((Vec::new(), PartitionManifest::default()));
    };
    let (entries, manifest) = index::decode(&paths.index, bytes)?;
    let mut typed_rows = std::collections::HashMap::new();
    for f in &manifest.typed {
        let p = format!("{}/{}", paths.table, f.path);
        let b = lake.get_opt(&p).await?.ok_or_else(|| {
            crate::error::Error::data_file(
                &p,
                "typed file listed in the partition index is missing",
            )
        })?;
        typed_rows.extend(typed::read_parquet(&p, b)?);
    }
    let mut untyped_rows = match &manifest.untyped {
        Some(_) => match lake.get_opt(&paths.untyped).await? {
            Some(b) => untyped::read_lines(&paths.untyped, &b)?,
            None => {
                return Err(crate::error::Error::data_file(
                    &paths.untyped,
                    "untyped file listed in the partition index is missing",
                ))
            }
        },
        None => Default::default(),
    };
    let recs = entries
        .into_iter()
        .map(|e| Rec {
            ts: e.ts,
            typed: typed_rows.remove(&e.ts).unwrap_or_default(),
            untyped: untyped_rows.remove(&e.ts).unwrap_or_default(),
            arrival: e.arrival,
            hash: e.hash,
        })
        .collect();
    Ok((recs, manifest))
}
