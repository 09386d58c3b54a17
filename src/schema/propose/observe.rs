//! One run's observations: a [`MetricObs`] per (tenant, metric), fed by [`observe_record`].

use std::borrow::Cow;

use super::ptype::{converts, PType, TypeCounts};
use super::MAX_SAMPLES;
use crate::catalog::{FieldSpec, MetricSpec};
use crate::model::{FastMap, FieldType, RawValue};
use crate::resolve::{Resolver, Roles, Values};

/// Event-time range, ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Seen {
    pub(super) first: i64,
    pub(super) last: i64,
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
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct FieldObs {
    pub(super) count: u64,
    pub(super) nulls: u64,
    pub(super) seen: Option<Seen>,
    pub(super) types: TypeCounts,
    pub(super) samples: Vec<String>,
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

pub(super) fn push_sample(samples: &mut Vec<String>, text: String) {
    if samples.len() < MAX_SAMPLES && !samples.contains(&text) {
        samples.push(text);
    }
}

/// A declared field: values that converted, and statistics of those that did not.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct DeclObs {
    pub(super) declared: FieldType,
    pub(super) ok: u64,
    pub(super) failures: FieldObs,
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
    /// The resolver whose shapes `shapes` follows ([`crate::resolve::ShapeId::resolver`]).
    resolver: Option<u64>,
    /// Per shape of that resolver ([`crate::resolve::ShapeId::index`]): what its records are
    /// observed as.
    shapes: Vec<Option<Shape>>,
}

/// What the records of one shape are observed as: the resolver's [`Roles`] of its fields, with
/// the entries of this accumulator they count into.
#[derive(Clone, Debug)]
struct Shape {
    /// (position, index into [`MetricObs::fields`]) of the unknown fields.
    unknown: Vec<(usize, usize)>,
    /// (position, spec field index, index into [`MetricObs::declared`]) of the chosen
    /// sources, in position order.
    chosen: Vec<(usize, usize, usize)>,
}

impl PartialEq for Lookup {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// One run's observations for one (tenant, metric) partition group. `metric` is the partition metric: canonical name, or the name as sent when unknown.
/// Serializable (without its lookup cache) so fan-out units can hand observations on.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricObs {
    pub(super) known: bool,
    pub(super) count: u64,
    pub(super) seen: Option<Seen>,
    /// Unknown fields by name as sent, first seen first.
    pub(super) fields: Vec<(String, FieldObs)>,
    /// Declared fields by canonical name, first seen first.
    pub(super) declared: Vec<(String, DeclObs)>,
    #[serde(skip)]
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
        // A merged entry may change its declared type: shapes are made again.
        self.lookup.shapes.clear();
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

