//! `schema`: show, history, edits, import and export of a tenant's versioned catalog (SPEC 4, 10).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::catalog::{TenantCatalog, TenantDoc};
use crate::error::{Error, Result};
use crate::schema::edit::SchemaEdit;
use crate::schema::store::{empty_doc, CatalogStore, CatalogVersion};
use crate::storage::Location;

/// The `schema` operation on one tenant of one lake.
pub struct SchemaOp {
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

/// A tenant whose imported document equals its latest version: nothing written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unchanged {
    pub tenant: String,
    pub version: u64,
}

/// What `schema import` of a directory did, tenant by tenant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    pub written: Vec<EditReport>,
    pub unchanged: Vec<Unchanged>,
}

impl SchemaOp {
    /// The catalog of `tenant` in `lake`.
    pub fn new(lake: &Location, tenant: &str) -> Self {
        SchemaOp {
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

    /// Applies one edit as a new catalog version (again on a newer version when a concurrent
    /// editor wrote first).
    pub async fn edit(&self, edit: SchemaEdit) -> Result<EditReport> {
        let current = match self.store.latest(&self.tenant).await? {
            Some(v) => v.catalog,
            None => empty_doc(&self.tenant),
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

    /// The document of one version (default: the latest).
    pub async fn export(&self, version: Option<u64>) -> Result<TenantDoc> {
        let found = match version {
            Some(v) => Some(self.version(v).await?),
            None => self.store.latest(&self.tenant).await?,
        };
        match found {
            Some(v) => Ok(v.catalog),
            None => Err(Error::catalog(&self.tenant, "no catalog version to export")),
        }
    }
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

/// Imports catalog documents from a local path: one `<tenant>.json` document file (an error
/// when it changes nothing), or a directory of them, where tenants whose document equals
/// their latest version are skipped. Every document is read and validated before any version
/// is written.
pub async fn import_path(lake: &Location, path: &Path) -> Result<ImportReport> {
    let is_dir = path.is_dir();
    let docs = match is_dir {
        true => read_dir_docs(path)?,
        false => vec![read_doc(path)?],
    };
    for doc in &docs {
        TenantCatalog::new(doc.clone())?;
    }
    let mut report = ImportReport::default();
    for doc in docs {
        let op = SchemaOp::new(lake, &doc.tenant);
        let latest = op.store.latest(&doc.tenant).await?;
        match latest {
            Some(l) if is_dir && l.catalog == doc => report.unchanged.push(Unchanged {
                tenant: doc.tenant,
                version: l.version,
            }),
            _ => report.written.push(op.import(doc).await?),
        }
    }
    Ok(report)
}

/// Reads one catalog document file.
pub fn read_doc(path: &Path) -> Result<TenantDoc> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::InvalidOption(format!("{} is not a catalog document: {e}", path.display()))
    })
}

/// Reads every `<tenant>.json` of a directory, sorted by name; each must hold its tenant.
fn read_dir_docs(dir: &Path) -> Result<Vec<TenantDoc>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir.display(), e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir.display(), e))?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::InvalidOption(format!(
            "{} holds no <tenant>.json catalog documents",
            dir.display()
        )));
    }
    files.iter().map(|f| read_named_doc(f)).collect()
}

fn read_named_doc(path: &Path) -> Result<TenantDoc> {
    let doc = read_doc(path)?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if doc.tenant != stem {
        return Err(Error::catalog(
            stem,
            format!("file {} holds tenant {:?}", path.display(), doc.tenant),
        ));
    }
    Ok(doc)
}
