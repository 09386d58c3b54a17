//! `restore`: bundles back into a lake (SPEC 11), through the same plan -> stage -> commit ->
//! publish path as `compact`: pick and verify the bundles (nothing is written when one is
//! damaged), stage each tenant-day's partitions, create the next lake log version (the one
//! atomic step), publish. A run that loses the commit race plans again and keeps what the
//! winner committed. `--staged` writes archive objects instead ([`RestoreStaged`]).

pub mod list;
mod select;
mod stage;
mod staged;
mod target;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::bundle::Verified;
use crate::catalog::{Catalog, TenantDoc};
use crate::commit::log::{CommitRecord, StagedCopy};
use crate::commit::{after_lost_race, applied, publish, Attempt, LakeLog};
use crate::error::{Error, Result};
use crate::model::date_to_day;
use crate::ops::backup::Selection;
use crate::ops::options::{Common, CommonOptions};
use crate::report::{RestoreCounts, RestoreDay, RunReport};
use crate::schema::store::{CatalogStore, CatalogVersion, CATALOG_DIR};
use crate::storage::Location;
use stage::{DayCtx, DayStaged, Newer};
use target::TenantTarget;

pub use list::{list, BundleInfo};
pub use staged::{RestoreStaged, StagedFormat};

/// What becomes of records the restored days hold from archive objects processed after the
/// bundles were taken (records committed by runs racing the restore are always kept).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NewerPolicy {
    /// Refuse the restore when there are any, naming them (nothing is written).
    #[default]
    Refuse,
    /// Merge them on top of the bundles, by arrival order: nothing is lost.
    Keep,
    /// Replace them, and take their objects out of the ledger: the next compaction reads
    /// those objects again.
    Requeue,
    /// Replace them; their objects stay processed (replay brings them back).
    Drop,
}

impl NewerPolicy {
    fn name(self) -> &'static str {
        match self {
            NewerPolicy::Refuse => "refuse",
            NewerPolicy::Keep => "keep",
            NewerPolicy::Requeue => "requeue",
            NewerPolicy::Drop => "drop",
        }
    }
}

/// The `restore --lake` operation, configured with `with_*`, run with [`Restore::execute`].
pub struct Restore {
    from: Location,
    lake: Location,
    common: Common,
    as_of: Option<u64>,
    dry_run: bool,
    newer: NewerPolicy,
    max_attempts: u32,
    memory_budget: u64,
}

/// Default memory for verified bundle bytes kept for the copy.
pub const DEFAULT_MEMORY_BUDGET: u64 = 256 << 20;

/// A bundle's catalog file, read.
#[derive(Clone)]
struct BundleCatalog {
    doc: TenantDoc,
    version: Option<u64>,
    bytes: Bytes,
}

/// The catalogs a restore works with.
struct Catalogs {
    /// Each bundle's catalog file (`None`: the tenant had no catalog).
    bundle: BTreeMap<crate::bundle::BundleId, Option<BundleCatalog>>,
    /// The target's applied catalog.
    applied: applied::Applied,
    /// Per tenant, its newest bundle's catalog.
    newest: BTreeMap<String, Option<BundleCatalog>>,
    /// Per restored tenant, the catalog its days are built with, and as one catalog.
    effective: BTreeMap<String, Option<TenantDoc>>,
    catalog: Arc<Catalog>,
}

/// One planned day: the bundle, what the target holds now, and what it holds that the bundle
/// does not know.
struct DayPlan<'a> {
    bundle: &'a Verified,
    current: BTreeMap<String, target::CurrentPartition>,
    newer: Newer,
    same_catalog: bool,
}

/// Where a restore keeps the lake version it started from, so that a rerun after a crash keeps
/// what runs committed since, and knows when it already committed.
fn marker_path(id: &str) -> String {
    format!("_fineo/restore/{id}.json")
}

impl CommonOptions for Restore {
    fn common(&mut self) -> &mut Common {
        &mut self.common
    }
}

impl Restore {
    /// Restores bundles of the backup location `from` into `lake`.
    pub fn new(from: Location, lake: Location) -> Self {
        Restore {
            from,
            lake,
            common: Common::default(),
            as_of: None,
            dry_run: false,
            newer: NewerPolicy::default(),
            max_attempts: 5,
            memory_budget: DEFAULT_MEMORY_BUDGET,
        }
    }

    /// Memory for bundle bytes kept from verification to the copy (bundles beyond it are read
    /// and checked again when copied); 0 keeps nothing.
    pub fn with_memory_budget(mut self, bytes: u64) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// Point in time: per tenant-day the latest bundle at or below this lake version.
    pub fn with_as_of(mut self, version: Option<u64>) -> Self {
        self.as_of = version;
        self
    }

