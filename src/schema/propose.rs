//! Schema proposals: per tenant and metric, statistics of unknown fields and metrics and of declared fields that fail their type, merged across runs, with suggestions.
//!
//! Compaction feeds every record through [`observe_record`] into one [`MetricObs`] per
//! (tenant, partition metric); at commit, [`ProposalDoc::merge_run`] folds a run's
//! observations into the tenant's stored document (`<lake>/_proposals/<tenant>.json`) and
//! recomputes every suggestion under that run's catalog.
//!
//! Per-value types ([`PType`]) form the chain boolean < long < double < timestamp < string; a
//! field's inferred type is the narrowest type of the chain every observed per-value type
//! fits ([`PType::fits`], which follows [`crate::resolve::convert`]). A field that only ever
//! held nulls is inferred `string`: there is no evidence, and every value fits string.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::catalog::{MetricSpec, TenantCatalog};
use crate::error::{Error, Result};
use crate::model::{FastMap, FieldType, RawValue};
use crate::resolve::convert;
use crate::schema::similar::likely_variant;
use crate::storage::Location;

/// Distinct sample values kept per field.
pub const MAX_SAMPLES: usize = 5;

/// A declared field "often fails" its type when at least one value failed and at least this
/// share of its non-null values failed; below it the type change is not proposed (and a
/// stored one is dropped).
pub const OFTEN_FAILS_RATE: f64 = 0.05;

/// Characters Delta Lake forbids in column names (the catalog's rule, see `catalog.rs`).
const FORBIDDEN_COLUMN_CHARS: &[char] = &[' ', ',', ';', '{', '}', '(', ')', '\n', '\t', '='];

/// Longest canonical metric name the catalog accepts.
const MAX_TABLE_NAME: usize = 128;

// ---------------------------------------------------------------------------------------------
// Per-value types

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

fn is_zero(n: &u64) -> bool {
    *n == 0
}

// ---------------------------------------------------------------------------------------------
// One run's observations

/// Event-time range, ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    first: i64,
    last: i64,
}

fn widen(seen: &mut Option<Seen>, ts: i64) {
    match seen {
        Some(s) => {
            s.first = s.first.min(ts);
            s.last = s.last.max(ts);
        }
        None => {
            *seen = Some(Seen {
                first: ts,
                last: ts,
            })
        }
    }
}

fn union(seen: &mut Option<Seen>, other: Option<Seen>) {
    if let Some(o) = other {
        widen(seen, o.first);
        widen(seen, o.last);
    }
}

/// Statistics of one field's values (or of one declared field's failing values).
#[derive(Clone, Debug, Default, PartialEq)]
struct FieldObs {
    count: u64,
    nulls: u64,
    seen: Option<Seen>,
    types: TypeCounts,
    samples: Vec<String>,
}

impl FieldObs {
    fn observe(&mut self, v: &RawValue<'_>, ts: i64) {
        widen(&mut self.seen, ts);
        let Some(t) = PType::of(v) else {
            self.nulls += 1;
            return;
        };
        self.count += 1;
        self.types.add(t, 1);
        if let Some(text) = v.as_text() {
            add_sample(&mut self.samples, text);
        }
    }

    fn merge(&mut self, other: FieldObs) {
        self.count += other.count;
        self.nulls += other.nulls;
        union(&mut self.seen, other.seen);
        self.types.merge(&other.types);
        for s in other.samples {
            push_sample(&mut self.samples, s);
        }
    }
}

/// Keeps `text` when fewer than [`MAX_SAMPLES`] are kept and it is new (allocates only then).
fn add_sample(samples: &mut Vec<String>, text: &str) {
    if samples.len() < MAX_SAMPLES && !samples.iter().any(|s| s == text) {
        samples.push(text.to_string());
    }
}

fn push_sample(samples: &mut Vec<String>, text: String) {
    if samples.len() < MAX_SAMPLES && !samples.contains(&text) {
        samples.push(text);
    }
}

/// A declared field: values that converted, and statistics of those that did not.
#[derive(Clone, Debug, PartialEq)]
struct DeclObs {
    declared: FieldType,
    ok: u64,
    failures: FieldObs,
}

impl DeclObs {
    fn new(declared: FieldType) -> Self {
        DeclObs {
            declared,
            ok: 0,
            failures: FieldObs::default(),
        }
    }

    fn merge(&mut self, other: DeclObs) {
        if self.declared != other.declared {
            // The later catalog wins; counts under another type do not add up.
            *self = other;
            return;
        }
        self.ok += other.ok;
        self.failures.merge(other.failures);
    }
}

/// What a field name of a record is, under the spec a [`MetricObs`] observes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// An unknown field: index into [`MetricObs::fields`].
    Unknown(usize),
    /// A declared source: spec field index and priority rank.
    Declared(usize, usize),
    /// A source of a hidden field: ignored.
    Hidden,
}

/// Identifies the spec cached roles were computed under (one run's catalog lives as long as
/// its accumulators, so its address and field table identify it); all zero for no spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SpecKey(usize, usize, usize);

impl SpecKey {
    fn of(spec: Option<&MetricSpec>) -> Self {
        match spec {
            Some(s) => SpecKey(
                s as *const MetricSpec as usize,
                s.fields.as_ptr() as usize,
                s.fields.len(),
            ),
            None => SpecKey(0, 0, 0),
        }
    }
}

