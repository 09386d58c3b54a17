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
use crate::model::{FieldType, Rec, TypedValue};

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
    for (name, ty) in &cols.0 {
        arrays.push(column(*ty, rows.iter().map(|r| value_of(r, name))));
    }
    RecordBatch::try_new(cols.arrow_schema(), arrays).map_err(|e| Error::data_file("batch", e))
}

fn value_of<'a>(r: &'a Rec, name: &str) -> Option<&'a TypedValue> {
    r.typed
        .iter()
        .find(|(n, _)| n.as_ref() == name)
        .map(|(_, v)| v)
}

fn column<'a>(ty: FieldType, vals: impl Iterator<Item = Option<&'a TypedValue>>) -> ArrayRef {
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
        FieldType::Boolean => build!(BooleanBuilder::new(), TypedValue::Bool(x) => *x),
        FieldType::Int => build!(Int32Builder::new(), TypedValue::Int(x) => *x as i32),
        FieldType::Long => build!(Int64Builder::new(), TypedValue::Int(x) => *x),
        FieldType::Float => build!(Float32Builder::new(), TypedValue::Float(x) => *x as f32),
        FieldType::Double => build!(Float64Builder::new(), TypedValue::Float(x) => *x),
        FieldType::String => build!(StringBuilder::new(), TypedValue::Str(x) => x),
        FieldType::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
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

/// Encodes a batch as one Parquet file (zstd, page statistics, one row group per 1M rows; the
/// sorted timestamps delta-packed; measurements (floats, timestamps) plain, since a dictionary
/// of mostly distinct values costs time and is dropped anyway).
pub fn to_parquet(batch: &RecordBatch) -> Result<Bytes> {
    use parquet::basic::{Encoding, ZstdLevel};
    use parquet::schema::types::ColumnPath;
    let zstd = Compression::ZSTD(ZstdLevel::try_new(1).expect("zstd level"));
    let mut props = WriterProperties::builder()
        .set_compression(zstd)
        .set_column_encoding(ColumnPath::from("timestamp"), Encoding::DELTA_BINARY_PACKED);
    for f in batch.schema().fields() {
        if matches!(
            f.data_type(),
            DataType::Float32 | DataType::Float64 | DataType::Timestamp(..)
        ) {
            let col = ColumnPath::from(f.name().as_str());
            props = props.set_column_dictionary_enabled(col, false);
        }
    }
    let props = props
        .set_max_row_group_row_count(Some(1 << 20))
        .set_created_by(format!("fineo-batch {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() / 2);
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))
        .map_err(|e| Error::data_file("parquet writer", e))?;
    w.write(batch)
        .map_err(|e| Error::data_file("parquet writer", e))?;
    w.close()
        .map_err(|e| Error::data_file("parquet writer", e))?;
    Ok(Bytes::from(buf))
}

/// Delta `stats` JSON for a batch: record count, min/max and null counts per column.
pub fn delta_stats(batch: &RecordBatch) -> String {
    let (mut min, mut max, mut nulls) = (Map::new(), Map::new(), Map::new());
    for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
        let name = field.name().clone();
        nulls.insert(name.clone(), json!(col.null_count()));
        if let Some((lo, hi)) = min_max(col.as_ref()) {
            min.insert(name.clone(), lo);
            max.insert(name, hi);
        }
    }
    json!({"numRecords": batch.num_rows(), "minValues": min, "maxValues": max, "nullCount": nulls})
        .to_string()
}

fn min_max(col: &dyn Array) -> Option<(Value, Value)> {
    use arrow::compute::{max, max_boolean, max_string, min, min_boolean, min_string};
    let any = col.as_any();
    if let Some(a) = any.downcast_ref::<TimestampMicrosecondArray>() {
        return Some((ts_json(min(a)?), ts_json(max(a)?)));
    }
    if let Some(a) = any.downcast_ref::<Int64Array>() {
        return Some((json!(min(a)?), json!(max(a)?)));
    }
    if let Some(a) = any.downcast_ref::<Int32Array>() {
        return Some((json!(min(a)?), json!(max(a)?)));
    }
    if let Some(a) = any.downcast_ref::<Float64Array>() {
        return Some((json!(min(a)?), json!(max(a)?)));
    }
    if let Some(a) = any.downcast_ref::<Float32Array>() {
        return Some((json!(min(a)?), json!(max(a)?)));
    }
    if let Some(a) = any.downcast_ref::<BooleanArray>() {
        return Some((json!(min_boolean(a)?), json!(max_boolean(a)?)));
    }
    if let Some(a) = any.downcast_ref::<StringArray>() {
        let (lo, hi) = (min_string(a)?, max_string(a)?);
        // Long strings would need truncated bounds; leave them without stats.
        return (lo.len() <= 64 && hi.len() <= 64).then(|| (json!(lo), json!(hi)));
    }
    None
}

fn ts_json(us: i64) -> Value {
    let dt = chrono::DateTime::from_timestamp_micros(us).unwrap_or_default();
    json!(dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}
