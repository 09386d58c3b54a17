//! Phase 2 for a partition whose new records reach back only into its last windows (an hourly
//! run's usual case): the windows before them are kept (their typed files, their index row
//! groups copied byte for byte, their untyped lines), and only the later windows are decoded,
//! merged with the new records and written again. When every new record comes after the
//! partition's own, nothing is decoded: the new records are appended. Either way the run costs
//! the new records and the windows they reach, not the partition. The next run that cannot
//! keep a prefix (a catalog change, a record earlier than the last window boundary, too many
//! windows to rewrite, [`MAX_APPENDS`] reached) writes the partition whole again.

use std::path::Path;

use bytes::Bytes;
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use parquet::file::statistics::Statistics;

use super::external::{fetch_index, Fetched, Scratch};
use super::files::*;
use super::partition::*;
use super::read::on_rayon;
use crate::dedup::Bucket;
use crate::error::{Error, Result};
use crate::model::{PartitionKey, Rec};
use crate::write::encoder::{record_fingerprint, DiskFile, Sink};
use crate::write::index::{self, Concat, DataFile, PartitionManifest, SentNames};

/// Appends (and tail rewrites) a partition takes before it is written whole again: each adds
/// a typed file per window it writes, so the files stay bounded.
pub const MAX_APPENDS: u32 = 16;
/// Stored records a tail rewrite decodes at most, in memory (about as many as [`MAX_NEW_BYTES`]
/// holds of new ones; whatever the budget, so that the choice, and the files, never depend on
/// it); a longer tail is left to a whole rewrite.
const MAX_TAIL_ROWS: u64 = 1 << 16;
/// Encoded bytes of new records above which a partition is rewritten rather than appended to
/// (the append path holds them in memory, whatever the budget, so that the choice, and the
/// files, never depend on the budget).
const MAX_NEW_BYTES: u64 = 8 << 20;

/// A partition that may keep a prefix of its records, as far as its index tells.
pub struct Candidate {
    meta: ParquetMetaData,
    manifest: PartitionManifest,
    /// Its untyped file, when it has one ([`Candidate::with_untyped`]).
    untyped: Option<Fetched>,
}

/// Where a partition is cut: its first `groups` index row groups and `typed` typed files are
/// kept, holding every record up to `latest`; the rest (the tail) is rewritten.
#[derive(Clone, Copy, Debug)]
pub struct Cut {
    groups: usize,
    typed: usize,
    latest: i64,
    /// Whether the tail is empty (an append).
    pub append: bool,
}