/// Lookup state of a [`MetricObs`]. Records of one metric mostly repeat the previous record's
/// field names in the same order, so [`observe_record`] first compares a name with the one
/// at the same position in the previous record and hashes it only when they differ. Not an
/// observation: it takes no part in equality.
#[derive(Clone, Debug, Default)]
struct Lookup {
    /// Name -> index into [`MetricObs::fields`].
    fields: FastMap<String, usize>,
    /// Canonical name -> index into [`MetricObs::declared`].
    declared: FastMap<String, usize>,
    /// The spec `layout` and `slots` hold roles and indices for.
    spec: Option<SpecKey>,
    /// The names of the last record observed, by position, and their roles.
    layout: Vec<(String, Role)>,
    /// Per spec field: index into [`MetricObs::declared`], once known.
    slots: Vec<Option<usize>>,
    /// Per spec field: (rank, position) of the chosen source in the record being observed;
    /// all `None` between records.
    chosen: Vec<Option<(usize, usize)>>,
}

impl PartialEq for Lookup {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// One run's observations for one (tenant, metric) partition group. `metric` is the partition metric: canonical name, or the name as sent when unknown.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MetricObs {
    known: bool,
    count: u64,
    seen: Option<Seen>,
    /// Unknown fields by name as sent, first seen first.
    fields: Vec<(String, FieldObs)>,
    /// Declared fields by canonical name, first seen first.
    declared: Vec<(String, DeclObs)>,
    lookup: Lookup,
}

impl MetricObs {
    /// An empty accumulator for a metric the catalog knows (`known`) or not.
    pub fn new(known: bool) -> Self {
        MetricObs {
            known,
            ..Default::default()
        }
    }

    /// Whether the metric is declared.
    pub fn known(&self) -> bool {
        self.known
    }

    /// Records observed.
    pub fn records(&self) -> u64 {
        self.count
    }

    /// One record of this metric (metric-level count and first/last seen, used for unknown metrics).
    pub fn record(&mut self, ts: i64) {
        self.count += 1;
        widen(&mut self.seen, ts);
    }

    /// A field the catalog does not declare for this metric (or any field of an unknown metric), value as sent (nulls counted for the null rate).
    pub fn unknown_field(&mut self, name: &str, value: &RawValue<'_>, ts: i64) {
        let i = self.field_index(name);
        self.fields[i].1.observe(value, ts);
    }

    /// A declared field whose value converted (canonical name).
    pub fn declared_ok(&mut self, field: &str, declared: FieldType) {
        let i = self.declared_index(field, declared);
        self.declared[i].1.ok += 1;
    }

    /// A declared field whose value did not convert.
    pub fn declared_fail(
        &mut self,
        field: &str,
        declared: FieldType,
        value: &RawValue<'_>,
        ts: i64,
    ) {
        let i = self.declared_index(field, declared);
        self.declared[i].1.failures.observe(value, ts);
    }

    /// Adds another accumulator of the same metric (observations in `other` come after self's).
    pub fn merge(&mut self, other: MetricObs) {
        self.known |= other.known;
        self.count += other.count;
        union(&mut self.seen, other.seen);
        for (name, f) in other.fields {
            let i = self.field_index(&name);
            self.fields[i].1.merge(f);
        }
        for (name, d) in other.declared {
            let i = self.declared_index(&name, d.declared);
            self.declared[i].1.merge(d);
        }
    }

    fn field_index(&mut self, name: &str) -> usize {
        if let Some(&i) = self.lookup.fields.get(name) {
            return i;
        }
        self.fields.push((name.to_string(), FieldObs::default()));
        self.lookup
            .fields
            .insert(name.to_string(), self.fields.len() - 1);
        self.fields.len() - 1
    }

    /// The entry of a declared field, started over when its declared type changed.
    fn declared_index(&mut self, field: &str, declared: FieldType) -> usize {
        let i = match self.lookup.declared.get(field) {
            Some(&i) => i,
            None => {
                self.declared
                    .push((field.to_string(), DeclObs::new(declared)));
                let i = self.declared.len() - 1;
                self.lookup.declared.insert(field.to_string(), i);
                i
            }
        };
        if self.declared[i].1.declared != declared {
            self.declared[i].1 = DeclObs::new(declared);
        }
        i
    }

    /// Prepares the lookup state for records under `spec`.
    fn bind(&mut self, spec: Option<&MetricSpec>) {
        let key = SpecKey::of(spec);
        if self.lookup.spec != Some(key) {
            let n = spec.map_or(0, |s| s.fields.len());
            self.lookup.spec = Some(key);
            self.lookup.layout.clear();
            self.lookup.slots = vec![None; n];
            self.lookup.chosen = vec![None; n];
        }
    }

