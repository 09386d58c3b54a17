//! The command line as users meet it: help, usage errors, job files, README examples.

use std::path::Path;
use std::process::Command;

use fineo_batch::jobfile::JobFile;

use crate::harness::*;

#[test]
fn help_and_usage_errors() {
    for cmd in [
        &["--help"][..],
        &["compact", "--help"],
        &["generate", "--help"],
        &["backup", "--help"],
        &["backup", "verify", "--help"],
        &["restore", "--help"],
        &["replay", "--help"],
        &["diff", "--help"],
        &["ingest", "--help"],
    ] {
        let out = fineo(cmd);
        assert_eq!(out.status.code(), Some(0), "{cmd:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
    assert_eq!(fineo(&["compact", "--no-such-flag"]).status.code(), Some(2));
    assert_eq!(fineo(&["frobnicate"]).status.code(), Some(2));
    let out = fineo(&[
        "compact",
        "--staged",
        "/nonexistent/staged",
        "--lake",
        "/tmp/x",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/staged") && err.contains("no such directory"),
        "{err}"
    );
    let out = fineo(&["compact", "--lake", "/tmp/x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--staged is required"));
}

#[test]
fn every_job_file_parses() {
    let mut n = 0;
    for f in walk(&repo().join("jobs")) {
        if f.extension().is_some_and(|e| e == "toml") {
            let job = JobFile::load(&f).unwrap_or_else(|e| panic!("{e}"));
            let steps = job
                .schedule
                .as_ref()
                .map(|s| s.steps.clone())
                .unwrap_or_default();
            if job.compact.is_some() || steps.iter().any(|s| s == "compact") {
                let c = job.compact.as_ref().expect("a [compact] table");
                assert!(c.staged.is_some() && c.lake.is_some(), "{}", f.display());
            }
            if steps.iter().any(|s| s == "backup") {
                let b = job
                    .backup
                    .as_ref()
                    .expect("a [backup] table for the backup step");
                let lake = b
                    .lake
                    .clone()
                    .or(job.compact.as_ref().and_then(|c| c.lake.clone()));
                assert!(
                    lake.is_some() && b.to.is_some(),
                    "{}: backup lake and to",
                    f.display()
                );
            }
            if let Some(r) = &job.replay {
                let lake = r
                    .lake
                    .clone()
                    .or(job.compact.as_ref().and_then(|c| c.lake.clone()));
                assert!(
                    r.staged.is_some() && lake.is_some(),
                    "{}: replay staged and lake",
                    f.display()
                );
            }
            if let Some(i) = &job.ingest {
                assert!(
                    i.source.is_some() && i.tenant.is_some() && i.staged.is_some(),
                    "{}: ingest source, tenant and staged",
                    f.display()
                );
                assert!(
                    i.metric.is_some() != i.metric_column.is_some(),
                    "{}: exactly one of metric / metric_column",
                    f.display()
                );
                if let Some(tz) = &i.timezone {
                    fineo_batch::ops::ingest::parse_timezone(tz)
                        .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                }
            }
            let tables = [
                job.compact.is_some(),
                job.backup.is_some(),
                job.replay.is_some(),
                job.ingest.is_some(),
            ];
            assert!(tables.iter().any(|t| *t), "{}", f.display());
            n += 1;
        }
    }
    assert!(n >= 5);
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "[compact]\nstaged = 3\n").unwrap();
    let err = JobFile::load(bad.path()).unwrap_err().to_string();
    assert!(err.contains(bad.path().to_str().unwrap()), "{err}");
}

#[test]
fn job_file_settings_and_flag_override() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = testdata("fixtures/dedup");
    let job = tmp.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "[compact]\nstaged = {:?}\nlake = {:?}\ncatalog = {:?}\nkeep = \"first\"\n",
            s(&fx.join("staged")),
            s(&tmp.path().join("lake")),
            s(&fx.join("catalog"))
        ),
    )
    .unwrap();
    let report_path = tmp.path().join("report.json");
    fineo_ok(
        &[
            "compact",
            "--job",
            s(&job),
            "--keep",
            "latest",
            "--report",
            s(&report_path),
        ],
        0,
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["records"]["written"], 4);
    let rows = typed_rows(&lake_dump(&tmp.path().join("lake")))["t1/boiler"].clone();
    assert_eq!(
        rows[0]["temperature"], 10.0,
        "--keep latest overrides the job file's first"
    );
    assert!(
        walk(&tmp.path().join("lake/_runs")).len() == 1,
        "report kept under _runs/"
    );
}

/// Runs every `$ fineo-batch ...` line of README.md, in order, in one scratch directory.
#[test]
fn readme_examples_run() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for line in readme.lines() {
        let Some(cmd) = line.trim().strip_prefix("$ fineo-batch ") else {
            continue;
        };
        let out = Command::new(env!("CARGO_BIN_EXE_fineo-batch"))
            .args(shell_words(cmd))
            .current_dir(tmp.path())
            .output()
            .unwrap();
        let code = out.status.code();
        assert!(
            code == Some(0) || (cmd.contains("--fail-on-error") && code == Some(3)),
            "README example `{cmd}` exited {code:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 3, "README has too few runnable examples");
    assert!(Path::new(&tmp.path().join("lake/_fineo")).is_dir());
    readme_schema_workflow_took_effect(&tmp.path().join("lake"));
}

/// The README's worked schema example moved `rssi` and `fw` of t01's boiler into typed columns.
fn readme_schema_workflow_took_effect(lake: &Path) {
    let dump = lake_dump(lake);
    let rows = &typed_rows(&dump)["t01/boiler"];
    let filled = |c: &str| rows.iter().filter(|r| !r[c].is_null()).count();
    assert!(
        filled("rssi") > 10 && filled("firmware") > 10,
        "{:?}",
        rows.first()
    );
    assert!(rows
        .iter()
        .all(|r| r["rssi"].is_null() || r["rssi"].is_i64()));
    for (part, lines) in untyped_lines(&dump) {
        if part.starts_with("t01/boiler/") {
            assert!(lines
                .iter()
                .all(|l| l.get("rssi").is_none() && l.get("fw").is_none()));
        } else if part.starts_with("t02/boiler/") {
            assert!(
                lines.iter().any(|l| l.get("rssi").is_some()),
                "t02 is not re-typed"
            );
        }
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lake.parent().unwrap().join("t01.json")).unwrap())
            .unwrap();
    assert_eq!(
        doc["metrics"]["boiler"]["fields"]["firmware"]["aliases"],
        serde_json::json!(["fw"])
    );
}

fn shell_words(cmd: &str) -> Vec<String> {
    cmd.split_whitespace().map(str::to_string).collect()
}

#[test]
fn container_logs_are_json_lines_and_summary_is_plain() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = testdata("fixtures/dedup");
    let out = Command::new(env!("CARGO_BIN_EXE_fineo-batch"))
        .args([
            "--log-format",
            "json",
            "compact",
            "--staged",
            s(&fx.join("staged")),
            "--lake",
        ])
        .arg(tmp.path().join("lake"))
        .args(["--catalog", s(&fx.join("catalog"))])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() >= 4,
        "progress is logged when stderr is not a terminal: {stderr}"
    );
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("7 in = 4 written + 3 duplicates (1 exact, 2 conflicting) + 0 errors  [conservation ok]"), "{stdout}");
}
