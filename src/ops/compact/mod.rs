//! `compact`: staged archive -> deduplicated lake. Plans from the ledger, reads and buckets
//! new objects, merges each touched partition, commits one lake version, publishes it.

pub(crate) mod append;
pub(crate) mod external;
pub mod fanout;
pub(crate) mod files;
pub(crate) mod partition;
pub(crate) mod plan;
pub(crate) mod read;
pub(crate) mod retype;
pub(crate) mod run;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;

pub use append::MAX_APPENDS;
pub use fanout::Fanout;
pub use partition::PartitionPaths;
pub use read::on_rayon;

use crate::catalog::Catalog;
use crate::commit::log::StagedCopy;
use crate::commit::{after_lost_race, Attempt};
use crate::error::{Error, Result};
use crate::model::PartitionKey;
use crate::ops::options::{Pipeline, PipelineOptions};
use crate::progress::{peak_rss_bytes, NoProgress, Progress};
use crate::report::CompactReport;
use crate::storage::{FileTarget, Location};

/// The `compact` operation, configured with `with_*` and run with [`Compact::execute`].
pub struct Compact {
    staged: Location,
    lake: Location,
    pipeline: Pipeline,
    report: Option<FileTarget>,
    partition_concurrency: usize,
    proposals: bool,
    listing: Listing,
    progress: Arc<dyn Progress>,
}

/// How a run lists the staged prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listing {
    /// List the whole prefix (and read the whole ledger), finding objects a listing from the
    /// watermark cannot: deliveries later than the lookback, keys outside the Firehose layout.
    pub reconcile: bool,
    /// Hours before the watermark's hour where a listing starts.
    pub lookback_hours: u32,
}

impl Default for Listing {
    fn default() -> Self {
        Listing {
            reconcile: false,
            lookback_hours: 3,
        }
    }
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
            listing: Listing::default(),
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

    /// How the staged prefix is listed.
    pub fn with_listing(mut self, listing: Listing) -> Self {
        self.listing = listing;
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
        let requests = || self.staged.requests() + self.lake.requests();
        let before = requests();
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
        report.requests = requests() - before;
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
        let Some(mut run) = self.plan_run(catalog, phase.report).await? else {
            return Ok(Attempt::Done);
        };
        phase.lap("plan");

        self.progress.start("read", Some(run.new.len() as u64));
        let settings = self.pipeline.read;
        let mut read = read::read_objects(
            &self.staged,
            &run.new,
            0,
            catalog.clone(),
            &settings,
            &run.tag,
            self.progress.as_ref(),
        )
        .await?;
        self.progress.finish();
        phase.lap("read");
        run::account_read(phase.report, &read.summary());

        let mut keys: std::collections::BTreeSet<PartitionKey> =
            read.buckets.keys().into_iter().collect();
        keys.extend(run.retype.jobs.keys().cloned());
        self.progress.start("merge", Some(keys.len() as u64));
        phase.report.spilled_bytes = read.buckets.spilled_bytes;
        // Buckets are taken (and spilled ones read back) only as partitions are merged, so
        // memory holds `partition_concurrency` partitions, not the whole input.
        // A partition larger than its memory share is taken streamed and merged on disk.
        let share = partition::memory_share(self.pipeline.read.memory_budget);
        let buckets = std::sync::Mutex::new(
            std::mem::replace(&mut read.buckets, crate::dedup::Buckets::new(0))
                .with_join_limit(share),
        );
        let take = |key: &PartitionKey| buckets.lock().expect("buckets lock").take(key);
        let results = self.merge_partitions(catalog, &run, keys, take).await?;
        self.progress.finish();
        phase.lap("merge_write");
        let errors = crate::quarantine::stage(&self.lake, &run.tag, &read.quarantine).await?;
        let fed: Vec<(String, Vec<read::Fed>)> = run
            .new
            .iter()
            .zip(std::mem::take(&mut read.fed))
            .map(|(o, f)| (o.key.clone(), f))
            .collect();
        let outcome = run::Outcome {
            results,
            good_records: read.good_records,
            errors,
            fed,
        };
        self.commit_run(catalog, &mut run, outcome, &mut phase)
            .await
    }

    /// Merges and writes each partition of `keys` (new records from `take`, and the catalog
    /// change's jobs), `partition_concurrency` at a time, in key order.
    pub(crate) async fn merge_partitions(
        &self,
        catalog: &Arc<Catalog>,
        run: &run::RunPlan,
        keys: std::collections::BTreeSet<PartitionKey>,
        take: impl Fn(&PartitionKey) -> Result<crate::dedup::Bucket>,
    ) -> Result<Vec<partition::PartitionResult>> {
        let ctx = partition::PartitionCtx {
            lake: self.lake.clone(),
            catalog: catalog.clone(),
            objects: Arc::new(
                run.new
                    .iter()
                    .map(|o| (Arc::from(o.key.as_str()), o.delivery_ms))
                    .collect(),
            ),
            keep: self.pipeline.keep,
            tag: run.tag.clone(),
            version: run.base + 1,
            proposals: self.proposals,
            memory_share: partition::memory_share(self.pipeline.read.memory_budget),
        };
        let job = |key: PartitionKey| -> Result<_> {
            let bucket = take(&key)?;
            let job = run.retype.jobs.get(&key).cloned().unwrap_or_default();
            Ok(partition::PartitionJob {
                key,
                bucket,
                sources: job.sources.into_iter().collect(),
                retype: job.retype,
            })
        };
        let mut stream = futures::stream::iter(keys)
            .map(|key| {
                let job = job(key);
                let ctx = &ctx;
                async move { partition::build(ctx, job?).await }
            })
            .buffered(self.partition_concurrency);
        let mut results = Vec::new();
        while let Some(res) = stream.next().await {
            results.push(res?);
            self.progress.advance(1, 0);
        }
        Ok(results)
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

pub(crate) fn check_conservation(
    report: &mut CompactReport,
    good: u64,
    accounted: u64,
) -> Result<()> {
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

pub(crate) struct PhaseClock<'a> {
    pub(crate) report: &'a mut CompactReport,
    at: Instant,
}

impl<'a> PhaseClock<'a> {
    pub(crate) fn new(report: &'a mut CompactReport) -> Self {
        PhaseClock {
            report,
            at: Instant::now(),
        }
    }

    pub(crate) fn lap(&mut self, name: &str) {
        let now = Instant::now();
        *self.report.phases.entry(name.to_string()).or_default() += (now - self.at).as_secs_f64();
        self.at = now;
    }
}
