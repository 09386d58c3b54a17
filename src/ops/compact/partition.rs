//! Phase 2 of compact: for one partition, read the records the lake holds (its own, and those
//! a catalog change moves into it), resolve them with the new records against the current
//! catalog, merge, and write the partition files (typed Parquet in place but unreferenced,
//! untyped and index staged) for the commit to reference.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;

use super::append;
use super::external::{self, fetch_index, Fetched, LakeInputs, Scratch};
use super::files::{partition_change, write_files, Encoded, Written};
use super::read::on_rayon;
use crate::catalog::{Catalog, MetricSpec};
use crate::commit::log::PartitionChange;
use crate::dedup::{codec, merge, Bucket, Keep, MergeStats};
use crate::error::{Error, Result};
use crate::model::{FieldType, Name, PartitionKey, Rec};
use crate::names;
use crate::resolve::{raw, Resolver, Values};
use crate::schema::propose::{observe_resolved, MetricObs};
use crate::storage::Location;
use crate::write::encoder::{Finish, PartitionEncoder, TypedNames, PUSH_ROWS};
use crate::write::index::{self, DataFile, PartitionManifest, SentNames};
use crate::write::typed::Columns;

/// What one partition contributes to the run (a fan-out merge unit hands it to the commit
/// step as JSON).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct PartitionResult {
    pub change: PartitionChange,
    pub stats: MergeStats,
    pub typed_rows: u64,
    pub untyped_lines: u64,
    pub bytes_written: u64,
    /// Type mismatches of new records, by canonical field.
    pub mismatches: Vec<(Arc<str>, u64)>,
    /// Whether the partition was rebuilt because the catalog changed (re-typed, emptied, or
    /// receiving records of a metric that became an alias).
    pub rebuilt: bool,
    /// Lake records read back because the catalog changed how they resolve.
    pub retyped: u64,
    /// What the new records showed about fields the catalog does not know (proposals).
    pub observed: Option<MetricObs>,
    /// Whether the partition was merged through sorted runs on local disk.
    #[serde(default)]
    pub on_disk: bool,
    /// Whether the new records were appended rather than the partition rewritten.
    #[serde(default)]
    pub appended: bool,
    /// Whether only the partition's last windows were rewritten, its earlier ones kept.
    #[serde(default)]
    pub tail_rewritten: bool,
}

/// Shared inputs of phase 2.
pub struct PartitionCtx {
    pub lake: Location,
    pub catalog: Arc<Catalog>,
    pub objects: Arc<Vec<(Arc<str>, i64)>>,
    pub keep: Keep,
    /// Deterministic run tag used in file names.
    pub tag: String,
    pub version: u64,
    /// Whether to observe new records for schema proposals.
    pub proposals: bool,
    /// Bytes of encoded records (new ones, or a lake index) one partition may hold in memory;
    /// a larger partition is merged through sorted runs on disk.
    pub memory_share: usize,
}

/// One partition's share of a memory budget: four partitions merge at once, and decoded
/// records take about four times their encoded bytes.
pub fn memory_share(budget: usize) -> usize {
    budget / 16
}

/// One partition to rebuild: new records, and other lake partitions whose records now belong
/// here (a metric that became an alias).
pub struct PartitionJob {
    pub key: PartitionKey,
    pub bucket: Bucket,
    pub sources: Vec<PartitionKey>,
    /// Whether the lake's own records must be resolved again (the catalog changed for them).
    pub retype: bool,
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

    /// The typed files run `tag` writes for the partition.
    pub fn typed_names(&self, tag: &str) -> TypedNames {
        TypedNames::new(&self.typed_rel, tag)
    }

    /// A partition's staged file of `kind` (`index.parquet`, `untyped.jsonl`) in the staging
    /// area of run `tag`: one directory per tenant, so staging and cleaning up make few.
    pub fn staged(tag: &str, key: &PartitionKey, kind: &str) -> String {
        let metric = names::metric_segment(&key.metric);
        let date = key.date();
        format!(
            "_fineo/staging/{tag}/tenant={}/metric={metric},date={date},{kind}",
            key.tenant
        )
    }
}

