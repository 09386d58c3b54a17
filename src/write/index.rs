//! The partition index: per record its key, where it came from (object, position, delivery
//! time) and its content hash; plus, in the file metadata, the files that hold the partition.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Arrival;

const MANIFEST_KEY: &str = "fineo.partition";

/// A data file of a partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// Path relative to the table (typed) or lake (untyped) root.
    pub path: String,
    pub size: u64,
    pub rows: u64,
}

/// Which files make up a partition now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionManifest {
    pub typed: Vec<DataFile>,
    pub untyped: Option<DataFile>,
    /// Lake version that wrote this state.
    pub version: u64,
}

/// One record's provenance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub ts: i64,
    pub arrival: Arrival,
    pub hash: u64,
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("timestamp", DataType::Int64, false),
        Field::new("delivery_ms", DataType::Int64, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("position", DataType::Int64, false),
        Field::new("hash", DataType::Int64, false),
    ]))
}

/// Encodes the index of a partition.
pub fn encode(entries: &[Entry], manifest: &PartitionManifest) -> Result<Bytes> {
    let col = |f: &dyn Fn(&Entry) -> i64| Arc::new(entries.iter().map(f).collect::<Int64Array>());
    let source: StringArray = entries
        .iter()
        .map(|e| Some(e.arrival.source.as_ref()))
        .collect();
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            col(&|e| e.ts),
            col(&|e| e.arrival.delivery_ms),
            Arc::new(source),
            col(&|e| e.arrival.position as i64),
            col(&|e| e.hash as i64),
        ],
    )
    .map_err(|e| Error::data_file("index", e))?;
    let meta = serde_json::to_string(manifest).expect("manifest json");
    let props = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_key_value_metadata(Some(vec![KeyValue::new(MANIFEST_KEY.into(), meta)]))
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))
        .map_err(|e| Error::data_file("index", e))?;
    w.write(&batch).map_err(|e| Error::data_file("index", e))?;
    w.close().map_err(|e| Error::data_file("index", e))?;
    Ok(Bytes::from(buf))
}

/// Decodes an index file.
pub fn decode(path: &str, bytes: Bytes) -> Result<(Vec<Entry>, PartitionManifest)> {
    let err = |e: &dyn std::fmt::Display| Error::data_file(path, e);
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| err(&e))?;
    let manifest = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == MANIFEST_KEY))
        .and_then(|k| k.value.as_deref())
        .ok_or_else(|| err(&"no partition manifest"))?;
    let manifest: PartitionManifest = serde_json::from_str(manifest).map_err(|e| err(&e))?;
    let mut entries = Vec::new();
    let mut sources: std::collections::HashMap<String, Arc<str>> = Default::default();
    for batch in builder.build().map_err(|e| err(&e))? {
        let batch = batch.map_err(|e| err(&e))?;
        let int = |i: usize| {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .cloned()
        };
        let (Some(ts), Some(dl), Some(pos), Some(hash)) = (int(0), int(1), int(3), int(4)) else {
            return Err(err(&"unexpected index schema"));
        };
        let src = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| err(&"unexpected index schema"))?;
        for i in 0..batch.num_rows() {
            let s = src.value(i);
            let source = match sources.get(s) {
                Some(a) => a.clone(),
                None => {
                    let a: Arc<str> = Arc::from(s);
                    sources.insert(s.to_string(), a.clone());
                    a
                }
            };
            entries.push(Entry {
                ts: ts.value(i),
                arrival: Arrival {
                    delivery_ms: dl.value(i),
                    source,
                    position: pos.value(i) as u64,
                },
                hash: hash.value(i) as u64,
            });
        }
    }
    Ok((entries, manifest))
}
