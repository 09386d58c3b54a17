//! The versioned catalog in the lake (`<lake>/_catalog/<tenant>/v<N>.json`), written with conditional puts.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, TenantCatalog, TenantDoc};
use crate::error::{Error, Result};
use crate::names;
use crate::storage::{Created, Location};

/// Directory of the catalog below the lake.
pub const CATALOG_DIR: &str = "_catalog";

/// Attempts an edit gets against concurrent editors before it fails.
pub const DEFAULT_ATTEMPTS: u32 = 10;

/// One stored version of a tenant's catalog.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CatalogVersion {
    pub version: u64,
    /// RFC 3339, UTC.
    pub created: String,
    /// One line describing the edit.
    pub change: String,
    pub catalog: TenantDoc,
}

/// The catalog versions of every tenant in one lake.
#[derive(Clone, Debug)]
pub struct CatalogStore {
    lake: Location,
    attempts: u32,
}

/// The empty document a tenant's first edit starts from.
pub fn empty_doc(tenant: &str) -> TenantDoc {
    TenantDoc {
        tenant: tenant.to_string(),
        metrics: Default::default(),
    }
}

/// The object name of a version, relative to the tenant directory.
fn version_name(version: u64) -> String {
    format!("v{version:08}.json")
}

/// The version a file name holds, if it is a version file.
fn parse_version_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix('v')?.strip_suffix(".json")?;
    if digits.len() < 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&v| v > 0)
}

fn check_tenant(tenant: &str) -> Result<()> {
    match names::valid_tenant(tenant) {
        true => Ok(()),
        false => Err(Error::catalog(
            tenant,
            "invalid tenant id (use [A-Za-z0-9][A-Za-z0-9_.-]{0,127}, no \"..\")",
        )),
    }
}