    /// Verify and plan only: say what would be replaced, write nothing.
    pub fn with_dry_run(mut self, on: bool) -> Self {
        self.dry_run = on;
        self
    }

    /// What becomes of records of objects processed after the bundles were taken.
    pub fn with_newer(mut self, policy: NewerPolicy) -> Self {
        self.newer = policy;
        self
    }

    /// How many times to plan again after losing a commit race.
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Runs the restore; the report is also kept under `<lake>/_runs/` (not on a dry run).
    pub async fn execute(self) -> Result<RunReport> {
        let started = Instant::now();
        let mut report = RunReport::start("restore");
        // What runs commit from here on is kept on top of the bundles (a racing compaction
        // loses nothing); what the lake held before is what the restore replaces.
        let started_at = LakeLog::new(&self.lake).latest().await?;
        let chosen = select::choose(
            &self.from,
            &self.common.selection,
            self.as_of,
            self.common.concurrency,
            if self.dry_run { 0 } else { self.memory_budget },
            self.common.progress.as_ref(),
        )
        .await?;
        let mut counts = RestoreCounts {
            target: "lake".into(),
            dry_run: self.dry_run,
            newer_policy: self.newer.name().into(),
            bundles: chosen.bundles.iter().map(|b| b.id.dir()).collect(),
            bytes_verified: chosen.bytes,
            no_bundle_at_or_before: chosen.too_new.clone(),
            ..Default::default()
        };
        report.conservation_ok = true;
        let id = restore_id(&chosen.bundles, self.newer);
        if chosen.bundles.is_empty() {
            report.noop = true;
            report.run_id = format!(
                "restore-noop-{}",
                chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
            );
            report.message = nothing_message(&self.common.selection, self.as_of, &chosen.too_new);
        } else if self.dry_run {
            self.plan_only(&chosen.bundles, started_at, &mut counts)
                .await?;
            report.run_id = format!(
                "restore-dry-run-{}",
                chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
            );
            report.message = format!(
                "dry run: {} bundles verified; nothing was written",
                chosen.bundles.len()
            );
        } else {
            // A rerun of an interrupted restore starts from where the first run started.
            let resumed = match self.lake.get_opt(&marker_path(&id)).await? {
                Some(b) => serde_json::from_slice::<serde_json::Value>(&b)
                    .ok()
                    .and_then(|v| v["started_at_version"].as_u64()),
                None => None,
            };
            let b0 = resumed.unwrap_or(started_at);
            loop {
                report.attempts += 1;
                let done = self.attempt(
                    &chosen.bundles,
                    b0,
                    resumed.is_some(),
                    &id,
                    &mut report,
                    &mut counts,
                );
                match done.await? {
                    Attempt::Done => break,
                    Attempt::LostRace { version, other } => {
                        let max = self.max_attempts;
                        after_lost_race(report.attempts, max, version, other, "restore")?;
                    }
                }
            }
            self.lake.delete(&marker_path(&id)).await?;
        }
        report.restore = Some(counts);
        let runs = (!self.dry_run && !report.noop).then_some(&self.lake);
        report
            .finish(started, runs, self.common.report.as_ref())
            .await?;
        Ok(report)
    }

