//! Per-value types ([`PType`]), counts of them ([`TypeCounts`]) and the per-value type checks.

use serde::{Deserialize, Serialize};

use super::OFTEN_FAILS_RATE;
use crate::model::{FieldType, RawValue};
use crate::resolve::convert;

/// The type of one observed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PType {
    Boolean,
    Long,
    Double,
    Timestamp,
    String,
}

impl PType {
    /// The chain, narrowest first.
    pub const CHAIN: [PType; 5] = [
        PType::Boolean,
        PType::Long,
        PType::Double,
        PType::Timestamp,
        PType::String,
    ];

    /// The per-value type of a value; `None` for null.
    pub fn of(v: &RawValue<'_>) -> Option<PType> {
        Some(match v {
            RawValue::Null => return None,
            RawValue::Bool(_) => PType::Boolean,
            RawValue::Nested(_) => PType::String,
            RawValue::Str(s) if is_bool_text(s) => PType::Boolean,
            RawValue::Number(n) if n.parse::<i64>().is_ok() => PType::Long,
            RawValue::Str(s) if s.trim().parse::<i64>().is_ok() => PType::Long,
            _ if convert(v, FieldType::Double).is_some() => PType::Double,
            RawValue::Str(s) if looks_like_timestamp(s) && rfc3339_in_range(s) => PType::Timestamp,
            _ => PType::String,
        })
    }

    /// Whether a value of this type also converts to the wider type `t`.
    pub fn fits(self, t: PType) -> bool {
        self == t
            || t == PType::String
            || (self == PType::Long && matches!(t, PType::Double | PType::Timestamp))
    }

    /// Whether a value of this type converts to the declared type `f` (int and float accept
    /// what long and double accept).
    pub fn converts_to(self, f: FieldType) -> bool {
        use FieldType as F;
        match self {
            PType::Boolean => matches!(f, F::Boolean | F::String),
            PType::Long => f != F::Boolean,
            PType::Double => matches!(f, F::Float | F::Double | F::String),
            PType::Timestamp => matches!(f, F::Timestamp | F::String),
            PType::String => f == F::String,
        }
    }

    /// The catalog type of this type.
    pub fn field_type(self) -> FieldType {
        match self {
            PType::Boolean => FieldType::Boolean,
            PType::Long => FieldType::Long,
            PType::Double => FieldType::Double,
            PType::Timestamp => FieldType::Timestamp,
            PType::String => FieldType::String,
        }
    }

    /// The per-value type of values that converted to a declared type.
    pub fn of_declared(f: FieldType) -> PType {
        match f {
            FieldType::Boolean => PType::Boolean,
            FieldType::Int | FieldType::Long => PType::Long,
            FieldType::Float | FieldType::Double => PType::Double,
            FieldType::Timestamp => PType::Timestamp,
            FieldType::String => PType::String,
        }
    }
}

fn is_bool_text(s: &str) -> bool {
    s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false")
}

/// Latest event time accepted (as in [`crate::resolve::parse_event_time`]).
const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Whether [`crate::resolve::parse_event_time`] accepts a value, without building its error
/// message: integer ms (a number, or a string of digits) or RFC 3339, within
/// 1970-01-01..9999-12-31.
fn event_time_ok(v: &RawValue<'_>) -> bool {
    match v {
        RawValue::Number(n) => n.parse::<i64>().is_ok_and(ms_in_range),
        RawValue::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<i64>().is_ok_and(ms_in_range)
        }
        RawValue::Str(s) => rfc3339_in_range(s),
        _ => false,
    }
}

fn rfc3339_in_range(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok_and(|d| ms_in_range(d.timestamp_millis()))
}

fn ms_in_range(ms: i64) -> bool {
    (0..=MAX_TS_MS).contains(&ms)
}

/// Cheap pre-check before an RFC 3339 parse: four digits and a dash.
fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// Whether a non-null value converts to `ty`, as [`convert`] decides, without allocating
/// (no text for strings, no error message for timestamps).
pub(super) fn converts(v: &RawValue<'_>, ty: FieldType) -> bool {
    match ty {
        FieldType::String => v.as_text().is_some(),
        FieldType::Timestamp => event_time_ok(v),
        _ => convert(v, ty).is_some(),
    }
}

/// Counts of values per type (zeros are not serialized).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TypeCounts {
    #[serde(skip_serializing_if = "is_zero")]
    pub boolean: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub long: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub double: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub timestamp: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub string: u64,
}

impl TypeCounts {
    /// Adds `n` values of type `t`.
    pub fn add(&mut self, t: PType, n: u64) {
        *self.slot(t) += n;
    }

    fn slot(&mut self, t: PType) -> &mut u64 {
        match t {
            PType::Boolean => &mut self.boolean,
            PType::Long => &mut self.long,
            PType::Double => &mut self.double,
            PType::Timestamp => &mut self.timestamp,
            PType::String => &mut self.string,
        }
    }

    /// Values of type `t`.
    pub fn get(&self, t: PType) -> u64 {
        match t {
            PType::Boolean => self.boolean,
            PType::Long => self.long,
            PType::Double => self.double,
            PType::Timestamp => self.timestamp,
            PType::String => self.string,
        }
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &TypeCounts) {
        for t in PType::CHAIN {
            self.add(t, other.get(t));
        }
    }

