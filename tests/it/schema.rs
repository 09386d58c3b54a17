//! `fineo-batch schema`: the versioned catalog through the real binary and the library: every
//! edit kind, refusals that write nothing, import/export, and concurrent editors.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use fineo_batch::catalog::TenantDoc;
use fineo_batch::schema::edit::SchemaEdit;
use fineo_batch::schema::store::CatalogStore;
use fineo_batch::storage::Location;
use serde_json::{json, Value};

use crate::harness::*;

/// The tenant document every test starts from.
fn base_doc() -> Value {
    json!({
        "tenant": "t1",
        "metrics": {
            "boiler": {
                "aliases": ["machine1"],
                "fields": {
                    "temperature": {"type": "double", "aliases": ["temp"]},
                    "pressure": {"type": "long", "aliases": []},
                    "running": {"type": "boolean", "aliases": []},
                    "site": {"type": "string", "aliases": []}
                },
                "hidden": []
            }
        }
    })
}

/// A lake with `base_doc` imported as version 1; returns the lake path.
fn seeded(tmp: &Path) -> String {
    let doc = tmp.join("t1.json");
    std::fs::write(&doc, base_doc().to_string()).unwrap();
    let lake = tmp.join("lake");
    let out = fineo_ok(&["schema", "import", "--lake", s(&lake), s(&doc)], 0);
    assert_eq!(
        out,
        "tenant t1: catalog version 1 (import: 1 metric, 4 fields)\n"
    );
    s(&lake).to_string()
}

/// `schema <args> --lake <lake> --tenant t1`.
fn schema(lake: &str, args: &[&str]) -> Output {
    let mut all = vec!["schema"];
    all.extend(args);
    all.extend(["--lake", lake, "--tenant", "t1"]);
    fineo(&all)
}

