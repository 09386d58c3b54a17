//! The deployment artifacts under jobs/ (SPEC 14): the Dockerfile, the CloudFormation
//! template and its Step Functions state machine pass their linters (hadolint, cfn-lint,
//! statelint from the venv); every job file and every job definition's command gets past the
//! binary's argument and settings checks; and the state machine runs against the S3 server
//! through `tests/deploy/sfn_local.py` (a local executor of the states it uses, every Batch
//! job through the real binary): the lake equals the generator's truth, the backup verifies,
//! a step that keeps failing is retried and then pages, replay and ingest run from a Map over
//! items read from S3, and a definition naming a job definition or a parameter that does not
//! exist is refused.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use fineo_batch::jobfile::JobFile;

use crate::harness::*;

/// `compact --reconcile` (list the whole staged prefix instead of starting from the
/// watermark) is not in the binary yet, so the state machine's reconcile branch is only
/// checked statically (sfn_local.py --check: the override appends `--reconcile` to the compact
/// job definition's command and nothing else). Set this to `true` once the flag exists: the
/// reconcile command then goes through the binary's checks with the others, and an execution
/// with `{"reconcile": true}` runs end to end. While it is `false`, a test fails as soon as
/// the binary accepts the flag, so the switch is not forgotten.
const RECONCILE_FLAG: bool = true;

/// The template, relative to the repository.
const TEMPLATE: &str = "jobs/fineo-batch.cfn.yaml";
/// The stack's KMS key (the S3 server takes any key id and records it as given).
const KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
/// An endpoint nothing listens on.
const DEAD_ENDPOINT: &str = "http://127.0.0.1:1";
/// A bucket the S3 server does not have.
const MISSING_BUCKET: &str = "fineo-no-such-bucket";
const BATCH_SYNC: &str = "arn:aws:states:::batch:submitJob.sync";

fn template() -> PathBuf {
    repo().join(TEMPLATE)
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_fineo-batch")
}

/// A program of the venv `harness::python()` belongs to (`scripts/pyenv.sh` pins them).
fn venv_tool(name: &str) -> PathBuf {
    let tool = python()
        .parent()
        .expect("the venv's bin directory")
        .join(name);
    assert!(
        tool.exists(),
        "{} is missing: run `scripts/pyenv.sh` (make test does)",
        tool.display()
    );
    tool
}

/// A process's exit code and output, for assertion messages.
fn shown(out: &Output) -> String {
    format!(
        "exit code {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a tool of the venv in the repository.
fn run_tool(name: &str, args: &[&OsStr]) -> Output {
    Command::new(venv_tool(name))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"))
}

/// `(bucket, key prefix)` of an `s3://bucket/prefix` URL.
fn split_s3(url: &str) -> (String, String) {
    let rest = url.strip_prefix("s3://").expect("an s3:// URL");
    let (bucket, prefix) = rest.split_once('/').expect("a bucket and a prefix");
    (bucket.to_string(), prefix.trim_end_matches('/').to_string())
}

/// The stack parameters (`KEY=VALUE`) of a deployment over these locations.
fn stack_params(staged: &str, lake: &str, backup: &str) -> Vec<String> {
    let mut params = Vec::new();
    for (name, url) in [("Staged", staged), ("Lake", lake), ("Backup", backup)] {
        let (bucket, prefix) = split_s3(url);
        params.push(format!("{name}Bucket={bucket}"));
        params.push(format!("{name}Prefix={prefix}"));
    }
    params.extend([
        format!("KmsKeyArn={KMS_KEY}"),
        "ImageUri=123456789012.dkr.ecr.us-east-1.amazonaws.com/fineo/batch:test".to_string(),
        "Subnets=subnet-0123456789abcdef0,subnet-0fedcba9876543210".to_string(),
        "SecurityGroups=sg-0123456789abcdef0".to_string(),
    ]);
    params
}

/// Parameters of a production-like stack, for the checks that reach no S3 server.
fn offline_params() -> Vec<String> {
    stack_params(
        "s3://fineo-staged/archive",
        "s3://fineo-lake/v1",
        "s3://fineo-backup/v1",
    )
}

/// One run of `tests/deploy/sfn_local.py`: its process output and its JSON summary.
struct Run {
    out: Output,
    summary: Value,
}

static RUNS: AtomicU64 = AtomicU64::new(0);

/// Runs `sfn_local.py TEMPLATE --param ... EXTRA --summary <dir>/summary-N.json` with the
/// environment that reaches the S3 server (the Batch jobs and ItemReader inherit it).
fn sfn_local(dir: &Path, template: &Path, params: &[String], extra: &[&str]) -> Run {
    let n = RUNS.fetch_add(1, Ordering::SeqCst);
    let summary = dir.join(format!("summary-{n}.json"));
    let mut cmd = Command::new(python());
    cmd.arg(repo().join("tests/deploy/sfn_local.py"))
        .arg(template);
    for p in params {
        cmd.arg("--param").arg(p);
    }
    // The template has two state machines: runs, dumps and --definition runs take the hourly
    // one unless the caller names one; a plain --check validates both.
    let plain_check = extra.contains(&"--check") && !extra.contains(&"--definition");
    if !plain_check && !extra.contains(&"--state-machine") {
        cmd.args(["--state-machine", "StateMachine"]);
    }
    let out = cmd
        .args(extra)
        .arg("--summary")
        .arg(&summary)
        .envs(s3_env())
        .output()
        .expect("run sfn_local.py");
    let summary = match std::fs::read(summary) {
        Ok(bytes) => serde_json::from_slice(&bytes).expect("summary json"),
        Err(_) => Value::Null,
    };
    Run { out, summary }
}

/// `sfn_local.py --check`: the static validation, nothing runs.
fn sfn_check(dir: &Path, template: &Path, params: &[String], extra: &[&str]) -> Run {
    let mut args = vec!["--check"];
    args.extend_from_slice(extra);
    sfn_local(dir, template, params, &args)
}

/// An execution of the template's state machine, Batch jobs through the binary, no sleeping
/// between retries.
fn sfn_execute(dir: &Path, params: &[String], extra: &[&str]) -> Run {
    let mut args = vec!["--binary", binary(), "--time-scale", "0"];
    args.extend_from_slice(extra);
    sfn_local(dir, &template(), params, &args)
}

/// The state machine's definition with its substitutions, as Step Functions would get it.
fn definition(dir: &Path, params: &[String]) -> (PathBuf, Value) {
    definition_of(dir, params, "StateMachine")
}

/// [`definition`] of the state machine `machine` (logical id).
fn definition_of(dir: &Path, params: &[String], machine: &str) -> (PathBuf, Value) {
    let n = RUNS.fetch_add(1, Ordering::SeqCst);
    let file = dir.join(format!("definition-{n}.json"));
    let run = sfn_local(
        dir,
        &template(),
        params,
        &["--state-machine", machine, "--dump-definition", s(&file)],
    );
    assert_eq!(run.out.status.code(), Some(0), "{}", shown(&run.out));
    let def = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    (file, def)
}

fn assert_succeeded(run: &Run) {
    assert!(
        run.out.status.success() && run.summary["status"] == "SUCCEEDED",
        "the execution did not succeed: {}\nsummary: {:#}",
        shown(&run.out),
        run.summary
    );
}

/// The top-level states an execution went through.
fn path(summary: &Value) -> Vec<String> {
    serde_json::from_value(summary["path"].clone()).expect("path")
}

/// The one visit of a state (`Map[i]/State` inside a Map).
fn visit<'a>(summary: &'a Value, state: &str) -> &'a Value {
    let visits = visits(summary, state);
    assert_eq!(visits.len(), 1, "visits of {state}: {summary:#}");
    visits[0]
}

