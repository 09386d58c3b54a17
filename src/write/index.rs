//! The partition index: per record its key, where it came from (object, position, delivery
//! time), its content hash and the record as sent (metric name and fields, so a later catalog
//! can resolve it again); plus, in the file metadata, the files that hold the partition and
//! the names its records use.

use std::sync::Arc;

use arrow::array::{
    Array, BinaryArray, GenericByteArray, GenericByteBuilder, Int64Array, StringArray,
};
use arrow::datatypes::ByteArrayType;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::metadata::{FooterTail, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;
use parquet::file::statistics::Statistics;
use serde::{Deserialize, Serialize};

use crate::dedup::codec::Interner;
use crate::error::{Error, Result};
use crate::model::{Arrival, FieldType, Rec};
use crate::storage::Location;

const MANIFEST_KEY: &str = "fineo.partition";

/// A data file of a partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// Path relative to the table (typed) or lake (untyped) root.
    pub path: String,
    pub size: u64,
    pub rows: u64,
}

/// Which files make up a partition now, and what decided their content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionManifest {
    pub typed: Vec<DataFile>,
    pub untyped: Option<DataFile>,
    /// Lake version that wrote this state.
    pub version: u64,
    /// Columns of the typed file (after `timestamp`), when there is one.
    #[serde(default)]
    pub columns: Vec<(String, FieldType)>,
    /// Metric and field names the partition's records were sent with.
    #[serde(default)]
    pub names: SentNames,
    /// How the catalog resolved `names` when the partition was written
    /// ([`crate::catalog::TenantCatalog::resolution_fingerprint`]).
    #[serde(default)]
    pub resolution: u64,
    /// Fingerprint of the partition's records (key and content of each), the same in every lake
    /// holding the same records: `diff` skips partitions whose fingerprints match.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content: String,
    /// Archive objects that fed records to the partition but are the source of none of them
    /// (each of their records lost to a later arrival): with the records' sources, every object
    /// that fed the partition, which a replay reads again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_fed: Vec<String>,
    /// Runs that appended records (a typed file and an index row group each) since the
    /// partition was last written whole ([`crate::ops::compact`]'s append path).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub appends: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The distinct source objects of `recs`, each once, in no order. Records of one object share
/// one interned name, so they are told apart by its address first (no string hashing).
pub fn distinct_sources<'a>(
    recs: impl IntoIterator<Item = &'a Rec>,
) -> impl Iterator<Item = &'a Arc<str>> {
    let mut by_address: crate::model::FastMap<*const u8, &Arc<str>> = Default::default();
    for r in recs {
        by_address
            .entry(r.arrival.source.as_ptr())
            .or_insert(&r.arrival.source);
    }
    by_address.into_values()
}

/// The distinct names a partition's records were sent with, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentNames {
    pub metrics: Vec<String>,
    pub fields: Vec<String>,
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("timestamp", DataType::Int64, false),
        Field::new("delivery_ms", DataType::Int64, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("position", DataType::Int64, false),
        Field::new("metric_sent", DataType::Utf8, false),
        Field::new("fields", DataType::Binary, false),
    ]))
}

/// How the index is stored, chosen for size and speed: the sorted timestamps and the
/// positions delta-packed; the few objects, delivery times and metric names as dictionaries;
/// the fields as sent plain (they rarely repeat whole) in zstd pages, which find their names.
/// The other columns are left uncompressed: they are small once encoded (uncompressed, they
/// add 2.4 MB to the 1M set's 35.6 MB index), and the Parquet writer makes a zstd compressor
/// and decompressor for every compressed column of every row group (each asks the CPU for its
/// features, a trap to the hypervisor on a VM): 7% of a full compaction's CPU for those five.
/// The content hash is not stored: every reader resolves the records again, which computes it.
/// The manifest goes into the footer when the file is finished ([`finish`]).
fn properties() -> WriterProperties {
    use parquet::basic::{Compression, Encoding, ZstdLevel};
    use parquet::file::properties::EnabledStatistics;
    use parquet::schema::types::ColumnPath;
    let mut b = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_column_compression(
            ColumnPath::from("fields"),
            Compression::ZSTD(ZstdLevel::try_new(1).expect("zstd level")),
        );
    for col in ["timestamp", "position"] {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(col), false)
            .set_column_encoding(ColumnPath::from(col), Encoding::DELTA_BINARY_PACKED);
    }
    // Only the timestamps' statistics are read (a row group's time span); bounds of the
    // object keys and of the fields as sent would cost a comparison per record.
    for col in ["source", "metric_sent", "fields"] {
        b = b.set_column_statistics_enabled(ColumnPath::from(col), EnabledStatistics::None);
    }
    b.set_column_dictionary_enabled(ColumnPath::from("fields"), false)
        .build()
}

