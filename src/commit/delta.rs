//! Delta Lake side of a publish: create a tenant/metric table, evolve or replace its schema,
//! and commit the run's file changes once (an app transaction makes the commit idempotent).

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{
    Action, Add, DataType, MetadataExt, PrimitiveType, Remove, StructField, StructType, Transaction,
};
use deltalake::logstore::{default_logstore, LogStoreRef, StorageConfig};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::config::TablePropertiesExt;
use deltalake::{DeltaTable, DeltaTableError};

use super::log::TypedFile;
use crate::error::{Error, Result};
use crate::model::{ColumnTypes, FieldType};
use crate::storage::Location;
use crate::write::index::DataFile;
use crate::write::typed::Columns;

/// The Delta application id of fineo-batch commits.
pub const APP_ID: &str = "fineo-batch";

/// A typed table of the lake.
pub struct Table {
    loc: Location,
    log_store: LogStoreRef,
    table: DeltaTable,
    exists: bool,
}

fn delta_type(t: FieldType) -> DataType {
    DataType::Primitive(match t {
        FieldType::Boolean => PrimitiveType::Boolean,
        FieldType::Int => PrimitiveType::Integer,
        FieldType::Long => PrimitiveType::Long,
        FieldType::Float => PrimitiveType::Float,
        FieldType::Double => PrimitiveType::Double,
        FieldType::String => PrimitiveType::String,
        FieldType::Timestamp => PrimitiveType::Timestamp,
    })
}

fn field_type(t: &DataType) -> Option<FieldType> {
    Some(match t {
        DataType::Primitive(PrimitiveType::Boolean) => FieldType::Boolean,
        DataType::Primitive(PrimitiveType::Integer) => FieldType::Int,
        DataType::Primitive(PrimitiveType::Long) => FieldType::Long,
        DataType::Primitive(PrimitiveType::Float) => FieldType::Float,
        DataType::Primitive(PrimitiveType::Double) => FieldType::Double,
        DataType::Primitive(PrimitiveType::String) => FieldType::String,
        DataType::Primitive(PrimitiveType::Timestamp) => FieldType::Timestamp,
        _ => return None,
    })
}

/// Delta columns of a table: timestamp, the fields, and the `date` partition column.
pub fn delta_fields(cols: &Columns) -> Vec<StructField> {
    let mut fields = vec![StructField::new(
        "timestamp",
        DataType::Primitive(PrimitiveType::Timestamp),
        false,
    )];
    fields.extend(
        cols.0
            .iter()
            .map(|(n, t)| StructField::new(n.as_ref(), delta_type(*t), true)),
    );
    fields.push(StructField::new(
        "date",
        DataType::Primitive(PrimitiveType::Date),
        true,
    ));
    fields
}

impl Table {
    /// Opens (without creating) the table at `loc`.
    pub async fn open(loc: Location) -> Result<Table> {
        let cfg = StorageConfig::default();
        let prefixed = cfg
            .decorate_store(loc.store().clone(), loc.url())
            .map_err(|e| Error::delta(loc.url(), e))?;
        let log_store = default_logstore(Arc::from(prefixed), loc.store().clone(), loc.url(), &cfg);
        let mut table = DeltaTable::new(log_store.clone());
        // One LIST first: loading a location without commits works too, but the Delta kernel
        // then logs an error for every table a run creates.
        let exists = loc.any_below("_delta_log").await?;
        if exists {
            table.load().await.map_err(|e| Error::delta(loc.url(), e))?;
        }
        Ok(Table {
            loc,
            log_store,
            table,
            exists,
        })
    }

    fn snapshot(&self) -> Result<&deltalake::table::state::DeltaTableState> {
        self.table
            .snapshot()
            .map_err(|e| Error::delta(self.loc.url(), e))
    }

