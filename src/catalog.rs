//! Tenant schema catalogs (SPEC 4): documents, validation, and the lookup tables resolution uses.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{FastMap, FastSet, FieldType};
use crate::names;
use crate::storage::Location;

/// One tenant's catalog document, as stored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantDoc {
    pub tenant: String,
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricDoc>,
}

/// A metric in a catalog document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDoc {
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Canonical field name -> declaration; kept in document order.
    #[serde(default)]
    pub fields: indexmap_like::OrderedFields,
    #[serde(default)]
    pub hidden: Vec<String>,
}

/// A field declaration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDoc {
    #[serde(rename = "type")]
    pub ty: FieldType,
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// Field maps that keep the order of the document (serde_json's preserve_order map).
pub mod indexmap_like {
    use super::FieldDoc;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Ordered (name, field) pairs.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct OrderedFields(pub Vec<(String, FieldDoc)>);

    impl Serialize for OrderedFields {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                m.serialize_entry(k, v)?;
            }
            m.end()
        }
    }

    impl<'de> Deserialize<'de> for OrderedFields {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let map = serde_json::Map::deserialize(d)?;
            let mut out = Vec::with_capacity(map.len());
            for (k, v) in map {
                let f: FieldDoc = serde_json::from_value(v).map_err(serde::de::Error::custom)?;
                out.push((k, f));
            }
            Ok(OrderedFields(out))
        }
    }
}

/// A declared, visible field as resolution sees it.
#[derive(Clone, Debug)]
pub struct FieldSpec {
    pub name: Arc<str>,
    pub ty: FieldType,
    /// Source names in priority order: canonical, then aliases as listed.
    pub sources: Vec<String>,
}

/// A metric as resolution sees it.
#[derive(Clone, Debug)]
pub struct MetricSpec {
    pub name: String,
    pub fields: Vec<FieldSpec>,
    /// Source name -> (field index, priority rank).
    pub by_source: FastMap<String, (usize, usize)>,
    /// Source names of hidden fields: dropped from new output.
    pub hidden_sources: FastSet<String>,
}

/// A validated tenant catalog with lookup tables.
#[derive(Clone, Debug)]
pub struct TenantCatalog {
    pub doc: TenantDoc,
    metrics: Vec<MetricSpec>,
    by_name: FastMap<String, usize>,
}

impl TenantCatalog {
    /// Validates a document and builds its lookup tables.
    pub fn new(doc: TenantDoc) -> Result<Self> {
        let err = |reason: String| Error::Catalog {
            tenant: doc.tenant.clone(),
            reason,
        };
        if !names::valid_tenant(&doc.tenant) {
            return Err(err("invalid tenant id".into()));
        }
        let mut by_name = FastMap::default();
        let mut metrics = Vec::new();
        for (mname, m) in &doc.metrics {
            if !valid_table_name(mname) {
                return Err(err(format!(
                    "canonical metric name {mname:?} names a Delta table directory: use [A-Za-z0-9_.-] \
                     (starting with a letter, digit or _), and list the name devices send as an alias"
                )));
            }
            for source in std::iter::once(mname).chain(&m.aliases) {
                if let Some(p) = names::name_problem(source) {
                    return Err(err(format!("metric name {source:?}: {p}")));
                }
                if by_name.insert(source.clone(), metrics.len()).is_some() {
                    return Err(err(format!("metric name {source:?} is used twice")));
                }
            }
            metrics.push(metric_spec(mname, m).map_err(|r| err(format!("metric {mname:?}: {r}")))?);
        }
        Ok(TenantCatalog {
            doc,
            metrics,
            by_name,
        })
    }

    /// The metric a name (canonical or alias) resolves to.
    pub fn metric(&self, name: &str) -> Option<&MetricSpec> {
        self.by_name.get(name).map(|&i| &self.metrics[i])
    }
}

