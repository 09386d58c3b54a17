//! Untyped output: flat JSON Lines `{"timestamp": ms, "<name as sent>": "<text>", ...}`.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::model::Rec;

/// Whether a record needs an untyped line: it has untyped fields, or no typed row to hold it.
pub fn needs_line(rec: &Rec, known_metric: bool) -> bool {
    !rec.untyped.is_empty() || !known_metric
}

/// Appends one record's line.
pub fn write_line(out: &mut Vec<u8>, rec: &Rec) {
    out.extend_from_slice(b"{\"timestamp\":");
    out.extend_from_slice(rec.ts.to_string().as_bytes());
    for (k, v) in &rec.untyped {
        out.push(b',');
        serde_json::to_writer(&mut *out, k).expect("string to vec");
        out.push(b':');
        serde_json::to_writer(&mut *out, v).expect("string to vec");
    }
    out.extend_from_slice(b"}\n");
}

/// Reads a partition's untyped file back: timestamp -> (name, text) pairs in written order.
pub fn read_lines(path: &str, bytes: &[u8]) -> Result<HashMap<i64, Vec<(String, String)>>> {
    let mut out = HashMap::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let err = |m: String| Error::data_file(path, format!("line {}: {m}", i + 1));
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(line).map_err(|e| err(e.to_string()))?;
        let mut ts = None;
        let mut pairs = Vec::with_capacity(map.len());
        for (k, v) in map {
            match (k.as_str(), v) {
                ("timestamp", v) => ts = v.as_i64(),
                (_, serde_json::Value::String(s)) => pairs.push((k, s)),
                (_, other) => return Err(err(format!("value of {k:?} is not text: {other}"))),
            }
        }
        out.insert(ts.ok_or_else(|| err("no timestamp".into()))?, pairs);
    }
    Ok(out)
}
