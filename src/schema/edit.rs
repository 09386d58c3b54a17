//! Edits to a tenant catalog document, each validated before it becomes a version.
//!
//! Every edit is a pure function `TenantDoc -> Result<TenantDoc>`: it refuses what makes no
//! sense (unknown metric or field, a name already in use, a change that changes nothing) with
//! an error naming the tenant, metric and field, and checks its result with
//! [`TenantCatalog::new`]. [`SchemaEdit`] carries one edit's arguments, so the catalog store
//! can apply it again to a newer document when a concurrent editor wrote first.

use serde::{Deserialize, Serialize};

use crate::catalog::{FieldDoc, MetricDoc, TenantCatalog, TenantDoc};
use crate::error::{Error, Result};
use crate::model::FieldType;

/// One edit of a tenant's catalog, with its arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "kebab-case")]
pub enum SchemaEdit {
    /// An unknown field becomes an alias of `as_` (an existing field) or a new field.
    AcceptField {
        metric: String,
        field: String,
        #[serde(rename = "as")]
        as_: Option<String>,
        ty: Option<FieldType>,
    },
    /// An unknown metric becomes a metric, or an alias of the existing metric `as_`.
    AcceptMetric {
        name: String,
        #[serde(rename = "as")]
        as_: Option<String>,
    },
    /// A metric alias (`field` None) or a field alias.
    Alias {
        metric: String,
        field: Option<String>,
        alias: String,
    },
    /// A new canonical name for a metric (`field` None) or a field.
    Rename {
        metric: String,
        field: Option<String>,
        to: String,
    },
    Hide {
        metric: String,
        field: String,
    },
    Unhide {
        metric: String,
        field: String,
    },
    SetType {
        metric: String,
        field: String,
        ty: FieldType,
    },
    /// The whole document replaced.
    Import {
        doc: TenantDoc,
    },
}

impl SchemaEdit {
    /// Applies the edit to a document.
    pub fn apply(&self, doc: TenantDoc) -> Result<TenantDoc> {
        match self {
            SchemaEdit::AcceptField {
                metric,
                field,
                as_,
                ty,
            } => accept_field(doc, metric, field, as_.as_deref(), *ty),
            SchemaEdit::AcceptMetric { name, as_ } => accept_metric(doc, name, as_.as_deref()),
            SchemaEdit::Alias {
                metric,
                field,
                alias: a,
            } => alias(doc, metric, field.as_deref(), a),
            SchemaEdit::Rename { metric, field, to } => rename(doc, metric, field.as_deref(), to),
            SchemaEdit::Hide { metric, field } => hide(doc, metric, field),
            SchemaEdit::Unhide { metric, field } => unhide(doc, metric, field),
            SchemaEdit::SetType { metric, field, ty } => set_type(doc, metric, field, *ty),
            SchemaEdit::Import { doc: new } => import(doc, new.clone()),
        }
    }

    /// The one-line change description of the edit, worded against the document it applies to.
    pub fn describe(&self, doc: &TenantDoc) -> String {
        match self {
            SchemaEdit::AcceptField {
                metric,
                field,
                as_,
                ty,
            } => describe_accept(doc, metric, field, as_.as_deref(), *ty),
            SchemaEdit::AcceptMetric { name, as_ } => match as_ {
                Some(a) if doc.metrics.contains_key(a) => {
                    format!("accept metric {name} as alias of {a}")
                }
                Some(a) => format!("accept metric {name} as new metric {a}"),
                None => format!("accept metric {name}"),
            },
            SchemaEdit::Alias {
                metric,
                field,
                alias,
            } => format!(
                "add alias {alias} to {}",
                target(doc, metric, field.as_deref())
            ),
            SchemaEdit::Rename { metric, field, to } => {
                format!("rename {} to {to}", target(doc, metric, field.as_deref()))
            }
            SchemaEdit::Hide { metric, field } => {
                format!("hide {}", target(doc, metric, Some(field)))
            }
            SchemaEdit::Unhide { metric, field } => {
                format!("unhide {}", target(doc, metric, Some(field)))
            }
            SchemaEdit::SetType { metric, field, ty } => format!(
                "set type of {} to {}",
                target(doc, metric, Some(field)),
                ty.name()
            ),
            SchemaEdit::Import { doc: new } => format!(
                "import: {}, {}",
                count(new.metrics.len(), "metric"),
                count(
                    new.metrics.values().map(|m| m.fields.0.len()).sum(),
                    "field"
                )
            ),
        }
    }
}