    async fn attempt(
        &self,
        bundles: &[Verified],
        b0: u64,
        resumed: bool,
        id: &str,
        report: &mut RunReport,
        counts: &mut RestoreCounts,
    ) -> Result<Attempt> {
        let log = LakeLog::new(&self.lake);
        let (base, recovered) = crate::commit::latest_published(&self.lake).await?;
        if recovered {
            report.recovered_versions.push(base);
        }
        report.base_version = base;
        // Versions that may be this very restore: since the interrupted run started, or the
        // latest one (a rerun after it finished, or an identical restore won the race).
        let since = match resumed || report.attempts > 1 {
            true => b0.min(base),
            false => base.saturating_sub(1).min(b0),
        };
        let mut concurrent = HashSet::new();
        for v in since + 1..=base {
            let record = log.read(v).await?;
            if v > b0 {
                concurrent.extend(record.ledger.iter().map(|e| e.key.clone()));
            }
            if record.tag.ends_with(id) {
                // This restore committed already (a rerun after a crash, or an identical
                // restore that won the race): the lake is what it asks for.
                report.noop = true;
                report.run_id = format!(
                    "{id}-noop-{}",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
                );
                report.message = format!("already restored: lake version {v} is this restore");
                return Ok(Attempt::Done);
            }
        }
        let version = base + 1;
        let tag = format!("v{version:06}-{id}");
        report.run_id = tag.clone();
        let cats = self.catalogs(bundles).await?;
        let ctx = DayCtx {
            from: &self.from,
            lake: &self.lake,
            tag: &tag,
            version,
            catalog: &cats.catalog,
        };
        let plans = self.plan(&ctx, bundles, &cats, &concurrent).await?;
        let before: BTreeMap<String, u64> =
            plans.iter().flat_map(|p| p.newer.before.clone()).collect();
        if self.newer == NewerPolicy::Refuse && !before.is_empty() {
            return Err(newer_error(&before));
        }
        self.lake
            .put_create(
                &marker_path(id),
                serde_json::to_vec(&serde_json::json!({ "started_at_version": b0 }))
                    .expect("json")
                    .into(),
            )
            .await?;
        self.common
            .progress
            .start("restore", Some(bundles.len() as u64));
        let keep_before = self.newer == NewerPolicy::Keep;
        let mut staged = futures::stream::iter(plans)
            .map(|p| {
                let ctx = &ctx;
                async move {
                    let mut keep: BTreeSet<String> = p.newer.concurrent.keys().cloned().collect();
                    if keep_before {
                        keep.extend(p.newer.before.keys().cloned());
                    }
                    let facts = day_facts(&p);
                    let s = ctx
                        .stage(p.bundle, p.current, &keep, p.same_catalog)
                        .await?;
                    Ok::<_, Error>((facts, s))
                }
            })
            .buffer_unordered(self.common.concurrency);
        let mut all = DayStaged::default();
        let mut days = Vec::new();
        while let Some(done) = staged.next().await {
            let (mut day, s) = done?;
            self.common.progress.advance(1, s.bytes);
            day.partitions = (s.changes.len() as u64).saturating_sub(s.emptied);
            day.emptied = s.emptied;
            days.push(day);
            all.changes.extend(s.changes);
            all.copied += s.copied;
            all.rebuilt += s.rebuilt;
            all.emptied += s.emptied;
            all.records += s.records;
            all.kept += s.kept;
            all.bytes += s.bytes;
            all.typed_rows += s.typed_rows;
            all.untyped_lines += s.untyped_lines;
            all.duplicates += s.duplicates;
        }
        drop(staged);
        self.common.progress.finish();
        all.changes
            .sort_by(|a, b| (&a.tenant, &a.metric, &a.date).cmp(&(&b.tenant, &b.metric, &b.date)));
        days.sort_by(|a, b| a.bundle.cmp(&b.bundle));
        let (files, creates, added) = self.catalog_files(&tag, &cats).await?;
        let requeued: Vec<String> = match self.newer {
            NewerPolicy::Requeue => before.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let record = CommitRecord {
            version,
            run_id: tag.clone(),
            tag: tag.clone(),
            committed_ms: chrono::Utc::now().timestamp_millis(),
            ledger: Vec::new(),
            partitions: all.changes,
            errors: Vec::new(),
            files,
            schemas: Vec::new(),
            creates,
            ledger_removed: requeued.clone(),
            fed: None,
            watermark: None,
        };
        // Content-named typed files stay if the race is lost: a concurrent restore of the same
        // bundle may reference them.
        let keep = |p: &str| p.contains("/part-r");
        if let Some(lost) = crate::commit::create(&self.lake, &record, keep).await? {
            return Ok(lost);
        }
        self.common.progress.start("publish", None);
        let stats = publish(&self.lake, &record).await?;
        self.common.progress.finish();
        report.committed_version = Some(version);
        report.output.partitions_touched = record.partitions.len() as u64;
        report.output.files_added = stats.files_added;
        report.output.files_removed = stats.files_removed;
        report.output.tables_touched = stats.tables;
        report.output.bytes_written = all.bytes;
        report.output.typed_rows = all.typed_rows;
        report.output.untyped_lines = all.untyped_lines;
        report.records.duplicates.conflicting = all.duplicates;
        report.records.written = all.records;
        report.message = format!(
            "restored {} tenant-days as lake version {version}",
            bundles.len()
        );
        let concurrent_kept: u64 = days.iter().map(|d| d.concurrent_records).sum();
        *counts = RestoreCounts {
            records: all.records,
            partitions_copied: all.copied,
            partitions_rebuilt: all.rebuilt,
            partitions_emptied: all.emptied,
            concurrent_records_kept: concurrent_kept,
            newer_records: before.values().sum(),
            newer_objects: before.keys().cloned().collect(),
            requeued_objects: requeued.len() as u64,
            catalog_versions_added: added,
            bytes_written: all.bytes,
            days,
            ..std::mem::take(counts)
        };
        Ok(Attempt::Done)
    }

    /// Per bundle: the target's current partitions of its day and what they hold that the
    /// bundle does not know.
    async fn plan<'a>(
        &self,
        ctx: &DayCtx<'_>,
        bundles: &'a [Verified],
        cats: &Catalogs,
        concurrent: &HashSet<String>,
    ) -> Result<Vec<DayPlan<'a>>> {
        let (effective, catalogs) = (&cats.effective, &cats.bundle);
        let mut targets = BTreeMap::new();
        for t in effective.keys() {
            targets.insert(t.clone(), TenantTarget::load(&self.lake, t).await?);
        }
        let targets = &targets;
        futures::stream::iter(bundles)
            .map(|b| async move {
                let doc = effective[&b.id.tenant].as_ref();
                let day = date_to_day(&b.id.date).expect("verified date");
                let current = targets[&b.id.tenant].day(&self.lake, day, doc).await?;
                let newer = ctx.newer(b, &current, concurrent).await?;
                let same_catalog = doc == catalogs[&b.id].as_ref().map(|c| &c.doc);
                Ok::<_, Error>(DayPlan {
                    bundle: b,
                    current,
                    newer,
                    same_catalog,
                })
            })
            .buffered(self.common.concurrency)
            .try_collect()
            .await
    }

    /// The catalogs of a restore: each bundle's, the target's applied one, and the one each
    /// restored tenant is built with.
    async fn catalogs(&self, bundles: &[Verified]) -> Result<Catalogs> {
        let bundle = self.bundle_catalogs(bundles).await?;
        let applied = applied::load(&self.lake).await?;
        let tenants: BTreeSet<&str> = bundles.iter().map(|b| b.id.tenant.as_str()).collect();
        let newest = newest_catalogs(bundles, &bundle);
        let effective = effective_catalogs(&tenants, &applied, &newest);
        let catalog = Arc::new(Catalog::from_docs(effective.values().flatten().cloned())?);
        Ok(Catalogs {
            bundle,
            applied,
            newest,
            effective,
            catalog,
        })
    }

    /// Each bundle's catalog file (`None`: the tenant had no catalog).
    async fn bundle_catalogs(
        &self,
        bundles: &[Verified],
    ) -> Result<BTreeMap<crate::bundle::BundleId, Option<BundleCatalog>>> {
        let mut out = BTreeMap::new();
        for b in bundles {
            let Some(c) = &b.manifest.catalog else {
                out.insert(b.id.clone(), None);
                continue;
            };
            let path = b.id.file(&c.file);
            let bytes = b.read(&self.from, &c.file).await?;
            let doc = match c.version {
                Some(_) => serde_json::from_slice::<CatalogVersion>(&bytes).map(|v| v.catalog),
                None => serde_json::from_slice::<TenantDoc>(&bytes),
            }
            .map_err(|e| Error::metadata(&path, e))?;
            out.insert(
                b.id.clone(),
                Some(BundleCatalog {
                    doc,
                    version: c.version,
                    bytes,
                }),
            );
        }
        Ok(out)
    }

    /// The applied catalog gains the tenants the target has none for; the catalog store gains
    /// the bundle's catalog version where it has no version for the tenant. Returns the staged
    /// files, the creates, and the versions added.
    async fn catalog_files(
        &self,
        tag: &str,
        cats: &Catalogs,
    ) -> Result<(Vec<StagedCopy>, Vec<StagedCopy>, Vec<String>)> {
        let (applied, newest) = (&cats.applied, &cats.newest);
        let mut next = applied.clone();
        let (mut creates, mut added) = (Vec::new(), Vec::new());
        let store = CatalogStore::new(&self.lake);
        for t in cats.effective.keys() {
            let Some(Some(c)) = newest.get(t) else {
                continue;
            };
            next.entry(t.to_string()).or_insert_with(|| c.doc.clone());
            if let Some(v) = c.version {
                if store.latest(t).await?.is_none() {
                    let path = format!("{CATALOG_DIR}/{t}/v{v:08}.json");
                    let staged = format!("_fineo/staging/{tag}/files/{path}");
                    self.lake.put(&staged, c.bytes.clone()).await?;
                    creates.push(StagedCopy {
                        staged,
                        path: path.clone(),
                    });
                    added.push(path);
                }
            }
        }
        let mut files = Vec::new();
        if &next != applied {
            let path = applied::APPLIED_PATH.to_string();
            let staged = format!("_fineo/staging/{tag}/files/{path}");
            self.lake.put(&staged, applied::to_bytes(&next)).await?;
            files.push(StagedCopy { staged, path });
        }
        Ok((files, creates, added))
    }

    /// Dry run: what each bundle would replace, from the target's listing and index footers.
    async fn plan_only(
        &self,
        bundles: &[Verified],
        b0: u64,
        counts: &mut RestoreCounts,
    ) -> Result<()> {
        let cats = self.catalogs(bundles).await?;
        let ctx = DayCtx {
            from: &self.from,
            lake: &self.lake,
            tag: "dry-run",
            version: b0 + 1,
            catalog: &cats.catalog,
        };
        let plans = self.plan(&ctx, bundles, &cats, &HashSet::new()).await?;
        for p in &plans {
            let mut day = day_facts(p);
            day.partitions = p.bundle.manifest.metrics.len() as u64;
            day.emptied = p
                .current
                .keys()
                .filter(|m| !p.bundle.manifest.metrics.contains_key(*m))
                .count() as u64;
            counts.records += p.bundle.manifest.records;
            counts.partitions_emptied += day.emptied;
            counts.newer_records += p.newer.before.values().sum::<u64>();
            counts.newer_objects.extend(p.newer.before.keys().cloned());
            counts.days.push(day);
        }
        counts.newer_objects.sort();
        counts.newer_objects.dedup();
        Ok(())
    }
}