/// Every visit of a state, in order.
fn visits<'a>(summary: &'a Value, state: &str) -> Vec<&'a Value> {
    summary["states"]
        .as_array()
        .expect("states")
        .iter()
        .filter(|v| v["state"] == state)
        .collect()
}

/// The exit codes of a visit's attempts.
fn exit_codes(visit: &Value) -> Vec<i64> {
    visit["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["exit_code"].as_i64().expect("an exit code"))
        .collect()
}

/// The `--json` report a task's last attempt printed (it must have exited 0).
fn report_of(summary: &Value, state: &str) -> Value {
    let last = visit(summary, state)["attempts"]
        .as_array()
        .expect("attempts")
        .last()
        .unwrap_or_else(|| panic!("{state} ran no job"))
        .clone();
    assert_eq!(last["exit_code"], 0, "{state}: {last:#}");
    serde_json::from_str(last["stdout"].as_str().expect("stdout")).expect("the job's report")
}

/// Runs the binary with `argv` where nothing answers on S3.
fn at_dead_endpoint(argv: &[String], dir: &Path) -> Output {
    Command::new(binary())
        .args(argv)
        .current_dir(dir)
        .env("AWS_ENDPOINT_URL", DEAD_ENDPOINT)
        .env("AWS_ACCESS_KEY_ID", "AKIAFINEODEADEND0001")
        .env("AWS_SECRET_ACCESS_KEY", "dead-end")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run fineo-batch")
}

/// The Dockerfile passes hadolint at every level, the template cfn-lint (errors, warnings and
/// informational checks), the definition statelint; each linter refuses a broken copy, so a
/// linter that accepts anything would be noticed.
#[test]
fn the_dockerfile_the_template_and_the_state_machine_pass_their_linters() {
    let tmp = tempfile::tempdir().unwrap();
    let dockerfile = repo().join("jobs/Dockerfile");
    let hadolint = |file: &Path| {
        run_tool(
            "hadolint",
            &[
                OsStr::new("--no-color"),
                OsStr::new("--failure-threshold"),
                OsStr::new("style"),
                file.as_os_str(),
            ],
        )
    };
    let out = hadolint(&dockerfile);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "hadolint jobs/Dockerfile: {}",
        shown(&out)
    );
    let text = std::fs::read_to_string(dockerfile).unwrap();
    for needle in [
        "cargo build --profile dist --locked",
        "USER 65532:65532",
        "ENTRYPOINT [\"/usr/local/bin/fineo-batch\"]",
    ] {
        assert!(text.contains(needle), "jobs/Dockerfile has no {needle:?}");
    }
    let ignored = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    let ignored: BTreeSet<&str> = ignored.lines().map(str::trim).collect();
    for dir in [".git", ".venv", "target", "demo"] {
        assert!(
            ignored.contains(dir),
            ".dockerignore does not exclude {dir}"
        );
    }
    let bad = tmp.path().join("Dockerfile.bad");
    std::fs::write(&bad, "FROM debian:latest\nRUN apt-get install curl\n").unwrap();
    assert!(
        !hadolint(&bad).status.success(),
        "hadolint accepts anything"
    );

    let cfn_lint = |file: &Path| {
        run_tool(
            "cfn-lint",
            &[
                OsStr::new("--include-checks"),
                OsStr::new("I"),
                OsStr::new("--"),
                file.as_os_str(),
            ],
        )
    };
    let out = cfn_lint(&template());
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "cfn-lint {TEMPLATE}: {}",
        shown(&out)
    );
    let broken = tmp.path().join("broken.cfn.yaml");
    let text = std::fs::read_to_string(template()).unwrap();
    std::fs::write(
        &broken,
        text.replace("SPOT_CAPACITY_OPTIMIZED", "SPOT_CHEAPEST_PLEASE"),
    )
    .unwrap();
    assert!(
        !cfn_lint(&broken).status.success(),
        "cfn-lint accepts anything"
    );

    let (file, mut def) = definition(tmp.path(), &offline_params());
    let out = run_tool("statelint", &[file.as_os_str()]);
    assert!(out.status.success(), "statelint: {}", shown(&out));
    def["States"]["Compact"]["Next"] = json!("Nowhere");
    let broken = tmp.path().join("broken-definition.json");
    std::fs::write(&broken, def.to_string()).unwrap();
    assert!(
        !run_tool("statelint", &[broken.as_os_str()])
            .status
            .success(),
        "statelint accepts anything"
    );

    // The fan-out state machine. statelint 3.1.0 (the newest) predates the ItemReader's
    // ReaderConfig.InputType, which Step Functions requires for a JSON item list (cfn-lint's
    // schema above knows it): that field, and only it, is its complaint; without it, none.
    let (file, def) = definition_of(tmp.path(), &offline_params(), "FanoutStateMachine");
    let out = run_tool("statelint", &[file.as_os_str()]);
    let complaints: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .filter(|l| l.contains("not allowed"))
        .map(str::to_string)
        .collect();
    assert!(
        complaints
            .iter()
            .all(|c| c.contains("Field \"InputType\" not allowed")
                && c.contains(".ItemReader.ReaderConfig")),
        "statelint on the fan-out definition: {}",
        shown(&out)
    );
    let mut stripped = def.clone();
    for map in ["ReadUnits", "MergeUnits"] {
        assert_eq!(
            stripped["States"][map]["ItemReader"]["ReaderConfig"],
            json!({"InputType": "JSON"})
        );
        stripped["States"][map]["ItemReader"]
            .as_object_mut()
            .unwrap()
            .remove("ReaderConfig");
    }
    let fanout = tmp.path().join("fanout-definition.json");
    std::fs::write(&fanout, stripped.to_string()).unwrap();
    let out = run_tool("statelint", &[fanout.as_os_str()]);
    assert!(out.status.success(), "statelint (fan-out): {}", shown(&out));
    stripped["States"]["Commit"]["Next"] = json!("Nowhere");
    std::fs::write(&fanout, stripped.to_string()).unwrap();
    assert!(
        !run_tool("statelint", &[fanout.as_os_str()])
            .status
            .success(),
        "statelint accepts a broken fan-out definition"
    );

    // asl-validator (npm) knows the Distributed Map whole: both definitions as deployed.
    let asl_validator = |file: &Path| {
        let tool = python()
            .parent()
            .and_then(Path::parent)
            .expect("the venv")
            .join("node/node_modules/.bin/asl-validator");
        assert!(
            tool.exists(),
            "{} is missing: run `scripts/pyenv.sh`",
            tool.display()
        );
        Command::new(tool)
            .arg("--json-path")
            .arg(file)
            .output()
            .expect("run asl-validator")
    };
    for machine in ["StateMachine", "FanoutStateMachine"] {
        let (file, _) = definition_of(tmp.path(), &offline_params(), machine);
        let out = asl_validator(&file);
        assert!(
            out.status.success(),
            "asl-validator {machine}: {}",
            shown(&out)
        );
    }
    let out = asl_validator(&fanout);
    assert!(
        !out.status.success(),
        "asl-validator accepts a broken fan-out definition"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Nowhere"),
        "{}",
        shown(&out)
    );
}

