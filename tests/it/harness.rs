//! Test harness: temp workspaces, the binary, the Python readers, and lake snapshots that can
//! be compared whole.

pub mod site;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub use site::*;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture directory under `testdata/`.
pub fn testdata(rel: &str) -> PathBuf {
    repo().join("testdata").join(rel)
}

/// The Python with deltalake, pyarrow, duckdb and fastavro (`make test` installs it).
pub fn python() -> PathBuf {
    let p = std::env::var_os("FINEO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(
        p.exists(),
        "{} is missing: run `scripts/pyenv.sh` (make test does)",
        p.display()
    );
    p
}

/// Runs the venv's Python with `args` (and the AWS environment that reaches the test S3
/// server); asserts it succeeded, naming its first argument and showing its stderr; returns
/// its stdout.
pub fn python_ok<S: AsRef<OsStr>>(args: &[S]) -> Vec<u8> {
    let out = Command::new(python())
        .args(args)
        .envs(s3_env())
        .output()
        .expect("run python");
    let what = args
        .first()
        .map(|a| a.as_ref().to_string_lossy().into_owned());
    assert!(
        out.status.success(),
        "python {} failed:\n{}",
        what.unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs the fineo-batch binary (with the AWS environment that reaches the test S3 server).
pub fn fineo<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fineo-batch"))
        .args(args)
        .envs(s3_env())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run fineo-batch")
}

/// Starts the binary (with the test S3 server's environment), its output piped.
pub fn spawn_fineo<S: AsRef<OsStr>>(args: &[S]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fineo-batch"))
        .args(args)
        .envs(s3_env())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fineo-batch")
}

/// A racing run's outcome: `true` when it succeeded, `false` when it gave up cleanly because
/// another run committed first; anything else fails the test.
pub fn raced(out: &Output) -> bool {
    let err = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => true,
        Some(1) if err.contains("concurrent commit") => false,
        other => panic!("racing run exited {other:?}: {err}"),
    }
}

/// Copies the sample's staged objects `keys` below `dir` (same relative keys).
pub fn copy_objects<'a>(sample: &Path, keys: impl IntoIterator<Item = &'a String>, dir: &Path) {
    for k in keys {
        let to = dir.join(k);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(sample.join("staged").join(k), to).expect("copy");
    }
}

/// The sample's objects dealt alternately into two staged directories `<dir>/a`, `<dir>/b`.
pub fn halves(sample: &Path, truth: &Value, dir: &Path) -> [PathBuf; 2] {
    let keys = deliveries(truth);
    ["a", "b"].map(|name| {
        let to = dir.join(name);
        let skip = usize::from(name == "b");
        copy_objects(sample, keys.iter().skip(skip).step_by(2), &to);
        to
    })
}

/// Runs the binary and requires exit code `code`; returns stdout.
pub fn fineo_ok<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S], code: i32) -> String {
    let out = fineo(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "fineo-batch {args:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Arguments of `compact --json` over these locations (local paths or URLs).
pub fn compact_args(
    staged: impl AsRef<OsStr>,
    lake: impl AsRef<OsStr>,
    catalog: Option<&Path>,
) -> Vec<String> {
    let loc = |l: &OsStr| l.to_str().expect("utf-8 location").to_string();
    let mut args = vec![
        "compact".to_string(),
        "--json".into(),
        "--staged".into(),
        loc(staged.as_ref()),
        "--lake".into(),
        loc(lake.as_ref()),
    ];
    if let Some(c) = catalog {
        args.extend(["--catalog".into(), s(c).into()]);
    }
    args
}

/// `compact --json`: returns the report.
pub fn compact(
    staged: impl AsRef<OsStr>,
    lake: impl AsRef<OsStr>,
    catalog: Option<&Path>,
    extra: &[&str],
) -> Value {
    let mut args = compact_args(staged, lake, catalog);
    args.extend(extra.iter().map(|a| a.to_string()));
    serde_json::from_str(&fineo_ok(&args, 0)).expect("report json")
}

/// A path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in walk(from) {
        let rel = entry.strip_prefix(from).expect("prefix");
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&entry, &dest).expect("copy");
    }
}

