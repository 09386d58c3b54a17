//! `schema import`: catalog documents read from a local file or directory, one version each.

use std::path::Path;

use super::{EditReport, SchemaOp};
use crate::catalog::{TenantCatalog, TenantDoc};
use crate::error::{Error, Result};
use crate::storage::Location;
use serde::{Deserialize, Serialize};

/// A tenant whose imported document equals its latest version: nothing written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unchanged {
    pub tenant: String,
    pub version: u64,
}

/// What `schema import` did, tenant by tenant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    pub written: Vec<EditReport>,
    pub unchanged: Vec<Unchanged>,
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
