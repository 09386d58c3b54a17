//! Phase 2 for a partition larger than its share of the memory budget: new records sorted in
//! runs on local disk, the lake's records read from its index batch by batch, all merged k
//! ways and encoded as they come, so memory holds a block of records, not the partition. The
//! files are the bytes the in-memory merge writes.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use futures::StreamExt;
use object_store::ObjectStoreExt;
use tokio::io::AsyncWriteExt;

use super::files::*;
use super::partition::*;
use super::read::on_rayon;
use crate::catalog::{Catalog, MetricSpec};
use crate::dedup::codec::{self, Interner};
use crate::dedup::merge::Merger;
use crate::dedup::runs::{write_run, KWay, NewRun, RunReader, SortedSource};
use crate::error::{Error, Result};
use crate::model::{FastMap, PartitionKey, Rec};
use crate::resolve::Resolver;
use crate::schema::propose::{observe_resolved, MetricObs};
use crate::storage::Location;
use crate::write::encoder::{DiskFile, PartitionEncoder, TypedNames, PUSH_ROWS};
use crate::write::index::{self, PartitionManifest};
use crate::write::typed::Columns;

/// Winners encoded per push: as many as the in-memory merge pushes, so the files are the same.
const WINNERS_PER_PUSH: usize = PUSH_ROWS;
/// Index rows decoded at a time.
const INDEX_BATCH_ROWS: usize = 8192;

/// A partition's local scratch directory, made on first use and removed with it.
#[derive(Default)]
pub struct Scratch(OnceLock<tempfile::TempDir>);

impl Scratch {
    pub fn path(&self) -> Result<&Path> {
        if self.0.get().is_none() {
            let dir = tempfile::Builder::new()
                .prefix("fineo-merge-")
                .tempdir()
                .map_err(|e| Error::io("merge scratch dir", e))?;
            let _ = self.0.set(dir);
        }
        Ok(self.0.get().expect("set above").path())
    }
}

/// A lake index as fetched: in memory, or on local disk when larger than the memory share.
#[derive(Clone)]
pub enum Fetched {
    Mem(bytes::Bytes),
    Disk(PathBuf),
}

/// Fetches the index at `rel` (`None` when there is none), to local disk when its size is over
/// `limit` bytes (known from the response before its body is read).
pub async fn fetch_index(
    lake: &Location,
    rel: &str,
    limit: usize,
    scratch: &Scratch,
) -> Result<Option<Fetched>> {
    let path = lake.path(rel);
    let got = match lake.store().get(&path).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::store(&path, e)),
    };
    if got.meta.size as usize <= limit {
        let bytes = got.bytes().await.map_err(|e| Error::store(&path, e))?;
        return Ok(Some(Fetched::Mem(bytes)));
    }
    let file = scratch.path()?.join(format!(
        "lake-{:016x}.parquet",
        xxhash_rust::xxh3::xxh3_64(rel.as_bytes())
    ));
    let mut out = tokio::fs::File::create(&file)
        .await
        .map_err(|e| Error::io(file.display(), e))?;
    let mut body = got.into_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::store(&path, e))?;
        out.write_all(&chunk)
            .await
            .map_err(|e| Error::io(file.display(), e))?;
    }
    out.flush()
        .await
        .map_err(|e| Error::io(file.display(), e))?;
    Ok(Some(Fetched::Disk(file)))
}

/// The lake's records of one index that belong to the partition, resolved, in timestamp order.
struct LakeSource {
    path: String,
    reader: Option<parquet::arrow::arrow_reader::ParquetRecordBatchReader>,
    ready: VecDeque<Rec>,
    names: Interner,
    keep: Belongs,
    spec: Option<MetricSpec>,
    /// Records taken from this index.
    taken: Arc<AtomicU64>,
}

/// Which lake records belong to the partition under the current catalog.
#[derive(Clone)]
pub(super) struct Belongs {
    catalog: Arc<Catalog>,
    key: PartitionKey,
}

impl Belongs {
    pub(super) fn new(ctx: &PartitionCtx, key: &PartitionKey) -> Self {
        Belongs {
            catalog: ctx.catalog.clone(),
            key: key.clone(),
        }
    }

    pub(super) fn test(&self, r: &Rec) -> bool {
        self.catalog
            .partition_metric(&self.key.tenant, &r.metric_sent)
            == self.key.metric
    }
}

impl LakeSource {
    /// Opens a fetched index; returns it with the index's manifest.
    fn open(
        path: &str,
        fetched: Fetched,
        keep: Belongs,
        spec: Option<MetricSpec>,
        taken: Arc<AtomicU64>,
    ) -> Result<(Self, PartitionManifest)> {
        let mut src = LakeSource {
            path: path.to_string(),
            reader: None,
            ready: VecDeque::new(),
            names: Interner::default(),
            keep,
            spec,
            taken,
        };
        let manifest = match fetched {
            Fetched::Mem(bytes) => {
                let (recs, manifest) = index::decode(path, bytes)?;
                src.take(recs)?;
                manifest
            }
            Fetched::Disk(file) => {
                let f = std::fs::File::open(&file).map_err(|e| Error::io(file.display(), e))?;
                let (manifest, reader) = index::open_local(path, f, INDEX_BATCH_ROWS)?;
                src.reader = Some(reader);
                manifest
            }
        };
        Ok((src, manifest))
    }

