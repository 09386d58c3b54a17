//! The run report (SPEC 9): what a run read, wrote, deduplicated and quarantined, per phase.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod summary;

/// Objects seen by a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectCounts {
    /// Objects listed below the staged prefix.
    pub listed: u64,
    /// Where the listing started (keys after this one), from the last run's watermark;
    /// `None`: the whole prefix was listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_after: Option<String>,
    /// Objects already in the ledger, skipped.
    pub already_processed: u64,
    /// Objects in the ledger whose size or ETag changed since: reported, not processed.
    pub changed: Vec<String>,
    /// Objects read by this run.
    pub read: u64,
    pub bytes_read: u64,
    /// Objects written by `ingest` whose source file's ingest did not finish (or was replaced
    /// by a newer ingest of the file): not read yet.
    #[serde(default)]
    pub pending_ingest: u64,
    /// Objects per detected encoding.
    pub by_format: BTreeMap<String, u64>,
    /// Damage to objects themselves (corrupt or truncated), by reason; each also has a
    /// quarantine line. Not records, so not part of `records_in`.
    pub damaged: BTreeMap<String, u64>,
}

/// Duplicate counts (SPEC 6).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Duplicates {
    pub exact: u64,
    pub conflicting: u64,
}

/// Record accounting; `records_in = written + duplicates + errors`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordCounts {
    pub records_in: u64,
    pub written: u64,
    pub duplicates: Duplicates,
    pub errors: u64,
    pub errors_by_reason: BTreeMap<String, u64>,
    /// `tenant/metric/field` -> values that did not convert to the declared type.
    pub type_mismatches: BTreeMap<String, u64>,
    /// Records already in the lake that a new record replaced (a later arrival won).
    pub lake_records_replaced: u64,
}

/// What the run changed in the lake.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputCounts {
    /// Typed rows written (rewritten partitions count whole, appended ones their new rows).
    pub typed_rows: u64,
    pub untyped_lines: u64,
    pub partitions_touched: u64,
    pub tables_touched: u64,
    pub files_added: u64,
    pub files_removed: u64,
    pub bytes_written: u64,
    /// Partitions larger than their share of the memory budget, merged through sorted runs on
    /// local disk.
    #[serde(default)]
    pub partitions_merged_on_disk: u64,
    /// Partitions that took their new records as an append (all later than the records they
    /// held) instead of being rewritten.
    #[serde(default)]
    pub partitions_appended: u64,
    /// Partitions whose new records reached back into their last windows: those were
    /// rewritten, the earlier ones kept as they were.
    #[serde(default)]
    pub partitions_tail_rewritten: u64,
}

/// Stored records rebuilt because the catalog changed (SPEC 10).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RetypeCounts {
    /// Tenants whose catalog changed since the lake was last built.
    pub tenants: Vec<String>,
    /// Partitions rebuilt from their stored records.
    pub partitions: u64,
    /// Stored records resolved again under the new catalog.
    pub records: u64,
}

/// Schema proposal documents the run updated (`<lake>/_proposals/<tenant>.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProposalCounts {
    pub tenants: Vec<String>,
}

/// What `backup` did (SPEC 11).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupCounts {
    /// The lake version the new bundles reflect.
    pub lake_version: u64,
    /// Tenant-days selected.
    pub tenant_days: u64,
    /// Bundles written (their directories below the backup location).
    pub written: Vec<String>,
    /// Tenant-days unchanged since their latest bundle: nothing written.
    pub unchanged: u64,
    /// Tenant-days whose bundle already existed complete (a rerun): nothing written.
    pub already_complete: u64,
    /// Tenant-days that changed while they were read: not backed up, run again.
    pub changed_during_backup: Vec<String>,
    pub files_written: u64,
    pub bytes_written: u64,
    /// Bytes of the lake files the new bundles were made from.
    pub lake_bytes_read: u64,
    pub records: u64,
}

/// What `backup verify` found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyCounts {
    pub deep: bool,
    pub bundles: u64,
    pub ok: u64,
    pub bytes_checked: u64,
    /// Every problem found, naming the bundle and file.
    pub damage: Vec<crate::bundle::Damage>,
    /// Bundle directories without a manifest (interrupted or running backups).
    pub incomplete: Vec<String>,
}

