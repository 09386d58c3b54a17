//! Phase 2 for a partition whose new records all come after the records it holds (an hourly
//! run's usual case): they are appended (a typed file of their own, the index's row groups
//! copied with theirs after them, their untyped lines added to the partition's file) instead of
//! the partition being decoded, merged and rewritten, so the run costs the new records, not the
//! partition. The next run that cannot append (a catalog change, an earlier or colliding
//! record, [`MAX_APPENDS`] reached) writes the partition whole again, in one file per kind.

use std::path::Path;

use bytes::Bytes;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;

use super::external::{fetch_index, Fetched, Scratch};
use super::partition::*;
use super::read::on_rayon;
use crate::dedup::Bucket;
use crate::error::{Error, Result};
use crate::model::{PartitionKey, Rec};
use crate::write::encoder::{add_fingerprints, DiskFile, Sink};
use crate::write::index::{self, Concat, DataFile, PartitionManifest, SentNames};

/// Appends a partition takes before it is written whole again: it holds at most this many
/// typed files plus one, and its index as many row groups more.
pub const MAX_APPENDS: u32 = 16;
/// Encoded bytes of new records above which a partition is rewritten rather than appended to
/// (the append path holds them in memory, whatever the budget, so that the choice, and the
/// files, never depend on the budget).
const MAX_NEW_BYTES: u64 = 8 << 20;

/// A partition that may take its new records as an append, as far as its index tells.
pub struct Candidate {
    meta: ParquetMetaData,
    manifest: PartitionManifest,
    /// The latest timestamp it holds.
    latest: i64,
    /// Its untyped file, when it has one ([`Candidate::with_untyped`]).
    untyped: Option<Fetched>,
}

impl Candidate {
    /// Whether records starting at `first` (sorted) come after every record held.
    pub fn fits(&self, first: Option<&Rec>) -> bool {
        first.is_some_and(|r| r.ts > self.latest)
    }
}

/// Whether partition `job` may append, from its index's footer alone: its records resolve and
/// its table's columns are as the catalog has them now, its manifest sums its content, it has
/// appends left, and the new records are few enough.
pub async fn candidate(
    ctx: &PartitionCtx,
    job: &PartitionJob,
    paths: &PartitionPaths,
    own: Option<&Fetched>,
) -> Result<Option<Candidate>> {
    let Some(own) = own else { return Ok(None) };
    if job.retype || !job.sources.is_empty() || job.bucket.stored_len()? > MAX_NEW_BYTES {
        return Ok(None);
    }
    let (path, own) = (paths.index.clone(), own.clone());
    let meta = on_rayon(move || footer(&path, &own)).await??;
    let manifest = index::manifest_of(&paths.index, &meta)?;
    let (Some(latest), true) = (latest(&meta), resolves_alike(ctx, &job.key, &manifest)) else {
        return Ok(None);
    };
    if manifest.appends >= MAX_APPENDS || manifest.content.is_empty() {
        return Ok(None);
    }
    Ok(Some(Candidate {
        meta,
        manifest,
        latest,
        untyped: None,
    }))
}

impl Candidate {
    /// The candidate with its untyped file fetched, or `None` when that file is not the one
    /// its manifest names (left to a whole rewrite, which does not read it).
    pub async fn with_untyped(
        mut self,
        ctx: &PartitionCtx,
        paths: &PartitionPaths,
        scratch: &Scratch,
    ) -> Result<Option<Candidate>> {
        let Some(u) = &self.manifest.untyped else {
            return Ok(Some(self));
        };
        let share = ctx.memory_share;
        match fetch_index(&ctx.lake, &paths.untyped, share, scratch).await? {
            Some(f) if fetched_len(&f).await? == u.size => {
                self.untyped = Some(f);
                Ok(Some(self))
            }
            _ => Ok(None),
        }
    }
}

