//! The bad-input corpus (testdata/corpus): each case directory is one staged object and its
//! expect.json; every case is compacted by the real binary into a fresh lake and checked exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::Value;

use crate::harness::*;

/// Every case directory (`_catalog` and other `_` entries are shared, not cases).
fn case_dirs() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(testdata("corpus"))
        .expect("testdata/corpus")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir() && !name_of(p).starts_with('_'))
        .collect();
    out.sort();
    out
}

fn name_of(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).expect("utf-8 name")
}

/// Expands `{"$text": ["prefix", ["y", 65000]]}` (long strings kept short in expect.json).
fn expand(v: &Value) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("$text") => {
            let mut s = String::new();
            for part in m["$text"].as_array().expect("$text pieces") {
                match part {
                    Value::String(p) => s.push_str(p),
                    Value::Array(rep) => {
                        let c = rep[0].as_str().expect("repeated text");
                        s.push_str(&c.repeat(rep[1].as_u64().expect("count") as usize));
                    }
                    other => panic!("bad $text piece {other}"),
                }
            }
            Value::String(s)
        }
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), expand(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(expand).collect()),
        v => v.clone(),
    }
}

/// Short text for failure messages (some values are megabytes long).
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 600 {
        format!(
            "{}... ({} bytes)",
            &s[..s.floor_char_boundary(600)],
            s.len()
        )
    } else {
        s
    }
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
}

/// Whether `actual` contains every key of `pattern` with the same value.
fn matches(actual: &Value, pattern: &Value) -> bool {
    match pattern {
        Value::Object(m) => m.iter().all(|(k, v)| matches(&actual[k], v)),
        p => actual == p,
    }
}

#[test]
fn every_corpus_case_keeps_the_good_and_quarantines_the_bad() {
    let cases = case_dirs();
    assert!(cases.len() >= 20, "only {} corpus cases", cases.len());
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(dir) = cases.get(i) else { break };
                let res = std::panic::catch_unwind(|| run_case(dir));
                if let Err(e) = res {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panic".into());
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("case {}: {msg}", name_of(dir)));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Compacts one case into a fresh lake and checks report, lake, quarantine and paths.
fn run_case(dir: &Path) {
    let case = name_of(dir);
    let exp = expand(
        &serde_json::from_slice::<Value>(&std::fs::read(dir.join("expect.json")).unwrap())
            .expect("expect.json"),
    );
    let inputs: Vec<PathBuf> = listing(dir)
        .into_iter()
        .filter(|p| name_of(p) != "expect.json")
        .collect();
    assert_eq!(inputs.len(), 1, "one staged object per case: {inputs:?}");
    let input = &inputs[0];
    let input_bytes = std::fs::read(input).unwrap();
    let catalog = testdata("corpus/_catalog");
    let before = (listing(dir), listing(&catalog));

    // The lake sits a few levels down so a path that climbs out of it still lands in `tmp`.
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("a/b/c");
    let (staged, lake) = (work.join("staged"), work.join("lake"));
    let key = format!("{case}/{}", name_of(input));
    std::fs::create_dir_all(staged.join(case)).unwrap();
    std::fs::write(staged.join(&key), &input_bytes).unwrap();

    let report = compact(&staged, &lake, Some(&catalog), &[]);
    let r = &report["records"];
    let got = |v: &Value| v.as_u64().unwrap_or(u64::MAX);
    let counts = [
        ("records_in", got(&r["records_in"])),
        ("written", got(&r["written"])),
        ("typed_rows", got(&report["output"]["typed_rows"])),
        ("untyped_lines", got(&report["output"]["untyped_lines"])),
    ];
    for (name, actual) in counts {
        assert_eq!(
            actual,
            got(&exp[name]),
            "{name}: report {} vs expected",
            short(&report)
        );
    }
    let by_reason = |v: &Value| -> BTreeMap<String, u64> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
                    .filter(|(_, n)| *n > 0)
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        by_reason(&r["errors_by_reason"]),
        by_reason(&exp["errors_by_reason"]),
        "errors_by_reason"
    );
    assert_eq!(
        by_reason(&report["objects"]["damaged"]),
        by_reason(&exp["damaged"]),
        "objects.damaged"
    );
    assert_eq!(
        by_reason(&r["type_mismatches"]),
        by_reason(&exp["type_mismatches"]),
        "type_mismatches"
    );
    let errors: u64 = by_reason(&exp["errors_by_reason"]).values().sum();
    assert_eq!(r["errors"], errors, "errors");
    assert_eq!(report["conservation_ok"], true, "conservation");
    let dups = got(&r["duplicates"]["exact"]) + got(&r["duplicates"]["conflicting"]);
    assert_eq!(
        got(&r["records_in"]),
        got(&r["written"]) + dups + errors,
        "records_in = written + duplicates + errors"
    );
    assert_eq!(report["objects"]["read"], 1, "objects read");

    // Nothing written outside the lake, and the inputs are untouched.
    for f in walk(tmp.path()) {
        let rel = f.strip_prefix(&work).unwrap_or(&f);
        assert!(
            f.starts_with(&lake) || f == staged.join(&key),
            "file written outside the lake: {}",
            rel.display()
        );
    }
    assert_eq!(std::fs::read(staged.join(&key)).unwrap(), input_bytes);
    assert_eq!(
        (listing(dir), listing(&catalog)),
        before,
        "testdata changed"
    );
    check_paths(&lake, &exp);

    // The lake as other engines read it.
    let dump = lake_dump(&lake);
    let typed = typed_rows(&dump);
    let exp_typed = exp["typed"].as_object().unwrap();
    assert_eq!(
        typed.keys().collect::<BTreeSet<_>>(),
        exp_typed.keys().collect::<BTreeSet<_>>(),
        "typed tables"
    );
    for (table, rows) in exp_typed {
        let actual = Value::Array(typed[table].clone());
        assert!(
            &actual == rows,
            "typed rows of {table}:\n  got      {}\n  expected {}",
            short(&actual),
            short(rows)
        );
    }
    let untyped = untyped_lines(&dump);
    // expect.json names partitions by metric name; lake_dump.py reads the directory, which
    // for a long name is the shortened segment (names::metric_segment).
    let exp_untyped: BTreeMap<String, &Value> = exp["untyped"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (as_listed(k), v))
        .collect();
    assert_eq!(
        untyped.keys().collect::<BTreeSet<_>>(),
        exp_untyped.keys().collect::<BTreeSet<_>>(),
        "untyped partitions"
    );
    for (part, lines) in exp_untyped {
        let mut actual = untyped[&part].clone();
        let mut want = lines.as_array().unwrap().clone();
        actual.sort_by_key(canonical);
        want.sort_by_key(canonical);
        assert!(
            actual == want,
            "untyped lines of {part}:\n  got      {}\n  expected {}",
            short(&Value::Array(actual.clone())),
            short(&Value::Array(want))
        );
    }
    assert_eq!(
        dump["totals"]["typed_rows"], report["output"]["typed_rows"],
        "typed rows: readers vs report"
    );
    check_quarantine(&dump, &exp, &key);

    // The object is in the ledger, damaged or not: a second run has nothing to do.
    assert_eq!(ledger_keys(&lake), vec![key.clone()], "ledger");
    let again = compact(&staged, &lake, Some(&catalog), &[]);
    assert_eq!(again["noop"], true, "second run: {}", short(&again));
}

