//! Typed rows: Arrow batches, Parquet files (sorted, with statistics) and Delta file stats.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float32Array, Float32Builder, Float64Array,
    Float64Builder, Int32Array, Int32Builder, Int64Array, Int64Builder, StringArray, StringBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::model::{FieldType, Name, Rec, TypedValue};

/// The columns of a typed table after `timestamp`, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Columns(pub Vec<(Arc<str>, FieldType)>);

impl Columns {
    /// The Arrow schema of the Parquet files (`timestamp` first, not null).
    pub fn arrow_schema(&self) -> SchemaRef {
        let mut fields = vec![Field::new("timestamp", ts_type(), false)];
        fields.extend(
            self.0
                .iter()
                .map(|(n, t)| Field::new(n.as_ref(), arrow_type(*t), true)),
        );
        Arc::new(Schema::new(fields))
    }
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Arrow type that stores a declared type (timestamps as µs, UTC, as Delta requires).
pub fn arrow_type(t: FieldType) -> DataType {
    match t {
        FieldType::Boolean => DataType::Boolean,
        FieldType::Int => DataType::Int32,
        FieldType::Long => DataType::Int64,
        FieldType::Float => DataType::Float32,
        FieldType::Double => DataType::Float64,
        FieldType::String => DataType::Utf8,
        FieldType::Timestamp => ts_type(),
    }
}

/// Builds the batch of `rows` (already sorted by timestamp).
pub fn to_batch(cols: &Columns, rows: &[Rec]) -> Result<RecordBatch> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(cols.0.len() + 1);
    let ts: TimestampMicrosecondArray = rows.iter().map(|r| Some(r.ts * 1000)).collect();
    arrays.push(Arc::new(ts.with_timezone("UTC")));
    // Per row, where the next column's value is likely to be: resolution lists a record's
    // typed values in column order.
    let mut next = vec![0usize; rows.len()];
    for (name, ty) in &cols.0 {
        let name = Name::new(name);
        let values = rows
            .iter()
            .zip(next.iter_mut())
            .map(|(r, at)| value_of(r, name, at));
        arrays.push(column(*ty, rows.len(), values));
    }
    RecordBatch::try_new(cols.arrow_schema(), arrays).map_err(|e| Error::data_file("batch", e))
}

/// The value of column `name` in `r`, looked for first at `*at` (moved past it when found).
fn value_of<'a>(r: &'a Rec, name: Name, at: &mut usize) -> Option<&'a TypedValue> {
    match r.typed.get(*at) {
        Some((n, v)) if *n == name => {
            *at += 1;
            Some(v)
        }
        _ => r.typed.iter().find(|(n, _)| *n == name).map(|(_, v)| v),
    }
}