/// `1 metric`, `2 metrics`.
fn count(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

/// `metric` or `metric.field`, with the metric's canonical name when `metric` is an alias.
fn target(doc: &TenantDoc, metric: &str, field: Option<&str>) -> String {
    let m = metric_key(doc, metric).unwrap_or(metric);
    match field {
        Some(f) => format!("{m}.{f}"),
        None => m.to_string(),
    }
}

fn describe_accept(
    doc: &TenantDoc,
    metric: &str,
    field: &str,
    as_: Option<&str>,
    ty: Option<FieldType>,
) -> String {
    let what = target(doc, metric, Some(field));
    let existing = metric_key(doc, metric).and_then(|m| {
        doc.metrics[m]
            .fields
            .0
            .iter()
            .find(|(n, _)| Some(n.as_str()) == as_)
    });
    match (existing, ty) {
        (Some((name, _)), _) => format!("accept {what} as alias of {name}"),
        (None, Some(ty)) => format!(
            "accept {what} as new field {} ({})",
            as_.unwrap_or(field),
            ty.name()
        ),
        (None, None) => format!("accept {what}"),
    }
}

fn err(doc: &TenantDoc, reason: String) -> Error {
    Error::catalog(&doc.tenant, reason)
}

/// The canonical key of a metric named by its canonical name or one of its aliases.
fn metric_key<'a>(doc: &'a TenantDoc, name: &str) -> Option<&'a str> {
    if let Some((k, _)) = doc.metrics.get_key_value(name) {
        return Some(k);
    }
    doc.metrics
        .iter()
        .find(|(_, m)| m.aliases.iter().any(|a| a == name))
        .map(|(k, _)| k.as_str())
}

/// The canonical key of an existing metric, or a clear error.
fn known_metric(doc: &TenantDoc, name: &str) -> Result<String> {
    match metric_key(doc, name) {
        Some(k) => Ok(k.to_string()),
        None => Err(err(doc, format!("unknown metric {name:?}"))),
    }
}

/// The position of a canonical field, or a clear error (also when `name` is an alias).
fn known_field(doc: &TenantDoc, metric: &str, name: &str) -> Result<usize> {
    let m = &doc.metrics[metric];
    if let Some(i) = m.fields.0.iter().position(|(n, _)| n == name) {
        return Ok(i);
    }
    Err(err(
        doc,
        match field_user(m, name) {
            Some(owner) => format!(
                "metric {metric:?}: {name:?} is an alias of field {owner:?}; name the field by {owner:?}"
            ),
            None => format!("metric {metric:?} has no field {name:?}"),
        },
    ))
}

/// The canonical field whose name or alias is `name`.
fn field_user<'a>(m: &'a MetricDoc, name: &str) -> Option<&'a str> {
    m.fields
        .0
        .iter()
        .find(|(n, f)| n == name || f.aliases.iter().any(|a| a == name))
        .map(|(n, _)| n.as_str())
}

/// Refuses a field name already used in the metric (as a field name or an alias).
fn field_name_free(doc: &TenantDoc, metric: &str, name: &str) -> Result<()> {
    match field_user(&doc.metrics[metric], name) {
        None => Ok(()),
        Some(owner) if owner == name => Err(err(
            doc,
            format!("metric {metric:?}: {name:?} is already a field"),
        )),
        Some(owner) => Err(err(
            doc,
            format!("metric {metric:?}: {name:?} is already an alias of field {owner:?}"),
        )),
    }
}

