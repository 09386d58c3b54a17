//! The lake's stored partitions as its partition index lists them
//! (`_fineo/index/tenant=<t>/metric=<m>/date=<D>.parquet`): which exist, their metric names,
//! and the listing facts (size, ETag) that tell whether one changed.

use std::collections::BTreeMap;

use object_store::ObjectMeta;

use crate::catalog::TenantDoc;
use crate::error::Result;
use crate::model::day_of;
use crate::names;
use crate::storage::Location;
use crate::write::index::read_manifest;

/// One stored partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPartition {
    pub tenant: String,
    /// The metric directory segment (escaped, maybe shortened).
    pub segment: String,
    pub day: i32,
    /// The index file, relative to the lake.
    pub index: String,
    pub size: u64,
    pub etag: Option<String>,
}

/// Index files below `_fineo/index/` (of one tenant, or all), by tenant, in path order.
pub async fn list_stored(lake: &Location, tenant: Option<&str>) -> Result<Vec<StoredPartition>> {
    let prefix = match tenant {
        Some(t) => format!("_fineo/index/tenant={t}/"),
        None => "_fineo/index/".to_string(),
    };
    let mut out: Vec<StoredPartition> = lake
        .list(&prefix)
        .await?
        .iter()
        .filter_map(|m| parse(lake, m))
        .collect();
    out.sort_by(|a, b| a.index.cmp(&b.index));
    Ok(out)
}

fn parse(lake: &Location, meta: &ObjectMeta) -> Option<StoredPartition> {
    let rel = lake.relative(&meta.location);
    let rest = rel.strip_prefix("_fineo/index/tenant=")?;
    let (tenant, rest) = rest.split_once('/')?;
    let (segment, file) = rest.strip_prefix("metric=")?.split_once('/')?;
    let date = file.strip_prefix("date=")?.strip_suffix(".parquet")?;
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let ms = d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    names::valid_tenant(tenant).then(|| StoredPartition {
        tenant: tenant.to_string(),
        segment: segment.to_string(),
        day: day_of(ms),
        index: rel.clone(),
        size: meta.size,
        etag: meta.e_tag.clone(),
    })
}

/// The metric name a directory segment stands for: its unescaped text, or for a shortened
/// segment (a long name, see [`names::metric_segment`]) the canonical name of `doc` or the
/// name as sent in the partitions' index footers that maps to it. `None`: no name found.
pub async fn metric_name(
    lake: &Location,
    segment: &str,
    indexes: &[String],
    doc: Option<&TenantDoc>,
) -> Result<Option<String>> {
    if !names::is_shortened(segment) {
        return Ok(Some(names::unescape(segment)));
    }
    let canonical = doc
        .into_iter()
        .flat_map(|d| d.metrics.keys())
        .find(|m| names::metric_segment(m) == segment);
    if let Some(m) = canonical {
        return Ok(Some(m.clone()));
    }
    for index in indexes {
        if let Some(m) = read_manifest(lake, index).await? {
            if let Some(n) = m
                .names
                .metrics
                .into_iter()
                .find(|n| names::metric_segment(n) == segment)
            {
                return Ok(Some(n));
            }
        }
    }
    Ok(None)
}

/// A tenant's stored partitions by metric name: (day, index path), for every segment whose
/// name is known (others are logged and left out).
pub async fn by_metric(
    lake: &Location,
    tenant: &str,
    doc: Option<&TenantDoc>,
) -> Result<BTreeMap<String, Vec<(i32, String)>>> {
    let mut by_segment: BTreeMap<String, Vec<(i32, String)>> = BTreeMap::new();
    for p in list_stored(lake, Some(tenant)).await? {
        by_segment
            .entry(p.segment)
            .or_default()
            .push((p.day, p.index));
    }
    let mut out = BTreeMap::new();
    for (segment, days) in by_segment {
        let indexes: Vec<String> = days.iter().map(|(_, i)| i.clone()).collect();
        match metric_name(lake, &segment, &indexes, doc).await? {
            Some(name) => {
                out.insert(name, days);
            }
            None => tracing::warn!(
                tenant,
                segment,
                "no stored metric name matches the directory"
            ),
        }
    }
    Ok(out)
}
