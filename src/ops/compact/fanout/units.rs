//! The fan-out's read units, merge units and commit step, and the bucket files between them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::{merge_unit_of, unit_dir, Fanout, FanoutPlan};
use crate::commit::Attempt;
use crate::dedup::{Bucket, Buckets, LocalBuckets};
use crate::error::{Error, Result};
use crate::model::PartitionKey;
use crate::ops::compact::partition::PartitionResult;
use crate::ops::compact::read::{read_objects, Fed, ReadSummary};
use crate::ops::compact::run::{account_read, Outcome};
use crate::ops::compact::PhaseClock;
use crate::report::CompactReport;
use crate::storage::Location;

/// What a read unit leaves for the merge units and the commit (written last).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReadManifest {
    pub unit: usize,
    pub summary: ReadSummary,
    /// Per object of the unit's slice: the partitions it fed.
    pub fed: Vec<Vec<Fed>>,
    /// Merge units with a bucket file from this unit, and its bytes.
    pub buckets: BTreeMap<usize, u64>,
    /// Tenants with quarantine lines from this unit.
    pub error_tenants: Vec<String>,
    pub spilled_bytes: u64,
}

/// What a merge unit leaves for the commit (written last).
#[derive(Serialize, Deserialize)]
pub struct MergeManifest {
    pub unit: usize,
    /// Every partition the unit wrote, in key order.
    pub partitions: Vec<(PartitionKey, PartitionResult)>,
    /// Bucket bytes read from the read units.
    pub bytes_in: u64,
    pub spilled_bytes: u64,
}

fn manifest_path(plan: &FanoutPlan, phase: &str, unit: usize) -> String {
    format!("{}/manifest.json", unit_dir(plan, phase, unit))
}

fn bucket_path(plan: &FanoutPlan, read: usize, merge: usize) -> String {
    format!("{}/bucket-{merge:04}.bin", unit_dir(plan, "read", read))
}

fn errors_path(plan: &FanoutPlan, read: usize, tenant: &str) -> String {
    format!("{}/errors/{tenant}.jsonl", unit_dir(plan, "read", read))
}

async fn load_json<T: for<'de> Deserialize<'de>>(lake: &Location, path: &str) -> Result<Option<T>> {
    match lake.get_opt(path).await? {
        Some(b) => Ok(Some(
            serde_json::from_slice(&b).map_err(|e| Error::metadata(path, e))?,
        )),
        None => Ok(None),
    }
}

impl Fanout {
    async fn manifest<T: for<'de> Deserialize<'de>>(
        &self,
        plan: &FanoutPlan,
        phase: &str,
        unit: usize,
    ) -> Result<T> {
        load_json(self.lake(), &manifest_path(plan, phase, unit))
            .await?
            .ok_or_else(|| Error::UnitMissing {
                run: plan.run.clone(),
                missing: format!("{phase} unit {unit}"),
            })
    }

    fn check_unit(plan: &FanoutPlan, phase: &str, unit: usize, of: usize) -> Result<()> {
        if unit >= of {
            return Err(Error::InvalidOption(format!(
                "fan-out run {:?} has {of} {phase} units (0..{of}), not unit {unit}",
                plan.run
            )));
        }
        Ok(())
    }

