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
    let max_raw = crate::decode::Limits::default().max_raw_bytes;
    let bad = |reason: Reason, message: String, tenant: Option<String>| {
        Box::new(BadRecord {
            reason,
            message,
            position: rec.position,
            tenant,
            raw: match rec.sent {
                [] => Raw::from_bytes(raw_text(rec).as_bytes(), max_raw),
                sent => Raw::from_bytes(sent, max_raw),
            },
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
    out.typed.reserve_exact(spec.fields.len());
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

/// The record as compact JSON text, for quarantine lines: tenant, metric and timestamp first,
/// then the fields in the order sent (a repeated name stays repeated). Numbers and nested
/// values are written exactly as received, so a big integer or an exponent is not rounded
/// through a double on its way to quarantine.
pub fn raw_text(rec: &RawRecord<'_>) -> String {
    fn is_json(text: &str) -> bool {
        serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    }
    fn quoted(out: &mut String, s: &str) {
        out.push_str(&serde_json::to_string(s).expect("a string serializes"));
    }
    let mut out = String::from("{");
    let reserved = [
        ("tenant", &rec.tenant),
        ("metric", &rec.metric),
        ("timestamp", &rec.timestamp),
    ];
    let pairs = reserved
        .into_iter()
        .filter(|(_, v)| !matches!(v, RawValue::Null))
        .chain(rec.fields.iter().map(|(k, v)| (k.as_ref(), v)));
    for (i, (k, v)) in pairs.enumerate() {
        if i > 0 {
            out.push(',');
        }
        quoted(&mut out, k);
        out.push(':');
        match v {
            RawValue::Null => out.push_str("null"),
            RawValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            RawValue::Number(n) | RawValue::Nested(n) if is_json(n) => out.push_str(n),
            RawValue::Number(s) | RawValue::Nested(s) | RawValue::Str(s) => quoted(&mut out, s),
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Position;

    #[test]
    fn raw_text_keeps_numbers_and_order_as_sent() {
        // Sent as {"metric":"m","tenant":"t1","timestamp":99999999999999999999,...}.
        let mut rec = RawRecord::empty(0, Position::default());
        rec.metric = RawValue::Str("m".into());
        rec.tenant = RawValue::Str("t1".into());
        rec.timestamp = RawValue::Number("99999999999999999999".into());
        for (k, v) in [
            ("big", RawValue::Number("12345678901234567890123".into())),
            ("e", RawValue::Number("1.5e12".into())),
            ("n", RawValue::Nested(r#"{"a":[1,2.50]}"#.into())),
            ("s", RawValue::Str("q\"x".into())),
            ("b", RawValue::Bool(true)),
            ("z", RawValue::Null),
            ("big", RawValue::Number("1".into())),
            ("u", RawValue::Nested("<unrepresentable Avro value>".into())),
        ] {
            rec.fields.push((k.into(), v));
        }
        assert_eq!(
            raw_text(&rec),
            r#"{"tenant":"t1","metric":"m","timestamp":99999999999999999999,"big":12345678901234567890123,"e":1.5e12,"n":{"a":[1,2.50]},"s":"q\"x","b":true,"z":null,"big":1,"u":"<unrepresentable Avro value>"}"#
        );
    }

    #[test]
    fn a_refused_json_line_is_quarantined_as_sent() {
        let catalog = Catalog::default();
        for line in [
            &br#"{"tenant":"../x", "metric":"m","timestamp":1,"big":123456789012345678901234}"#[..],
            br#"{ "timestamp" : 99999999999999999999 ,"tenant":"t1","metric":"m"}"#,
            br#"{"tenant":"t1","metric":"m","timestamp":null,"v":1.50}"#,
        ] {
            let rec = crate::decode::parse_line(line, Position::default()).unwrap();
            let bad = admit(&rec, &catalog).unwrap_err();
            assert_eq!(
                bad.raw,
                Raw::Text(String::from_utf8(line.to_vec()).unwrap())
            );
        }
    }
}