    /// The role of the field at position `i` of the current record.
    fn role_at(&mut self, i: usize, name: &str, spec: Option<&MetricSpec>) -> Role {
        if let Some((cached, role)) = self.lookup.layout.get(i) {
            if cached == name {
                return *role;
            }
        }
        let role = match spec.and_then(|s| s.by_source.get(name)) {
            Some(&(f, rank)) => Role::Declared(f, rank),
            None if spec.is_some_and(|s| s.hidden_sources.contains(name)) => Role::Hidden,
            None => Role::Unknown(self.field_index(name)),
        };
        match self.lookup.layout.get_mut(i) {
            Some((cached, r)) => {
                cached.clear();
                cached.push_str(name);
                *r = role;
            }
            None => self.lookup.layout.push((name.to_string(), role)),
        }
        role
    }

    /// Counts the chosen value of declared field `f` as converted or not.
    fn observe_chosen(&mut self, spec: &MetricSpec, f: usize, v: &RawValue<'_>, ts: i64, ok: bool) {
        let field = &spec.fields[f];
        let slot = match self.lookup.slots[f] {
            Some(slot) if self.declared[slot].1.declared == field.ty => slot,
            _ => {
                let slot = self.declared_index(&field.name, field.ty);
                self.lookup.slots[f] = Some(slot);
                slot
            }
        };
        let d = &mut self.declared[slot].1;
        if ok {
            d.ok += 1;
        } else {
            d.failures.observe(v, ts);
        }
    }
}

/// Observes one record of a metric the way resolution treats it (SPEC 4): with no `spec`
/// (unknown metric) every field is unknown; otherwise, per declared field, only the chosen
/// source (first non-null by rank: canonical, then aliases in order) counts, as converted
/// ([`MetricObs::declared_ok`]) or not ([`MetricObs::declared_fail`]); shadowed alias values,
/// nulls of declared sources and hidden fields are ignored; every other field (nulls
/// included) is an unknown field.
///
/// One accumulator observes under one spec at a time (the run's catalog); the per-value work
/// is a name comparison with the previous record's layout, the type check, and counter
/// updates: nothing is allocated once a field is known, except samples until 5 are kept.
pub fn observe_record(
    obs: &mut MetricObs,
    spec: Option<&MetricSpec>,
    fields: &[(Cow<'_, str>, RawValue<'_>)],
    ts: i64,
) {
    observe_with(obs, spec, fields, ts, |field, v| converts(v, field.ty));
}

/// [`observe_record`] for a record resolution already converted: `mismatches` are the
/// canonical fields whose value did not convert ([`crate::resolve::Values::mismatches`]), so
/// no value is converted twice.
pub fn observe_resolved(
    obs: &mut MetricObs,
    spec: Option<&MetricSpec>,
    fields: &[(Cow<'_, str>, RawValue<'_>)],
    ts: i64,
    mismatches: &[std::sync::Arc<str>],
) {
    observe_with(obs, spec, fields, ts, |field, _| {
        !mismatches
            .iter()
            .any(|m| std::sync::Arc::ptr_eq(m, &field.name) || *m == field.name)
    });
}

fn observe_with(
    obs: &mut MetricObs,
    spec: Option<&MetricSpec>,
    fields: &[(Cow<'_, str>, RawValue<'_>)],
    ts: i64,
    converted: impl Fn(&crate::catalog::FieldSpec, &RawValue<'_>) -> bool,
) {
    obs.record(ts);
    obs.bind(spec);
    for (i, (name, v)) in fields.iter().enumerate() {
        match obs.role_at(i, name, spec) {
            Role::Unknown(f) => obs.fields[f].1.observe(v, ts),
            Role::Hidden => {}
            Role::Declared(..) if matches!(v, RawValue::Null) => {}
            Role::Declared(f, rank) => {
                let chosen = &mut obs.lookup.chosen[f];
                if chosen.is_none_or(|(r, _)| rank < r) {
                    *chosen = Some((rank, i));
                }
            }
        }
    }
    let Some(spec) = spec else { return };
    for (i, (_, v)) in fields.iter().enumerate() {
        let Role::Declared(f, _) = obs.lookup.layout[i].1 else {
            continue;
        };
        if obs.lookup.chosen[f].is_some_and(|(_, c)| c == i) {
            obs.lookup.chosen[f] = None;
            let ok = converted(&spec.fields[f], v);
            obs.observe_chosen(spec, f, v, ts, ok);
        }
    }
}

/// Whether a non-null value converts to `ty`, as [`convert`] decides, without allocating
/// (no text for strings, no error message for timestamps).
fn converts(v: &RawValue<'_>, ty: FieldType) -> bool {
    match ty {
        FieldType::String => v.as_text().is_some(),
        FieldType::Timestamp => event_time_ok(v),
        _ => convert(v, ty).is_some(),
    }
}

// ---------------------------------------------------------------------------------------------
// The stored document

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

/// The stored proposal document of one tenant: `<lake>/_proposals/<tenant>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalDoc {
    pub tenant: String,
    /// lake version that last updated it
    pub version: u64,
    /// By partition metric: canonical name, or the name as sent for unknown metrics.
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricProposal>,
}

/// Proposals of one metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricProposal {
    pub known: bool,
    /// Records, for unknown metrics (0 for known ones).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub count: u64,
    /// Event time of the earliest record (unknown metrics), RFC 3339 ms UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// Event time of the latest record (unknown metrics), RFC 3339 ms UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// For unknown metrics: alias of a declared metric, or a new metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<Suggestion>,
    /// Unknown fields by name as sent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldProposal>,
    /// Declared fields that often fail their type, by canonical name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub type_changes: BTreeMap<String, TypeChange>,
}