    /// Read unit `unit`: decodes its slice of the new objects and writes their records into
    /// one bucket file per merge unit, its quarantine lines, then its manifest. Done already:
    /// nothing to do.
    pub async fn read(&self, unit: usize) -> Result<ReadManifest> {
        let plan = self.load_plan().await?;
        Self::check_unit(&plan, "read", unit, plan.read_units.len())?;
        self.check_base(&plan).await?;
        if let Some(done) = load_json(self.lake(), &manifest_path(&plan, "read", unit)).await? {
            return Ok(done);
        }
        let [start, end] = plan.read_units[unit];
        let objects = plan.staged_objects()?[start..end].to_vec();
        let catalog = Arc::new(self.compact.pipeline.load_catalog(self.lake()).await?);
        let c = &self.compact;
        c.progress.start("read", Some(objects.len() as u64));
        let settings = c.pipeline.read;
        let mut read = read_objects(
            &c.staged,
            &objects,
            start,
            catalog,
            &settings,
            &plan.tag,
            c.progress.as_ref(),
        )
        .await?;
        c.progress.finish();
        let mut by_unit: BTreeMap<usize, Vec<PartitionKey>> = BTreeMap::new();
        for key in read.buckets.keys() {
            by_unit
                .entry(merge_unit_of(&key, plan.merge_units))
                .or_default()
                .push(key);
        }
        // Partitions are streamed into the bucket files, never joined in memory.
        let mut taken = std::mem::replace(&mut read.buckets, Buckets::new(0)).with_join_limit(0);
        let mut buckets = BTreeMap::new();
        for (merge, keys) in by_unit {
            let path = bucket_path(&plan, unit, merge);
            let bytes = write_buckets(self.lake(), &path, &mut taken, &keys).await?;
            buckets.insert(merge, bytes);
        }
        let error_tenants: Vec<String> = read.quarantine.tenants().into_iter().collect();
        for tenant in &error_tenants {
            let lines: Vec<u8> = read
                .quarantine
                .lines(tenant)
                .collect::<Result<Vec<_>>>()?
                .concat();
            self.lake()
                .put(&errors_path(&plan, unit, tenant), Bytes::from(lines))
                .await?;
        }
        let manifest = ReadManifest {
            unit,
            summary: read.summary(),
            fed: std::mem::take(&mut read.fed),
            buckets,
            error_tenants,
            spilled_bytes: taken.spilled_bytes,
        };
        let body = serde_json::to_vec(&manifest).expect("manifest json");
        self.lake()
            .put(&manifest_path(&plan, "read", unit), Bytes::from(body))
            .await?;
        Ok(manifest)
    }

    /// Merge unit `unit`: every read unit's records of its partitions (in read-unit order,
    /// which is arrival order), merged with the stored ones into staged, unreferenced files;
    /// then its manifest. Needs every read unit done. Done already: nothing to do.
    pub async fn merge(&self, unit: usize) -> Result<MergeManifest> {
        let plan = self.load_plan().await?;
        Self::check_unit(&plan, "merge", unit, plan.merge_units)?;
        self.check_base(&plan).await?;
        if let Some(done) = load_json(self.lake(), &manifest_path(&plan, "merge", unit)).await? {
            return Ok(done);
        }
        let mut reads = Vec::with_capacity(plan.read_units.len());
        for r in 0..plan.read_units.len() {
            reads.push(self.manifest::<ReadManifest>(&plan, "read", r).await?);
        }
        let c = &self.compact;
        let budget = c.pipeline.read.memory_budget;
        let share = super::super::partition::memory_share(budget);
        let mut buckets = Buckets::new(budget).with_join_limit(share);
        let mut bytes_in = 0;
        for m in reads.iter().filter(|m| m.buckets.contains_key(&unit)) {
            let path = bucket_path(&plan, m.unit, unit);
            let missing = || Error::UnitMissing {
                run: plan.run.clone(),
                missing: format!("read unit {} (its {path} is gone)", m.unit),
            };
            bytes_in +=
                absorb_bucket_file(self.lake(), &path, &mut buckets, share, missing).await?;
        }
        let (run, catalog) = self.run_plan(&plan).await?;
        let mut keys: BTreeSet<PartitionKey> = buckets.keys().into_iter().collect();
        keys.extend(
            run.retype
                .jobs
                .keys()
                .filter(|k| merge_unit_of(k, plan.merge_units) == unit)
                .cloned(),
        );
        let spilled_bytes = buckets.spilled_bytes;
        let buckets = std::sync::Mutex::new(buckets);
        let take = |key: &PartitionKey| buckets.lock().expect("buckets lock").take(key);
        c.progress.start("merge", Some(keys.len() as u64));
        let ordered: Vec<PartitionKey> = keys.iter().cloned().collect();
        let results = c.merge_partitions(&catalog, &run, keys, take).await?;
        c.progress.finish();
        let manifest = MergeManifest {
            unit,
            partitions: ordered.into_iter().zip(results).collect(),
            bytes_in,
            spilled_bytes,
        };
        let body = serde_json::to_vec(&manifest).expect("manifest json");
        self.lake()
            .put(&manifest_path(&plan, "merge", unit), Bytes::from(body))
            .await?;
        Ok(manifest)
    }

