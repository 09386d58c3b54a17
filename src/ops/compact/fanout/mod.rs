//! Fan-out: one compaction split into work units that run on separate machines, then made
//! visible by one commit, so the lake is the one a single process would make (SPEC 14).
//!
//! ```text
//!  plan ──> read unit 0..R ──(bucket files per merge unit)──> merge unit 0..M ──> commit
//!  (lake version B,   (a slice of the new      (the partitions hashed to it:    (one lake version
//!   the new objects)   objects, decoded and     every read unit's records,       B+1 from the units'
//!                      bucketed by partition)   merged with the stored ones)     manifests, or stale)
//! ```
//!
//! Everything lives under `<lake>/_fineo/fanout/<run>/`: the plan, the units' item lists (for a
//! Step Functions Distributed Map), and below the run tag each unit's files and, last, its
//! manifest. Units write only deterministic, unreferenced names, so a killed unit is run
//! again; the commit step commits once, and refuses a plan whose lake moved on.

mod units;

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::run::RunPlan;
use super::Compact;
use crate::commit::log::StagedWatermark;
use crate::error::{Error, Result};
use crate::model::PartitionKey;
use crate::report::CompactReport;
use crate::sources::StagedObject;
use crate::storage::Location;

pub use units::{MergeManifest, ReadManifest};

/// The plan of a fan-out run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FanoutPlan {
    /// The run's name (its directory under `_fineo/fanout/`).
    pub run: String,
    /// The lake version the run builds on, and the run tag (file names).
    pub base: u64,
    pub tag: String,
    /// The staged location's URL (units must read the same one).
    pub staged: String,
    /// New objects, in arrival order.
    pub objects: Vec<PlannedObject>,
    /// Each read unit's slice of `objects`: `[start, end)`.
    pub read_units: Vec<[usize; 2]>,
    pub merge_units: usize,
    pub watermark: Option<StagedWatermark>,
    /// The planning part of the run report (listing, ledger).
    pub planned: CompactReport,
}

/// A staged object in a plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlannedObject {
    pub key: String,
    pub path: String,
    pub size: u64,
    pub etag: Option<String>,
    pub delivery_ms: i64,
}

impl PlannedObject {
    fn of(o: &StagedObject) -> Self {
        PlannedObject {
            key: o.key.clone(),
            path: o.path.to_string(),
            size: o.size,
            etag: o.etag.clone(),
            delivery_ms: o.delivery_ms,
        }
    }

    fn staged(&self) -> Result<StagedObject> {
        let path = object_store::path::Path::parse(&self.path)
            .map_err(|e| Error::metadata(&self.key, e))?;
        Ok(StagedObject {
            key: self.key.clone(),
            path,
            size: self.size,
            etag: self.etag.clone(),
            delivery_ms: self.delivery_ms,
        })
    }
}

impl FanoutPlan {
    /// The plan's objects as staged objects.
    fn staged_objects(&self) -> Result<Vec<StagedObject>> {
        self.objects.iter().map(PlannedObject::staged).collect()
    }
}

/// The merge unit a partition goes to.
pub fn merge_unit_of(key: &PartitionKey, units: usize) -> usize {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(key.tenant.as_bytes());
    h.update(b"\0");
    h.update(key.metric.as_bytes());
    h.update(&key.day.to_le_bytes());
    (h.digest() % units.max(1) as u64) as usize
}

fn run_dir(run: &str) -> String {
    format!("_fineo/fanout/{run}")
}

fn plan_path(run: &str) -> String {
    format!("{}/plan.json", run_dir(run))
}

/// The item list of a phase (`read` or `merge`) for a Distributed Map: `[{"unit": 0}, ...]`.
pub fn items_path(run: &str, phase: &str) -> String {
    format!("{}/{phase}-units.json", run_dir(run))
}

fn unit_dir(plan: &FanoutPlan, phase: &str, unit: usize) -> String {
    format!("{}/{}/{phase}-{unit:04}", run_dir(&plan.run), plan.tag)
}

/// What planning did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlanOutcome {
    pub run: String,
    /// `None` when there is nothing to compact (no plan written).
    pub plan: Option<PlanSummary>,
    pub report: CompactReport,
}

/// A written plan, in short.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlanSummary {
    pub base: u64,
    pub tag: String,
    pub objects: u64,
    pub bytes: u64,
    pub read_units: usize,
    pub merge_units: usize,
}

/// A fan-out run of a compaction: its four steps, each a separate process.
pub struct Fanout {
    compact: Compact,
    run: String,
}