/// Reads, merges and writes one partition: in memory, or through sorted runs on disk when its
/// new records or lake index are larger than the memory share.
pub async fn build(ctx: &PartitionCtx, mut job: PartitionJob) -> Result<PartitionResult> {
    let key = job.key.clone();
    let paths = PartitionPaths::of(&key);
    let scratch = Scratch::default();
    let share = ctx.memory_share;
    let own = fetch_index(&ctx.lake, &paths.index, share, &scratch).await?;
    let mut decoded = None;
    if let Some(c) = append::candidate(ctx, &job, &paths, own.as_ref()).await? {
        let d = append::decode_sorted(ctx, std::mem::take(&mut job.bucket)).await?;
        if let Some(cut) = c.cut(d.new.first()) {
            if let Some(c) = c.with_untyped(ctx, &paths, &scratch).await? {
                let own = own.expect("a candidate has an index");
                return append::build(ctx, &key, paths, own, c, cut, d.new).await;
            }
        }
        decoded = Some(d);
    }
    let mut moved = Vec::new();
    for src in &job.sources {
        let p = PartitionPaths::of(src).index;
        if let Some(f) = fetch_index(&ctx.lake, &p, share, &scratch).await? {
            moved.push((p, f));
        }
    }
    let on_disk = |f: &Fetched| matches!(f, Fetched::Disk(_));
    if job.bucket.streamed() || own.iter().chain(moved.iter().map(|(_, f)| f)).any(on_disk) {
        if let Some(d) = decoded {
            job.bucket = d.into_bucket();
        }
        let lake = LakeInputs { own, moved };
        return external::build(ctx, job, lake, scratch).await;
    }
    let belongs = external::Belongs::new(ctx, &key);
    let index = paths.index.clone();
    let (lake_recs, manifest, moved) =
        on_rayon(move || read_lake(&belongs, &index, own, moved)).await??;
    let rebuilt = job.retype || !job.sources.is_empty();
    let retyped = if job.retype {
        lake_recs.len() as u64
    } else {
        moved
    };
    let new = match decoded {
        Some(d) => d.new,
        None => append::decode_sorted(ctx, job.bucket).await?.new,
    };
    let names = paths.typed_names(&ctx.tag);
    let lake = Lake::Stored(lake_recs);
    let m = merge_in_memory(ctx, &key, &names, lake, new, manifest.also_fed).await?;
    let columns = m.columns.clone();
    let mut w = write_files(&ctx.lake, &ctx.tag, &key, &paths, m.enc, &names).await?;
    let change = partition_change(&key, paths, columns, manifest.typed, &mut w);
    Ok(PartitionResult {
        rebuilt,
        retyped,
        ..PartitionResult::of(change, &w, m.stats, m.mismatches, m.observed)
    })
}

impl PartitionResult {
    /// A partition merged in memory and written as `w`, not rebuilt for the catalog.
    pub(super) fn of(
        change: PartitionChange,
        w: &Written,
        stats: MergeStats,
        mismatches: Mismatches,
        observed: Option<MetricObs>,
    ) -> Self {
        PartitionResult {
            change,
            stats,
            typed_rows: w.typed_rows,
            untyped_lines: w.untyped_lines,
            bytes_written: w.bytes,
            mismatches,
            rebuilt: false,
            retyped: 0,
            observed,
            on_disk: false,
            appended: false,
            tail_rewritten: false,
        }
    }
}

/// A partition's records merged and encoded in memory.
pub(super) struct Merged {
    pub enc: Encoded,
    pub stats: MergeStats,
    pub mismatches: Mismatches,
    pub observed: Option<MetricObs>,
    /// The table's columns, when the metric is declared.
    pub columns: Option<Columns>,
}

/// A partition's stored records for a merge.
pub(super) enum Lake {
    /// As read from the index.
    Stored(Vec<Rec>),
    /// Already resolved under the catalog.
    Resolved(Vec<Rec>),
}