/// Refuses a metric name already used in the tenant (as a metric name or an alias).
fn metric_name_free(doc: &TenantDoc, name: &str) -> Result<()> {
    match metric_key(doc, name) {
        None => Ok(()),
        Some(k) if k == name => Err(err(doc, format!("{name:?} is already a metric"))),
        Some(k) => Err(err(
            doc,
            format!("{name:?} is already an alias of metric {k:?}"),
        )),
    }
}

/// Validates an edited document; the error keeps the catalog's own reason.
fn validated(doc: TenantDoc) -> Result<TenantDoc> {
    TenantCatalog::new(doc.clone())?;
    Ok(doc)
}

/// Takes a field proposal: `field` becomes an alias of the existing canonical field `as_`,
/// or a new field named `as_` (else `field`) of type `ty`, appended at the end of the fields.
pub fn accept_field(
    mut doc: TenantDoc,
    metric: &str,
    field: &str,
    as_: Option<&str>,
    ty: Option<FieldType>,
) -> Result<TenantDoc> {
    let key = known_metric(&doc, metric)?;
    field_name_free(&doc, &key, field)?;
    let existing = as_.and_then(|a| field_position(&doc.metrics[&key], a));
    if let Some(i) = existing {
        let (name, f) = &doc.metrics[&key].fields.0[i];
        if let Some(ty) = ty.filter(|&t| t != f.ty) {
            return Err(err(&doc, format!(
                "metric {key:?}: field {name:?} is {}; --type {} does not apply to an alias (use set-type)",
                f.ty.name(), ty.name()
            )));
        }
        mutable_metric(&mut doc, &key).fields.0[i]
            .1
            .aliases
            .push(field.to_string());
        return validated(doc);
    }
    let canonical = as_.unwrap_or(field);
    if let Some(owner) = field_user(&doc.metrics[&key], canonical) {
        return Err(err(&doc, format!(
            "metric {key:?}: {canonical:?} is an alias of field {owner:?}; accept {field:?} as {owner:?}"
        )));
    }
    let Some(ty) = ty else {
        return Err(err(
            &doc,
            format!("metric {key:?}: new field {canonical:?} needs a type (--type)"),
        ));
    };
    let aliases = match canonical == field {
        true => Vec::new(),
        false => vec![field.to_string()],
    };
    let m = mutable_metric(&mut doc, &key);
    m.fields
        .0
        .push((canonical.to_string(), FieldDoc { ty, aliases }));
    validated(doc)
}

fn field_position(m: &MetricDoc, name: &str) -> Option<usize> {
    m.fields.0.iter().position(|(n, _)| n == name)
}

fn mutable_metric<'a>(doc: &'a mut TenantDoc, key: &str) -> &'a mut MetricDoc {
    doc.metrics.get_mut(key).expect("metric checked")
}

/// Takes a metric proposal: `name` becomes a new metric `as_` (else `name`, with `name` as its
/// alias when they differ), or an alias of the existing metric `as_`.
pub fn accept_metric(mut doc: TenantDoc, name: &str, as_: Option<&str>) -> Result<TenantDoc> {
    metric_name_free(&doc, name)?;
    let canonical = as_.unwrap_or(name);
    if doc.metrics.contains_key(canonical) {
        mutable_metric(&mut doc, canonical)
            .aliases
            .push(name.to_string());
        return validated(doc);
    }
    if let Some(k) = metric_key(&doc, canonical) {
        return Err(err(
            &doc,
            format!("{canonical:?} is an alias of metric {k:?}; accept {name:?} as {k:?}"),
        ));
    }
    let aliases = match canonical == name {
        true => Vec::new(),
        false => vec![name.to_string()],
    };
    let m = MetricDoc {
        aliases,
        ..Default::default()
    };
    doc.metrics.insert(canonical.to_string(), m);
    validated(doc)
}

