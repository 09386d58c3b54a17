//! A source file's rows, whatever its format: each with its record number, line and byte offset
//! (where the format has them) and its columns as values, or a bad row saying where and why.
//! CSV is streamed from a local file; JSON Lines line by line; Avro through the archive's own
//! bounded container decoder; Parquet a batch at a time (nested columns as compact JSON).

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::decode::{decode_object, Limits, RecordSink};
use crate::error::{Error, Result};
use crate::model::{RawRecord, RawValue};
use crate::quarantine::BadRecord;

/// One row of a source file.
#[derive(Clone, Debug)]
pub struct Row {
    /// Record number in the file, from 1.
    pub record: u64,
    pub line: Option<u64>,
    pub offset: Option<u64>,
    pub values: Vec<(String, RawValue<'static>)>,
}

/// A row that cannot be ingested: where it is, which column, the raw value and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BadRow {
    pub record: u64,
    pub line: Option<u64>,
    pub offset: Option<u64>,
    pub column: Option<String>,
    pub raw: String,
    /// `ragged_row`, `unterminated_quote`, `invalid_utf8`, `oversized_row`, `bad_json`,
    /// `bad_timestamp`, `missing_metric`, `tenant_mismatch`, ...
    pub reason: String,
    pub message: String,
}

/// Longest raw text kept in an error line.
pub const RAW_LIMIT: usize = 4096;

/// Text of raw bytes for an error line, cut at [`RAW_LIMIT`].
pub fn raw_text(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(RAW_LIMIT)];
    String::from_utf8_lossy(cut).into_owned()
}

/// Owned copy of a decoded value.
pub fn owned(v: &RawValue<'_>) -> RawValue<'static> {
    match v {
        RawValue::Null => RawValue::Null,
        RawValue::Bool(b) => RawValue::Bool(*b),
        RawValue::Number(n) => RawValue::Number(Cow::Owned(n.to_string())),
        RawValue::Str(s) => RawValue::Str(Cow::Owned(s.to_string())),
        RawValue::Nested(s) => RawValue::Nested(Cow::Owned(s.to_string())),
    }
}

/// A decoded archive-shaped record as a row (its tenant, metric and timestamp are columns like
/// any other here).
fn row_of(rec: &RawRecord<'_>, record: u64) -> Row {
    let mut values = Vec::with_capacity(rec.fields.len() + 3);
    for (name, v) in [
        ("tenant", &rec.tenant),
        ("metric", &rec.metric),
        ("timestamp", &rec.timestamp),
    ] {
        if !matches!(v, RawValue::Null) {
            values.push((name.to_string(), owned(v)));
        }
    }
    values.extend(rec.fields.iter().map(|(k, v)| (k.to_string(), owned(v))));
    Row {
        record,
        line: rec.position.line,
        offset: rec.position.byte_offset,
        values,
    }
}

/// Reads JSON Lines from a local file, a line at a time.
pub fn jsonl(
    path: &Path,
    limits: &Limits,
    each: &mut dyn FnMut(std::result::Result<Row, Box<BadRow>>) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::new();
    let (mut line_no, mut offset, mut record) = (0u64, 0u64, 0u64);
    loop {
        buf.clear();
        let n = reader
            .by_ref()
            .take(limits.max_record_bytes as u64 + 2)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(path.display(), e))?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        let start = offset;
        offset += n as u64;
        if !buf.ends_with(b"\n") && n > limits.max_record_bytes {
            record += 1;
            let skipped = skip_line(&mut reader).map_err(|e| Error::io(path.display(), e))?;
            offset += skipped;
            each(Err(bad(
                record,
                Some(line_no),
                Some(start),
                None,
                &buf,
                "oversized_row",
                format!("a line over {} bytes", limits.max_record_bytes),
            )))?;
            continue;
        }
        let line = trim_line(&buf, start == 0);
        if line.is_empty() {
            continue;
        }
        record += 1;
        let position = crate::model::Position {
            record: record - 1,
            line: Some(line_no),
            byte_offset: Some(start),
            ..Default::default()
        };
        match crate::decode::json::parse_line(line, position) {
            Ok(rec) => each(Ok(row_of(&rec, record)))?,
            Err((reason, message)) => each(Err(bad(
                record,
                Some(line_no),
                Some(start),
                None,
                line,
                reason.code(),
                message,
            )))?,
        }
    }
}

fn skip_line(reader: &mut impl BufRead) -> std::io::Result<u64> {
    let mut skipped = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(skipped);
        }
        match memchr::memchr(b'\n', buf) {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(skipped + i as u64 + 1);
            }
            None => {
                let n = buf.len();
                reader.consume(n);
                skipped += n as u64;
            }
        }
    }
}

fn trim_line(line: &[u8], first: bool) -> &[u8] {
    let mut l = line;
    if first {
        l = l.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(l);
    }
    while let Some((last, rest)) = l.split_last() {
        if last.is_ascii_whitespace() {
            l = rest;
        } else {
            break;
        }
    }
    l
}