fn schema_ok(lake: &str, args: &[&str]) -> String {
    let out = schema(lake, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_of(lake: &str, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&schema_ok(lake, &args)).unwrap()
}

/// (version, change) of every version, from `schema history --json`.
fn history(lake: &str) -> Vec<(u64, String)> {
    json_of(lake, &["history"])["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["change"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_edit_becomes_a_version_and_old_versions_stay_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = &seeded(tmp.path());
    let shown = json_of(lake, &["show"]);
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["catalog"], base_doc());
    let edits: [(&[&str], &str); 10] = [
        (
            &[
                "accept",
                "--metric",
                "boiler",
                "--field",
                "Temp_C",
                "--as",
                "temperature",
            ],
            "accept boiler.Temp_C as alias of temperature",
        ),
        (
            &[
                "accept", "--metric", "machine1", "--field", "rpm", "--type", "long",
            ],
            "accept boiler.rpm as new field rpm (long)",
        ),
        (
            &["accept-metric", "--metric", "Pump #2", "--as", "pump2"],
            "accept metric Pump #2 as new metric pump2",
        ),
        (
            &["alias", "--metric", "boiler", "--alias", "machine1b"],
            "add alias machine1b to boiler",
        ),
        (
            &[
                "alias", "--metric", "boiler", "--field", "pressure", "--alias", "psi",
            ],
            "add alias psi to boiler.pressure",
        ),
        (
            &[
                "rename", "--metric", "boiler", "--field", "site", "--to", "location",
            ],
            "rename boiler.site to location",
        ),
        (
            &["rename", "--metric", "pump2", "--to", "pump"],
            "rename pump2 to pump",
        ),
        (
            &["hide", "--metric", "boiler", "--field", "running"],
            "hide boiler.running",
        ),
        (
            &["unhide", "--metric", "boiler", "--field", "running"],
            "unhide boiler.running",
        ),
        (
            &[
                "set-type", "--metric", "boiler", "--field", "rpm", "--type", "double",
            ],
            "set type of boiler.rpm to double",
        ),
    ];
    for (i, (args, change)) in edits.iter().enumerate() {
        let out = schema_ok(lake, args);
        assert_eq!(
            out,
            format!("tenant t1: catalog version {} ({change})\n", i + 2)
        );
    }
    let expected = json!({
        "tenant": "t1",
        "metrics": {
            "boiler": {
                "aliases": ["machine1", "machine1b"],
                "fields": {
                    "temperature": {"type": "double", "aliases": ["temp", "Temp_C"]},
                    "pressure": {"type": "long", "aliases": ["psi"]},
                    "running": {"type": "boolean", "aliases": []},
                    "location": {"type": "string", "aliases": ["site"]},
                    "rpm": {"type": "double", "aliases": []}
                },
                "hidden": []
            },
            "pump": {"aliases": ["pump2", "Pump #2"], "fields": {}, "hidden": []}
        }
    });
    assert_eq!(json_of(lake, &["show"])["catalog"], expected);
    let shown = json_of(lake, &["show"]);
    let fields: Vec<&String> = shown["catalog"]["metrics"]["boiler"]["fields"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        fields,
        ["temperature", "pressure", "running", "location", "rpm"]
    );

    let mut changes = vec![(1, "import: 1 metric, 4 fields".to_string())];
    changes.extend(
        edits
            .iter()
            .enumerate()
            .map(|(i, (_, c))| (i as u64 + 2, c.to_string())),
    );
    assert_eq!(history(lake), changes);
    let text = schema_ok(lake, &["history"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..2],
        ["tenant t1", "VERSION  CREATED                   CHANGE"]
    );
    assert_eq!(lines.len(), 13);
    for (line, (v, change)) in lines[2..].iter().zip(&changes) {
        let cells: Vec<&str> = line
            .split("  ")
            .filter(|c| !c.is_empty())
            .map(str::trim)
            .collect();
        assert_eq!(
            (cells[0], cells[2]),
            (v.to_string().as_str(), change.as_str())
        );
        chrono::DateTime::parse_from_rfc3339(cells[1]).unwrap();
    }

    let v1 = json_of(lake, &["show", "--version", "1"]);
    assert_eq!(
        (v1["version"].clone(), v1["catalog"].clone()),
        (json!(1), base_doc())
    );
    let v4 = json_of(lake, &["show", "--version", "4", "--metric", "Pump #2"]);
    assert_eq!(
        v4["catalog"],
        json!({"tenant": "t1", "metrics": {"pump2": {"aliases": ["Pump #2"], "fields": {}, "hidden": []}}})
    );
    let table = schema_ok(lake, &["show", "--metric", "machine1b"]);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(
        rows,
        [
            "METRIC  FIELD        TYPE     ALIASES              HIDDEN",
            "boiler  -            -        machine1, machine1b  -",
            "boiler  temperature  double   temp, Temp_C         no",
            "boiler  pressure     long     psi                  no",
            "boiler  running      boolean  -                    no",
            "boiler  location     string   site                 no",
            "boiler  rpm          double   -                    no",
        ]
    );
    assert!(
        table.starts_with("tenant t1: catalog version 11, "),
        "{table}"
    );
    assert!(table
        .lines()
        .next()
        .unwrap()
        .ends_with(" (set type of boiler.rpm to double)"));
}

#[test]
fn export_round_trips_through_import() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = &seeded(tmp.path());
    schema_ok(lake, &["alias", "--metric", "boiler", "--alias", "m2"]);
    let exported: Value = serde_json::from_str(&schema_ok(lake, &["export"])).unwrap();
    assert_eq!(exported, json_of(lake, &["show"])["catalog"]);
    let v1 = tmp.path().join("v1.json");
    assert_eq!(
        schema_ok(lake, &["export", "--version", "1", "--out", s(&v1)]),
        format!("tenant t1: catalog version 1 exported to {}\n", s(&v1))
    );
    let v1_doc: Value = serde_json::from_slice(&std::fs::read(&v1).unwrap()).unwrap();
    assert_eq!(v1_doc, base_doc());

    // Importing version 1 back makes version 3, equal to version 1.
    let out = fineo_ok(&["schema", "import", "--lake", lake, s(&v1)], 0);
    assert_eq!(
        out,
        "tenant t1: catalog version 3 (import: 1 metric, 4 fields)\n"
    );
    assert_eq!(json_of(lake, &["show"])["catalog"], base_doc());

    // Into another lake, the export is the same document.
    let other = tmp.path().join("other");
    fineo_ok(&["schema", "import", "--lake", s(&other), s(&v1)], 0);
    let again: Value = serde_json::from_str(&schema_ok(s(&other), &["export"])).unwrap();
    assert_eq!(again, base_doc());
}