/// Every job file runs through the binary, and so does every job definition's command and
/// every task's command as the state machine submits it (Ref:: placeholders filled): each gets
/// past the argument and settings checks (a usage error exits 2) and fails only where it first
/// reaches S3, at an endpoint nothing listens on. The schedule and the steps of the state
/// machine are those of jobs/compact-hourly.toml.
#[test]
fn every_job_file_and_job_definition_command_is_accepted_by_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let run = sfn_check(tmp.path(), &template(), &offline_params(), &[]);
    assert_eq!(
        run.out.status.code(),
        Some(0),
        "sfn_local.py --check: {}",
        shown(&run.out)
    );
    let summary = &run.summary;
    assert_eq!(summary["status"], "VALID");
    let jds = summary["job_definitions"]
        .as_object()
        .expect("job definitions");
    let commands: BTreeSet<&str> = jds
        .values()
        .map(|jd| jd["command"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        BTreeSet::from(["backup", "compact", "fanout", "ingest", "replay"]),
        "one job definition per command"
    );

    // The hourly job file says when and what runs; the template's default and the state
    // machine's tasks agree with it.
    let hourly = JobFile::load(&repo().join("jobs/compact-hourly.toml")).unwrap();
    let schedule = hourly.schedule.as_ref().expect("a [schedule] table");
    assert_eq!(
        summary["parameters"]["ScheduleExpression"],
        schedule.expression.as_str()
    );
    let mut steps: Vec<String> = Vec::new();
    for task in summary["tasks"].as_array().unwrap() {
        if task["state_machine"] != "StateMachine" {
            continue;
        }
        let command = task["argv"][0].as_str().unwrap().to_string();
        if steps.last() != Some(&command) {
            steps.push(command);
        }
    }
    assert_eq!(steps, schedule.steps, "the state machine's steps");

    // What runs: each job definition (placeholders from its defaults, else sample values),
    // each task of the state machine, each job file.
    let samples = [
        ("since", "2026-01-01"),
        ("until", "2026-01-02"),
        ("source", "s3://fineo-imports/acme/export.csv"),
        ("tenant", "t01"),
        ("metric", "boiler"),
        ("run", "check-run"),
        ("unit", "0"),
    ];
    let mut runs: Vec<(String, Vec<String>)> = Vec::new();
    for (name, jd) in jds {
        let argv = jd["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let a = a.as_str().unwrap();
                match a.strip_prefix("Ref::") {
                    None => a.to_string(),
                    Some(p) => jd["defaults"][p]
                        .as_str()
                        .or_else(|| samples.iter().find(|(k, _)| *k == p).map(|(_, v)| *v))
                        .unwrap_or_else(|| panic!("no sample value for Ref::{p} of {name}"))
                        .to_string(),
                }
            })
            .collect();
        runs.push((format!("job definition {name}"), argv));
    }
    let mut reconcile_tasks = 0;
    let mut fanout_steps = BTreeSet::new();
    for task in summary["tasks"].as_array().unwrap() {
        let mut argv: Vec<String> = serde_json::from_value(task["argv"].clone()).unwrap();
        // A parameter known at run time only (`<$.path>`): a sample value of its flag.
        for i in 1..argv.len() {
            if argv[i].starts_with("<$") {
                let flag = argv[i - 1].trim_start_matches("--").to_string();
                argv[i] = samples
                    .iter()
                    .find(|(k, _)| *k == flag)
                    .unwrap_or_else(|| panic!("no sample value for {flag} of {}", task["state"]))
                    .1
                    .to_string();
            }
        }
        if task["state_machine"] == "FanoutStateMachine" && argv[0] == "fanout" {
            fanout_steps.insert(argv[1].clone());
        }
        if argv.iter().any(|a| a == "--reconcile") {
            reconcile_tasks += 1;
            if !RECONCILE_FLAG {
                continue;
            }
        }
        runs.push((format!("task {}", task["state"]), argv));
    }
    assert_eq!(reconcile_tasks, 1, "one task passes --reconcile");
    assert_eq!(
        fanout_steps,
        BTreeSet::from(["commit", "merge", "plan", "read"].map(String::from)),
        "the fan-out state machine's steps"
    );
    let mut job_files = 0;
    for f in walk(&repo().join("jobs")) {
        if f.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        job_files += 1;
        let job = JobFile::load(&f).unwrap_or_else(|e| panic!("{e}"));
        let file = s(&f).to_string();
        let with_job = |cmd: &str, more: &[&str]| -> (String, Vec<String>) {
            let mut argv = vec![cmd.to_string(), "--job".into(), file.clone()];
            argv.extend(more.iter().map(|m| m.to_string()));
            (format!("{cmd} --job {}", f.display()), argv)
        };
        if job.compact.is_some() {
            runs.push(with_job("compact", &[]));
        }
        if job.backup.is_some() {
            runs.push(with_job("backup", &[]));
        }
        if job.replay.is_some() {
            runs.push(with_job(
                "replay",
                &["--since", "2026-11-30", "--until", "2026-12-01"],
            ));
        }
        if job.ingest.is_some() {
            runs.push(with_job("ingest", &[]));
        }
    }
    assert!(job_files >= 5, "the job files under jobs/");

    let dir = tmp.path();
    std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .map(|(what, argv)| scope.spawn(move || (what, argv, at_dead_endpoint(argv, dir))))
            .collect();
        for h in handles {
            let (what, argv, out) = h.join().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            // On S3 the dead endpoint; the local demo job's archive does not exist here.
            let reached = err.contains("127.0.0.1:1") || err.contains("no such directory");
            assert!(
                out.status.code() == Some(1) && reached,
                "{what}: fineo-batch {argv:?} did not get as far as storage: {}",
                shown(&out)
            );
        }
    });
    // The check above tells a usage error apart.
    let mut bogus = runs[0].1.clone();
    bogus.push("--no-such-flag".into());
    assert_eq!(at_dead_endpoint(&bogus, dir).status.code(), Some(2));

    let out = fineo(&["compact", "--reconcile", "--help"]);
    if RECONCILE_FLAG {
        assert!(out.status.success(), "compact --reconcile: {}", shown(&out));
    } else {
        assert_eq!(
            out.status.code(),
            Some(2),
            "the binary accepts `compact --reconcile` now: set RECONCILE_FLAG in \
             tests/it/deploy.rs to true, which runs the state machine's reconcile branch"
        );
    }
}

