//! The run report (SPEC 9): what a run read, wrote, deduplicated and quarantined, per phase.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Objects seen by a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectCounts {
    /// Objects below the staged prefix.
    pub listed: u64,
    /// Objects already in the ledger, skipped.
    pub already_processed: u64,
    /// Objects in the ledger whose size or ETag changed since: reported, not processed.
    pub changed: Vec<String>,
    /// Objects read by this run.
    pub read: u64,
    pub bytes_read: u64,
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
    /// Typed rows in the partitions written (rewritten partitions count whole).
    pub typed_rows: u64,
    pub untyped_lines: u64,
    pub partitions_touched: u64,
    pub tables_touched: u64,
    pub files_added: u64,
    pub files_removed: u64,
    pub bytes_written: u64,
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

/// The report of one `compact` run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CompactReport {
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
    /// Commit attempts (more than one after a concurrent run won).
    pub attempts: u32,
    /// Lake versions rolled forward from an interrupted earlier run.
    pub recovered_versions: Vec<u64>,
    pub conservation_ok: bool,
}

impl CompactReport {
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
