//! `ingest` (SPEC 13) through the real binary, on a local directory and on S3: customer export
//! files written by other implementations (Python's csv, pyarrow, fastavro) in every format,
//! gzip or not, become staged objects that `compact` turns into exactly the rows of the export
//! (checked through deltalake); CSV types proven over the whole file; every bad row named in the
//! error file; over the limit nothing ingested; unchanged files are no-ops, changed ones win;
//! naive times need a zone (DST-aware); epoch units checked; a crash anywhere then a rerun
//! writes the same objects; a dry run writes nothing and pins its settings in a job file.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use crate::backup::json_run;
use crate::fault_store::*;
use crate::harness::*;

/// Writes the exports of `rows` rows below `dir`; returns the rows they hold.
fn exports(dir: &Path, rows: usize) -> Vec<Value> {
    let script = repo().join("scripts/write_exports.py");
    let rows = rows.to_string();
    serde_json::from_slice(&python_ok(&[
        script.as_os_str(),
        dir.as_os_str(),
        rows.as_ref(),
    ]))
    .unwrap()
}

/// A catalog declaring the export's metric `reading` for tenant t07 (some fields left
/// undeclared, so they stay untyped and are proposed).
fn catalog(dir: &Path) -> PathBuf {
    let c = dir.join("catalog");
    std::fs::create_dir_all(&c).unwrap();
    let doc = json!({"tenant": "t07", "metrics": {"reading": {"aliases": [], "fields": {
        "temp": {"type": "double", "aliases": []},
        "count": {"type": "long", "aliases": []},
        "ok": {"type": "boolean", "aliases": []},
        "device": {"type": "string", "aliases": []}
    }, "hidden": []}}});
    std::fs::write(c.join("t07.json"), doc.to_string()).unwrap();
    c
}

fn ingest(source: &str, staged: &str, extra: &[&str], code: i32) -> Value {
    let mut args = vec![
        "ingest",
        source,
        "--tenant",
        "t07",
        "--staged",
        staged,
        "--metric",
        "reading",
        "--timestamp-column",
        "ts",
    ];
    args.extend(extra);
    json_run(&args, code)
}

fn file_of(report: &Value) -> &Value {
    &report["ingest"]["files"][0]
}

