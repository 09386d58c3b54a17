//! Staging one restored tenant-day. Where the target resolves the tenant with the bundle's
//! catalog and nothing raced the restore, each partition is copied as it is: the typed file to a
//! content-named place (unreferenced until the Delta commit), the index with its footer pointed
//! at it, the untyped lines unzipped to staging. Otherwise the day is rebuilt from the bundle's
//! records under the target's catalog, merged with what racing runs committed. Partitions of the
//! day that the bundle does not hold are emptied.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;

use super::target::CurrentPartition;
use crate::bundle::{MetricEntry, Verified};
use crate::catalog::Catalog;
use crate::commit::log::{PartitionChange, TypedFile};
use crate::error::{Error, Result};
use crate::model::{date_to_day, PartitionKey, Rec};
use crate::ops::compact::on_rayon;
use crate::ops::compact::partition::{PartitionPaths, Rebuilder};
use crate::storage::Location;
use crate::write::index::{self, DataFile};

/// What every day of one restore attempt shares.
pub struct DayCtx<'a> {
    pub from: &'a Location,
    pub lake: &'a Location,
    pub tag: &'a str,
    pub version: u64,
    /// The catalog the target resolves the restored tenants with.
    pub catalog: &'a Arc<Catalog>,
}

/// What a restored day holds that its bundle does not know: records of archive objects
/// processed after the bundle was taken, by object.
#[derive(Default, Clone, Debug)]
pub struct Newer {
    /// Objects committed by runs that raced the restore (always kept) -> records.
    pub concurrent: BTreeMap<String, u64>,
    /// Other objects unknown to the bundle -> records.
    pub before: BTreeMap<String, u64>,
}

/// The day a rebuild is for.
struct RebuildDay<'a> {
    tenant: &'a str,
    day: i32,
    /// Per target metric, objects the bundle's partitions remember as having fed them besides
    /// their records'.
    also_fed: &'a BTreeMap<String, Vec<String>>,
}

/// What staging one day produced.
#[derive(Default)]
pub struct DayStaged {
    pub changes: Vec<PartitionChange>,
    pub copied: u64,
    pub rebuilt: u64,
    pub emptied: u64,
    pub records: u64,
    pub kept: u64,
    pub bytes: u64,
    pub typed_rows: u64,
    pub untyped_lines: u64,
    /// Records that lost to another with the same key when kept records were merged in.
    pub duplicates: u64,
}