#[test]
fn import_of_a_directory_writes_one_version_per_tenant_and_a_job_file_names_the_lake() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("catalog");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("t1.json"), base_doc().to_string()).unwrap();
    let t2 =
        json!({"tenant": "t2", "metrics": {"pump": {"aliases": [], "fields": {}, "hidden": []}}});
    std::fs::write(dir.join("t2.json"), t2.to_string()).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a catalog").unwrap();
    let lake = tmp.path().join("lake");
    let job = tmp.path().join("job.toml");
    std::fs::write(
        &job,
        format!("[compact]\nstaged = \"x\"\nlake = {:?}\n", s(&lake)),
    )
    .unwrap();
    let import = ["schema", "import", "--job", s(&job), s(&dir)];
    assert_eq!(
        fineo_ok(&import, 0),
        "tenant t1: catalog version 1 (import: 1 metric, 4 fields)\n\
         tenant t2: catalog version 1 (import: 1 metric, 0 fields)\n"
    );
    assert_eq!(
        fineo_ok(&import, 0),
        "tenant t1: unchanged (catalog version 1 already holds this document)\n\
         tenant t2: unchanged (catalog version 1 already holds this document)\n"
    );
    let store = CatalogStore::new(&Location::parse(s(&lake)).unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(rt.block_on(store.tenants()).unwrap(), ["t1", "t2"]);
    let catalog = rt.block_on(store.load_catalog()).unwrap();
    assert_eq!(
        catalog
            .tenant("t1")
            .unwrap()
            .metric("machine1")
            .unwrap()
            .name,
        "boiler"
    );
    assert_eq!(
        catalog
            .tenant("t2")
            .unwrap()
            .metric("pump")
            .unwrap()
            .fields
            .len(),
        0
    );
    let files: Vec<String> = walk(&lake.join("_catalog"))
        .iter()
        .map(|f| {
            f.strip_prefix(&lake)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        files,
        ["_catalog/t1/v00000001.json", "_catalog/t2/v00000001.json"]
    );
    let stored: Value =
        serde_json::from_slice(&std::fs::read(lake.join(&files[1])).unwrap()).unwrap();
    assert_eq!(
        stored.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["version", "created", "change", "catalog"]
    );
    assert_eq!(
        (stored["version"].clone(), stored["catalog"].clone()),
        (json!(1), t2)
    );
    let shown = fineo_ok(
        &[
            "schema",
            "show",
            "--job",
            s(&job),
            "--tenant",
            "t2",
            "--json",
        ],
        0,
    );
    assert_eq!(serde_json::from_str::<Value>(&shown).unwrap()["version"], 1);
}

/// Runs a command that must fail with exit code 1 and exactly `message` on stderr.
fn refused(lake: &str, args: &[&str], message: &str) {
    let before = history(lake).len();
    let out = schema(lake, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr, format!("error: {message}\n"), "{args:?}");
    assert!(out.stdout.is_empty(), "{args:?}");
    assert_eq!(history(lake).len(), before, "{args:?} wrote a version");
}

#[test]
fn refused_edits_say_why_and_write_no_version() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = &seeded(tmp.path());
    schema_ok(lake, &["hide", "--metric", "boiler", "--field", "site"]);
    let t = "catalog for tenant \"t1\": ";
    let cases: &[(&[&str], String)] = &[
        (
            &["alias", "--metric", "boiler", "--field", "pressure", "--alias", "temp"],
            format!("{t}metric \"boiler\": \"temp\" is already an alias of field \"temperature\""),
        ),
        (
            &["alias", "--metric", "boiler", "--field", "pressure", "--alias", "running"],
            format!("{t}metric \"boiler\": \"running\" is already a field"),
        ),
        (
            &["alias", "--metric", "boiler", "--alias", "machine1"],
            format!("{t}\"machine1\" is already an alias of metric \"boiler\""),
        ),
        (
            &["alias", "--metric", "pump", "--alias", "p"],
            format!("{t}unknown metric \"pump\""),
        ),
        (
            &["alias", "--metric", "boiler", "--field", "rpm", "--alias", "r"],
            format!("{t}metric \"boiler\" has no field \"rpm\""),
        ),
        (
            &["rename", "--metric", "boiler", "--field", "pressure", "--to", "running"],
            format!("{t}metric \"boiler\": \"running\" is already a field"),
        ),
        (
            &["rename", "--metric", "boiler", "--to", "boiler room"],
            format!(
                "{t}canonical metric name \"boiler room\" names a Delta table directory: use [A-Za-z0-9_.-] \
                 (starting with a letter, digit or _), and list the name devices send as an alias"
            ),
        ),
        (
            &["rename", "--metric", "nope", "--field", "a", "--to", "b"],
            format!("{t}unknown metric \"nope\""),
        ),
        (
            &["hide", "--metric", "boiler", "--field", "site"],
            format!("{t}metric \"boiler\": field \"site\" is already hidden"),
        ),
        (
            &["hide", "--metric", "boiler", "--field", "temp"],
            format!("{t}metric \"boiler\": \"temp\" is an alias of field \"temperature\"; name the field by \"temperature\""),
        ),
        (
            &["unhide", "--metric", "boiler", "--field", "running"],
            format!("{t}metric \"boiler\": field \"running\" is not hidden"),
        ),
        (
            &["set-type", "--metric", "boiler", "--field", "pressure", "--type", "long"],
            format!("{t}metric \"boiler\": field \"pressure\" is already long"),
        ),
        (
            &["set-type", "--metric", "boiler", "--field", "nope", "--type", "long"],
            format!("{t}metric \"boiler\" has no field \"nope\""),
        ),
        (
            &["accept", "--metric", "boiler", "--field", "pressure", "--type", "long"],
            format!("{t}metric \"boiler\": \"pressure\" is already a field"),
        ),
        (
            &["accept", "--metric", "boiler", "--field", "temp", "--as", "temperature"],
            format!("{t}metric \"boiler\": \"temp\" is already an alias of field \"temperature\""),
        ),
        (
            &["accept", "--metric", "boiler", "--field", "rpm"],
            format!("{t}no proposal for metric \"boiler\" field \"rpm\": give its type (--type), or --as an existing field"),
        ),
        (
            &["accept", "--metric", "boiler", "--field", "Fan Speed", "--type", "long"],
            format!("{t}metric \"boiler\": field name \"Fan Speed\" cannot be a column (reserved, or holds one of ' ,;{{}}()=' or a tab/newline)"),
        ),
        (
            &["accept", "--metric", "boiler", "--field", "date", "--type", "long"],
            format!("{t}metric \"boiler\": field name \"date\" cannot be a column (reserved, or holds one of ' ,;{{}}()=' or a tab/newline)"),
        ),
        (
            &["accept", "--metric", "boiler", "--field", "t2", "--as", "temperature", "--type", "long"],
            format!("{t}metric \"boiler\": field \"temperature\" is double; --type long does not apply to an alias (use set-type)"),
        ),
        (
            &["accept-metric", "--metric", "machine1"],
            format!("{t}\"machine1\" is already an alias of metric \"boiler\""),
        ),
        (
            &["show", "--version", "7"],
            format!("{t}no catalog version 7 (latest is 2)"),
        ),
        (
            &["show", "--metric", "pump"],
            format!("{t}unknown metric \"pump\""),
        ),
    ];
    for (args, message) in cases {
        refused(lake, args, message);
    }
    // Importing what the latest version already holds changes nothing.
    let latest = tmp.path().join("latest.json");
    schema_ok(lake, &["export", "--out", s(&latest)]);
    let out = fineo(&["schema", "import", "--lake", lake, s(&latest)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("error: {t}no change: version 2 already says that\n")
    );
    let bad_type = tmp.path().join("bad.json");
    let mut doc = base_doc();
    doc["metrics"]["boiler"]["fields"]["site"]["type"] = json!("decimal");
    std::fs::write(&bad_type, doc.to_string()).unwrap();
    let out = fineo(&["schema", "import", "--lake", lake, s(&bad_type)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: invalid option: {} is not a catalog document: unknown variant `decimal`",
            s(&bad_type)
        )),
        "{stderr}"
    );
    assert_eq!(history(lake).len(), 2);

    // Usage errors are clap's: exit code 2.
    for args in [
        &[
            "set-type", "--metric", "boiler", "--field", "site", "--type", "decimal",
        ][..],
        &["alias", "--metric", "boiler"],
        &["frobnicate"],
    ] {
        assert_eq!(schema(lake, args).status.code(), Some(2), "{args:?}");
    }
    let out = fineo(&["schema", "history", "--tenant", "t1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: --lake is required (flag or job file)\n"
    );
    assert_eq!(history(lake).len(), 2);
}

fn spawn_accept(lake: &str, field: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_fineo-batch"))
        .args(["schema", "accept", "--lake", lake, "--tenant", "t1"])
        .args(["--metric", "boiler", "--field", field, "--type", "long"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn concurrent_cli_editors_never_lose_an_update() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = &seeded(tmp.path());
    let mut expected_fields = vec!["temperature", "pressure", "running", "site"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    let mut failures = 0;
    for round in 0..10 {
        let names = [format!("a{round}"), format!("b{round}")];
        let children: Vec<_> = names.iter().map(|n| spawn_accept(lake, n)).collect();
        let outs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        for (name, out) in names.iter().zip(&outs) {
            let stderr = String::from_utf8_lossy(&out.stderr);
            match out.status.code() {
                Some(0) => {
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    assert!(
                        stdout.ends_with(&format!(
                            "(accept boiler.{name} as new field {name} (long))\n"
                        )),
                        "{stdout}"
                    );
                    expected_fields.push(name.clone());
                }
                _ => {
                    assert!(
                        stderr.contains("each lost to a concurrent edit"),
                        "{stderr}"
                    );
                    failures += 1;
                }
            }
        }
        assert!(
            outs.iter().any(|o| o.status.success()),
            "round {round}: both failed"
        );
        let doc = json_of(lake, &["show"])["catalog"].clone();
        let mut fields: Vec<String> = doc["metrics"]["boiler"]["fields"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut want = expected_fields.clone();
        fields.sort();
        want.sort();
        assert_eq!(fields, want, "round {round}");
        let versions: Vec<u64> = history(lake).iter().map(|(v, _)| *v).collect();
        assert_eq!(versions, (1..=want.len() as u64 - 3).collect::<Vec<_>>());
    }
    assert_eq!(failures, 0, "10 attempts are enough for two editors");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_apply_tasks_all_land() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = Location::parse(s(tmp.path())).unwrap();
    let store = CatalogStore::new(&lake);
    let doc: TenantDoc = serde_json::from_value(base_doc()).unwrap();
    let import = SchemaEdit::Import { doc };
    store
        .apply("t1", "seed", |d| import.apply(d))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let edit = SchemaEdit::Alias {
                    metric: "boiler".into(),
                    field: Some("temperature".into()),
                    alias: format!("alias{i}"),
                };
                store
                    .apply("t1", &format!("alias {i}"), |d| edit.apply(d))
                    .await
                    .unwrap()
                    .version
            })
        })
        .collect();
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=9).collect::<Vec<u64>>());
    let latest = store.latest("t1").await.unwrap().unwrap();
    assert_eq!(latest.version, 9);
    let mut aliases = latest.catalog.metrics["boiler"].fields.0[0]
        .1
        .aliases
        .clone();
    aliases.sort();
    let mut want: Vec<String> = (0..8).map(|i| format!("alias{i}")).collect();
    want.push("temp".into());
    want.sort();
    assert_eq!(aliases, want);
    let history = store.history("t1").await.unwrap();
    assert_eq!(
        history.iter().map(|v| v.version).collect::<Vec<_>>(),
        (1..=9).collect::<Vec<u64>>()
    );
    // Every version holds exactly one alias more than the one before it.
    for pair in history.windows(2) {
        let count = |v: &fineo_batch::schema::store::CatalogVersion| {
            v.catalog.metrics["boiler"].fields.0[0].1.aliases.len()
        };
        assert_eq!(count(&pair[1]), count(&pair[0]) + 1);
    }
}