impl Fanout {
    /// The fan-out run `run` of `compact` (its staged archive, lake and settings).
    pub fn new(compact: Compact, run: &str) -> Result<Self> {
        if run.is_empty()
            || !run
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::InvalidOption(format!(
                "fan-out run name {run:?}: use letters, digits, '-' and '_'"
            )));
        }
        Ok(Fanout {
            compact,
            run: run.to_string(),
        })
    }

    fn lake(&self) -> &Location {
        &self.compact.lake
    }

    /// Plans the run into `read_units` slices of the new objects (balanced by bytes) and
    /// `merge_units` sets of partitions. A plan already made on the latest lake version is
    /// kept (units may be running); one made on an older version is replaced.
    pub async fn plan(&self, read_units: usize, merge_units: usize) -> Result<PlanOutcome> {
        if read_units == 0 || merge_units == 0 {
            return Err(Error::InvalidOption("units must be positive".into()));
        }
        let catalog = Arc::new(self.compact.pipeline.load_catalog(self.lake()).await?);
        let mut report = CompactReport::start("fanout plan");
        if let Some(plan) = self.load_plan_opt().await? {
            let (latest, _) = crate::commit::latest_published(self.lake()).await?;
            if plan.base == latest {
                report = plan.planned.clone();
                return Ok(PlanOutcome {
                    run: self.run.clone(),
                    plan: Some(summary(&plan)),
                    report,
                });
            }
            // Committed: only its intermediate files go. Stale: also what its units wrote
            // that nothing references.
            match self.committed(&plan).await? {
                true => self.cleanup(&plan).await,
                false => self.discard(&plan).await,
            }
        }
        let Some(run) = self.compact.plan_run(&catalog, &mut report).await? else {
            // Nothing new: empty item lists (a Distributed Map over them does nothing) and an
            // empty plan the commit step reports as a no-op.
            self.write_items(0, 0).await?;
            self.lake().delete(&plan_path(&self.run)).await?;
            return Ok(PlanOutcome {
                run: self.run.clone(),
                plan: None,
                report,
            });
        };
        let plan = FanoutPlan {
            run: self.run.clone(),
            base: run.base,
            tag: run.tag.clone(),
            staged: self.compact.staged.url().to_string(),
            read_units: slices(&run.new, read_units),
            objects: run.new.iter().map(PlannedObject::of).collect(),
            merge_units,
            watermark: run.watermark.clone(),
            planned: report.clone(),
        };
        self.write_items(plan.read_units.len(), merge_units).await?;
        let body = serde_json::to_vec_pretty(&plan).expect("plan json");
        self.lake()
            .put(&plan_path(&self.run), Bytes::from(body))
            .await?;
        Ok(PlanOutcome {
            run: self.run.clone(),
            plan: Some(summary(&plan)),
            report,
        })
    }

    /// The item lists of the two phases for a Distributed Map: `[{"unit": 0}, ...]`.
    async fn write_items(&self, read_units: usize, merge_units: usize) -> Result<()> {
        for (phase, n) in [("read", read_units), ("merge", merge_units)] {
            let items: Vec<_> = (0..n).map(|u| serde_json::json!({ "unit": u })).collect();
            let body = serde_json::to_vec(&items).expect("items json");
            self.lake()
                .put(&items_path(&self.run, phase), Bytes::from(body))
                .await?;
        }
        Ok(())
    }

    async fn load_plan_opt(&self) -> Result<Option<FanoutPlan>> {
        let path = plan_path(&self.run);
        match self.lake().get_opt(&path).await? {
            Some(b) => Ok(Some(
                serde_json::from_slice(&b).map_err(|e| Error::metadata(&path, e))?,
            )),
            None => Ok(None),
        }
    }

    /// The run's plan, checked against this step's staged location.
    pub async fn load_plan(&self) -> Result<FanoutPlan> {
        self.load_plan_checked().await?.ok_or_else(|| {
            Error::InvalidOption(format!(
                "fan-out run {:?} has nothing to do: its plan step found nothing new",
                self.run
            ))
        })
    }

    /// The run's plan, `None` when its plan step found nothing new.
    pub(super) async fn load_plan_checked(&self) -> Result<Option<FanoutPlan>> {
        let Some(plan) = self.load_plan_opt().await? else {
            if self.lake().exists(&items_path(&self.run, "read")).await? {
                return Ok(None);
            }
            return Err(Error::UnitMissing {
                run: self.run.clone(),
                missing: "the plan step".into(),
            });
        };
        if plan.staged != self.compact.staged.url().as_str() {
            return Err(Error::InvalidOption(format!(
                "fan-out run {:?} was planned for staged {}, not {}",
                self.run,
                plan.staged,
                self.compact.staged.url()
            )));
        }
        Ok(Some(plan))
    }

    /// Whether the plan's run is the lake's version after its base (call only when the lake
    /// has that version).
    async fn committed(&self, plan: &FanoutPlan) -> Result<bool> {
        let log = crate::commit::LakeLog::new(self.lake());
        Ok(log.read(plan.base + 1).await?.run_id == plan.tag)
    }

    /// Fails when the lake moved on from the plan's version.
    async fn check_base(&self, plan: &FanoutPlan) -> Result<()> {
        let latest = crate::commit::LakeLog::new(self.lake()).latest().await?;
        if latest != plan.base {
            return Err(Error::StalePlan {
                run: self.run.clone(),
                base: plan.base,
                latest,
            });
        }
        Ok(())
    }

    /// The run as the single-process steps see it (the catalog change is planned again: the
    /// lake has not moved, so it is the same).
    async fn run_plan(&self, plan: &FanoutPlan) -> Result<(RunPlan, Arc<crate::catalog::Catalog>)> {
        let catalog = Arc::new(self.compact.pipeline.load_catalog(self.lake()).await?);
        let retype = super::retype::plan(self.lake(), &catalog).await?;
        let run = RunPlan {
            base: plan.base,
            new: plan.staged_objects()?,
            watermark: plan.watermark.clone(),
            retype,
            tag: plan.tag.clone(),
        };
        Ok((run, catalog))
    }
}

