//! `schema`: show, history, edits, import and export of a tenant's versioned catalog (SPEC 4, 10).

mod defaults;
mod import;

use serde::{Deserialize, Serialize};

use crate::catalog::{TenantCatalog, TenantDoc};
use crate::error::{Error, Result};
use crate::schema::edit::SchemaEdit;
use crate::schema::propose::ProposalDoc;
use crate::schema::store::{empty_doc, CatalogStore, CatalogVersion};
use crate::storage::Location;

pub use import::{import_path, read_doc, ImportReport, Unchanged};

/// The `schema` operation on one tenant of one lake.
pub struct SchemaOp {
    lake: Location,
    store: CatalogStore,
    tenant: String,
}

/// What `schema show` prints: one version of the catalog, or of one metric of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShowReport {
    pub tenant: String,
    /// `None` when the tenant has no catalog version yet (the document is then empty).
    pub version: Option<u64>,
    pub created: Option<String>,
    pub change: Option<String>,
    /// The document, reduced to the one metric asked for.
    pub catalog: TenantDoc,
}

/// One line of `schema history`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub version: u64,
    pub created: String,
    pub change: String,
}

/// What `schema history` prints: every version, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryReport {
    pub tenant: String,
    pub versions: Vec<HistoryEntry>,
}

/// The version an edit wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EditReport {
    pub tenant: String,
    pub version: u64,
    pub change: String,
    pub catalog: TenantDoc,
}

impl EditReport {
    /// `tenant t01: catalog version 4 (accept boiler.Temp_C as alias of temperature)`.
    pub fn summary(&self) -> String {
        format!(
            "tenant {}: catalog version {} ({})",
            self.tenant, self.version, self.change
        )
    }
}

impl From<CatalogVersion> for EditReport {
    fn from(v: CatalogVersion) -> Self {
        EditReport {
            tenant: v.catalog.tenant.clone(),
            version: v.version,
            change: v.change,
            catalog: v.catalog,
        }
    }
}

impl SchemaOp {
    /// The catalog of `tenant` in `lake`.
    pub fn new(lake: &Location, tenant: &str) -> Self {
        SchemaOp {
            lake: lake.clone(),
            store: CatalogStore::new(lake),
            tenant: tenant.to_string(),
        }
    }

