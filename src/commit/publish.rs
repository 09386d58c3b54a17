//! Publishing a committed lake version: Delta commits per table (idempotent through the app
//! transaction), staged untyped / index / error files moved into place, ledger shards and watermark,
//! published marker. Safe to repeat, so a crashed run is rolled forward by the next one.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};

use super::delta::Table;
use super::log::{CommitRecord, LakeLog, PartitionChange, StagedCopy, TypedFile};
use crate::error::Result;
use crate::names;
use crate::storage::Location;
use crate::write::index::DataFile;
use crate::write::typed::Columns;

/// What publishing did.
#[derive(Debug, Default, Clone, Copy)]
pub struct PublishStats {
    pub tables: u64,
    /// Typed files added and untyped files put in place.
    pub files_added: u64,
    pub files_removed: u64,
}

/// Requests in flight at once while publishing (half as many tables at once). A publish is a
/// few requests per table and per partition, each mostly waiting on the store (tens of
/// milliseconds on S3), so they overlap widely; 8 left a local publish of 100 tables waiting
/// on itself (the hourly run's publish: 75-85 ms at 8, 60-67 ms at 32, on tmpfs).
const CONCURRENCY: usize = 32;

/// Publishes `record` (already committed to the lake log).
pub async fn publish(lake: &Location, record: &CommitRecord) -> Result<PublishStats> {
    let mut tables: BTreeMap<(String, String), TableChange> = BTreeMap::new();
    let typed = record
        .partitions
        .iter()
        .filter(|p| p.columns.is_some() || !p.typed_remove.is_empty());
    for p in typed {
        let t = tables
            .entry((p.tenant.clone(), p.metric.clone()))
            .or_default();
        t.parts.push(p);
        t.columns = t.columns.take().or_else(|| p.table_columns());
    }
    for s in &record.schemas {
        let t = tables
            .entry((s.tenant.clone(), s.metric.clone()))
            .or_default();
        t.columns = Some(Columns(
            s.columns
                .iter()
                .map(|(n, ty)| (n.as_str().into(), *ty))
                .collect(),
        ));
    }
    let per_table: Vec<PublishStats> = futures::stream::iter(&tables)
        .map(|((tenant, metric), change)| {
            publish_table(lake, record.version, tenant, metric, change)
        })
        .buffer_unordered(CONCURRENCY / 2)
        .try_collect()
        .await?;
    let untyped = record
        .partitions
        .iter()
        .filter(|p| p.untyped_staged.is_some())
        .count() as u64;
    let stats = per_table.iter().fold(
        PublishStats {
            files_added: untyped,
            ..Default::default()
        },
        |a, t| PublishStats {
            tables: a.tables + t.tables,
            files_added: a.files_added + t.files_added,
            files_removed: a.files_removed + t.files_removed,
        },
    );
    let log = LakeLog::new(lake);
    // A later version exists only after this one was published (by a run that rolled it
    // forward): a slow publisher must not put older files over newer ones.
    if log.exists(record.version + 1).await? {
        return Ok(stats);
    }
    let moves = record.partitions.iter().flat_map(|p| {
        let untyped = (!p.untyped_kept).then_some((p.untyped_staged.as_deref(), &*p.untyped_path));
        untyped
            .into_iter()
            .chain([(p.index_staged.as_deref(), p.index_path.as_str())])
    });
    let moves = moves.chain(
        record
            .errors
            .iter()
            .chain(&record.files)
            .map(|e| (Some(e.staged.as_str()), e.path.as_str())),
    );
    futures::stream::iter(moves)
        .map(|(staged, path)| move_staged(lake, staged, path, &log, record.version))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    for c in &record.creates {
        create_staged(lake, c, &log, record.version).await?;
    }
    super::shards::publish(lake, &log, record).await?;
    log.mark_published(record.version).await?;
    let staged = lake.list(&format!("_fineo/staging/{}", record.tag)).await?;
    futures::stream::iter(staged)
        .map(|meta| async move { lake.delete_path(&meta.location).await })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(stats)
}

/// What a version changes in one table.
#[derive(Default)]
struct TableChange<'a> {
    parts: Vec<&'a PartitionChange>,
    /// The table's columns after the version; `None` when the metric is no longer declared.
    columns: Option<Columns>,
}

/// Commits one table's adds and removes (creating the table or changing its columns first).
/// A schema-only change applies to existing tables: a metric without rows gets no table.
async fn publish_table(
    lake: &Location,
    version: u64,
    tenant: &str,
    metric: &str,
    change: &TableChange<'_>,
) -> Result<PublishStats> {
    let loc = lake.child(&format!("typed/{}", names::table_dir(tenant, metric)));
    let mut table = Table::open(loc).await?;
    let adds: Vec<(String, TypedFile)> = change
        .parts
        .iter()
        .flat_map(|p| p.typed_add.iter().map(|f| (p.date.clone(), f.clone())))
        .collect();
    let removes: Vec<(String, DataFile)> = change
        .parts
        .iter()
        .flat_map(|p| p.typed_remove.iter().map(|f| (p.date.clone(), f.clone())))
        .collect();
    if !table.exists() && adds.is_empty() {
        return Ok(PublishStats::default());
    }
    if table.committed_version().await? >= Some(version as i64) {
        return Ok(PublishStats::default());
    }
    let schema = match &change.columns {
        Some(cols) => {
            table
                .ensure_schema(cols, &format!("{tenant}.{metric}"))
                .await?
        }
        None => None,
    };
    table
        .commit(version, &adds, &removes, schema.as_ref())
        .await?;
    Ok(PublishStats {
        tables: 1,
        files_added: adds.len() as u64,
        files_removed: removes.len() as u64,
    })
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

/// Puts a staged file at its place unless something is there already (never overwritten).
async fn create_staged(lake: &Location, c: &StagedCopy, log: &LakeLog<'_>, v: u64) -> Result<()> {
    match lake.get_opt(&c.staged).await? {
        Some(bytes) => lake.put_create(&c.path, bytes).await.map(|_| ()),
        None if log.is_published(v).await? => Ok(()),
        None => Err(crate::error::Error::metadata(
            &c.staged,
            "staged file missing",
        )),
    }
}