    /// The commit step: one lake version from every unit's manifest, published; then the
    /// run's intermediate files are removed. Run again after it committed: reports the
    /// version, commits nothing. A lake that moved on since the plan: [`Error::StalePlan`].
    pub async fn commit(&self) -> Result<CompactReport> {
        let started = std::time::Instant::now();
        let Some(plan) = self.load_plan_checked().await? else {
            // The plan step found nothing new (its item lists are empty).
            let mut report = CompactReport::start("fanout commit");
            report.noop = true;
            report.conservation_ok = true;
            report.run_id = format!("noop-{}", self.run);
            report.message = "nothing new to compact: the lake is unchanged".into();
            return Ok(report);
        };
        let mut report = plan.planned.clone();
        report.command = "fanout commit".into();
        report.started_at = chrono::Utc::now().to_rfc3339();
        let (latest, recovered) = crate::commit::latest_published(self.lake()).await?;
        if recovered {
            report.recovered_versions.push(latest);
        }
        if latest > plan.base && self.committed(&plan).await? {
            report.committed_version = Some(plan.base + 1);
            report.message = format!(
                "fan-out run {:?} was committed already, as lake version {}: nothing to do",
                plan.run,
                plan.base + 1
            );
            self.cleanup(&plan).await;
            return Ok(report);
        }
        if let Err(e) = self.check_base(&plan).await {
            self.discard(&plan).await;
            return Err(e);
        }
        let attempt = self.commit_units(&plan, &mut report).await?;
        if let Attempt::LostRace { version, .. } = attempt {
            return Err(Error::StalePlan {
                run: plan.run.clone(),
                base: plan.base,
                latest: version,
            });
        }
        self.cleanup(&plan).await;
        report.elapsed_seconds = started.elapsed().as_secs_f64();
        report.peak_rss_bytes = crate::progress::peak_rss_bytes();
        self.compact.write_report(&report).await?;
        Ok(report)
    }

    async fn commit_units(&self, plan: &FanoutPlan, report: &mut CompactReport) -> Result<Attempt> {
        let mut reads = Vec::with_capacity(plan.read_units.len());
        for r in 0..plan.read_units.len() {
            reads.push(self.manifest::<ReadManifest>(plan, "read", r).await?);
        }
        let mut partitions = Vec::new();
        for m in 0..plan.merge_units {
            let manifest = self.manifest::<MergeManifest>(plan, "merge", m).await?;
            partitions.extend(manifest.partitions);
            report.spilled_bytes += manifest.spilled_bytes;
        }
        partitions.sort_by(|a, b| a.0.cmp(&b.0));
        let mut good_records = 0;
        for m in &reads {
            account_read(report, &m.summary);
            good_records += m.summary.good_records;
            report.spilled_bytes += m.spilled_bytes;
        }
        let errors = self.stage_errors(plan, &reads).await?;
        let fed = plan
            .objects
            .iter()
            .map(|o| o.key.clone())
            .zip(reads.into_iter().flat_map(|m| m.fed))
            .collect();
        let outcome = Outcome {
            results: partitions.into_iter().map(|(_, r)| r).collect(),
            good_records,
            errors,
            fed,
        };
        let (mut run, catalog) = self.run_plan(plan).await?;
        let mut phase = PhaseClock::new(report);
        self.compact
            .commit_run(&catalog, &mut run, outcome, &mut phase)
            .await
    }

    /// Each tenant's quarantine lines of every read unit, in unit order, staged as the
    /// single-process run stages them.
    async fn stage_errors(
        &self,
        plan: &FanoutPlan,
        reads: &[ReadManifest],
    ) -> Result<Vec<crate::commit::log::StagedCopy>> {
        let tenants: BTreeSet<&String> = reads.iter().flat_map(|m| &m.error_tenants).collect();
        let day = crate::quarantine::run_day();
        let mut out = Vec::new();
        for tenant in tenants {
            let parts: Vec<String> = reads
                .iter()
                .filter(|m| m.error_tenants.contains(tenant))
                .map(|m| errors_path(plan, m.unit, tenant))
                .collect();
            let lake = self.lake();
            let lines = futures::stream::iter(parts).then(move |p| async move {
                lake.get_opt(&p)
                    .await?
                    .ok_or_else(|| Error::metadata(&p, "a read unit's quarantine file is gone"))
            });
            out.push(crate::quarantine::stage_tenant(lake, &plan.tag, &day, tenant, lines).await?);
        }
        Ok(out)
    }

