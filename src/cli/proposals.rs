//! The human table of `fineo-batch schema proposals`.

use fineo_batch::schema::propose::{
    FieldProposal, MetricProposal, PType, ProposalDoc, Suggestion, TypeChange, TypeCounts,
};

use super::table;

/// Longest sample shown, in characters.
const SAMPLE_CHARS: usize = 20;

const HEADER: [&str; 8] = [
    "METRIC",
    "FIELD",
    "COUNT",
    "NULLS",
    "TYPE",
    "TYPES",
    "SAMPLES",
    "SUGGESTION",
];

/// One row per unknown metric, unknown field and type change.
pub fn text(doc: &ProposalDoc) -> String {
    if doc.metrics.is_empty() {
        return format!("tenant {}: no proposals", doc.tenant);
    }
    let mut rows = Vec::new();
    for (name, m) in &doc.metrics {
        metric_rows(name, m, &mut rows);
    }
    format!(
        "tenant {}: proposals as of lake version {}\n",
        doc.tenant, doc.version
    ) + &table::render(&HEADER, &rows)
}

fn metric_rows(name: &str, m: &MetricProposal, rows: &mut Vec<Vec<String>>) {
    if !m.known {
        let suggestion = m.suggestion.as_ref().map(suggestion).unwrap_or_default();
        let count = m.count.to_string();
        let seen = match (&m.first_seen, &m.last_seen) {
            (Some(first), Some(last)) => format!("seen {first} .. {last}"),
            _ => String::new(),
        };
        rows.push(row([name, "", &count, "", "", "", &seen, &suggestion]));
    }
    for (field, f) in &m.fields {
        rows.push(field_row(name, field, f));
    }
    for (field, tc) in &m.type_changes {
        rows.push(type_change_row(name, field, tc));
    }
}

/// A table row from its eight cells, in [`HEADER`] order.
fn row(cells: [&str; 8]) -> Vec<String> {
    cells.map(String::from).to_vec()
}

fn field_row(metric: &str, field: &str, f: &FieldProposal) -> Vec<String> {
    row([
        metric,
        field,
        &f.count.to_string(),
        &format!("{:.1}%", f.null_rate * 100.0),
        ptype(f.inferred_type),
        &type_counts(&f.type_counts),
        &samples(&f.samples),
        &suggestion(&f.suggestion),
    ])
}

fn type_change_row(metric: &str, field: &str, tc: &TypeChange) -> Vec<String> {
    let suggestion = format!(
        "{} ({} of {} values fail {})",
        suggestion(&tc.suggestion),
        tc.failures,
        tc.count,
        tc.declared.name()
    );
    row([
        metric,
        field,
        &tc.count.to_string(),
        "",
        ptype(tc.inferred_type),
        &type_counts(&tc.type_counts),
        &samples(&tc.samples),
        &suggestion,
    ])
}

fn ptype(t: PType) -> &'static str {
    t.field_type().name()
}

/// `long 3, double 1`.
fn type_counts(c: &TypeCounts) -> String {
    c.seen()
        .map(|t| format!("{} {}", ptype(t), c.get(t)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn samples(s: &[String]) -> String {
    s.iter()
        .map(|v| match v.chars().count() > SAMPLE_CHARS {
            true => {
                let cut: String = v.chars().take(SAMPLE_CHARS - 1).collect();
                cut.trim_end().to_string() + "…"
            }
            false => v.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn suggestion(s: &Suggestion) -> String {
    match s {
        Suggestion::Alias { field } => format!("alias of {field}"),
        Suggestion::NewField { name, ty } => format!("new field {name} ({})", ty.name()),
        Suggestion::SetType { ty } => format!("set type {}", ty.name()),
        Suggestion::AliasMetric { metric } => format!("alias of metric {metric}"),
        Suggestion::NewMetric { name } => format!("new metric {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_unknown_metric_field_and_type_change() {
        let doc: ProposalDoc = serde_json::from_value(serde_json::json!({
            "tenant": "t1", "version": 3,
            "metrics": {
                "boiler": {"known": true,
                    "fields": {
                        "Temp_C": {"count": 3, "nulls": 1, "null_rate": 0.25, "inferred_type": "double",
                            "type_counts": {"long": 1, "double": 2}, "samples": ["1", "2.5", "a very long sample value here"],
                            "suggestion": {"action": "alias", "field": "temperature"}}
                    },
                    "type_changes": {
                        "level": {"declared": "int", "count": 10, "failures": 4, "failure_rate": 0.4,
                            "type_counts": {"long": 6, "string": 4}, "inferred_type": "string",
                            "samples": ["high"], "suggestion": {"action": "set_type", "type": "string"}}
                    }},
                "Pump #2": {"known": false, "count": 4,
                    "first_seen": "2026-01-01T00:00:00.000Z", "last_seen": "2026-01-01T00:00:05.000Z",
                    "suggestion": {"action": "new_metric", "name": "Pump__2"}}
            }
        }))
        .unwrap();
        assert_eq!(
            text(&doc),
            "tenant t1: proposals as of lake version 3\n\
             METRIC   FIELD   COUNT  NULLS  TYPE    TYPES             SAMPLES                                                    SUGGESTION\n\
             Pump #2  -       4      -      -       -                 seen 2026-01-01T00:00:00.000Z .. 2026-01-01T00:00:05.000Z  new metric Pump__2\n\
             boiler   Temp_C  3      25.0%  double  long 1, double 2  1, 2.5, a very long sample…                                alias of temperature\n\
             boiler   level   10     -      string  long 6, string 4  high                                                       set type string (4 of 10 values fail int)\n"
        );
    }
}