/// An index writer into `w`: batches of [`batch`] in multiples of 1,024 rows give the same
/// bytes as one batch of them all.
pub fn writer<W: std::io::Write + Send>(w: W) -> Result<ArrowWriter<W>> {
    ArrowWriter::try_new(w, schema(), Some(properties())).map_err(|e| Error::data_file("index", e))
}

/// The index rows of `entries`.
pub fn batch(entries: &[Rec]) -> Result<RecordBatch> {
    let col = |f: &dyn Fn(&Rec) -> i64| Arc::new(entries.iter().map(f).collect::<Int64Array>());
    let source: StringArray = bytes_column(entries, |e| e.arrival.source.as_ref());
    let metric: StringArray = bytes_column(entries, |e| e.metric_sent.as_ref());
    let fields: BinaryArray = bytes_column(entries, |e| &e.raw[..]);
    RecordBatch::try_new(
        schema(),
        vec![
            col(&|e| e.ts),
            col(&|e| e.arrival.delivery_ms),
            Arc::new(source),
            col(&|e| e.arrival.position as i64),
            Arc::new(metric),
            Arc::new(fields),
        ],
    )
    .map_err(|e| Error::data_file("index", e))
}

/// A string or binary column of `entries`, its buffers sized once.
fn bytes_column<'a, T: ByteArrayType>(
    entries: &'a [Rec],
    value: impl Fn(&'a Rec) -> &'a T::Native,
) -> GenericByteArray<T> {
    let len = entries
        .iter()
        .map(|e| AsRef::<[u8]>::as_ref(value(e)).len())
        .sum();
    let mut b = GenericByteBuilder::<T>::with_capacity(entries.len(), len);
    entries.iter().for_each(|e| b.append_value(value(e)));
    b.finish()
}

/// Puts the manifest into the footer and closes the file.
pub fn finish<W: std::io::Write + Send>(
    mut w: ArrowWriter<W>,
    manifest: &PartitionManifest,
) -> Result<W> {
    let meta = serde_json::to_string(manifest).expect("manifest json");
    w.append_key_value_metadata(KeyValue::new(MANIFEST_KEY.into(), meta));
    let mut inner = w.into_inner().map_err(|e| Error::data_file("index", e))?;
    std::io::Write::flush(&mut inner).map_err(|e| Error::io("index", e))?;
    Ok(inner)
}

/// Decodes an index file into its records (not yet resolved) and manifest.
pub fn decode(path: &str, bytes: Bytes) -> Result<(Vec<Rec>, PartitionManifest)> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| Error::data_file(path, e))?;
    let manifest = manifest_of(path, builder.metadata())?;
    Ok((rows_of(path, builder)?, manifest))
}

/// The records (not yet resolved) of an index file's row groups from `first` on.
pub fn decode_groups<R: parquet::file::reader::ChunkReader + 'static>(
    path: &str,
    r: R,
    first: std::ops::RangeFrom<usize>,
) -> Result<Vec<Rec>> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(r).map_err(|e| Error::data_file(path, e))?;
    let groups = (first.start..builder.metadata().num_row_groups()).collect();
    rows_of(path, builder.with_row_groups(groups))
}

/// Every record (not yet resolved) the reader `builder` reads.
fn rows_of<R: parquet::file::reader::ChunkReader + 'static>(
    path: &str,
    builder: ParquetRecordBatchReaderBuilder<R>,
) -> Result<Vec<Rec>> {
    let mut out = Vec::new();
    let mut names = Interner::default();
    let reader = builder.build().map_err(|e| Error::data_file(path, e))?;
    for batch in reader {
        let batch = batch.map_err(|e| Error::data_file(path, e))?;
        decode_rows(path, &batch, &mut names, &mut out)?;
    }
    Ok(out)
}

