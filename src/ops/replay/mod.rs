//! `replay`: reprocess the archived objects delivered in a window (SPEC 12), after a bug fix or
//! a catalog change, through the same plan -> stage -> commit -> publish path as `compact`.
//! Plans which partitions the window's objects fed ([`plan`]), reads every archived object that
//! fed them, rebuilds each from those objects alone, and replaces them in one lake commit, in
//! the lake or (`--to`) in another lake, leaving the source untouched (a dark launch).

mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use crate::catalog::Catalog;
use crate::commit::log::{CommitRecord, PartitionChange, StagedCopy};
use crate::commit::shards::Scope;
use crate::commit::{after_lost_race, applied, publish, Attempt, LakeLog, Ledger};
use crate::dedup::{codec, Keep};
use crate::error::{Error, Result};
use crate::model::{PartitionKey, Rec};
use crate::ops::compact::partition::{self, PartitionCtx, PartitionJob, PartitionPaths, Rebuilder};
use crate::ops::compact::plan::ledger_entry;
use crate::ops::compact::read::read_objects;
use crate::ops::compact::retype;
use crate::ops::options::{Common, CommonOptions, Pipeline, PipelineOptions};
use crate::report::{ReplayCounts, RunReport};
use crate::sources::{list_staged, StagedObject};
use crate::storage::Location;
use crate::write::index::DataFile;

pub use plan::ReplayPlan;

/// The `replay` operation, configured with `with_*` and run with [`Replay::execute`].
pub struct Replay {
    staged: Location,
    lake: Location,
    to: Option<Location>,
    since_ms: i64,
    until_ms: i64,
    dry_run: bool,
    pipeline: Pipeline,
    common: Common,
}

impl CommonOptions for Replay {
    fn common(&mut self) -> &mut Common {
        &mut self.common
    }
}

impl PipelineOptions for Replay {
    fn pipeline(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }
}

impl Replay {
    /// Replays the objects of `staged` delivered in `[since_ms, until_ms)` into `lake`.
    pub fn new(staged: Location, lake: Location, since_ms: i64, until_ms: i64) -> Result<Self> {
        if since_ms >= until_ms {
            return Err(Error::InvalidOption(
                "the window is empty: --since must be before --until".into(),
            ));
        }
        Ok(Replay {
            staged,
            lake,
            to: None,
            since_ms,
            until_ms,
            dry_run: false,
            pipeline: Pipeline::default(),
            common: Common::default(),
        })
    }

    /// Writes the rebuilt partitions into this lake instead (a dark launch); the source lake is
    /// only read.
    pub fn with_to(mut self, to: Option<Location>) -> Self {
        self.to = to;
        self
    }

    /// Plan only: list the objects and partitions, write nothing.
    pub fn with_dry_run(mut self, on: bool) -> Self {
        self.dry_run = on;
        self
    }

    fn target(&self) -> &Location {
        self.to.as_ref().unwrap_or(&self.lake)
    }

    /// Runs the replay; its report is also kept under the target lake's `_runs/`.
    pub async fn execute(self) -> Result<RunReport> {
        let started = Instant::now();
        let mut report = RunReport::start("replay");
        let catalog = Arc::new(self.pipeline.load_catalog(&self.lake).await?);
        let mut counts = ReplayCounts::default();
        loop {
            report.attempts += 1;
            match self.attempt(&catalog, &mut report, &mut counts).await? {
                Attempt::Done => break,
                Attempt::LostRace { version, other } => {
                    let max = self.pipeline.max_attempts;
                    after_lost_race(report.attempts, max, version, other, "replay")?;
                }
            }
        }
        report.replay = Some(counts);
        let runs = (!self.dry_run && !report.noop).then_some(self.target());
        report
            .finish(started, runs, self.common.report.as_ref())
            .await?;
        Ok(report)
    }

    /// The target's base version (its interrupted publish rolled forward, except on a dry
    /// run) and the source lake's version it reads (only read when it is not the target).
    async fn versions(&self, report: &mut RunReport) -> Result<(u64, u64)> {
        let target = self.target();
        let base = match self.dry_run {
            true => LakeLog::new(target).latest().await?,
            false => roll_forward(target, report).await?,
        };
        let source = match (&self.to, self.dry_run) {
            (None, false) => base,
            _ => LakeLog::new(&self.lake).latest_published().await?,
        };
        Ok((base, source))
    }