fn summary(plan: &FanoutPlan) -> PlanSummary {
    PlanSummary {
        base: plan.base,
        tag: plan.tag.clone(),
        objects: plan.objects.len() as u64,
        bytes: plan.objects.iter().map(|o| o.size).sum(),
        read_units: plan.read_units.len(),
        merge_units: plan.merge_units,
    }
}

/// `objects` cut into at most `n` contiguous slices of about equal bytes (none empty).
fn slices(objects: &[StagedObject], n: usize) -> Vec<[usize; 2]> {
    let total: u64 = objects.iter().map(|o| o.size.max(1)).sum();
    let n = n.min(objects.len()).max(1);
    let mut out = Vec::with_capacity(n);
    let (mut start, mut acc) = (0, 0u64);
    for (i, o) in objects.iter().enumerate() {
        acc += o.size.max(1);
        let target = total * (out.len() as u64 + 1) / n as u64;
        let left = objects.len() - i - 1;
        let slices_left = n - out.len() - 1;
        if (acc >= target && slices_left > 0) || left < slices_left {
            out.push([start, i + 1]);
            start = i + 1;
        }
    }
    if start < objects.len() || out.is_empty() {
        out.push([start, objects.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(sizes: &[u64]) -> Vec<StagedObject> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| StagedObject {
                key: format!("k{i}"),
                path: object_store::path::Path::from(format!("k{i}")),
                size,
                etag: None,
                delivery_ms: i as i64,
            })
            .collect()
    }

    #[test]
    fn objects_are_cut_into_contiguous_slices_of_about_equal_bytes() {
        assert_eq!(
            slices(&objects(&[10; 8]), 4),
            [[0, 2], [2, 4], [4, 6], [6, 8]]
        );
        assert_eq!(slices(&objects(&[100, 1, 1, 1, 100]), 2), [[0, 2], [2, 5]]);
        assert_eq!(
            slices(&objects(&[5, 5]), 4),
            [[0, 1], [1, 2]],
            "never an empty unit"
        );
        assert_eq!(slices(&objects(&[]), 3), [[0, 0]]);
        for n in 1..6 {
            let s = slices(&objects(&[3, 9, 1, 7, 7, 2, 8]), n);
            assert_eq!(s.len(), n);
            assert!(s
                .windows(2)
                .all(|w| w[0][1] == w[1][0] && w[0][0] < w[0][1]));
            assert_eq!((s[0][0], s[n - 1][1]), (0, 7));
        }
    }

    #[test]
    fn a_partition_always_goes_to_the_same_merge_unit() {
        let key = |t: &str, d| PartitionKey {
            tenant: t.into(),
            metric: "m".into(),
            day: d,
        };
        let units: std::collections::BTreeSet<usize> =
            (0..64).map(|d| merge_unit_of(&key("a", d), 4)).collect();
        assert_eq!(units.len(), 4, "partitions spread over every unit");
        assert_eq!(
            merge_unit_of(&key("a", 3), 4),
            merge_unit_of(&key("a", 3), 4)
        );
        assert_eq!(merge_unit_of(&key("a", 3), 1), 0);
    }
}
