//! Planning a compact run: which listed objects are new, changed or done, and the run's
//! deterministic tag.

use crate::commit::{Ledger, LedgerEntry};
use crate::report::CompactReport;
use crate::sources::StagedObject;

/// The objects to read: listed, not in the ledger. Changed ones are reported, not read.
pub fn plan(
    listed: &[StagedObject],
    ledger: &Ledger,
    report: &mut CompactReport,
) -> Vec<StagedObject> {
    report.objects.listed = listed.len() as u64;
    let mut new = Vec::new();
    for o in listed {
        match ledger.entries.get(&o.key) {
            None => new.push(o.clone()),
            Some(e)
                if e.size != o.size
                    || (e.etag.is_some() && o.etag.is_some() && e.etag != o.etag) =>
            {
                report.objects.changed.push(o.key.clone())
            }
            Some(_) => report.objects.already_processed += 1,
        }
    }
    new
}

/// The ledger entry recording that an object was processed.
pub fn ledger_entry(o: &StagedObject) -> LedgerEntry {
    LedgerEntry {
        key: o.key.clone(),
        size: o.size,
        etag: o.etag.clone(),
        delivery_ms: o.delivery_ms,
    }
}

/// A run's deterministic tag: the same base version and new objects give the same file names,
/// so a rerun after a crash overwrites its own leftovers instead of orphaning them.
pub fn run_tag(base: u64, new: &[StagedObject], settings: &str) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&base.to_le_bytes());
    h.update(settings.as_bytes());
    for o in new {
        h.update(o.key.as_bytes());
        h.update(&o.size.to_le_bytes());
        h.update(o.etag.as_deref().unwrap_or("").as_bytes());
        h.update(b"\n");
    }
    format!("v{:06}-{:016x}", base + 1, h.digest())
}