/// `tenant/metric/date` with the metric as a reader of the directory names sees it.
fn as_listed(key: &str) -> String {
    let (tenant, rest) = key.split_once('/').unwrap();
    let (metric, date) = rest.rsplit_once('/').unwrap();
    let seg = fineo_batch::names::metric_segment(metric);
    format!("{tenant}/{}/{date}", fineo_batch::names::unescape(&seg))
}

/// A JSON value's text with object keys sorted, for order-insensitive sorting.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, String> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            let parts: Vec<String> = sorted
                .iter()
                .map(|(k, v)| format!("{}:{v}", Value::String(k.to_string())))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        v => v.to_string(),
    }
}

/// Every quarantine line names the object and a position, and they match the expected ones.
fn check_quarantine(dump: &Value, exp: &Value, key: &str) {
    let lines = dump["errors"]["lines"].as_array().unwrap();
    let expected = exp["quarantine"].as_array().unwrap();
    assert_eq!(
        lines.len(),
        expected.len(),
        "quarantine lines: {}",
        short(&dump["errors"])
    );
    let reasons: BTreeSet<&str> = exp["errors_by_reason"]
        .as_object()
        .unwrap()
        .keys()
        .chain(exp["damaged"].as_object().unwrap().keys())
        .map(String::as_str)
        .collect();
    for l in lines {
        assert_eq!(
            l["object"],
            key,
            "quarantine line names its object: {}",
            short(l)
        );
        assert!(
            l["position"]["record"].is_u64(),
            "quarantine line has a position: {}",
            short(l)
        );
        assert!(
            reasons.contains(l["reason"].as_str().unwrap_or("")),
            "unexpected reason in {}",
            short(l)
        );
    }
    // Most specific expectations first, so a loose pattern never takes another's line.
    let mut want: Vec<&Value> = expected.iter().collect();
    want.sort_by_key(|w| std::cmp::Reverse(w["position"].as_object().map_or(0, |m| m.len())));
    let mut taken = vec![false; lines.len()];
    for w in want {
        let found = lines.iter().enumerate().position(|(i, l)| {
            !taken[i]
                && l["reason"] == w["reason"]
                && matches(&l["position"], &w["position"])
                && ["raw", "raw_base64"]
                    .iter()
                    .all(|k| w.get(*k).is_none_or(|v| &l[*k] == v))
        });
        match found {
            Some(i) => taken[i] = true,
            None => panic!(
                "no quarantine line matches {}\nlines: {}",
                short(w),
                short(&Value::Array(lines.clone()))
            ),
        }
    }
}