/// The facts of a planned day for the report.
fn day_facts(p: &DayPlan<'_>) -> RestoreDay {
    RestoreDay {
        bundle: p.bundle.id.dir(),
        records: p.bundle.manifest.records,
        current_partitions: p.current.len() as u64,
        current_records: p.current.values().map(|c| c.records).sum(),
        newer_records: p.newer.before.values().sum(),
        concurrent_records: p.newer.concurrent.values().sum(),
        partitions: 0,
        emptied: 0,
    }
}

/// Per tenant, the catalog its restored days are built with: the one the target already
/// builds it with, else the catalog of its newest bundle.
fn effective_catalogs(
    tenants: &BTreeSet<&str>,
    applied: &applied::Applied,
    newest: &BTreeMap<String, Option<BundleCatalog>>,
) -> BTreeMap<String, Option<TenantDoc>> {
    tenants
        .iter()
        .map(|t| {
            let doc = applied
                .get(*t)
                .cloned()
                .or_else(|| newest.get(*t).cloned().flatten().map(|c| c.doc));
            (t.to_string(), doc)
        })
        .collect()
}

fn newer_error(before: &BTreeMap<String, u64>) -> Error {
    let examples: Vec<&str> = before.keys().take(3).map(String::as_str).collect();
    let more = match before.len() {
        n if n > 3 => format!(", and {} more", n - 3),
        _ => String::new(),
    };
    Error::NewerRecords {
        records: before.values().sum(),
        objects: before.len(),
        examples: format!("{}{more}", examples.join(", ")),
    }
}

