//! The stored proposal document of a tenant: its types, load and save, and folding in each run.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::observe::{push_sample, DeclObs, FieldObs, MetricObs, Seen};
use super::ptype::{is_zero, PType, TypeCounts};
use super::suggest::{field_suggestion, metric_suggestion, Suggestion};
use super::OFTEN_FAILS_RATE;
use crate::catalog::{MetricSpec, TenantCatalog};
use crate::error::{Error, Result};
use crate::model::FieldType;
use crate::storage::Location;

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
    /// Records seen (kept for known metrics too, so a metric that a later catalog no longer
    /// declares shows its real count).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub count: u64,
    /// Event time of the earliest record, RFC 3339 ms UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// Event time of the latest record, RFC 3339 ms UTC.
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
        self.count += obs.count;
        let (first, last) = seen_texts(obs.seen);
        widen_texts(&mut self.first_seen, &mut self.last_seen, first, last);
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
pub(super) fn declares(spec: &MetricSpec, name: &str) -> bool {
    spec.by_source.contains_key(name) || spec.hidden_sources.contains(name)
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
        // A document that version already wrote holds this run's observations: the lake
        // committed the version once, so its writer planned the same run (a twin racing on
        // the same input and publishing first). Folding them in again would count them twice.
        if let Some(done) = prev.as_ref().filter(|p| p.version >= version) {
            return done.clone();
        }
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
            target.count += p.count;
            widen_texts(
                &mut target.first_seen,
                &mut target.last_seen,
                p.first_seen,
                p.last_seen,
            );
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
    use crate::schema::propose::observe_record;
    use crate::schema::propose::tests::{n, record, s, spec_catalog};

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
    fn a_version_folded_twice_counts_once() {
        let cat = spec_catalog();
        let mut run = BTreeMap::new();
        let obs = run
            .entry("zz".to_string())
            .or_insert_with(|| MetricObs::new(false));
        observe_record(obs, None, &record(&[("f1", n("1"))]), 1000);
        let once = ProposalDoc::merge_run(None, "t", &run, Some(&cat), 1);
        let twice = ProposalDoc::merge_run(Some(once.clone()), "t", &run, Some(&cat), 1);
        assert_eq!(twice.to_bytes(), once.to_bytes());
        let next = ProposalDoc::merge_run(Some(once.clone()), "t", &run, Some(&cat), 2);
        assert_ne!(next.to_bytes(), once.to_bytes(), "a later version folds");
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