/// An index file on local disk, read batch by batch: its manifest and a reader of its rows.
pub fn open_local(
    path: &str,
    file: std::fs::File,
    batch_rows: usize,
) -> Result<(
    PartitionManifest,
    parquet::arrow::arrow_reader::ParquetRecordBatchReader,
)> {
    let err = |e: &dyn std::fmt::Display| Error::data_file(path, e);
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| err(&e))?;
    let manifest = manifest_of(path, builder.metadata())?;
    let reader = builder
        .with_batch_size(batch_rows)
        .build()
        .map_err(|e| err(&e))?;
    Ok((manifest, reader))
}

/// Appends the records of one batch of an index file to `out` (not yet resolved).
pub fn decode_rows(
    path: &str,
    batch: &RecordBatch,
    names: &mut Interner,
    out: &mut Vec<Rec>,
) -> Result<()> {
    decode_batch(batch, names, out).ok_or_else(|| Error::data_file(path, "unexpected index schema"))
}

/// Reads a batch by column names (files written before the content hash was dropped still have
/// a `hash` column, which is ignored: resolving the records computes it again).
fn decode_batch(batch: &RecordBatch, names: &mut Interner, out: &mut Vec<Rec>) -> Option<()> {
    let column = |name: &str| batch.column_by_name(name);
    let int = |name: &str| column(name)?.as_any().downcast_ref::<Int64Array>();
    let text = |name: &str| column(name)?.as_any().downcast_ref::<StringArray>();
    let (ts, dl, pos) = (int("timestamp")?, int("delivery_ms")?, int("position")?);
    let (src, metric) = (text("source")?, text("metric_sent")?);
    let fields = column("fields")?.as_any().downcast_ref::<BinaryArray>()?;
    // The records' fields as sent are slices of the column's buffer (no copy per record).
    let shared = Bytes::from_owner(SharedValues(fields.values().clone()));
    let ends = fields.value_offsets();
    out.reserve(batch.num_rows());
    for i in 0..batch.num_rows() {
        out.push(Rec {
            ts: ts.value(i),
            arrival: Arrival {
                delivery_ms: dl.value(i),
                source: names.get(src.value(i)),
                position: pos.value(i) as u64,
            },
            metric_sent: names.get(metric.value(i)),
            raw: shared.slice(ends[i] as usize..ends[i + 1] as usize),
            typed: Vec::new(),
            untyped: Vec::new(),
            hash: 0,
        });
    }
    Some(())
}

/// An Arrow buffer as the owner of a [`Bytes`].
struct SharedValues(arrow::buffer::Buffer);

impl AsRef<[u8]> for SharedValues {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

pub fn manifest_of(path: &str, meta: &ParquetMetaData) -> Result<PartitionManifest> {
    let err = |e: &dyn std::fmt::Display| Error::data_file(path, e);
    let manifest = meta
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == MANIFEST_KEY))
        .and_then(|k| k.value.as_deref())
        .ok_or_else(|| err(&"no partition manifest"))?;
    serde_json::from_str(manifest).map_err(|e| err(&e))
}

