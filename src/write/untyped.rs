//! Untyped output: flat JSON Lines `{"timestamp": ms, "<name as sent>": "<text>", ...}`.

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
