//! Where bundles live in the backup location, and listing the bundles it holds.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::names;
use crate::storage::Location;

/// One bundle's identity: tenant, UTC day and the lake version it reflects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BundleId {
    pub tenant: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub version: u64,
}

impl BundleId {
    /// The bundle's directory relative to the backup location.
    pub fn dir(&self) -> String {
        format!(
            "tenant={}/date={}/{:020}",
            self.tenant, self.date, self.version
        )
    }

    /// A file of the bundle, relative to the backup location.
    pub fn file(&self, rel: &str) -> String {
        format!("{}/{rel}", self.dir())
    }

    /// Parses `tenant=<t>/date=<D>/<version>/<rest>`: the bundle and the file inside it.
    pub fn parse(rel: &str) -> Option<(BundleId, String)> {
        let mut parts = rel.splitn(4, '/');
        let tenant = parts.next()?.strip_prefix("tenant=")?;
        let date = parts.next()?.strip_prefix("date=")?;
        let version = parts.next()?;
        let rest = parts.next()?.to_string();
        if !names::valid_tenant(tenant)
            || chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err()
            || version.len() != 20
            || !version.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let id = BundleId {
            tenant: tenant.to_string(),
            date: date.to_string(),
            version: version.parse().ok()?,
        };
        Some((id, rest))
    }
}

impl std::fmt::Display for BundleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.dir())
    }
}

/// What a backup location holds, by tenant-day: complete bundles (with a manifest) by
/// version, and directories without a manifest (interrupted or running backups).
#[derive(Clone, Debug, Default)]
pub struct BundleSet {
    /// (tenant, date) -> versions with a manifest, ascending.
    pub complete: BTreeMap<(String, String), Vec<u64>>,
    /// Bundle directories holding files but no manifest.
    pub incomplete: Vec<BundleId>,
    /// Every file listed, by bundle: relative path inside the bundle -> size.
    pub files: BTreeMap<BundleId, BTreeMap<String, u64>>,
}

impl BundleSet {
    /// The latest complete bundle of a tenant-day at or below `as_of`.
    pub fn latest(&self, tenant: &str, date: &str, as_of: Option<u64>) -> Option<BundleId> {
        let versions = self.complete.get(&(tenant.to_string(), date.to_string()))?;
        let v = versions
            .iter()
            .rev()
            .find(|v| as_of.is_none_or(|a| **v <= a))?;
        Some(BundleId {
            tenant: tenant.to_string(),
            date: date.to_string(),
            version: *v,
        })
    }

    /// Every complete bundle, in (tenant, date, version) order.
    pub fn all(&self) -> impl Iterator<Item = BundleId> + '_ {
        self.complete.iter().flat_map(|((t, d), vs)| {
            vs.iter().map(|v| BundleId {
                tenant: t.clone(),
                date: d.clone(),
                version: *v,
            })
        })
    }
}

/// Lists the bundles below `backup` (only `tenants` when given), one listing per tenant.
pub async fn list_bundles(backup: &Location, tenants: &[String]) -> Result<BundleSet> {
    let prefixes: Vec<String> = match tenants.is_empty() {
        true => vec![String::new()],
        false => tenants.iter().map(|t| format!("tenant={t}/")).collect(),
    };
    let mut files: BTreeMap<BundleId, BTreeMap<String, u64>> = BTreeMap::new();
    for prefix in prefixes {
        for meta in backup.list(&prefix).await? {
            let rel = backup.relative(&meta.location);
            if let Some((id, rest)) = BundleId::parse(&rel) {
                files.entry(id).or_default().insert(rest, meta.size);
            }
        }
    }
    let mut set = BundleSet::default();
    for (id, inside) in &files {
        if inside.contains_key(super::MANIFEST) {
            set.complete
                .entry((id.tenant.clone(), id.date.clone()))
                .or_default()
                .push(id.version);
        } else {
            set.incomplete.push(id.clone());
        }
    }
    set.files = files;
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_paths_round_trip() {
        let id = BundleId {
            tenant: "t01".into(),
            date: "2026-01-02".into(),
            version: 7,
        };
        assert_eq!(id.dir(), "tenant=t01/date=2026-01-02/00000000000000000007");
        let (back, rest) = BundleId::parse(&id.file("metric=boiler/index.parquet")).unwrap();
        assert_eq!((back, rest.as_str()), (id, "metric=boiler/index.parquet"));
        assert!(BundleId::parse("tenant=../date=2026-01-02/00000000000000000007/x").is_none());
        assert!(BundleId::parse("tenant=t/date=2026-13-02/00000000000000000007/x").is_none());
        assert!(BundleId::parse("tenant=t/date=2026-01-02/7/x").is_none());
    }
}