/// The same index file under another manifest: every data page is kept byte for byte and only
/// the footer is written anew (a restore points a copied index at the typed files it wrote).
/// Returns the file as its two parts: the data pages (a slice of `bytes`) and the new footer.
pub fn with_manifest(
    path: &str,
    bytes: &Bytes,
    manifest: &PartitionManifest,
) -> Result<[Bytes; 2]> {
    use parquet::file::metadata::{FileMetaData, ParquetMetaDataWriter};
    let bad = |e: &dyn std::fmt::Display| Error::data_file(path, e);
    let n = bytes.len();
    let foot: [u8; 8] = bytes
        .get(n.saturating_sub(8)..)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| bad(&"shorter than a Parquet footer"))?;
    let meta_len = FooterTail::try_new(&foot)
        .map_err(|e| bad(&e))?
        .metadata_length();
    let data_end = n
        .checked_sub(8 + meta_len)
        .ok_or_else(|| bad(&"truncated"))?;
    let md = ParquetMetaDataReader::decode_metadata(&bytes.slice(data_end..n - 8))
        .map_err(|e| bad(&e))?;
    let fm = md.file_metadata();
    let mut kv: Vec<KeyValue> = fm
        .key_value_metadata()
        .into_iter()
        .flatten()
        .filter(|k| k.key != MANIFEST_KEY)
        .cloned()
        .collect();
    let meta = serde_json::to_string(manifest).expect("manifest json");
    kv.push(KeyValue::new(MANIFEST_KEY.into(), meta));
    let file_meta = FileMetaData::new(
        fm.version(),
        fm.num_rows(),
        fm.created_by().map(str::to_string),
        Some(kv),
        fm.schema_descr_ptr(),
        fm.column_orders().cloned(),
    );
    let patched = ParquetMetaData::new(file_meta, md.row_groups().to_vec());
    let mut footer = Vec::new();
    ParquetMetaDataWriter::new(&mut footer, &patched)
        .finish()
        .map_err(|e| bad(&e))?;
    Ok([bytes.slice(..data_end), Bytes::from(footer)])
}

/// The index's manifest, record count and event-time range, from its footer alone.
pub fn footer_facts(path: &str, bytes: &Bytes) -> Result<(PartitionManifest, u64, i64, i64)> {
    let bad = |e: &dyn std::fmt::Display| Error::data_file(path, e);
    let md = ParquetMetaDataReader::new()
        .parse_and_finish(bytes)
        .map_err(|e| bad(&e))?;
    let manifest = manifest_of(path, &md)?;
    let records = md.file_metadata().num_rows() as u64;
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for rg in md.row_groups() {
        match rg.columns().first().and_then(|c| c.statistics()) {
            Some(Statistics::Int64(s)) => {
                lo = lo.min(*s.min_opt().ok_or_else(|| bad(&"no timestamp statistics"))?);
                hi = hi.max(*s.max_opt().ok_or_else(|| bad(&"no timestamp statistics"))?);
            }
            _ => return Err(bad(&"no timestamp statistics")),
        }
    }
    if records == 0 {
        return Err(bad(&"an index without records"));
    }
    Ok((manifest, records, lo, hi))
}

/// The source objects of an index file's records with their record counts (only that column
/// is read).
pub fn sources(path: &str, bytes: Bytes) -> Result<std::collections::BTreeMap<String, u64>> {
    use parquet::arrow::ProjectionMask;
    let err = |e: &dyn std::fmt::Display| Error::data_file(path, e);
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| err(&e))?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), ["source"]);
    let mut out = std::collections::BTreeMap::new();
    for batch in builder.with_projection(mask).build().map_err(|e| err(&e))? {
        let batch = batch.map_err(|e| err(&e))?;
        let col = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| err(&"unexpected index schema"))?;
        for v in col.iter().flatten() {
            match out.get_mut(v) {
                Some(n) => *n += 1,
                None => {
                    out.insert(v.to_string(), 1);
                }
            }
        }
    }
    Ok(out)
}

/// Reads only the manifest of an index file (its Parquet footer, usually one ranged request),
/// or `None` when it is gone.
pub async fn read_manifest(lake: &Location, path: &str) -> Result<Option<PartitionManifest>> {
    Ok(read_footer(lake, path).await?.map(|(m, _)| m))
}

