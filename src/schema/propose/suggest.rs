//! [`Suggestion`]s: alias of a likely variant, else a new field or metric under a valid name.

use serde::{Deserialize, Serialize};

use super::doc::{declares, FieldProposal, MetricProposal};
use crate::catalog::{MetricSpec, TenantCatalog};
use crate::model::FieldType;
use crate::schema::similar::likely_variant;

/// Characters Delta Lake forbids in column names (the catalog's rule, see `catalog.rs`).
const FORBIDDEN_COLUMN_CHARS: &[char] = &[' ', ',', ';', '{', '}', '(', ')', '\n', '\t', '='];

/// Longest canonical metric name the catalog accepts.
const MAX_TABLE_NAME: usize = 128;

/// What to do about a proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Suggestion {
    /// The unknown field is likely an alias of this declared (canonical) field.
    Alias { field: String },
    /// Declare a new field (a valid column name).
    NewField {
        name: String,
        #[serde(rename = "type")]
        ty: FieldType,
    },
    /// Change a declared field's type.
    SetType {
        #[serde(rename = "type")]
        ty: FieldType,
    },
    /// The unknown metric is likely an alias of this canonical metric.
    AliasMetric { metric: String },
    /// Declare a new metric (a valid table name).
    NewMetric { name: String },
}

/// Alias of the closest compatible declared field, or a new field. `taken`: the metric's
/// unknown field names and the sanitized names handed out so far.
pub(super) fn field_suggestion(
    name: &str,
    p: &FieldProposal,
    spec: Option<&MetricSpec>,
    taken: &mut Vec<String>,
) -> Suggestion {
    if let Some(field) = spec.and_then(|s| alias_target(name, p, s)) {
        return Suggestion::Alias { field };
    }
    let declared = |c: &str| spec.is_some_and(|s| declares(s, c));
    Suggestion::NewField {
        name: new_name(name, column_name(name), taken, declared),
        ty: p.inferred_type.field_type(),
    }
}

/// `name` itself when it is valid (`base == name`: an unknown name is neither declared nor
/// taken), else the first free variant of the sanitized `base`, which is then taken.
fn new_name(
    name: &str,
    base: String,
    taken: &mut Vec<String>,
    declared: impl Fn(&str) -> bool,
) -> String {
    if base == name {
        return base;
    }
    let free = unique(&base, |c| declared(c) || taken.iter().any(|t| t == c));
    taken.push(free.clone());
    free
}

/// The declared visible field `name` is most likely a variant of and whose type the values
/// fit: best score, then catalog order.
fn alias_target(name: &str, p: &FieldProposal, spec: &MetricSpec) -> Option<String> {
    let mut best: Option<(u32, &str)> = None;
    for field in &spec.fields {
        let score = field
            .sources
            .iter()
            .filter_map(|s| likely_variant(name, s))
            .max();
        let Some(score) = score else { continue };
        if p.type_counts.mostly_compatible(field.ty) && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, &field.name));
        }
    }
    best.map(|(_, f)| f.to_string())
}

/// Alias of the closest declared metric whose fields the metric's fields overlap compatibly,
/// or a new metric.
pub(super) fn metric_suggestion(
    name: &str,
    p: &MetricProposal,
    catalog: Option<&TenantCatalog>,
    taken: &mut Vec<String>,
) -> Suggestion {
    if let Some(metric) = catalog.and_then(|c| alias_metric(name, p, c)) {
        return Suggestion::AliasMetric { metric };
    }
    let declared = |t: &str| catalog.is_some_and(|c| c.metric(t).is_some());
    Suggestion::NewMetric {
        name: new_name(name, table_name(name), taken, declared),
    }
}

fn alias_metric(name: &str, p: &MetricProposal, catalog: &TenantCatalog) -> Option<String> {
    let mut best: Option<(u32, &str)> = None;
    for (canonical, doc) in &catalog.doc.metrics {
        let sources = std::iter::once(canonical).chain(&doc.aliases);
        let Some(score) = sources.filter_map(|s| likely_variant(name, s)).max() else {
            continue;
        };
        let fits = catalog
            .metric(canonical)
            .is_some_and(|spec| overlaps(p, spec));
        if fits && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, canonical));
        }
    }
    best.map(|(_, m)| m.to_string())
}

/// At least one field resolves to a declared field of `spec`, and every one that does holds
/// values of a compatible type.
fn overlaps(p: &MetricProposal, spec: &MetricSpec) -> bool {
    let mut any = false;
    for (name, f) in &p.fields {
        if let Some(&(i, _)) = spec.by_source.get(name.as_str()) {
            if !f.type_counts.mostly_compatible(spec.fields[i].ty) {
                return false;
            }
            any = true;
        }
    }
    any
}

/// A valid column name: forbidden characters become `_`, reserved names get a `_` suffix.
fn column_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if FORBIDDEN_COLUMN_CHARS.contains(&c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    match s.as_str() {
        "timestamp" | "date" => format!("{s}_"),
        _ => s,
    }
}

/// A valid table name: `[A-Za-z0-9_.-]`, starting with a letter, digit or `_`, at most 128
/// bytes (room left for a [`unique`] suffix when cut).
fn table_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(['.', '-']) {
        s.replace_range(..1, "_");
    }
    if s.len() > MAX_TABLE_NAME {
        s.truncate(MAX_TABLE_NAME - 8);
    }
    s
}

/// `base`, or `base_2`, `base_3`, ... : the first that is not taken.
fn unique(base: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(base) {
        return base.to_string();
    }
    (2u32..)
        .map(|n| format!("{base}_{n}"))
        .find(|c| !taken(c))
        .expect("some suffix is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_for_new_fields_and_metrics() {
        assert_eq!(column_name("door state"), "door_state");
        assert_eq!(column_name("a=b;c"), "a_b_c");
        assert_eq!(column_name("date"), "date_");
        assert_eq!(column_name("Température"), "Température");
        assert_eq!(table_name("heat pump"), "heat_pump");
        assert_eq!(table_name("-x/é"), "_x__");
        assert_eq!(table_name(&"m".repeat(200)).len(), 120);
        assert_eq!(unique("a", |c| c == "a" || c == "a_2"), "a_3");
    }
}
