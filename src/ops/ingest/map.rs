//! A source row as a staged record: the tenant (a tenant column must agree), the metric (fixed
//! or from a column), the timestamp (parsed into epoch ms), and every other column a field under
//! its (renamed) name; one JSON line as the archive holds it (SPEC 3).

use super::rows::{bad, BadRow, Row};
use super::settings::{IngestSettings, MetricFrom};
use super::timestamp::TimestampParser;
use crate::model::RawValue;

/// Maps one file's rows.
pub struct Mapper<'a> {
    settings: &'a IngestSettings,
    timestamps: TimestampParser<'a>,
}

/// The staged record's own keys: a field may not be named like them.
pub const RESERVED: [&str; 3] = ["tenant", "metric", "timestamp"];

impl<'a> Mapper<'a> {
    pub fn new(settings: &'a IngestSettings) -> Self {
        Mapper {
            settings,
            timestamps: TimestampParser::new(settings),
        }
    }

    /// The field name of a column (`None`: the column is the tenant, metric or timestamp).
    pub fn field_name<'c>(&self, column: &'c str) -> Option<&'c str>
    where
        'a: 'c,
    {
        let s = self.settings;
        let is_metric = matches!(&s.metric, MetricFrom::Column(c) if c == column);
        if column == s.timestamp_column || column == "tenant" || is_metric {
            return None;
        }
        Some(s.rename.get(column).map(String::as_str).unwrap_or(column))
    }

    /// The columns that would become fields named like the record's own keys.
    pub fn clashes(&self, columns: &[String]) -> Vec<String> {
        columns
            .iter()
            .filter(|c| self.field_name(c).is_some_and(|n| RESERVED.contains(&n)))
            .cloned()
            .collect()
    }

    /// The staged JSON line of a row (newline-terminated), and its timestamp.
    pub fn line(&mut self, row: &Row) -> Result<(Vec<u8>, i64), Box<BadRow>> {
        let s = self.settings;
        let fail = |column: &str, v: &RawValue<'_>, reason: &str, message: String| {
            let raw = v.as_text().unwrap_or("").as_bytes().to_vec();
            bad(
                row.record,
                row.line,
                row.offset,
                Some(column.to_string()),
                &raw,
                reason,
                message,
            )
        };
        let get = |name: &str| row.values.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        if let Some(t) = get("tenant") {
            match t.as_text() {
                None => {}
                Some(t) if t == s.tenant => {}
                Some(other) => {
                    let msg = format!("the row's tenant {other:?} is not {:?}", s.tenant);
                    return Err(fail(
                        "tenant",
                        get("tenant").expect("found"),
                        "tenant_mismatch",
                        msg,
                    ));
                }
            }
        }
        let metric = match &s.metric {
            MetricFrom::Fixed(m) => m.clone(),
            MetricFrom::Column(c) => match get(c).and_then(|v| v.as_text()) {
                Some(m) if !m.trim().is_empty() => m.to_string(),
                _ => {
                    let v = get(c).cloned().unwrap_or(RawValue::Null);
                    return Err(fail(
                        c,
                        &v,
                        "missing_metric",
                        format!("no metric in column {c:?}"),
                    ));
                }
            },
        };
        let ts_col = &s.timestamp_column;
        let ts_value = get(ts_col).cloned().unwrap_or(RawValue::Null);
        let ts = self
            .timestamps
            .parse(&ts_value)
            .map_err(|m| fail(ts_col, &ts_value, "bad_timestamp", m))?;
        let mut out = Vec::with_capacity(64 + row.values.len() * 16);
        out.extend_from_slice(b"{\"tenant\":");
        serde_json::to_writer(&mut out, &s.tenant).expect("json");
        out.extend_from_slice(b",\"metric\":");
        serde_json::to_writer(&mut out, &metric).expect("json");
        out.extend_from_slice(format!(",\"timestamp\":{ts}").as_bytes());
        for (column, v) in &row.values {
            let Some(name) = self.field_name(column) else {
                continue;
            };
            if matches!(v, RawValue::Null) {
                continue;
            }
            out.push(b',');
            serde_json::to_writer(&mut out, name).expect("json");
            out.push(b':');
            match v {
                RawValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
                RawValue::Number(n) | RawValue::Nested(n) => out.extend_from_slice(n.as_bytes()),
                RawValue::Str(t) => serde_json::to_writer(&mut out, t.as_ref()).expect("json"),
                RawValue::Null => unreachable!("skipped above"),
            }
        }
        out.extend_from_slice(b"}\n");
        Ok((out, ts))
    }
}
