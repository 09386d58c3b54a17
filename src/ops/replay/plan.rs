//! Planning a replay: the window's archived objects, the partitions they fed (what the lake
//! remembers of them, mapped through the catalog the lake was built with) and feed now (decoded
//! again, mapped through the replay's catalog), closed over the records that move between
//! partitions, and every archived object that fed those partitions (the records' sources in
//! each partition index, the objects it remembers besides, and what the objects' own memory
//! says), so that no partition is replaced by a partial rebuild.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use crate::catalog::Catalog;
use crate::commit::{fed, LakeLog, Ledger};
use crate::decode::{decode_object, Limits, RecordSink};
use crate::error::{Error, Result};
use crate::model::{PartitionKey, RawRecord};
use crate::ops::compact::on_rayon;
use crate::ops::compact::read::Fed;
use crate::quarantine::BadRecord;
use crate::resolve::{admit, metric_sent};
use crate::sources::StagedObject;
use crate::storage::Location;
use crate::write::index::{self, read_footer, DataFile};
use crate::write::stored::{list_stored, metric_name};

/// A partition as a lake's index describes it.
#[derive(Clone, Debug, Default)]
pub struct Stored {
    pub index: String,
    pub typed: Vec<DataFile>,
    /// Metric names its records were sent with.
    pub sent: Vec<String>,
    pub also_fed: Vec<String>,
}

/// What a replay rebuilds and reads.
#[derive(Debug, Default)]
pub struct ReplayPlan {
    /// The window's objects that the lake processed, in arrival order.
    pub window: Vec<StagedObject>,
    /// Window objects the lake has not processed yet (left to `compact`).
    pub unprocessed: Vec<String>,
    /// The partitions rebuilt.
    pub partitions: BTreeSet<PartitionKey>,
    /// Their state in the source lake (absent: not stored there).
    pub stored: BTreeMap<PartitionKey, Stored>,
    /// Their state in the target lake, with `--to`.
    pub target_stored: BTreeMap<PartitionKey, Stored>,
    /// Every object to read, in arrival order.
    pub objects: Vec<StagedObject>,
    /// Objects read whose ETag differs from when they were compacted (same size).
    pub etag_changed: Vec<String>,
}

/// Where a plan looks.
pub struct Sources<'a> {
    pub staged: &'a Location,
    pub lake: &'a Location,
    /// The lake the rebuilt partitions go to, when another (`--to`).
    pub target: Option<&'a Location>,
    pub listed: &'a [StagedObject],
    pub ledger: &'a Ledger,
    /// The catalog the lake was built with, and the replay's.
    pub old: &'a Catalog,
    pub new: &'a Arc<Catalog>,
    pub limits: Limits,
    pub concurrency: usize,
}

/// Plans the replay of `window`.
pub async fn plan(src: &Sources<'_>, window: Vec<StagedObject>) -> Result<ReplayPlan> {
    let mut plan = ReplayPlan::default();
    for o in window {
        match src.ledger.entries.get(&o.key) {
            Some(_) => plan.window.push(o),
            None => plan.unprocessed.push(o.key),
        }
    }
    let decoded = read_triples(src, &plan.window).await?;
    let mut memory = Memory::default();
    let window: Vec<String> = plan.window.iter().map(|o| o.key.clone()).collect();
    memory.load(src.lake, src.ledger, &window).await?;
    for f in decoded
        .iter()
        .chain(window.iter().flat_map(|k| memory.of(k)))
    {
        add_both(&mut plan.partitions, src, f);
    }
    let mut objects: BTreeSet<String> = window.iter().cloned().collect();
    let mut stored = StoredSet::default();
    loop {
        let before = (plan.partitions.len(), objects.len());
        stored.load(src, &plan.partitions).await?;
        close(&mut plan.partitions, &stored.source, src.new);
        objects.extend(stored.fed_by(src, &plan.partitions).await?);
        let keys: Vec<String> = objects.iter().cloned().collect();
        memory.load(src.lake, src.ledger, &keys).await?;
        for k in &objects {
            for f in memory.of(k) {
                let (old, new) = partitions_of(src, f);
                if plan.partitions.contains(&old) || plan.partitions.contains(&new) {
                    plan.partitions.insert(old);
                    plan.partitions.insert(new);
                }
            }
        }
        if (plan.partitions.len(), objects.len()) == before {
            break;
        }
    }
    plan.stored = stored.source;
    plan.target_stored = stored.target;
    let (found, changed) = resolve_objects(src.listed, src.ledger, &objects)?;
    plan.objects = found;
    plan.etag_changed = changed;
    Ok(plan)
}