    /// The table's columns after `timestamp` (excluding `date`) with their types, if it exists.
    pub fn typed_columns(&self) -> Result<Option<ColumnTypes>> {
        if !self.exists {
            return Ok(None);
        }
        let snap = self.snapshot()?;
        let mut out = Vec::new();
        for f in snap.schema().fields() {
            if f.name() == "timestamp" || f.name() == "date" {
                continue;
            }
            let ty = field_type(f.data_type()).ok_or_else(|| {
                Error::delta(
                    self.loc.url(),
                    DeltaTableError::Generic(format!(
                        "column {:?} has a type fineo-batch does not write",
                        f.name()
                    )),
                )
            })?;
            out.push((Arc::from(f.name().as_str()), ty));
        }
        Ok(Some(out))
    }

    /// Creates the table (if missing) and brings its columns to `cols`: new columns at the end
    /// are added at once; any other change (a column renamed, hidden, re-typed or reordered)
    /// returns the metadata action that replaces the schema, to commit with the rewritten files.
    pub async fn ensure_schema(&mut self, cols: &Columns, name: &str) -> Result<Option<Action>> {
        if !self.exists {
            self.create(cols, name).await?;
        }
        let have = self.typed_columns()?.unwrap_or_default();
        if have == cols.0 {
            return Ok(None);
        }
        let appended = have.len() < cols.0.len() && cols.0[..have.len()] == have[..];
        if appended {
            let missing: Vec<StructField> = cols.0[have.len()..]
                .iter()
                .map(|(n, t)| StructField::new(n.as_ref(), delta_type(*t), true))
                .collect();
            let t = std::mem::replace(&mut self.table, DeltaTable::new(self.log_store.clone()));
            self.table = t
                .add_columns()
                .with_fields(missing)
                .await
                .map_err(|e| Error::delta(self.loc.url(), e))?;
            return Ok(None);
        }
        let url = self.loc.url();
        let schema = StructType::try_new(delta_fields(cols))
            .map_err(|e| Error::delta(url, DeltaTableError::from(e)))?;
        let md = self
            .snapshot()?
            .metadata()
            .clone()
            .with_schema(&schema)
            .map_err(|e| Error::delta(url, DeltaTableError::from(e)))?;
        Ok(Some(Action::Metadata(md)))
    }

    async fn create(&mut self, cols: &Columns, name: &str) -> Result<()> {
        let created = deltalake::operations::create::CreateBuilder::new()
            .with_log_store(self.log_store.clone())
            .with_table_name(name)
            .with_columns(delta_fields(cols))
            .with_partition_columns(["date"])
            .with_save_mode(SaveMode::Ignore)
            .await;
        match created {
            Ok(t) => self.table = t,
            Err(e) => {
                // A concurrent creator may have won: the table must now load.
                self.table
                    .load()
                    .await
                    .map_err(|_| Error::delta(self.loc.url(), e))?;
            }
        }
        self.exists = true;
        Ok(())
    }

    /// The active files of one `date` partition.
    pub async fn files_on(&self, date: &str) -> Result<Vec<DataFile>> {
        use futures::TryStreamExt;
        if !self.exists {
            return Ok(Vec::new());
        }
        let views: Vec<_> = self
            .table
            .get_active_add_actions_by_partitions(&[])
            .try_collect()
            .await
            .map_err(|e| Error::delta(self.loc.url(), e))?;
        Ok(views
            .iter()
            .filter(|f| f.partition_values_map().get("date") == Some(&Some(date.to_string())))
            .map(|f| DataFile {
                path: f.path().into_owned(),
                size: f.size() as u64,
                rows: f.num_records().unwrap_or(0) as u64,
            })
            .collect())
    }

    /// Whether the table exists.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// The last lake version committed to this table: the fineo-batch transaction of the
    /// latest commit that has one. The newest few commits are read first (usually the last one
    /// answers); a replay of the whole log only when they do not.
    pub async fn committed_version(&self) -> Result<Option<i64>> {
        if !self.exists {
            return Ok(None);
        }
        let snap = self.snapshot()?;
        if let Recent::Found(txn) = self.recent_transaction(snap.version()).await? {
            return Ok(txn);
        }
        snap.transaction_version(self.log_store.as_ref(), APP_ID)
            .await
            .map_err(|e| Error::delta(self.loc.url(), e))
    }

