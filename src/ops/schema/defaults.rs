//! What `accept` and `accept-metric` do when `--as`/`--type` are left out: the proposal's
//! suggestion, recomputed against the catalog the edit starts from.

use super::canonical_metric;
use crate::catalog::TenantDoc;
use crate::error::{Error, Result};
use crate::model::FieldType;
use crate::schema::edit::SchemaEdit;
use crate::schema::propose::{ProposalDoc, Suggestion};

/// Fills in the arguments an accept left out from the (refreshed) proposals; other edits,
/// and accepts that say everything, are returned as they are.
pub fn resolve(
    edit: SchemaEdit,
    doc: &TenantDoc,
    proposals: Option<&ProposalDoc>,
) -> Result<SchemaEdit> {
    match edit {
        SchemaEdit::AcceptField {
            metric,
            field,
            as_,
            ty,
        } => accept_field(doc, proposals, metric, field, as_, ty),
        SchemaEdit::AcceptMetric { name, as_: None } => {
            let as_ = proposals
                .and_then(|p| p.metric(&name))
                .and_then(|m| m.suggestion.as_ref())
                .and_then(metric_target);
            Ok(SchemaEdit::AcceptMetric { name, as_ })
        }
        other => Ok(other),
    }
}

/// `--as` of an accepted metric from its suggestion.
fn metric_target(s: &Suggestion) -> Option<String> {
    match s {
        Suggestion::AliasMetric { metric } => Some(metric.clone()),
        Suggestion::NewMetric { name } => Some(name.clone()),
        _ => None,
    }
}

fn accept_field(
    doc: &TenantDoc,
    proposals: Option<&ProposalDoc>,
    metric: String,
    field: String,
    as_: Option<String>,
    ty: Option<FieldType>,
) -> Result<SchemaEdit> {
    let key = canonical_metric(doc, &metric);
    let proposal = proposals.and_then(|p| p.field(key, &field));
    let (as_, ty) = match (as_, proposal) {
        // Nothing to fill in, or nothing to fill it from.
        (as_, _) if as_.is_some() && ty.is_some() => (as_, ty),
        (as_, None) => {
            let declared = as_.as_deref().is_some_and(|a| declares(doc, key, a));
            if ty.is_none() && !declared {
                return Err(no_proposal(doc, key, &field));
            }
            (as_, ty)
        }
        // `--as` given: the proposal only supplies the type of a new field.
        (Some(a), Some(p)) => (Some(a), ty.or(Some(p.inferred_type.field_type()))),
        (None, Some(p)) => match &p.suggestion {
            Suggestion::Alias { field: f } => (Some(f.clone()), ty),
            Suggestion::NewField { name, ty: t } => (Some(name.clone()), ty.or(Some(*t))),
            _ => (None, ty.or(Some(p.inferred_type.field_type()))),
        },
    };
    Ok(SchemaEdit::AcceptField {
        metric,
        field,
        as_,
        ty,
    })
}

/// Whether `metric` declares the canonical field `name`.
fn declares(doc: &TenantDoc, metric: &str, name: &str) -> bool {
    doc.metrics
        .get(metric)
        .is_some_and(|m| m.fields.0.iter().any(|(n, _)| n == name))
}

fn no_proposal(doc: &TenantDoc, metric: &str, field: &str) -> Error {
    Error::catalog(
        &doc.tenant,
        format!(
            "no proposal for metric {metric:?} field {field:?}: give its type (--type), or --as an existing field"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> TenantDoc {
        serde_json::from_str(
            r#"{"tenant":"t1","metrics":{"boiler":{"aliases":["machine1"],
            "fields":{"temperature":{"type":"double"}}}}}"#,
        )
        .unwrap()
    }

    fn proposals() -> ProposalDoc {
        serde_json::from_value(serde_json::json!({
            "tenant": "t1", "version": 3,
            "metrics": {
                "boiler": {"known": true, "fields": {
                    "Temp_C": {"count": 2, "nulls": 0, "null_rate": 0.0, "inferred_type": "double",
                        "type_counts": {"double": 2}, "samples": ["1.5"],
                        "suggestion": {"action": "alias", "field": "temperature"}},
                    "Fan Speed": {"count": 2, "nulls": 0, "null_rate": 0.0, "inferred_type": "long",
                        "type_counts": {"long": 2}, "samples": ["3"],
                        "suggestion": {"action": "new_field", "name": "Fan_Speed", "type": "long"}}
                }},
                "Pump #2": {"known": false, "count": 4,
                    "suggestion": {"action": "new_metric", "name": "Pump__2"}}
            }
        }))
        .unwrap()
    }

    fn accept(field: &str, as_: Option<&str>, ty: Option<FieldType>) -> Result<SchemaEdit> {
        let edit = SchemaEdit::AcceptField {
            metric: "machine1".into(),
            field: field.into(),
            as_: as_.map(String::from),
            ty,
        };
        resolve(edit, &doc(), Some(&proposals()))
    }

    fn resolved(as_: Option<&str>, ty: Option<FieldType>, field: &str) -> SchemaEdit {
        SchemaEdit::AcceptField {
            metric: "machine1".into(),
            field: field.into(),
            as_: as_.map(String::from),
            ty,
        }
    }

    #[test]
    fn accept_takes_the_suggestion() {
        assert_eq!(
            accept("Temp_C", None, None).unwrap(),
            resolved(Some("temperature"), None, "Temp_C")
        );
        assert_eq!(
            accept("Fan Speed", None, None).unwrap(),
            resolved(Some("Fan_Speed"), Some(FieldType::Long), "Fan Speed")
        );
        assert_eq!(
            accept("Fan Speed", None, Some(FieldType::Int)).unwrap(),
            resolved(Some("Fan_Speed"), Some(FieldType::Int), "Fan Speed")
        );
        assert_eq!(
            accept("Fan Speed", Some("fan"), None).unwrap(),
            resolved(Some("fan"), Some(FieldType::Long), "Fan Speed")
        );
    }

    #[test]
    fn accept_without_a_proposal_needs_a_type_or_an_existing_field() {
        assert_eq!(
            accept("rpm", None, None).unwrap_err().to_string(),
            "catalog for tenant \"t1\": no proposal for metric \"boiler\" field \"rpm\": give its type (--type), or --as an existing field"
        );
        assert_eq!(
            accept("rpm", None, Some(FieldType::Long)).unwrap(),
            resolved(None, Some(FieldType::Long), "rpm")
        );
        assert_eq!(
            accept("rpm", Some("temperature"), None).unwrap(),
            resolved(Some("temperature"), None, "rpm")
        );
        assert!(accept("rpm", Some("rpm2"), None).is_err());
    }

    #[test]
    fn accept_metric_takes_the_suggestion() {
        let edit = SchemaEdit::AcceptMetric {
            name: "Pump #2".into(),
            as_: None,
        };
        assert_eq!(
            resolve(edit.clone(), &doc(), Some(&proposals())).unwrap(),
            SchemaEdit::AcceptMetric {
                name: "Pump #2".into(),
                as_: Some("Pump__2".into())
            }
        );
        assert_eq!(resolve(edit.clone(), &doc(), None).unwrap(), edit);
    }
}
