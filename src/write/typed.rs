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

/// Builds the batch of `rows` (already sorted by timestamp), row by row: each record's values
/// are read once, in column order, into every column's builder (a pass per column would walk
/// every record's values once per column, out of cache by then).
pub fn to_batch(cols: &Columns, rows: &[Rec]) -> Result<RecordBatch> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(cols.0.len() + 1);
    let ts = TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.ts * 1000));
    arrays.push(Arc::new(ts.with_timezone("UTC")));
    let names: Vec<Name> = cols.0.iter().map(|(n, _)| Name::new(n)).collect();
    let mut builders: Vec<Builder> = cols
        .0
        .iter()
        .map(|(_, ty)| Builder::new(*ty, rows.len()))
        .collect();
    for r in rows {
        // Resolution lists a record's typed values in column order: the next column's value
        // is likely the next one.
        let mut at = 0;
        for (b, name) in builders.iter_mut().zip(&names) {
            b.push(value_of(r, *name, &mut at));
        }
    }
    arrays.extend(builders.into_iter().map(Builder::finish));
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

/// A column being built, of its declared type; a value of another kind is null.
enum Builder {
    Boolean(BooleanBuilder),
    Int(Int32Builder),
    Long(Int64Builder),
    Float(Float32Builder),
    Double(Float64Builder),
    String(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl Builder {
    /// A builder sized for `n` values.
    fn new(ty: FieldType, n: usize) -> Self {
        match ty {
            FieldType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(n)),
            FieldType::Int => Builder::Int(Int32Builder::with_capacity(n)),
            FieldType::Long => Builder::Long(Int64Builder::with_capacity(n)),
            FieldType::Float => Builder::Float(Float32Builder::with_capacity(n)),
            FieldType::Double => Builder::Double(Float64Builder::with_capacity(n)),
            FieldType::String => Builder::String(StringBuilder::with_capacity(n, n * 16)),
            FieldType::Timestamp => Builder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"),
            ),
        }
    }

    fn push(&mut self, v: Option<&TypedValue>) {
        use TypedValue as V;
        match (self, v) {
            (Builder::Boolean(b), Some(V::Bool(x))) => b.append_value(*x),
            (Builder::Int(b), Some(V::Int(x))) => b.append_value(*x as i32),
            (Builder::Long(b), Some(V::Int(x))) => b.append_value(*x),
            (Builder::Float(b), Some(V::Float(x))) => b.append_value(*x as f32),
            (Builder::Double(b), Some(V::Float(x))) => b.append_value(*x),
            (Builder::String(b), Some(V::Str(x))) => b.append_value(x),
            (Builder::Timestamp(b), Some(V::Int(ms))) => b.append_value(ms * 1000),
            (b, _) => b.push_null(),
        }
    }

    fn push_null(&mut self) {
        match self {
            Builder::Boolean(b) => b.append_null(),
            Builder::Int(b) => b.append_null(),
            Builder::Long(b) => b.append_null(),
            Builder::Float(b) => b.append_null(),
            Builder::Double(b) => b.append_null(),
            Builder::String(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Boolean(mut b) => Arc::new(b.finish()),
            Builder::Int(mut b) => Arc::new(b.finish()),
            Builder::Long(mut b) => Arc::new(b.finish()),
            Builder::Float(mut b) => Arc::new(b.finish()),
            Builder::Double(mut b) => Arc::new(b.finish()),
            Builder::String(mut b) => Arc::new(b.finish()),
            Builder::Timestamp(mut b) => Arc::new(b.finish()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arrival;

    fn rec(ts: i64, typed: Vec<(&str, TypedValue)>) -> Rec {
        Rec {
            ts,
            arrival: Arrival {
                delivery_ms: 0,
                source: "s".into(),
                position: 0,
            },
            metric_sent: "m".into(),
            raw: Default::default(),
            typed: typed.into_iter().map(|(n, v)| (n.into(), v)).collect(),
            untyped: vec![],
            hash: 0,
        }
    }

    #[test]
    fn a_batch_holds_each_value_in_its_column_in_any_order_and_null_otherwise() {
        use FieldType as F;
        use TypedValue as V;
        let cols = Columns(
            [
                ("b", F::Boolean),
                ("i", F::Int),
                ("l", F::Long),
                ("f", F::Float),
                ("d", F::Double),
                ("s", F::String),
                ("t", F::Timestamp),
            ]
            .into_iter()
            .map(|(n, t)| (n.into(), t))
            .collect(),
        );
        let rows = [
            // In column order, every column.
            rec(
                1,
                vec![
                    ("b", V::Bool(true)),
                    ("i", V::Int(7)),
                    ("l", V::Int(1 << 40)),
                    ("f", V::Float(1.5)),
                    ("d", V::Float(2.25)),
                    ("s", V::Str("x".into())),
                    ("t", V::Int(5)),
                ],
            ),
            // Out of order, some missing, one of another kind, one not a column.
            rec(
                2,
                vec![
                    ("s", V::Str("y".into())),
                    ("zz", V::Int(9)),
                    ("l", V::Str("not a long".into())),
                    ("i", V::Int(-3)),
                ],
            ),
            rec(3, vec![]),
        ];
        let batch = to_batch(&cols, &rows).unwrap();
        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        let ts = col("timestamp");
        let ts = ts.as_any().downcast_ref::<TimestampMicrosecondArray>();
        assert_eq!(ts.unwrap().values(), &[1000, 2000, 3000]);
        let b: BooleanArray = [Some(true), None, None].into_iter().collect();
        assert_eq!(&b as &dyn Array, col("b").as_ref());
        let i = Int32Array::from(vec![Some(7), Some(-3), None]);
        assert_eq!(&i as &dyn Array, col("i").as_ref());
        let l = Int64Array::from(vec![Some(1 << 40), None, None]);
        assert_eq!(&l as &dyn Array, col("l").as_ref());
        let f = Float32Array::from(vec![Some(1.5), None, None]);
        assert_eq!(&f as &dyn Array, col("f").as_ref());
        let d = Float64Array::from(vec![Some(2.25), None, None]);
        assert_eq!(&d as &dyn Array, col("d").as_ref());
        let s = StringArray::from(vec![Some("x"), Some("y"), None]);
        assert_eq!(&s as &dyn Array, col("s").as_ref());
        let t = TimestampMicrosecondArray::from(vec![Some(5000), None, None]).with_timezone("UTC");
        assert_eq!(&t as &dyn Array, col("t").as_ref());
    }
}