/// Reads the manifest and record count of an index file from its footer, or `None` when it is
/// gone.
pub async fn read_footer(lake: &Location, path: &str) -> Result<Option<(PartitionManifest, u64)>> {
    let full = lake.path(path);
    let Some((tail, size)) = lake.get_suffix(&full, 64 << 10).await? else {
        return Ok(None);
    };
    let bad = |e: &dyn std::fmt::Display| Error::data_file(path, e);
    let n = tail.len();
    let foot: [u8; 8] = tail
        .get(n.saturating_sub(8)..)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| bad(&"shorter than a Parquet footer"))?;
    let len = FooterTail::try_new(&foot)
        .map_err(|e| bad(&e))?
        .metadata_length();
    let meta = if len + 8 <= n {
        tail.slice(n - 8 - len..n - 8)
    } else {
        let end = size.checked_sub(8).ok_or_else(|| bad(&"truncated"))?;
        let start = end
            .checked_sub(len as u64)
            .ok_or_else(|| bad(&"truncated"))?;
        lake.get_range(&full, start..end).await?
    };
    let md = ParquetMetaDataReader::decode_metadata(&meta).map_err(|e| bad(&e))?;
    let rows = md.file_metadata().num_rows() as u64;
    manifest_of(path, &md).map(|m| Some((m, rows)))
}

/// An index file's metadata with its page indexes, read from `r`.
pub fn read_meta<R: parquet::file::reader::ChunkReader + 'static>(
    path: &str,
    r: &R,
) -> Result<ParquetMetaData> {
    use parquet::file::metadata::PageIndexPolicy;
    ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Optional)
        .parse_and_finish(r)
        .map_err(|e| Error::data_file(path, e))
}

/// Index files joined into one: every row group of each, in order, copied byte for byte (no
/// decoding), under a new manifest. Appending records to a partition's index costs their bytes
/// and a copy, not a decode and encode of the partition.
pub struct Concat<W: std::io::Write + Send> {
    w: parquet::file::writer::SerializedFileWriter<W>,
}

impl<W: std::io::Write + Send> Concat<W> {
    /// A joined file into `out`, with the schema and metadata (but the manifest) of `first`.
    pub fn new(out: W, first: &ParquetMetaData) -> Result<Self> {
        let fm = first.file_metadata();
        let mut w = parquet::file::writer::SerializedFileWriter::new(
            out,
            fm.schema_descr().root_schema_ptr(),
            Arc::new(properties()),
        )
        .map_err(|e| Error::data_file("index", e))?;
        for kv in fm.key_value_metadata().into_iter().flatten() {
            if kv.key != MANIFEST_KEY {
                w.append_key_value_metadata(kv.clone());
            }
        }
        Ok(Concat { w })
    }

    /// Copies the row groups `groups` of the file `r` (whose metadata is `md`).
    pub fn copy<R: parquet::file::reader::ChunkReader>(
        &mut self,
        path: &str,
        r: &R,
        md: &ParquetMetaData,
        groups: impl std::ops::RangeBounds<usize>,
    ) -> Result<()> {
        use parquet::column::writer::ColumnCloseResult;
        use parquet::file::page_index::column_index::ColumnIndexMetaData;
        let err = |e: &dyn std::fmt::Display| Error::data_file(path, e);
        for (g, rg) in md.row_groups().iter().enumerate() {
            if !groups.contains(&g) {
                continue;
            }
            let mut out = self.w.next_row_group().map_err(|e| err(&e))?;
            for (c, chunk) in rg.columns().iter().enumerate() {
                let column_index = md
                    .column_index()
                    .and_then(|ci| ci.get(g)?.get(c).cloned())
                    .filter(|ci| !matches!(ci, ColumnIndexMetaData::NONE));
                let close = ColumnCloseResult {
                    bytes_written: chunk.compressed_size() as u64,
                    rows_written: rg.num_rows() as u64,
                    metadata: chunk.clone(),
                    bloom_filter: None,
                    column_index,
                    offset_index: md.offset_index().and_then(|oi| oi.get(g)?.get(c).cloned()),
                };
                out.append_column(r, close).map_err(|e| err(&e))?;
            }
            out.close().map_err(|e| err(&e))?;
        }
        Ok(())
    }

    /// Puts `manifest` into the footer and closes the file.
    pub fn finish(mut self, manifest: &PartitionManifest) -> Result<W> {
        let meta = serde_json::to_string(manifest).expect("manifest json");
        self.w
            .append_key_value_metadata(KeyValue::new(MANIFEST_KEY.into(), meta));
        let mut inner = self
            .w
            .into_inner()
            .map_err(|e| Error::data_file("index", e))?;
        std::io::Write::flush(&mut inner).map_err(|e| Error::io("index", e))?;
        Ok(inner)
    }
}
