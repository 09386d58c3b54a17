//! Re-typing after a catalog change: which stored partitions resolve differently under the
//! new catalog (fields now typed, renamed, re-typed, hidden, a metric now an alias), so that
//! the run rebuilds exactly those from the records as sent and the lake looks as if the new
//! catalog had been there from the start.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::partition::columns_fit;
use crate::catalog::{Catalog, MetricDoc, TenantDoc};
use crate::commit::log::TableSchema;
use crate::error::Result;
use crate::model::PartitionKey;
use crate::storage::Location;
use crate::write::index::read_manifest;

pub use crate::commit::applied::APPLIED_PATH;

/// A partition to rebuild for the catalog change.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RetypeJob {
    /// The partition's own records resolve differently.
    pub retype: bool,
    /// Other partitions whose records now belong here.
    pub sources: BTreeSet<PartitionKey>,
}

/// What a catalog change asks of this run.
#[derive(Debug, Default)]
pub struct RetypePlan {
    pub jobs: BTreeMap<PartitionKey, RetypeJob>,
    /// Columns of the tables of every changed, declared metric.
    pub schemas: Vec<TableSchema>,
    /// Tenants whose catalog changed since the lake was last built (a tenant's first catalog
    /// counts only when it changes stored partitions).
    pub tenants: Vec<String>,
    /// The new applied-catalog document, when it changed.
    pub applied: Option<Bytes>,
}

/// Compares `catalog` with the one the lake was built with and finds the partitions to rebuild.
pub async fn plan(lake: &Location, catalog: &Catalog) -> Result<RetypePlan> {
    let applied = crate::commit::applied::load(lake).await?;
    let current: BTreeMap<String, TenantDoc> = catalog
        .tenants()
        .map(|t| (t.doc.tenant.clone(), t.doc.clone()))
        .collect();
    let mut out = RetypePlan::default();
    if applied == current {
        return Ok(out);
    }
    let tenants: BTreeSet<&String> = applied.keys().chain(current.keys()).collect();
    for t in tenants {
        let (old, new) = (applied.get(t), current.get(t));
        if old != new {
            let jobs = out.jobs.len();
            plan_tenant(lake, catalog, t, old, new, &mut out).await?;
            // A tenant first seen with a catalog is no change unless stored data resolves anew.
            if old.is_some() || out.jobs.len() > jobs {
                out.tenants.push(t.clone());
            }
        }
    }
    out.applied = Some(crate::commit::applied::to_bytes(&current));
    Ok(out)
}

/// How a catalog sees partitions of metric directory `dir`: its canonical metric and entry.
fn metric_view<'a>(doc: Option<&'a TenantDoc>, dir: &str) -> Option<(&'a str, &'a MetricDoc)> {
    doc?.metrics
        .iter()
        .find(|(c, m)| c.as_str() == dir || m.aliases.iter().any(|a| a == dir))
        .map(|(c, m)| (c.as_str(), m))
}

async fn plan_tenant(
    lake: &Location,
    catalog: &Catalog,
    tenant: &str,
    old: Option<&TenantDoc>,
    new: Option<&TenantDoc>,
    out: &mut RetypePlan,
) -> Result<()> {
    for (dir, days) in crate::write::stored::by_metric(lake, tenant, new.or(old)).await? {
        if metric_view(old, &dir) == metric_view(new, &dir) {
            continue;
        }
        let spec = catalog.metric(tenant, &dir).filter(|s| s.name == dir);
        let want = spec.map(|s| s.columns());
        if let Some(cols) = &want {
            out.schemas.push(TableSchema {
                tenant: tenant.to_string(),
                metric: dir.clone(),
                columns: cols.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
            });
        }
        for (day, index) in days {
            let Some(m) = read_manifest(lake, &index).await? else {
                continue;
            };
            let fp = catalog.resolution_fingerprint(tenant, &m.names.metrics, &m.names.fields);
            let fits = match &want {
                Some(cols) => columns_fit(&m.columns, cols),
                None => m.columns.is_empty(),
            };
            if fp == m.resolution && fits {
                continue;
            }
            let key = PartitionKey {
                tenant: tenant.to_string(),
                metric: dir.clone(),
                day,
            };
            out.jobs.entry(key.clone()).or_default().retype = true;
            for sent in &m.names.metrics {
                let target = catalog.partition_metric(tenant, sent);
                if target != dir {
                    let to = PartitionKey {
                        metric: target.to_string(),
                        ..key.clone()
                    };
                    out.jobs.entry(to).or_default().sources.insert(key.clone());
                }
            }
        }
    }
    Ok(())
}