/// An unknown field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldProposal {
    /// Non-null values.
    pub count: u64,
    pub nulls: u64,
    /// nulls / (count + nulls), 4 decimals.
    pub null_rate: f64,
    /// Event time of the earliest record holding the field (null or not), RFC 3339 ms UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    pub inferred_type: PType,
    pub type_counts: TypeCounts,
    /// Values as text, up to 5 distinct, first seen first.
    pub samples: Vec<String>,
    pub suggestion: Suggestion,
}

/// A declared field that often fails its type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeChange {
    pub declared: FieldType,
    /// Non-null values seen (converted or not).
    pub count: u64,
    pub failures: u64,
    /// failures / count, 4 decimals.
    pub failure_rate: f64,
    /// Event time of the earliest failing value, RFC 3339 ms UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// Event time of the latest failing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// Over all values: converted ones count as the declared type's [`PType`].
    pub type_counts: TypeCounts,
    /// Over all values.
    pub inferred_type: PType,
    /// Failing values, up to 5 distinct, first seen first.
    pub samples: Vec<String>,
    /// [`Suggestion::SetType`].
    pub suggestion: Suggestion,
}

/// `2026-01-02T03:04:05.678Z`. Fixed width for every accepted event time (years 1970-9999),
/// so these texts order as the times they stand for.
pub fn ts_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

fn seen_texts(seen: Option<Seen>) -> (Option<String>, Option<String>) {
    match seen {
        Some(s) => (Some(ts_text(s.first)), Some(ts_text(s.last))),
        None => (None, None),
    }
}

/// Widens `[first, last]` by `[other_first, other_last]` (texts from [`ts_text`]).
fn widen_texts(
    first: &mut Option<String>,
    last: &mut Option<String>,
    other_first: Option<String>,
    other_last: Option<String>,
) {
    if let Some(o) = other_first {
        if first.as_ref().is_none_or(|f| o < *f) {
            *first = Some(o);
        }
    }
    if let Some(o) = other_last {
        if last.as_ref().is_none_or(|l| o > *l) {
            *last = Some(o);
        }
    }
}