#[test]
fn a_tenant_without_catalog_shows_so() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = s(tmp.path());
    assert_eq!(
        schema_ok(lake, &["show"]),
        "tenant t1: no catalog version yet\n"
    );
    assert_eq!(
        schema_ok(lake, &["history"]),
        "tenant t1: no catalog version yet\n"
    );
    let out = schema(lake, &["export"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: catalog for tenant \"t1\": no catalog version to export\n"
    );
    // The first edit starts from an empty document.
    assert_eq!(
        schema_ok(lake, &["accept-metric", "--metric", "boiler"]),
        "tenant t1: catalog version 1 (accept metric boiler)\n"
    );
    let out = fineo(&[
        "schema",
        "show",
        "--lake",
        "/nonexistent/lake",
        "--tenant",
        "t1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: invalid location \"/nonexistent/lake\": no such directory\n"
    );
    let out = fineo(&["schema", "show", "--lake", lake, "--tenant", "../t1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid tenant id"));
}

/// A stored proposal document, as a compaction leaves it in `<lake>/_proposals/t1.json`
/// (suggestions are stale on purpose: `proposals` and `accept` recompute them).
fn write_proposals(lake: &str) {
    let doc = json!({"tenant": "t1", "version": 4, "metrics": {
        "boiler": {"known": true,
            "fields": {
                "Temp_C": {"count": 3, "nulls": 1, "null_rate": 0.25, "inferred_type": "double",
                    "type_counts": {"long": 1, "double": 2}, "samples": ["21", "21.5", "22.25"],
                    "suggestion": {"action": "new_field", "name": "Temp_C", "type": "double"}},
                "Fan Speed": {"count": 2, "nulls": 0, "null_rate": 0.0, "inferred_type": "long",
                    "type_counts": {"long": 2}, "samples": ["1200", "1300"],
                    "suggestion": {"action": "new_field", "name": "Fan Speed", "type": "long"}}
            },
            "type_changes": {"running": {"declared": "boolean", "count": 10, "failures": 4,
                "failure_rate": 0.4, "type_counts": {"boolean": 6, "string": 4},
                "inferred_type": "string", "samples": ["on", "off"],
                "suggestion": {"action": "set_type", "type": "string"}}}},
        "Pump #2": {"known": false, "count": 5, "first_seen": "2026-01-01T00:00:00.000Z",
            "last_seen": "2026-01-02T00:00:00.000Z",
            "suggestion": {"action": "new_metric", "name": "x"},
            "fields": {"flow": {"count": 5, "nulls": 0, "null_rate": 0.0, "inferred_type": "double",
                "type_counts": {"double": 5}, "samples": ["1.5"],
                "suggestion": {"action": "new_field", "name": "flow", "type": "double"}}}}
    }});
    let dir = Path::new(lake).join("_proposals");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("t1.json"), doc.to_string()).unwrap();
}