/// Canonical metric names become Delta table directories, which Delta readers cannot open
/// when they hold percent-escapes: keep them to plain characters (aliases may be anything).
fn valid_table_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Characters Delta Lake forbids in column names without column mapping.
const FORBIDDEN_COLUMN_CHARS: &[char] = &[' ', ',', ';', '{', '}', '(', ')', '\n', '\t', '='];

fn metric_spec(name: &str, m: &MetricDoc) -> std::result::Result<MetricSpec, String> {
    let hidden: HashSet<&str> = m.hidden.iter().map(String::as_str).collect();
    let mut fields = Vec::new();
    let mut by_source = FastMap::default();
    let mut hidden_sources = FastSet::default();
    let mut canon = HashSet::new();
    for (fname, _) in &m.fields.0 {
        canon.insert(fname.as_str());
    }
    for h in &m.hidden {
        if !canon.contains(h.as_str()) {
            return Err(format!("hidden field {h:?} is not declared"));
        }
    }
    for (fname, f) in &m.fields.0 {
        if let Some(p) = names::name_problem(fname) {
            return Err(format!("field {fname:?}: {p}"));
        }
        if fname.contains(FORBIDDEN_COLUMN_CHARS) || fname == "timestamp" || fname == "date" {
            return Err(format!(
                "field name {fname:?} cannot be a column (reserved, or holds one of ' ,;{{}}()=' or a tab/newline)"
            ));
        }
        let sources: Vec<String> = std::iter::once(fname.clone())
            .chain(f.aliases.clone())
            .collect();
        for (rank, s) in sources.iter().enumerate() {
            if rank > 0 && canon.contains(s.as_str()) {
                return Err(format!(
                    "{s:?} is both a canonical field and an alias of {fname:?}"
                ));
            }
            if by_source.contains_key(s) || hidden_sources.contains(s) {
                return Err(format!("field name {s:?} is used twice"));
            }
            if let Some(p) = names::name_problem(s) {
                return Err(format!("alias {s:?}: {p}"));
            }
            if hidden.contains(fname.as_str()) {
                hidden_sources.insert(s.clone());
            } else {
                by_source.insert(s.clone(), (fields.len(), rank));
            }
        }
        if !hidden.contains(fname.as_str()) {
            fields.push(FieldSpec {
                name: Arc::from(fname.as_str()),
                ty: f.ty,
                sources,
            });
        }
    }
    Ok(MetricSpec {
        name: name.to_string(),
        fields,
        by_source,
        hidden_sources,
    })
}

/// Every tenant's catalog known to a run.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    tenants: FastMap<String, TenantCatalog>,
}

impl Catalog {
    /// A catalog from documents.
    pub fn from_docs(docs: impl IntoIterator<Item = TenantDoc>) -> Result<Self> {
        let mut tenants = FastMap::default();
        for doc in docs {
            let t = TenantCatalog::new(doc)?;
            tenants.insert(t.doc.tenant.clone(), t);
        }
        Ok(Catalog { tenants })
    }

    /// Loads every `<tenant>.json` in a directory location. A missing directory is empty.
    pub async fn load_dir(dir: &Location) -> Result<Self> {
        let mut docs = Vec::new();
        for meta in dir.list("").await? {
            let rel = dir.relative(&meta.location);
            let Some(stem) = rel.strip_suffix(".json") else {
                continue;
            };
            if stem.contains('/') {
                continue;
            }
            let bytes = dir.get_path(&meta.location).await?;
            let doc: TenantDoc = serde_json::from_slice(&bytes).map_err(|e| Error::Catalog {
                tenant: stem.to_string(),
                reason: format!("{}: {e}", meta.location),
            })?;
            if doc.tenant != stem {
                return Err(Error::Catalog {
                    tenant: stem.to_string(),
                    reason: format!("file {rel} holds tenant {:?}", doc.tenant),
                });
            }
            docs.push(doc);
        }
        Self::from_docs(docs)
    }

    /// The catalog of a tenant, if it has one.
    pub fn tenant(&self, tenant: &str) -> Option<&TenantCatalog> {
        self.tenants.get(tenant)
    }