/// What `restore` did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RestoreCounts {
    /// `lake` (partitions rebuilt in a lake) or `staged` / `dynamodb-json` (archive objects).
    pub target: String,
    pub dry_run: bool,
    /// The bundles restored (their directories), one per tenant-day.
    pub bundles: Vec<String>,
    /// Bundle bytes checked before anything was written.
    pub bytes_verified: u64,
    pub records: u64,
    /// Partitions whose files were copied from their bundle as they are.
    pub partitions_copied: u64,
    /// Partitions rebuilt from the bundle's records: the target lake was built with another
    /// catalog, or a concurrent run added records the restore kept.
    pub partitions_rebuilt: u64,
    /// Partitions of the restored days that the bundles do not hold, emptied.
    pub partitions_emptied: u64,
    /// Records committed by runs that raced the restore, kept on top of the bundles.
    pub concurrent_records_kept: u64,
    /// `--newer`: what became of records of archive objects processed after the bundles were
    /// taken (`keep`, `requeue`, `drop`; `refuse` refuses when there are any).
    pub newer_policy: String,
    /// Those records, and their objects.
    pub newer_records: u64,
    pub newer_objects: Vec<String>,
    /// Objects taken out of the ledger (`--newer requeue`): the next compaction reads them.
    pub requeued_objects: u64,
    /// Catalog versions written to the target (it had none for the tenant).
    pub catalog_versions_added: Vec<String>,
    /// Archive objects written (`--staged`).
    pub objects_written: u64,
    /// Archive objects already there from an earlier, interrupted run (`--staged`).
    pub objects_existing: u64,
    pub bytes_written: u64,
    /// Per restored tenant-day: what it held and what the bundle brings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<RestoreDay>,
    /// Selected tenant-days that have bundles, but none at or below `--as-of`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_bundle_at_or_before: Vec<String>,
}

/// What `replay` did (SPEC 12).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayCounts {
    /// The window `[since, until)` of delivery times, RFC 3339.
    pub since: String,
    pub until: String,
    /// The lake the rebuilt partitions went to, when not the source (`--to`).
    pub to: Option<String>,
    pub dry_run: bool,
    /// Objects below the staged prefix.
    pub objects_listed: u64,
    /// The window's objects the lake had processed, replayed.
    pub window_objects: Vec<String>,
    /// The window's objects not compacted yet (left to `compact`).
    pub unprocessed_objects: Vec<String>,
    /// Every archived object read (the window's and the others that fed its partitions).
    pub objects_read: u64,
    pub objects_outside_window: u64,
    /// Partitions rebuilt (`tenant/metric/date`), and those left empty.
    pub partitions: Vec<String>,
    pub partitions_emptied: Vec<String>,
    /// Records of the objects read that went into the rebuilt partitions, and the others
    /// (their partitions were not replayed).
    pub records_taken: u64,
    pub records_elsewhere: u64,
    /// Objects read whose ETag differs from when they were compacted, with the same size (an
    /// archive copied on a local disk, or re-uploaded); read as they are now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub etag_changed: Vec<String>,
}

/// One restored tenant-day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RestoreDay {
    /// The bundle directory.
    pub bundle: String,
    /// Records in the bundle.
    pub records: u64,
    /// Partitions of the day in the target before the restore, and their records.
    pub current_partitions: u64,
    pub current_records: u64,
    /// Of those, records of objects processed after the bundle was taken, and records of runs
    /// that raced the restore.
    pub newer_records: u64,
    pub concurrent_records: u64,
    /// Partitions the bundle holds, and current ones it does not (emptied).
    pub partitions: u64,
    pub emptied: u64,
}

/// The report of one run of any command (SPEC 9); the command's own section is filled.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub command: String,
    pub tool_version: String,
    /// Lake version before the run, and the one it committed (`None`: nothing committed).
    pub base_version: u64,
    pub committed_version: Option<u64>,
    pub started_at: String,
    /// True when there was nothing new to do.
    pub noop: bool,
    pub message: String,
    pub objects: ObjectCounts,
    pub records: RecordCounts,
    pub output: OutputCounts,
    pub retype: RetypeCounts,
    pub proposals: ProposalCounts,
    /// Seconds spent per phase.
    pub phases: BTreeMap<String, f64>,
    pub elapsed_seconds: f64,
    pub peak_rss_bytes: u64,
    /// Bytes of buffered records spilled to local disk.
    pub spilled_bytes: u64,
    /// Object store requests of the staged archive and the lake (compact), as S3 bills them.
    #[serde(default)]
    pub requests: crate::storage::Requests,
    /// Commit attempts (more than one after a concurrent run won).
    pub attempts: u32,
    /// Lake versions rolled forward from an interrupted earlier run.
    pub recovered_versions: Vec<u64>,
    pub conservation_ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<crate::ops::diff::DiffCounts>,
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub ingest: Option<crate::ops::ingest::IngestCounts>,
}

/// The report of a `compact` run.
pub type CompactReport = RunReport;

impl RunReport {
    /// A report for `command`, started now.
    pub fn start(command: &str) -> Self {
        RunReport {
            command: command.into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            started_at: chrono::Utc::now().to_rfc3339(),
            ..Default::default()
        }
    }