    /// Removes what a stale plan's units wrote: the typed files its merge units put in place
    /// (never referenced), its staging and its intermediate files. Best effort.
    pub(super) async fn discard(&self, plan: &FanoutPlan) {
        let mut partitions = Vec::new();
        for m in 0..plan.merge_units {
            let path = manifest_path(plan, "merge", m);
            if let Ok(Some(man)) = load_json::<MergeManifest>(self.lake(), &path).await {
                partitions.extend(man.partitions.into_iter().map(|(_, r)| r.change));
            }
        }
        let record = crate::commit::CommitRecord {
            version: plan.base + 1,
            run_id: plan.tag.clone(),
            tag: plan.tag.clone(),
            committed_ms: 0,
            ledger: Vec::new(),
            partitions,
            errors: Vec::new(),
            files: Vec::new(),
            schemas: Vec::new(),
            creates: Vec::new(),
            ledger_removed: Vec::new(),
            fed: None,
            watermark: None,
        };
        crate::commit::discard(self.lake(), &record, |_| false).await;
        self.cleanup(plan).await;
    }

    /// Removes the run's intermediate files (best effort: leftovers are unreferenced).
    pub(super) async fn cleanup(&self, plan: &FanoutPlan) {
        let dir = format!("{}/{}", super::run_dir(&plan.run), plan.tag);
        let lake = self.lake();
        let Ok(listed) = lake.list(&dir).await else {
            return;
        };
        let _ = futures::stream::iter(listed)
            .map(|m| async move { lake.delete_path(&m.location).await })
            .buffer_unordered(8)
            .try_collect::<Vec<()>>()
            .await;
    }
}

/// Writes the records of `keys` (taken out of `buckets`) to one bucket file, streamed: per
/// partition a JSON header line, then its encoded records. Returns the bytes written.
async fn write_buckets(
    lake: &Location,
    path: &str,
    buckets: &mut Buckets,
    keys: &[PartitionKey],
) -> Result<u64> {
    let full = lake.path(path);
    let mut w = object_store::buffered::BufWriter::new(lake.store().clone(), full.clone());
    let mut written = 0;
    let mut block = vec![0u8; 1 << 20];
    for key in keys {
        let b = buckets.take(key)?;
        let header = BucketHeader {
            key: key.clone(),
            known: b.known,
            count: b.count,
            len: b.stored_len()?,
        };
        let mut line = serde_json::to_vec(&header).expect("header json");
        line.push(b'\n');
        w.write_all(&line).await.map_err(|e| Error::io(&full, e))?;
        written += line.len() as u64;
        // Streamed from the spill file and memory: a partition larger than memory passes.
        let mut records = b.into_read()?;
        loop {
            let n = std::io::Read::read(&mut records, &mut block)
                .map_err(|e| Error::io("spilled records", e))?;
            if n == 0 {
                break;
            }
            w.write_all(&block[..n])
                .await
                .map_err(|e| Error::io(&full, e))?;
            written += n as u64;
        }
    }
    w.shutdown().await.map_err(|e| Error::io(&full, e))?;
    Ok(written)
}

#[derive(Serialize, Deserialize)]
struct BucketHeader {
    key: PartitionKey,
    known: bool,
    count: u64,
    len: u64,
}

/// Reads one bucket file as a stream into `buckets`, each partition's records in pieces of
/// whole records of about `block` bytes, so no partition is held whole. Returns its bytes.
async fn absorb_bucket_file(
    lake: &Location,
    path: &str,
    buckets: &mut Buckets,
    block: usize,
    missing: impl FnOnce() -> Error,
) -> Result<u64> {
    use object_store::ObjectStoreExt;
    let full = lake.path(path);
    let got = match lake.store().get(&full).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Err(missing()),
        Err(e) => return Err(Error::store(&full, e)),
    };
    let mut body = got.into_stream();
    let mut parser = BucketParser::new(path, block);
    let mut bytes = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::store(&full, e))?;
        bytes += chunk.len() as u64;
        parser.feed(&chunk, buckets)?;
    }
    parser.finish(buckets)?;
    Ok(bytes)
}

