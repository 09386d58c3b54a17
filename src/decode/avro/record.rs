//! An Avro record value turned into a raw record: tenant, metric, timestamp and fields, with a
//! `fields` / `unknown_fields` map expanded into fields.

use std::borrow::Cow;

use apache_avro::types::Value;

use crate::model::{Position, RawRecord, RawValue};
use crate::quarantine::Reason;

pub(super) type Bad = (Reason, String, String);

pub(super) fn record(value: Value, position: Position) -> Result<RawRecord<'static>, Bad> {
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
    check_names(rec)
}

/// A map key may repeat a top-level field or name a reserved one: ambiguous, like a JSON
/// object with a key twice.
pub(super) fn check_names(rec: RawRecord<'_>) -> Result<RawRecord<'_>, Bad> {
    let reserved = |k: &str| matches!(k, "tenant" | "metric" | "timestamp");
    match crate::decode::json::first_key_that(&rec.fields, reserved) {
        Some(name) => {
            let msg = format!("field {name:?} appears twice (or repeats a reserved name)");
            Err((Reason::DuplicateKey, msg, crate::resolve::raw_text(&rec)))
        }
        None => Ok(rec),
    }
}

pub(super) fn unwrap_union(v: Value) -> Value {
    match v {
        Value::Union(_, inner) => unwrap_union(*inner),
        v => v,
    }
}

pub(super) fn is_map(v: &Value) -> bool {
    match v {
        Value::Map(_) => true,
        Value::Union(_, inner) => is_map(inner),
        _ => false,
    }
}

pub(super) fn expand_map(v: Value, out: &mut Vec<(Cow<'static, str>, RawValue<'static>)>) {
    if let Value::Map(map) = unwrap_union(v) {
        let mut entries: Vec<_> = map.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in entries {
            out.push((Cow::Owned(k), scalar(v)));
        }
    }
}

/// Timestamps: long / timestamp-millis as ms, timestamp-micros and -nanos scaled down.
pub(super) fn timestamp(v: Value) -> RawValue<'static> {
    match unwrap_union(v) {
        Value::TimestampMicros(us) | Value::LocalTimestampMicros(us) => {
            int_text(us.div_euclid(1000))
        }
        Value::TimestampNanos(ns) | Value::LocalTimestampNanos(ns) => {
            int_text(ns.div_euclid(1_000_000))
        }
        v => scalar(v),
    }
}

pub(super) fn scalar(v: Value) -> RawValue<'static> {
    match unwrap_union(v) {
        Value::Null => RawValue::Null,
        Value::Boolean(b) => RawValue::Bool(b),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => int_text(i.into()),
        Value::Long(i)
        | Value::TimeMicros(i)
        | Value::TimestampMillis(i)
        | Value::TimestampMicros(i)
        | Value::TimestampNanos(i)
        | Value::LocalTimestampMillis(i)
        | Value::LocalTimestampMicros(i)
        | Value::LocalTimestampNanos(i) => int_text(i),
        Value::Float(f) => float_text(f as f64),
        Value::Double(f) => float_text(f),
        Value::String(s) | Value::Enum(_, s) => RawValue::Str(Cow::Owned(s)),
        Value::Uuid(u) => RawValue::Str(Cow::Owned(u.to_string())),
        other => RawValue::Nested(Cow::Owned(to_json_text(other))),
    }
}

/// An integer in JSON form.
pub(super) fn int_text(i: i64) -> RawValue<'static> {
    int_into(String::new(), i)
}

/// [`int_text`] written into `text` (cleared first), reusing its memory.
pub(super) fn int_into(mut text: String, i: i64) -> RawValue<'static> {
    text.clear();
    text.push_str(itoa::Buffer::new().format(i));
    RawValue::Number(Cow::Owned(text))
}

/// Floats in JSON form (as serde_json writes them); non-finite values (not JSON numbers)
/// travel as strings.
pub(super) fn float_text(f: f64) -> RawValue<'static> {
    float_into(String::new(), f)
}

/// [`float_text`] written into `text` (cleared first) when it is a number, reusing its memory.
pub(super) fn float_into(mut text: String, f: f64) -> RawValue<'static> {
    if !f.is_finite() {
        return RawValue::Str(Cow::Owned(f.to_string()));
    }
    text.clear();
    text.push_str(zmij::Buffer::new().format_finite(f));
    RawValue::Number(Cow::Owned(text))
}

pub(super) fn to_json_text(v: Value) -> String {
    match serde_json::Value::try_from(v) {
        Ok(j) => j.to_string(),
        Err(e) => format!("<unrepresentable Avro value: {e}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(names: &[String]) -> Result<(), String> {
        let mut rec = RawRecord::empty(names.len(), Position::default());
        rec.fields = names
            .iter()
            .map(|n| (Cow::Owned(n.clone()), RawValue::Null))
            .collect();
        check_names(rec).map(|_| ()).map_err(|(reason, msg, _)| {
            assert_eq!(reason, Reason::DuplicateKey);
            msg
        })
    }

    #[test]
    fn the_first_repeated_or_reserved_name_is_named() {
        let names = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(named(&names("a b c")), Ok(()));
        let first = |s: &str| named(&names(s)).unwrap_err();
        assert!(first("a b a tenant").starts_with("field \"a\" appears twice"));
        assert!(first("x timestamp x").starts_with("field \"timestamp\""));
        assert!(first("metric").starts_with("field \"metric\""));
        // Past 16 names, through a set.
        let mut many: Vec<String> = (0..30).map(|i| format!("f{i}")).collect();
        assert_eq!(named(&many), Ok(()));
        many.push("f7".into());
        many.push("tenant".into());
        assert!(named(&many).unwrap_err().starts_with("field \"f7\""));
    }
}