/// Resolves `lake` and `new` (sorted) under the catalog, merges them and encodes the winners
/// (on rayon); `extra_fed`: objects that fed the partition besides the records' sources.
pub(super) async fn merge_in_memory(
    ctx: &PartitionCtx,
    key: &PartitionKey,
    names: &TypedNames,
    lake: Lake,
    new: Vec<Rec>,
    extra_fed: Vec<String>,
) -> Result<Merged> {
    let spec = ctx.catalog.metric(&key.tenant, &key.metric).cloned();
    let columns = spec.as_ref().map(|s| Columns(s.columns()));
    let (catalog, tenant, names) = (ctx.catalog.clone(), key.tenant.clone(), names.clone());
    let (keep, version, propose) = (ctx.keep, ctx.version, ctx.proposals);
    let cols = columns.clone();
    on_rayon(move || {
        let (lake_recs, mut stored) = match lake {
            Lake::Stored(recs) => (recs, Some(Resolver::new(spec.as_ref()))),
            Lake::Resolved(recs) => (recs, None),
        };
        let mut fresh = NewResolution::new(spec.as_ref(), propose && !new.is_empty());
        let how = EncodeWith {
            catalog: &catalog,
            tenant: &tenant,
            columns: cols.as_ref(),
            names: &names,
            version,
        };
        let resolve = |is_new: bool, recs: &mut [Rec]| match (is_new, stored.as_mut()) {
            (true, _) => fresh.resolve(recs),
            (false, Some(resolver)) => resolve_with(resolver, recs, |_, _, _, _| {}),
            (false, None) => Ok(()),
        };
        let (enc, stats) = how.merge_encode(lake_recs, new, keep, &extra_fed, resolve)?;
        let (mismatches, observed) = fresh.finish();
        Ok(Merged {
            enc,
            stats,
            mismatches,
            observed,
            columns: cols,
        })
    })
    .await?
}

/// A joined bucket's new records, decoded and sorted by timestamp, then arrival: their fields
/// as sent are slices of the bucket's buffer, which they share.
pub(super) struct Decoded {
    /// The bucket without its buffer.
    bucket: Bucket,
    /// The bucket's buffer, which the records' fields as sent are slices of.
    buf: Bytes,
    pub new: Vec<Rec>,
}

impl Decoded {
    /// The bucket whole again, for a merge through disk after all (no copy: the decoded records
    /// that shared its buffer are dropped first).
    pub(super) fn into_bucket(self) -> Bucket {
        let Decoded {
            mut bucket,
            buf,
            new,
        } = self;
        drop(new);
        bucket.buf = Vec::from(buf);
        bucket
    }
}

/// Decodes and sorts the new records of a (joined) bucket.
pub(super) fn decode_new(mut bucket: Bucket, objects: &[(Arc<str>, i64)]) -> Decoded {
    let buf = Bytes::from(std::mem::take(&mut bucket.buf));
    let mut new = Vec::with_capacity(bucket.count as usize);
    codec::decode_all(&buf, objects, &mut codec::Interner::default(), &mut new);
    crate::dedup::merge::sort_new(&mut new);
    Decoded { bucket, buf, new }
}

/// Type mismatches per canonical field.
pub(super) type Mismatches = Vec<(Arc<str>, u64)>;

/// How a partition's new records are resolved (in sorted order, a chunk at a time): their
/// type mismatches per field, and what they show about unknown fields when proposing.
pub(super) struct NewResolution<'s> {
    spec: Option<&'s MetricSpec>,
    resolver: Resolver<'s>,
    mismatches: MismatchCount,
    observed: Option<MetricObs>,
}

impl<'s> NewResolution<'s> {
    pub(super) fn new(spec: Option<&'s MetricSpec>, propose: bool) -> Self {
        NewResolution {
            spec,
            resolver: Resolver::new(spec),
            mismatches: MismatchCount::default(),
            observed: propose.then(|| MetricObs::new(spec.is_some())),
        }
    }

    /// Resolves the next records.
    pub(super) fn resolve(&mut self, recs: &mut [Rec]) -> Result<()> {
        let (spec, mismatches, observed) = (self.spec, &mut self.mismatches, &mut self.observed);
        resolve_with(&mut self.resolver, recs, |r, fields, v, resolver| {
            mismatches.add(&v.mismatches);
            if let Some(obs) = observed.as_mut() {
                observe_resolved(obs, spec, fields, r.ts, v, resolver);
            }
        })
    }

    /// The mismatches and observations of every record resolved.
    pub(super) fn finish(self) -> (Mismatches, Option<MetricObs>) {
        (self.mismatches.0, self.observed)
    }
}

/// Counts mismatches per canonical field name.
#[derive(Default)]
pub(super) struct MismatchCount(pub Vec<(Arc<str>, u64)>);