    /// How many times an edit is tried against concurrent editors.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.store = self.store.with_attempts(attempts);
        self
    }

    /// One version (default: the latest), optionally reduced to one metric (named by its
    /// canonical name or an alias).
    pub async fn show(&self, metric: Option<&str>, version: Option<u64>) -> Result<ShowReport> {
        let found = match version {
            Some(v) => Some(self.version(v).await?),
            None => self.store.latest(&self.tenant).await?,
        };
        let mut report = match found {
            Some(v) => ShowReport {
                tenant: self.tenant.clone(),
                version: Some(v.version),
                created: Some(v.created),
                change: Some(v.change),
                catalog: v.catalog,
            },
            None => ShowReport {
                tenant: self.tenant.clone(),
                version: None,
                created: None,
                change: None,
                catalog: empty_doc(&self.tenant),
            },
        };
        if let Some(m) = metric {
            report.catalog = only_metric(report.catalog, m)?;
        }
        Ok(report)
    }

    /// A version that must exist.
    async fn version(&self, v: u64) -> Result<CatalogVersion> {
        if let Some(found) = self.store.version(&self.tenant, v).await? {
            return Ok(found);
        }
        let latest = self.store.latest(&self.tenant).await?;
        let reason = match latest {
            Some(l) => format!("no catalog version {v} (latest is {})", l.version),
            None => format!("no catalog version {v} (the tenant has no catalog yet)"),
        };
        Err(Error::catalog(&self.tenant, reason))
    }

    /// Every version, oldest first.
    pub async fn history(&self) -> Result<HistoryReport> {
        let versions = self
            .store
            .history(&self.tenant)
            .await?
            .into_iter()
            .map(|v| HistoryEntry {
                version: v.version,
                created: v.created,
                change: v.change,
            })
            .collect();
        Ok(HistoryReport {
            tenant: self.tenant.clone(),
            versions,
        })
    }

    /// The latest document (empty without versions).
    async fn current(&self) -> Result<TenantDoc> {
        Ok(match self.store.latest(&self.tenant).await? {
            Some(v) => v.catalog,
            None => empty_doc(&self.tenant),
        })
    }

    /// The stored proposals, refreshed against `doc` (what it declares is dropped, suggestions
    /// recomputed); `None` when no compaction wrote any yet.
    async fn refreshed(&self, doc: &TenantDoc) -> Result<Option<ProposalDoc>> {
        let Some(mut proposals) = ProposalDoc::load(&self.lake, &self.tenant).await? else {
            return Ok(None);
        };
        proposals.refresh(Some(&TenantCatalog::new(doc.clone())?));
        Ok(Some(proposals))
    }

    /// The proposals against the latest catalog version, optionally of one metric (canonical
    /// name, an alias, or the name an unknown metric was sent with).
    /// Without a catalog version in the lake (a lake compacted with `--catalog DIR`), the
    /// proposals are seen against the catalog the lake was built with, so metrics it declares
    /// are never listed as new.
    pub async fn proposals(&self, metric: Option<&str>) -> Result<ProposalDoc> {
        let doc = match self.store.latest(&self.tenant).await? {
            Some(v) => v.catalog,
            None => crate::commit::applied::load(&self.lake)
                .await?
                .remove(&self.tenant)
                .unwrap_or_else(|| empty_doc(&self.tenant)),
        };
        let mut proposals = self
            .refreshed(&doc)
            .await?
            .unwrap_or_else(|| ProposalDoc::new(&self.tenant, 0));
        if let Some(m) = metric {
            let key = canonical_metric(&doc, m);
            proposals.metrics.retain(|k, _| *k == key);
        }
        Ok(proposals)
    }

    /// Applies one edit as a new catalog version (again on a newer version when a concurrent
    /// editor wrote first). An accept without `--as`/`--type` takes the proposal's suggestion.
    pub async fn edit(&self, edit: SchemaEdit) -> Result<EditReport> {
        let current = self.current().await?;
        let edit = match needs_proposals(&edit) {
            true => defaults::resolve(edit, &current, self.refreshed(&current).await?.as_ref())?,
            false => edit,
        };
        let change = edit.describe(&current);
        let written = self
            .store
            .apply(&self.tenant, &change, |doc| edit.apply(doc))
            .await?;
        Ok(written.into())
    }

    /// Replaces the tenant's document with `doc` (same tenant) as a new version.
    pub async fn import(&self, doc: TenantDoc) -> Result<EditReport> {
        self.edit(SchemaEdit::Import { doc }).await
    }

    /// One version (default: the latest) for export: its `catalog` is the document.
    pub async fn export(&self, version: Option<u64>) -> Result<CatalogVersion> {
        let found = match version {
            Some(v) => Some(self.version(v).await?),
            None => self.store.latest(&self.tenant).await?,
        };
        match found {
            Some(v) => Ok(v),
            None => Err(Error::catalog(&self.tenant, "no catalog version to export")),
        }
    }
}

/// Whether an edit leaves something for the proposals to fill in.
fn needs_proposals(edit: &SchemaEdit) -> bool {
    match edit {
        SchemaEdit::AcceptField { as_, ty, .. } => as_.is_none() || ty.is_none(),
        SchemaEdit::AcceptMetric { as_, .. } => as_.is_none(),
        _ => false,
    }
}

/// The canonical name of a metric named by an alias; other names as they are.
pub(super) fn canonical_metric<'a>(doc: &'a TenantDoc, name: &'a str) -> &'a str {
    doc.metrics
        .iter()
        .find(|(k, m)| *k == name || m.aliases.iter().any(|a| a == name))
        .map_or(name, |(k, _)| k.as_str())
}

/// The document with only the metric `name` (canonical or alias) left.
fn only_metric(mut doc: TenantDoc, name: &str) -> Result<TenantDoc> {
    let key = doc
        .metrics
        .iter()
        .find(|(k, m)| *k == name || m.aliases.iter().any(|a| a == name))
        .map(|(k, _)| k.clone());
    let Some(key) = key else {
        return Err(Error::catalog(
            &doc.tenant,
            format!("unknown metric {name:?}"),
        ));
    };
    doc.metrics.retain(|k, _| *k == key);
    Ok(doc)
}