/// Per tenant, the catalog of its newest bundle (highest lake version).
fn newest_catalogs(
    bundles: &[Verified],
    catalogs: &BTreeMap<crate::bundle::BundleId, Option<BundleCatalog>>,
) -> BTreeMap<String, Option<BundleCatalog>> {
    let mut best: BTreeMap<String, (u64, Option<BundleCatalog>)> = BTreeMap::new();
    for b in bundles {
        let entry = best.entry(b.id.tenant.clone()).or_insert((0, None));
        if b.id.version >= entry.0 {
            *entry = (b.id.version, catalogs[&b.id].clone());
        }
    }
    best.into_iter().map(|(t, (_, c))| (t, c)).collect()
}

/// What identifies a restore whatever the lake version: the bundles it takes and what it does
/// with newer records.
fn restore_id(bundles: &[Verified], newer: NewerPolicy) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(newer.name().as_bytes());
    for b in bundles {
        h.update(b.id.dir().as_bytes());
        h.update(b.manifest.manifest_sha256.as_bytes());
        h.update(b"\n");
    }
    format!("restore-{:016x}", h.digest())
}

fn nothing_message(selection: &Selection, as_of: Option<u64>, too_new: &[String]) -> String {
    let mut m = String::from("nothing restored: no bundle matches");
    if !selection.tenants.is_empty() {
        m.push_str(&format!(" tenant {}", selection.tenants.join(", ")));
    }
    if let Some(v) = as_of {
        m.push_str(&format!(" at or before lake version {v}"));
    }
    if !too_new.is_empty() {
        m.push_str(&format!(
            " ({} tenant-days have only newer bundles; `fineo-batch restore --list` shows them)",
            too_new.len()
        ));
    }
    m
}