    /// The fineo-batch transaction version in the newest [`TXN_LOOKBACK`] commits at and before
    /// `latest`, if they tell.
    async fn recent_transaction(&self, latest: u64) -> Result<Recent> {
        for v in (0..=latest).rev().take(TXN_LOOKBACK) {
            let entry = self.log_store.read_commit_entry(v).await;
            let Some(bytes) = entry.map_err(|e| Error::delta(self.loc.url(), e))? else {
                return Ok(Recent::Unknown);
            };
            match app_transaction(&bytes) {
                Ok(Some(txn)) => return Ok(Recent::Found(Some(txn))),
                Ok(None) if v == 0 => return Ok(Recent::Found(None)),
                Ok(None) => {}
                Err(()) => return Ok(Recent::Unknown),
            }
        }
        Ok(Recent::Unknown)
    }

    /// Commits adds and removes as lake version `version`, once: the caller has found it not
    /// committed yet ([`Self::committed_version`]); a retry asks again.
    pub async fn commit(
        &mut self,
        version: u64,
        adds: &[(String, TypedFile)],
        removes: &[(String, DataFile)],
        schema: Option<&Action>,
    ) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > 1 && self.committed_version().await? >= Some(version as i64) {
                return Ok(());
            }
            let mut actions = actions(adds, removes);
            actions.extend(schema.cloned());
            let snap = self.snapshot()?;
            let due = checkpoint_due(snap);
            let props = CommitProperties::default()
                .with_application_transaction(Transaction::new(APP_ID, version as i64))
                .with_create_checkpoint(true)
                .with_cleanup_expired_logs(Some(snap.table_config().enable_expired_log_cleanup()));
            let op = DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: Some(vec!["date".into()]),
                predicate: None,
            };
            let res = async {
                let builder = CommitBuilder::from(props).with_actions(actions);
                let prepared = builder
                    .build(Some(snap), self.log_store.clone(), op)
                    .into_prepared_commit_future()
                    .await?;
                // The commit is written here; the post-commit work only when a checkpoint is due.
                let post = prepared.await?;
                if due {
                    post.await?;
                }
                Ok::<(), DeltaTableError>(())
            }
            .await;
            match res {
                Ok(_) => return Ok(()),
                Err(e) if attempt < 5 => {
                    tracing::warn!(table = %self.loc.url(), error = %e, "delta commit retry");
                    self.table
                        .load()
                        .await
                        .map_err(|e| Error::delta(self.loc.url(), e))?;
                }
                Err(e) => return Err(Error::delta(self.loc.url(), e)),
            }
        }
    }
}

/// Commits read back from the latest for the last fineo-batch transaction.
const TXN_LOOKBACK: usize = 4;

/// What the newest commits tell of the last fineo-batch transaction.
enum Recent {
    /// Its version, or `None` when the table's first commit was reached without one.
    Found(Option<i64>),
    /// None of them has one, or one is gone (expired after a checkpoint) or unreadable.
    Unknown,
}