impl DayCtx<'_> {
    /// The records of `current` that `bundle` does not know, split into those of `concurrent`
    /// objects and the others (only the source column of each index is read).
    pub async fn newer(
        &self,
        bundle: &Verified,
        current: &BTreeMap<String, CurrentPartition>,
        concurrent: &HashSet<String>,
    ) -> Result<Newer> {
        let mut out = Newer::default();
        if current.values().all(|c| c.index.is_none()) {
            return Ok(out);
        }
        let mut known = BTreeSet::new();
        for entry in bundle.manifest.metrics.values() {
            let bytes = self.read(bundle, &entry.index).await?;
            let path = bundle.id.file(&entry.index);
            known.extend(
                on_rayon(move || index::sources(&path, bytes))
                    .await??
                    .into_keys(),
            );
        }
        for cur in current.values() {
            let Some(path) = &cur.index else { continue };
            let Some(bytes) = self.lake.get_opt(path).await? else {
                continue;
            };
            let path = path.clone();
            for (src, n) in on_rayon(move || index::sources(&path, bytes)).await?? {
                if concurrent.contains(&src) {
                    *out.concurrent.entry(src).or_default() += n;
                } else if !known.contains(&src) {
                    *out.before.entry(src).or_default() += n;
                }
            }
        }
        Ok(out)
    }

    /// Stages `bundle` over the day's `current` partitions, keeping the records of the `keep`
    /// objects. `same_catalog`: the target resolves the tenant with the catalog the bundle was
    /// built with.
    pub async fn stage(
        &self,
        bundle: &Verified,
        current: BTreeMap<String, CurrentPartition>,
        keep: &BTreeSet<String>,
        same_catalog: bool,
    ) -> Result<DayStaged> {
        let m = &bundle.manifest;
        let day =
            date_to_day(&m.date).ok_or_else(|| Error::metadata(bundle.id.dir(), "bad date"))?;
        let mut out = DayStaged {
            records: m.records,
            ..Default::default()
        };
        let mut kept: BTreeMap<String, Vec<Rec>> = BTreeMap::new();
        if !keep.is_empty() {
            for cur in current.values() {
                let Some(path) = &cur.index else { continue };
                let Some(bytes) = self.lake.get_opt(path).await? else {
                    continue;
                };
                let path = path.clone();
                let (recs, _) = on_rayon(move || index::decode(&path, bytes)).await??;
                for r in recs
                    .into_iter()
                    .filter(|r| keep.contains(&*r.arrival.source))
                {
                    out.kept += 1;
                    let target = self
                        .catalog
                        .partition_metric(&m.tenant, &r.metric_sent)
                        .to_string();
                    kept.entry(target).or_default().push(r);
                }
            }
        }
        let copy = same_catalog
            && kept.is_empty()
            && m.metrics
                .iter()
                .all(|(metric, e)| e.columns == self.columns_of(&m.tenant, metric));
        let produced: BTreeSet<String> = if copy {
            let mut produced = BTreeSet::new();
            for (metric, entry) in &m.metrics {
                let key = PartitionKey {
                    tenant: m.tenant.clone(),
                    metric: metric.clone(),
                    day,
                };
                let change = self
                    .copy(bundle, &key, entry, current.get(metric), &mut out.bytes)
                    .await?;
                out.changes.push(change);
                out.copied += 1;
                out.typed_rows += entry.typed_rows;
                out.untyped_lines += entry.untyped_lines;
                produced.insert(metric.clone());
            }
            produced
        } else {
            let (recs, also_fed) = self.bundle_records(bundle).await?;
            let ctx = RebuildDay {
                tenant: &m.tenant,
                day,
                also_fed: &also_fed,
            };
            self.rebuild_day(ctx, recs, kept, &current, &mut out)
                .await?
        };
        for (metric, cur) in current {
            if !produced.contains(&metric) {
                out.changes.push(self.empty(cur));
                out.emptied += 1;
            }
        }
        Ok(out)
    }

    /// Every record of the bundle, from its index files, and the objects its partitions
    /// remember as having fed them besides.
    async fn bundle_records(
        &self,
        bundle: &Verified,
    ) -> Result<(Vec<Rec>, BTreeMap<String, Vec<String>>)> {
        let (mut all, mut fed) = (Vec::new(), BTreeMap::new());
        let tenant = &bundle.manifest.tenant;
        for (metric, entry) in &bundle.manifest.metrics {
            let bytes = self.read(bundle, &entry.index).await?;
            let path = bundle.id.file(&entry.index);
            let (recs, manifest) = on_rayon(move || index::decode(&path, bytes)).await??;
            all.extend(recs);
            let target = self.catalog.partition_metric(tenant, metric).to_string();
            let list: &mut Vec<String> = fed.entry(target).or_default();
            list.extend(manifest.also_fed);
        }
        Ok((all, fed))
    }

    fn rebuilder(&self) -> Rebuilder<'_> {
        Rebuilder {
            lake: self.lake,
            tag: self.tag,
            version: self.version,
            catalog: self.catalog,
            keep: crate::dedup::Keep::Latest,
        }
    }

    /// A bundle file, as it was verified.
    async fn read(&self, bundle: &Verified, file: &str) -> Result<Bytes> {
        bundle.read(self.from, file).await
    }

    /// Copies one partition from its bundle as it is.
    async fn copy(
        &self,
        bundle: &Verified,
        key: &PartitionKey,
        entry: &MetricEntry,
        cur: Option<&CurrentPartition>,
        bytes_out: &mut u64,
    ) -> Result<PartitionChange> {
        let paths = PartitionPaths::of(key);
        let current: Vec<DataFile> = cur.map(|c| c.typed.clone()).unwrap_or_default();
        let mut typed_add = Vec::new();
        let mut kept: Vec<DataFile> = Vec::new();
        for t in &entry.typed {
            let sha = &bundle.manifest.file(&t.file).expect("verified").sha256;
            let rel = format!("{}/part-r{}.parquet", paths.typed_rel, &sha[..16]);
            let bytes = self.read(bundle, &t.file).await?;
            let file = DataFile {
                path: rel.clone(),
                size: bytes.len() as u64,
                rows: t.rows,
            };
            if let Some(same) = current.iter().find(|f| f.path == rel) {
                kept.push(same.clone());
                continue;
            }
            *bytes_out += bytes.len() as u64;
            self.lake
                .put(&format!("{}/{rel}", paths.table), bytes)
                .await?;
            typed_add.push(TypedFile {
                file,
                stats: t.stats.clone(),
            });
        }
        let index_bytes = self.read(bundle, &entry.index).await?;
        let mut files: Vec<DataFile> = kept.clone();
        files.extend(typed_add.iter().map(|t| t.file.clone()));
        let (version, index_path) = (self.version, bundle.id.file(&entry.index));
        let patched = on_rayon(move || {
            let mut manifest = index_manifest(&index_path, &index_bytes)?;
            manifest.typed = files;
            manifest.version = version;
            index::with_manifest(&index_path, &index_bytes, &manifest)
        })
        .await??;
        let index_staged = PartitionPaths::staged(self.tag, key, "index.parquet");
        *bytes_out += patched.iter().map(|p| p.len() as u64).sum::<u64>();
        self.lake.put_parts(&index_staged, patched).await?;
        let untyped_staged = match &entry.untyped {
            Some(file) => {
                let gz = self.read(bundle, file).await?;
                let path = bundle.id.file(file);
                let lines = on_rayon(move || gunzip(&path, &gz)).await??;
                let staged = PartitionPaths::staged(self.tag, key, "untyped.jsonl");
                *bytes_out += lines.len() as u64;
                self.lake.put(&staged, lines).await?;
                Some(staged)
            }
            None => None,
        };
        Ok(PartitionChange {
            tenant: key.tenant.clone(),
            metric: key.metric.clone(),
            date: key.date(),
            columns: self.columns(key),
            typed_add,
            typed_remove: current.into_iter().filter(|f| !kept.contains(f)).collect(),
            untyped_staged,
            untyped_kept: false,
            untyped_path: paths.untyped,
            index_staged: Some(index_staged),
            index_path: paths.index,
        })
    }

    /// Rebuilds the day's partitions from the bundle's records (and records kept from racing
    /// runs) under the target's catalog; returns the metrics produced.
    async fn rebuild_day(
        &self,
        ctx: RebuildDay<'_>,
        recs: Vec<Rec>,
        mut kept: BTreeMap<String, Vec<Rec>>,
        current: &BTreeMap<String, CurrentPartition>,
        out: &mut DayStaged,
    ) -> Result<BTreeSet<String>> {
        let (tenant, day, also_fed) = (ctx.tenant, ctx.day, ctx.also_fed);
        let mut groups: BTreeMap<String, Vec<Rec>> = BTreeMap::new();
        for r in recs {
            let target = self
                .catalog
                .partition_metric(tenant, &r.metric_sent)
                .to_string();
            groups.entry(target).or_default().push(r);
        }
        for metric in kept.keys() {
            groups.entry(metric.clone()).or_default();
        }
        let mut produced = BTreeSet::new();
        for (metric, base) in groups {
            let key = PartitionKey {
                tenant: tenant.to_string(),
                metric: metric.clone(),
                day,
            };
            let remove = current
                .get(&metric)
                .map(|c| c.typed.clone())
                .unwrap_or_default();
            let new = kept.remove(&metric).unwrap_or_default();
            let r = self
                .rebuilder()
                .rebuild(
                    &key,
                    base,
                    new,
                    remove,
                    also_fed.get(&metric).cloned().unwrap_or_default(),
                )
                .await?;
            out.bytes += r.bytes;
            out.typed_rows += r.typed_rows;
            out.untyped_lines += r.untyped_lines;
            out.duplicates +=
                r.stats.duplicates_exact + r.stats.duplicates_conflicting + r.stats.lake_replaced;
            out.changes.push(r.change);
            out.rebuilt += 1;
            produced.insert(metric);
        }
        Ok(produced)
    }

    /// Empties a current partition the bundle does not hold.
    fn empty(&self, cur: CurrentPartition) -> PartitionChange {
        let paths = PartitionPaths::of(&cur.key);
        PartitionChange {
            tenant: cur.key.tenant.clone(),
            metric: cur.key.metric.clone(),
            date: cur.key.date(),
            columns: self.columns(&cur.key),
            typed_add: Vec::new(),
            typed_remove: cur.typed,
            untyped_staged: None,
            untyped_kept: false,
            untyped_path: paths.untyped,
            index_staged: None,
            index_path: paths.index,
        }
    }

    /// The typed table's columns under the target's catalog (`None`: not declared).
    fn columns(&self, key: &PartitionKey) -> Option<Vec<(String, crate::model::FieldType)>> {
        self.columns_of(&key.tenant, &key.metric)
    }

    fn columns_of(
        &self,
        tenant: &str,
        metric: &str,
    ) -> Option<Vec<(String, crate::model::FieldType)>> {
        self.catalog
            .metric(tenant, metric)
            .filter(|s| s.name == metric)
            .map(|s| {
                s.columns()
                    .iter()
                    .map(|(n, t)| (n.to_string(), *t))
                    .collect()
            })
    }
}

/// The manifest in an index file's footer.
fn index_manifest(path: &str, bytes: &Bytes) -> Result<index::PartitionManifest> {
    let md = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(bytes)
        .map_err(|e| Error::data_file(path, e))?;
    index::manifest_of(path, &md)
}

fn gunzip(path: &str, gz: &[u8]) -> Result<Bytes> {
    // The trailer's size (of the last member, modulo 4 GiB) sizes the buffer; deflate expands
    // at most about 1032 times, which bounds a trailer that lies.
    let trailer = gz
        .last_chunk::<4>()
        .map_or(0, |t| u32::from_le_bytes(*t) as usize);
    let capacity = trailer.max(gz.len() * 4).min(gz.len().saturating_mul(1032));
    let mut out = Vec::with_capacity(capacity);
    flate2::read::MultiGzDecoder::new(gz)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, e))?;
    Ok(Bytes::from(out))
}