    fn take(&mut self, mut recs: Vec<Rec>) -> Result<()> {
        recs.retain(|r| self.keep.test(r));
        resolve_all(&mut recs, self.spec.as_ref(), |_, _, _, _| {})?;
        self.taken.fetch_add(recs.len() as u64, Ordering::Relaxed);
        self.ready.extend(recs);
        Ok(())
    }
}

impl SortedSource for LakeSource {
    fn next_rec(&mut self) -> Result<Option<(Rec, bool)>> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Ok(Some((r, false)));
            }
            let Some(batch) = self.reader.as_mut().and_then(|r| r.next()) else {
                return Ok(None);
            };
            let batch = batch.map_err(|e| Error::data_file(&self.path, e))?;
            let mut recs = Vec::with_capacity(batch.num_rows());
            index::decode_rows(&self.path, &batch, &mut self.names, &mut recs)?;
            self.take(recs)?;
        }
    }
}

/// The lake's side of an external merge: the partition's own index and those of the
/// partitions whose records move here.
pub struct LakeInputs {
    pub own: Option<Fetched>,
    pub moved: Vec<(String, Fetched)>,
}

/// Builds a partition through sorted runs on disk (see the module doc).
pub async fn build(
    ctx: &PartitionCtx,
    job: PartitionJob,
    lake: LakeInputs,
    scratch: Scratch,
) -> Result<PartitionResult> {
    let key = job.key.clone();
    let paths = PartitionPaths::of(&key);
    let spec = ctx.catalog.metric(&key.tenant, &key.metric).cloned();
    let columns = spec.as_ref().map(|s| Columns(s.columns()));
    let names = paths.typed_names(&ctx.tag);
    let dir = scratch.path()?.to_path_buf();
    let merge = ExternalMerge {
        dir,
        objects: ctx.objects.clone(),
        catalog: ctx.catalog.clone(),
        key: key.clone(),
        index_path: paths.index.clone(),
        spec,
        columns: columns.clone(),
        names: names.clone(),
        version: ctx.version,
        keep: ctx.keep,
        proposals: ctx.proposals,
        block: ctx.memory_share,
    };
    let retype = job.retype;
    let rebuilt = retype || !job.sources.is_empty();
    let bucket = job.bucket;
    let done = on_rayon(move || merge.run(bucket, lake, retype)).await??;
    let mut w = write_files(&ctx.lake, &ctx.tag, &key, &paths, done.enc, &names).await?;
    drop(scratch);
    let change = partition_change(&key, paths, columns, done.manifest.typed, &mut w);
    Ok(PartitionResult {
        rebuilt,
        retyped: done.retyped,
        on_disk: true,
        ..PartitionResult::of(change, &w, done.stats, done.mismatches, done.observed)
    })
}

/// What the CPU side of an external merge needs.
struct ExternalMerge {
    dir: PathBuf,
    objects: Arc<Vec<(Arc<str>, i64)>>,
    catalog: Arc<Catalog>,
    key: PartitionKey,
    index_path: String,
    spec: Option<MetricSpec>,
    columns: Option<Columns>,
    names: TypedNames,
    version: u64,
    keep: crate::dedup::Keep,
    proposals: bool,
    /// Bytes of encoded new records sorted per run.
    block: usize,
}

/// What an external merge produced.
struct Done {
    enc: Encoded,
    stats: crate::dedup::MergeStats,
    manifest: PartitionManifest,
    mismatches: Vec<(Arc<str>, u64)>,
    observed: Option<MetricObs>,
    retyped: u64,
}

impl ExternalMerge {
    fn run(self, bucket: crate::dedup::Bucket, lake: LakeInputs, retype: bool) -> Result<Done> {
        let belongs = Belongs {
            catalog: self.catalog.clone(),
            key: self.key.clone(),
        };
        let (own_count, moved_count) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut sources: Vec<Box<dyn SortedSource>> = Vec::new();
        let mut manifest = PartitionManifest::default();
        if let Some(f) = lake.own {
            let (src, m) = LakeSource::open(
                &self.index_path,
                f,
                belongs.clone(),
                self.spec.clone(),
                own_count.clone(),
            )?;
            manifest = m;
            sources.push(Box::new(src));
        }
        for (path, f) in lake.moved {
            let spec = self.spec.clone();
            let (src, _) = LakeSource::open(&path, f, belongs.clone(), spec, moved_count.clone())?;
            sources.push(Box::new(src));
        }
        for run in self.sort_runs(bucket)? {
            sources.push(Box::new(NewRun(RunReader::open(&run)?)));
        }
        let (enc, stats, mismatches, observed) = self.merge(sources, &manifest.also_fed)?;
        let moved = moved_count.load(Ordering::Relaxed);
        let retyped = match retype {
            true => own_count.load(Ordering::Relaxed) + moved,
            false => moved,
        };
        Ok(Done {
            enc,
            stats,
            manifest,
            mismatches,
            observed,
            retyped,
        })
    }