/// A one-line change description.
fn one_line(change: &str) -> String {
    change.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl CatalogStore {
    /// The catalog of `lake`.
    pub fn new(lake: &Location) -> Self {
        CatalogStore {
            lake: lake.clone(),
            attempts: DEFAULT_ATTEMPTS,
        }
    }

    /// How many times an edit is tried against concurrent editors (at least 1).
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    fn tenant_dir(tenant: &str) -> String {
        format!("{CATALOG_DIR}/{tenant}")
    }

    fn version_path(tenant: &str, version: u64) -> String {
        format!("{}/{}", Self::tenant_dir(tenant), version_name(version))
    }

    /// Tenants with at least one catalog version, sorted.
    pub async fn tenants(&self) -> Result<Vec<String>> {
        let dir = self.lake.child(CATALOG_DIR);
        let mut out = Vec::new();
        for meta in dir.list("").await? {
            let rel = dir.relative(&meta.location);
            let Some((tenant, name)) = rel.split_once('/') else {
                continue;
            };
            if names::valid_tenant(tenant) && parse_version_name(name).is_some() {
                out.push(tenant.to_string());
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Every version number of a tenant, ascending.
    async fn versions(&self, tenant: &str) -> Result<Vec<u64>> {
        check_tenant(tenant)?;
        let dir = self.lake.child(&Self::tenant_dir(tenant));
        let mut out: Vec<u64> = dir
            .list("")
            .await?
            .iter()
            .filter_map(|meta| parse_version_name(&dir.relative(&meta.location)))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// The newest version of a tenant's catalog, `None` when it has none.
    pub async fn latest(&self, tenant: &str) -> Result<Option<CatalogVersion>> {
        match self.versions(tenant).await?.last() {
            Some(&v) => self.version(tenant, v).await,
            None => Ok(None),
        }
    }

    /// One version of a tenant's catalog, `None` when it does not exist.
    pub async fn version(&self, tenant: &str, version: u64) -> Result<Option<CatalogVersion>> {
        check_tenant(tenant)?;
        let rel = Self::version_path(tenant, version);
        let Some(bytes) = self.lake.get_opt(&rel).await? else {
            return Ok(None);
        };
        let path = self.lake.path(&rel);
        let v: CatalogVersion =
            serde_json::from_slice(&bytes).map_err(|e| Error::metadata(&path, e))?;
        if v.version != version || v.catalog.tenant != tenant {
            return Err(Error::metadata(
                &path,
                format!(
                    "holds version {} of tenant {:?}",
                    v.version, v.catalog.tenant
                ),
            ));
        }
        Ok(Some(v))
    }

    /// Every version of a tenant's catalog, oldest first.
    pub async fn history(&self, tenant: &str) -> Result<Vec<CatalogVersion>> {
        let mut out = Vec::new();
        for v in self.versions(tenant).await? {
            if let Some(found) = self.version(tenant, v).await? {
                out.push(found);
            }
        }
        Ok(out)
    }

    /// Applies `edit` to the latest document (an empty one for a tenant without versions) and
    /// writes the result as the next version with a conditional create. When a concurrent
    /// editor took that version first, the edit is applied again to the new latest (and
    /// validated again), up to the configured attempts. An invalid result, or one equal to the
    /// latest document, writes nothing and is an error.
    pub async fn apply(
        &self,
        tenant: &str,
        change: &str,
        edit: impl Fn(TenantDoc) -> Result<TenantDoc>,
    ) -> Result<CatalogVersion> {
        check_tenant(tenant)?;
        let mut latest = 0;
        for attempt in 0..self.attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let (base, doc) = match self.latest(tenant).await? {
                Some(v) => (v.version, v.catalog),
                None => (0, empty_doc(tenant)),
            };
            latest = base;
            let next = CatalogVersion {
                version: base + 1,
                created: now_rfc3339(),
                change: one_line(change),
                catalog: checked_edit(tenant, base, doc, &edit)?,
            };
            if self.create(tenant, &next).await? == Created::Yes {
                return Ok(next);
            }
            tracing::debug!(
                tenant,
                version = next.version,
                "catalog version taken, retrying"
            );
        }
        Err(Error::CatalogConflict {
            tenant: tenant.to_string(),
            attempts: self.attempts,
            latest: latest + 1,
        })
    }

    async fn create(&self, tenant: &str, v: &CatalogVersion) -> Result<Created> {
        let bytes = serde_json::to_vec_pretty(v).expect("catalog version json");
        let rel = Self::version_path(tenant, v.version);
        self.lake.put_create(&rel, Bytes::from(bytes)).await
    }

    /// Latest version of every tenant, as the Catalog a compaction uses.
    pub async fn load_catalog(&self) -> Result<Catalog> {
        let mut docs = Vec::new();
        for tenant in self.tenants().await? {
            if let Some(v) = self.latest(&tenant).await? {
                docs.push(v.catalog);
            }
        }
        Catalog::from_docs(docs)
    }
}

/// Runs an edit and checks its result: same tenant, valid, and different from the base.
fn checked_edit(
    tenant: &str,
    base: u64,
    doc: TenantDoc,
    edit: &impl Fn(TenantDoc) -> Result<TenantDoc>,
) -> Result<TenantDoc> {
    let next = edit(doc.clone())?;
    if next.tenant != tenant {
        return Err(Error::catalog(
            tenant,
            format!("the edited document is for tenant {:?}", next.tenant),
        ));
    }
    TenantCatalog::new(next.clone())?;
    if next == doc {
        return Err(Error::catalog(
            tenant,
            format!("no change: version {base} already says that"),
        ));
    }
    Ok(next)
}

/// A short, growing, jittered pause between attempts, so racing editors spread out.
fn backoff(attempt: u32) -> Duration {
    let jitter = uuid::Uuid::new_v4().as_u128() % 20;
    Duration::from_millis(5 * u64::from(attempt.min(10)) + jitter as u64)
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names() {
        assert_eq!(version_name(1), "v00000001.json");
        assert_eq!(version_name(123_456_789), "v123456789.json");
        assert_eq!(parse_version_name("v00000042.json"), Some(42));
        assert_eq!(parse_version_name("v123456789.json"), Some(123_456_789));
        for bad in [
            "v00000000.json",
            "v0000042.json",
            "v0000004a.json",
            "x00000001.json",
            "v00000001.json.tmp",
        ] {
            assert_eq!(parse_version_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn change_is_one_line() {
        assert_eq!(one_line(" a\nb \t c\n"), "a b c");
    }

    #[tokio::test]
    async fn apply_writes_contiguous_versions_and_refuses_no_change() {
        let tmp = tempfile::tempdir().unwrap();
        let store = CatalogStore::new(&Location::parse(tmp.path().to_str().unwrap()).unwrap());
        assert_eq!(store.latest("t1").await.unwrap(), None);
        let add = |name: &'static str| {
            move |mut d: TenantDoc| {
                d.metrics.insert(name.into(), Default::default());
                Ok(d)
            }
        };
        assert_eq!(
            store.apply("t1", "add m", add("m")).await.unwrap().version,
            1
        );
        assert_eq!(
            store.apply("t1", "add n", add("n")).await.unwrap().version,
            2
        );
        let err = store.apply("t1", "add n", add("n")).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "catalog for tenant \"t1\": no change: version 2 already says that"
        );
        let bad = store.apply("t1", "bad", add("a b")).await.unwrap_err();
        assert!(bad.to_string().contains("Delta table directory"), "{bad}");
        let history = store.history("t1").await.unwrap();
        let changes: Vec<(u64, &str)> = history
            .iter()
            .map(|v| (v.version, v.change.as_str()))
            .collect();
        assert_eq!(changes, [(1, "add m"), (2, "add n")]);
        assert_eq!(store.tenants().await.unwrap(), ["t1"]);
        let first = store.version("t1", 1).await.unwrap().unwrap();
        assert_eq!(first.catalog.metrics.keys().collect::<Vec<_>>(), ["m"]);
        let catalog = store.load_catalog().await.unwrap();
        assert!(catalog.tenant("t1").unwrap().metric("n").is_some());
        assert!(store.latest("../x").await.is_err());
    }
}
