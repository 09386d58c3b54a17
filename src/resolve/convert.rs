//! Value conversion to declared types, and event-time parsing.

use crate::model::{FieldType, RawValue, TypedValue};

/// Latest event time accepted: 9999-12-31T23:59:59.999Z.
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Parses a record's `timestamp`: integer ms, a string of digits, or RFC 3339.
pub fn parse_event_time(v: &RawValue<'_>) -> Result<i64, String> {
    let ms = match v {
        RawValue::Number(n) => n
            .parse::<i64>()
            .map_err(|_| format!("timestamp {n} is not an integer number of milliseconds"))?,
        RawValue::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse::<i64>()
            .map_err(|_| format!("timestamp {s:?} is out of range"))?,
        RawValue::Str(s) => rfc3339_ms(s)
            .ok_or_else(|| format!("timestamp {s:?} is neither epoch ms nor RFC 3339"))?,
        other => return Err(format!("timestamp {other:?} is not a number or string")),
    };
    if !(0..=MAX_TS_MS).contains(&ms) {
        return Err(format!("timestamp {ms} is outside 1970-01-01..9999-12-31"));
    }
    Ok(ms)
}

fn rfc3339_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// Converts a non-null value to `ty`; `None` when it does not fit (a type mismatch).
pub fn convert(v: &RawValue<'_>, ty: FieldType) -> Option<TypedValue> {
    match ty {
        FieldType::Boolean => match v {
            RawValue::Bool(b) => Some(TypedValue::Bool(*b)),
            RawValue::Str(s) if s.eq_ignore_ascii_case("true") => Some(TypedValue::Bool(true)),
            RawValue::Str(s) if s.eq_ignore_ascii_case("false") => Some(TypedValue::Bool(false)),
            _ => None,
        },
        FieldType::Int => integer(v)
            .filter(|i| i32::try_from(*i).is_ok())
            .map(TypedValue::Int),
        FieldType::Long => integer(v).map(TypedValue::Int),
        FieldType::Float => float(v)
            .filter(|f| (*f as f32).is_finite())
            .map(|f| TypedValue::Float(f as f32 as f64)),
        FieldType::Double => float(v).map(TypedValue::Float),
        FieldType::String => v.as_text().map(|s| TypedValue::Str(s.to_string())),
        FieldType::Timestamp => match v {
            RawValue::Number(_) => parse_event_time(v).ok().map(TypedValue::Int),
            RawValue::Str(_) => parse_event_time(v).ok().map(TypedValue::Int),
            _ => None,
        },
    }
}

fn number_text<'a>(v: &'a RawValue<'_>) -> Option<&'a str> {
    match v {
        RawValue::Number(n) => Some(n),
        RawValue::Str(s) => Some(s.trim()),
        _ => None,
    }
}

/// Integers from integer text, or from integral finite floats (`3.0`).
fn integer(v: &RawValue<'_>) -> Option<i64> {
    let s = number_text(v)?;
    if let Ok(i) = s.parse::<i64>() {
        return Some(i);
    }
    let f = float(v)?;
    (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
}

/// Finite floats from number text; `NaN`/`inf` strings are mismatches. (Rust's float
/// grammar is the decimal one plus `inf`, `infinity` and `nan`: whatever else it accepts is
/// digits, signs, a point and an exponent, so the finiteness check is the only filter needed.)
fn float(v: &RawValue<'_>) -> Option<f64> {
    number_text(v)?
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn n(s: &str) -> RawValue<'_> {
        RawValue::Number(Cow::Borrowed(s))
    }
    fn s(s: &str) -> RawValue<'_> {
        RawValue::Str(Cow::Borrowed(s))
    }

    #[test]
    fn conversions() {
        assert_eq!(
            convert(&s("TRUE"), FieldType::Boolean),
            Some(TypedValue::Bool(true))
        );
        assert_eq!(convert(&n("1"), FieldType::Boolean), None);
        assert_eq!(
            convert(&s(" 42 "), FieldType::Long),
            Some(TypedValue::Int(42))
        );
        assert_eq!(
            convert(&n("3.0"), FieldType::Long),
            Some(TypedValue::Int(3))
        );
        assert_eq!(convert(&n("3.5"), FieldType::Long), None);
        assert_eq!(convert(&n("3000000000"), FieldType::Int), None);
        for not_a_number in [
            "NaN",
            "-nan",
            "inf",
            "+Infinity",
            "1_000",
            "0x1A",
            "1,5",
            "",
            "e5",
        ] {
            assert_eq!(
                convert(&s(not_a_number), FieldType::Double),
                None,
                "{not_a_number}"
            );
            assert_eq!(
                convert(&s(not_a_number), FieldType::Long),
                None,
                "{not_a_number}"
            );
        }
        assert_eq!(
            convert(&s("+.5e1"), FieldType::Double),
            Some(TypedValue::Float(5.0))
        );
        assert_eq!(
            convert(&s("1e3"), FieldType::Double),
            Some(TypedValue::Float(1000.0))
        );
        assert_eq!(
            convert(&n("12"), FieldType::String),
            Some(TypedValue::Str("12".into()))
        );
        assert_eq!(
            convert(&s("2026-01-01T00:00:01Z"), FieldType::Timestamp),
            Some(TypedValue::Int(1_767_225_601_000))
        );
        assert_eq!(convert(&RawValue::Bool(true), FieldType::Timestamp), None);
    }

    #[test]
    fn event_times() {
        assert_eq!(parse_event_time(&n("1767225600000")), Ok(1_767_225_600_000));
        assert_eq!(parse_event_time(&s("1767225600000")), Ok(1_767_225_600_000));
        assert_eq!(
            parse_event_time(&s("2026-01-01T01:00:00+01:00")),
            Ok(1_767_225_600_000)
        );
        assert!(parse_event_time(&n("-5")).is_err());
        assert!(parse_event_time(&n("1.5e12")).is_err());
        assert!(parse_event_time(&s("yesterday")).is_err());
        assert!(parse_event_time(&n("99999999999999999")).is_err());
    }
}