impl Candidate {
    /// Where records starting at `first` (sorted) cut the partition: after the last row group
    /// that ends a typed file (or any, when it has none) and holds only earlier records. `None`
    /// when no such group exists or the tail is longer than [`MAX_TAIL_ROWS`].
    pub fn cut(&self, first: Option<&Rec>) -> Option<Cut> {
        let first = first?.ts;
        let groups = self.meta.row_groups();
        let total: u64 = groups.iter().map(|g| g.num_rows() as u64).sum();
        let mut ends = Vec::with_capacity(self.manifest.typed.len());
        for f in &self.manifest.typed {
            ends.push(ends.last().copied().unwrap_or(0) + f.rows);
        }
        if ends.last().is_some_and(|&n| n != total) {
            return None;
        }
        let (mut rows, mut latest, mut cut) = (0u64, i64::MIN, None);
        for (g, rg) in groups.iter().enumerate() {
            rows += rg.num_rows() as u64;
            latest = latest.max(group_latest(rg)?);
            if latest >= first {
                break;
            }
            let typed = match ends.is_empty() {
                true => Some(0),
                false => ends.iter().position(|&n| n == rows).map(|i| i + 1),
            };
            if let Some(typed) = typed {
                let append = g + 1 == groups.len();
                let tail = total - rows;
                cut = (tail <= MAX_TAIL_ROWS).then_some(Cut {
                    groups: g + 1,
                    typed,
                    latest,
                    append,
                });
            }
        }
        cut
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
    if !resolves_alike(ctx, &job.key, &manifest)
        || manifest.appends >= MAX_APPENDS
        || manifest.content.is_empty()
    {
        return Ok(None);
    }
    Ok(Some(Candidate {
        meta,
        manifest,
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

/// The latest timestamp of an index row group, from its statistics.
fn group_latest(rg: &RowGroupMetaData) -> Option<i64> {
    match rg.columns().first()?.statistics()? {
        Statistics::Int64(s) => s.max_opt().copied(),
        _ => None,
    }
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

/// The new records of `bucket` (joined: its records in memory), decoded and sorted by
/// timestamp, then arrival.
pub(super) async fn decode_sorted(ctx: &PartitionCtx, bucket: Bucket) -> Result<Decoded> {
    let objects = ctx.objects.clone();
    on_rayon(move || Ok(decode_new(bucket.joined()?, &objects))).await?
}

/// Rewrites partition `key` from `cut` on: its tail (none for an append) decoded and merged
/// with `new` (sorted, every one later than the kept records), written after the kept prefix.
#[allow(clippy::too_many_arguments)]
pub async fn build(
    ctx: &PartitionCtx,
    key: &PartitionKey,
    paths: PartitionPaths,
    own: Fetched,
    c: Candidate,
    cut: Cut,
    new: Vec<Rec>,
) -> Result<PartitionResult> {
    let names = paths.typed_names(&ctx.tag);
    let also_fed = c.manifest.also_fed.clone();
    let (tail, tail_content) = match cut.append {
        true => (Vec::new(), 0),
        false => {
            let (path, own) = (paths.index.clone(), own.clone());
            let spec = ctx.catalog.metric(&key.tenant, &key.metric).cloned();
            on_rayon(move || read_tail(&path, &own, cut, spec.as_ref())).await??
        }
    };
    let lake = Lake::Resolved(tail);
    let mut m = merge_in_memory(ctx, key, &names, lake, new, also_fed).await?;
    let Some(Body::Mem(new_index)) = m.enc.index.take() else {
        unreachable!("a rewritten tail has records, encoded in memory")
    };
    let removed = c.manifest.typed[cut.typed..].to_vec();
    let joined = Joined {
        index: paths.index.clone(),
        own,
        c,
        cut,
        untyped: paths.untyped.clone(),
        tail_content,
        new_index,
        version: ctx.version,
        catalog: ctx.catalog.clone(),
        tenant: key.tenant.clone(),
    };
    let lines = m.enc.lines.take();
    let (index, lines, kept) = on_rayon(move || joined.files(lines)).await??;
    m.enc.index = Some(index);
    m.enc.lines = lines;
    let mut w = write_files(&ctx.lake, &ctx.tag, key, &paths, m.enc, &names).await?;
    let mut change = partition_change(key, paths, m.columns, removed, &mut w);
    change.untyped_kept = kept;
    Ok(PartitionResult {
        appended: cut.append,
        tail_rewritten: !cut.append,
        ..PartitionResult::of(change, &w, m.stats, m.mismatches, m.observed)
    })
}

/// The records of the partition's tail (its row groups from `cut` on), resolved, and the sum
/// of their fingerprints (blocking).
fn read_tail(
    path: &str,
    own: &Fetched,
    cut: Cut,
    spec: Option<&crate::catalog::MetricSpec>,
) -> Result<(Vec<Rec>, u128)> {
    let mut recs = match own {
        Fetched::Mem(b) => index::decode_groups(path, b.clone(), cut.groups..)?,
        Fetched::Disk(p) => {
            let f = std::fs::File::open(p).map_err(|e| Error::io(p.display(), e))?;
            index::decode_groups(path, f, cut.groups..)?
        }
    };
    resolve_all(&mut recs, spec, |_, _, _, _| {})?;
    let content = recs
        .iter()
        .fold(0u128, |s, r| s.wrapping_add(record_fingerprint(r)));
    Ok((recs, content))
}

/// A partition's kept prefix joined with its rewritten tail.
struct Joined {
    index: String,
    own: Fetched,
    c: Candidate,
    cut: Cut,
    /// The partition's untyped file.
    untyped: String,
    /// The sum of the fingerprints of the tail's records as stored.
    tail_content: u128,
    /// The rewritten tail's index file.
    new_index: Bytes,
    version: u64,
    catalog: std::sync::Arc<crate::catalog::Catalog>,
    tenant: String,
}

impl Joined {
    /// The joined index and untyped file (`None` with `true` when the partition's untyped file
    /// stays as it is), a large one written beside the partition's index fetched to local disk
    /// (blocking: run on rayon).
    fn files(mut self, lines: Option<Body>) -> Result<(Body, Option<Body>, bool)> {
        let path = self.index.as_str();
        let new_meta = index::read_meta(path, &self.new_index)?;
        let appended = index::manifest_of(path, &new_meta)?;
        let prefix = match self.c.untyped.take() {
            Some(old) => Some(self.untyped_prefix(old)?),
            None => None,
        };
        let manifest = self.manifest(&appended, prefix.as_ref())?;
        let groups = ..self.cut.groups;
        let index = match &self.own {
            Fetched::Mem(old) => {
                let mut out = Concat::new(Vec::new(), &self.c.meta)?;
                out.copy(path, old, &self.c.meta, groups)?;
                out.copy(path, &self.new_index, &new_meta, ..)?;
                Body::Mem(Bytes::from(out.finish(&manifest)?))
            }
            Fetched::Disk(p) => {
                let old = std::fs::File::open(p).map_err(|e| Error::io(p.display(), e))?;
                let dir = p.parent().unwrap_or(Path::new("."));
                let sink = DiskFile::factory(dir).create()?;
                let mut out = Concat::new(sink, &self.c.meta)?;
                out.copy(path, &old, &self.c.meta, groups)?;
                out.copy(path, &self.new_index, &new_meta, ..)?;
                let file = out.finish(&manifest)?;
                let n = std::fs::metadata(&file.path)
                    .map_err(|e| Error::io(file.path.display(), e))?
                    .len();
                Body::Disk(file.path, n)
            }
        };
        Ok(match (prefix, lines) {
            (Some(p), None) if p.whole => (index, None, true),
            (Some(p), new) if p.bytes > 0 => (index, Some(join_lines(p.file, new)?), false),
            (_, new) => (index, new, false),
        })
    }

    /// The lines of the partition's untyped file `old` that the cut keeps (those up to its
    /// latest timestamp; every one for an append).
    fn untyped_prefix(&self, old: Fetched) -> Result<Prefix> {
        let held = self.c.manifest.untyped.as_ref();
        let (size, rows) = held.map_or((0, 0), |u| (u.size, u.rows));
        if self.cut.append {
            return Ok(Prefix::whole(old, size, rows));
        }
        let (path, latest) = (self.untyped.as_str(), self.cut.latest);
        match old {
            Fetched::Mem(b) => {
                let (bytes, lines) = lines_upto(path, &b[..], latest)?;
                let file = Fetched::Mem(b.slice(..bytes as usize));
                Ok(Prefix::of(file, bytes, lines, bytes == size))
            }
            Fetched::Disk(p) => {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&p)
                    .map_err(|e| Error::io(p.display(), e))?;
                let r = std::io::BufReader::with_capacity(1 << 16, &f);
                let (bytes, lines) = lines_upto(path, r, latest)?;
                f.set_len(bytes).map_err(|e| Error::io(p.display(), e))?;
                Ok(Prefix::of(Fetched::Disk(p), bytes, lines, bytes == size))
            }
        }
    }

    /// The manifest of the joined partition: the kept files and the tail's, the names of both,
    /// its content (the tail's as stored taken out, the rewritten tail's added), one more
    /// append.
    fn manifest(
        &self,
        appended: &PartitionManifest,
        prefix: Option<&Prefix>,
    ) -> Result<PartitionManifest> {
        let old = &self.c.manifest;
        let hex = |s: &str| u128::from_str_radix(s, 16).ok();
        let (Some(held), Some(added)) = (hex(&old.content), hex(&appended.content)) else {
            return Err(Error::data_file(
                &self.index,
                "content fingerprint is not hex",
            ));
        };
        let content = held.wrapping_sub(self.tail_content).wrapping_add(added);
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
        let kept = prefix.filter(|p| p.bytes > 0).map(|p| DataFile {
            path: old
                .untyped
                .as_ref()
                .map_or_else(Default::default, |u| u.path.clone()),
            size: p.bytes,
            rows: p.lines,
        });
        let untyped = match (kept, &appended.untyped) {
            (Some(a), Some(b)) => Some(DataFile {
                path: a.path,
                size: a.size + b.size,
                rows: a.rows + b.rows,
            }),
            (a, b) => a.or_else(|| b.clone()),
        };
        let typed = old.typed[..self.cut.typed].iter().chain(&appended.typed);
        Ok(PartitionManifest {
            typed: typed.cloned().collect(),
            untyped,
            version: self.version,
            columns: old.columns.clone(),
            resolution: self.catalog.resolution_fingerprint(
                &self.tenant,
                &names.metrics,
                &names.fields,
            ),
            names,
            content: format!("{content:032x}"),
            also_fed: appended.also_fed.clone(),
            appends: old.appends + 1,
        })
    }
}

/// The kept lines of a partition's untyped file: the file cut to them, their bytes and count,
/// and whether they are the whole file.
struct Prefix {
    file: Fetched,
    bytes: u64,
    lines: u64,
    whole: bool,
}

impl Prefix {
    fn of(file: Fetched, bytes: u64, lines: u64, whole: bool) -> Self {
        Prefix {
            file,
            bytes,
            lines,
            whole,
        }
    }

    fn whole(file: Fetched, bytes: u64, lines: u64) -> Self {
        Prefix::of(file, bytes, lines, true)
    }
}

/// Bytes and count of the leading lines of an untyped file (`path`, sorted by timestamp) whose
/// timestamp is at most `latest`.
fn lines_upto(path: &str, mut r: impl std::io::BufRead, latest: i64) -> Result<(u64, u64)> {
    let (mut bytes, mut lines, mut line) = (0u64, 0u64, Vec::new());
    loop {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok((bytes, lines));
        }
        let ts = line_ts(&line).ok_or_else(|| {
            Error::data_file(
                path,
                format!("line {} does not start with its timestamp", lines + 1),
            )
        })?;
        if ts > latest {
            return Ok((bytes, lines));
        }
        bytes += n as u64;
        lines += 1;
    }
}

/// The timestamp an untyped line starts with (`{"timestamp":<ms>`).
fn line_ts(line: &[u8]) -> Option<i64> {
    let rest = line.strip_prefix(b"{\"timestamp\":")?;
    let end = rest
        .iter()
        .position(|&b| b != b'-' && !b.is_ascii_digit())
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// The kept lines of the partition's untyped file with the tail's after them (blocking).
fn join_lines(old: Fetched, new: Option<Body>) -> Result<Body> {
    let new = match new {
        Some(Body::Mem(new)) => new,
        None => Bytes::new(),
        Some(Body::Disk(..)) => unreachable!("a tail's lines are encoded in memory"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untyped_line_starts_with_its_timestamp() {
        assert_eq!(
            line_ts(b"{\"timestamp\":1767225600000,\"fw\":\"v2\"}\n"),
            Some(1767225600000)
        );
        assert_eq!(line_ts(b"{\"timestamp\":-5}\n"), Some(-5));
        assert_eq!(line_ts(b"{\"fw\":\"v2\",\"timestamp\":1}\n"), None);
        assert_eq!(line_ts(b"{\"timestamp\":}\n"), None);
    }

    #[test]
    fn the_kept_lines_end_before_the_first_later_timestamp() {
        let text = b"{\"timestamp\":1,\"a\":\"x\"}\n{\"timestamp\":5}\n{\"timestamp\":9}\n";
        assert_eq!(lines_upto("u", &text[..], 0).unwrap(), (0, 0));
        assert_eq!(lines_upto("u", &text[..], 5).unwrap(), (40, 2));
        assert_eq!(lines_upto("u", &text[..], 8).unwrap(), (40, 2));
        assert_eq!(lines_upto("u", &text[..], 9).unwrap(), (56, 3));
        let bad = b"{\"timestamp\":1}\nnot json\n";
        let err = lines_upto("untyped/x.jsonl", &bad[..], 9)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("untyped/x.jsonl") && err.contains("line 2"),
            "{err}"
        );
    }
}
