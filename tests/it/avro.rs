//! Avro written by another implementation (fastavro, every common codec), truncated Avro, and
//! multi-member gzip: exact rows back.

use std::io::Write;

use serde_json::{json, Value};

use crate::harness::*;

const T: i64 = 1_767_225_600_000;

fn staged_schema() -> Value {
    json!({"type": "record", "name": "StagedRecord", "fields": [
        {"name": "tenant", "type": "string"},
        {"name": "metric", "type": "string"},
        {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "fields", "type": {"type": "map", "values": ["null", "boolean", "int", "long", "float", "double", "string"]}}
    ]})
}

fn staged_record(ts: i64, temp: f64, extra: &str) -> Value {
    json!({"tenant": "t1", "metric": "boiler", "timestamp": ts,
           "fields": {"temp": {"$branch": "double", "value": temp}, "pressure": {"$branch": "long", "value": 7}, "note": extra, "gone": null}})
}

fn fastavro_codecs_schemas_truncation_and_gzip_members(backend: Backend) {
    let site = Site::new(backend);
    let tmp = site.scratch();
    let staged = tmp.join("staged");
    let catalog = tmp.join("catalog");
    std::fs::create_dir_all(&catalog).unwrap();
    std::fs::write(
        catalog.join("t1.json"),
        r#"{"tenant":"t1","metrics":{"boiler":{"fields":{"temperature":{"type":"double","aliases":["temp"]},"pressure":{"type":"long"}}}}}"#,
    )
    .unwrap();
    let mut files = Vec::new();
    for (i, codec) in ["null", "deflate", "snappy", "zstandard", "bzip2", "xz"]
        .iter()
        .enumerate()
    {
        let ts = T + i as i64 * 10_000;
        files.push(json!({
            "name": format!("2026/01/01/00/fineo-1-2026-01-01-00-0{i}-00-{codec}.avro"),
            "codec": codec,
            "schema": staged_schema(),
            "records": [staged_record(ts, i as f64 + 0.5, codec), staged_record(ts + 1, -1.25, "b")]
        }));
    }
    // Another schema: typed top-level fields, micros, and an `unknown_fields` map.
    files.push(json!({
        "name": "2026/01/01/01/fineo-1-2026-01-01-01-00-00-other.avro",
        "codec": "deflate",
        "schema": {"type": "record", "name": "Device", "fields": [
            {"name": "tenant", "type": "string"}, {"name": "metric", "type": "string"},
            {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "temperature", "type": ["null", "double"]},
            {"name": "unknown_fields", "type": {"type": "map", "values": "string"}}]},
        "records": [{"tenant": "t1", "metric": "boiler", "timestamp": (T + 100_000) * 1000 + 999,
                     "temperature": {"$branch": "double", "value": 42.0}, "unknown_fields": {"fw": "2.1"}}]
    }));
    // Many small blocks, then the tail cut off: every block before the damage is kept.
    let many: Vec<Value> = (0..50)
        .map(|k| staged_record(T + 200_000 + k, 1.0, "t"))
        .collect();
    files.push(json!({
        "name": "2026/01/01/02/fineo-1-2026-01-01-02-00-00-truncated.avro",
        "codec": "deflate", "schema": staged_schema(), "records": many,
        "sync_interval": 200, "truncate_bytes": 30
    }));
    let spec = tmp.join("spec.json");
    std::fs::write(&spec, serde_json::to_vec(&json!({"files": files})).unwrap()).unwrap();
    let script = repo().join("scripts/write_avro.py");
    python_ok(&[script.as_os_str(), spec.as_os_str(), staged.as_os_str()]);

    // Two gzip members in one object, no extension hint.
    let mut gz = Vec::new();
    for k in 0..2 {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        writeln!(
            e,
            r#"{{"tenant":"t1","metric":"boiler","timestamp":{},"temperature":{k}.5}}"#,
            T + 300_000 + k
        )
        .unwrap();
        gz.extend(e.finish().unwrap());
    }
    std::fs::create_dir_all(staged.join("2026/01/01/03")).unwrap();
    std::fs::write(
        staged.join("2026/01/01/03/fineo-1-2026-01-01-03-00-00-members"),
        gz,
    )
    .unwrap();

    let staged = site.put_tree(&staged, "staged-s");
    let report = compact(&staged, site.url("lake"), Some(&catalog), &[]);
    let lake = site.local("lake");
    let rows = typed_rows(&lake_dump(&lake))["t1/boiler"].clone();
    let by_ts = |ts: i64| {
        rows.iter()
            .find(|r| r["timestamp"] == ts)
            .cloned()
            .unwrap_or(Value::Null)
    };
    for i in 0..6i64 {
        let ts = T + i * 10_000;
        assert_eq!(
            by_ts(ts)["temperature"],
            json!(i as f64 + 0.5),
            "codec #{i}"
        );
        assert_eq!(by_ts(ts)["pressure"], json!(7));
        assert_eq!(by_ts(ts + 1)["temperature"], json!(-1.25));
    }
    assert_eq!(
        by_ts(T + 100_000)["temperature"],
        json!(42.0),
        "micros are floored to ms"
    );
    assert_eq!(by_ts(T + 300_000)["temperature"], json!(0.5));
    assert_eq!(
        by_ts(T + 300_001)["temperature"],
        json!(1.5),
        "second gzip member"
    );
    let kept = rows
        .iter()
        .filter(|r| {
            r["timestamp"].as_i64().unwrap() >= T + 200_000
                && r["timestamp"].as_i64().unwrap() < T + 300_000
        })
        .count();
    assert!(
        kept > 0 && kept < 50,
        "truncated Avro keeps the blocks before the damage, got {kept}"
    );
    let records = &report["records"];
    assert_eq!(
        report["objects"]["damaged"]["truncated_object"], 1,
        "damage is reported per object"
    );
    assert_eq!(
        records["errors"], 0,
        "damage to an object is not a bad record"
    );
    assert_eq!(
        records["written"].as_u64().unwrap(),
        12 + 1 + kept as u64 + 2
    );
    let untyped = untyped_lines(&lake_dump(&lake));
    let day = &untyped["t1/boiler/2026-01-01"];
    let other = day.iter().find(|l| l["timestamp"] == T + 100_000).unwrap();
    assert_eq!(other, &json!({"timestamp": T + 100_000, "fw": "2.1"}));
    let first = day.iter().find(|l| l["timestamp"] == T).unwrap();
    assert_eq!(first, &json!({"timestamp": T, "note": "null"}));
}
crate::both_backends! { fn fastavro_codecs_schemas_truncation_and_gzip_members; }