    async fn attempt(
        &self,
        catalog: &Arc<Catalog>,
        report: &mut RunReport,
        counts: &mut ReplayCounts,
    ) -> Result<Attempt> {
        // Counts describe the attempt that committed; time and recovery accumulate.
        *report = RunReport {
            attempts: report.attempts,
            phases: std::mem::take(&mut report.phases),
            recovered_versions: std::mem::take(&mut report.recovered_versions),
            ..RunReport::start("replay")
        };
        report.conservation_ok = true;
        let (base, source_base) = self.versions(report).await?;
        report.base_version = base;
        let listed = list_staged(&self.staged).await?;
        let window: Vec<StagedObject> = listed
            .iter()
            .filter(|o| o.delivery_ms >= self.since_ms && o.delivery_ms < self.until_ms)
            .cloned()
            .collect();
        *counts = ReplayCounts {
            since: ms_text(self.since_ms),
            until: ms_text(self.until_ms),
            to: self.to.as_ref().map(|l| l.url().to_string()),
            dry_run: self.dry_run,
            objects_listed: listed.len() as u64,
            ..Default::default()
        };
        if window.is_empty() {
            let message = format!(
                "the window [{}, {}) holds no archived object ({} listed): nothing to replay",
                counts.since, counts.until, counts.objects_listed
            );
            return Ok(noop(report, message));
        }
        let log = LakeLog::new(&self.lake);
        let ledger = Ledger::load(&self.lake, &log, source_base, &Scope::All).await?;
        let built_with = Catalog::from_docs(applied::load(&self.lake).await?.into_values())?;
        let sources = plan::Sources {
            staged: &self.staged,
            lake: &self.lake,
            target: self.to.as_ref(),
            listed: &listed,
            ledger: &ledger,
            old: &built_with,
            new: catalog,
            limits: self.pipeline.read.limits,
            concurrency: self.pipeline.read.fetch_concurrency,
        };
        let plan = plan::plan(&sources, window).await?;
        describe(&plan, counts);
        if plan.window.is_empty() {
            let message = format!(
                "none of the window's {} objects was compacted yet: nothing to replay (compact them)",
                plan.unprocessed.len()
            );
            return Ok(noop(report, message));
        }
        if self.dry_run {
            report.run_id = format!(
                "replay-dry-run-{}",
                chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
            );
            report.message = format!(
                "dry run: would rebuild {} partitions from {} archived objects ({} in the window); nothing was written",
                plan.partitions.len(),
                plan.objects.len(),
                plan.window.len()
            );
            return Ok(Attempt::Done);
        }
        let id = replay_id(&plan, catalog, self.pipeline.keep);
        let tlog = LakeLog::new(self.target());
        if base > 0 && tlog.read(base).await?.tag.ends_with(&id) {
            // A rerun of a replay that committed (its publish may just have been rolled
            // forward): the lake already is what it asks for.
            let message = format!("already replayed: lake version {base} is this replay");
            return Ok(noop(report, message));
        }
        let version = base + 1;
        let tag = format!("v{version:06}-{id}");
        report.run_id = tag.clone();
        self.stage_and_commit(&plan, catalog, &tag, version, report, counts)
            .await
    }