/// The partition a fed triple is in under the lake's catalog, and goes to under the replay's.
fn partitions_of(src: &Sources<'_>, (t, m, d): &Fed) -> (PartitionKey, PartitionKey) {
    (
        key(t, src.old.partition_metric(t, m), *d),
        key(t, src.new.partition_metric(t, m), *d),
    )
}

fn add_both(partitions: &mut BTreeSet<PartitionKey>, src: &Sources<'_>, f: &Fed) {
    let (old, new) = partitions_of(src, f);
    partitions.insert(old);
    partitions.insert(new);
}

fn key(tenant: &str, metric: &str, day: i32) -> PartitionKey {
    PartitionKey {
        tenant: tenant.to_string(),
        metric: metric.to_string(),
        day,
    }
}

/// Adds every stored partition whose records the replay's catalog routes into a rebuilt
/// partition (it loses them), and every partition it routes a rebuilt one's records to (it
/// gains them), until nothing changes. With the lake's own catalog nothing is added.
fn close(
    partitions: &mut BTreeSet<PartitionKey>,
    stored: &BTreeMap<PartitionKey, Stored>,
    new: &Catalog,
) {
    loop {
        let mut added = Vec::new();
        for (p, s) in stored {
            let targets: Vec<PartitionKey> = s
                .sent
                .iter()
                .map(|m| key(&p.tenant, new.partition_metric(&p.tenant, m), p.day))
                .collect();
            if partitions.contains(p) || targets.iter().any(|t| partitions.contains(t)) {
                added.push(p.clone());
                added.extend(targets);
            }
        }
        let before = partitions.len();
        partitions.extend(added);
        if partitions.len() == before {
            return;
        }
    }
}

/// The stored partitions of the tenant-days a plan touches: in the source lake and, with
/// `--to`, in the target.
#[derive(Default)]
struct StoredSet {
    source: BTreeMap<PartitionKey, Stored>,
    target: BTreeMap<PartitionKey, Stored>,
    loaded: BTreeSet<(String, i32)>,
}

impl StoredSet {
    async fn load(&mut self, src: &Sources<'_>, partitions: &BTreeSet<PartitionKey>) -> Result<()> {
        let days: BTreeSet<(String, i32)> = partitions
            .iter()
            .map(|p| (p.tenant.clone(), p.day))
            .filter(|d| !self.loaded.contains(d))
            .collect();
        if days.is_empty() {
            return Ok(());
        }
        self.source
            .extend(stored_partitions(src.lake, &days, src.old).await?);
        if let Some(t) = src.target {
            self.target
                .extend(stored_partitions(t, &days, src.new).await?);
        }
        self.loaded.extend(days);
        Ok(())
    }

    /// Every object the stored partitions of `partitions` remember as having fed them, in the
    /// source lake and the target.
    async fn fed_by(
        &self,
        src: &Sources<'_>,
        partitions: &BTreeSet<PartitionKey>,
    ) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        let lakes = [(src.lake, &self.source)]
            .into_iter()
            .chain(src.target.map(|t| (t, &self.target)));
        for (lake, stored) in lakes {
            for p in partitions {
                let Some(s) = stored.get(p) else { continue };
                let Some(bytes) = lake.get_opt(&s.index).await? else {
                    continue;
                };
                let path = s.index.clone();
                out.extend(
                    on_rayon(move || index::sources(&path, bytes))
                        .await??
                        .into_keys(),
                );
                out.extend(s.also_fed.iter().cloned());
            }
        }
        Ok(out)
    }
}