    /// The new records in runs of about `block` encoded bytes, each sorted by timestamp and
    /// arrival, on disk.
    fn sort_runs(&self, bucket: crate::dedup::Bucket) -> Result<Vec<PathBuf>> {
        let mut runs = Vec::new();
        let mut names = Interner::default();
        bucket.blocks(self.block.max(1), |block| {
            if block.is_empty() {
                return Ok(());
            }
            let mut recs = Vec::new();
            let block = bytes::Bytes::copy_from_slice(block);
            codec::decode_all(&block, &self.objects, &mut names, &mut recs);
            crate::dedup::merge::sort_new(&mut recs);
            let path = self.dir.join(format!("run-{}", runs.len()));
            write_run(&path, &recs)?;
            runs.push(path);
            Ok(())
        })?;
        Ok(runs)
    }

    /// Merges every source and encodes the winners as they come (on a thread of their own, so
    /// one partition keeps two cores busy); new records are resolved (and observed) in merge
    /// order, the order the in-memory merge resolves them in.
    #[allow(clippy::type_complexity)]
    fn merge(
        &self,
        sources: Vec<Box<dyn SortedSource>>,
        prev_fed: &[String],
    ) -> Result<(
        Encoded,
        crate::dedup::MergeStats,
        Vec<(Arc<str>, u64)>,
        Option<MetricObs>,
    )> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Rec>>(2);
        let (dir, columns) = (self.dir.clone(), self.columns.clone());
        let (merged, enc) = std::thread::scope(|scope| {
            let encoder = scope.spawn(move || {
                let mut enc = PartitionEncoder::new(DiskFile::factory(&dir), columns);
                for winners in rx {
                    enc.push(&winners)?;
                }
                Ok::<_, Error>(enc)
            });
            let merged = self.merge_winners(sources, |w| tx.send(w).is_ok());
            drop(tx);
            (merged, encoder.join().expect("encoder thread"))
        });
        let enc = enc?;
        let (stats, mismatches, observed, fed) = merged?;
        let mut fed: Vec<&str> = fed.values().map(|s| &**s).collect();
        fed.sort_unstable();
        fed.dedup();
        fed.extend(prev_fed.iter().map(String::as_str));
        let how = EncodeWith {
            catalog: &self.catalog,
            tenant: &self.key.tenant,
            columns: self.columns.as_ref(),
            names: &self.names,
            version: self.version,
        };
        let parts = enc.finish(how.finish(fed))?;
        Ok((parts.into(), stats, mismatches.0, observed))
    }

    /// The k-way merge and deduplication: winners go to `emit` in pushes of
    /// [`WINNERS_PER_PUSH`] (it returns false when the encoder has stopped). Returns the counts,
    /// what the new records showed, and every source that fed the partition.
    #[allow(clippy::type_complexity)]
    fn merge_winners(
        &self,
        sources: Vec<Box<dyn SortedSource>>,
        mut emit: impl FnMut(Vec<Rec>) -> bool,
    ) -> Result<(
        crate::dedup::MergeStats,
        MismatchCount,
        Option<MetricObs>,
        FastMap<usize, Arc<str>>,
    )> {
        let spec = self.spec.as_ref();
        let mut all = KWay::new(sources)?;
        let mut merger = Merger::new(self.keep);
        let mut winners = Vec::with_capacity(WINNERS_PER_PUSH);
        let mut fed: FastMap<usize, Arc<str>> = FastMap::default();
        let mut mismatches = MismatchCount::default();
        let mut observed: Option<MetricObs> = None;
        let mut resolver = Resolver::new(spec);
        while let Some((mut r, is_new)) = all.next_rec()? {
            let source = &r.arrival.source;
            fed.entry(source.as_ptr() as usize)
                .or_insert_with(|| source.clone());
            if is_new {
                if self.proposals && observed.is_none() {
                    observed = Some(MetricObs::new(spec.is_some()));
                }
                resolve_one(&mut r, &mut resolver, &mut |r, fields, v, resolver| {
                    mismatches.add(&v.mismatches);
                    if let Some(obs) = observed.as_mut() {
                        observe_resolved(obs, spec, fields, r.ts, v, resolver);
                    }
                })?;
            }
            merger.push(r, is_new, &mut winners);
            if winners.len() >= WINNERS_PER_PUSH {
                let full = std::mem::replace(&mut winners, Vec::with_capacity(WINNERS_PER_PUSH));
                if !emit(full) {
                    break;
                }
            }
        }
        merger.finish(&mut winners);
        emit(winners);
        Ok((merger.stats, mismatches, observed, fed))
    }
}