/// A deployment on the S3 server: a generated archive staged under a unique prefix, its
/// catalog imported into the lake (as an operator seeds it), and the stack's parameters.
struct Deployment {
    site: Site,
    sample: PathBuf,
    truth: Value,
    staged: String,
    lake: String,
    backup: String,
    params: Vec<String>,
}

fn deployment(records: u64, seed: u64) -> Deployment {
    let site = Site::new(Backend::S3);
    let sample = site.scratch().join("sample");
    let truth = generate(&sample, records, "mixed", seed, 2);
    let staged = site.put_tree(&sample.join("staged"), "staged");
    let (lake, backup) = (site.url("lake"), site.url("bk"));
    let catalog = sample.join("catalog");
    let import = [
        "schema",
        "import",
        "--lake",
        &lake,
        s(&catalog),
        "--sse",
        "aws:kms",
        "--sse-kms-key-id",
        KMS_KEY,
    ];
    fineo_ok(&import, 0);
    let params = stack_params(&staged, &lake, &backup);
    Deployment {
        site,
        sample,
        truth,
        staged,
        lake,
        backup,
        params,
    }
}

/// The hourly execution on S3: Compact then Backup through the real binary, with the
/// job definitions' commands as the stack builds them; the lake holds what the generator's
/// truth says, every object written is SSE-KMS with the stack's key, the backup verifies, and
/// the next hourly execution finds nothing new and writes no bundle.
#[test]
fn the_state_machine_compacts_then_backs_up_on_s3() {
    let d = deployment(3000, 17);
    let (site, truth) = (&d.site, &d.truth);
    let run = sfn_execute(site.scratch(), &d.params, &["--input", "{}"]);
    assert_succeeded(&run);
    assert_eq!(path(&run.summary), ["Listing", "Compact", "Backup", "Done"]);

    let report = report_of(&run.summary, "Compact");
    let argv = &visit(&run.summary, "Compact")["attempts"][0]["argv"];
    assert_eq!(argv[0], "compact");
    assert!(
        argv.as_array().unwrap().iter().any(|a| a == KMS_KEY),
        "{argv}"
    );
    let rec = &report["records"];
    assert_eq!(rec["records_in"], truth["records"], "every record read");
    assert_eq!(rec["written"], truth["distinct_keys"]);
    assert_eq!(rec["duplicates"]["exact"], truth["latest"]["exact"]);
    assert_eq!(
        rec["duplicates"]["conflicting"],
        truth["latest"]["conflicting"]
    );
    assert_eq!(rec["errors_by_reason"], truth["errors"]);
    assert_eq!(report["conservation_ok"], true);
    assert_eq!(report["output"]["typed_rows"], truth["typed_rows"]);
    assert_eq!(
        report["output"]["untyped_lines"],
        truth["latest"]["untyped_lines"]
    );
    let dump = site.dump("lake");
    assert_eq!(
        dump["totals"]["typed_rows"], truth["typed_rows"],
        "rows as deltalake/DuckDB read them"
    );
    assert_eq!(
        dump["totals"]["untyped_lines"],
        truth["latest"]["untyped_lines"]
    );
    let by_table: serde_json::Map<String, Value> = typed_rows(&dump)
        .into_iter()
        .map(|(table, rows)| (table, json!(rows.len())))
        .collect();
    assert_eq!(
        Value::Object(by_table),
        truth["typed_rows_by_table"],
        "typed rows per table"
    );

    let backup = report_of(&run.summary, "Backup");
    let bundles = backup["backup"]["written"].as_array().unwrap().len();
    assert!(bundles > 0, "no bundle written: {backup:#}");
    assert_eq!(backup["backup"]["tenant_days"], bundles);
    let verify: Value = serde_json::from_str(&fineo_ok(
        &["backup", "verify", "--from", &d.backup, "--json"],
        0,
    ))
    .unwrap();
    assert_eq!(verify["verify"]["bundles"], bundles);
    assert_eq!(verify["verify"]["ok"], bundles);

    // Everything the jobs wrote is encrypted with the stack's key.
    let objects = head_objects(&[split_s3(&d.lake).1, split_s3(&d.backup).1]);
    assert!(
        objects.len() > bundles,
        "objects written: {}",
        objects.len()
    );
    for (key, (sse, kms)) in &objects {
        let kms_key = Some(KMS_KEY.to_string());
        assert_eq!(
            (sse.as_deref(), kms),
            (Some("aws:kms"), &kms_key),
            "HEAD {key}"
        );
    }

    // The next hour: nothing new, nothing changes, no bundle.
    let again = sfn_execute(
        site.scratch(),
        &d.params,
        &["--input", r#"{"reconcile": false}"#],
    );
    assert_succeeded(&again);
    assert_eq!(
        path(&again.summary),
        ["Listing", "Compact", "Backup", "Done"]
    );
    assert_eq!(
        report_of(&again.summary, "Compact")["records"]["records_in"],
        0
    );
    assert_eq!(
        report_of(&again.summary, "Backup")["backup"]["written"],
        json!([])
    );
    assert_eq!(site.dump("lake")["totals"], dump["totals"]);

    if RECONCILE_FLAG {
        let full = sfn_execute(
            site.scratch(),
            &d.params,
            &["--input", r#"{"reconcile": true}"#],
        );
        assert_succeeded(&full);
        assert_eq!(
            path(&full.summary),
            ["Listing", "CompactReconcile", "Backup", "Done"]
        );
        let argv = &visit(&full.summary, "CompactReconcile")["attempts"][0]["argv"];
        assert_eq!(argv.as_array().unwrap().last().unwrap(), "--reconcile");
        let report = report_of(&full.summary, "CompactReconcile");
        assert_eq!(
            report["records"]["records_in"], 0,
            "a reconcile of a compacted archive finds nothing new"
        );
        assert_eq!(site.dump("lake")["totals"], dump["totals"]);
    }
}

/// A step that keeps failing (its location is a bucket that does not exist) is retried as
/// its Retry says, then caught: Notify publishes what failed, why and what to do, and the
/// execution fails with the Fail state's error. Compact failing stops before Backup; Backup
/// failing after a good compaction is named as the backup step.
#[test]
fn a_step_that_keeps_failing_is_retried_then_pages_and_the_execution_fails() {
    let d = deployment(600, 29);
    let missing_lake = format!("s3://{MISSING_BUCKET}/lake");
    let missing_backup = format!("s3://{MISSING_BUCKET}/backup");
    let cases = [
        ("compact", stack_params(&d.staged, &missing_lake, &d.backup)),
        ("backup", stack_params(&d.staged, &d.lake, &missing_backup)),
    ];
    for (step, params) in cases {
        let dir = d.site.scratch().join(format!("fail-{step}"));
        std::fs::create_dir_all(&dir).unwrap();
        let (_, def) = definition(&dir, &params);
        let sns = dir.join("sns.json");
        let run = sfn_execute(&dir, &params, &["--sns-log", s(&sns)]);
        let summary = &run.summary;
        assert_eq!(run.out.status.code(), Some(1), "{}", shown(&run.out));
        assert_eq!(summary["status"], "FAILED");
        assert_eq!(summary["error"], def["States"]["Failed"]["Error"]);
        let state = if step == "compact" {
            "Compact"
        } else {
            "Backup"
        };
        let failed = if step == "compact" {
            "CompactFailed"
        } else {
            "BackupFailed"
        };
        let mut expected = vec!["Listing", "Compact"];
        if step == "backup" {
            expected.push("Backup");
        }
        expected.extend([failed, "Notify", "Failed"]);
        assert_eq!(path(summary), expected);

        // Retried as the definition says, then caught.
        let retrier = def["States"][state]["Retry"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| {
                r["ErrorEquals"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("States.TaskFailed"))
            })
            .expect("a retrier of States.TaskFailed");
        let retries = retrier["MaxAttempts"].as_u64().unwrap();
        assert!(retries > 0);
        let v = visit(summary, state);
        assert_eq!(v["retries"], retries);
        let attempts = v["attempts"].as_array().unwrap();
        assert_eq!(attempts.len() as u64, 1 + retries, "attempts of {state}");
        for a in attempts {
            assert_eq!(a["exit_code"], 1);
            assert_eq!(a["argv"][0], step);
            assert!(
                a["stderr_tail"].as_str().unwrap().contains("NoSuchBucket"),
                "{a:#}"
            );
        }
        assert_eq!(v["caught"]["Error"], "States.TaskFailed");
        assert_eq!(v["caught"]["Next"], failed);

        // One page, naming the step and telling what to do.
        let messages: Vec<Value> =
            serde_json::from_slice(&std::fs::read(sns).expect("the SNS log")).unwrap();
        assert_eq!(messages.len(), 1, "{messages:#?}");
        assert_eq!(Value::Array(messages.clone()), summary["notifications"]);
        let page = &messages[0];
        assert_eq!(page["state"], "Notify");
        assert!(page["topic"].as_str().unwrap().starts_with("arn:aws:sns:"));
        let subject = page["subject"].as_str().unwrap();
        assert!(
            subject.contains(&format!("the {step} step failed")),
            "{subject}"
        );
        let message = page["message"].as_str().unwrap();
        let lake = if step == "compact" {
            &missing_lake
        } else {
            &d.lake
        };
        for needle in [
            format!("the {step} step failed after its retries"),
            summary["execution"].as_str().unwrap().to_string(),
            "States.TaskFailed".into(),
            // The cause: the failed job's description, as Step Functions gives it.
            r#""ExitCode":1"#.into(),
            r#""Status":"FAILED""#.into(),
            format!("stream prefix {step}/"),
            format!("{lake}/_runs/"),
            "aws stepfunctions start-execution --state-machine-arn arn:aws:states:".into(),
            "Rerunning is safe".into(),
            r#"{"reconcile": true}"#.into(),
        ] {
            assert!(
                message.contains(&needle),
                "the page has no {needle:?}:\n{message}"
            );
        }
    }
}

/// The replay and ingest job definitions run too, from a definition of one's own against the
/// same template: ingest a customer export, compact it, then a Map over windows read from S3
/// (ItemReader, at most 2 at once) replays each into a side lake; the side lake of the whole
/// window equals the lake.
#[test]
fn replay_and_ingest_jobs_run_from_a_map_over_items_read_from_s3() {
    let d = deployment(2000, 31);
    let site = &d.site;
    assert_succeeded(&sfn_execute(site.scratch(), &d.params, &[]));

    let local = site.scratch().join("put");
    std::fs::create_dir_all(local.join("imports/acme")).unwrap();
    std::fs::copy(
        d.sample.join("export.csv"),
        local.join("imports/acme/export.csv"),
    )
    .unwrap();
    let windows = json!([
        {"since": "2000-01-01", "until": "2100-01-01"},
        {"since": "2026-01-01", "until": "2026-01-02"},
        {"since": "2026-01-02", "until": "2026-01-03"},
    ]);
    std::fs::create_dir_all(local.join("items")).unwrap();
    std::fs::write(local.join("items/windows.json"), windows.to_string()).unwrap();
    let imports = site.put_tree(&local.join("imports"), "imports");
    let items = site.put_tree(&local.join("items"), "items");
    let (bucket, items_prefix) = split_s3(&items);
    let mut params = d.params.clone();
    params.push(format!("ImportsPrefix={}", split_s3(&imports).1));

    let replay = json!({
        "Type": "Task",
        "Resource": BATCH_SYNC,
        "Parameters": {
            "JobName": "replay",
            "JobQueue": "${JobQueue}",
            "JobDefinition": "${ReplayJobDefinition}",
            "Parameters": {"since.$": "$.since", "until.$": "$.until", "to.$": "$.to"}
        },
        "ResultSelector": {"JobId.$": "$.JobId"},
        "End": true
    });
    let definition = json!({
        "StartAt": "Ingest",
        "States": {
            "Ingest": {
                "Type": "Task",
                "Resource": BATCH_SYNC,
                "Parameters": {
                    "JobName": "ingest",
                    "JobQueue": "${JobQueue}",
                    "JobDefinition": "${IngestJobDefinition}",
                    "Parameters": {
                        "source.$": "$.export", "tenant": "t01", "metric": "boiler",
                        "timestamp_column": "ts"
                    }
                },
                "ResultPath": null,
                "Next": "Compact"
            },
            "Compact": {
                "Type": "Task",
                "Resource": BATCH_SYNC,
                "Parameters": {
                    "JobName": "compact",
                    "JobQueue": "${JobQueue}",
                    "JobDefinition": "${CompactJobDefinition}"
                },
                "ResultPath": null,
                "Next": "Replays"
            },
            "Replays": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket.$": "$.windows.bucket", "Key.$": "$.windows.key"}
                },
                "ItemSelector": {
                    "since.$": "$$.Map.Item.Value.since",
                    "until.$": "$$.Map.Item.Value.until",
                    "to.$": "States.Format('{}/{}', $.side, $$.Map.Item.Index)"
                },
                "MaxConcurrency": 2,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Replay",
                    "States": {"Replay": replay}
                },
                "End": true
            }
        }
    });
    let file = site.scratch().join("ingest-compact-replay.json");
    std::fs::write(&file, definition.to_string()).unwrap();
    let side = site.url("side");
    let input = json!({
        "export": format!("{imports}/acme/export.csv"),
        "windows": {"bucket": bucket, "key": format!("{items_prefix}/windows.json")},
        "side": side,
    });
    let check = sfn_check(
        site.scratch(),
        &template(),
        &params,
        &["--definition", s(&file)],
    );
    assert_eq!(check.out.status.code(), Some(0), "{}", shown(&check.out));
    let run = sfn_execute(
        site.scratch(),
        &params,
        &["--definition", s(&file), "--input", &input.to_string()],
    );
    assert_succeeded(&run);
    assert_eq!(path(&run.summary), ["Ingest", "Compact", "Replays"]);

    let ingest = report_of(&run.summary, "Ingest");
    assert_eq!(
        ingest["ingest"]["files"][0]["status"], "ingested",
        "{ingest:#}"
    );
    let rows = &ingest["records"]["written"];
    assert!(rows.as_u64().unwrap() > 0);
    let compact = report_of(&run.summary, "Compact");
    assert_eq!(
        &compact["records"]["records_in"], rows,
        "the compaction takes the ingested rows, and only them"
    );

    let map = visit(&run.summary, "Replays");
    assert_eq!(map["items"], 3);
    let parallel = run.summary["max_parallel"]["Replays"].as_u64().unwrap();
    assert!(
        (1..=2).contains(&parallel),
        "MaxConcurrency 2, ran {parallel} at once"
    );
    for (i, w) in windows.as_array().unwrap().iter().enumerate() {
        let state = format!("Replays[{i}]/Replay");
        let report = report_of(&run.summary, &state);
        assert_eq!(report["replay"]["to"], format!("{side}/{i}"));
        assert!(
            !report["replay"]["partitions"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{state} rebuilt nothing"
        );
        let argv = &visit(&run.summary, &state)["attempts"][0]["argv"];
        let since = argv
            .as_array()
            .unwrap()
            .iter()
            .position(|a| a == "--since")
            .unwrap();
        assert_eq!(argv[since + 1], w["since"]);
    }
    let out = fineo(&["diff", "--lake", &d.lake, "--lake", &format!("{side}/0")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the whole window replayed differs from the lake: {}",
        shown(&out)
    );
}

/// What Batch would reject or silently get wrong is refused before anything runs: a task
/// naming a job definition the template does not have, a parameter its job definition does
/// not declare, a Ref:: placeholder left without a value, an override that changes the
/// command instead of appending to it, a ${...} without a substitution.
#[test]
fn a_definition_naming_a_missing_job_definition_or_parameter_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let params = offline_params();
    let text = std::fs::read_to_string(template()).unwrap();
    #[rustfmt::skip]
    let cases: [(&str, &str, &str, &str); 4] = [
        (
            "unknown job definition",
            "JobDefinition: ${BackupJobDefinition}",
            "JobDefinition: fineo-batch-backup-v2",
            "unknown job definition 'fineo-batch-backup-v2'",
        ),
        (
            "undeclared parameter",
            "JobDefinition: ${BackupJobDefinition}\n",
            "JobDefinition: ${BackupJobDefinition}\n              Parameters:\n                tenant: t01\n",
            "parameter 'tenant' is not declared by job definition fineo-batch-backup",
        ),
        (
            "override changing the command",
            "                  - ${LakeUrl}\n",
            "                  - s3://fineo-elsewhere/lake\n",
            "ContainerOverrides.Command must be job definition fineo-batch-compact's command",
        ),
        (
            "missing substitution",
            "JobQueue: ${JobQueue}\n              JobDefinition: ${BackupJobDefinition}",
            "JobQueue: ${BackupQueue}\n              JobDefinition: ${BackupJobDefinition}",
            "${BackupQueue} in the definition has no DefinitionSubstitutions entry",
        ),
    ];
    for (i, (what, from, to, error)) in cases.iter().enumerate() {
        // The first occurrence is the hourly state machine's (the fan-out one comes after).
        assert!(
            text.contains(from) && text.find(from) < text.find("  FanoutStateMachine:"),
            "{what}: {from:?} in the template"
        );
        let mutated = dir.join(format!("mutated-{i}.cfn.yaml"));
        std::fs::write(&mutated, text.replacen(from, to, 1)).unwrap();
        let run = sfn_check(dir, &mutated, &params, &[]);
        let err = String::from_utf8_lossy(&run.out.stderr);
        assert_eq!(
            run.out.status.code(),
            Some(2),
            "{what}: {}",
            shown(&run.out)
        );
        assert!(err.contains(error), "{what}: {err}");
        assert_eq!(run.summary["status"], "INVALID");
        // Executing it fails the same way, before any state runs.
        let args = ["--binary", binary(), "--time-scale", "0", "--input", "{}"];
        let run = sfn_local(dir, &mutated, &params, &args);
        assert_eq!(
            run.out.status.code(),
            Some(2),
            "{what}: {}",
            shown(&run.out)
        );
        assert!(run.summary["states"].is_null(), "{what}: a state ran");
    }

    // A definition of one's own against the real template: the replay job definition's
    // window has no default, so a task must pass it, and only parameters it declares.
    let replay = |parameters: Value| {
        json!({
            "StartAt": "Replay",
            "States": {"Replay": {
                "Type": "Task",
                "Resource": BATCH_SYNC,
                "Parameters": {
                    "JobName": "replay",
                    "JobQueue": "${JobQueue}",
                    "JobDefinition": "${ReplayJobDefinition}",
                    "Parameters": parameters
                },
                "End": true
            }}
        })
    };
    let cases = [
        (
            json!({"until": "2026-01-02"}),
            Some("Ref::since of job definition fineo-batch-replay has no value"),
        ),
        (
            json!({"since": "2026-01-01", "until": "2026-01-02", "window": "1d"}),
            Some("parameter 'window' is not declared by job definition fineo-batch-replay"),
        ),
        (json!({"since": "2026-01-01", "until": "2026-01-02"}), None),
        (json!({"since.$": "$.since", "until.$": "$.until"}), None),
    ];
    for (i, (parameters, error)) in cases.into_iter().enumerate() {
        let file = dir.join(format!("replay-{i}.json"));
        std::fs::write(&file, replay(parameters.clone()).to_string()).unwrap();
        let run = sfn_check(dir, &template(), &params, &["--definition", s(&file)]);
        let err = String::from_utf8_lossy(&run.out.stderr);
        match error {
            Some(error) => {
                assert_eq!(
                    run.out.status.code(),
                    Some(2),
                    "{parameters}: {}",
                    shown(&run.out)
                );
                assert!(err.contains(error), "{parameters}: {err}");
            }
            None => assert_eq!(
                run.out.status.code(),
                Some(0),
                "{parameters}: {}",
                shown(&run.out)
            ),
        }
    }
}