/// Adds a metric alias (`field` None) or a field alias, at the end of the aliases.
pub fn alias(
    mut doc: TenantDoc,
    metric: &str,
    field: Option<&str>,
    alias: &str,
) -> Result<TenantDoc> {
    let key = known_metric(&doc, metric)?;
    match field {
        None => {
            metric_name_free(&doc, alias)?;
            mutable_metric(&mut doc, &key)
                .aliases
                .push(alias.to_string());
        }
        Some(f) => {
            let i = known_field(&doc, &key, f)?;
            field_name_free(&doc, &key, alias)?;
            let fields = &mut mutable_metric(&mut doc, &key).fields.0;
            fields[i].1.aliases.push(alias.to_string());
        }
    }
    validated(doc)
}

/// Renames a canonical metric (`field` None) or field; the old name becomes its first alias
/// (so devices that send it still resolve). A field keeps its position and hidden state.
pub fn rename(
    mut doc: TenantDoc,
    metric: &str,
    field: Option<&str>,
    to: &str,
) -> Result<TenantDoc> {
    let key = known_metric(&doc, metric)?;
    match field {
        None => rename_metric(&mut doc, &key, to)?,
        Some(f) => rename_field(&mut doc, &key, f, to)?,
    }
    validated(doc)
}

fn rename_metric(doc: &mut TenantDoc, key: &str, to: &str) -> Result<()> {
    if key == to {
        return Err(err(doc, format!("metric {key:?} is already called {to:?}")));
    }
    let own_alias = doc.metrics[key].aliases.iter().any(|a| a == to);
    if !own_alias {
        metric_name_free(doc, to)?;
    }
    let mut m = doc.metrics.remove(key).expect("metric checked");
    m.aliases.retain(|a| a != to);
    m.aliases.insert(0, key.to_string());
    doc.metrics.insert(to.to_string(), m);
    Ok(())
}

fn rename_field(doc: &mut TenantDoc, key: &str, field: &str, to: &str) -> Result<()> {
    let i = known_field(doc, key, field)?;
    if field == to {
        return Err(err(
            doc,
            format!("metric {key:?}: field {field:?} is already called {to:?}"),
        ));
    }
    let own_alias = doc.metrics[key].fields.0[i]
        .1
        .aliases
        .iter()
        .any(|a| a == to);
    if !own_alias {
        field_name_free(doc, key, to)?;
    }
    let m = mutable_metric(doc, key);
    let (name, f) = &mut m.fields.0[i];
    f.aliases.retain(|a| a != to);
    f.aliases.insert(0, std::mem::replace(name, to.to_string()));
    for h in m.hidden.iter_mut().filter(|h| *h == field) {
        *h = to.to_string();
    }
    Ok(())
}

/// Hides a field: its values are no longer written to new output.
pub fn hide(mut doc: TenantDoc, metric: &str, field: &str) -> Result<TenantDoc> {
    let key = known_metric(&doc, metric)?;
    known_field(&doc, &key, field)?;
    if doc.metrics[&key].hidden.iter().any(|h| h == field) {
        return Err(err(
            &doc,
            format!("metric {key:?}: field {field:?} is already hidden"),
        ));
    }
    mutable_metric(&mut doc, &key)
        .hidden
        .push(field.to_string());
    validated(doc)
}

/// Makes a hidden field visible again.
pub fn unhide(mut doc: TenantDoc, metric: &str, field: &str) -> Result<TenantDoc> {
    let key = known_metric(&doc, metric)?;
    known_field(&doc, &key, field)?;
    let hidden = &mut mutable_metric(&mut doc, &key).hidden;
    let before = hidden.len();
    hidden.retain(|h| h != field);
    if hidden.len() == before {
        return Err(err(
            &doc,
            format!("metric {key:?}: field {field:?} is not hidden"),
        ));
    }
    validated(doc)
}

/// Declares another type for a field.
pub fn set_type(mut doc: TenantDoc, metric: &str, field: &str, ty: FieldType) -> Result<TenantDoc> {
    let key = known_metric(&doc, metric)?;
    let i = known_field(&doc, &key, field)?;
    let f = &mut mutable_metric(&mut doc, &key).fields.0[i].1;
    if f.ty == ty {
        return Err(err(
            &doc,
            format!("metric {key:?}: field {field:?} is already {}", ty.name()),
        ));
    }
    f.ty = ty;
    validated(doc)
}