    /// The types seen at least once.
    pub fn seen(&self) -> impl Iterator<Item = PType> + '_ {
        PType::CHAIN.into_iter().filter(|t| self.get(*t) > 0)
    }

    /// The narrowest type every seen type fits; `string` when nothing was seen.
    pub fn inferred(&self) -> PType {
        if self.seen().next().is_none() {
            return PType::String;
        }
        PType::CHAIN
            .into_iter()
            .find(|t| self.seen().all(|s| s.fits(*t)))
            .unwrap_or(PType::String)
    }

    /// Whether every seen type converts to the declared type `f`.
    pub fn compatible(&self, f: FieldType) -> bool {
        self.seen().all(|t| t.converts_to(f))
    }

    /// Whether the values mostly convert to `f`: some do, and those that do not are rarer than
    /// [`OFTEN_FAILS_RATE`], the rate at which a declared field is proposed for a type change.
    /// Dirty values (`"n/a"` in a numeric field) then stay type mismatches of the alias, as
    /// they are of the field itself, instead of hiding a likely alias.
    pub fn mostly_compatible(&self, f: FieldType) -> bool {
        let total: u64 = PType::CHAIN.iter().map(|t| self.get(*t)).sum();
        let fits: u64 = PType::CHAIN
            .iter()
            .filter(|t| t.converts_to(f))
            .map(|t| self.get(*t))
            .sum();
        fits > 0 && ((total - fits) as f64) < OFTEN_FAILS_RATE * total as f64
    }
}

pub(super) fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::propose::tests::{n, s};
    use std::borrow::Cow;

    #[test]
    fn per_value_types() {
        use PType::*;
        for (v, t) in [
            (RawValue::Bool(false), Some(Boolean)),
            (s("tRuE"), Some(Boolean)),
            (n("12"), Some(Long)),
            (s(" -12 "), Some(Long)),
            (n("12.5"), Some(Double)),
            (n("3.0"), Some(Double)),
            (s("1e3"), Some(Double)),
            (s("NaN"), Some(String)),
            (s("inf"), Some(String)),
            (n("1e400"), Some(String)),
            (s("2026-01-02T03:04:05Z"), Some(Timestamp)),
            (s("2026-01-02T03:04:05.678+01:00"), Some(Timestamp)),
            (s("2026-01-02"), Some(String)),
            (s("1969-12-31T23:59:59Z"), Some(String)),
            (RawValue::Nested(Cow::Borrowed("{}")), Some(String)),
            (RawValue::Null, None),
        ] {
            assert_eq!(PType::of(&v), t, "{v:?}");
        }
    }

    #[test]
    fn converts_agrees_with_convert() {
        let values = [
            n("0"),
            n("-5"),
            n("1767225600000"),
            n("253402300799999"),
            n("253402300800000"),
            n("1.5e12"),
            n("12.0"),
            n("3000000000"),
            n("1e400"),
            s("1767225600000"),
            s(" 17 "),
            s(""),
            s("2026-01-02T03:04:05Z"),
            s("2026-01-02t03:04:05.1+05:30"),
            s("2026-01-02 03:04:05Z"),
            s("1970-01-01T00:00:00+01:00"),
            s("9999-12-31T23:59:59.999Z"),
            s("9999-12-31T23:59:59-01:00"),
            s("2026-02-30T00:00:00Z"),
            s("2026-01-02"),
            s("true"),
            s("NaN"),
            RawValue::Bool(true),
            RawValue::Nested(Cow::Borrowed("[1]")),
        ];
        let types = [
            FieldType::Boolean,
            FieldType::Int,
            FieldType::Long,
            FieldType::Float,
            FieldType::Double,
            FieldType::String,
            FieldType::Timestamp,
        ];
        for v in &values {
            for ty in types {
                assert_eq!(converts(v, ty), convert(v, ty).is_some(), "{v:?} {ty:?}");
            }
        }
    }

    #[test]
    fn lattice() {
        use PType::*;
        let infer = |types: &[PType]| {
            let mut c = TypeCounts::default();
            types.iter().for_each(|t| c.add(*t, 1));
            c.inferred()
        };
        assert_eq!(infer(&[Long, Double]), Double);
        assert_eq!(infer(&[Long, Timestamp]), Timestamp);
        assert_eq!(infer(&[Boolean, Long]), String);
        assert_eq!(infer(&[Double, Timestamp]), String);
        assert_eq!(infer(&[Long]), Long);
        assert_eq!(infer(&[Boolean]), Boolean);
        assert_eq!(infer(&[]), String);
        let mut c = TypeCounts::default();
        c.add(Long, 2);
        assert!(c.compatible(FieldType::Int) && c.compatible(FieldType::Timestamp));
        assert!(!c.compatible(FieldType::Boolean));
        c.add(Double, 1);
        assert!(c.compatible(FieldType::Float) && !c.compatible(FieldType::Long));
    }

    #[test]
    fn mostly_compatible_tolerates_rare_dirty_values_only() {
        use PType::{Double, String};
        let mut c = TypeCounts::default();
        c.add(Double, 95);
        c.add(String, 4);
        assert!(!c.compatible(FieldType::Double));
        assert!(c.mostly_compatible(FieldType::Double), "4% n/a");
        c.add(String, 1);
        assert!(!c.mostly_compatible(FieldType::Double), "5% is often");
        assert!(c.mostly_compatible(FieldType::String));
        let mut words = TypeCounts::default();
        words.add(String, 2);
        assert!(!words.mostly_compatible(FieldType::Double));
        assert!(!TypeCounts::default().mostly_compatible(FieldType::String));
    }
}