    /// Reads the plan's objects, rebuilds its partitions (and re-types the target's other
    /// partitions when the replay's catalog is not the one it was built with), commits.
    async fn stage_and_commit(
        &self,
        plan: &ReplayPlan,
        catalog: &Arc<Catalog>,
        tag: &str,
        version: u64,
        report: &mut RunReport,
        counts: &mut ReplayCounts,
    ) -> Result<Attempt> {
        let target = self.target();
        let retype = retype::plan(target, catalog).await?;
        self.common
            .progress
            .start("read", Some(plan.objects.len() as u64));
        let settings = self.pipeline.read;
        let progress = self.common.progress.as_ref();
        let objects = &plan.objects;
        let mut read = read_objects(
            &self.staged,
            objects,
            0,
            catalog.clone(),
            &settings,
            tag,
            progress,
        )
        .await?;
        self.common.progress.finish();
        let r = &mut report.records;
        report.objects.read = plan.objects.len() as u64;
        report.objects.bytes_read = read.bytes_read;
        r.records_in = read.records_in;
        r.errors = read.quarantine.errors();
        r.errors_by_reason = read.quarantine.errors_by_reason.clone();
        report.spilled_bytes = read.buckets.spilled_bytes;
        let errors = crate::quarantine::stage(target, tag, &read.quarantine).await?;
        let fed = std::mem::take(&mut read.fed);
        let good = read.good_records;
        let (mut changes, taken) = self
            .rebuild_all(plan, read.buckets, catalog, tag, version, report)
            .await?;
        changes.extend(
            self.retype_others(plan, &retype, catalog, tag, version)
                .await?,
        );
        counts.records_taken = taken;
        counts.records_elsewhere = good - taken;
        let r = &report.records;
        let merged = r.written + r.duplicates.exact + r.duplicates.conflicting;
        report.conservation_ok = merged == taken && r.records_in == good + r.errors;
        if !report.conservation_ok {
            return Err(Error::Conservation(format!(
                "replay: {} records in = {good} good + {} errors; {taken} taken != {merged} merged",
                r.records_in, r.errors
            )));
        }
        counts.partitions_emptied = changes
            .iter()
            .filter(|c| c.index_staged.is_none())
            .map(|c| format!("{}/{}/{}", c.tenant, c.metric, c.date))
            .collect();
        let mut files = Vec::new();
        if let Some(applied) = retype.applied.clone() {
            let staged = format!("_fineo/staging/{tag}/files/{}", applied::APPLIED_PATH);
            target.put(&staged, applied).await?;
            files.push(StagedCopy {
                staged,
                path: applied::APPLIED_PATH.into(),
            });
        }
        // In place, the lake remembers where the objects' records go now.
        let (ledger, fed) = match &self.to {
            Some(_) => (Vec::new(), None),
            None => {
                let keys = plan.objects.iter().map(|o| o.key.clone());
                let objects: Vec<(String, Vec<_>)> = keys.zip(fed).collect();
                let path = crate::commit::fed::write(target, tag, &objects).await?;
                let entries = plan
                    .objects
                    .iter()
                    .map(|o| ledger_entry(o, version))
                    .collect();
                (entries, Some(path))
            }
        };
        let record = CommitRecord {
            version,
            run_id: tag.to_string(),
            tag: tag.to_string(),
            committed_ms: chrono::Utc::now().timestamp_millis(),
            ledger,
            partitions: changes,
            errors,
            files,
            schemas: retype.schemas.clone(),
            creates: Vec::new(),
            ledger_removed: Vec::new(),
            fed,
            watermark: None,
        };
        if let Some(lost) = crate::commit::create(target, &record, |_| false).await? {
            return Ok(lost);
        }
        self.common.progress.start("publish", None);
        let stats = publish(target, &record).await?;
        self.common.progress.finish();
        report.committed_version = Some(version);
        report.output.partitions_touched = record.partitions.len() as u64;
        report.output.files_added = stats.files_added;
        report.output.files_removed = stats.files_removed;
        report.output.tables_touched = stats.tables;
        report.retype.tenants = retype.tenants.clone();
        report.message = format!(
            "replayed {} archived objects ({} in the window) into {} partitions as lake version {version}{}",
            plan.objects.len(),
            plan.window.len(),
            plan.partitions.len(),
            match &self.to {
                Some(l) => format!(" of {}", l.url()),
                None => String::new(),
            }
        );
        Ok(Attempt::Done)
    }

    /// The target's other partitions a catalog change re-types, from their stored records (as
    /// a compaction with the replay's catalog would).
    async fn retype_others(
        &self,
        plan: &ReplayPlan,
        retype: &retype::RetypePlan,
        catalog: &Arc<Catalog>,
        tag: &str,
        version: u64,
    ) -> Result<Vec<PartitionChange>> {
        let ctx = PartitionCtx {
            lake: self.target().clone(),
            catalog: catalog.clone(),
            objects: Arc::new(Vec::new()),
            keep: self.pipeline.keep,
            tag: tag.to_string(),
            version,
            proposals: false,
            memory_share: crate::ops::compact::partition::memory_share(
                self.pipeline.read.memory_budget,
            ),
        };
        let mut out = Vec::new();
        for (key, job) in &retype.jobs {
            if plan.partitions.contains(key) {
                continue;
            }
            let job = PartitionJob {
                key: key.clone(),
                bucket: Default::default(),
                sources: job.sources.iter().cloned().collect(),
                retype: job.retype,
            };
            out.push(partition::build(&ctx, job).await?.change);
        }
        Ok(out)
    }

