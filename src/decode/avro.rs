//! Avro object container files (any codec apache-avro knows): records with tenant, metric,
//! timestamp and fields, a `fields` / `unknown_fields` map expanded into fields.

use std::borrow::Cow;

use apache_avro::types::Value;

use super::{Limits, RecordSink};
use crate::model::{Position, RawRecord, RawValue};
use crate::quarantine::{BadRecord, Raw, Reason};

/// Decodes an Avro container; records before any damage are kept.
pub fn decode(bytes: &[u8], limits: &Limits, sink: &mut dyn RecordSink) {
    let reader = match apache_avro::Reader::new(bytes) {
        Ok(r) => r,
        Err(e) => {
            let reason = if is_truncation(&e) {
                Reason::TruncatedObject
            } else {
                Reason::CorruptObject
            };
            sink.bad(object_damage(
                reason,
                format!("unreadable Avro header: {e}"),
                0,
                bytes,
                limits,
            ));
            return;
        }
    };
    let mut ordinal = 0u64;
    for item in reader {
        match item {
            Ok(value) => {
                let position = Position {
                    record: ordinal,
                    ..Default::default()
                };
                ordinal += 1;
                match record(value, position) {
                    Ok(rec) => sink.record(rec),
                    Err((reason, message, raw)) => sink.bad(BadRecord {
                        reason,
                        message,
                        position,
                        tenant: None,
                        raw: Raw::from_bytes(raw.as_bytes(), limits.max_raw_bytes),
                        object_level: false,
                    }),
                }
            }
            Err(e) => {
                let reason = if is_truncation(&e) {
                    Reason::TruncatedObject
                } else {
                    Reason::CorruptObject
                };
                let msg = format!("Avro data damaged after record {ordinal}: {e}");
                sink.bad(object_damage(reason, msg, ordinal, &[], limits));
                return;
            }
        }
    }
}

fn is_truncation(e: &apache_avro::Error) -> bool {
    let text = format!("{e:?} {e}");
    text.contains("UnexpectedEof") || text.contains("failed to fill whole buffer")
}

fn object_damage(
    reason: Reason,
    message: String,
    ordinal: u64,
    raw: &[u8],
    limits: &Limits,
) -> BadRecord {
    BadRecord {
        reason,
        message,
        position: Position {
            record: ordinal,
            ..Default::default()
        },
        tenant: None,
        raw: if raw.is_empty() {
            Raw::None
        } else {
            Raw::from_bytes(raw, limits.max_raw_bytes)
        },
        object_level: true,
    }
}

type Bad = (Reason, String, String);

fn record(value: Value, position: Position) -> Result<RawRecord<'static>, Bad> {
    let Value::Record(pairs) = value else {
        let raw = to_json_text(value);
        return Err((
            Reason::MissingField,
            "top-level Avro value is not a record".into(),
            raw,
        ));
    };
    let mut rec = RawRecord::empty(pairs.len(), position);
    for (name, v) in pairs {
        match name.as_str() {
            "tenant" => rec.tenant = scalar(v),
            "metric" => rec.metric = scalar(v),
            "timestamp" => rec.timestamp = timestamp(v),
            "fields" | "unknown_fields" if is_map(&v) => expand_map(v, &mut rec.fields),
            _ => rec.fields.push((Cow::Owned(name), scalar(v))),
        }
    }
    // A map key may repeat a top-level field or name a reserved one: ambiguous, like a JSON
    // object with a key twice.
    let mut seen = std::collections::HashSet::with_capacity(rec.fields.len());
    for (name, _) in &rec.fields {
        let reserved = matches!(name.as_ref(), "tenant" | "metric" | "timestamp");
        if reserved || !seen.insert(name.as_ref()) {
            let msg = format!("field {name:?} appears twice (or repeats a reserved name)");
            return Err((Reason::DuplicateKey, msg, crate::resolve::raw_text(&rec)));
        }
    }
    Ok(rec)
}

fn unwrap_union(v: Value) -> Value {
    match v {
        Value::Union(_, inner) => unwrap_union(*inner),
        v => v,
    }
}

fn is_map(v: &Value) -> bool {
    match v {
        Value::Map(_) => true,
        Value::Union(_, inner) => is_map(inner),
        _ => false,
    }
}

fn expand_map(v: Value, out: &mut Vec<(Cow<'static, str>, RawValue<'static>)>) {
    if let Value::Map(map) = unwrap_union(v) {
        let mut entries: Vec<_> = map.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in entries {
            out.push((Cow::Owned(k), scalar(v)));
        }
    }
}

/// Timestamps: long / timestamp-millis as ms, timestamp-micros and -nanos scaled down.
fn timestamp(v: Value) -> RawValue<'static> {
    match unwrap_union(v) {
        Value::TimestampMicros(us) | Value::LocalTimestampMicros(us) => {
            RawValue::Number(Cow::Owned(us.div_euclid(1000).to_string()))
        }
        Value::TimestampNanos(ns) | Value::LocalTimestampNanos(ns) => {
            RawValue::Number(Cow::Owned(ns.div_euclid(1_000_000).to_string()))
        }
        v => scalar(v),
    }
}

fn scalar(v: Value) -> RawValue<'static> {
    let num = |s: String| RawValue::Number(Cow::Owned(s));
    match unwrap_union(v) {
        Value::Null => RawValue::Null,
        Value::Boolean(b) => RawValue::Bool(b),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => num(i.to_string()),
        Value::Long(i)
        | Value::TimeMicros(i)
        | Value::TimestampMillis(i)
        | Value::TimestampMicros(i)
        | Value::TimestampNanos(i)
        | Value::LocalTimestampMillis(i)
        | Value::LocalTimestampMicros(i)
        | Value::LocalTimestampNanos(i) => num(i.to_string()),
        Value::Float(f) => float_text(f as f64),
        Value::Double(f) => float_text(f),
        Value::String(s) | Value::Enum(_, s) => RawValue::Str(Cow::Owned(s)),
        Value::Uuid(u) => RawValue::Str(Cow::Owned(u.to_string())),
        other => RawValue::Nested(Cow::Owned(to_json_text(other))),
    }
}

/// Floats in JSON form; non-finite values (not JSON numbers) travel as strings.
fn float_text(f: f64) -> RawValue<'static> {
    if f.is_finite() {
        RawValue::Number(Cow::Owned(
            serde_json::Number::from_f64(f).expect("finite").to_string(),
        ))
    } else {
        RawValue::Str(Cow::Owned(f.to_string()))
    }
}

fn to_json_text(v: Value) -> String {
    match serde_json::Value::try_from(v) {
        Ok(j) => j.to_string(),
        Err(e) => format!("<unrepresentable Avro value: {e}>"),
    }
}