/// The stack parameters of a fan-out deployment: 3 read units, 2 merge units.
fn fanout_params(params: &[String]) -> Vec<String> {
    let mut params = params.to_vec();
    params.extend(["ReadUnits=3".to_string(), "MergeUnits=2".to_string()]);
    params
}

/// `schema import` of the sample's catalog into another lake (as the deployment's lake got it).
fn import_catalog(sample: &Path, lake: &str) {
    let catalog = sample.join("catalog");
    fineo_ok(
        &[
            "schema",
            "import",
            "--lake",
            lake,
            s(&catalog),
            "--sse",
            "aws:kms",
            "--sse-kms-key-id",
            KMS_KEY,
        ],
        0,
    );
}

/// The fan-out state machine on S3: Plan, a Distributed Map of 3 read units and one of 2
/// merge units over the item lists the plan wrote (ItemReader), Commit, Backup. The lake then
/// holds exactly what one `compact` process makes of the same staged input, the backup
/// verifies, and the next execution finds nothing new: no item lists, straight to Backup.
#[test]
fn the_fanout_state_machine_compacts_like_one_process_then_backs_up() {
    let d = deployment(3000, 41);
    let site = &d.site;
    let params = fanout_params(&d.params);
    let check = sfn_check(
        site.scratch(),
        &template(),
        &params,
        &["--state-machine", "FanoutStateMachine"],
    );
    assert_eq!(check.out.status.code(), Some(0), "{}", shown(&check.out));
    let run = sfn_execute(
        site.scratch(),
        &params,
        &[
            "--state-machine",
            "FanoutStateMachine",
            "--execution-name",
            "fanout-e2e",
        ],
    );
    assert_succeeded(&run);
    let summary = &run.summary;
    assert_eq!(
        path(summary),
        [
            "Start",
            "Plan",
            "Planned",
            "AnythingNew",
            "ReadUnits",
            "MergeUnits",
            "Commit",
            "Backup",
            "Done"
        ]
    );
    let plan = report_of(summary, "Plan");
    assert_eq!(plan["run"], "fanout-e2e", "the run is the execution's name");
    assert_eq!(plan["plan"]["read_units"], 3, "{plan:#}");
    assert_eq!(plan["plan"]["merge_units"], 2, "{plan:#}");

    // One job per unit, the unit from the item list, the run from the execution's name.
    for (map, step, units) in [("ReadUnits", "read", 3), ("MergeUnits", "merge", 2)] {
        assert_eq!(visit(summary, map)["items"], units, "{map}");
        let mut seen = BTreeSet::new();
        let inner = if step == "read" {
            "ReadUnit"
        } else {
            "MergeUnit"
        };
        for i in 0..units {
            let v = visit(summary, &format!("{map}[{i}]/{inner}"));
            assert_eq!(exit_codes(v), [0_i64], "{map}[{i}]");
            let argv: Vec<String> =
                serde_json::from_value(v["attempts"][0]["argv"].clone()).unwrap();
            assert_eq!(argv[..2], ["fanout", step]);
            let at = |flag: &str| argv[argv.iter().position(|a| a == flag).unwrap() + 1].clone();
            assert_eq!(at("--run"), "fanout-e2e");
            assert_eq!(at("--staged"), d.staged);
            seen.insert(at("--unit"));
        }
        let expected: BTreeSet<String> = (0..units).map(|u| u.to_string()).collect();
        assert_eq!(seen, expected, "{map}: each unit once");
    }
    let commit = report_of(summary, "Commit");
    assert_eq!(commit["committed_version"], 1, "{commit:#}");

    // The same staged input, compacted by one process into another lake: the same content.
    let reference = site.url("ref");
    import_catalog(&d.sample, &reference);
    let one = compact(
        &d.staged,
        &reference,
        None,
        &["--sse", "aws:kms", "--sse-kms-key-id", KMS_KEY],
    );
    assert_eq!(one["records"]["records_in"], d.truth["records"]);
    assert_eq!(
        lake_content(&site.local("lake")),
        lake_content(&site.local("ref")),
        "the fanned-out lake differs from one compact process's"
    );
    let out = fineo(&["diff", "--lake", &d.lake, "--lake", &reference]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let dump = site.dump("lake");
    assert_eq!(dump["totals"]["typed_rows"], d.truth["typed_rows"]);

    // The backup of what the run changed.
    let backup = report_of(summary, "Backup");
    let bundles = backup["backup"]["written"].as_array().unwrap().len();
    assert!(bundles > 0, "no bundle written: {backup:#}");
    let verify: Value = serde_json::from_str(&fineo_ok(
        &["backup", "verify", "--from", &d.backup, "--json"],
        0,
    ))
    .unwrap();
    assert_eq!(verify["verify"]["bundles"], bundles);
    assert_eq!(verify["verify"]["ok"], bundles);

    // Nothing new: the plan writes no item lists, the Maps are skipped.
    let again = sfn_execute(
        site.scratch(),
        &params,
        &["--state-machine", "FanoutStateMachine"],
    );
    assert_succeeded(&again);
    assert_eq!(
        path(&again.summary),
        ["Start", "Plan", "Planned", "AnythingNew", "Backup", "Done"]
    );
    assert_eq!(report_of(&again.summary, "Plan")["plan"], Value::Null);
    assert_eq!(
        visit(&again.summary, "Planned")["attempts"][0]["result"]["KeyCount"],
        0
    );
    assert_eq!(
        report_of(&again.summary, "Backup")["backup"]["written"],
        json!([])
    );
    assert_eq!(site.dump("lake")["totals"], dump["totals"]);
}

/// Another compaction commits to the lake after the plan (a hook of the executor runs it
/// once, before ReadUnits): every read and merge unit and the commit exit 4, the units end,
/// the commit is caught, and the run plans again (its stale read-unit list forgotten first),
/// reads, merges and commits. The lake equals one process compacting the other input, then
/// this one.
#[test]
fn a_fanout_run_whose_lake_moved_on_plans_again() {
    let site = Site::new(Backend::S3);
    let sample = site.scratch().join("sample");
    let truth = generate(&sample, 2400, "mixed", 43, 2);
    let [a, b] = halves(&sample, &truth, &site.scratch().join("halves"));
    let staged_a = site.put_tree(&a, "staged-a");
    let staged_b = site.put_tree(&b, "staged-b");
    let (lake, reference, backup) = (site.url("lake"), site.url("ref"), site.url("bk"));
    import_catalog(&sample, &lake);
    import_catalog(&sample, &reference);
    let params = fanout_params(&stack_params(&staged_a, &lake, &backup));

    let other = site.scratch().join("other.json");
    let hook = format!(
        "ReadUnits='{}' compact --staged '{staged_b}' --lake '{lake}' --sse aws:kms \
         --sse-kms-key-id '{KMS_KEY}' --json > '{}'",
        binary(),
        s(&other)
    );
    let run = sfn_execute(
        site.scratch(),
        &params,
        &[
            "--state-machine",
            "FanoutStateMachine",
            "--before-state",
            &hook,
        ],
    );
    assert_succeeded(&run);
    let summary = &run.summary;
    assert_eq!(
        path(summary),
        [
            "Start",
            "Plan",
            "Planned",
            "AnythingNew",
            "ReadUnits",
            "MergeUnits",
            "Commit",
            "CommitFailure",
            "LakeMovedOn",
            "Replan",
            "ForgetPlan",
            "Plan",
            "Planned",
            "AnythingNew",
            "ReadUnits",
            "MergeUnits",
            "Commit",
            "Backup",
            "Done"
        ]
    );
    assert_eq!(summary["hooks_not_run"], json!([]));
    let first = visits(summary, "ReadUnits")[0];
    assert_eq!(first["hook"]["exit_code"], 0, "{first:#}");
    let other: Value = serde_json::from_slice(&std::fs::read(&other).unwrap()).unwrap();
    assert_eq!(
        other["committed_version"], 1,
        "the other compaction: {other:#}"
    );
    assert_eq!(summary["output"]["fanout"]["replans"], 1);

    // First round: every step found the lake moved on (exit 4, retried, then ended); the
    // second round ran clean.
    for (map, inner, units) in [("ReadUnits", "ReadUnit", 3), ("MergeUnits", "MergeUnit", 2)] {
        for i in 0..units {
            let state = format!("{map}[{i}]/{inner}");
            let v = visits(summary, &state);
            assert_eq!(v.len(), 2, "{state}");
            assert!(
                exit_codes(v[0]).iter().all(|c| *c == 4),
                "{state}: {:#}",
                v[0]
            );
            assert_eq!(v[0]["caught"]["Next"], format!("{inner}Failure"));
            assert_eq!(
                visits(summary, &format!("{map}[{i}]/{inner}StaleEnd")).len(),
                1
            );
            assert_eq!(exit_codes(v[1]), [0_i64], "{state}");
        }
    }
    let commits = visits(summary, "Commit");
    assert_eq!(commits.len(), 2);
    assert!(
        exit_codes(commits[0]).iter().all(|c| *c == 4),
        "{:#}",
        commits[0]
    );
    assert_eq!(commits[0]["caught"]["Next"], "CommitFailure");
    assert_eq!(exit_codes(commits[1]), [0_i64]);
    let committed: Value =
        serde_json::from_str(commits[1]["attempts"][0]["stdout"].as_str().unwrap()).unwrap();
    assert_eq!(committed["committed_version"], 2, "{committed:#}");
    let plans: Vec<i64> = visits(summary, "Plan")
        .iter()
        .map(|v| exit_codes(v)[0])
        .collect();
    assert_eq!(plans, [0_i64, 0]);

    // One process: the other input, then this one.
    for staged in [&staged_b, &staged_a] {
        compact(
            staged,
            &reference,
            None,
            &["--sse", "aws:kms", "--sse-kms-key-id", KMS_KEY],
        );
    }
    assert_eq!(
        lake_content(&site.local("lake")),
        lake_content(&site.local("ref")),
        "the re-planned lake differs from one process compacting both inputs in order"
    );
    let out = fineo(&["diff", "--lake", &lake, "--lake", &reference]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(!report_of(summary, "Backup")["backup"]["written"]
        .as_array()
        .unwrap()
        .is_empty());
}
