//! The two ends of a compaction, shared by the single-process run and the fan-out: planning
//! (listing from the watermark, the ledger, the catalog change, the run tag) and committing
//! (accounting, proposals, the commit record, create, publish).

use std::collections::{BTreeMap, BTreeSet};

use super::partition::PartitionResult;
use super::plan::{self, ledger_entry, run_tag};
use super::read::{Fed, ReadSummary};
use super::retype::{self, RetypePlan};
use super::{check_conservation, Compact, PhaseClock};
use crate::catalog::Catalog;
use crate::commit::log::{CommitRecord, StagedCopy, StagedWatermark};
use crate::commit::shards::{self, dir_of, Scope};
use crate::commit::{publish, Attempt, LakeLog, Ledger};
use crate::error::Result;
use crate::report::CompactReport;
use crate::schema::propose::{MetricObs, ProposalDoc};
use crate::sources::{list_staged, list_staged_after, listing_offset, StagedObject};

/// What the next lake version takes in.
#[derive(Debug)]
pub(crate) struct RunPlan {
    /// The lake version the run builds on.
    pub base: u64,
    /// New objects, in arrival order.
    pub new: Vec<StagedObject>,
    /// The staged location's watermark after the run.
    pub watermark: Option<StagedWatermark>,
    pub retype: RetypePlan,
    /// Deterministic name part of every file the run writes.
    pub tag: String,
}

/// What the read and merge phases produced, for the commit.
pub(crate) struct Outcome {
    /// Every touched partition, in key order.
    pub results: Vec<PartitionResult>,
    /// Records decoded and admitted (the merge must account for each).
    pub good_records: u64,
    /// The run's staged quarantine files.
    pub errors: Vec<StagedCopy>,
    /// Per new object, in arrival order: the partitions it fed.
    pub fed: Vec<(String, Vec<Fed>)>,
}

impl Compact {
    /// Plans a run on the latest published version (rolling an interrupted publish forward);
    /// `None`, with the report saying so, when there is nothing to do.
    pub(crate) async fn plan_run(
        &self,
        catalog: &Catalog,
        report: &mut CompactReport,
    ) -> Result<Option<RunPlan>> {
        let (base, recovered) = crate::commit::latest_published(&self.lake).await?;
        if recovered {
            report.recovered_versions.push(base);
        }
        report.base_version = base;
        let staged_url = self.staged.url().to_string();
        let watermark = shards::load_watermarks(&self.lake, base)
            .await?
            .staged
            .remove(&staged_url);
        let offset = match self.listing.reconcile {
            true => None,
            false => watermark
                .as_deref()
                .and_then(|w| listing_offset(w, self.listing.lookback_hours)),
        };
        self.progress.start("list", None);
        let (listed, scope) = match &offset {
            Some(o) => {
                let listed = list_staged_after(&self.staged, o).await?;
                let dirs = listed.iter().map(|o| dir_of(&o.key).to_string()).collect();
                (listed, Scope::Dirs(dirs))
            }
            None => (list_staged(&self.staged).await?, Scope::All),
        };
        self.progress.finish();
        report.objects.listed_after = offset;
        let ledger = Ledger::load(&self.lake, &LakeLog::new(&self.lake), base, &scope).await?;
        let new = plan::plan(&listed, &ledger, report);
        let (new, pending) = plan::ready(&self.staged, new, report).await?;
        let watermark =
            plan::next_watermark(watermark, &new, &pending).map(|key| StagedWatermark {
                staged: staged_url,
                key,
            });
        let retype = retype::plan(&self.lake, catalog).await?;
        if new.is_empty() && retype.applied.is_none() {
            report.noop = true;
            report.run_id = format!("noop-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f"));
            report.message = "nothing new to compact: the lake is unchanged".into();
            report.conservation_ok = true;
            return Ok(None);
        }
        let tag = run_tag(base, &new, &self.settings_fingerprint(catalog));
        report.run_id = tag.clone();
        Ok(Some(RunPlan {
            base,
            new,
            watermark,
            retype,
            tag,
        }))
    }

    /// Accounts for the partitions, stages proposals and the applied catalog, and commits and
    /// publishes the run's version (or returns the lost race).
    pub(crate) async fn commit_run(
        &self,
        catalog: &Catalog,
        run: &mut RunPlan,
        outcome: Outcome,
        phase: &mut PhaseClock<'_>,
    ) -> Result<Attempt> {
        let version = run.base + 1;
        let tag = run.tag.clone();
        let mut observed: BTreeMap<String, BTreeMap<String, MetricObs>> = BTreeMap::new();
        let mut accounted = 0u64;
        let mut tables = BTreeSet::new();
        let mut changes = Vec::with_capacity(outcome.results.len());
        for res in outcome.results {
            accounted += account_partition(phase.report, &res);
            if let Some(obs) = res.observed {
                let per_tenant = observed.entry(res.change.tenant.clone()).or_default();
                match per_tenant.entry(res.change.metric.clone()) {
                    std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(obs),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(obs);
                    }
                }
            }
            if res.change.columns.is_some() || !res.change.typed_remove.is_empty() {
                tables.insert((res.change.tenant.clone(), res.change.metric.clone()));
            }
            changes.push(res.change);
        }
        phase.report.output.tables_touched = tables.len() as u64;
        phase.report.retype.tenants = run.retype.tenants.clone();
        check_conservation(phase.report, outcome.good_records, accounted)?;

        let mut files = Vec::new();
        if let Some(applied) = run.retype.applied.clone() {
            files.push(self.stage(&tag, retype::APPLIED_PATH, applied).await?);
        }
        for (tenant, obs) in &observed {
            let prev = ProposalDoc::load(&self.lake, tenant).await?;
            let doc = ProposalDoc::merge_run(prev, tenant, obs, catalog.tenant(tenant), version);
            let path = ProposalDoc::path(tenant);
            files.push(self.stage(&tag, &path, doc.to_bytes()).await?);
        }
        phase.report.proposals.tenants = observed.keys().cloned().collect();
        let fed = match outcome.fed.is_empty() {
            true => None,
            false => Some(crate::commit::fed::write(&self.lake, &tag, &outcome.fed).await?),
        };
        let record = CommitRecord {
            version,
            run_id: tag.clone(),
            tag: tag.clone(),
            committed_ms: chrono::Utc::now().timestamp_millis(),
            ledger: run.new.iter().map(|o| ledger_entry(o, version)).collect(),
            partitions: changes,
            errors: outcome.errors,
            files,
            schemas: std::mem::take(&mut run.retype.schemas),
            creates: Vec::new(),
            ledger_removed: Vec::new(),
            fed,
            watermark: run.watermark.take(),
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
}