/// Every file below `dir`, sorted.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The lake as other engines read it (`scripts/lake_dump.py`: deltalake + DuckDB + json).
pub fn lake_dump(lake: &Path) -> Value {
    lake_dump_with(lake, &[])
}

/// [`lake_dump`] with more script arguments.
pub fn lake_dump_with(lake: &Path, args: &[&str]) -> Value {
    let script = repo().join("scripts/lake_dump.py");
    let mut all: Vec<&OsStr> = vec![script.as_os_str(), lake.as_os_str()];
    all.extend(args.iter().map(OsStr::new));
    serde_json::from_slice(&python_ok(&all)).expect("lake_dump json")
}

/// Typed rows by `tenant/metric`, as read by deltalake (checked against DuckDB by the script).
pub fn typed_rows(dump: &Value) -> BTreeMap<String, Vec<Value>> {
    dump["typed"]
        .as_array()
        .expect("typed")
        .iter()
        .map(|t| {
            let key = format!(
                "{}/{}",
                t["tenant"].as_str().unwrap(),
                t["metric"].as_str().unwrap()
            );
            (key, t["rows"].as_array().unwrap().clone())
        })
        .collect()
}

/// Untyped lines by `tenant/metric/date`.
pub fn untyped_lines(dump: &Value) -> BTreeMap<String, Vec<Value>> {
    dump["untyped"]
        .as_array()
        .expect("untyped")
        .iter()
        .map(|t| {
            let key = format!(
                "{}/{}/{}",
                t["tenant"].as_str().unwrap(),
                t["metric"].as_str().unwrap(),
                t["date"].as_str().unwrap()
            );
            (key, t["lines"].as_array().unwrap().clone())
        })
        .collect()
}

/// The user-visible content of a lake, for whole-lake comparisons: typed rows, untyped lines,
/// quarantined records (without run ids), and the processed-object ledger.
pub fn lake_content(lake: &Path) -> Value {
    let dump = lake_dump(lake);
    let mut errors: Vec<Value> = dump["errors"]["lines"]
        .as_array()
        .expect("error lines")
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.as_object_mut().unwrap().remove("run_id");
            l
        })
        .collect();
    errors.sort_by_key(|v| v.to_string());
    serde_json::json!({
        "typed": typed_rows(&dump),
        "untyped": untyped_lines(&dump),
        "errors": errors,
        "ledger": ledger_keys(lake),
    })
}

/// Keys in the lake's ledger (every committed log version's entries).
pub fn ledger_keys(lake: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    for f in walk(&lake.join("_fineo/log")) {
        if f.extension().is_some_and(|e| e == "json") {
            let rec: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
            for e in rec["ledger"].as_array().unwrap() {
                keys.push(e["key"].as_str().unwrap().to_string());
            }
        }
    }
    keys.sort();
    keys
}

/// Asserts `actual` has the values in `expected` (a subset check on objects).
pub fn assert_subset(actual: &Value, expected: &Value, path: &str) {
    match expected {
        Value::Object(m) => {
            for (k, v) in m {
                assert_subset(&actual[k], v, &format!("{path}.{k}"));
            }
        }
        _ => assert_eq!(actual, expected, "at {path}"),
    }
}

/// `generate --out dir`: a sample archive; returns its ground truth.
pub fn generate(dir: &Path, records: u64, format: &str, seed: u64, days: u64) -> Value {
    generate_with(dir, records, format, seed, days, &[])
}

/// `generate` with more arguments (`--tenants`, `--metrics`, `--fields`).
pub fn generate_with(
    dir: &Path,
    records: u64,
    format: &str,
    seed: u64,
    days: u64,
    more: &[&str],
) -> Value {
    let (records, seed, days) = (records.to_string(), seed.to_string(), days.to_string());
    let mut args = vec![
        "generate",
        "--out",
        s(dir),
        "--records",
        &records,
        "--format",
        format,
        "--seed",
        &seed,
        "--days",
        &days,
    ];
    args.extend_from_slice(more);
    fineo_ok(&args, 0);
    serde_json::from_slice(&std::fs::read(dir.join("truth.json")).unwrap()).unwrap()
}

/// The truth's object keys in physical delivery order.
pub fn deliveries(truth: &Value) -> Vec<String> {
    serde_json::from_value(truth["deliveries"].clone()).unwrap()
}
