//! Catalog resolution (SPEC 4): metric and field aliases, first-non-null, type conversion;
//! mismatched and unknown values kept untyped under the name they were sent with.

mod convert;
pub mod raw;

use std::borrow::Cow;

pub use convert::{convert, parse_event_time};

use crate::catalog::{Catalog, MetricSpec};
use crate::model::{content_hash, day_of, FastMap, Name, PartitionKey, RawRecord, RawValue};
use crate::names;
use crate::quarantine::{BadRecord, Raw, Reason};

/// A record that passed validation: where it goes (partition) and when it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted<'a> {
    pub tenant: &'a str,
    /// The metric's catalog name, or the name sent when it is not declared.
    pub metric: &'a str,
    pub day: i32,
    /// Whether the metric is declared (the record gets a typed row).
    pub known: bool,
    pub ts: i64,
}

impl Admitted<'_> {
    /// The partition the record goes to.
    pub fn key(&self) -> PartitionKey {
        PartitionKey {
            tenant: self.tenant.to_string(),
            metric: self.metric.to_string(),
            day: self.day,
        }
    }
}

/// A record's fields resolved against its metric's catalog entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Values {
    /// Non-null typed values, in catalog field order.
    pub typed: crate::model::TypedValues,
    /// Untyped fields, in the order sent.
    pub untyped: Vec<(String, String)>,
    /// Canonical names of fields whose value did not convert to the declared type.
    pub mismatches: Vec<Name>,
    /// Content hash of the typed and untyped parts.
    pub hash: u64,
    /// The shape the record was resolved as, when its resolver keeps that shape's plan:
    /// records of one shape are resolved alike, so what is worked out for one holds for all.
    pub shape: Option<ShapeId>,
}

/// Names one record shape of one [`Resolver`] (see [`Values::shape`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeId {
    /// The resolver, unique in the process.
    pub resolver: u64,
    /// The shape, numbered from 0 in the order the resolver met them.
    pub index: usize,
}

/// Checks a raw record (tenant, metric, timestamp, names) and finds its partition, or says why
/// it is bad. Field values are resolved later, by [`resolve_fields`], when the partition is
/// merged: that is also how stored records are re-resolved after a catalog change.
pub fn admit<'a>(
    rec: &'a RawRecord<'_>,
    catalog: &'a Catalog,
) -> Result<Admitted<'a>, Box<BadRecord>> {
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
        tenant,
        metric: spec.map_or(metric, |m| m.name.as_str()),
        day: day_of(ts),
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
    Resolver::new(spec).resolve(fields)
}

/// Resolves the records of one metric. Which source each declared field takes and which
/// fields stay untyped depend only on the record's shape (its field names in order, and which
/// values are null), and a metric's records come in few shapes: each shape is worked out once
/// (a [`Plan`]) and then only its values are converted.
pub struct Resolver<'s> {
    spec: Option<&'s MetricSpec>,
    /// The declared fields' names: every typed value holds one.
    names: Vec<Name>,
    /// Shape -> index into `plans`.
    shapes: FastMap<Box<[u8]>, usize>,
    plans: Vec<Plan>,
    shape: Vec<u8>,
    /// The vector [`Resolver::with_decoded`] decodes each record's fields into.
    fields: raw::RawFields<'static>,
    /// This resolver's [`ShapeId::resolver`].
    id: u64,
}

/// What resolution does with the fields of records of one shape.
struct Plan {
    /// Per declared field that has a source, in catalog order: (field index, its position).
    typed: Vec<(usize, usize)>,
    /// Per position: whether the value is kept untyped (besides a chosen value that does not
    /// convert).
    untyped: Vec<bool>,
    /// The fields' roles, for observers of the records ([`Resolver::roles`]).
    roles: OwnedRoles,
}

/// [`Roles`] as a plan keeps them.
struct OwnedRoles {
    unknown: Vec<usize>,
    chosen: Vec<(usize, usize)>,
}