/// The footer of a fetched index.
fn footer(path: &str, own: &Fetched) -> Result<ParquetMetaData> {
    match own {
        Fetched::Mem(b) => index::read_meta(path, b),
        Fetched::Disk(p) => {
            let f = std::fs::File::open(p).map_err(|e| Error::io(p.display(), e))?;
            index::read_meta(path, &f)
        }
    }
}

/// Whether the partition's records resolve under the current catalog as when written, into a
/// table with the same columns (a column added since would leave its typed files unlike).
fn resolves_alike(ctx: &PartitionCtx, key: &PartitionKey, m: &PartitionManifest) -> bool {
    let spec = ctx.catalog.metric(&key.tenant, &key.metric);
    let columns: Vec<_> = spec
        .map(|s| {
            s.columns()
                .iter()
                .map(|(n, t)| (n.to_string(), *t))
                .collect()
        })
        .unwrap_or_default();
    let fp = ctx
        .catalog
        .resolution_fingerprint(&key.tenant, &m.names.metrics, &m.names.fields);
    spec.is_some() != m.typed.is_empty() && m.columns == columns && fp == m.resolution
}

/// The latest timestamp of an index, from its row groups' statistics.
fn latest(meta: &ParquetMetaData) -> Option<i64> {
    let mut hi = None;
    for rg in meta.row_groups() {
        match rg.columns().first()?.statistics()? {
            Statistics::Int64(s) => hi = hi.max(Some(*s.max_opt()?)),
            _ => return None,
        }
    }
    hi
}

async fn fetched_len(f: &Fetched) -> Result<u64> {
    Ok(match f {
        Fetched::Mem(b) => b.len() as u64,
        Fetched::Disk(p) => tokio::fs::metadata(p)
            .await
            .map_err(|e| Error::io(p.display(), e))?
            .len(),
    })
}

/// The new records of `bucket`, decoded and sorted by timestamp, then arrival, with the bucket
/// (joined: its records in memory).
pub async fn decode_sorted(ctx: &PartitionCtx, bucket: Bucket) -> Result<(Bucket, Vec<Rec>)> {
    let objects = ctx.objects.clone();
    on_rayon(move || {
        let bucket = bucket.joined()?;
        let new = decode_new(&bucket, &objects);
        Ok((bucket, new))
    })
    .await?
}

/// Appends `new` (sorted, every one later than the partition's records) to partition `key`.
pub async fn build(
    ctx: &PartitionCtx,
    key: &PartitionKey,
    paths: PartitionPaths,
    own: Fetched,
    c: Candidate,
    new: Vec<Rec>,
) -> Result<PartitionResult> {
    let typed_path = paths.typed_file(&ctx.tag);
    let also_fed = c.manifest.also_fed.clone();
    let mut m = merge_in_memory(ctx, key, &typed_path, Vec::new(), new, also_fed).await?;
    let Some(Body::Mem(new_index)) = m.enc.index.take() else {
        unreachable!("an append has records, encoded in memory")
    };
    let joined = Joined {
        index: paths.index.clone(),
        own,
        c,
        new_index,
        version: ctx.version,
        catalog: ctx.catalog.clone(),
        tenant: key.tenant.clone(),
    };
    let lines = m.enc.lines.take();
    let (index, lines, kept) = on_rayon(move || joined.files(lines)).await??;
    m.enc.index = Some(index);
    m.enc.lines = lines;
    let mut w = write_files(&ctx.lake, &ctx.tag, key, &paths, m.enc, typed_path).await?;
    let mut change = partition_change(key, paths, m.columns, Vec::new(), &mut w);
    change.untyped_kept = kept;
    Ok(PartitionResult {
        appended: true,
        ..PartitionResult::of(change, &w, m.stats, m.mismatches, m.observed)
    })
}

/// A partition's files joined with the appended records' own.
struct Joined {
    index: String,
    own: Fetched,
    c: Candidate,
    /// The appended records' index file.
    new_index: Bytes,
    version: u64,
    catalog: std::sync::Arc<crate::catalog::Catalog>,
    tenant: String,
}

