//! Publishing a committed lake version: Delta commits per table (idempotent through the app
//! transaction), staged untyped / index / error files moved into place, ledger checkpoint,
//! published marker. Safe to repeat, so a crashed run is rolled forward by the next one.

use std::collections::BTreeMap;

use super::delta::Table;
use super::ledger::Ledger;
use super::log::{CommitRecord, LakeLog, PartitionChange, TypedFile};
use crate::error::Result;
use crate::names;
use crate::storage::Location;
use crate::write::index::DataFile;

/// What publishing did.
#[derive(Debug, Default, Clone, Copy)]
pub struct PublishStats {
    pub tables: u64,
    pub files_added: u64,
    pub files_removed: u64,
}

/// Publishes `record` (already committed to the lake log).
pub async fn publish(lake: &Location, record: &CommitRecord) -> Result<PublishStats> {
    let mut stats = PublishStats::default();
    let mut tables: BTreeMap<(String, String), Vec<&PartitionChange>> = BTreeMap::new();
    for p in &record.partitions {
        if p.columns.is_some() {
            tables
                .entry((p.tenant.clone(), p.metric.clone()))
                .or_default()
                .push(p);
        }
    }
    for ((tenant, metric), parts) in &tables {
        let loc = lake.child(&format!("typed/{}", names::table_dir(tenant, metric)));
        let mut table = Table::open(loc).await?;
        let cols = parts[0]
            .table_columns()
            .expect("typed partition has columns");
        table
            .ensure_schema(&cols, &format!("{tenant}.{metric}"))
            .await?;
        let adds: Vec<(String, TypedFile)> = parts
            .iter()
            .flat_map(|p| p.typed_add.iter().map(|f| (p.date.clone(), f.clone())))
            .collect();
        let removes: Vec<(String, DataFile)> = parts
            .iter()
            .flat_map(|p| p.typed_remove.iter().map(|f| (p.date.clone(), f.clone())))
            .collect();
        stats.files_added += adds.len() as u64;
        stats.files_removed += removes.len() as u64;
        table.commit(record.version, &adds, &removes).await?;
        stats.tables += 1;
    }
    let log = LakeLog::new(lake);
    for p in &record.partitions {
        // A later version exists only after this one was published (by a run that rolled it
        // forward): a slow publisher must not put older files over newer ones.
        if log.exists(record.version + 1).await? {
            return Ok(stats);
        }
        move_staged(
            lake,
            p.untyped_staged.as_deref(),
            &p.untyped_path,
            &log,
            record.version,
        )
        .await?;
        move_staged(
            lake,
            Some(&p.index_staged),
            &p.index_path,
            &log,
            record.version,
        )
        .await?;
    }
    for e in &record.errors {
        move_staged(lake, Some(&e.staged), &e.path, &log, record.version).await?;
    }
    if record
        .version
        .is_multiple_of(super::ledger::CHECKPOINT_EVERY)
    {
        let mut ledger = Ledger::load(lake, &log, record.version - 1).await?;
        for e in &record.ledger {
            ledger.entries.insert(e.key.clone(), e.clone());
        }
        ledger.checkpoint(lake, record.version).await?;
    }
    log.mark_published(record.version).await?;
    for meta in lake.list(&format!("_fineo/staging/{}", record.tag)).await? {
        lake.delete_path(&meta.location).await?;
    }
    Ok(stats)
}

/// Copies a staged file to its place (or deletes the place when nothing is staged). A staged
/// file already gone means a concurrent publisher of the same version finished first.
async fn move_staged(
    lake: &Location,
    staged: Option<&str>,
    path: &str,
    log: &LakeLog<'_>,
    v: u64,
) -> Result<()> {
    match staged {
        None => lake.delete(path).await,
        Some(s) => match lake.copy(s, path).await {
            Ok(()) => Ok(()),
            Err(e) => {
                if log.is_published(v).await? {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        },
    }
}