    /// Rebuilds every planned partition from the records read; returns the changes and the
    /// records taken.
    async fn rebuild_all(
        &self,
        plan: &ReplayPlan,
        buckets: crate::dedup::Buckets,
        catalog: &Arc<Catalog>,
        tag: &str,
        version: u64,
        report: &mut RunReport,
    ) -> Result<(Vec<PartitionChange>, u64)> {
        let target = self.target();
        let objects: Arc<Vec<(Arc<str>, i64)>> = Arc::new(
            plan.objects
                .iter()
                .map(|o| (Arc::from(o.key.as_str()), o.delivery_ms))
                .collect(),
        );
        // A partition larger than its memory share is taken streamed and rebuilt on disk.
        let share = crate::ops::compact::partition::memory_share(self.pipeline.read.memory_budget);
        let buckets = std::sync::Mutex::new(buckets.with_join_limit(share));
        let on_disk = PartitionCtx {
            lake: target.clone(),
            catalog: catalog.clone(),
            objects: objects.clone(),
            keep: self.pipeline.keep,
            tag: tag.to_string(),
            version,
            proposals: false,
            memory_share: share,
        };
        let rebuilder = Rebuilder {
            lake: target,
            tag,
            version,
            catalog,
            keep: self.pipeline.keep,
        };
        self.common
            .progress
            .start("rebuild", Some(plan.partitions.len() as u64));
        let mut results = futures::stream::iter(&plan.partitions)
            .map(|key| {
                let (buckets, objects, rebuilder) = (&buckets, objects.clone(), &rebuilder);
                let on_disk = &on_disk;
                async move {
                    let mut bucket = buckets.lock().expect("buckets lock").take(key)?;
                    if bucket.streamed() {
                        let typed = self.current(plan, key).unwrap_or_default();
                        let (change, n, facts) =
                            rebuild_on_disk(on_disk, key, bucket, typed).await?;
                        return Ok(Some((change, n, facts, true)));
                    }
                    let mut recs: Vec<Rec> = Vec::with_capacity(bucket.count as usize);
                    let mut names = codec::Interner::default();
                    let buf = bytes::Bytes::from(std::mem::take(&mut bucket.buf));
                    codec::decode_all(&buf, &objects, &mut names, &mut recs);
                    let current = self.current(plan, key);
                    if recs.is_empty() {
                        let change =
                            current.map(|typed| (empty(key, typed, catalog), 0, None, false));
                        return Ok::<_, Error>(change);
                    }
                    let n = recs.len() as u64;
                    let typed = current.unwrap_or_default();
                    let r = rebuilder
                        .rebuild(key, Vec::new(), recs, typed, Vec::new())
                        .await?;
                    let facts = (r.stats, r.typed_rows, r.untyped_lines, r.bytes);
                    Ok(Some((r.change, n, Some(facts), false)))
                }
            })
            .buffered(self.common.concurrency);
        let (mut changes, mut taken) = (Vec::new(), 0u64);
        while let Some(done) = results.next().await {
            self.common.progress.advance(1, 0);
            let Some((change, n, built, on_disk)) = done? else {
                continue;
            };
            taken += n;
            if let Some((s, typed, untyped, bytes)) = built {
                let r = &mut report.records;
                r.written += s.written;
                r.duplicates.exact += s.duplicates_exact;
                r.duplicates.conflicting += s.duplicates_conflicting;
                report.output.typed_rows += typed;
                report.output.untyped_lines += untyped;
                report.output.bytes_written += bytes;
            }
            report.output.partitions_merged_on_disk += u64::from(on_disk);
            changes.push(change);
        }
        self.common.progress.finish();
        Ok((changes, taken))
    }

    /// The typed files partition `key` has in the target now (`None`: the target does not
    /// hold it).
    fn current(&self, plan: &ReplayPlan, key: &PartitionKey) -> Option<Vec<DataFile>> {
        let stored = match &self.to {
            None => &plan.stored,
            Some(_) => &plan.target_stored,
        };
        stored.get(key).map(|s| s.typed.clone())
    }
}