/// A column of `n` values, its builder sized for them.
fn column<'a>(
    ty: FieldType,
    n: usize,
    vals: impl Iterator<Item = Option<&'a TypedValue>>,
) -> ArrayRef {
    macro_rules! build {
        ($b:expr, $pat:pat => $v:expr) => {{
            let mut b = $b;
            for v in vals {
                match v {
                    Some($pat) => b.append_value($v),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    match ty {
        FieldType::Boolean => build!(BooleanBuilder::with_capacity(n), TypedValue::Bool(x) => *x),
        FieldType::Int => build!(Int32Builder::with_capacity(n), TypedValue::Int(x) => *x as i32),
        FieldType::Long => build!(Int64Builder::with_capacity(n), TypedValue::Int(x) => *x),
        FieldType::Float => {
            build!(Float32Builder::with_capacity(n), TypedValue::Float(x) => *x as f32)
        }
        FieldType::Double => build!(Float64Builder::with_capacity(n), TypedValue::Float(x) => *x),
        FieldType::String => {
            build!(StringBuilder::with_capacity(n, n * 16), TypedValue::Str(x) => x)
        }
        FieldType::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
            for v in vals {
                match v {
                    Some(TypedValue::Int(ms)) => b.append_value(ms * 1000),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
    }
}

/// How typed files are written (Snappy, page statistics, one row group per 1M rows; the sorted
/// timestamps delta-packed; measurements (floats, timestamps) plain, since a dictionary of
/// mostly distinct values costs time and is dropped anyway). Snappy, Spark's default and read
/// by every engine, rather than zstd: a partition has a file per window, and the Parquet
/// writer makes a zstd compressor and decompressor for every column of every file (each asks
/// the CPU for its features: a trap to the hypervisor on a VM), which cost more than zstd's
/// smaller files save.
pub fn writer_properties(schema: &Schema) -> WriterProperties {
    use parquet::basic::Encoding;
    use parquet::schema::types::ColumnPath;
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_column_encoding(ColumnPath::from("timestamp"), Encoding::DELTA_BINARY_PACKED);
    for f in schema.fields() {
        if matches!(
            f.data_type(),
            DataType::Float32 | DataType::Float64 | DataType::Timestamp(..)
        ) {
            let col = ColumnPath::from(f.name().as_str());
            props = props.set_column_dictionary_enabled(col, false);
        }
    }
    props
        .set_max_row_group_row_count(Some(1 << 20))
        .set_created_by(format!("fineo-batch {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A typed file writer into `w`. Batches written in multiples of 1,024 rows (the writer's
/// mini-batch) give the same bytes as one batch of them all.
pub fn writer<W: std::io::Write + Send>(w: W, schema: SchemaRef) -> Result<ArrowWriter<W>> {
    let props = writer_properties(&schema);
    ArrowWriter::try_new(w, schema, Some(props)).map_err(|e| Error::data_file("parquet writer", e))
}

/// Encodes a batch as one Parquet file.
pub fn to_parquet(batch: &RecordBatch) -> Result<Bytes> {
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() / 2);
    let mut w = writer(&mut buf, batch.schema())?;
    w.write(batch)
        .map_err(|e| Error::data_file("parquet writer", e))?;
    w.close()
        .map_err(|e| Error::data_file("parquet writer", e))?;
    Ok(Bytes::from(buf))
}

/// Delta `stats` JSON for a batch: record count, min/max and null counts per column.
pub fn delta_stats(batch: &RecordBatch) -> String {
    let mut acc = StatsAcc::default();
    acc.add(batch);
    acc.json(&batch.schema())
}

/// Delta `stats` of a file written batch by batch: the same JSON as [`delta_stats`] of all
/// its rows at once.
#[derive(Default)]
pub struct StatsAcc {
    rows: usize,
    /// Per column: null count and bounds so far.
    cols: Vec<(usize, Option<Bounds>)>,
}

/// A column's least and greatest value (floats in total order, as Arrow's kernels compare).
#[derive(Clone)]
enum Bounds {
    Ts(i64, i64),
    I64(i64, i64),
    I32(i32, i32),
    F64(f64, f64),
    F32(f32, f32),
    Bool(bool, bool),
    Str(String, String),
}

impl StatsAcc {
    /// Takes one more batch of the file.
    pub fn add(&mut self, batch: &RecordBatch) {
        if self.cols.is_empty() {
            self.cols = vec![(0, None); batch.num_columns()];
        }
        self.rows += batch.num_rows();
        for (slot, col) in self.cols.iter_mut().zip(batch.columns()) {
            slot.0 += col.null_count();
            if let Some(b) = bounds(col.as_ref()) {
                slot.1 = Some(match slot.1.take() {
                    Some(a) => a.widen(b),
                    None => b,
                });
            }
        }
    }

    /// The stats JSON; `schema` names the columns.
    pub fn json(&self, schema: &Schema) -> String {
        let (mut min, mut max, mut nulls) = (Map::new(), Map::new(), Map::new());
        for (i, field) in schema.fields().iter().enumerate() {
            let (null_count, b) = self.cols.get(i).cloned().unwrap_or((0, None));
            let name = field.name().clone();
            nulls.insert(name.clone(), json!(null_count));
            if let Some((lo, hi)) = b.as_ref().and_then(Bounds::json) {
                min.insert(name.clone(), lo);
                max.insert(name, hi);
            }
        }
        json!({"numRecords": self.rows, "minValues": min, "maxValues": max, "nullCount": nulls})
            .to_string()
    }
}

impl Bounds {
    fn widen(self, b: Bounds) -> Bounds {
        use std::cmp::{max, min};
        let fmin = |a: f64, b: f64| if b.total_cmp(&a).is_lt() { b } else { a };
        let fmax = |a: f64, b: f64| if b.total_cmp(&a).is_gt() { b } else { a };
        match (self, b) {
            (Bounds::Ts(a, b), Bounds::Ts(c, d)) => Bounds::Ts(min(a, c), max(b, d)),
            (Bounds::I64(a, b), Bounds::I64(c, d)) => Bounds::I64(min(a, c), max(b, d)),
            (Bounds::I32(a, b), Bounds::I32(c, d)) => Bounds::I32(min(a, c), max(b, d)),
            (Bounds::F64(a, b), Bounds::F64(c, d)) => Bounds::F64(fmin(a, c), fmax(b, d)),
            (Bounds::F32(a, b), Bounds::F32(c, d)) => {
                let lo = if c.total_cmp(&a).is_lt() { c } else { a };
                let hi = if d.total_cmp(&b).is_gt() { d } else { b };
                Bounds::F32(lo, hi)
            }
            (Bounds::Bool(a, b), Bounds::Bool(c, d)) => Bounds::Bool(a && c, b || d),
            (Bounds::Str(a, b), Bounds::Str(c, d)) => Bounds::Str(min(a, c), max(b, d)),
            (a, _) => a,
        }
    }

    fn json(&self) -> Option<(Value, Value)> {
        Some(match self {
            Bounds::Ts(lo, hi) => (ts_json(*lo), ts_json(*hi)),
            Bounds::I64(lo, hi) => (json!(lo), json!(hi)),
            Bounds::I32(lo, hi) => (json!(lo), json!(hi)),
            Bounds::F64(lo, hi) => (json!(lo), json!(hi)),
            Bounds::F32(lo, hi) => (json!(lo), json!(hi)),
            Bounds::Bool(lo, hi) => (json!(lo), json!(hi)),
            // Long strings would need truncated bounds; leave them without stats.
            Bounds::Str(lo, hi) if lo.len() <= 64 && hi.len() <= 64 => (json!(lo), json!(hi)),
            Bounds::Str(..) => return None,
        })
    }
}

fn bounds(col: &dyn Array) -> Option<Bounds> {
    use arrow::compute::{max, max_boolean, max_string, min, min_boolean, min_string};
    let any = col.as_any();
    if let Some(a) = any.downcast_ref::<TimestampMicrosecondArray>() {
        return Some(Bounds::Ts(min(a)?, max(a)?));
    }
    if let Some(a) = any.downcast_ref::<Int64Array>() {
        return Some(Bounds::I64(min(a)?, max(a)?));
    }
    if let Some(a) = any.downcast_ref::<Int32Array>() {
        return Some(Bounds::I32(min(a)?, max(a)?));
    }
    if let Some(a) = any.downcast_ref::<Float64Array>() {
        return Some(Bounds::F64(min(a)?, max(a)?));
    }
    if let Some(a) = any.downcast_ref::<Float32Array>() {
        return Some(Bounds::F32(min(a)?, max(a)?));
    }
    if let Some(a) = any.downcast_ref::<BooleanArray>() {
        return Some(Bounds::Bool(min_boolean(a)?, max_boolean(a)?));
    }
    if let Some(a) = any.downcast_ref::<StringArray>() {
        let (lo, hi) = (min_string(a)?, max_string(a)?);
        return Some(Bounds::Str(lo.to_string(), hi.to_string()));
    }
    None
}

fn ts_json(us: i64) -> Value {
    let dt = chrono::DateTime::from_timestamp_micros(us).unwrap_or_default();
    json!(dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}