    /// Ends the report: elapsed time and peak memory; keeps it under `<runs>/_runs/` (the lake)
    /// and writes it to `--report`.
    pub async fn finish(
        &mut self,
        started: std::time::Instant,
        runs: Option<&crate::storage::Location>,
        dest: Option<&crate::storage::FileTarget>,
    ) -> crate::Result<()> {
        self.elapsed_seconds = started.elapsed().as_secs_f64();
        self.peak_rss_bytes = crate::progress::peak_rss_bytes();
        let json = bytes::Bytes::from(serde_json::to_vec_pretty(self).expect("report json"));
        if let Some(lake) = runs {
            lake.put(&format!("_runs/{}.json", self.run_id), json.clone())
                .await?;
        }
        if let Some(dest) = dest {
            dest.put(json).await?;
        }
        Ok(())
    }

    /// Whether any record or object was quarantined.
    pub fn has_errors(&self) -> bool {
        self.records.errors > 0
    }

    /// Records per second over the whole run.
    pub fn records_per_second(&self) -> f64 {
        if self.elapsed_seconds > 0.0 {
            self.records.records_in as f64 / self.elapsed_seconds
        } else {
            0.0
        }
    }

    /// A one-screen human summary.
    pub fn summary(&self) -> String {
        if let Some(b) = &self.backup {
            return crate::report::summary::backup(self, b);
        }
        if let Some(v) = &self.verify {
            return crate::report::summary::verify(self, v);
        }
        if let Some(r) = &self.restore {
            return crate::report::summary::restore(self, r);
        }
        if let Some(r) = &self.replay {
            return crate::report::summary::replay(self, r);
        }
        if let Some(d) = &self.diff {
            return crate::ops::diff::summary(self, d);
        }
        if let Some(i) = &self.ingest {
            return crate::report::summary::ingest(self, i);
        }
        let r = &self.records;
        let mut s = format!(
            "fineo-batch compact {}\n  {}\n  objects: {} listed, {} read ({} bytes), {} already processed, {} changed\n  records: {} in = {} written + {} duplicates ({} exact, {} conflicting) + {} errors  [{}]\n  output: {} typed rows, {} untyped lines in {} partitions of {} tables; {} files added, {} removed\n  lake version: {} -> {}   elapsed {:.2}s ({:.0} records/s), peak memory {} MiB\n",
            self.run_id,
            self.message,
            self.objects.listed,
            self.objects.read,
            self.objects.bytes_read,
            self.objects.already_processed,
            self.objects.changed.len(),
            r.records_in,
            r.written,
            r.duplicates.exact + r.duplicates.conflicting,
            r.duplicates.exact,
            r.duplicates.conflicting,
            r.errors,
            if self.conservation_ok { "conservation ok" } else { "CONSERVATION FAILED" },
            self.output.typed_rows,
            self.output.untyped_lines,
            self.output.partitions_touched,
            self.output.tables_touched,
            self.output.files_added,
            self.output.files_removed,
            self.base_version,
            self.committed_version.map_or("unchanged".to_string(), |v| v.to_string()),
            self.elapsed_seconds,
            self.records_per_second(),
            self.peak_rss_bytes >> 20,
        );
        let q = &self.requests;
        s.push_str(&format!(
            "  listing: {}; requests: {} LIST, {} GET ({} of Delta logs), {} PUT, {} DELETE\n",
            self.objects
                .listed_after
                .as_ref()
                .map_or("the whole staged prefix".to_string(), |k| format!(
                    "keys after {k} (the last run's watermark, less the lookback)"
                )),
            q.list,
            q.get,
            q.delta_log_get,
            q.put,
            q.delete
        ));
        if !self.retype.tenants.is_empty() {
            s.push_str(&format!(
                "  catalog changed for {}: re-typed {} partitions ({} stored records resolved again)\n",
                self.retype.tenants.join(", "),
                self.retype.partitions,
                self.retype.records
            ));
        }
        if !self.proposals.tenants.is_empty() {
            s.push_str(&format!(
                "  schema proposals updated for {} (fineo-batch schema proposals --tenant T)\n",
                self.proposals.tenants.join(", ")
            ));
        }
        for (reason, n) in &r.errors_by_reason {
            s.push_str(&format!("  errors[{reason}]: {n}\n"));
        }
        let mut mismatches: Vec<_> = r.type_mismatches.iter().collect();
        mismatches.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (field, n) in mismatches.iter().take(8) {
            s.push_str(&format!("  type mismatches[{field}]: {n}\n"));
        }
        if mismatches.len() > 8 {
            let rest = mismatches.len() - 8;
            s.push_str(&format!(
                "  ... {rest} more fields with type mismatches (see the JSON report)\n"
            ));
        }
        for (reason, n) in &self.objects.damaged {
            s.push_str(&format!(
                "  damaged objects[{reason}]: {n} (records before the damage kept)\n"
            ));
        }
        for key in &self.objects.changed {
            s.push_str(&format!("  changed since processed (not re-read): {key}\n"));
        }
        s
    }
}