/// Ends an attempt that has nothing to do.
fn noop(report: &mut RunReport, message: String) -> Attempt {
    report.noop = true;
    report.run_id = format!(
        "replay-noop-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
    );
    report.message = message;
    Attempt::Done
}

/// The latest version of a lake, its interrupted publish rolled forward.
async fn roll_forward(lake: &Location, report: &mut RunReport) -> Result<u64> {
    let (base, recovered) = crate::commit::latest_published(lake).await?;
    if recovered {
        report.recovered_versions.push(base);
    }
    Ok(base)
}

/// The change that empties a partition the replay's records no longer reach.
fn empty(key: &PartitionKey, typed: Vec<DataFile>, catalog: &Catalog) -> PartitionChange {
    let paths = PartitionPaths::of(key);
    PartitionChange {
        tenant: key.tenant.clone(),
        metric: key.metric.clone(),
        date: key.date(),
        columns: catalog
            .metric(&key.tenant, &key.metric)
            .filter(|s| s.name == key.metric)
            .map(|s| {
                s.columns()
                    .iter()
                    .map(|(n, t)| (n.to_string(), *t))
                    .collect()
            }),
        typed_add: Vec::new(),
        typed_remove: typed,
        untyped_staged: None,
        untyped_kept: false,
        untyped_path: paths.untyped,
        index_staged: None,
        index_path: paths.index,
    }
}

/// What the plan takes, in the report.
fn describe(plan: &ReplayPlan, counts: &mut ReplayCounts) {
    counts.window_objects = plan.window.iter().map(|o| o.key.clone()).collect();
    counts.unprocessed_objects = plan.unprocessed.clone();
    counts.objects_read = plan.objects.len() as u64;
    counts.etag_changed = plan.etag_changed.clone();
    counts.objects_outside_window = (plan.objects.len() - plan.window.len()) as u64;
    counts.partitions = plan
        .partitions
        .iter()
        .map(|p| format!("{}/{}/{}", p.tenant, p.metric, p.date()))
        .collect();
}

/// What identifies a replay whatever the lake version: the objects it reads, the partitions it
/// rebuilds, the catalog and the release (a new release may build them differently). The same
/// id gives the same file names.
fn replay_id(plan: &ReplayPlan, catalog: &Catalog, keep: Keep) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(format!("{keep:?}").as_bytes());
    for o in &plan.objects {
        h.update(o.key.as_bytes());
        h.update(&o.size.to_le_bytes());
        h.update(o.etag.as_deref().unwrap_or("").as_bytes());
        h.update(b"\n");
    }
    for p in &plan.partitions {
        h.update(format!("{}/{}/{}\n", p.tenant, p.metric, p.day).as_bytes());
    }
    let mut docs: BTreeMap<&str, String> = BTreeMap::new();
    for t in catalog.tenants() {
        docs.insert(
            &t.doc.tenant,
            serde_json::to_string(&t.doc).expect("catalog json"),
        );
    }
    for d in docs.values() {
        h.update(d.as_bytes());
    }
    format!("replay-{:016x}", h.digest())
}

fn ms_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Rebuilds a partition whose records are larger than their memory share through sorted runs
/// on disk (the files the in-memory rebuild writes); `typed` are the files it replaces.
async fn rebuild_on_disk(
    ctx: &PartitionCtx,
    key: &PartitionKey,
    bucket: crate::dedup::Bucket,
    typed: Vec<crate::write::index::DataFile>,
) -> Result<(PartitionChange, u64, Option<RebuiltFacts>)> {
    use crate::ops::compact::external::{self, LakeInputs, Scratch};
    let n = bucket.count;
    let job = PartitionJob {
        key: key.clone(),
        bucket,
        sources: Vec::new(),
        retype: false,
    };
    let lake = LakeInputs {
        own: None,
        moved: Vec::new(),
    };
    let mut r = external::build(ctx, job, lake, Scratch::default()).await?;
    r.change.typed_remove = typed;
    let facts = (r.stats, r.typed_rows, r.untyped_lines, r.bytes_written);
    Ok((r.change, n, Some(facts)))
}

/// What a rebuilt partition counts: merge stats, typed rows, untyped lines, bytes written.
type RebuiltFacts = (crate::dedup::MergeStats, u64, u64, u64);