/// The typed rows of t07/reading as (ts, temp, count, ok, device), sorted.
fn typed(dump: &Value) -> Vec<(i64, f64, i64, bool, String)> {
    let mut rows: Vec<_> = typed_rows(dump)["t07/reading"]
        .iter()
        .map(|r| {
            (
                r["timestamp"].as_i64().unwrap(),
                r["temp"].as_f64().unwrap(),
                r["count"].as_i64().unwrap(),
                r["ok"].as_bool().unwrap(),
                r["device"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    rows
}

fn expected(rows: &[Value]) -> Vec<(i64, f64, i64, bool, String)> {
    rows.iter()
        .map(|r| {
            (
                r["ts"].as_i64().unwrap(),
                r["temp"].as_f64().unwrap(),
                r["count"].as_i64().unwrap(),
                r["ok"].as_bool().unwrap(),
                r["device"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every format, gzip or not, one file or a prefix: the lake holds exactly the export's rows,
/// typed as declared, the undeclared columns untyped as text (ids with leading zeros and 19
/// digits stay text, notes keep their commas, quotes and newlines), and proposals see them.
fn every_format_becomes_the_exports_rows(backend: Backend) {
    let site = Site::new(backend);
    let local = site.scratch().join("exports");
    let rows = exports(&local, 120);
    let exports_url = site.put_tree(&local, "exports");
    let cat = catalog(site.scratch());
    let want = expected(&rows);
    let files = [
        "export.csv",
        "export.csv.gz",
        "export-semicolon.csv.gz",
        "export.jsonl",
        "export.parquet",
        "export-null.avro",
        "export-deflate.avro",
        "export-snappy.avro",
        "export-zstandard.avro",
        "export-bzip2.avro",
        "export-xz.avro",
    ];
    let formats = [
        "csv", "csv", "csv", "jsonl", "parquet", "avro", "avro", "avro", "avro", "avro", "avro",
    ];
    for (i, (name, format)) in files.iter().zip(formats).enumerate() {
        let staged = site.url(&format!("staged-{i}"));
        let r = ingest(&format!("{exports_url}/{name}"), &staged, &[], 0);
        let f = file_of(&r);
        assert_eq!(
            (f["status"].as_str(), f["format"].as_str()),
            (Some("ingested"), Some(format)),
            "{name}: {f}"
        );
        assert_eq!(f["rows"], 120, "{name}");
        assert_eq!(f["staged_rows"], 120, "{name}");
        assert_eq!(f["gzip"], name.ends_with(".gz"), "{name}");
        let lake = format!("lake-{i}");
        let c = compact(&staged, site.url(&lake), Some(&cat), &[]);
        assert_eq!(c["records"]["records_in"], 120, "{name}");
        assert_eq!(c["records"]["written"], 120, "{name}");
        let dump = site.dump(&lake);
        assert_eq!(typed(&dump), want, "{name}: typed rows");
        let lines: Vec<Value> = untyped_lines(&dump).into_values().flatten().collect();
        assert_eq!(
            lines.len(),
            120,
            "{name}: one untyped line per row (serial, note, ...)"
        );
        let by_ts = |ts: i64| lines.iter().find(|l| l["timestamp"] == ts).unwrap().clone();
        for r in rows.iter().take(8) {
            let l = by_ts(r["ts"].as_i64().unwrap());
            assert_eq!(l["serial"], r["serial"], "{name}");
            assert_eq!(l["note"], r["note"], "{name}");
        }
        if name.ends_with(".jsonl") || name.ends_with(".parquet") {
            let l = by_ts(rows[3]["ts"].as_i64().unwrap());
            let nested: Value = serde_json::from_str(l["nested"].as_str().unwrap()).unwrap();
            assert_eq!(
                nested,
                json!({"a": rows[3]["count"], "b": [1, 2]}),
                "{name}"
            );
        }
        let proposals: Value = serde_json::from_slice(
            &std::fs::read(site.local(&lake).join("_proposals/t07.json")).unwrap(),
        )
        .unwrap();
        assert!(
            proposals["metrics"]["reading"]["fields"]["serial"].is_object(),
            "{name}: {proposals}"
        );
    }
    // A prefix of many files: each is its own source.
    let r = ingest(
        &exports_url,
        &site.url("staged-all"),
        &["--format", "auto"],
        0,
    );
    assert_eq!(r["ingest"]["files"].as_array().unwrap().len(), files.len());
    assert_eq!(r["ingest"]["staged_rows"], 120 * files.len());
}
crate::both_backends! { fn every_format_becomes_the_exports_rows; }

/// Writes `text` as `name` below the site's location `dir`; returns its URL.
fn put(site: &Site, dir: &str, name: &str, bytes: &[u8]) -> String {
    block_on(async {
        site.location(dir)
            .put(name, bytes.to_vec().into())
            .await
            .unwrap()
    });
    format!("{}/{name}", site.url(dir))
}

/// Keys below a location, bookkeeping (`_ingest/`) apart.
fn objects(site: &Site, name: &str) -> Vec<String> {
    let loc = site.location(name);
    let mut keys: Vec<String> = block_on(async { loc.list("").await.unwrap() })
        .iter()
        .map(|m| loc.relative(&m.location))
        .filter(|k| !k.starts_with("_ingest/"))
        .collect();
    keys.sort();
    keys
}

/// CSV types are sniffed from the start, the middle and the end, then proven over the whole
/// file: a value the samples did not see widens its column to text (reported), ids with
/// leading zeros or 19 digits and dates like 2024/12/12 stay text.
#[test]
fn csv_types_are_proven_over_the_whole_file() {
    let site = Site::new(Backend::Fs);
    let mut text = String::from("ts,level,id,big,day,ratio\n");
    for i in 0..30_000u64 {
        let level = if i == 12_345 {
            "n/a".to_string()
        } else {
            (i % 97).to_string()
        };
        text.push_str(&format!(
            "{},{level},{:05},{},2024/12/{:02},{}.5\n",
            1_767_225_600_000u64 + i,
            i % 1000,
            1_000_000_000_000_000_000u64 + i,
            i % 28 + 1,
            i % 10
        ));
    }
    let url = put(&site, "exports", "levels.csv", text.as_bytes());
    let r = ingest(&url, &site.url("staged"), &["--dry-run"], 0);
    let f = file_of(&r);
    let types: Vec<(String, String)> = f["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["column"].as_str().unwrap().into(),
                c["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    let t = |c: &str, ty: &str| (c.to_string(), ty.to_string());
    assert_eq!(
        types,
        [
            t("ts", "long"),
            t("level", "text"),
            t("id", "text"),
            t("big", "text"),
            t("day", "text"),
            t("ratio", "double")
        ]
    );
    assert_eq!(
        f["widened"],
        json!([{"column": "level", "sniffed": "long", "now": "text", "value": "n/a", "record": 12346}])
    );
    assert_eq!(
        f["samples"][0],
        r#"{"tenant":"t07","metric":"reading","timestamp":1767225600000,"level":"0","id":"00000","big":"1000000000000000000","day":"2024/12/01","ratio":0.5}"#
    );
    assert_eq!(
        objects(&site, "staged"),
        Vec::<String>::new(),
        "a dry run writes nothing"
    );
}

/// Every bad row is in the error file with its source, record, line, byte offset, column, raw
/// value and reason; the good rows are all ingested, or over --max-bad-rows none; bad files
/// fail with a clear reason and leave nothing.
fn bad_rows_and_bad_files(backend: Backend) {
    let site = Site::new(backend);
    let mut csv: Vec<u8> =
        b"ts,metric,tenant,v\n1767225600000,m1,t07,1\n1767225601000,m1,t07,2,3\n".to_vec();
    csv.extend_from_slice(b"not-a-time,m1,t07,4\n1767225603000,,t07,5\n1767225604000,m1,t08,6\n");
    csv.extend_from_slice(
        b"1767225605000,m1,t07,\xff\n1767225606000,m1,t07,7\n1767225607000,m1,t07,\"open\n",
    );
    let url = put(&site, "exports", "bad.csv", &csv);
    let staged = site.url("staged");
    let mut args = vec![
        "ingest",
        &url,
        "--tenant",
        "t07",
        "--staged",
        &staged,
        "--metric-column",
        "metric",
        "--timestamp-column",
        "ts",
    ];
    args.extend(["--max-bad-rows", "1"]);
    let r = json_run(&args, 1);
    let f = file_of(&r);
    assert_eq!(
        (
            f["status"].as_str(),
            f["rows"].as_u64(),
            f["bad_rows"].as_u64()
        ),
        (Some("failed"), Some(8), Some(6))
    );
    assert!(
        f["reason"]
            .as_str()
            .unwrap()
            .contains("more than --max-bad-rows 1"),
        "{f}"
    );
    assert_eq!(
        objects(&site, "staged"),
        Vec::<String>::new(),
        "nothing half-written"
    );
    args.truncate(args.len() - 2);
    args.extend(["--max-bad-rows", "6"]);
    let r = json_run(&args, 0);
    let f = file_of(&r);
    assert_eq!(
        (f["status"].as_str(), f["staged_rows"].as_u64()),
        (Some("ingested"), Some(2))
    );
    let reasons: Vec<(u64, String, Option<String>)> = f["bad"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["record"].as_u64().unwrap(),
                b["reason"].as_str().unwrap().to_string(),
                b["column"].as_str().map(str::to_string),
            )
        })
        .collect();
    let b =
        |r: u64, reason: &str, col: Option<&str>| (r, reason.to_string(), col.map(str::to_string));
    assert_eq!(
        reasons,
        [
            b(2, "ragged_row", None),
            b(3, "bad_timestamp", Some("ts")),
            b(4, "missing_metric", Some("metric")),
            b(5, "tenant_mismatch", Some("tenant")),
            b(6, "invalid_utf8", Some("v")),
            b(8, "unterminated_quote", None),
        ]
    );
    let errors = f["error_file"].as_str().unwrap();
    let lines = String::from_utf8(
        block_on(async {
            site.location("staged")
                .get_opt(errors)
                .await
                .unwrap()
                .unwrap()
        })
        .to_vec(),
    )
    .unwrap();
    let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert!(
        first["source"]
            .as_str()
            .unwrap()
            .ends_with("/exports/bad.csv"),
        "{first}"
    );
    assert_eq!(
        (
            first["line"].clone(),
            first["offset"].clone(),
            first["raw"].clone()
        ),
        (json!(3), json!(42), json!("1767225601000,m1,t07,2,3"))
    );
    assert_eq!(lines.lines().count(), 6);
    let c = compact(&staged, site.url("lake"), None, &[]);
    assert_eq!(c["records"]["records_in"], 2);
    // Files that cannot be read at all.
    let cases: [(&str, &[u8], &[&str], &str); 5] = [
        ("empty.csv", b"", &[], "an empty file"),
        (
            "noheader.csv",
            b"1767225600000,1\n1767225601000,2\n",
            &[],
            "no column \"ts\" in the header",
        ),
        (
            "truncated.parquet",
            b"PAR1\x15\x00\x15\x00PAR",
            &[],
            "not a readable Parquet file",
        ),
        (
            "claims.parquet",
            b"ts,v\n1767225600000,1\n",
            &["--format", "parquet"],
            "not a readable Parquet file",
        ),
        (
            "cut.avro",
            b"Obj\x01\x04\x14avro.codec\x08null",
            &[],
            "not a readable Avro file",
        ),
    ];
    for (name, bytes, extra, why) in cases {
        let url = put(&site, "exports", name, bytes);
        let target = site.url("staged-bad");
        let r = ingest(&url, &target, extra, 1);
        let f = file_of(&r);
        assert_eq!(f["status"], "failed", "{name}: {f}");
        assert!(f["reason"].as_str().unwrap().contains(why), "{name}: {f}");
        assert_eq!(objects(&site, "staged-bad"), Vec::<String>::new(), "{name}");
    }
}
crate::both_backends! { fn bad_rows_and_bad_files; }

/// Re-ingesting an unchanged file writes nothing; a changed file is ingested again and its
/// rows win over the earlier ones (a later delivery time), after compaction too.
fn unchanged_files_are_noops_and_changed_ones_win(backend: Backend) {
    let site = Site::new(backend);
    let v1 = "ts,temp,count,ok,device\n1767225600000,1.5,1,true,a\n1767225660000,2.5,2,false,b\n";
    let url = put(&site, "exports", "e.csv", v1.as_bytes());
    let staged = site.url("staged");
    let first = ingest(&url, &staged, &[], 0);
    let objs = objects(&site, "staged");
    assert_eq!(
        file_of(&first)["objects"].as_array().unwrap().len(),
        objs.len()
    );
    let again = ingest(&url, &staged, &[], 0);
    assert_eq!(file_of(&again)["status"], "unchanged");
    assert_eq!(objects(&site, "staged"), objs, "nothing written");
    let cat = catalog(site.scratch());
    compact(&staged, site.url("lake"), Some(&cat), &[]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let v2 = "ts,temp,count,ok,device\n1767225600000,9.5,1,true,a\n1767225660000,2.5,2,false,b\n";
    put(&site, "exports", "e.csv", v2.as_bytes());
    let changed = ingest(&url, &staged, &[], 0);
    assert_eq!(file_of(&changed)["status"], "ingested");
    assert_eq!(objects(&site, "staged").len(), objs.len() * 2);
    let c = compact(&staged, site.url("lake"), Some(&cat), &[]);
    assert_eq!(c["records"]["records_in"], 2);
    let rows = typed(&site.dump("lake"));
    assert_eq!(
        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        [9.5, 2.5],
        "the changed file's rows win"
    );
}
crate::both_backends! { fn unchanged_files_are_noops_and_changed_ones_win; }

/// Naive local times need --timezone (never the host's zone); offsets and Z are honoured; a
/// time that does not exist or happens twice (DST) is a bad row unless a policy says; epoch
/// seconds read as milliseconds are bad rows, not 1970 dates.
#[test]
fn times_zones_and_epoch_units() {
    let site = Site::new(Backend::Fs);
    let staged = site.url("staged");
    let naive = "ts,temp\n2026-01-01 01:00:00,1\n2026-03-29 02:30:00,2\n2026-10-25 02:30:00,3\n2026-01-01T00:00:00Z,4\n2026-01-01T02:00:00+02:00,5\n";
    let url = put(&site, "exports", "naive.csv", naive.as_bytes());
    let r = ingest(&url, &staged, &["--dry-run", "--max-bad-rows", "5"], 0);
    let f = file_of(&r);
    assert_eq!(f["bad_rows"], 3);
    assert!(
        f["bad"][0]["message"]
            .as_str()
            .unwrap()
            .contains("give --timezone"),
        "{f}"
    );
    let r = ingest(
        &url,
        &staged,
        &[
            "--dry-run",
            "--max-bad-rows",
            "5",
            "--timezone",
            "Europe/Berlin",
        ],
        0,
    );
    let f = file_of(&r);
    let reasons: Vec<&str> = f["bad"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["message"].as_str().unwrap())
        .collect();
    assert_eq!(f["bad_rows"], 2, "{reasons:?}");
    assert!(
        reasons[0].contains("does not exist") && reasons[1].contains("occurs twice"),
        "{reasons:?}"
    );
    assert!(
        f["samples"][0]
            .as_str()
            .unwrap()
            .contains("\"timestamp\":1767225600000"),
        "{f}"
    );
    let r = ingest(
        &url,
        &staged,
        &[
            "--dry-run",
            "--timezone",
            "Europe/Berlin",
            "--ambiguous",
            "earliest",
            "--nonexistent",
            "forward",
        ],
        0,
    );
    let ts: Vec<i64> = file_of(&r)["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l.as_str().unwrap()).unwrap()["timestamp"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        ts,
        [
            1_767_225_600_000,
            1_774_747_800_000,
            1_792_888_200_000,
            1_767_225_600_000,
            1_767_225_600_000
        ]
    );
    let seconds = "ts,temp\n1767225600,1\n1767225660,2\n";
    let url = put(&site, "exports", "seconds.csv", seconds.as_bytes());
    let r = ingest(
        &url,
        &staged,
        &[
            "--dry-run",
            "--timestamp-format",
            "epoch_ms",
            "--max-bad-rows",
            "5",
        ],
        0,
    );
    let f = file_of(&r);
    assert_eq!(f["bad_rows"], 2);
    assert!(
        f["bad"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not a plausible time (is the unit wrong?)"),
        "{f}"
    );
    let r = ingest(&url, &staged, &["--dry-run"], 0);
    assert_eq!(
        file_of(&r)["samples"][0].as_str().unwrap(),
        r#"{"tenant":"t07","metric":"reading","timestamp":1767225600000,"temp":1}"#
    );
}

/// A dry run shows the format, dialect, columns with their types, samples and errors and
/// writes nothing; --write-job pins its settings, and ingesting with that job file is the
/// same ingest.
#[test]
fn a_dry_run_writes_nothing_and_pins_a_job_file() {
    let site = Site::new(Backend::Fs);
    let local = site.scratch().join("exports");
    exports(&local, 20);
    let url = s(&local.join("export-semicolon.csv.gz")).to_string();
    let staged = site.url("staged");
    let job = site.scratch().join("ingest.toml");
    let out = fineo_ok(
        &[
            "ingest",
            &url,
            "--tenant",
            "t07",
            "--staged",
            &staged,
            "--metric",
            "reading",
            "--timestamp-column",
            "ts",
            "--rename",
            "note=comment",
            "--dry-run",
            "--write-job",
            s(&job),
        ],
        0,
    );
    assert!(
        out.contains("csv (gzip)") && out.contains("delimiter ';'"),
        "{out}"
    );
    assert!(
        out.contains("column \"note\" -> field comment (text)"),
        "{out}"
    );
    assert!(
        out.contains("column \"temp\" -> field temp (double)"),
        "{out}"
    );
    assert!(out.contains("sample {\"tenant\":\"t07\""), "{out}");
    assert_eq!(objects(&site, "staged"), Vec::<String>::new());
    let text = std::fs::read_to_string(&job).unwrap();
    assert!(
        text.contains("delimiter = \";\"") && text.contains("format = \"csv\""),
        "{text}"
    );
    fineo_batch::jobfile::JobFile::load(&job).unwrap();
    let r = json_run(&["ingest", "--job", s(&job)], 0);
    assert_eq!(file_of(&r)["staged_rows"], 20);
    let c = compact(
        &staged,
        site.url("lake"),
        Some(&catalog(site.scratch())),
        &[],
    );
    assert_eq!(c["records"]["written"], 20);
    let lines: Vec<Value> = untyped_lines(&site.dump("lake"))
        .into_values()
        .flatten()
        .collect();
    assert!(lines
        .iter()
        .all(|l| l.get("comment").is_some() && l.get("note").is_none()));
}

/// A dead store at every write of an ingest (objects, error file, ledger record), then a
/// rerun: the same staged objects, nothing duplicated; and compaction never reads the objects
/// of an ingest that did not finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_every_write_of_an_ingest_then_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("exports");
    exports(&local, 400);
    let mut csv = std::fs::read(local.join("export.csv")).unwrap();
    csv.extend_from_slice(b"1767225600000,x,y\n");
    std::fs::write(local.join("export.csv"), &csv).unwrap();
    let run = |staged: fineo_batch::storage::Location| {
        let local = local.clone();
        async move {
            let sources = fineo_batch::ops::ingest::SourceFiles::resolve(
                s(&local.join("export.csv")),
                &Default::default(),
            )
            .await?;
            let mut settings = fineo_batch::ops::ingest::IngestSettings::new(
                "t07",
                fineo_batch::ops::ingest::MetricFrom::Fixed("reading".into()),
            )?;
            settings.timestamp_column = "ts".into();
            settings.max_bad_rows = 5;
            fineo_batch::ops::Ingest::new(sources, staged, settings)
                .with_max_object_bytes(16 << 10)
                .execute()
                .await
        }
    };
    let plain = |p: &Path| fineo_batch::storage::Location::parse(s(p)).unwrap();
    let reference = tmp.path().join("reference");
    let (loc, counter) = faulty(&plain(&reference), Scope::Writes, Mode::Dead, u64::MAX);
    let report = run(loc).await.unwrap();
    assert_eq!(report.ingest.as_ref().unwrap().files[0].status, "ingested");
    let writes = counter.count.load(Ordering::SeqCst);
    assert!(writes >= 5, "{writes} writes");
    let files = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        walk(dir)
            .into_iter()
            .map(|f| {
                (
                    f.strip_prefix(dir).unwrap().to_str().unwrap().to_string(),
                    std::fs::read(&f).unwrap(),
                )
            })
            .filter(|(k, _)| !k.contains('#'))
            .collect()
    };
    let expected = files(&reference);
    for fail_at in 0..writes {
        let staged = tmp.path().join(format!("staged-{fail_at}"));
        let (loc, _) = faulty(&plain(&staged), Scope::Writes, Mode::Dead, fail_at);
        assert!(run(loc).await.is_err(), "write #{fail_at}");
        if fail_at == writes / 2 {
            let lake = tmp.path().join("lake-mid");
            let c = compact(&staged, &lake, None, &[]);
            assert_eq!(
                c["objects"]["read"], 0,
                "objects of an unfinished ingest are not read"
            );
            assert!(c["objects"]["pending_ingest"].as_u64().unwrap() > 0);
        }
        run(plain(&staged)).await.unwrap();
        assert_eq!(
            files(&staged),
            expected,
            "after a failure at write #{fail_at} of {writes}"
        );
    }
    eprintln!("ingest fault points tried: {writes} writes");
}

/// A row over the record limit (a CSV row, a JSON line) is a bad row named by file, record and
/// line, not an out-of-memory; the rows around it are staged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_row_is_a_bad_row() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    std::fs::create_dir_all(&exports).unwrap();
    let big = "x".repeat(3000);
    let csv = format!("ts,v,note\n1767225600000,1,a\n1767225601000,2,{big}\n1767225602000,3,c\n");
    std::fs::write(exports.join("big.csv"), csv).unwrap();
    let jsonl = format!(
        "{{\"ts\":1767225600000,\"v\":1}}\n{{\"ts\":1767225601000,\"v\":2,\"note\":\"{big}\"}}\n{{\"ts\":1767225602000,\"v\":3}}\n"
    );
    std::fs::write(exports.join("big.jsonl"), jsonl).unwrap();
    for name in ["big.csv", "big.jsonl"] {
        let staged = tmp.path().join(format!("staged-{name}"));
        let sources = fineo_batch::ops::ingest::SourceFiles::resolve(
            s(&exports.join(name)),
            &Default::default(),
        )
        .await
        .unwrap();
        let mut settings = fineo_batch::ops::ingest::IngestSettings::new(
            "t07",
            fineo_batch::ops::ingest::MetricFrom::Fixed("reading".into()),
        )
        .unwrap();
        settings.timestamp_column = "ts".into();
        settings.max_bad_rows = 1;
        let limits = fineo_batch::decode::Limits {
            max_record_bytes: 1024,
            ..Default::default()
        };
        let report = fineo_batch::ops::Ingest::new(
            sources,
            fineo_batch::storage::Location::parse(s(&staged)).unwrap(),
            settings,
        )
        .with_limits(limits)
        .execute()
        .await
        .unwrap();
        let f = serde_json::to_value(&report.ingest.as_ref().unwrap().files[0]).unwrap();
        assert_eq!(
            (
                f["status"].as_str(),
                f["rows"].as_u64(),
                f["bad_rows"].as_u64(),
                f["staged_rows"].as_u64()
            ),
            (Some("ingested"), Some(3), Some(1), Some(2)),
            "{name}: {f}"
        );
        let bad = &f["bad"][0];
        assert_eq!(
            (bad["reason"].as_str(), bad["record"].as_u64()),
            (Some("oversized_row"), Some(2)),
            "{name}: {bad}"
        );
        assert_eq!(
            bad["line"].as_u64(),
            Some(if name == "big.csv" { 3 } else { 2 }),
            "{name}: {bad}"
        );
    }
}
