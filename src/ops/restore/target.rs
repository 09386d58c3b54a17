//! What the target lake holds for the tenant-days a restore replaces: every current partition
//! of the day and the files a restore removes, found through the partition index and, where an
//! index is gone (lost files), through the Delta log.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::TenantDoc;
use crate::commit::delta::Table;
use crate::error::Result;
use crate::model::{day_to_date, PartitionKey};
use crate::names;
use crate::storage::Location;
use crate::write::index::{read_footer, DataFile};
use crate::write::stored::{list_stored, metric_name, StoredPartition};

/// One current partition of a restored day.
#[derive(Clone, Debug)]
pub struct CurrentPartition {
    pub key: PartitionKey,
    /// Active typed files (the restore removes them).
    pub typed: Vec<DataFile>,
    /// The partition index, when it exists.
    pub index: Option<String>,
    /// Records the index holds.
    pub records: u64,
}

/// A tenant's partitions in the target lake, listed once per restore attempt.
pub struct TenantTarget {
    tenant: String,
    indexed: Vec<StoredPartition>,
    typed_dirs: Vec<String>,
    untyped_dirs: Vec<String>,
}

impl TenantTarget {
    /// Lists the tenant's index files and typed and untyped metric directories.
    pub async fn load(lake: &Location, tenant: &str) -> Result<Self> {
        let segments = |dirs: Vec<String>| -> Vec<String> {
            dirs.iter()
                .filter_map(|d| d.strip_prefix("metric=").map(str::to_string))
                .collect()
        };
        Ok(TenantTarget {
            tenant: tenant.to_string(),
            indexed: list_stored(lake, Some(tenant)).await?,
            typed_dirs: segments(lake.list_dirs(&format!("typed/tenant={tenant}")).await?),
            untyped_dirs: segments(lake.list_dirs(&format!("untyped/tenant={tenant}")).await?),
        })
    }

    /// The day's current partitions, by metric.
    pub async fn day(
        &self,
        lake: &Location,
        day: i32,
        doc: Option<&TenantDoc>,
    ) -> Result<BTreeMap<String, CurrentPartition>> {
        let mut out = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for p in self.indexed.iter().filter(|p| p.day == day) {
            seen.insert(p.segment.clone());
            let Some((manifest, records)) = read_footer(lake, &p.index).await? else {
                continue;
            };
            let name = metric_name(lake, &p.segment, std::slice::from_ref(&p.index), doc).await?;
            let Some(name) = name else {
                tracing::warn!(index = %p.index, "no metric name matches the directory; left as it is");
                continue;
            };
            let key = self.key(&name, day);
            out.insert(
                name,
                CurrentPartition {
                    key,
                    typed: manifest.typed,
                    index: Some(p.index.clone()),
                    records,
                },
            );
        }
        let date = day_to_date(day);
        for seg in &self.typed_dirs {
            if seen.contains(seg) || names::is_shortened(seg) {
                continue;
            }
            let name = names::unescape(seg);
            let table = Table::open(
                lake.child(&format!("typed/{}", names::table_dir(&self.tenant, &name))),
            )
            .await?;
            let typed = table.files_on(&date).await?;
            if !typed.is_empty() {
                seen.insert(seg.clone());
                let records = typed.iter().map(|f| f.rows).sum();
                let key = self.key(&name, day);
                out.insert(
                    name,
                    CurrentPartition {
                        key,
                        typed,
                        index: None,
                        records,
                    },
                );
            }
        }
        for seg in &self.untyped_dirs {
            if seen.contains(seg) || names::is_shortened(seg) {
                continue;
            }
            let name = names::unescape(seg);
            let path = format!(
                "untyped/{}/date={date}/part-00000.jsonl",
                names::table_dir(&self.tenant, &name)
            );
            if lake.exists(&path).await? {
                let key = self.key(&name, day);
                out.insert(
                    name,
                    CurrentPartition {
                        key,
                        typed: Vec::new(),
                        index: None,
                        records: 0,
                    },
                );
            }
        }
        Ok(out)
    }

    fn key(&self, metric: &str, day: i32) -> PartitionKey {
        PartitionKey {
            tenant: self.tenant.clone(),
            metric: metric.to_string(),
            day,
        }
    }
}