/// (metric, field or "-", suggestion) of every row of `proposals --json`.
fn suggestions(lake: &str) -> Vec<(String, String, Value)> {
    let doc = json_of(lake, &["proposals"]);
    let mut out = Vec::new();
    for (metric, m) in doc["metrics"].as_object().unwrap() {
        if !m["suggestion"].is_null() {
            out.push((metric.clone(), "-".into(), m["suggestion"].clone()));
        }
        for (field, f) in m["fields"].as_object().into_iter().flatten() {
            out.push((metric.clone(), field.clone(), f["suggestion"].clone()));
        }
        for (field, f) in m["type_changes"].as_object().into_iter().flatten() {
            out.push((metric.clone(), field.clone(), f["suggestion"].clone()));
        }
    }
    out
}

fn row(metric: &str, field: &str, s: Value) -> (String, String, Value) {
    (metric.to_string(), field.to_string(), s)
}

#[test]
fn proposals_are_refreshed_and_accept_takes_their_suggestions() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = &seeded(tmp.path());
    assert_eq!(schema_ok(lake, &["proposals"]), "tenant t1: no proposals\n");
    write_proposals(lake);
    assert_eq!(
        schema_ok(lake, &["proposals"]),
        "tenant t1: proposals as of lake version 4\n\
         METRIC   FIELD      COUNT  NULLS  TYPE    TYPES                SAMPLES                                                    SUGGESTION\n\
         Pump #2  -          5      -      -       -                    seen 2026-01-01T00:00:00.000Z .. 2026-01-02T00:00:00.000Z  new metric Pump__2\n\
         Pump #2  flow       5      0.0%   double  double 5             1.5                                                        new field flow (double)\n\
         boiler   Fan Speed  2      0.0%   long    long 2               1200, 1300                                                 new field Fan_Speed (long)\n\
         boiler   Temp_C     3      25.0%  double  long 1, double 2     21, 21.5, 22.25                                            alias of temperature\n\
         boiler   running    10     -      string  boolean 6, string 4  on, off                                                    set type string (4 of 10 values fail boolean)\n"
    );
    let only = json_of(lake, &["proposals", "--metric", "machine1"]);
    assert_eq!(
        only["metrics"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["boiler"]
    );

    let accepts: [(&[&str], &str); 4] = [
        (
            &["accept", "--metric", "machine1", "--field", "Temp_C"],
            "accept boiler.Temp_C as alias of temperature",
        ),
        (
            &[
                "accept",
                "--metric",
                "boiler",
                "--field",
                "Fan Speed",
                "--type",
                "int",
            ],
            "accept boiler.Fan Speed as new field Fan_Speed (int)",
        ),
        (
            &["accept-metric", "--metric", "Pump #2"],
            "accept metric Pump #2 as new metric Pump__2",
        ),
        (
            &["accept", "--metric", "Pump #2", "--field", "flow"],
            "accept Pump__2.flow as new field flow (double)",
        ),
    ];
    for (i, (args, change)) in accepts.iter().enumerate() {
        let out = schema_ok(lake, args);
        assert_eq!(
            out,
            format!("tenant t1: catalog version {} ({change})\n", i + 2)
        );
    }
    let doc = json_of(lake, &["show"])["catalog"].clone();
    assert_eq!(
        doc["metrics"]["boiler"]["fields"]["temperature"]["aliases"],
        json!(["temp", "Temp_C"])
    );
    assert_eq!(
        doc["metrics"]["boiler"]["fields"]["Fan_Speed"],
        json!({"type": "int", "aliases": ["Fan Speed"]})
    );
    assert_eq!(
        doc["metrics"]["Pump__2"],
        json!({"aliases": ["Pump #2"], "fields": {"flow": {"type": "double", "aliases": []}}, "hidden": []})
    );
    // What the catalog now knows is no longer proposed; the type change stays.
    assert_eq!(
        suggestions(lake),
        [row(
            "boiler",
            "running",
            json!({"action": "set_type", "type": "string"})
        )]
    );
    assert_eq!(
        schema_ok(
            lake,
            &["set-type", "--metric", "boiler", "--field", "running", "--type", "string"]
        ),
        "tenant t1: catalog version 6 (set type of boiler.running to string)\n"
    );
    assert_eq!(suggestions(lake), []);
    assert_eq!(schema_ok(lake, &["proposals"]), "tenant t1: no proposals\n");

    // Without a proposal, a new field needs its type.
    refused(
        lake,
        &["accept", "--metric", "boiler", "--field", "rpm"],
        "catalog for tenant \"t1\": no proposal for metric \"boiler\" field \"rpm\": give its type (--type), or --as an existing field",
    );
    assert_eq!(
        schema_ok(
            lake,
            &["accept", "--metric", "boiler", "--field", "rpm", "--as", "pressure"]
        ),
        "tenant t1: catalog version 7 (accept boiler.rpm as alias of pressure)\n"
    );
}

