//! One-screen summaries of the backup, verify and restore reports.

use super::{BackupCounts, ReplayCounts, RestoreCounts, RunReport, VerifyCounts};

fn footer(r: &RunReport) -> String {
    format!(
        "  elapsed {:.2}s, peak memory {} MiB\n",
        r.elapsed_seconds,
        r.peak_rss_bytes >> 20
    )
}

/// `backup`.
pub fn backup(r: &RunReport, b: &BackupCounts) -> String {
    let mut s = format!(
        "fineo-batch backup {}\n  {}\n  tenant-days: {} selected, {} bundles written, {} unchanged, {} already complete\n  written: {} files, {} bytes ({} records) from {} lake bytes\n",
        r.run_id,
        r.message,
        b.tenant_days,
        b.written.len(),
        b.unchanged,
        b.already_complete,
        b.files_written,
        b.bytes_written,
        b.records,
        b.lake_bytes_read,
    );
    for d in b.written.iter().take(10) {
        s.push_str(&format!("  new bundle {d}\n"));
    }
    if b.written.len() > 10 {
        s.push_str(&format!(
            "  ... {} more (see the JSON report)\n",
            b.written.len() - 10
        ));
    }
    for d in &b.changed_during_backup {
        s.push_str(&format!(
            "  CHANGED WHILE READ, not backed up: {d} (run backup again)\n"
        ));
    }
    s + &footer(r)
}

/// `backup verify`.
pub fn verify(r: &RunReport, v: &VerifyCounts) -> String {
    let mut s = format!(
        "fineo-batch backup verify{}\n  {}\n  bundles: {} checked, {} intact, {} bytes read\n",
        if v.deep { " --deep" } else { "" },
        r.message,
        v.bundles,
        v.ok,
        v.bytes_checked
    );
    for d in &v.damage {
        s.push_str(&format!("  DAMAGED {d}\n"));
    }
    for d in &v.incomplete {
        s.push_str(&format!(
            "  INCOMPLETE {d}: no manifest.json (an interrupted or running backup; run backup again)\n"
        ));
    }
    s + &footer(r)
}

