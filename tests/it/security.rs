//! Security (SPEC 15): server-side encryption on every object written to S3 (checked on the
//! wire and by HEAD on the server), no credential in any output, and tenant isolation
//! checked request by request.

mod recording;
mod wire;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output};

use bytes::Bytes;
use serde_json::Value;

use fineo_batch::jobfile::JobFile;
use fineo_batch::model::FieldType;
use fineo_batch::ops::schema::import_path;
use fineo_batch::ops::SchemaOp;
use fineo_batch::schema::edit::SchemaEdit;
use fineo_batch::storage::Location;
use fineo_batch::Compact;

use crate::harness::*;
use recording::{Op, RecordingStore};
use wire::{Request, Tap};

/// A session token for the credential checks (the test server takes any).
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEFINEO/session+token/0123456789abcdefXYZ==";
/// The KMS key the SSE-KMS runs name (the test server records it as given).
const KMS_KEY: &str = "alias/fineo-test-lake";
/// An endpoint nothing listens on.
const DEAD_ENDPOINT: &str = "http://127.0.0.1:1";

/// The binary with the test server's AWS environment.
fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fineo-batch"));
    c.envs(s3_env()).env("RUST_LOG", "warn");
    c
}

/// Runs `cmd`, requires exit code `code` (a failure shows the arguments, not the
/// environment with its credentials).
fn expect(cmd: &mut Command, code: i32) -> Output {
    let out = cmd.output().expect("run fineo-batch");
    let args: Vec<_> = cmd.get_args().collect();
    assert_eq!(
        out.status.code(),
        Some(code),
        "fineo-batch {args:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The key prefix in the bucket of an `s3://bucket/prefix` URL.
fn key_prefix(url: &str) -> String {
    let (_, bucket) = s3_server();
    url.strip_prefix(&format!("s3://{bucket}/"))
        .expect("an s3 url of the test bucket")
        .to_string()
}

/// A gzip JSON Lines object of 400 bad records of tenant t01, 32 KiB each: its quarantine
/// file passes object_store's 10 MiB buffer, so it is written as a multipart upload.
fn big_bad_object() -> Bytes {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let pad = "x".repeat(32 << 10);
    for i in 0..400 {
        writeln!(
            gz,
            r#"{{"tenant":"t01","metric":"boiler","timestamp":"not-a-time","n":{i},"pad":"{pad}"}}"#
        )
        .unwrap();
    }
    Bytes::from(gz.finish().unwrap())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum SseMode {
    /// `--sse aws:kms --sse-kms-key-id` on every command.
    Kms,
    /// `--sse aes256` on `generate`; job files for the rest (one overridden by the flag).
    Aes256,
    /// No encryption asked for.
    None,
}

impl SseMode {
    /// The headers every object-creating request must carry, and HEAD must answer.
    fn expected(self) -> (Option<String>, Option<String>) {
        match self {
            SseMode::Kms => (Some("aws:kms".into()), Some(KMS_KEY.into())),
            SseMode::Aes256 => (Some("AES256".into()), None),
            SseMode::None => (None, None),
        }
    }
}

/// What every object kind a lake holds looks like in its key.
const KINDS: &[&str] = &[
    "/sample/staged/",
    "/sample/catalog/",
    "/sample/truth.json",
    "/lake/typed/tenant=",
    "/_delta_log/",
    "/lake/_fineo/index/",
    "/lake/_fineo/log/",
    "/lake/_fineo/catalog-applied.json",
    "/lake/untyped/",
    "/lake/errors/",
    "/lake/_runs/",
    "/lake/_proposals/",
    "/lake/_catalog/t01/",
    "/reports/run.json",
    "/bk/tenant=",
    "/restored/typed/tenant=",
    "/restored/_fineo/index/",
    "/restored/_catalog/t01/",
    "/reload/tenant=",
];

/// Writes every kind of object to S3 through the binary, with the storage settings of
/// `mode`, every request through a tap (the environment's endpoint is dead, so a location
/// that ignored the settings would fail the run); then checks each object-creating request
/// on the wire and each object by HEAD.
fn sse_on_every_write(mode: SseMode) {
    let site = Site::new(Backend::S3);
    let (moto, bucket) = s3_server();
    let tap = Tap::start(&moto);
    let via_tap = format!("aws_endpoint={}", tap.endpoint);
    let local = site.scratch().join("sample");
    generate(&local, 3000, "mixed", 31, 2);
    let extra = site.location("extra");
    block_on(extra.put(
        "2026/01/02/00/fineo-staged-1-2026-01-02-00-00-00-big.gz",
        big_bad_object(),
    ))
    .unwrap();
    let (sample, lake) = (site.url("sample"), site.url("lake"));
    let job = |name: &str, storage: &str| {
        let path = site.scratch().join(name);
        let text = format!(
            "[compact]\nlake = {lake:?}\n\n[storage]\n{storage}\n[storage.options]\naws_endpoint = {:?}\n",
            tap.endpoint
        );
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let kms = [
        "--sse",
        "aws:kms",
        "--sse-kms-key-id",
        KMS_KEY,
        "--storage-option",
        &via_tap,
    ]
    .map(String::from)
    .to_vec();
    let plain = vec!["--storage-option".to_string(), via_tap.clone()];
    let (generate_flags, import_flags, flags) = match mode {
        SseMode::Kms => (kms.clone(), kms.clone(), kms.clone()),
        SseMode::None => (plain.clone(), plain.clone(), plain.clone()),
        SseMode::Aes256 => {
            let aes = job("aes.toml", "sse = \"aes256\"");
            let kms_job = job(
                "kms.toml",
                "sse = \"aws:kms\"\nsse_kms_key_id = \"alias/from-the-job\"",
            );
            (
                ["--sse", "aes256", "--storage-option", &via_tap]
                    .map(String::from)
                    .to_vec(),
                // The flag overrides the job file's SSE-KMS (and drops its key id).
                vec!["--job".into(), kms_job, "--sse".into(), "AES256".into()],
                vec!["--job".into(), aes],
            )
        }
    };
    let fineo = |args: &[&str], flags: &[String]| -> Value {
        let out = expect(
            bin()
                .env("AWS_ENDPOINT_URL", DEAD_ENDPOINT)
                .args(args)
                .args(flags),
            0,
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    let staged = format!("{sample}/staged");
    let (bk, restored, reload) = (site.url("bk"), site.url("restored"), site.url("reload"));
    let report = format!("{}/run.json", site.url("reports"));
    let extra = site.url("extra");
    let catalog = local.join("catalog");
    #[rustfmt::skip]
    let steps: [(&[&str], &[String]); 10] = [
        (&["generate", "--out", &sample, "--records", "3000", "--format", "mixed", "--seed", "31", "--days", "2"], &generate_flags),
        (&["schema", "import", s(&catalog), "--lake", &lake, "--json"], &import_flags),
        (&["compact", "--json", "--staged", &staged, "--lake", &lake, "--report", &report], &flags),
        (&["compact", "--json", "--staged", &extra, "--lake", &lake], &flags),
        (&["schema", "accept", "--tenant", "t01", "--metric", "boiler", "--field", "fw", "--type", "string", "--lake", &lake], &flags),
        (&["compact", "--json", "--staged", &extra, "--lake", &lake], &flags),
        (&["backup", "--json", "--lake", &lake, "--to", &bk], &flags),
        (&["backup", "verify", "--json", "--from", &bk, "--deep"], &flags),
        (&["restore", "--json", "--from", &bk, "--lake", &restored], &flags),
        (&["restore", "--json", "--from", &bk, "--staged", &reload, "--format", "dynamodb-json"], &flags),
    ];
    let reports: Vec<Value> = steps.iter().map(|(a, f)| fineo(a, f)).collect();
    assert_eq!(reports[1]["written"].as_array().unwrap().len(), 3);
    assert_eq!(reports[2]["committed_version"], 1);
    assert_eq!(reports[3]["records"]["errors"], 400);
    assert_eq!(reports[5]["retype"]["tenants"], serde_json::json!(["t01"]));
    assert_eq!(reports[6]["backup"]["written"].as_array().unwrap().len(), 8);
    assert_eq!(reports[7]["verify"]["ok"], 8);
    assert_eq!(reports[8]["committed_version"], 1);
    assert!(reports[9]["restore"]["objects_written"].as_u64().unwrap() >= 8);

    let expected = mode.expected();
    let requests = tap.requests();
    let creating: Vec<&Request> = requests.iter().filter(|r| r.creates_object()).collect();
    for r in &creating {
        let got = (
            r.header("x-amz-server-side-encryption").map(String::from),
            r.header("x-amz-server-side-encryption-aws-kms-key-id")
                .map(String::from),
        );
        assert_eq!(got, expected, "{mode:?}: {} {}", r.method, r.target);
    }
    // The 12 MiB quarantine file of t01 is staged through a multipart upload.
    let multipart = creating.iter().filter(|r| r.method == "POST").count();
    assert!(
        creating.iter().any(|r| r.method == "POST"
            && r.key(&bucket).contains("/lake/_fineo/staging/")
            && r.key(&bucket).contains("/errors/tenant=t01/")),
        "no multipart upload was made"
    );
    let staging = creating
        .iter()
        .filter(|r| r.key(&bucket).contains("/lake/_fineo/staging/"))
        .count();
    assert!(staging > 0, "staging files are written too");
    let written: Vec<String> = creating.iter().map(|r| r.key(&bucket)).collect();
    let prefixes =
        ["sample", "lake", "reports", "bk", "restored", "reload"].map(|n| key_prefix(&site.url(n)));
    let heads = head_objects(&prefixes);
    for kind in KINDS {
        assert!(
            written.iter().any(|k| k.contains(kind)),
            "no {kind} written"
        );
        assert!(heads.keys().any(|k| k.contains(kind)), "no {kind} in S3");
    }
    for (key, got) in &heads {
        assert_eq!(got, &expected, "{mode:?}: HEAD {key}");
    }
    eprintln!(
        "{mode:?}: {} object-creating requests ({multipart} multipart, {staging} staging), {} objects",
        creating.len(),
        heads.len()
    );
}

#[test]
fn sse_kms_with_key_id_on_every_object_written() {
    sse_on_every_write(SseMode::Kms);
}

#[test]
fn sse_s3_from_job_files_and_flags_on_every_object_written() {
    sse_on_every_write(SseMode::Aes256);
}

#[test]
fn without_sse_no_object_is_encrypted() {
    sse_on_every_write(SseMode::None);
}

/// object_store's SSE headers on the requests the pipeline itself does not make today: a
/// server-side copy and a multipart upload, recorded by the server.
#[test]
fn sse_on_server_side_copy_and_multipart_upload() {
    use object_store::ObjectStoreExt;
    let site = Site::new(Backend::S3);
    let opts = s3_options()
        .with_sse(fineo_batch::storage::Sse::Kms)
        .with_sse_kms_key_id(KMS_KEY);
    let loc = Location::parse_with(&site.url("direct"), &opts).unwrap();
    block_on(async {
        loc.put("a", Bytes::from_static(b"a")).await.unwrap();
        loc.store()
            .copy(&loc.path("a"), &loc.path("copy"))
            .await
            .unwrap();
        let mut w = object_store::buffered::BufWriter::with_capacity(
            loc.store().clone(),
            loc.path("multipart"),
            5 << 20,
        );
        tokio::io::AsyncWriteExt::write_all(&mut w, &vec![7u8; (5 << 20) + 100])
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::shutdown(&mut w).await.unwrap();
    });
    let heads = head_objects(&[key_prefix(&site.url("direct"))]);
    assert_eq!(heads.len(), 3);
    for (key, got) in heads {
        assert_eq!(
            got,
            (Some("aws:kms".into()), Some(KMS_KEY.into())),
            "HEAD {key}"
        );
    }
}

#[test]
fn storage_flags_are_checked_and_never_echo_a_value() {
    let secret = "S3CR3T-value-0123456789";
    let bad_key = format!("aws_secret_acess_key={secret}");
    let cases: [(&[&str], &str); 5] = [
        (
            &["compact", "--staged", "s", "--lake", "l", "--storage-option", &bad_key],
            "error: storage option aws_secret_acess_key: not an S3 storage option (object_store \
             keys such as aws_endpoint, aws_region, aws_server_side_encryption, aws_sse_kms_key_id)\n",
        ),
        (
            &["generate", "--out", "o", "--storage-option", secret],
            "error: --storage-option takes KEY=VALUE (an argument had no '=')\n",
        ),
        (
            &["compact", "--staged", "s", "--lake", "l", "--sse", "aes256", "--sse-kms-key-id", "alias/k"],
            "error: storage option aws_sse_kms_key_id: a KMS key id needs server-side encryption \
             aws:kms or aws:kms:dsse, not AES256\n",
        ),
        (
            &["schema", "show", "--tenant", "t01", "--lake", "l", "--sse-kms-key-id", "alias/k"],
            "error: storage option aws_sse_kms_key_id: a KMS key id needs server-side encryption \
             aws:kms or aws:kms:dsse, not none\n",
        ),
        (
            &["schema", "history", "--tenant", "t01", "--lake", "l", "--storage-option", "aws_server_side_encryption=kms"],
            "error: storage option aws_server_side_encryption: unknown server-side encryption \
             \"kms\": expected aes256, aws:kms or aws:kms:dsse\n",
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (args, message) in cases {
        let out = expect(bin().current_dir(tmp.path()).args(args), 2);
        assert_eq!(String::from_utf8_lossy(&out.stderr), message, "{args:?}");
    }
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "nothing is created before the settings are checked"
    );
    // An unknown --sse is clap's usage error.
    let out = expect(
        bin().args([
            "compact", "--staged", "s", "--lake", "l", "--sse", "aws:kms2",
        ]),
        2,
    );
    assert!(String::from_utf8_lossy(&out.stderr)
        .starts_with("error: invalid value 'aws:kms2' for '--sse <MODE>'"));
}

#[test]
fn the_hourly_job_encrypts_with_the_lake_kms_key() {
    let job = JobFile::load(&repo().join("jobs/compact-hourly.toml")).unwrap();
    let opts = job.storage.expect("[storage]").storage_options();
    assert_eq!(
        opts.iter().collect::<Vec<_>>(),
        [
            ("aws_region", "us-east-1"),
            ("aws_server_side_encryption", "aws:kms"),
            ("aws_sse_kms_key_id", "alias/fineo-lake"),
        ]
    );
    opts.check().unwrap();
}

/// Whether `hay` holds `needle` anywhere.
fn holds(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every object below location `name`, by key.
fn objects(site: &Site, name: &str) -> BTreeMap<String, Bytes> {
    let loc = site.location(name);
    block_on(async {
        let mut out = BTreeMap::new();
        for meta in loc.list("").await.unwrap() {
            out.insert(
                meta.location.to_string(),
                loc.get_path(&meta.location).await.unwrap(),
            );
        }
        out
    })
}

#[test]
fn no_credential_in_logs_reports_or_the_lake() {
    let site = Site::new(Backend::S3);
    let secrets = [S3_ACCESS_KEY, S3_SECRET_KEY, SESSION_TOKEN];
    let local = site.scratch().join("sample");
    generate(&local, 1500, "mixed", 41, 2);
    let report = site.scratch().join("report.json");
    let (sample, staged) = (site.url("sample"), format!("{}/staged", site.url("sample")));
    let (lake, lake2, lake3) = (site.url("lake"), site.url("lake2"), site.url("lake3"));
    let catalog = local.join("catalog");
    let local_staged = local.join("staged");
    let missing = "s3://fineo-no-such-bucket/lake";
    let fake = wire::signature_mismatch_server();
    let via_fake = format!("aws_endpoint={fake}");
    let dead = format!("aws_endpoint={DEAD_ENDPOINT}");
    let creds = [
        format!("aws_access_key_id={S3_ACCESS_KEY}"),
        format!("aws_secret_access_key={S3_SECRET_KEY}"),
        format!("aws_session_token={SESSION_TOKEN}"),
    ];
    let cred_flags: Vec<String> = creds
        .iter()
        .flat_map(|c| ["--storage-option".to_string(), c.clone()])
        .collect();
    // (arguments, credentials as flags instead of the environment, exit code)
    #[rustfmt::skip]
    let runs: Vec<(Vec<&str>, bool, i32)> = vec![
        (vec!["generate", "--out", &sample, "--records", "1500", "--seed", "41", "--days", "2"], false, 0),
        (vec!["schema", "import", s(&catalog), "--lake", &lake], false, 0),
        (vec!["compact", "--staged", &staged, "--lake", &lake, "--report", s(&report)], false, 0),
        (vec!["compact", "--json", "--staged", &staged, "--lake", &lake2, "--catalog", s(&catalog)], false, 0),
        (vec!["schema", "accept", "--tenant", "t01", "--metric", "boiler", "--field", "fw", "--type", "string", "--lake", &lake], false, 0),
        (vec!["schema", "proposals", "--tenant", "t02", "--lake", &lake, "--json"], false, 0),
        (vec!["compact", "--staged", &staged, "--lake", &lake3, "--catalog", s(&catalog)], true, 0),
        // Failures: nothing listening, a missing bucket, and S3 refusing the signature (its
        // answer echoes the access key id and the session token).
        (vec!["compact", "--staged", &staged, "--lake", &lake, "--storage-option", &dead], false, 1),
        (vec!["schema", "show", "--tenant", "t01", "--lake", &lake, "--storage-option", &dead], true, 1),
        (vec!["compact", "--staged", s(&local_staged), "--lake", missing], false, 1),
        (vec!["schema", "show", "--tenant", "t01", "--lake", missing], true, 1),
        (vec!["compact", "--staged", s(&local_staged), "--lake", &lake, "--storage-option", &via_fake], false, 1),
        (vec!["schema", "history", "--tenant", "t01", "--lake", &lake, "--storage-option", &via_fake], true, 1),
    ];
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, (args, as_flags, code)) in runs.iter().enumerate() {
        let json_logs = i % 2 == 1;
        let mut cmd = bin();
        cmd.env("RUST_LOG", "trace")
            .env("AWS_SESSION_TOKEN", SESSION_TOKEN);
        if json_logs {
            cmd.args(["--log-format", "json"]);
        }
        cmd.args(args);
        if *as_flags {
            cmd.env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env_remove("AWS_SESSION_TOKEN")
                .args(&cred_flags);
        }
        let out = expect(&mut cmd, *code);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let trace = if json_logs {
            "\"level\":\"TRACE\""
        } else {
            " TRACE "
        };
        assert!(stderr.contains(trace), "run {i} logs at trace level");
        if *code == 1 {
            // The error message ends stderr (it may span lines: S3 error bodies are XML).
            let last = &stderr[stderr.rfind("\nerror: ").map_or(0, |at| at + 1)..];
            let why = match i {
                7 | 8 => "127.0.0.1:1",
                9 | 10 => "NoSuchBucket",
                _ => "SignatureDoesNotMatch",
            };
            assert!(
                last.starts_with("error: ") && last.contains(why),
                "run {i}: {last}"
            );
            if why == "SignatureDoesNotMatch" {
                // The echoed credentials were there, and were replaced.
                assert!(
                    last.contains("<AWSAccessKeyId>[REDACTED]</AWSAccessKeyId>"),
                    "{last}"
                );
                assert!(last.contains("x-amz-security-token:[REDACTED]"), "{last}");
            }
        }
        outputs.push((format!("run {i} stdout"), out.stdout));
        outputs.push((format!("run {i} stderr"), out.stderr));
    }
    outputs.push(("--report".into(), std::fs::read(&report).unwrap()));
    let mut runs_kept = 0;
    for name in ["sample", "lake", "lake2", "lake3"] {
        for (key, bytes) in objects(&site, name) {
            runs_kept += usize::from(key.contains("/_runs/"));
            outputs.push((key, bytes.to_vec()));
        }
    }
    assert_eq!(runs_kept, 3, "a report under _runs/ of each compaction");
    for (what, bytes) in &outputs {
        for secret in secrets {
            assert!(!holds(bytes, secret), "{what} holds a credential");
        }
    }
    let total: usize = outputs.iter().map(|(_, b)| b.len()).sum();
    eprintln!(
        "searched {} outputs and objects ({total} bytes) for credentials",
        outputs.len()
    );
}

/// Runs an operation's future to completion on a runtime of its own.
fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Store paths a tenant owns: its partitions (typed, untyped, index, errors), its catalog
/// versions and its proposals.
fn owned_by(path: &str, tenant: &str) -> bool {
    path.contains(&format!("tenant={tenant}/"))
        || path.contains(&format!("_catalog/{tenant}/"))
        || path.ends_with(&format!("_proposals/{tenant}.json"))
}

const OTHERS: [&str; 3] = ["t02", "t03", "t04"];

/// Every object of `tenant` in the lake, by path, with its bytes.
fn tenant_files(lake: &Location, tenant: &str) -> BTreeMap<String, Bytes> {
    block_on(async {
        let mut out = BTreeMap::new();
        for meta in lake.list("").await.unwrap() {
            let path = meta.location.to_string();
            if owned_by(&path, tenant) {
                out.insert(path, lake.get_path(&meta.location).await.unwrap());
            }
        }
        out
    })
}

/// The recorded writes and deletes relative to the lake; none of another tenant's.
fn only_tenant_a(lake: &Location, rec: &RecordingStore) -> Vec<(Op, String)> {
    let prefix = format!("{}/", lake.prefix());
    let recorded: Vec<(Op, String)> = rec
        .recorded()
        .into_iter()
        .map(|(op, p)| (op, p.strip_prefix(&prefix).unwrap_or(&p).to_string()))
        .collect();
    for (op, path) in &recorded {
        for other in OTHERS {
            assert!(
                !owned_by(path, other),
                "a run for t01 touched {other}: {op:?} {path}"
            );
        }
    }
    recorded
}

/// New input of tenant t01 only, on days the lake holds: typed fields, an unknown field and
/// an unknown metric (proposals, untyped), and one bad record (errors).
fn tenant_a_object() -> Bytes {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for i in 0..60i64 {
        let ts = 1_767_225_600_000 + i * 3_600_000;
        writeln!(
            gz,
            r#"{{"tenant":"t01","metric":"boiler","timestamp":{ts},"temperature":{i}.5,"rpm":{i}}}"#
        )
        .unwrap();
        writeln!(
            gz,
            r#"{{"tenant":"t01","metric":"probe","timestamp":{ts},"level":{i}}}"#
        )
        .unwrap();
    }
    writeln!(
        gz,
        r#"{{"tenant":"t01","metric":"boiler","timestamp":"yesterday"}}"#
    )
    .unwrap();
    Bytes::from(gz.finish().unwrap())
}

/// A compaction whose new input is tenant t01's only, then a catalog edit of t01 and the run
/// that re-types t01 with it: no request writes or deletes anything of another tenant, and
/// every file of t02 is byte-identical before and after.
fn one_tenants_runs_write_nothing_of_another(backend: Backend) {
    let site = Site::new(backend);
    let sample = site.scratch().join("sample");
    generate(&sample, 2000, "mixed", 51, 2);
    site.put_tree(&sample.join("staged"), "staged");
    let lake = site.location("lake");
    run(async {
        import_path(&lake, &sample.join("catalog")).await.unwrap();
        Compact::new(site.location("staged"), lake.clone())
            .execute()
            .await
            .unwrap();
    });
    run(site.location("new").put(
        "2026/01/03/00/fineo-staged-1-2026-01-03-00-00-00-t01.gz",
        tenant_a_object(),
    ))
    .unwrap();
    let before = tenant_files(&lake, "t02");
    for kind in [
        "/typed/tenant=t02/",
        "/untyped/tenant=t02/",
        "/_fineo/index/tenant=t02/",
        "/_catalog/t02/",
        "/_proposals/t02.json",
    ] {
        assert!(before.keys().any(|k| k.contains(kind)), "t02 has no {kind}");
    }

    let (rec_lake, rec) = RecordingStore::wrap(&lake);
    let report = run(Compact::new(site.location("new"), rec_lake).execute()).unwrap();
    assert_eq!(report.committed_version, Some(2));
    assert_eq!(report.records.records_in, 121);
    assert_eq!(report.records.errors, 1);
    assert_eq!(report.proposals.tenants, ["t01"]);
    let recorded = only_tenant_a(&lake, &rec);
    for kind in [
        "typed/tenant=t01/metric=boiler/",
        "untyped/tenant=t01/metric=probe/",
        "_fineo/index/tenant=t01/",
        "errors/tenant=t01/",
        "_proposals/t01.json",
        "_fineo/log/",
    ] {
        assert!(
            recorded
                .iter()
                .any(|(op, p)| matches!(op, Op::Put | Op::Copy) && p.contains(kind)),
            "the run wrote no {kind}: {recorded:?}"
        );
    }
    assert!(recorded.iter().any(|(op, _)| *op == Op::Delete));
    assert_eq!(tenant_files(&lake, "t02"), before, "t02 changed");

    let (rec_lake, rec) = RecordingStore::wrap(&lake);
    let edit = SchemaEdit::AcceptField {
        metric: "boiler".into(),
        field: "rpm".into(),
        as_: None,
        ty: Some(FieldType::Long),
    };
    let version = run(SchemaOp::new(&rec_lake, "t01").edit(edit)).unwrap();
    assert_eq!(version.version, 2);
    assert_eq!(
        only_tenant_a(&lake, &rec),
        [(Op::Put, "_catalog/t01/v00000002.json".to_string())]
    );

    let (rec_lake, rec) = RecordingStore::wrap(&lake);
    let report = run(Compact::new(site.location("new"), rec_lake).execute()).unwrap();
    assert_eq!(report.retype.tenants, ["t01"]);
    assert!(report.retype.partitions > 0);
    let recorded = only_tenant_a(&lake, &rec);
    assert!(recorded
        .iter()
        .any(|(op, p)| *op == Op::Put && p.starts_with("typed/tenant=t01/metric=boiler/")));
    assert_eq!(tenant_files(&lake, "t02"), before, "t02 changed");
}

crate::both_backends! { fn one_tenants_runs_write_nothing_of_another; }