    /// Tenants with a catalog.
    pub fn tenants(&self) -> impl Iterator<Item = &TenantCatalog> {
        self.tenants.values()
    }

    /// The metric spec a name sent by a device resolves to, if declared.
    pub fn metric(&self, tenant: &str, sent: &str) -> Option<&MetricSpec> {
        self.tenant(tenant).and_then(|t| t.metric(sent))
    }

    /// The partition metric of a name as sent: its canonical name, or itself when unknown.
    pub fn partition_metric<'a>(&'a self, tenant: &str, sent: &'a str) -> &'a str {
        self.metric(tenant, sent).map_or(sent, |m| m.name.as_str())
    }

    /// A hash of how this catalog resolves the given sent metric and field names: two catalogs
    /// with equal fingerprints turn records that use only these names into the same output.
    pub fn resolution_fingerprint(
        &self,
        tenant: &str,
        metrics: &[String],
        fields: &[String],
    ) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        let mut put = |s: &str| {
            h.update(s.as_bytes());
            h.update(&[0xff]);
        };
        for m in metrics {
            put(m);
            let Some(spec) = self.metric(tenant, m) else {
                put("?");
                continue;
            };
            put(&spec.name);
            for f in fields {
                match spec.by_source.get(f.as_str()) {
                    Some(&(i, rank)) => {
                        let fs = &spec.fields[i];
                        put(&format!("{f}={}:{}:{rank}", fs.name, fs.ty.name()));
                    }
                    None if spec.hidden_sources.contains(f.as_str()) => put(&format!("{f}=hidden")),
                    None => put(&format!("{f}=?")),
                }
            }
        }
        h.digest()
    }
}

impl MetricSpec {
    /// The typed table columns of the metric: its visible fields, in catalog order.
    pub fn columns(&self) -> crate::model::ColumnTypes {
        self.fields.iter().map(|f| (f.name.clone(), f.ty)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: &str) -> Result<TenantCatalog> {
        TenantCatalog::new(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn spec_example_resolves() {
        let t = doc(r#"{"tenant":"t07","metrics":{"boiler":{"aliases":["machine1"],
            "fields":{"temperature":{"type":"double","aliases":["temp","tmp"]},"pressure":{"type":"long"}},
            "hidden":["pressure"]}}}"#)
        .unwrap();
        let m = t.metric("machine1").unwrap();
        assert_eq!(m.name, "boiler");
        assert_eq!(m.fields.len(), 1);
        assert_eq!(m.by_source["tmp"], (0, 2));
        assert!(m.hidden_sources.contains("pressure"));
    }

    #[test]
    fn rejects_bad_documents() {
        let twice = r#"{"tenant":"t","metrics":{"m":{"fields":{"a":{"type":"long","aliases":["x"]},"b":{"type":"long","aliases":["x"]}}}}}"#;
        assert!(doc(twice).unwrap_err().to_string().contains("used twice"));
        let both = r#"{"tenant":"t","metrics":{"m":{"fields":{"a":{"type":"long","aliases":["b"]},"b":{"type":"long"}}}}}"#;
        assert!(doc(both)
            .unwrap_err()
            .to_string()
            .contains("both a canonical"));
        let ty = r#"{"tenant":"t","metrics":{"m":{"fields":{"a":{"type":"decimal"}}}}}"#;
        assert!(serde_json::from_str::<TenantDoc>(ty).is_err());
        let metric_twice = r#"{"tenant":"t","metrics":{"m":{"aliases":["n"]},"n":{}}}"#;
        assert!(doc(metric_twice).is_err());
        let table = r#"{"tenant":"t","metrics":{"boiler room":{}}}"#;
        assert!(doc(table)
            .unwrap_err()
            .to_string()
            .contains("Delta table directory"));
        let reserved = r#"{"tenant":"t","metrics":{"m":{"fields":{"timestamp":{"type":"long"}}}}}"#;
        assert!(doc(reserved).is_err());
    }
}