/// Path rules: tenant segments are the case's tenants (or `_unknown` under errors/), metric
/// segments are escaped, no segment is `.`/`..` or longer than a file name may be.
fn check_paths(lake: &Path, exp: &Value) {
    let tenants: BTreeSet<&str> = exp["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for f in walk(lake) {
        let rel = f.strip_prefix(lake).unwrap().to_str().expect("utf-8 path");
        let segs: Vec<&str> = rel.split('/').collect();
        for (i, seg) in segs.iter().enumerate() {
            assert!(
                !seg.is_empty() && *seg != "." && *seg != ".." && seg.len() <= 255,
                "bad segment {seg:?} in {rel}"
            );
            if let Some(t) = seg.strip_prefix("tenant=") {
                let unknown_ok = t == "_unknown" && segs[0] == "errors";
                assert!(
                    tenants.contains(t) || unknown_ok,
                    "tenant segment {seg:?} in {rel}"
                );
            }
            if let Some(m) = seg.strip_prefix("metric=") {
                let escaped = !m.is_empty()
                    && !m.starts_with('.')
                    && m.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-%!".contains(&b));
                assert!(escaped, "metric segment {seg:?} is not escaped in {rel}");
            }
            if i == 1 && matches!(segs[0], "_catalog" | "_proposals") {
                let t = seg.strip_suffix(".json").unwrap_or(seg);
                assert!(tenants.contains(t), "tenant path {rel}");
            }
        }
    }
}

/// A metric name too long for one path segment lives under a shortened directory; the
/// catalog can still adopt it later (accept-metric): re-typing finds the partition by the
/// name recorded in its index and moves the records into the new typed table.
#[test]
fn a_long_metric_name_is_retyped_like_any_other() {
    let tmp = tempfile::tempdir().unwrap();
    let (staged, lake) = (tmp.path().join("staged"), tmp.path().join("lake"));
    let long = "é".repeat(128);
    let lines: Vec<String> = (0..2)
        .map(|k| {
            serde_json::json!({"tenant": "t1", "metric": long, "timestamp": 1_767_225_600_000i64 + k,
                               "v": 1.5 + k as f64, "w": format!("x{k}")})
            .to_string()
        })
        .collect();
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::write(staged.join("long.jsonl"), lines.join("\n")).unwrap();
    let report = compact(&staged, &lake, None, &[]);
    assert_eq!(report["records"]["written"], 2);
    let segment = fineo_batch::names::metric_segment(&long);
    assert!(segment.len() <= 200 && fineo_batch::names::is_shortened(&segment));
    let dir = lake.join(format!(
        "untyped/tenant=t1/metric={segment}/date=2026-01-01"
    ));
    assert!(dir.is_dir(), "{}", dir.display());

    let schema = |args: &[&str]| {
        let mut all = vec!["schema", args[0], "--lake", s(&lake), "--tenant", "t1"];
        all.extend(&args[1..]);
        fineo_ok(&all, 0)
    };
    schema(&["accept-metric", "--metric", &long, "--as", "longm"]);
    schema(&["accept", "--metric", "longm", "--field", "v"]);
    let report = compact(&staged, &lake, None, &[]);
    assert_eq!(report["retype"]["records"], 2, "{report}");

    let dump = lake_dump(&lake);
    let typed = typed_rows(&dump);
    assert_eq!(
        Value::Array(typed["t1/longm"].clone()),
        serde_json::json!([
            {"date": "2026-01-01", "timestamp": 1_767_225_600_000i64, "v": 1.5},
            {"date": "2026-01-01", "timestamp": 1_767_225_600_001i64, "v": 2.5}
        ])
    );
    let untyped = untyped_lines(&dump);
    assert_eq!(
        untyped.keys().collect::<Vec<_>>(),
        vec!["t1/longm/2026-01-01"],
        "nothing left under the shortened directory"
    );
    let mut got = untyped["t1/longm/2026-01-01"].clone();
    got.sort_by_key(canonical);
    assert_eq!(
        got,
        vec![
            serde_json::json!({"timestamp": 1_767_225_600_000i64, "w": "x0"}),
            serde_json::json!({"timestamp": 1_767_225_600_001i64, "w": "x1"})
        ]
    );
}
