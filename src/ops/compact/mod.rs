//! `compact`: staged archive -> deduplicated lake. Plans from the ledger, reads and buckets
//! new objects, merges each touched partition, commits one lake version, publishes it.

pub(crate) mod partition;
pub(crate) mod plan;
pub(crate) mod read;
pub(crate) mod retype;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;

pub use partition::PartitionPaths;
pub use read::on_rayon;

use crate::catalog::Catalog;
use crate::commit::log::{CommitRecord, StagedCopy};
use crate::commit::{after_lost_race, publish, Attempt, LakeLog, Ledger};
use crate::error::{Error, Result};
use crate::model::PartitionKey;
use crate::ops::options::{Pipeline, PipelineOptions};
use crate::progress::{peak_rss_bytes, NoProgress, Progress};
use crate::report::CompactReport;
use crate::schema::propose::{MetricObs, ProposalDoc};
use crate::sources::list_staged;
use crate::storage::{FileTarget, Location};
use plan::{ledger_entry, plan, run_tag};

/// The `compact` operation, configured with `with_*` and run with [`Compact::execute`].
pub struct Compact {
    staged: Location,
    lake: Location,
    pipeline: Pipeline,
    report: Option<FileTarget>,
    partition_concurrency: usize,
    proposals: bool,
    progress: Arc<dyn Progress>,
}

impl PipelineOptions for Compact {
    fn pipeline(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }
}

impl Compact {
    /// Compacts `staged` into `lake`.
    pub fn new(staged: Location, lake: Location) -> Self {
        Compact {
            staged,
            lake,
            pipeline: Pipeline::default(),
            report: None,
            partition_concurrency: 4,
            proposals: true,
            progress: Arc::new(NoProgress),
        }
    }

    /// Also writes the JSON report to this file (parsed with the run's storage settings).
    pub fn with_report(mut self, report: Option<FileTarget>) -> Self {
        self.report = report;
        self
    }

    /// Whether to update the schema proposals of the tenants seen (on by default).
    pub fn with_proposals(mut self, on: bool) -> Self {
        self.proposals = on;
        self
    }

    /// Where progress goes.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Runs the compaction and returns its report (also written under `<lake>/_runs/`).
    pub async fn execute(self) -> Result<CompactReport> {
        let started = Instant::now();
        let mut report = CompactReport {
            command: "compact".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            started_at: chrono::Utc::now().to_rfc3339(),
            ..Default::default()
        };
        let catalog = Arc::new(self.pipeline.load_catalog(&self.lake).await?);
        loop {
            report.attempts += 1;
            match self.attempt(&catalog, &mut report).await? {
                Attempt::Done => break,
                Attempt::LostRace { version, other } => {
                    let max = self.pipeline.max_attempts;
                    after_lost_race(report.attempts, max, version, other, "compaction")?;
                }
            }
        }
        report.elapsed_seconds = started.elapsed().as_secs_f64();
        report.peak_rss_bytes = peak_rss_bytes();
        self.write_report(&report).await?;
        Ok(report)
    }

    async fn attempt(&self, catalog: &Arc<Catalog>, report: &mut CompactReport) -> Result<Attempt> {
        // Counts describe the attempt that committed; time and recovery accumulate.
        *report = CompactReport {
            command: std::mem::take(&mut report.command),
            tool_version: std::mem::take(&mut report.tool_version),
            started_at: std::mem::take(&mut report.started_at),
            attempts: report.attempts,
            phases: std::mem::take(&mut report.phases),
            recovered_versions: std::mem::take(&mut report.recovered_versions),
            ..Default::default()
        };
        let mut phase = PhaseClock::new(report);
        let log = LakeLog::new(&self.lake);
        let (base, recovered) = crate::commit::latest_published(&self.lake).await?;
        if recovered {
            phase.report.recovered_versions.push(base);
        }
        phase.report.base_version = base;
        let ledger = Ledger::load(&self.lake, &log, base).await?;
        self.progress.start("list", None);
        let listed = list_staged(&self.staged).await?;
        self.progress.finish();
        let new = plan(&listed, &ledger, phase.report);
        let new = plan::ready(&self.staged, new, phase.report).await?;
        let retype = retype::plan(&self.lake, catalog).await?;
        phase.lap("plan");
        if new.is_empty() && retype.applied.is_none() {
            phase.report.noop = true;
            phase.report.run_id =
                format!("noop-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f"));
            phase.report.message = "nothing new to compact: the lake is unchanged".into();
            phase.report.conservation_ok = true;
            return Ok(Attempt::Done);
        }
        let version = base + 1;
        let tag = run_tag(base, &new, &self.settings_fingerprint(catalog));
        phase.report.run_id = tag.clone();