/// Splits a bucket file fed in arbitrary chunks into its partitions' pieces.
struct BucketParser<'a> {
    path: &'a str,
    block: usize,
    pending: Vec<u8>,
    /// The partition being read and its bytes still to come.
    current: Option<(BucketHeader, u64)>,
}

impl<'a> BucketParser<'a> {
    fn new(path: &'a str, block: usize) -> Self {
        BucketParser {
            path,
            block: block.max(1),
            pending: Vec::new(),
            current: None,
        }
    }

    fn bad(&self, what: &str) -> Error {
        Error::metadata(self.path, format!("bucket file: {what}"))
    }

    fn feed(&mut self, chunk: &[u8], buckets: &mut Buckets) -> Result<()> {
        self.pending.extend_from_slice(chunk);
        loop {
            match &mut self.current {
                None => {
                    let Some(nl) = self.pending.iter().position(|&b| b == b'\n') else {
                        return Ok(());
                    };
                    let h: BucketHeader = serde_json::from_slice(&self.pending[..nl])
                        .map_err(|e| self.bad(&e.to_string()))?;
                    self.pending.drain(..=nl);
                    let len = h.len;
                    self.current = Some((h, len));
                }
                Some((h, left)) => {
                    let ready = (*left).min(self.pending.len() as u64) as usize;
                    let last = ready as u64 == *left;
                    if !last && ready < self.block {
                        return Ok(());
                    }
                    let take = match last {
                        true => ready,
                        false => crate::dedup::codec::whole_records(&self.pending[..ready]),
                    };
                    if take == 0 && !last {
                        // One record longer than a block: wait for the rest of it.
                        return Ok(());
                    }
                    let piece: Vec<u8> = self.pending.drain(..take).collect();
                    *left -= take as u64;
                    let count = match last && *left == 0 {
                        true => h.count,
                        false => crate::dedup::codec::count_records(&piece),
                    };
                    h.count -= count.min(h.count);
                    let mut one = LocalBuckets::default();
                    one.insert(h.key.clone(), Bucket::encoded(h.known, count, piece));
                    buckets.absorb(one)?;
                    if *left == 0 {
                        self.current = None;
                    }
                }
            }
        }
    }

    fn finish(&mut self, buckets: &mut Buckets) -> Result<()> {
        self.feed(&[], buckets)?;
        if self.current.is_some() || !self.pending.is_empty() {
            return Err(self.bad("truncated"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_file_fed_in_any_chunks_gives_each_partition_whole() {
        let key = |m: &str| PartitionKey {
            tenant: "t01".into(),
            metric: m.into(),
            day: 3,
        };
        let mut file = Vec::new();
        let mut want = Vec::new();
        for (m, n) in [("a", 40u64), ("b", 0), ("c", 7)] {
            let mut body = Vec::new();
            for i in 0..n {
                let name = "x".repeat(i as usize % 90);
                crate::dedup::codec::encode(&mut body, i as i64, 0, i, &name, &[]);
            }
            let h = BucketHeader {
                key: key(m),
                known: true,
                count: n,
                len: body.len() as u64,
            };
            file.extend(serde_json::to_vec(&h).unwrap());
            file.push(b'\n');
            file.extend_from_slice(&body);
            want.push((key(m), n, body));
        }
        for (chunk, block) in [(1, 1), (7, 50), (64, 10), (file.len(), 1 << 20)] {
            let mut buckets = Buckets::new(usize::MAX);
            let mut p = BucketParser::new("f", block);
            for piece in file.chunks(chunk) {
                p.feed(piece, &mut buckets).unwrap();
            }
            p.finish(&mut buckets).unwrap();
            for (k, n, body) in &want {
                let b = buckets.take(k).unwrap();
                assert_eq!((b.count, &b.buf), (*n, body), "{k:?} chunk {chunk}");
            }
        }
        let mut p = BucketParser::new("f", 10);
        let mut buckets = Buckets::new(usize::MAX);
        p.feed(&file[..file.len() - 1], &mut buckets).unwrap();
        assert!(p.finish(&mut buckets).is_err(), "a cut file is refused");
    }
}
