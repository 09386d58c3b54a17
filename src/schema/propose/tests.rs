//! The fixture scripts of testdata/proposals/ run end to end, and builders other tests share.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{observe_record, observe_resolved, MetricObs, ProposalDoc};
use crate::catalog::{TenantCatalog, TenantDoc};
use crate::model::RawValue;
use crate::resolve::parse_event_time;

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
/// accumulator and one resolver per partition metric; checks [`observe_record`] agrees.
fn observe_all(
    records: &[Map<String, Value>],
    catalog: Option<&TenantCatalog>,
) -> BTreeMap<String, MetricObs> {
    let mut run = BTreeMap::new();
    let mut plain = BTreeMap::new();
    let mut resolvers = BTreeMap::new();
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
        let resolver = resolvers
            .entry(key.clone())
            .or_insert_with(|| crate::resolve::Resolver::new(spec));
        let resolved = resolver.resolve(&fields);
        observe_resolved(obs, spec, &fields, ts, &resolved, resolver);
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

pub(super) fn n(s: &str) -> RawValue<'_> {
    RawValue::Number(Cow::Borrowed(s))
}

pub(super) fn s(s: &str) -> RawValue<'_> {
    RawValue::Str(Cow::Borrowed(s))
}

pub(super) fn spec_catalog() -> TenantCatalog {
    let doc = r#"{"tenant":"t","metrics":{"m":{"fields":{
        "a":{"type":"long","aliases":["a1","a2"]},"h":{"type":"long"}},"hidden":["h"]}}}"#;
    TenantCatalog::new(serde_json::from_str(doc).unwrap()).unwrap()
}

pub(super) fn record(
    pairs: &[(&'static str, RawValue<'static>)],
) -> Vec<(Cow<'static, str>, RawValue<'static>)> {
    pairs
        .iter()
        .map(|(k, v)| (Cow::Borrowed(*k), v.clone()))
        .collect()
}