    /// Rebuilds the name lookups when they do not cover the entries (observations read back
    /// from JSON, where the cache is not kept).
    fn reindex(&mut self) {
        if self.lookup.fields.len() != self.fields.len() {
            self.lookup.fields = self
                .fields
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.clone(), i))
                .collect();
        }
        if self.lookup.declared.len() != self.declared.len() {
            self.lookup.declared = self
                .declared
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.clone(), i))
                .collect();
        }
    }

    fn field_index(&mut self, name: &str) -> usize {
        self.reindex();
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
        self.reindex();
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
            // Shapes hold entries under their declared types.
            self.lookup.shapes.clear();
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
            self.lookup.resolver = None;
            self.lookup.shapes.clear();
        }
    }

    /// The entries the records of a shape with `roles` count into (made for its first
    /// record: unknown fields first, then declared ones, each in the order sent, as
    /// [`observe_with`] makes them).
    fn shape_of(
        &mut self,
        spec: &MetricSpec,
        fields: &[(Cow<'_, str>, RawValue<'_>)],
        roles: Roles<'_>,
    ) -> Shape {
        let unknown = roles
            .unknown
            .iter()
            .map(|&i| (i, self.field_index(&fields[i].0)))
            .collect();
        let chosen = roles
            .chosen
            .iter()
            .map(|&(i, f)| (i, f, self.slot(spec, f)))
            .collect();
        Shape { unknown, chosen }
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

    /// The entry of declared field `f` of `spec` (under its declared type).
    fn slot(&mut self, spec: &MetricSpec, f: usize) -> usize {
        let field = &spec.fields[f];
        match self.lookup.slots[f] {
            Some(slot) if self.declared[slot].1.declared == field.ty => slot,
            _ => {
                let slot = self.declared_index(&field.name, field.ty);
                self.lookup.slots[f] = Some(slot);
                slot
            }
        }
    }

    /// Counts the chosen value of declared field `f` as converted or not.
    fn observe_chosen(&mut self, spec: &MetricSpec, f: usize, v: &RawValue<'_>, ts: i64, ok: bool) {
        let slot = self.slot(spec, f);
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

/// [`observe_record`] for a record resolution already converted (`resolved`, by `resolver`):
/// the canonical fields whose value did not convert are its `mismatches`, so no value is
/// converted twice; and the records of a shape the resolver planned are observed by the roles
/// it worked out for that shape ([`Resolver::roles`]), without looking their names up again.
/// One accumulator follows one resolver's shapes at a time (another resolver's, or another
/// spec, start it over).
pub fn observe_resolved(
    obs: &mut MetricObs,
    spec: Option<&MetricSpec>,
    fields: &[(Cow<'_, str>, RawValue<'_>)],
    ts: i64,
    resolved: &Values,
    resolver: &Resolver<'_>,
) {
    let mismatched = |field: &FieldSpec| resolved.mismatches.iter().any(|m| **m == *field.name);
    let planned = resolved
        .shape
        .and_then(|shape| Some((shape, resolver.roles(shape)?)));
    let (Some(spec), Some((shape, roles))) = (spec, planned) else {
        return observe_with(obs, spec, fields, ts, |field, _| !mismatched(field));
    };
    obs.bind(Some(spec));
    if obs.lookup.resolver != Some(shape.resolver) {
        obs.lookup.resolver = Some(shape.resolver);
        obs.lookup.shapes.clear();
    }
    // The shape's entries are taken out while its record counts into the accumulator, then
    // kept for the next record of the shape.
    let taken = obs
        .lookup
        .shapes
        .get_mut(shape.index)
        .and_then(Option::take);
    let planned = taken.unwrap_or_else(|| obs.shape_of(spec, fields, roles));
    obs.record(ts);
    let (unknown, declared) = (&mut obs.fields, &mut obs.declared);
    for &(i, f) in &planned.unknown {
        unknown[f].1.observe(&fields[i].1, ts);
    }
    for &(i, f, slot) in &planned.chosen {
        let d = &mut declared[slot].1;
        if resolved.mismatches.is_empty() || !mismatched(&spec.fields[f]) {
            d.ok += 1;
        } else {
            d.failures.observe(&fields[i].1, ts);
        }
    }
    let shapes = &mut obs.lookup.shapes;
    if shapes.len() <= shape.index {
        shapes.resize(shape.index + 1, None);
    }
    shapes[shape.index] = Some(planned);
}

fn observe_with(
    obs: &mut MetricObs,
    spec: Option<&MetricSpec>,
    fields: &[(Cow<'_, str>, RawValue<'_>)],
    ts: i64,
    converted: impl Fn(&FieldSpec, &RawValue<'_>) -> bool,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TenantCatalog;
    use crate::resolve::convert;
    use crate::schema::propose::tests::{n, record, s, spec_catalog};

    #[test]
    fn records_observed_by_their_shape_count_as_each_record_alone() {
        let cat = spec_catalog();
        let spec = cat.metric("m");
        let names = ["a", "a1", "a2", "h", "x", "y"];
        let values = [
            RawValue::Null,
            n("7"),
            s("bad"),
            n("2.5"),
            RawValue::Bool(true),
        ];
        let mut next = crate::model::picker(11);
        let (mut planned, mut plain) = (MetricObs::new(true), MetricObs::new(true));
        let mut resolver = crate::resolve::Resolver::new(spec);
        for i in 0..3000 {
            if i == 2000 {
                // Another resolver's shapes are numbered afresh.
                resolver = crate::resolve::Resolver::new(spec);
            }
            let fields: Vec<(Cow<'_, str>, RawValue<'_>)> = (0..next(6))
                .map(|_| {
                    (
                        names[next(names.len())].into(),
                        values[next(values.len())].clone(),
                    )
                })
                .collect();
            let resolved = resolver.resolve(&fields);
            assert!(resolved.shape.is_some());
            let ts = i as i64 * 1000;
            observe_resolved(&mut planned, spec, &fields, ts, &resolved, &resolver);
            observe_record(&mut plain, spec, &fields, ts);
            assert_eq!(planned, plain, "record {i}: {fields:?}");
        }
        assert!(planned.lookup.shapes.iter().flatten().count() > 10);
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
        let mut next = crate::model::picker(7);
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
}