/// The roles the fields of a record shape play under the catalog (SPEC 4), for what observes
/// records after resolution (schema proposals): worked out once per shape, with its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles<'p> {
    /// Positions of the fields the catalog does not know (neither a source of a declared
    /// field nor hidden), null or not, in the order sent.
    pub unknown: &'p [usize],
    /// (position, declared field index) of each declared field's chosen source (its first
    /// non-null source by rank), in the order sent.
    pub chosen: &'p [(usize, usize)],
}

/// The most shapes a resolver remembers; a record of any further shape is planned on its own.
const MAX_SHAPES: usize = 4096;

impl<'s> Resolver<'s> {
    /// A resolver for the records of the metric `spec` (`None`: unknown metric).
    pub fn new(spec: Option<&'s MetricSpec>) -> Self {
        let names = spec.map_or_else(Vec::new, |s| {
            s.fields.iter().map(|f| Name::new(&f.name)).collect()
        });
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Resolver {
            spec,
            names,
            shapes: FastMap::default(),
            plans: Vec::new(),
            shape: Vec::new(),
            fields: Vec::new(),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Resolves one record's fields.
    pub fn resolve(&mut self, fields: &[(Cow<'_, str>, RawValue<'_>)]) -> Values {
        let mut out = Values::default();
        match self.spec {
            None => {
                for (name, v) in fields {
                    if let Some(text) = v.as_text() {
                        out.untyped.push((name.to_string(), text.to_string()));
                    }
                }
            }
            Some(spec) => {
                shape_of(fields, &mut self.shape);
                let names = &self.names;
                let index = match self.shapes.get(&self.shape[..]) {
                    Some(&i) => Some(i),
                    None if self.plans.len() < MAX_SHAPES => {
                        self.plans.push(Plan::new(fields, spec));
                        let i = self.plans.len() - 1;
                        self.shapes.insert(self.shape.as_slice().into(), i);
                        Some(i)
                    }
                    None => None,
                };
                match index {
                    Some(i) => apply(&self.plans[i], fields, spec, names, &mut out),
                    None => apply(&Plan::new(fields, spec), fields, spec, names, &mut out),
                }
                out.shape = index.map(|index| ShapeId {
                    resolver: self.id,
                    index,
                });
            }
        }
        out.hash = content_hash(&out.typed, &out.untyped);
        out
    }

    /// Decodes the fields as sent in `encoded` ([`raw::encode`]) and passes them to `f` with
    /// the resolver; `None` when the bytes are not such an encoding. The fields go into a
    /// vector kept from record to record, not a new one each.
    pub fn with_decoded<T>(
        &mut self,
        encoded: &[u8],
        f: impl FnOnce(&mut Self, &raw::RawFields<'_>) -> T,
    ) -> Option<T> {
        let mut fields = raw::recycle(std::mem::take(&mut self.fields));
        let out = raw::decode_into(encoded, &mut fields).map(|()| f(self, &fields));
        self.fields = raw::recycle(fields);
        out
    }

    /// The roles of the fields of `shape`, when it is one of this resolver's.
    pub fn roles(&self, shape: ShapeId) -> Option<Roles<'_>> {
        let plan = self
            .plans
            .get(shape.index)
            .filter(|_| shape.resolver == self.id)?;
        Some(Roles {
            unknown: &plan.roles.unknown,
            chosen: &plan.roles.chosen,
        })
    }
}

/// A record's shape: each field's name (length-prefixed) and whether its value is null.
fn shape_of(fields: &[(Cow<'_, str>, RawValue<'_>)], out: &mut Vec<u8>) {
    out.clear();
    for (name, v) in fields {
        raw::put_str(out, name);
        out.push(matches!(v, RawValue::Null) as u8);
    }
}

impl Plan {
    /// Looks each name up once: which declared field it is a source of (and at which rank),
    /// else whether it is hidden or unknown.
    fn new(fields: &[(Cow<'_, str>, RawValue<'_>)], spec: &MetricSpec) -> Self {
        let sources: Vec<Option<(usize, usize)>> = fields
            .iter()
            .map(|(name, _)| spec.by_source.get(name.as_ref()).copied())
            .collect();
        let mut chosen: Vec<Option<(usize, usize)>> = vec![None; spec.fields.len()];
        for (i, (src, (_, v))) in sources.iter().zip(fields).enumerate() {
            let Some((f, rank)) = *src else { continue };
            if !matches!(v, RawValue::Null) && chosen[f].is_none_or(|(r, _)| rank < r) {
                chosen[f] = Some((rank, i));
            }
        }
        let mut unknown = Vec::new();
        let mut untyped = Vec::with_capacity(fields.len());
        for (i, (src, (name, v))) in sources.iter().zip(fields).enumerate() {
            let kept = match src {
                Some((f, _)) => chosen[*f].is_none_or(|(_, c)| c != i),
                None if spec.hidden_sources.contains(name.as_ref()) => false,
                None => {
                    unknown.push(i);
                    true
                }
            };
            untyped.push(kept && !matches!(v, RawValue::Null));
        }
        let typed = chosen
            .iter()
            .enumerate()
            .filter_map(|(f, c)| c.map(|(_, i)| (f, i)))
            .collect();
        let mut by_position: Vec<(usize, usize)> = chosen
            .iter()
            .enumerate()
            .filter_map(|(f, c)| c.map(|(_, i)| (i, f)))
            .collect();
        by_position.sort_unstable();
        Plan {
            typed,
            untyped,
            roles: OwnedRoles {
                unknown,
                chosen: by_position,
            },
        }
    }
}

/// Resolves `fields` as `plan` says: the chosen sources converted to their declared types
/// (a value that does not convert is a mismatch and stays untyped), then the untyped fields
/// in the order sent. `names`: the declared fields' names.
fn apply(
    plan: &Plan,
    fields: &[(Cow<'_, str>, RawValue<'_>)],
    spec: &MetricSpec,
    names: &[Name],
    out: &mut Values,
) {
    out.typed.reserve_exact(plan.typed.len());
    let mut failed: Vec<usize> = Vec::new();
    for &(f, i) in &plan.typed {
        match convert(&fields[i].1, spec.fields[f].ty) {
            Some(v) => out.typed.push((names[f], v)),
            None => {
                out.mismatches.push(names[f]);
                failed.push(i);
            }
        }
    }
    for (i, (name, v)) in fields.iter().enumerate() {
        if plan.untyped[i] || failed.contains(&i) {
            if let Some(text) = v.as_text() {
                out.untyped.push((name.to_string(), text.to_string()));
            }
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

    /// Resolution as SPEC 4 states it, record by record: per declared field, its first
    /// non-null source by rank, converted or else a mismatch kept untyped; every other
    /// non-null field untyped unless hidden.
    fn oracle(fields: &[(Cow<'_, str>, RawValue<'_>)], spec: &MetricSpec) -> Values {
        let mut out = Values::default();
        let mut untyped = vec![false; fields.len()];
        for (f, field) in spec.fields.iter().enumerate() {
            let first = fields
                .iter()
                .enumerate()
                .filter(|(_, (n, v))| {
                    !matches!(v, RawValue::Null)
                        && spec.by_source.get(n.as_ref()).is_some_and(|&(g, _)| g == f)
                })
                .min_by_key(|(i, (n, _))| (spec.by_source[n.as_ref()].1, *i));
            let Some((i, (_, v))) = first else { continue };
            match convert(v, field.ty) {
                Some(t) => out.typed.push((Name::new(&field.name), t)),
                None => {
                    out.mismatches.push(Name::new(&field.name));
                    untyped[i] = true;
                }
            }
            for (j, (n, _)) in fields.iter().enumerate() {
                let other = j != i && spec.by_source.get(n.as_ref()).is_some_and(|&(g, _)| g == f);
                untyped[j] |= other;
            }
        }
        for (i, (n, v)) in fields.iter().enumerate() {
            let unknown = !spec.by_source.contains_key(n.as_ref())
                && !spec.hidden_sources.contains(n.as_ref());
            if let (true, Some(text)) = (untyped[i] || unknown, v.as_text()) {
                out.untyped.push((n.to_string(), text.to_string()));
            }
        }
        out.hash = content_hash(&out.typed, &out.untyped);
        out
    }

    /// [`Roles`] as SPEC 4 states them: unknown fields are neither a declared field's source
    /// nor hidden; a declared field's chosen source is its first non-null one by rank.
    #[allow(clippy::type_complexity)]
    fn roles_oracle(
        fields: &[(Cow<'_, str>, RawValue<'_>)],
        spec: &MetricSpec,
    ) -> (Vec<usize>, Vec<(usize, usize)>) {
        let unknown: Vec<usize> = (0..fields.len())
            .filter(|&i| {
                let n = fields[i].0.as_ref();
                !spec.by_source.contains_key(n) && !spec.hidden_sources.contains(n)
            })
            .collect();
        let mut chosen: Vec<(usize, usize)> = (0..spec.fields.len())
            .filter_map(|f| {
                (0..fields.len())
                    .filter(|&i| {
                        let (n, v) = &fields[i];
                        !matches!(v, RawValue::Null)
                            && spec.by_source.get(n.as_ref()).is_some_and(|&(g, _)| g == f)
                    })
                    .min_by_key(|&i| (spec.by_source[fields[i].0.as_ref()].1, i))
                    .map(|i| (i, f))
            })
            .collect();
        chosen.sort_unstable();
        (unknown, chosen)
    }

    #[test]
    fn one_resolver_resolves_every_shape_as_each_record_alone() {
        let doc = r#"{"tenant":"t","metrics":{"m":{"fields":{
            "a":{"type":"long","aliases":["a1","a2"]},"b":{"type":"double"},
            "s":{"type":"string"},"h":{"type":"long"}},"hidden":["h"]}}}"#;
        let cat = crate::catalog::TenantCatalog::new(serde_json::from_str(doc).unwrap()).unwrap();
        let spec = cat.metric("m").unwrap();
        let names = ["a", "a1", "a2", "b", "s", "h", "x", "y"];
        let values = [
            RawValue::Null,
            RawValue::Number("7".into()),
            RawValue::Number("2.5".into()),
            RawValue::Str("q".into()),
            RawValue::Str("12".into()),
            RawValue::Bool(true),
        ];
        let mut resolver = Resolver::new(Some(spec));
        let mut next = crate::model::picker(7);
        for _ in 0..3000 {
            // Few names, so shapes repeat with other values (some that do not convert).
            let fields: Vec<(Cow<'_, str>, RawValue<'_>)> = (0..next(6))
                .map(|_| {
                    (
                        names[next(names.len())].into(),
                        values[next(values.len())].clone(),
                    )
                })
                .collect();
            let want = oracle(&fields, spec);
            let unshaped = |v: Values| Values { shape: None, ..v };
            let got = resolver.resolve(&fields);
            let shape = got.shape.expect("fewer shapes than the limit");
            assert_eq!(shape.resolver, resolver.id);
            let again = resolver.resolve(&fields);
            assert_eq!(again.shape, Some(shape), "one shape, one id");
            assert_eq!(unshaped(got), want, "{fields:?}");
            assert_eq!(unshaped(resolve_fields(&fields, Some(spec))), want);
            let roles = resolver.roles(shape).expect("its own shape");
            let roles = (roles.unknown.to_vec(), roles.chosen.to_vec());
            assert_eq!(roles, roles_oracle(&fields, spec), "{fields:?}");
        }
        let other = Resolver::new(Some(spec));
        let shape = ShapeId {
            resolver: resolver.id,
            index: 0,
        };
        assert_eq!(other.roles(shape), None, "another resolver's shape");
        assert!(resolver.plans.len() < 3000, "shapes were planned once");
        assert_eq!(resolver.plans.len(), resolver.shapes.len());
        assert_ne!(Resolver::new(Some(spec)).id, resolver.id, "ids are unique");
    }

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