/// Replaces the whole document; it must be for the same tenant.
pub fn import(doc: TenantDoc, new: TenantDoc) -> Result<TenantDoc> {
    if new.tenant != doc.tenant {
        return Err(err(
            &doc,
            format!("the imported document is for tenant {:?}", new.tenant),
        ));
    }
    validated(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> TenantDoc {
        serde_json::from_str(
            r#"{"tenant":"t07","metrics":{"boiler":{"aliases":["machine1"],
            "fields":{"temperature":{"type":"double","aliases":["temp"]},"pressure":{"type":"long"}},
            "hidden":["pressure"]}}}"#,
        )
        .unwrap()
    }

    fn json(d: &TenantDoc) -> String {
        serde_json::to_string(d).unwrap()
    }

    fn fields(d: &TenantDoc, metric: &str) -> Vec<(String, String, Vec<String>)> {
        d.metrics[metric]
            .fields
            .0
            .iter()
            .map(|(n, f)| (n.clone(), f.ty.name().to_string(), f.aliases.clone()))
            .collect()
    }

    fn reason(r: Result<TenantDoc>) -> String {
        r.unwrap_err().to_string()
    }

    fn owned(v: &[(&str, &str, &[&str])]) -> Vec<(String, String, Vec<String>)> {
        v.iter()
            .map(|(n, t, a)| {
                (
                    n.to_string(),
                    t.to_string(),
                    a.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn accept_as_alias_of_an_existing_field() {
        let d = accept_field(doc(), "machine1", "Temp_C", Some("temperature"), None).unwrap();
        assert_eq!(
            fields(&d, "boiler"),
            owned(&[
                ("temperature", "double", &["temp", "Temp_C"]),
                ("pressure", "long", &[])
            ])
        );
        let same_type = accept_field(
            doc(),
            "boiler",
            "t2",
            Some("temperature"),
            Some(FieldType::Double),
        );
        assert!(same_type.is_ok());
        assert_eq!(
            reason(accept_field(doc(), "boiler", "t2", Some("temperature"), Some(FieldType::Long))),
            "catalog for tenant \"t07\": metric \"boiler\": field \"temperature\" is double; --type long does not apply to an alias (use set-type)"
        );
    }

    #[test]
    fn accept_as_a_new_field_appends_it() {
        let d = accept_field(
            doc(),
            "boiler",
            "Fan Speed",
            Some("fan_speed"),
            Some(FieldType::Int),
        )
        .unwrap();
        let d = accept_field(d, "boiler", "site", None, Some(FieldType::String)).unwrap();
        assert_eq!(
            fields(&d, "boiler"),
            owned(&[
                ("temperature", "double", &["temp"]),
                ("pressure", "long", &[]),
                ("fan_speed", "int", &["Fan Speed"]),
                ("site", "string", &[]),
            ])
        );
    }

    #[test]
    fn accept_refusals() {
        let r = |f: &str, a: Option<&str>, t: Option<FieldType>| {
            reason(accept_field(doc(), "boiler", f, a, t))
        };
        let p = "catalog for tenant \"t07\": ";
        assert_eq!(
            r("temp", None, Some(FieldType::Long)),
            format!("{p}metric \"boiler\": \"temp\" is already an alias of field \"temperature\"")
        );
        assert_eq!(
            r("pressure", None, Some(FieldType::Long)),
            format!("{p}metric \"boiler\": \"pressure\" is already a field")
        );
        assert_eq!(
            r("rpm", None, None),
            format!("{p}metric \"boiler\": new field \"rpm\" needs a type (--type)")
        );
        assert_eq!(r("t3", Some("temp"), None), format!("{p}metric \"boiler\": \"temp\" is an alias of field \"temperature\"; accept \"t3\" as \"temperature\""));
        assert_eq!(r("rpm x", None, Some(FieldType::Long)), format!("{p}metric \"boiler\": field name \"rpm x\" cannot be a column (reserved, or holds one of ' ,;{{}}()=' or a tab/newline)"));
        assert_eq!(r("timestamp", None, Some(FieldType::Long)), format!("{p}metric \"boiler\": field name \"timestamp\" cannot be a column (reserved, or holds one of ' ,;{{}}()=' or a tab/newline)"));
        assert_eq!(
            reason(accept_field(
                doc(),
                "pump",
                "x",
                None,
                Some(FieldType::Long)
            )),
            format!("{p}unknown metric \"pump\"")
        );
    }

    #[test]
    fn accept_metric_new_or_alias() {
        let d = accept_metric(doc(), "Pump #2", Some("pump2")).unwrap();
        assert_eq!(d.metrics["pump2"].aliases, ["Pump #2"]);
        assert!(d.metrics["pump2"].fields.0.is_empty());
        let d = accept_metric(d, "pump3", None).unwrap();
        assert_eq!(d.metrics["pump3"], MetricDoc::default());
        let d = accept_metric(d, "machine2", Some("boiler")).unwrap();
        assert_eq!(d.metrics["boiler"].aliases, ["machine1", "machine2"]);
        let p = "catalog for tenant \"t07\": ";
        assert_eq!(
            reason(accept_metric(doc(), "machine1", None)),
            format!("{p}\"machine1\" is already an alias of metric \"boiler\"")
        );
        assert_eq!(
            reason(accept_metric(doc(), "boiler", None)),
            format!("{p}\"boiler\" is already a metric")
        );
        assert_eq!(
            reason(accept_metric(doc(), "m3", Some("machine1"))),
            format!(
                "{p}\"machine1\" is an alias of metric \"boiler\"; accept \"m3\" as \"boiler\""
            )
        );
        assert!(reason(accept_metric(doc(), "Pump #2", None)).contains("Delta table directory"));
    }

    #[test]
    fn aliases_are_appended_and_must_be_free() {
        let d = alias(doc(), "boiler", None, "machine9").unwrap();
        assert_eq!(d.metrics["boiler"].aliases, ["machine1", "machine9"]);
        let d = alias(d, "boiler", Some("temperature"), "tmp").unwrap();
        assert_eq!(d.metrics["boiler"].fields.0[0].1.aliases, ["temp", "tmp"]);
        let p = "catalog for tenant \"t07\": ";
        assert_eq!(
            reason(alias(doc(), "boiler", Some("pressure"), "temp")),
            format!("{p}metric \"boiler\": \"temp\" is already an alias of field \"temperature\"")
        );
        assert_eq!(
            reason(alias(doc(), "boiler", Some("pressure"), "temperature")),
            format!("{p}metric \"boiler\": \"temperature\" is already a field")
        );
        assert_eq!(reason(alias(doc(), "boiler", Some("temp"), "t")), format!("{p}metric \"boiler\": \"temp\" is an alias of field \"temperature\"; name the field by \"temperature\""));
        assert_eq!(
            reason(alias(doc(), "boiler", Some("rpm"), "r")),
            format!("{p}metric \"boiler\" has no field \"rpm\"")
        );
        assert_eq!(
            reason(alias(doc(), "pump", None, "p")),
            format!("{p}unknown metric \"pump\"")
        );
        assert_eq!(
            reason(alias(doc(), "boiler", None, "machine1")),
            format!("{p}\"machine1\" is already an alias of metric \"boiler\"")
        );
        assert_eq!(
            reason(alias(doc(), "boiler", None, "")),
            format!("{p}metric name \"\": empty name")
        );
    }

    #[test]
    fn rename_keeps_old_name_as_first_alias() {
        let d = rename(doc(), "boiler", Some("temperature"), "temp_c").unwrap();
        assert_eq!(
            fields(&d, "boiler")[0],
            owned(&[("temp_c", "double", &["temperature", "temp"])])[0]
        );
        let d = rename(d, "boiler", Some("pressure"), "press").unwrap();
        assert_eq!(d.metrics["boiler"].hidden, ["press"]);
        assert_eq!(
            fields(&d, "boiler")[1],
            owned(&[("press", "long", &["pressure"])])[0]
        );
        let d = rename(d, "machine1", None, "heater").unwrap();
        assert!(!d.metrics.contains_key("boiler"));
        assert_eq!(d.metrics["heater"].aliases, ["boiler", "machine1"]);
        let promoted = rename(doc(), "boiler", Some("temperature"), "temp").unwrap();
        assert_eq!(promoted.metrics["boiler"].fields.0[0].0, "temp");
        assert_eq!(
            promoted.metrics["boiler"].fields.0[0].1.aliases,
            ["temperature"]
        );
        let p = "catalog for tenant \"t07\": ";
        assert_eq!(
            reason(rename(doc(), "boiler", Some("temperature"), "pressure")),
            format!("{p}metric \"boiler\": \"pressure\" is already a field")
        );
        assert_eq!(
            reason(rename(doc(), "boiler", None, "boiler")),
            format!("{p}metric \"boiler\" is already called \"boiler\"")
        );
        assert_eq!(
            reason(rename(doc(), "boiler", Some("x"), "y")),
            format!("{p}metric \"boiler\" has no field \"x\"")
        );
    }

    #[test]
    fn hide_unhide_and_set_type() {
        let d = hide(doc(), "boiler", "temperature").unwrap();
        assert_eq!(d.metrics["boiler"].hidden, ["pressure", "temperature"]);
        let d = unhide(d, "boiler", "pressure").unwrap();
        assert_eq!(d.metrics["boiler"].hidden, ["temperature"]);
        let d = set_type(d, "boiler", "temperature", FieldType::Float).unwrap();
        assert_eq!(d.metrics["boiler"].fields.0[0].1.ty, FieldType::Float);
        let p = "catalog for tenant \"t07\": ";
        assert_eq!(
            reason(hide(doc(), "boiler", "pressure")),
            format!("{p}metric \"boiler\": field \"pressure\" is already hidden")
        );
        assert_eq!(
            reason(unhide(doc(), "boiler", "temperature")),
            format!("{p}metric \"boiler\": field \"temperature\" is not hidden")
        );
        assert_eq!(
            reason(set_type(doc(), "boiler", "pressure", FieldType::Long)),
            format!("{p}metric \"boiler\": field \"pressure\" is already long")
        );
        assert_eq!(
            reason(hide(doc(), "boiler", "nope")),
            format!("{p}metric \"boiler\" has no field \"nope\"")
        );
    }

    #[test]
    fn import_replaces_the_same_tenant_only() {
        let mut other = doc();
        other.metrics.clear();
        assert_eq!(
            json(&import(doc(), other.clone()).unwrap()),
            r#"{"tenant":"t07","metrics":{}}"#
        );
        other.tenant = "t08".into();
        assert_eq!(
            reason(import(doc(), other)),
            "catalog for tenant \"t07\": the imported document is for tenant \"t08\""
        );
    }

    #[test]
    fn edits_describe_themselves() {
        let d = doc();
        let accept = SchemaEdit::AcceptField {
            metric: "machine1".into(),
            field: "Temp_C".into(),
            as_: Some("temperature".into()),
            ty: None,
        };
        assert_eq!(
            accept.describe(&d),
            "accept boiler.Temp_C as alias of temperature"
        );
        let new = SchemaEdit::AcceptField {
            metric: "boiler".into(),
            field: "rpm".into(),
            as_: None,
            ty: Some(FieldType::Long),
        };
        assert_eq!(
            new.describe(&d),
            "accept boiler.rpm as new field rpm (long)"
        );
        let alias = SchemaEdit::Alias {
            metric: "boiler".into(),
            field: None,
            alias: "m9".into(),
        };
        assert_eq!(alias.describe(&d), "add alias m9 to boiler");
        assert_eq!(
            alias.apply(d.clone()).unwrap().metrics["boiler"].aliases,
            ["machine1", "m9"]
        );
        let import = SchemaEdit::Import { doc: d.clone() };
        assert_eq!(import.describe(&d), "import: 1 metric, 2 fields");
    }
}