/// A lake's stored partitions of some tenant-days.
async fn stored_partitions(
    lake: &Location,
    days: &BTreeSet<(String, i32)>,
    catalog: &Catalog,
) -> Result<BTreeMap<PartitionKey, Stored>> {
    let tenants: BTreeSet<&str> = days.iter().map(|(t, _)| t.as_str()).collect();
    let mut out = BTreeMap::new();
    for t in tenants {
        let doc = catalog.tenant(t).map(|c| &c.doc);
        for p in list_stored(lake, Some(t)).await? {
            if !days.contains(&(t.to_string(), p.day)) {
                continue;
            }
            let Some((m, _)) = read_footer(lake, &p.index).await? else {
                continue;
            };
            let Some(name) =
                metric_name(lake, &p.segment, std::slice::from_ref(&p.index), doc).await?
            else {
                tracing::warn!(index = %p.index, "no metric name matches the directory; not replayed");
                continue;
            };
            let stored = Stored {
                index: p.index.clone(),
                typed: m.typed,
                sent: m.names.metrics,
                also_fed: m.also_fed,
            };
            out.insert(key(t, &name, p.day), stored);
        }
    }
    Ok(out)
}

/// What the lake remembers of objects: where their records went when they were read.
#[derive(Default)]
struct Memory {
    /// Files read, by the lake version that wrote them.
    versions: BTreeSet<u64>,
    by_key: HashMap<String, Vec<Fed>>,
}

impl Memory {
    async fn load(&mut self, lake: &Location, ledger: &Ledger, keys: &[String]) -> Result<()> {
        let log = LakeLog::new(lake);
        let wanted: BTreeSet<u64> = keys
            .iter()
            .filter_map(|k| ledger.entries.get(k).map(|e| e.version))
            .filter(|v| *v > 0 && !self.versions.contains(v))
            .collect();
        for v in wanted {
            if let Some(path) = log.read(v).await?.fed {
                for (k, f) in fed::read(lake, &path).await? {
                    self.by_key.entry(k).or_insert(f);
                }
            }
            self.versions.insert(v);
        }
        Ok(())
    }

    fn of(&self, key: &str) -> &[Fed] {
        self.by_key.get(key).map(Vec::as_slice).unwrap_or_default()
    }
}

/// The objects to read, from the archive listing. One the archive no longer holds, or whose
/// size changed since it was compacted, stops the replay with its key; a changed ETag alone (a
/// copied archive on a local disk) is reported.
fn resolve_objects(
    listed: &[StagedObject],
    ledger: &Ledger,
    wanted: &BTreeSet<String>,
) -> Result<(Vec<StagedObject>, Vec<String>)> {
    let by_key: BTreeMap<&str, &StagedObject> =
        listed.iter().map(|o| (o.key.as_str(), o)).collect();
    let (mut out, mut missing, mut changed, mut etag) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for k in wanted {
        match (by_key.get(k.as_str()), ledger.entries.get(k)) {
            (None, _) => missing.push(k.clone()),
            (Some(o), Some(e)) if e.size != o.size => changed.push(k.clone()),
            (Some(o), e) => {
                if e.is_some_and(|e| e.etag.is_some() && o.etag.is_some() && e.etag != o.etag) {
                    etag.push(k.clone());
                }
                out.push((*o).clone());
            }
        }
    }
    if !missing.is_empty() || !changed.is_empty() {
        return Err(Error::ArchiveGone { missing, changed });
    }
    crate::sources::sort_arrival(&mut out);
    Ok((out, etag))
}

/// Decodes the window's objects again for the (tenant, metric as sent, day) of their records.
async fn read_triples(src: &Sources<'_>, objects: &[StagedObject]) -> Result<BTreeSet<Fed>> {
    let limits = src.limits;
    let sets: Vec<BTreeSet<Fed>> = futures::stream::iter(objects)
        .map(|o| {
            let catalog = src.new.clone();
            async move {
                let bytes = src.staged.get_path(&o.path).await?;
                on_rayon(move || {
                    let mut sink = TripleSink {
                        catalog: &catalog,
                        out: BTreeSet::new(),
                    };
                    decode_object(&bytes, &limits, &mut sink);
                    sink.out
                })
                .await
            }
        })
        .buffer_unordered(src.concurrency.max(1))
        .try_collect()
        .await?;
    Ok(sets.into_iter().flatten().collect())
}

struct TripleSink<'a> {
    catalog: &'a Catalog,
    out: BTreeSet<Fed>,
}

impl RecordSink for TripleSink<'_> {
    fn record(&mut self, rec: &RawRecord<'_>) {
        if let (Ok(a), Ok(m)) = (admit(rec, self.catalog), metric_sent(rec)) {
            self.out
                .insert((a.tenant.to_string(), m.to_string(), a.day));
        }
    }

    fn bad(&mut self, _bad: BadRecord) {}
}