/// Adds what the read phase saw to the report.
pub(crate) fn account_read(report: &mut CompactReport, read: &ReadSummary) {
    let r = report;
    r.objects.read += read.objects;
    r.objects.bytes_read += read.bytes_read;
    for (f, n) in &read.by_format {
        *r.objects.by_format.entry(f.clone()).or_default() += n;
    }
    r.records.records_in += read.records_in;
    for (reason, n) in &read.errors_by_reason {
        r.records.errors += n;
        *r.records
            .errors_by_reason
            .entry(reason.clone())
            .or_default() += n;
    }
    for (reason, n) in &read.damaged {
        *r.objects.damaged.entry(reason.clone()).or_default() += n;
    }
}

/// Adds one partition to the report; returns the new records it accounts for.
fn account_partition(report: &mut CompactReport, res: &PartitionResult) -> u64 {
    let (r, s) = (report, &res.stats);
    r.records.written += s.written;
    r.records.duplicates.exact += s.duplicates_exact;
    r.records.duplicates.conflicting += s.duplicates_conflicting;
    r.records.lake_records_replaced += s.lake_replaced;
    r.output.typed_rows += res.typed_rows;
    r.output.untyped_lines += res.untyped_lines;
    r.output.bytes_written += res.bytes_written;
    r.output.partitions_touched += 1;
    r.output.partitions_merged_on_disk += u64::from(res.on_disk);
    r.output.partitions_appended += u64::from(res.appended);
    r.output.partitions_tail_rewritten += u64::from(res.tail_rewritten);
    r.retype.records += res.retyped;
    r.retype.partitions += u64::from(res.rebuilt);
    for (f, n) in &res.mismatches {
        let k = format!("{}/{}/{f}", res.change.tenant, res.change.metric);
        *r.records.type_mismatches.entry(k).or_default() += n;
    }
    s.written + s.duplicates_exact + s.duplicates_conflicting
}