fn rate(part: u64, whole: u64) -> f64 {
    match whole {
        0 => 0.0,
        _ => round4(part as f64 / whole as f64),
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

impl FieldProposal {
    fn from_obs(name: &str, o: FieldObs) -> Self {
        let (first_seen, last_seen) = seen_texts(o.seen);
        let mut p = FieldProposal {
            count: o.count,
            nulls: o.nulls,
            null_rate: 0.0,
            first_seen,
            last_seen,
            inferred_type: PType::String,
            type_counts: o.types,
            samples: o.samples,
            suggestion: Suggestion::NewField {
                name: name.to_string(),
                ty: FieldType::String,
            },
        };
        p.recompute();
        p
    }

    /// Adds later statistics of the same field (its samples come after ours).
    fn absorb(&mut self, other: FieldProposal) {
        self.count += other.count;
        self.nulls += other.nulls;
        widen_texts(
            &mut self.first_seen,
            &mut self.last_seen,
            other.first_seen,
            other.last_seen,
        );
        self.type_counts.merge(&other.type_counts);
        for s in other.samples {
            push_sample(&mut self.samples, s);
        }
        self.recompute();
    }

    fn recompute(&mut self) {
        self.null_rate = rate(self.nulls, self.count + self.nulls);
        self.inferred_type = self.type_counts.inferred();
    }
}

impl TypeChange {
    fn from_obs(d: DeclObs) -> Self {
        let (first_seen, last_seen) = seen_texts(d.failures.seen);
        let mut type_counts = d.failures.types;
        type_counts.add(PType::of_declared(d.declared), d.ok);
        let mut tc = TypeChange {
            declared: d.declared,
            count: d.ok + d.failures.count,
            failures: d.failures.count,
            failure_rate: 0.0,
            first_seen,
            last_seen,
            type_counts,
            inferred_type: PType::String,
            samples: d.failures.samples,
            suggestion: Suggestion::SetType {
                ty: FieldType::String,
            },
        };
        tc.recompute();
        tc
    }

    fn absorb(&mut self, other: TypeChange) {
        self.count += other.count;
        self.failures += other.failures;
        widen_texts(
            &mut self.first_seen,
            &mut self.last_seen,
            other.first_seen,
            other.last_seen,
        );
        self.type_counts.merge(&other.type_counts);
        for s in other.samples {
            push_sample(&mut self.samples, s);
        }
        self.recompute();
    }

    /// Rates, inferred type and suggestion: set the inferred type, or `string` when the
    /// inferred type is the declared one (the values look right but do not convert, e.g.
    /// out-of-range timestamps).
    fn recompute(&mut self) {
        self.failure_rate = rate(self.failures, self.count);
        self.inferred_type = self.type_counts.inferred();
        let mut ty = self.inferred_type.field_type();
        if ty == self.declared {
            ty = FieldType::String;
        }
        self.suggestion = Suggestion::SetType { ty };
    }

    /// At least one failure and a failure rate of at least [`OFTEN_FAILS_RATE`].
    pub fn often_fails(&self) -> bool {
        self.failures >= 1
            && self.count > 0
            && self.failures as f64 / self.count as f64 >= OFTEN_FAILS_RATE
    }
}

impl MetricProposal {
    /// Folds one run's observations of this metric.
    fn fold(&mut self, obs: &MetricObs) {
        self.known = obs.known;
        if !obs.known {
            self.count += obs.count;
            let (first, last) = seen_texts(obs.seen);
            widen_texts(&mut self.first_seen, &mut self.last_seen, first, last);
        }
        for (name, f) in &obs.fields {
            let fresh = FieldProposal::from_obs(name, f.clone());
            self.add_field(name, fresh);
        }
        for (name, d) in &obs.declared {
            self.fold_declared(name, d.clone());
        }
    }

    fn add_field(&mut self, name: &str, p: FieldProposal) {
        match self.fields.get_mut(name) {
            Some(mine) => mine.absorb(p),
            None => {
                self.fields.insert(name.to_string(), p);
            }
        }
    }

    fn fold_declared(&mut self, name: &str, d: DeclObs) {
        let failed = d.failures.count > 0;
        let fresh = TypeChange::from_obs(d);
        match self.type_changes.get_mut(name) {
            Some(tc) if tc.declared == fresh.declared => tc.absorb(fresh),
            _ if failed => {
                self.type_changes.insert(name.to_string(), fresh);
            }
            _ => {
                self.type_changes.remove(name);
            }
        }
    }

    /// Nothing left to propose for a known metric.
    fn is_empty(&self) -> bool {
        self.known && self.fields.is_empty() && self.type_changes.is_empty()
    }

    /// Under a metric the catalog declares (by this canonical name).
    fn refresh_known(&mut self, spec: &MetricSpec) {
        self.known = true;
        self.count = 0;
        self.first_seen = None;
        self.last_seen = None;
        self.suggestion = None;
        self.fields.retain(|name, _| !declares(spec, name));
        self.type_changes.retain(|name, tc| {
            let current = spec.fields.iter().find(|f| *f.name == **name);
            current.is_some_and(|f| f.ty == tc.declared) && tc.often_fails()
        });
        let mut taken: Vec<String> = self.fields.keys().cloned().collect();
        for (name, p) in self.fields.iter_mut() {
            p.suggestion = field_suggestion(name, p, Some(spec), &mut taken);
        }
    }

    /// Under no declared metric.
    /// `taken`: metric names a sanitized new metric name must not take.
    fn refresh_unknown(
        &mut self,
        name: &str,
        catalog: Option<&TenantCatalog>,
        taken: &mut Vec<String>,
    ) {
        self.known = false;
        self.type_changes.clear();
        let mut fields_taken: Vec<String> = self.fields.keys().cloned().collect();
        for (fname, p) in self.fields.iter_mut() {
            p.suggestion = field_suggestion(fname, p, None, &mut fields_taken);
        }
        self.suggestion = Some(metric_suggestion(name, self, catalog, taken));
    }
}

/// Whether a metric declares a source name (visible or hidden).
fn declares(spec: &MetricSpec, name: &str) -> bool {
    spec.by_source.contains_key(name) || spec.hidden_sources.contains(name)
}

/// Alias of the closest compatible declared field, or a new field. `taken`: the metric's
/// unknown field names and the sanitized names handed out so far.
fn field_suggestion(
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
fn metric_suggestion(
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

impl ProposalDoc {
    /// An empty document.
    pub fn new(tenant: &str, version: u64) -> Self {
        ProposalDoc {
            tenant: tenant.to_string(),
            version,
            metrics: BTreeMap::new(),
        }
    }

    /// `_proposals/<tenant>.json`, relative to the lake.
    pub fn path(tenant: &str) -> String {
        format!("_proposals/{tenant}.json")
    }

    /// The stored document of a tenant, `None` when there is none yet.
    pub async fn load(lake: &Location, tenant: &str) -> Result<Option<ProposalDoc>> {
        let rel = Self::path(tenant);
        let Some(bytes) = lake.get_opt(&rel).await? else {
            return Ok(None);
        };
        let doc = Self::from_slice(&bytes).map_err(|e| Error::metadata(lake.path(&rel), e))?;
        if doc.tenant != tenant {
            let reason = format!("holds tenant {:?}", doc.tenant);
            return Err(Error::metadata(lake.path(&rel), reason));
        }
        Ok(Some(doc))
    }

    /// Parses a stored document.
    pub fn from_slice(bytes: &[u8]) -> std::result::Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Writes the document (an overwrite: runs that commit to one lake are serialized by the
    /// lake's commit, and `version` says which one wrote it).
    pub async fn save(&self, lake: &Location) -> Result<()> {
        lake.put(&Self::path(&self.tenant), self.to_bytes()).await
    }

    /// Pretty JSON with a final newline; the same document always gives the same bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut v = serde_json::to_vec_pretty(self).expect("proposal documents serialize");
        v.push(b'\n');
        Bytes::from(v)
    }

    /// Folds one run's observations (BTreeMap keyed by partition metric) into `prev` under the catalog of that run; `version` is the lake version being committed.
    pub fn merge_run(
        prev: Option<ProposalDoc>,
        tenant: &str,
        run: &BTreeMap<String, MetricObs>,
        catalog: Option<&TenantCatalog>,
        version: u64,
    ) -> ProposalDoc {
        let mut doc = prev.unwrap_or_else(|| ProposalDoc::new(tenant, version));
        doc.tenant = tenant.to_string();
        // Re-key what the catalog learned since, so this run's observations land on it.
        doc.refresh(catalog);
        for (metric, obs) in run {
            doc.metrics.entry(metric.clone()).or_default().fold(obs);
        }
        doc.version = version;
        doc.refresh(catalog);
        doc
    }

    /// Re-applies a (newer) catalog: drops fields/metrics it now knows, re-keys an unknown metric that now resolves to a known metric into that metric (its fields that the metric declares are dropped, the others become that metric's unknown fields, stats merged), drops type changes whose declared type changed or that no longer fail often, recomputes every suggestion.
    pub fn refresh(&mut self, catalog: Option<&TenantCatalog>) {
        if let Some(catalog) = catalog {
            self.rekey(catalog);
        }
        let mut taken: Vec<String> = self.metrics.keys().cloned().collect();
        for (name, p) in self.metrics.iter_mut() {
            match catalog.and_then(|c| c.metric(name)) {
                Some(spec) => p.refresh_known(spec),
                None => p.refresh_unknown(name, catalog, &mut taken),
            }
        }
        self.metrics.retain(|_, p| !p.is_empty());
    }

    /// Moves every entry whose name now resolves to another (canonical) metric into it.
    fn rekey(&mut self, catalog: &TenantCatalog) {
        let moving: Vec<(String, String)> = self
            .metrics
            .keys()
            .filter_map(|k| {
                let spec = catalog.metric(k)?;
                (spec.name != *k).then(|| (k.clone(), spec.name.clone()))
            })
            .collect();
        for (from, to) in moving {
            let Some(p) = self.metrics.remove(&from) else {
                continue;
            };
            let spec = catalog.metric(&to).expect("resolved above");
            let target = self.metrics.entry(to).or_insert_with(|| MetricProposal {
                known: true,
                ..Default::default()
            });
            for (name, f) in p.fields {
                if !declares(spec, &name) {
                    target.add_field(&name, f);
                }
            }
        }
    }

    /// An unknown field of a metric.
    pub fn field(&self, metric: &str, name: &str) -> Option<&FieldProposal> {
        self.metrics.get(metric)?.fields.get(name)
    }

    /// A metric's proposals (canonical name, or the name as sent for unknown metrics).
    pub fn metric(&self, name: &str) -> Option<&MetricProposal> {
        self.metrics.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TenantDoc;
    use crate::resolve::parse_event_time;
    use serde_json::{Map, Value};
    use std::path::PathBuf;

    /// A fixture: steps run in order, each followed by a check against `step<N>.json`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Script {
        tenant: String,
        steps: Vec<Step>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case", deny_unknown_fields)]
    enum Step {
        /// A compaction: records (`metric`, `timestamp`, then fields in order) observed under
        /// `catalog`, then merged as lake version `version`.
        Run {
            version: u64,
            catalog: Option<TenantDoc>,
            records: Vec<Map<String, Value>>,
        },
        /// A newer catalog re-applied to the stored document.
        Refresh { catalog: Option<TenantDoc> },
    }

    fn raw(v: &Value) -> RawValue<'static> {
        match v {
            Value::Null => RawValue::Null,
            Value::Bool(b) => RawValue::Bool(*b),
            Value::Number(n) => RawValue::Number(Cow::Owned(n.to_string())),
            Value::String(s) => RawValue::Str(Cow::Owned(s.clone())),
            nested => RawValue::Nested(Cow::Owned(nested.to_string())),
        }
    }

    /// Observes records the way compaction does (resolution, then [`observe_resolved`]), one
    /// accumulator per partition metric; checks [`observe_record`] agrees.
    fn observe_all(
        records: &[Map<String, Value>],
        catalog: Option<&TenantCatalog>,
    ) -> BTreeMap<String, MetricObs> {
        let mut run = BTreeMap::new();
        let mut plain = BTreeMap::new();
        for rec in records {
            let metric = rec["metric"].as_str().expect("metric");
            let ts = parse_event_time(&raw(&rec["timestamp"])).expect("timestamp");
            let fields: Vec<(Cow<'_, str>, RawValue<'_>)> = rec
                .iter()
                .filter(|(k, _)| *k != "metric" && *k != "timestamp")
                .map(|(k, v)| (Cow::Borrowed(k.as_str()), raw(v)))
                .collect();
            let spec = catalog.and_then(|c| c.metric(metric));
            let key = spec.map_or(metric, |s| s.name.as_str()).to_string();
            let obs = run
                .entry(key.clone())
                .or_insert_with(|| MetricObs::new(spec.is_some()));
            let resolved = crate::resolve::resolve_fields(&fields, spec);
            observe_resolved(obs, spec, &fields, ts, &resolved.mismatches);
            let check = plain
                .entry(key)
                .or_insert_with(|| MetricObs::new(spec.is_some()));
            observe_record(check, spec, &fields, ts);
        }
        assert_eq!(run, plain, "observe_resolved and observe_record agree");
        run
    }

    fn catalog(doc: Option<TenantDoc>) -> Option<TenantCatalog> {
        doc.map(|d| TenantCatalog::new(d).expect("valid fixture catalog"))
    }

    fn dir(case: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/proposals")
            .join(case)
    }

    /// The document after each step. `FINEO_BLESS=1` rewrites the expected files.
    fn run_case(case: &str) {
        let input = std::fs::read(dir(case).join("input.json")).expect("input.json");
        let script: Script = serde_json::from_slice(&input).expect("fixture script");
        let mut doc: Option<ProposalDoc> = None;
        for (i, step) in script.steps.into_iter().enumerate() {
            let next = match step {
                Step::Run {
                    version,
                    catalog: c,
                    records,
                } => {
                    let cat = catalog(c);
                    let run = observe_all(&records, cat.as_ref());
                    ProposalDoc::merge_run(doc, &script.tenant, &run, cat.as_ref(), version)
                }
                Step::Refresh { catalog: c } => {
                    let mut d = doc.expect("refresh after a run");
                    d.refresh(catalog(c).as_ref());
                    d
                }
            };
            check(case, i + 1, &next);
            doc = Some(next);
        }
    }

    fn check(case: &str, step: usize, doc: &ProposalDoc) {
        let bytes = doc.to_bytes();
        assert_eq!(&ProposalDoc::from_slice(&bytes).unwrap(), doc, "round trip");
        let path = dir(case).join(format!("step{step}.json"));
        if std::env::var_os("FINEO_BLESS").is_some() {
            std::fs::write(&path, &bytes).unwrap();
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            expected,
            "{case} step {step}: {}",
            path.display()
        );
    }

    #[test]
    fn fixture_lattice() {
        run_case("lattice");
    }

    #[test]
    fn fixture_aliases() {
        run_case("aliases");
    }

    #[test]
    fn fixture_unknown_metric() {
        run_case("unknown_metric");
    }

    #[test]
    fn fixture_no_catalog() {
        run_case("no_catalog");
    }

    #[test]
    fn fixture_type_change() {
        run_case("type_change");
    }

    #[test]
    fn fixture_merge_runs() {
        run_case("merge_runs");
    }

    #[test]
    fn fixture_refresh() {
        run_case("refresh");
    }

    fn n(s: &str) -> RawValue<'_> {
        RawValue::Number(Cow::Borrowed(s))
    }

    fn s(s: &str) -> RawValue<'_> {
        RawValue::Str(Cow::Borrowed(s))
    }

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

    fn spec_catalog() -> TenantCatalog {
        let doc = r#"{"tenant":"t","metrics":{"m":{"fields":{
            "a":{"type":"long","aliases":["a1","a2"]},"h":{"type":"long"}},"hidden":["h"]}}}"#;
        TenantCatalog::new(serde_json::from_str(doc).unwrap()).unwrap()
    }

    fn record(
        pairs: &[(&'static str, RawValue<'static>)],
    ) -> Vec<(Cow<'static, str>, RawValue<'static>)> {
        pairs
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), v.clone()))
            .collect()
    }

    #[test]
    fn first_non_null_source_is_the_only_one_observed() {
        let cat = spec_catalog();
        let spec = cat.metric("m");
        let mut obs = MetricObs::new(true);
        let rec = record(&[
            ("a2", s("bad")),
            ("a", RawValue::Null),
            ("a1", n("5")),
            ("h", s("hidden")),
            ("x", RawValue::Null),
        ]);
        observe_record(&mut obs, spec, &rec, 10);
        let mut expected = MetricObs::new(true);
        expected.record(10);
        expected.unknown_field("x", &RawValue::Null, 10);
        expected.declared_ok("a", FieldType::Long);
        assert_eq!(obs, expected);
        observe_record(&mut obs, spec, &record(&[("a2", s("bad"))]), 11);
        expected.record(11);
        expected.declared_fail("a", FieldType::Long, &s("bad"), 11);
        assert_eq!(obs, expected);
    }

    /// The classification without lookup caching, through the public calls.
    fn observe_plainly(
        obs: &mut MetricObs,
        spec: Option<&MetricSpec>,
        fields: &[(Cow<'_, str>, RawValue<'_>)],
        ts: i64,
    ) {
        obs.record(ts);
        let mut chosen: Vec<Option<(usize, usize)>> =
            vec![None; spec.map_or(0, |s| s.fields.len())];
        for (i, (name, v)) in fields.iter().enumerate() {
            match spec.and_then(|s| s.by_source.get(name.as_ref())) {
                Some(_) if matches!(v, RawValue::Null) => {}
                Some(&(f, rank)) if chosen[f].is_none_or(|(r, _)| rank < r) => {
                    chosen[f] = Some((rank, i))
                }
                Some(_) => {}
                None if spec.is_some_and(|s| s.hidden_sources.contains(name.as_ref())) => {}
                None => obs.unknown_field(name, v, ts),
            }
        }
        for (i, (name, v)) in fields.iter().enumerate() {
            let Some(&(f, _)) = spec.and_then(|s| s.by_source.get(name.as_ref())) else {
                continue;
            };
            if chosen[f].is_some_and(|(_, c)| c == i) {
                let field = &spec.unwrap().fields[f];
                match convert(v, field.ty) {
                    Some(_) => obs.declared_ok(&field.name, field.ty),
                    None => obs.declared_fail(&field.name, field.ty, v, ts),
                }
            }
        }
    }

    #[test]
    fn cached_lookups_match_plain_classification() {
        let other = r#"{"tenant":"t","metrics":{"m":{"fields":{
            "u":{"type":"string"},"a":{"type":"double","aliases":["a2"]}}}}}"#;
        let other = TenantCatalog::new(serde_json::from_str(other).unwrap()).unwrap();
        let cat = spec_catalog();
        let names = ["a", "a1", "a2", "h", "u", "v", "b"];
        let values = [
            RawValue::Null,
            n("1"),
            s("x"),
            n("2.5"),
            RawValue::Bool(true),
        ];
        let mut seed = 7u64;
        let mut next = move |m: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % m
        };
        // Mostly repeated layouts (cache hits), sometimes random ones (misses), and the spec
        // changing under the same layouts.
        let layouts: [&[&str]; 3] = [&["a", "u", "h", "a2"], &["a2", "a", "v"], &["u", "b"]];
        let mut layout = layouts[0].to_vec();
        let (mut cached, mut plain) = (MetricObs::new(true), MetricObs::new(true));
        for i in 0..600 {
            let spec = match i / 50 % 4 {
                0 | 2 => cat.metric("m"),
                1 => other.metric("m"),
                _ => None,
            };
            match next(10) {
                0 => layout = layouts[next(3)].to_vec(),
                1 => layout = (0..next(6)).map(|_| names[next(names.len())]).collect(),
                _ => {}
            }
            let rec: Vec<(Cow<'_, str>, RawValue<'_>)> = layout
                .iter()
                .map(|name| (Cow::Borrowed(*name), values[next(values.len())].clone()))
                .collect();
            observe_record(&mut cached, spec, &rec, i);
            observe_plainly(&mut plain, spec, &rec, i);
            assert_eq!(cached, plain, "record {i}: {rec:?}");
        }
    }

    #[test]
    fn split_and_merged_equals_one_pass() {
        let cat = spec_catalog();
        let spec = cat.metric("m");
        let recs: Vec<_> = (0..12)
            .map(|i| {
                let v = if i % 4 == 0 {
                    s("x")
                } else {
                    n(["1", "2.5", "7"][i % 3])
                };
                record(&[("a", v.clone()), ("u", v)])
            })
            .collect();
        let mut whole = MetricObs::new(true);
        let (mut first, mut second) = (MetricObs::new(true), MetricObs::new(true));
        for (i, r) in recs.iter().enumerate() {
            observe_record(&mut whole, spec, r, 100 - i as i64);
            let half = if i < 5 { &mut first } else { &mut second };
            observe_record(half, spec, r, 100 - i as i64);
        }
        first.merge(second);
        assert_eq!(first, whole);
    }

    #[test]
    fn documents_are_deterministic() {
        let cat = spec_catalog();
        let build = || {
            let mut run = BTreeMap::new();
            for metric in ["m", "zz", "Q r"] {
                let spec = cat.metric(metric);
                let obs = run
                    .entry(metric.to_string())
                    .or_insert_with(|| MetricObs::new(spec.is_some()));
                for i in 0..20 {
                    let v = n(["1", "2.5", "7", "9"][i % 4]);
                    let rec = record(&[("f1", v.clone()), ("f2", s("t")), ("a", v)]);
                    observe_record(obs, spec, &rec, i as i64 * 1000);
                }
            }
            ProposalDoc::merge_run(None, "t", &run, Some(&cat), 1).to_bytes()
        };
        assert_eq!(build(), build());
    }

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

    #[test]
    fn rfc3339_texts() {
        assert_eq!(ts_text(1_767_323_045_678), "2026-01-02T03:04:05.678Z");
        assert_eq!(ts_text(0), "1970-01-01T00:00:00.000Z");
    }

    #[tokio::test]
    async fn load_and_save() {
        let tmp = tempfile::tempdir().unwrap();
        let lake = Location::parse(tmp.path().to_str().unwrap()).unwrap();
        assert_eq!(ProposalDoc::load(&lake, "t1").await.unwrap(), None);
        let doc = ProposalDoc::new("t1", 4);
        doc.save(&lake).await.unwrap();
        assert!(tmp.path().join("_proposals/t1.json").is_file());
        assert_eq!(ProposalDoc::load(&lake, "t1").await.unwrap(), Some(doc));
        lake.put(&ProposalDoc::path("t2"), Bytes::from_static(b"{"))
            .await
            .unwrap();
        let err = ProposalDoc::load(&lake, "t2").await.unwrap_err();
        assert!(matches!(err, Error::Metadata { .. }), "{err}");
        let other = ProposalDoc::new("t1", 1).to_bytes();
        lake.put(&ProposalDoc::path("t3"), other).await.unwrap();
        let err = ProposalDoc::load(&lake, "t3").await.unwrap_err();
        assert!(err.to_string().contains("holds tenant"), "{err}");
    }
}