#[test]
fn every_schema_subcommand_has_help() {
    for sub in [
        "show",
        "history",
        "proposals",
        "accept",
        "accept-metric",
        "alias",
        "rename",
        "hide",
        "unhide",
        "set-type",
        "import",
        "export",
    ] {
        let out = fineo(&["schema", sub, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{sub}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("Usage: fineo-batch schema {sub}")),
            "{text}"
        );
        assert!(
            text.contains("--lake <LAKE>") && text.contains("--json"),
            "{sub}: {text}"
        );
    }
}

/// Issue 14: a lake compacted with `--catalog DIR` has no catalog version of its own; its
/// proposals must still be seen against the catalog it was built with. A known metric with
/// undeclared fields gets only field rows; an unknown metric's row has its real count and
/// first/last event time, in the table and in `--json`, and still after a second compaction.
#[test]
fn known_metrics_are_never_proposed_as_new_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let catalog = tmp.path().join("catalog");
    std::fs::create_dir_all(&catalog).unwrap();
    let mut doc = base_doc();
    doc["tenant"] = json!("t03");
    doc["metrics"]["energy"] =
        json!({"aliases": [], "fields": {"kwh": {"type": "double", "aliases": []}}, "hidden": []});
    std::fs::write(catalog.join("t03.json"), doc.to_string()).unwrap();
    let staged = tmp.path().join("staged");
    let day = 1_767_225_600_000i64; // 2026-01-01T00:00:00Z
    let line = |metric: &str, ts: i64, extra: &str| {
        format!(r#"{{"tenant":"t03","metric":"{metric}","timestamp":{ts},{extra}}}"#)
    };
    let mut first = Vec::new();
    for i in 0..4 {
        first.push(line("energy", day + i * 1000, r#""kwh":1.5,"phase":"L1""#));
        first.push(line("machine1", day + i * 1000, r#""temp":20,"fw":"1.2""#));
    }
    for i in 0..3 {
        first.push(line("pump", day + 5000 + i * 1000, r#""flow":2.5"#));
    }
    std::fs::create_dir_all(staged.join("2026/01/01/00")).unwrap();
    std::fs::write(
        staged.join("2026/01/01/00/s-1-2026-01-01-00-10-00-a.json"),
        first.join("\n") + "\n",
    )
    .unwrap();
    let lake = tmp.path().join("lake");
    compact(&staged, &lake, Some(&catalog), &[]);
    let lake = s(&lake);
    let proposals = |args: &[&str]| {
        let mut all = vec!["schema", "proposals", "--lake", lake, "--tenant", "t03"];
        all.extend(args);
        fineo_ok(&all, 0)
    };
    let first = "tenant t03: proposals as of lake version 1\n\
         METRIC  FIELD  COUNT  NULLS  TYPE    TYPES     SAMPLES                                                    SUGGESTION\n\
         boiler  fw     4      0.0%   double  double 4  1.2                                                        new field fw (double)\n\
         energy  phase  4      0.0%   string  string 4  L1                                                         new field phase (string)\n\
         pump    -      3      -      -       -         seen 2026-01-01T00:00:05.000Z .. 2026-01-01T00:00:07.000Z  new metric pump\n\
         pump    flow   3      0.0%   double  double 3  2.5                                                        new field flow (double)\n";
    assert_eq!(proposals(&[]), first);
    let check_json = |count: u64| {
        let doc: Value = serde_json::from_str(&proposals(&["--json"])).unwrap();
        for known in ["boiler", "energy"] {
            let m = &doc["metrics"][known];
            assert_eq!(m["known"], true, "{known}: {m}");
            assert!(m["suggestion"].is_null(), "{known}: {m}");
        }
        let pump = &doc["metrics"]["pump"];
        assert_eq!(pump["known"], false);
        assert_eq!(pump["count"], count);
        assert_eq!(pump["first_seen"], "2026-01-01T00:00:05.000Z");
        assert_eq!(pump["suggestion"]["action"], "new_metric");
    };
    check_json(3);
    // A second compaction folds more records in and refreshes the document.
    let more = [
        line("pump", day + 9000, r#""flow":3.5"#),
        line("energy", day + 9000, r#""kwh":2"#),
    ];
    std::fs::write(
        staged.join("2026/01/01/00/s-1-2026-01-01-00-20-00-b.json"),
        more.join("\n") + "\n",
    )
    .unwrap();
    compact(&staged, Path::new(lake), Some(&catalog), &[]);
    let second = proposals(&[]);
    assert!(
        second.starts_with("tenant t03: proposals as of lake version 2\n"),
        "{second}"
    );
    let rows: Vec<Vec<&str>> = second
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows.iter().map(|r| (r[0], r[1], r[2])).collect::<Vec<_>>(),
        [
            ("boiler", "fw", "4"),
            ("energy", "phase", "4"),
            ("pump", "-", "4"),
            ("pump", "flow", "4"),
        ]
    );
    assert!(
        second
            .contains("seen 2026-01-01T00:00:05.000Z .. 2026-01-01T00:00:09.000Z  new metric pump"),
        "{second}"
    );
    check_json(4);
}
