//! A partition's records as a stream sorted by timestamp, read from its typed Parquet files and
//! its untyped JSON Lines through the partition index's manifest (never by globbing), a batch
//! or a chunk at a time: memory follows the batch size, not the partition.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{Array, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{
    AsyncFileReader, MetadataSuffixFetch, ParquetRecordBatchStream,
};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::error::{Error, Result};
use crate::storage::Location;
use crate::write::index::PartitionManifest;

/// One record: its timestamp and its non-null values by column (`untyped:<name>` for untyped
/// fields), as text.
pub type Row = (i64, Vec<(String, String)>);

/// Rows of one file, a batch (or a chunk) at a time.
enum Source {
    Typed(ParquetRecordBatchStream<StoreReader>),
    Untyped {
        chunks: BoxStream<'static, object_store::Result<Bytes>>,
        rest: Vec<u8>,
    },
    Done,
}

/// A file's rows in timestamp order.
struct FileRows {
    path: String,
    rows: VecDeque<Row>,
    source: Source,
}

impl FileRows {
    async fn typed(lake: &Location, rel: String) -> Result<Self> {
        let path = lake.path(&rel);
        let reader = StoreReader {
            store: lake.store().clone(),
            path,
        };
        let bad = |e: &dyn std::fmt::Display| Error::data_file(&rel, e);
        let stream = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(|e| bad(&e))?
            .with_batch_size(8192)
            .build()
            .map_err(|e| bad(&e))?;
        Ok(FileRows {
            path: rel,
            rows: VecDeque::new(),
            source: Source::Typed(stream),
        })
    }

    async fn untyped(lake: &Location, rel: String) -> Result<Self> {
        let path = lake.path(&rel);
        let got = lake
            .store()
            .get(&path)
            .await
            .map_err(|e| Error::store(&path, e))?;
        let source = Source::Untyped {
            chunks: got.into_stream(),
            rest: Vec::new(),
        };
        Ok(FileRows {
            path: rel,
            rows: VecDeque::new(),
            source,
        })
    }

    /// The next row, refilling from the file when the buffered ones are used up.
    async fn peek(&mut self) -> Result<Option<&Row>> {
        while self.rows.is_empty() && !matches!(self.source, Source::Done) {
            self.fill().await?;
        }
        Ok(self.rows.front())
    }

    async fn fill(&mut self) -> Result<()> {
        let bad = |e: &dyn std::fmt::Display| Error::data_file(&self.path, e);
        match &mut self.source {
            Source::Typed(stream) => match stream.next().await {
                Some(batch) => {
                    let batch = batch.map_err(|e| bad(&e))?;
                    self.rows.extend(typed_rows(&batch).map_err(|e| bad(&e))?);
                }
                None => self.source = Source::Done,
            },
            Source::Untyped { chunks, rest } => match chunks.next().await {
                Some(chunk) => {
                    rest.extend_from_slice(&chunk.map_err(|e| bad(&e))?);
                    let end = rest.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                    let lines: Vec<u8> = rest.drain(..end).collect();
                    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        self.rows.push_back(
                            untyped_row(line)
                                .ok_or_else(|| bad(&"not a JSON object with a timestamp"))?,
                        );
                    }
                }
                None => {
                    if !rest.is_empty() {
                        let line = std::mem::take(rest);
                        self.rows.push_back(
                            untyped_row(&line)
                                .ok_or_else(|| bad(&"not a JSON object with a timestamp"))?,
                        );
                    }
                    self.source = Source::Done;
                }
            },
            Source::Done => {}
        }
        Ok(())
    }
}

fn typed_rows(batch: &RecordBatch) -> std::result::Result<Vec<Row>, String> {
    let ts = batch
        .column(0)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or("the timestamp column is not a timestamp")?;
    let opts = FormatOptions::default();
    let schema = batch.schema();
    let formatters: Vec<(String, &Arc<dyn Array>, ArrayFormatter<'_>)> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .skip(1)
        .map(|(c, f)| {
            Ok((
                f.name().clone(),
                c,
                ArrayFormatter::try_new(c.as_ref(), &opts).map_err(|e| e.to_string())?,
            ))
        })
        .collect::<std::result::Result<_, String>>()?;
    Ok((0..batch.num_rows())
        .map(|i| {
            let values = formatters
                .iter()
                .filter(|(_, c, _)| c.is_valid(i))
                .map(|(n, _, f)| (n.clone(), f.value(i).to_string()))
                .collect();
            (ts.value(i) / 1000, values)
        })
        .collect())
}

fn untyped_row(line: &[u8]) -> Option<Row> {
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line).ok()?;
    let ts = v.get("timestamp")?.as_i64()?;
    let mut values: Vec<(String, String)> = v
        .into_iter()
        .filter(|(k, _)| k != "timestamp")
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (format!("untyped:{k}"), text)
        })
        .collect();
    values.sort();
    Some((ts, values))
}

/// Every record of a partition in timestamp order: its typed files and its untyped lines,
/// joined by timestamp.
pub struct PartitionRows {
    files: Vec<FileRows>,
}

impl PartitionRows {
    /// The partition of `table` (`tenant=<t>/metric=<m>`) on `date` that `manifest` describes.
    pub async fn open(
        lake: &Location,
        table: &str,
        date: &str,
        manifest: &PartitionManifest,
    ) -> Result<Self> {
        let mut files = Vec::new();
        for f in &manifest.typed {
            files.push(FileRows::typed(lake, format!("typed/{table}/{}", f.path)).await?);
        }
        if let Some(u) = &manifest.untyped {
            files.push(
                FileRows::untyped(lake, format!("untyped/{table}/date={date}/{}", u.path)).await?,
            );
        }
        Ok(PartitionRows { files })
    }

    /// The next record: every file's row at the smallest timestamp, values together.
    pub async fn next(&mut self) -> Result<Option<Row>> {
        let mut least: Option<i64> = None;
        for f in &mut self.files {
            if let Some((ts, _)) = f.peek().await? {
                least = Some(least.map_or(*ts, |l| l.min(*ts)));
            }
        }
        let Some(ts) = least else { return Ok(None) };
        let mut values = Vec::new();
        for f in &mut self.files {
            if f.peek().await?.is_some_and(|(t, _)| *t == ts) {
                values.extend(f.rows.pop_front().expect("peeked").1);
            }
        }
        values.sort();
        Ok(Some((ts, values)))
    }
}

/// Reads a Parquet file from the object store by ranges (its footer, then the pages asked for).
struct StoreReader {
    store: Arc<dyn object_store::ObjectStore>,
    path: object_store::path::Path,
}

fn parquet_err(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(parquet_err)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_via_suffix_and_finish(self)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

impl MetadataSuffixFetch for &mut StoreReader {
    fn fetch_suffix(&mut self, suffix: usize) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Suffix(suffix as u64)),
            ..Default::default()
        };
        async move {
            let got = self
                .store
                .get_opts(&self.path, options)
                .await
                .map_err(parquet_err)?;
            got.bytes().await.map_err(parquet_err)
        }
        .boxed()
    }
}