impl Joined {
    /// The joined index and untyped file (`None` with `true` when the partition's untyped file
    /// stays as it is), a large one written beside the partition's index fetched to local disk
    /// (blocking: run on rayon).
    fn files(self, lines: Option<Body>) -> Result<(Body, Option<Body>, bool)> {
        let path = self.index.as_str();
        let new_meta = index::read_meta(path, &self.new_index)?;
        let appended = index::manifest_of(path, &new_meta)?;
        let manifest = self.manifest(&appended)?;
        let index = match &self.own {
            Fetched::Mem(old) => {
                let mut out = Concat::new(Vec::new(), &self.c.meta)?;
                out.copy(path, old, &self.c.meta)?;
                out.copy(path, &self.new_index, &new_meta)?;
                Body::Mem(Bytes::from(out.finish(&manifest)?))
            }
            Fetched::Disk(p) => {
                let old = std::fs::File::open(p).map_err(|e| Error::io(p.display(), e))?;
                let dir = p.parent().unwrap_or(Path::new("."));
                let sink = DiskFile::factory(dir).create()?;
                let mut out = Concat::new(sink, &self.c.meta)?;
                out.copy(path, &old, &self.c.meta)?;
                out.copy(path, &self.new_index, &new_meta)?;
                let file = out.finish(&manifest)?;
                let n = std::fs::metadata(&file.path)
                    .map_err(|e| Error::io(file.path.display(), e))?
                    .len();
                Body::Disk(file.path, n)
            }
        };
        let kept = lines.is_none() && self.c.untyped.is_some();
        let lines = match (self.c.untyped, lines) {
            (Some(old), Some(new)) => Some(join_lines(old, new)?),
            (None, new) => new,
            (Some(_), None) => None,
        };
        Ok((index, lines, kept))
    }

    /// The manifest of the joined partition: the files and names of both, the sum of their
    /// content, one more append.
    fn manifest(&self, appended: &PartitionManifest) -> Result<PartitionManifest> {
        let old = &self.c.manifest;
        let content = add_fingerprints(&old.content, &appended.content)
            .ok_or_else(|| Error::data_file(&self.index, "content fingerprint is not hex"))?;
        let union = |a: &[String], b: &[String]| {
            let mut v: Vec<String> = a.iter().chain(b).cloned().collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let names = SentNames {
            metrics: union(&old.names.metrics, &appended.names.metrics),
            fields: union(&old.names.fields, &appended.names.fields),
        };
        let untyped = match (&old.untyped, &appended.untyped) {
            (Some(a), Some(b)) => Some(DataFile {
                path: a.path.clone(),
                size: a.size + b.size,
                rows: a.rows + b.rows,
            }),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        Ok(PartitionManifest {
            typed: old.typed.iter().chain(&appended.typed).cloned().collect(),
            untyped,
            version: self.version,
            columns: old.columns.clone(),
            resolution: self.catalog.resolution_fingerprint(
                &self.tenant,
                &names.metrics,
                &names.fields,
            ),
            names,
            content,
            also_fed: appended.also_fed.clone(),
            appends: old.appends + 1,
        })
    }
}

/// The partition's untyped file with the appended records' lines after its own (blocking).
fn join_lines(old: Fetched, new: Body) -> Result<Body> {
    let Body::Mem(new) = new else {
        unreachable!("an append's lines are encoded in memory")
    };
    match old {
        Fetched::Mem(old) => {
            let mut all = Vec::with_capacity(old.len() + new.len());
            all.extend_from_slice(&old);
            all.extend_from_slice(&new);
            Ok(Body::Mem(Bytes::from(all)))
        }
        Fetched::Disk(path) => {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| Error::io(path.display(), e))?;
            f.write_all(&new)
                .map_err(|e| Error::io(path.display(), e))?;
            let n = f
                .metadata()
                .map_err(|e| Error::io(path.display(), e))?
                .len();
            Ok(Body::Disk(path, n))
        }
    }
}