/// Builds a bad row.
pub fn bad(
    record: u64,
    line: Option<u64>,
    offset: Option<u64>,
    column: Option<String>,
    raw: &[u8],
    reason: &str,
    message: String,
) -> Box<BadRow> {
    Box::new(BadRow {
        record,
        line,
        offset,
        column,
        raw: raw_text(raw),
        reason: reason.to_string(),
        message,
    })
}

/// Reads an Avro container file (any codec) through the archive's bounded decoder.
pub fn avro(
    path: &Path,
    limits: &Limits,
    each: &mut dyn FnMut(std::result::Result<Row, Box<BadRow>>) -> Result<()>,
) -> Result<()> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path.display(), e))?
        .len();
    if size as usize > limits.max_object_bytes {
        return Err(Error::InvalidOption(format!(
            "{}: an Avro file of {size} bytes is over the limit of {} bytes",
            path.display(),
            limits.max_object_bytes
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
    let mut sink = AvroSink {
        each,
        result: Ok(()),
        damage: None,
    };
    decode_object(&bytes, limits, &mut sink);
    sink.result?;
    match sink.damage {
        Some(d) => Err(Error::InvalidOption(format!(
            "not a readable Avro file: {d}"
        ))),
        None => Ok(()),
    }
}

struct AvroSink<'a> {
    each: &'a mut dyn FnMut(std::result::Result<Row, Box<BadRow>>) -> Result<()>,
    result: Result<()>,
    /// Damage to the file itself (a truncated or corrupt container): the file fails.
    damage: Option<String>,
}

impl RecordSink for AvroSink<'_> {
    fn record(&mut self, rec: &RawRecord<'_>) {
        if self.result.is_ok() {
            self.result = (self.each)(Ok(row_of(rec, rec.position.record + 1)));
        }
    }

    fn bad(&mut self, b: BadRecord) {
        if b.object_level {
            self.damage.get_or_insert(b.message);
            return;
        }
        if self.result.is_ok() {
            let raw = match &b.raw {
                crate::quarantine::Raw::Text(t) => t.clone(),
                crate::quarantine::Raw::Binary(bytes) => {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.encode(bytes)
                }
                crate::quarantine::Raw::None => String::new(),
            };
            let row = bad(
                b.position.record + 1,
                b.position.line,
                b.position.byte_offset,
                None,
                raw.as_bytes(),
                b.reason.code(),
                b.message,
            );
            self.result = (self.each)(Err(row));
        }
    }
}

/// Reads a Parquet file a batch at a time; nested columns become compact JSON text, timestamps
/// with a zone epoch milliseconds.
pub fn parquet(
    path: &Path,
    each: &mut dyn FnMut(std::result::Result<Row, Box<BadRow>>) -> Result<()>,
) -> Result<()> {
    use arrow::array::ArrayRef;
    use arrow::datatypes::{DataType, TimeUnit};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let bad_file = |e: &dyn std::fmt::Display| {
        Error::InvalidOption(format!("not a readable Parquet file: {e}"))
    };
    let file = File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| bad_file(&e))?
        .with_batch_size(8192)
        .build()
        .map_err(|e| bad_file(&e))?;
    let mut record = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| bad_file(&e))?;
        // Zoned timestamps as epoch ms (exact); the rest through arrow-json.
        let mut cols: Vec<ArrayRef> = Vec::new();
        let mut fields = Vec::new();
        for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
            let zoned = matches!(f.data_type(), DataType::Timestamp(_, Some(_)));
            let (c, dt) = match zoned {
                true => {
                    let ms =
                        arrow::compute::cast(c, &DataType::Timestamp(TimeUnit::Millisecond, None))
                            .and_then(|a| arrow::compute::cast(&a, &DataType::Int64))
                            .map_err(|e| bad_file(&e))?;
                    (ms, DataType::Int64)
                }
                false => (c.clone(), f.data_type().clone()),
            };
            fields.push(arrow::datatypes::Field::new(f.name(), dt, true));
            cols.push(c);
        }
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
        let batch =
            arrow::record_batch::RecordBatch::try_new(schema, cols).map_err(|e| bad_file(&e))?;
        let mut out = Vec::new();
        {
            let mut w = arrow_json::WriterBuilder::new()
                .with_explicit_nulls(false)
                .build::<_, arrow_json::writer::LineDelimited>(&mut out);
            w.write(&batch).map_err(|e| bad_file(&e))?;
            w.finish().map_err(|e| bad_file(&e))?;
        }
        for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            record += 1;
            let position = crate::model::Position {
                record: record - 1,
                ..Default::default()
            };
            match crate::decode::json::parse_line(line, position) {
                Ok(rec) => {
                    let mut row = row_of(&rec, record);
                    row.line = None;
                    row.offset = None;
                    each(Ok(row))?
                }
                Err((reason, message)) => each(Err(bad(
                    record,
                    None,
                    None,
                    None,
                    line,
                    reason.code(),
                    message,
                )))?,
            }
        }
    }
    Ok(())
}