impl MismatchCount {
    pub(super) fn add(&mut self, names: &[Name]) {
        for n in names {
            match self.0.iter_mut().find(|(m, _)| **m == **n) {
                Some((_, c)) => *c += 1,
                None => self.0.push((Arc::from(n.as_str()), 1)),
            }
        }
    }
}

/// What sees each record resolved: the record, its fields as sent, its values, and the
/// resolver (which knows the roles of the record's fields).
pub(crate) trait EachResolved:
    FnMut(&Rec, &raw::RawFields<'_>, &Values, &Resolver<'_>)
{
}
impl<F: FnMut(&Rec, &raw::RawFields<'_>, &Values, &Resolver<'_>)> EachResolved for F {}

/// Resolves every record's fields against `spec`; `each` sees every record resolved
/// ([`EachResolved`]).
pub(crate) fn resolve_all(
    recs: &mut [Rec],
    spec: Option<&MetricSpec>,
    each: impl EachResolved,
) -> Result<()> {
    resolve_with(&mut Resolver::new(spec), recs, each)
}

/// Resolves records with `resolver` (which goes on to later records of the same metric);
/// `each` sees every record resolved ([`EachResolved`]).
pub(crate) fn resolve_with(
    resolver: &mut Resolver<'_>,
    recs: &mut [Rec],
    mut each: impl EachResolved,
) -> Result<()> {
    recs.iter_mut()
        .try_for_each(|r| resolve_one(r, resolver, &mut each))
}

/// Resolves one record's fields with `resolver`; `each` sees it resolved ([`EachResolved`]).
pub(crate) fn resolve_one(
    r: &mut Rec,
    resolver: &mut Resolver<'_>,
    each: &mut impl EachResolved,
) -> Result<()> {
    let resolved = resolver.with_decoded(&r.raw, |resolver, fields| {
        let v = resolver.resolve(fields);
        each(r, fields, &v, resolver);
        v
    });
    let v = resolved.ok_or_else(|| {
        Error::data_file(
            &*r.arrival.source,
            format!(
                "record at position {} has damaged stored fields",
                r.arrival.position
            ),
        )
    })?;
    r.typed = v.typed;
    r.untyped = v.untyped;
    r.hash = v.hash;
    Ok(())
}

/// How a rebuilt partition is encoded: its columns and typed file names, the lake version, and
/// the catalog and tenant its resolution fingerprint is taken under.
pub(super) struct EncodeWith<'a> {
    pub catalog: &'a Catalog,
    pub tenant: &'a str,
    pub columns: Option<&'a Columns>,
    pub names: &'a TypedNames,
    pub version: u64,
}

impl EncodeWith<'_> {
    /// Merges `base` with `new` (`keep` decides duplicates), each resolved by `resolve` (told
    /// whether the records are new) as the merge reaches them, and encodes the winners with
    /// every object that fed the partition: the records' sources and `extra_fed`.
    pub(super) fn merge_encode(
        &self,
        base: Vec<Rec>,
        new: Vec<Rec>,
        keep: Keep,
        extra_fed: &[String],
        resolve: impl FnMut(bool, &mut [Rec]) -> Result<()>,
    ) -> Result<(Encoded, MergeStats)> {
        let fed = sources_of(&base, &new);
        let mut enc = PartitionEncoder::new(Vec::new(), self.columns.cloned());
        let emit = |winners: Vec<Rec>| enc.push(&winners);
        let stats = merge::merge_streamed(base, new, keep, PUSH_ROWS, resolve, emit)?;
        let fed = fed
            .iter()
            .map(|s| &**s)
            .chain(extra_fed.iter().map(String::as_str));
        Ok((enc.finish(self.finish(fed.collect()))?.into(), stats))
    }

    /// What the index manifest says besides the winners.
    pub(super) fn finish<'a>(
        &'a self,
        fed: Vec<&'a str>,
    ) -> Finish<'a, impl FnOnce(&SentNames) -> u64 + 'a> {
        let (catalog, tenant) = (self.catalog, self.tenant);
        Finish {
            typed_names: self.names,
            version: self.version,
            resolution: move |n: &SentNames| {
                catalog.resolution_fingerprint(tenant, &n.metrics, &n.fields)
            },
            fed,
        }
    }
}

