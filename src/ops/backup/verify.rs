//! `backup verify`: checks every selected bundle (every version) without restoring: manifests
//! and checksums, or with `--deep` the decoded content too. Damage is reported by bundle and
//! file; the caller exits non-zero when there is any.

use std::time::Instant;

use futures::StreamExt;

use crate::bundle::{self, verify_bundle, BundleId, VerifyDepth};
use crate::error::Result;
use crate::ops::options::{Common, CommonOptions};
use crate::report::{RunReport, VerifyCounts};
use crate::storage::Location;

/// The `backup verify` operation.
pub struct VerifyBundles {
    from: Location,
    common: Common,
    depth: VerifyDepth,
}

impl CommonOptions for VerifyBundles {
    fn common(&mut self) -> &mut Common {
        &mut self.common
    }
}

impl VerifyBundles {
    /// Verifies the bundles in the backup location `from`.
    pub fn new(from: Location) -> Self {
        VerifyBundles {
            from,
            common: Common::default(),
            depth: VerifyDepth::Checksums,
        }
    }

    /// Checksums only, or decode everything too.
    pub fn with_depth(mut self, depth: VerifyDepth) -> Self {
        self.depth = depth;
        self
    }

    /// Checks the bundles; the report lists every problem (it does not fail on damage).
    pub async fn execute(self) -> Result<RunReport> {
        let started = Instant::now();
        let mut report = RunReport::start("backup verify");
        let set = bundle::list_bundles(&self.from, &self.common.selection.tenants).await?;
        let ids: Vec<BundleId> = set
            .all()
            .filter(|id| self.common.selection.takes_date(&id.tenant, &id.date))
            .collect();
        let mut counts = VerifyCounts {
            deep: self.depth == VerifyDepth::Deep,
            bundles: ids.len() as u64,
            incomplete: set
                .incomplete
                .iter()
                .filter(|id| self.common.selection.takes_date(&id.tenant, &id.date))
                .map(BundleId::dir)
                .collect(),
            ..Default::default()
        };
        self.common.progress.start("verify", Some(ids.len() as u64));
        let (from, depth, set) = (&self.from, self.depth, &set);
        let mut checks = futures::stream::iter(ids)
            .map(|id| async move {
                let listed = set.files.get(&id).cloned().unwrap_or_default();
                let bytes: u64 = listed.values().sum();
                verify_bundle(from, &id, &listed, depth, false)
                    .await
                    .map(|r| (r, bytes))
            })
            .buffer_unordered(self.common.concurrency);
        while let Some(done) = checks.next().await {
            let (result, bytes) = done?;
            self.common.progress.advance(1, bytes);
            counts.bytes_checked += bytes;
            match result {
                Ok(_) => counts.ok += 1,
                Err(damage) => counts.damage.extend(damage),
            }
        }
        drop(checks);
        self.common.progress.finish();
        counts
            .damage
            .sort_by(|a, b| (&a.bundle, &a.file).cmp(&(&b.bundle, &b.file)));
        let bad = counts.bundles - counts.ok;
        report.run_id = format!("verify-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f"));
        report.message = match (bad, counts.incomplete.len()) {
            (0, 0) => format!("{} bundles verified, all intact", counts.bundles),
            (0, n) => format!(
                "{} bundles intact; {n} incomplete bundle directories (no manifest)",
                counts.bundles
            ),
            (b, _) => format!("{b} of {} bundles are damaged", counts.bundles),
        };
        report.verify = Some(counts);
        report.conservation_ok = true;
        report
            .finish(started, None, self.common.report.as_ref())
            .await?;
        Ok(report)
    }
}

impl RunReport {
    /// Whether `backup verify` found damaged or incomplete bundles.
    pub fn has_damage(&self) -> bool {
        self.verify
            .as_ref()
            .is_some_and(|v| !v.damage.is_empty() || !v.incomplete.is_empty())
    }
}
