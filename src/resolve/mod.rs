//! Catalog resolution (SPEC 4): metric and field aliases, first-non-null, type conversion;
//! mismatched and unknown values kept untyped under the name they were sent with.

mod convert;
pub mod raw;

use std::borrow::Cow;
use std::sync::Arc;

pub use convert::{convert, parse_event_time};

use crate::catalog::{Catalog, MetricSpec};
use crate::model::{content_hash, day_of, PartitionKey, RawRecord, RawValue, TypedValue};
use crate::names;
use crate::quarantine::{BadRecord, Raw, Reason};

/// A record that passed validation: where it goes (partition) and when it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub key: PartitionKey,
    /// Whether the metric is declared (the record gets a typed row).
    pub known: bool,
    pub ts: i64,
}

/// A record's fields resolved against its metric's catalog entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Values {
    /// Non-null typed values, in catalog field order.
    pub typed: Vec<(Arc<str>, TypedValue)>,
    /// Untyped fields, in the order sent.
    pub untyped: Vec<(String, String)>,
    /// Canonical names of fields whose value did not convert to the declared type.
    pub mismatches: Vec<Arc<str>>,
    /// Content hash of the typed and untyped parts.
    pub hash: u64,
}

/// Checks a raw record (tenant, metric, timestamp, names) and finds its partition, or says why
/// it is bad. Field values are resolved later, by [`resolve_fields`], when the partition is
/// merged: that is also how stored records are re-resolved after a catalog change.
pub fn admit(rec: &RawRecord<'_>, catalog: &Catalog) -> Result<Admitted, Box<BadRecord>> {
    let bad = |reason: Reason, message: String, tenant: Option<String>| {
        Box::new(BadRecord {
            reason,
            message,
            position: rec.position,
            tenant,
            raw: Raw::from_bytes(
                raw_text(rec).as_bytes(),
                crate::decode::Limits::default().max_raw_bytes,
            ),
            object_level: false,
        })
    };
    let tenant = match &rec.tenant {
        RawValue::Str(t) if names::valid_tenant(t) => t.as_ref(),
        RawValue::Null => return Err(bad(Reason::MissingField, "missing tenant".into(), None)),
        other => {
            let msg = format!("invalid tenant id {:?}", other.as_text().unwrap_or(""));
            return Err(bad(Reason::BadTenant, msg, None));
        }
    };
    let owner = || Some(tenant.to_string());
    let metric = metric_sent(rec).map_err(|m| bad(Reason::MissingField, m.into(), owner()))?;
    if let Some(p) = names::name_problem(metric) {
        return Err(bad(
            Reason::NameTooLong,
            format!("metric name: {p}"),
            owner(),
        ));
    }
    let ts = match &rec.timestamp {
        RawValue::Null => {
            return Err(bad(
                Reason::MissingField,
                "missing timestamp".into(),
                owner(),
            ))
        }
        v => parse_event_time(v).map_err(|m| bad(Reason::BadTimestamp, m, owner()))?,
    };
    if let Some((name, p)) = rec
        .fields
        .iter()
        .find_map(|(n, _)| names::name_problem(n).map(|p| (n, p)))
    {
        let shown: String = name.chars().take(64).collect();
        return Err(bad(
            Reason::NameTooLong,
            format!("field name {shown:?}: {p}"),
            owner(),
        ));
    }
    let spec = catalog.tenant(tenant).and_then(|t| t.metric(metric));
    Ok(Admitted {
        key: PartitionKey {
            tenant: tenant.to_string(),
            metric: spec.map_or(metric, |m| m.name.as_str()).to_string(),
            day: day_of(ts),
        },
        known: spec.is_some(),
        ts,
    })
}

/// The metric name as sent, when it is a non-empty string.
pub fn metric_sent<'r>(rec: &'r RawRecord<'_>) -> Result<&'r str, &'static str> {
    match &rec.metric {
        RawValue::Str(m) if !m.is_empty() => Ok(m.as_ref()),
        RawValue::Null | RawValue::Str(_) => Err("missing metric"),
        _ => Err("metric is not a string"),
    }
}

/// Resolves a record's fields against its metric (`None`: unknown metric, all untyped).
pub fn resolve_fields(
    fields: &[(Cow<'_, str>, RawValue<'_>)],
    spec: Option<&MetricSpec>,
) -> Values {
    let mut out = Values::default();
    match spec {
        None => {
            for (name, v) in fields {
                if let Some(text) = v.as_text() {
                    out.untyped.push((name.to_string(), text.to_string()));
                }
            }
        }
        Some(spec) => resolve_declared(fields, spec, &mut out),
    }
    out.hash = content_hash(&out.typed, &out.untyped);
    out
}

/// For each declared field: (rank, index into `fields`) of its first non-null source.
pub fn choose_sources(
    fields: &[(Cow<'_, str>, RawValue<'_>)],
    spec: &MetricSpec,
) -> Vec<Option<(usize, usize)>> {
    let mut chosen: Vec<Option<(usize, usize)>> = vec![None; spec.fields.len()];
    for (i, (name, v)) in fields.iter().enumerate() {
        if matches!(v, RawValue::Null) {
            continue;
        }
        if let Some(&(f, rank)) = spec.by_source.get(name.as_ref()) {
            if chosen[f].is_none_or(|(r, _)| rank < r) {
                chosen[f] = Some((rank, i));
            }
        }
    }
    chosen
}

fn resolve_declared(fields: &[(Cow<'_, str>, RawValue<'_>)], spec: &MetricSpec, out: &mut Values) {
    let chosen = choose_sources(fields, spec);
    let mut keep_untyped = vec![false; fields.len()];
    for (f, choice) in chosen.iter().enumerate() {
        let Some((_, i)) = *choice else { continue };
        let field = &spec.fields[f];
        match convert(&fields[i].1, field.ty) {
            Some(v) => out.typed.push((field.name.clone(), v)),
            None => {
                out.mismatches.push(field.name.clone());
                keep_untyped[i] = true;
            }
        }
    }
    for (i, (name, v)) in fields.iter().enumerate() {
        let Some(text) = v.as_text() else { continue };
        let declared = spec.by_source.get(name.as_ref());
        let was_chosen = declared.is_some_and(|&(f, _)| chosen[f].is_some_and(|(_, c)| c == i));
        let untyped = keep_untyped[i]
            || (declared.is_none() && !spec.hidden_sources.contains(name.as_ref()))
            || (declared.is_some() && !was_chosen);
        if untyped {
            out.untyped.push((name.to_string(), text.to_string()));
        }
    }
}

/// The record as compact JSON text, for quarantine lines.
pub fn raw_text(rec: &RawRecord<'_>) -> String {
    fn json(v: &RawValue<'_>) -> serde_json::Value {
        match v {
            RawValue::Null => serde_json::Value::Null,
            RawValue::Bool(b) => serde_json::Value::Bool(*b),
            RawValue::Number(n) => serde_json::from_str(n).unwrap_or_else(|_| n.to_string().into()),
            RawValue::Str(s) => serde_json::Value::String(s.to_string()),
            RawValue::Nested(s) => serde_json::from_str(s).unwrap_or_else(|_| s.to_string().into()),
        }
    }
    let mut m = serde_json::Map::new();
    for (k, v) in [
        ("tenant", &rec.tenant),
        ("metric", &rec.metric),
        ("timestamp", &rec.timestamp),
    ] {
        if !matches!(v, RawValue::Null) {
            m.insert(k.into(), json(v));
        }
    }
    for (k, v) in &rec.fields {
        m.insert(k.to_string(), json(v));
    }
    serde_json::Value::Object(m).to_string()
}