/// The lake's records that belong to this partition under the current catalog: its own (minus
/// those that moved to another metric) and those of other partitions that moved here.
#[allow(clippy::type_complexity)]
fn read_lake(
    belongs: &external::Belongs,
    index: &str,
    own: Option<Fetched>,
    sources: Vec<(String, Fetched)>,
) -> Result<(Vec<Rec>, PartitionManifest, u64)> {
    let bytes = |f: Fetched| match f {
        Fetched::Mem(b) => b,
        Fetched::Disk(_) => unreachable!("indexes on disk are merged externally"),
    };
    let (mut recs, manifest) = match own {
        Some(f) => index::decode(index, bytes(f))?,
        None => (Vec::new(), PartitionManifest::default()),
    };
    recs.retain(|r| belongs.test(r));
    let mut moved = 0u64;
    for (p, f) in sources {
        let (mut other, _) = index::decode(&p, bytes(f))?;
        other.retain(|r| belongs.test(r));
        moved += other.len() as u64;
        recs.extend(other);
    }
    Ok((recs, manifest, moved))
}

/// Whether a typed file written with `had` columns still fits a table with `want` columns:
/// every column it holds exists with the same type (a file may lack newer columns).
pub fn columns_fit(had: &[(String, FieldType)], want: &[(Arc<str>, FieldType)]) -> bool {
    had.iter()
        .all(|(n, t)| want.iter().any(|(w, wt)| w.as_ref() == n && wt == t))
}

/// A partition rebuilt from given records rather than merged into the lake (restore, replay).
pub(crate) struct Rebuilt {
    pub change: PartitionChange,
    pub stats: MergeStats,
    pub typed_rows: u64,
    pub untyped_lines: u64,
    pub bytes: u64,
}

/// Where rebuilt partitions go: the lake, the run's tag and version, the catalog they are
/// resolved with.
pub(crate) struct Rebuilder<'a> {
    pub lake: &'a Location,
    pub tag: &'a str,
    pub version: u64,
    pub catalog: &'a Arc<Catalog>,
    /// Which duplicate wins.
    pub keep: Keep,
}

impl Rebuilder<'_> {
    /// Builds partition `key` from `base` merged with `new` (`new` wins ties by arrival like
    /// new input in a compaction), resolved under the catalog; writes its files under the run's
    /// tag and replaces `typed_remove`. `extra_fed`: objects known to have fed the partition
    /// besides the records' sources.
    pub async fn rebuild(
        &self,
        key: &PartitionKey,
        base: Vec<Rec>,
        new: Vec<Rec>,
        typed_remove: Vec<DataFile>,
        extra_fed: Vec<String>,
    ) -> Result<Rebuilt> {
        let (lake, tag, version, catalog) = (self.lake, self.tag, self.version, self.catalog);
        let keep = self.keep;
        let paths = PartitionPaths::of(key);
        let spec = catalog.metric(&key.tenant, &key.metric).cloned();
        let columns = spec.as_ref().map(|s| Columns(s.columns()));
        let names = paths.typed_names(tag);
        let enc = {
            let (catalog, tenant) = (catalog.clone(), key.tenant.clone());
            let (columns, names) = (columns.clone(), names.clone());
            on_rayon(move || {
                let mut sides = [Resolver::new(spec.as_ref()), Resolver::new(spec.as_ref())];
                let resolve = |is_new: bool, recs: &mut [Rec]| {
                    resolve_with(&mut sides[is_new as usize], recs, |_, _, _, _| {})
                };
                let how = EncodeWith {
                    catalog: &catalog,
                    tenant: &tenant,
                    columns: columns.as_ref(),
                    names: &names,
                    version,
                };
                how.merge_encode(base, new, keep, &extra_fed, resolve)
            })
            .await??
        };
        let (enc, stats) = enc;
        let mut w = write_files(lake, tag, key, &paths, enc, &names).await?;
        let change = partition_change(key, paths, columns, typed_remove, &mut w);
        Ok(Rebuilt {
            change,
            stats,
            typed_rows: w.typed_rows,
            untyped_lines: w.untyped_lines,
            bytes: w.bytes,
        })
    }
}

/// The source objects of the records a partition is built from. Records of one object share
/// one interned name, so the names are told apart by address first (no long key compared per
/// record), then the few distinct ones by text.
fn sources_of(a: &[Rec], b: &[Rec]) -> BTreeSet<Arc<str>> {
    index::distinct_sources(a.iter().chain(b))
        .cloned()
        .collect()
}