        self.progress.start("read", Some(new.len() as u64));
        let settings = self.pipeline.read;
        let mut read = read::read_objects(
            &self.staged,
            &new,
            catalog.clone(),
            &settings,
            &tag,
            self.progress.as_ref(),
        )
        .await?;
        self.progress.finish();
        phase.lap("read");
        let r = &mut phase.report;
        r.objects.read = new.len() as u64;
        r.objects.bytes_read = read.bytes_read;
        r.objects.by_format = std::mem::take(&mut read.by_format);
        r.records.records_in = read.records_in;
        r.records.errors = read.quarantine.errors();
        r.records.errors_by_reason = read.quarantine.errors_by_reason.clone();
        r.objects.damaged = read.quarantine.damaged.clone();

        let mut keys: std::collections::BTreeSet<PartitionKey> =
            read.buckets.keys().into_iter().collect();
        keys.extend(retype.jobs.keys().cloned());
        phase.report.retype.tenants = retype.tenants.clone();
        let ctx = partition::PartitionCtx {
            lake: self.lake.clone(),
            catalog: catalog.clone(),
            objects: Arc::new(
                new.iter()
                    .map(|o| (Arc::from(o.key.as_str()), o.delivery_ms))
                    .collect(),
            ),
            keep: self.pipeline.keep,
            tag: tag.clone(),
            version,
            proposals: self.proposals,
        };
        self.progress.start("merge", Some(keys.len() as u64));
        phase.report.spilled_bytes = read.buckets.spilled_bytes;
        // Buckets are taken (and spilled ones read back) only as partitions are merged, so
        // memory holds `partition_concurrency` partitions, not the whole input.
        let buckets = std::sync::Mutex::new(read.buckets);
        let take = |key: PartitionKey| -> Result<_> {
            let bucket = buckets.lock().expect("buckets lock").take(&key)?;
            let job = retype.jobs.get(&key).cloned().unwrap_or_default();
            Ok(partition::PartitionJob {
                key,
                bucket,
                sources: job.sources.into_iter().collect(),
                retype: job.retype,
            })
        };
        let mut results = futures::stream::iter(keys)
            .map(|key| {
                let job = take(key);
                let ctx = &ctx;
                async move { partition::build(ctx, job?).await }
            })
            .buffered(self.partition_concurrency);
        let mut changes = Vec::new();
        let mut observed: BTreeMap<String, BTreeMap<String, MetricObs>> = BTreeMap::new();
        let mut good_accounted = 0u64;
        let mut tables = std::collections::BTreeSet::new();
        while let Some(res) = results.next().await {
            let res = res?;
            self.progress.advance(1, 0);
            if let Some(obs) = res.observed {
                let per_tenant = observed.entry(res.change.tenant.clone()).or_default();
                match per_tenant.entry(res.change.metric.clone()) {
                    std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(obs),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(obs);
                    }
                }
            }
            let (r, s) = (&mut phase.report, &res.stats);
            r.records.written += s.written;
            r.records.duplicates.exact += s.duplicates_exact;
            r.records.duplicates.conflicting += s.duplicates_conflicting;
            r.records.lake_records_replaced += s.lake_replaced;
            good_accounted += s.written + s.duplicates_exact + s.duplicates_conflicting;
            r.output.typed_rows += res.typed_rows;
            r.output.untyped_lines += res.untyped_lines;
            r.output.bytes_written += res.bytes_written;
            r.output.partitions_touched += 1;
            r.retype.records += res.retyped;
            r.retype.partitions += u64::from(res.rebuilt);
            for (f, n) in &res.mismatches {
                let k = format!("{}/{}/{f}", res.change.tenant, res.change.metric);
                *r.records.type_mismatches.entry(k).or_default() += n;
            }
            if res.change.columns.is_some() || !res.change.typed_remove.is_empty() {
                tables.insert((res.change.tenant.clone(), res.change.metric.clone()));
            }
            changes.push(res.change);
        }
        drop(results);
        self.progress.finish();
        phase.report.output.tables_touched = tables.len() as u64;
        phase.lap("merge_write");
        check_conservation(phase.report, read.good_records, good_accounted)?;

        let errors = crate::quarantine::stage(&self.lake, &tag, &read.quarantine).await?;
        let mut files = Vec::new();
        if let Some(applied) = retype.applied.clone() {
            files.push(self.stage(&tag, retype::APPLIED_PATH, applied).await?);
        }
        for (tenant, run) in &observed {
            let prev = ProposalDoc::load(&self.lake, tenant).await?;
            let doc = ProposalDoc::merge_run(prev, tenant, run, catalog.tenant(tenant), version);
            let path = ProposalDoc::path(tenant);
            files.push(self.stage(&tag, &path, doc.to_bytes()).await?);
        }
        phase.report.proposals.tenants = observed.keys().cloned().collect();
        let fed = match new.is_empty() {
            true => None,
            false => {
                let objects: Vec<(String, Vec<_>)> = new
                    .iter()
                    .zip(std::mem::take(&mut read.fed))
                    .map(|(o, f)| (o.key.clone(), f))
                    .collect();
                Some(crate::commit::fed::write(&self.lake, &tag, &objects).await?)
            }
        };
        let record = CommitRecord {
            version,
            run_id: tag.clone(),
            tag: tag.clone(),
            committed_ms: chrono::Utc::now().timestamp_millis(),
            ledger: new.iter().map(|o| ledger_entry(o, version)).collect(),
            partitions: changes,
            errors,
            files,
            schemas: retype.schemas.clone(),
            creates: Vec::new(),
            ledger_removed: Vec::new(),
            fed,
        };
        if let Some(lost) = crate::commit::create(&self.lake, &record, |_| false).await? {
            return Ok(lost);
        }
        phase.lap("commit");
        self.progress.start("publish", None);
        let stats = publish(&self.lake, &record).await?;
        self.progress.finish();
        phase.lap("publish");
        let r = &mut phase.report;
        r.committed_version = Some(version);
        r.output.files_added = stats.files_added;
        r.output.files_removed = stats.files_removed;
        r.message = format!("committed lake version {version}");
        Ok(Attempt::Done)
    }

    /// Stages one file to be copied to `path` on publish.
    async fn stage(&self, tag: &str, path: &str, bytes: Bytes) -> Result<StagedCopy> {
        let staged = format!("_fineo/staging/{tag}/files/{path}");
        self.lake.put(&staged, bytes).await?;
        Ok(StagedCopy {
            staged,
            path: path.to_string(),
        })
    }

    /// What, besides the input, decides the output: the catalog and the keep policy. Runs that
    /// differ in them never share file names.
    fn settings_fingerprint(&self, catalog: &Catalog) -> String {
        let mut docs: Vec<String> = catalog
            .tenants()
            .map(|t| serde_json::to_string(&t.doc).expect("catalog json"))
            .collect();
        docs.sort();
        format!(
            "{:?} {}\n{}",
            self.pipeline.keep,
            self.proposals,
            docs.join("\n")
        )
    }

    async fn write_report(&self, report: &CompactReport) -> Result<()> {
        let json = Bytes::from(serde_json::to_vec_pretty(report).expect("report json"));
        self.lake
            .put(&format!("_runs/{}.json", report.run_id), json.clone())
            .await?;
        if let Some(dest) = &self.report {
            dest.put(json).await?;
        }
        Ok(())
    }
}

fn check_conservation(report: &mut CompactReport, good: u64, accounted: u64) -> Result<()> {
    let r = &report.records;
    let total = r.written + r.duplicates.exact + r.duplicates.conflicting + r.errors;
    report.conservation_ok = total == r.records_in && good == accounted;
    if !report.conservation_ok {
        return Err(Error::Conservation(format!(
            "records_in {} != written {} + duplicates {} + errors {} (decoded good {good}, merged {accounted})",
            r.records_in,
            r.written,
            r.duplicates.exact + r.duplicates.conflicting,
            r.errors
        )));
    }
    Ok(())
}

struct PhaseClock<'a> {
    report: &'a mut CompactReport,
    at: Instant,
}

impl<'a> PhaseClock<'a> {
    fn new(report: &'a mut CompactReport) -> Self {
        PhaseClock {
            report,
            at: Instant::now(),
        }
    }

    fn lap(&mut self, name: &str) {
        let now = Instant::now();
        *self.report.phases.entry(name.to_string()).or_default() += (now - self.at).as_secs_f64();
        self.at = now;
    }
}
