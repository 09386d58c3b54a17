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

/// Objects that `ingest` wrote are read only once the ingest of their source file finished
/// (its ledger record lists them): a file's objects become visible together. Others are
/// counted as pending, and their keys returned.
pub async fn ready(
    staged: &crate::storage::Location,
    new: Vec<StagedObject>,
    report: &mut CompactReport,
) -> crate::Result<(Vec<StagedObject>, Vec<String>)> {
    use crate::ops::ingest::output;
    let mut listed: std::collections::HashMap<String, std::collections::HashSet<String>> =
        std::collections::HashMap::new();
    let mut out = Vec::with_capacity(new.len());
    let mut pending = Vec::new();
    for o in new {
        let Some(id) = output::id_of_object(&o.key) else {
            out.push(o);
            continue;
        };
        if !listed.contains_key(id) {
            let record = output::load_record(staged, id).await?;
            let objects = record
                .map(|r| r.objects.into_iter().collect())
                .unwrap_or_default();
            listed.insert(id.to_string(), objects);
        }
        match listed[id].contains(&o.key) {
            true => out.push(o),
            false => {
                report.objects.pending_ingest += 1;
                pending.push(o.key);
            }
        }
    }
    Ok((out, pending))
}

/// The watermark this run leaves: the greatest key read so far, but never past an object
/// still pending, so the next listing sees it again.
pub fn next_watermark(
    prev: Option<String>,
    new: &[StagedObject],
    pending: &[String],
) -> Option<String> {
    let read = new.iter().map(|o| &o.key).max().cloned();
    let top = prev.max(read)?;
    Some(match pending.iter().min() {
        Some(p) if *p < top => p.clone(),
        _ => top,
    })
}

/// The ledger entry recording that an object was processed by lake version `version`.
pub fn ledger_entry(o: &StagedObject, version: u64) -> LedgerEntry {
    LedgerEntry {
        key: o.key.clone(),
        size: o.size,
        etag: o.etag.clone(),
        delivery_ms: o.delivery_ms,
        version,
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