/// `restore`.
pub fn restore(r: &RunReport, c: &RestoreCounts) -> String {
    let mut s = format!("fineo-batch restore {}\n  {}\n", r.run_id, r.message);
    s.push_str(&format!(
        "  bundles: {} selected and verified ({} bytes)\n",
        c.bundles.len(),
        c.bytes_verified
    ));
    if c.target == "lake" {
        for d in &c.days {
            s.push_str(&format!(
                "  {}: {} records in {} partitions{} (the target held {} records in {} partitions)\n",
                d.bundle,
                d.records,
                d.partitions,
                match d.emptied {
                    0 => String::new(),
                    n => format!(", {n} emptied"),
                },
                d.current_records,
                d.current_partitions
            ));
        }
        if !c.dry_run {
            s.push_str(&format!(
                "  partitions: {} copied, {} rebuilt, {} emptied; lake version {} -> {}\n",
                c.partitions_copied,
                c.partitions_rebuilt,
                c.partitions_emptied,
                r.base_version,
                r.committed_version
                    .map_or("unchanged".into(), |v| v.to_string())
            ));
        }
        if c.concurrent_records_kept > 0 {
            s.push_str(&format!(
                "  kept {} records that runs racing the restore committed\n",
                c.concurrent_records_kept
            ));
        }
        if c.newer_records > 0 {
            let what = match (c.dry_run, c.newer_policy.as_str()) {
                (true, _) => "would need --newer keep|requeue|drop for",
                (false, "keep") => "kept (merged on top of the bundles)",
                (false, "requeue") => "replaced; their objects are queued for the next compact:",
                _ => "replaced (fineo-batch replay brings them back):",
            };
            s.push_str(&format!(
                "  {what} {} records of {} archive objects processed after the bundles were taken: {}\n",
                c.newer_records,
                c.newer_objects.len(),
                c.newer_objects.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        for v in &c.catalog_versions_added {
            s.push_str(&format!("  catalog version added: {v}\n"));
        }
    } else {
        s.push_str(&format!(
            "  {} records as {} objects: {} written ({} bytes), {} already there\n",
            c.records, c.target, c.objects_written, c.bytes_written, c.objects_existing
        ));
    }
    for d in &c.no_bundle_at_or_before {
        s.push_str(&format!("  no bundle at or before --as-of for {d}\n"));
    }
    s + &footer(r)
}

/// `replay`.
pub fn replay(r: &RunReport, c: &ReplayCounts) -> String {
    let mut s = format!(
        "fineo-batch replay {}\n  {}\n  window [{}, {}): {} objects of {} listed; {} archived objects read ({} outside the window)\n",
        r.run_id,
        r.message,
        c.since,
        c.until,
        c.window_objects.len(),
        c.objects_listed,
        c.objects_read,
        c.objects_outside_window,
    );
    if !c.unprocessed_objects.is_empty() {
        s.push_str(&format!(
            "  {} objects of the window were never compacted: left to `compact`\n",
            c.unprocessed_objects.len()
        ));
    }
    s.push_str(&format!("  partitions: {} rebuilt", c.partitions.len()));
    if !c.partitions_emptied.is_empty() {
        s.push_str(&format!(" ({} emptied)", c.partitions_emptied.len()));
    }
    s.push('\n');
    for p in c.partitions.iter().take(12) {
        s.push_str(&format!("    {p}\n"));
    }
    if c.partitions.len() > 12 {
        s.push_str(&format!(
            "    ... {} more (see the JSON report)\n",
            c.partitions.len() - 12
        ));
    }
    if !c.dry_run && r.committed_version.is_some() {
        let rec = &r.records;
        s.push_str(&format!(
            "  records: {} read: {} into the rebuilt partitions ({} written, {} duplicates), {} of other partitions, {} bad (quarantined when first compacted)\n  lake version {} -> {}\n",
            rec.records_in,
            c.records_taken,
            rec.written,
            rec.duplicates.exact + rec.duplicates.conflicting,
            c.records_elsewhere,
            rec.errors,
            r.base_version,
            r.committed_version.map_or("unchanged".into(), |v| v.to_string()),
        ));
    }
    s + &footer(r)
}

/// `ingest`.
pub fn ingest(r: &RunReport, c: &crate::ops::ingest::IngestCounts) -> String {
    let mut s = format!(
        "fineo-batch ingest {}\n  {}\n  rows: {} read = {} staged + {} bad\n",
        r.run_id, r.message, c.rows, c.staged_rows, c.bad_rows
    );
    for f in &c.files {
        s.push_str(&format!("  {} [{}]", f.source, f.status));
        if let Some(fmt) = f.format {
            s.push_str(&format!(
                " {}{}",
                fmt.name(),
                if f.gzip { " (gzip)" } else { "" }
            ));
        }
        s.push_str(&format!(
            ": {} rows, {} staged, {} bad, {} objects\n",
            f.rows,
            f.staged_rows,
            f.bad_rows,
            f.objects.len()
        ));
        if let Some(d) = &f.dialect {
            s.push_str(&format!(
                "    dialect: delimiter {:?}, quote {:?}, header {:?}{}\n",
                d.delimiter,
                d.quote,
                d.header,
                if d.bom { ", BOM" } else { "" }
            ));
        }
        for col in &f.columns {
            let ty = col
                .r#type
                .map(|t| {
                    format!(
                        " ({})",
                        serde_json::to_value(t)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            s.push_str(&format!(
                "    column {:?} -> {}{ty}\n",
                col.column, col.role
            ));
        }
        for w in &f.widened {
            s.push_str(&format!(
                "    column {:?} sniffed as {:?} became text: record {} holds {:?}\n",
                w.column, w.sniffed, w.record, w.value
            ));
        }
        for line in &f.samples {
            s.push_str(&format!("    sample {line}\n"));
        }
        for b in &f.bad {
            s.push_str(&format!(
                "    bad row {} (line {}, byte {}){}: {} {}: {:?}\n",
                b.record,
                b.line.map_or("-".into(), |l| l.to_string()),
                b.offset.map_or("-".into(), |o| o.to_string()),
                b.column
                    .as_ref()
                    .map(|c| format!(" column {c:?}"))
                    .unwrap_or_default(),
                b.reason,
                b.message,
                b.raw
            ));
        }
        if let Some(e) = &f.error_file {
            s.push_str(&format!("    every bad row: {e}\n"));
        }
        if let Some(reason) = &f.reason {
            s.push_str(&format!("    {reason}\n"));
        }
    }
    s + &footer(r)
}