/// The fineo-batch transaction version in one commit file (`Err` when a line naming a
/// transaction does not parse).
fn app_transaction(commit: &[u8]) -> std::result::Result<Option<i64>, ()> {
    #[derive(serde::Deserialize)]
    struct Line {
        txn: Option<Txn>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Txn {
        app_id: String,
        version: i64,
    }
    let finder = memchr::memmem::Finder::new(b"\"txn\"");
    for line in commit.split(|b| *b == b'\n') {
        if finder.find(line).is_none() {
            continue;
        }
        let parsed: Line = serde_json::from_slice(line).map_err(|_| ())?;
        if let Some(t) = parsed.txn.filter(|t| t.app_id == APP_ID) {
            return Ok(Some(t.version));
        }
    }
    Ok(None)
}

/// Whether the next commit is the one that writes a checkpoint (every `checkpointInterval`
/// versions). Only that commit runs the Delta library's post-commit work: the checkpoint, and
/// the removal of expired log files when the table allows it (as Spark does). Any other commit
/// skips it: the snapshot update it would make (a LIST and a replay of the table's files) is
/// never used, and the library's default lists the whole `_delta_log` after every commit.
/// The version is predicted from the snapshot: a commit that lands later, after the library
/// retried past a concurrent writer's, may go without its checkpoint; the next due one writes it.
fn checkpoint_due(snap: &deltalake::table::state::DeltaTableState) -> bool {
    let next = snap.version() + 1;
    (next + 1).is_multiple_of(snap.table_config().checkpoint_interval().get())
}

fn partition_values(date: &str) -> HashMap<String, Option<String>> {
    HashMap::from([("date".to_string(), Some(date.to_string()))])
}

fn actions(adds: &[(String, TypedFile)], removes: &[(String, DataFile)]) -> Vec<Action> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut out = Vec::with_capacity(adds.len() + removes.len());
    for (date, f) in removes {
        out.push(Action::Remove(Remove {
            path: f.path.clone(),
            data_change: true,
            deletion_timestamp: Some(now),
            extended_file_metadata: Some(true),
            partition_values: Some(partition_values(date)),
            size: Some(f.size as i64),
            ..Default::default()
        }));
    }
    for (date, f) in adds {
        out.push(Action::Add(Add {
            path: f.file.path.clone(),
            partition_values: partition_values(date),
            size: f.file.size as i64,
            modification_time: now,
            data_change: true,
            stats: Some(f.stats.clone()),
            ..Default::default()
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commits_transaction_is_found_by_its_app() {
        let ours = br#"{"commitInfo":{"operation":"WRITE","txn":"not an action"}}
{"txn":{"appId":"other","version":9}}
{"txn":{"appId":"fineo-batch","version":7,"lastUpdated":1}}
{"add":{"path":"a.parquet","size":1}}
"#;
        assert_eq!(app_transaction(ours), Ok(Some(7)));
        assert_eq!(
            app_transaction(br#"{"txn":{"appId":"other","version":9}}"#),
            Ok(None)
        );
        assert_eq!(app_transaction(b"{\"add\":{}}\n"), Ok(None));
        assert_eq!(app_transaction(b"{\"txn\": {broken\n"), Err(()));
    }

    /// Commits a transaction of another application (no fineo-batch one) to the table.
    async fn commit_other(loc: &Location, version: i64) {
        let t = Table::open(loc.clone()).await.unwrap();
        CommitBuilder::default()
            .with_actions(vec![Action::Txn(Transaction::new("other", version))])
            .build(
                Some(t.snapshot().unwrap()),
                t.log_store.clone(),
                DeltaOperation::Write {
                    mode: SaveMode::Append,
                    partition_by: None,
                    predicate: None,
                },
            )
            .await
            .unwrap();
    }

    async fn committed(loc: &Location) -> Option<i64> {
        let t = Table::open(loc.clone()).await.unwrap();
        t.committed_version().await.unwrap()
    }

    #[tokio::test]
    async fn the_committed_version_is_the_last_fineo_transaction_however_far_back() {
        let tmp = tempfile::tempdir().unwrap();
        let loc = Location::parse(tmp.path().join("t").to_str().unwrap()).unwrap();
        assert_eq!(committed(&loc).await, None, "no table");
        let cols = Columns(vec![(Arc::from("v"), FieldType::Long)]);
        let mut t = Table::open(loc.clone()).await.unwrap();
        t.ensure_schema(&cols, "t.m").await.unwrap();
        assert_eq!(committed(&loc).await, None, "only the table's creation");
        let mut t = Table::open(loc.clone()).await.unwrap();
        t.commit(7, &[], &[], None).await.unwrap();
        assert_eq!(committed(&loc).await, Some(7), "the latest commit");
        commit_other(&loc, 1).await;
        assert_eq!(
            committed(&loc).await,
            Some(7),
            "read back past another writer"
        );
        for v in 2..=TXN_LOOKBACK as i64 {
            commit_other(&loc, v).await;
        }
        // Further back than the commits read: the whole log is replayed.
        assert_eq!(committed(&loc).await, Some(7), "found by the replay");
        let mut t = Table::open(loc.clone()).await.unwrap();
        t.commit(8, &[], &[], None).await.unwrap();
        assert_eq!(committed(&loc).await, Some(8));
    }
}
