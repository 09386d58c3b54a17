//! A partition's files written from its winners in order, batch by batch: typed Parquet with
//! its Delta stats, untyped JSON Lines, and the index with its manifest in the footer; into
//! memory or onto local disk, the same bytes either way.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::arrow::ArrowWriter;

use super::index::{self, DataFile, PartitionManifest, SentNames};
use super::typed::{self, Columns, StatsAcc};
use super::untyped;
use crate::error::{Error, Result};
use crate::model::{FastMap, FastSet, Rec};
use crate::resolve::raw;

/// Where an encoder's files go.
pub trait Sink: Write + Send + Sized {
    /// A new, empty file.
    fn create(&mut self) -> Result<Self>;
}

impl Sink for Vec<u8> {
    fn create(&mut self) -> Result<Self> {
        Ok(Vec::new())
    }
}

/// A file in a local directory (for a partition too large to hold in memory).
pub struct DiskFile {
    dir: PathBuf,
    next: u32,
    pub path: PathBuf,
    w: Option<std::io::BufWriter<std::fs::File>>,
}

impl DiskFile {
    /// The factory of files below `dir` (itself no file).
    pub fn factory(dir: &Path) -> Self {
        DiskFile {
            dir: dir.to_path_buf(),
            next: 0,
            path: PathBuf::new(),
            w: None,
        }
    }

    fn w(&mut self) -> std::io::Result<&mut std::io::BufWriter<std::fs::File>> {
        self.w
            .as_mut()
            .ok_or_else(|| std::io::Error::other("not a file"))
    }
}

impl Write for DiskFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.w()?.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w()?.flush()
    }
}

impl Sink for DiskFile {
    fn create(&mut self) -> Result<Self> {
        self.next += 1;
        let path = self.dir.join(format!("out-{}", self.next));
        let f = std::fs::File::create(&path).map_err(|e| Error::io(path.display(), e))?;
        Ok(DiskFile {
            dir: self.dir.clone(),
            next: 0,
            path,
            w: Some(std::io::BufWriter::with_capacity(1 << 16, f)),
        })
    }
}

/// A writer that counts the bytes through it.
pub struct Counted<W> {
    pub inner: W,
    pub bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A finished typed file: its sink, size, Delta stats JSON and rows.
pub struct TypedPart<W> {
    pub file: W,
    pub size: u64,
    pub stats: String,
    pub rows: u64,
}

/// A partition's finished files: each sink with its size.
pub struct Parts<W> {
    /// The typed files, one per [`TYPED_WINDOW_MS`] window the winners fall in, in order.
    pub typed: Vec<TypedPart<W>>,
    pub lines: Option<(W, u64)>,
    pub untyped_count: u64,
    /// `None` when the partition is now empty.
    pub index: Option<W>,
    pub rows: u64,
}

/// The typed files one run writes for a partition, relative to its table: its n-th is
/// `date=<d>/part-<tag>-<n>.parquet` (one per window the records fall in).
#[derive(Clone)]
pub struct TypedNames {
    rel: String,
    tag: String,
}

impl TypedNames {
    /// The names of run `tag`'s files in directory `rel` (`date=<d>`).
    pub fn new(rel: &str, tag: &str) -> Self {
        TypedNames {
            rel: rel.to_string(),
            tag: tag.to_string(),
        }
    }

    /// The n-th file.
    pub fn file(&self, n: usize) -> String {
        format!("{}/part-{}-{n:05}.parquet", self.rel, self.tag)
    }
}

/// How a finished partition is described in its index manifest.
pub struct Finish<'a, R> {
    /// The names of the typed files written.
    pub typed_names: &'a TypedNames,
    pub version: u64,
    /// The resolution fingerprint of the names the winners were sent with.
    pub resolution: R,
    /// Every object that fed the partition (records' sources among them).
    pub fed: Vec<&'a str>,
}

/// A record's share of a partition's content fingerprint (its key and content hashed). The
/// fingerprint is the wrapping sum of its records' shares: the same for the same records
/// however the partition was written, and the sum of its parts' when records are appended.
pub fn record_fingerprint(r: &Rec) -> u128 {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&r.ts.to_le_bytes());
    key[8..].copy_from_slice(&r.hash.to_le_bytes());
    xxhash_rust::xxh3::xxh3_128(&key)
}

/// The span of time one typed file (and one index row group at least) of a partition holds:
/// a UTC window of 6 hours. A run whose new records reach back into a partition's last windows
/// rewrites those windows only (a tail rewrite, `ops::compact::append`), not the whole day.
pub const TYPED_WINDOW_MS: i64 = 6 * 3_600_000;

/// The window a timestamp falls in.
pub fn window_of(ts: i64) -> i64 {
    ts.div_euclid(TYPED_WINDOW_MS)
}

/// Winners per push that every caller uses (in memory and through sorted runs alike), so that
/// a partition's files are the same bytes whichever way it was merged.
pub const PUSH_ROWS: usize = 8192;

/// The most name sequences an encoder remembers (see `PartitionEncoder::shapes`).
const MAX_SHAPES: usize = 4096;

/// A typed file being written: its writer, stats and rows so far.
struct OpenTyped<W: Write + Send> {
    w: ArrowWriter<Counted<W>>,
    stats: StatsAcc,
    rows: u64,
}

/// Encodes a partition's winners, pushed in timestamp order.
pub struct PartitionEncoder<W: Sink> {
    sinks: W,
    columns: Option<Columns>,
    /// The window of the winners pushed last.
    window: Option<i64>,
    typed: Option<OpenTyped<W>>,
    typed_done: Vec<TypedPart<W>>,
    lines: Option<Counted<W>>,
    line_buf: Vec<u8>,
    untyped_count: u64,
    index: Option<ArrowWriter<W>>,
    rows: u64,
    metrics: FastSet<Arc<str>>,
    fields: FastSet<Box<[u8]>>,
    /// The sequences of field names seen (length-prefixed), so that a record sent with the
    /// names of an earlier one costs one look-up, not one per name.
    shapes: FastSet<Box<[u8]>>,
    shape: Vec<u8>,
    /// The winners' sources, told apart by the address of their shared name.
    sources: FastMap<usize, Arc<str>>,
    /// The sum of the winners' record fingerprints ([`record_fingerprint`]).
    content: u128,
}

impl<W: Sink> PartitionEncoder<W> {
    /// An encoder whose files `sinks` creates; `columns` when the metric is declared.
    pub fn new(sinks: W, columns: Option<Columns>) -> Self {
        PartitionEncoder {
            sinks,
            columns,
            window: None,
            typed: None,
            typed_done: Vec::new(),
            lines: None,
            line_buf: Vec::new(),
            untyped_count: 0,
            index: None,
            rows: 0,
            metrics: FastSet::default(),
            fields: FastSet::default(),
            shapes: FastSet::default(),
            shape: Vec::new(),
            sources: FastMap::default(),
            content: 0,
        }
    }

    /// Takes the next winners (after those pushed before, in timestamp order). Winners of a
    /// later window than the last start a typed file and an index row group of their own.
    /// Every caller pushes [`PUSH_ROWS`] winners at a time (the last push fewer), so the files'
    /// bytes depend on the winners alone.
    pub fn push(&mut self, winners: &[Rec]) -> Result<()> {
        let mut rest = winners;
        while let Some(first) = rest.first() {
            let w = window_of(first.ts);
            let (run, later) = rest.split_at(rest.partition_point(|r| window_of(r.ts) == w));
            if self.window.is_some_and(|open| open != w) {
                self.close_window()?;
            }
            self.window = Some(w);
            self.push_window(run)?;
            rest = later;
        }
        Ok(())
    }

    /// Closes the open window: its typed file is finished, the index's row group ends.
    fn close_window(&mut self) -> Result<()> {
        if let Some(open) = self.typed.take() {
            let schema = self
                .columns
                .as_ref()
                .expect("typed has columns")
                .arrow_schema();
            let sink = open
                .w
                .into_inner()
                .map_err(|e| Error::data_file("parquet writer", e))?;
            let Counted { mut inner, bytes } = sink;
            inner.flush().map_err(|e| Error::io("typed file", e))?;
            self.typed_done.push(TypedPart {
                file: inner,
                size: bytes,
                stats: open.stats.json(&schema),
                rows: open.rows,
            });
        }
        if let Some(w) = self.index.as_mut() {
            w.flush().map_err(|e| Error::data_file("index", e))?;
        }
        Ok(())
    }

    fn push_window(&mut self, winners: &[Rec]) -> Result<()> {
        self.rows += winners.len() as u64;
        if let Some(cols) = &self.columns {
            if self.typed.is_none() {
                let sink = Counted {
                    inner: self.sinks.create()?,
                    bytes: 0,
                };
                self.typed = Some(OpenTyped {
                    w: typed::writer(sink, cols.arrow_schema())?,
                    stats: StatsAcc::default(),
                    rows: 0,
                });
            }
            let open = self.typed.as_mut().expect("created above");
            let batch = typed::to_batch(cols, winners)?;
            open.stats.add(&batch);
            open.rows += winners.len() as u64;
            open.w
                .write(&batch)
                .map_err(|e| Error::data_file("parquet writer", e))?;
        }
        self.push_lines(winners)?;
        if self.index.is_none() {
            self.index = Some(index::writer(self.sinks.create()?)?);
        }
        let w = self.index.as_mut().expect("created above");
        w.write(&index::batch(winners)?)
            .map_err(|e| Error::data_file("index", e))?;
        self.note(winners);
        Ok(())
    }

    fn push_lines(&mut self, winners: &[Rec]) -> Result<()> {
        let known = self.columns.is_some();
        self.line_buf.clear();
        for r in winners.iter().filter(|r| untyped::needs_line(r, known)) {
            untyped::write_line(&mut self.line_buf, r);
            self.untyped_count += 1;
        }
        if self.line_buf.is_empty() {
            return Ok(());
        }
        if self.lines.is_none() {
            self.lines = Some(Counted {
                inner: self.sinks.create()?,
                bytes: 0,
            });
        }
        let w = self.lines.as_mut().expect("created above");
        w.write_all(&self.line_buf)
            .map_err(|e| Error::io("untyped lines", e))
    }

    /// Names, sources and content of the winners, for the manifest.
    fn note(&mut self, winners: &[Rec]) {
        for r in winners {
            if !self.metrics.contains(&*r.metric_sent) {
                self.metrics.insert(r.metric_sent.clone());
            }
            self.shape.clear();
            for name in raw::name_bytes(&r.raw) {
                raw::put_len(&mut self.shape, name.len());
                self.shape.extend_from_slice(name);
            }
            if !self.shapes.contains(&self.shape[..]) {
                for name in raw::name_bytes(&r.raw) {
                    if !self.fields.contains(name) {
                        self.fields.insert(name.into());
                    }
                }
                if self.shapes.len() < MAX_SHAPES {
                    self.shapes.insert(self.shape.as_slice().into());
                }
            }
            let source = &r.arrival.source;
            self.sources
                .entry(source.as_ptr() as usize)
                .or_insert_with(|| source.clone());
            self.content = self.content.wrapping_add(record_fingerprint(r));
        }
    }

    /// Closes every file; the index's manifest describes the others.
    pub fn finish<R: FnOnce(&SentNames) -> u64>(mut self, how: Finish<'_, R>) -> Result<Parts<W>> {
        self.close_window()?;
        let mut metrics: Vec<String> = self.metrics.iter().map(|m| m.to_string()).collect();
        metrics.sort_unstable();
        let mut fields: Vec<String> = self
            .fields
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        fields.sort_unstable();
        let names = SentNames { metrics, fields };
        let resolution = (how.resolution)(&names);
        let winner_sources: FastSet<&str> = self.sources.values().map(|s| &**s).collect();
        let mut also_fed: Vec<String> = how
            .fed
            .iter()
            .filter(|s| !winner_sources.contains(**s))
            .map(|s| s.to_string())
            .collect();
        also_fed.sort();
        also_fed.dedup();
        let typed = self.typed_done;
        let lines = match self.lines {
            Some(Counted { mut inner, bytes }) => {
                inner.flush().map_err(|e| Error::io("untyped lines", e))?;
                Some((inner, bytes))
            }
            None => None,
        };
        let manifest = PartitionManifest {
            typed: typed
                .iter()
                .enumerate()
                .map(|(n, t)| DataFile {
                    path: how.typed_names.file(n),
                    size: t.size,
                    rows: t.rows,
                })
                .collect(),
            untyped: lines.as_ref().map(|(_, size)| DataFile {
                path: "part-00000.jsonl".into(),
                size: *size,
                rows: self.untyped_count,
            }),
            version: how.version,
            columns: match &self.columns {
                Some(c) if !typed.is_empty() => {
                    c.0.iter().map(|(n, t)| (n.to_string(), *t)).collect()
                }
                _ => Vec::new(),
            },
            names,
            resolution,
            content: format!("{:032x}", self.content),
            also_fed,
            appends: 0,
        };
        let index = match self.index {
            Some(w) => Some(index::finish(w, &manifest)?),
            None => None,
        };
        Ok(Parts {
            typed,
            lines,
            untyped_count: self.untyped_count,
            index,
            rows: self.rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Arrival, FieldType, TypedValue};

    /// A record at `ts` whose one typed value is `ts` as a long.
    fn rec(ts: i64) -> Rec {
        let mut raw = Vec::new();
        let value = crate::model::RawValue::Number(ts.to_string().into());
        raw::encode(&mut raw, &[("v".into(), value)]);
        Rec {
            ts,
            arrival: Arrival {
                delivery_ms: 0,
                source: "s".into(),
                position: ts as u64,
            },
            metric_sent: "m".into(),
            raw: raw.into(),
            typed: vec![("v".into(), TypedValue::Int(ts))],
            untyped: vec![],
            hash: ts as u64,
        }
    }

    fn encode(winners: &[Rec]) -> Parts<Vec<u8>> {
        let columns = Columns(vec![("v".into(), FieldType::Long)]);
        let mut enc = PartitionEncoder::new(Vec::new(), Some(columns));
        for push in winners.chunks(PUSH_ROWS) {
            enc.push(push).unwrap();
        }
        let names = TypedNames::new("date=2026-01-01", "v1");
        let how = Finish {
            typed_names: &names,
            version: 1,
            resolution: |_: &SentNames| 0,
            fed: vec![],
        };
        enc.finish(how).unwrap()
    }

    #[test]
    fn a_typed_file_and_an_index_row_group_per_window() {
        let w = TYPED_WINDOW_MS;
        // Windows 0, 1 and 3 (none in 2), window 1 crossing a push.
        let mut ts: Vec<i64> = (0..10).collect();
        ts.extend((0..PUSH_ROWS as i64).map(|i| w + i));
        ts.extend([3 * w, 3 * w + 1]);
        let parts = encode(&ts.iter().map(|&t| rec(t)).collect::<Vec<_>>());
        let rows: Vec<u64> = parts.typed.iter().map(|t| t.rows).collect();
        assert_eq!(rows, [10, PUSH_ROWS as u64, 2]);
        assert_eq!(parts.rows, ts.len() as u64);
        let index = bytes::Bytes::from(parts.index.unwrap());
        let meta = index::read_meta("i", &index).unwrap();
        let groups: Vec<i64> = meta.row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(groups, [10, PUSH_ROWS as i64, 2]);
        let m = index::manifest_of("i", &meta).unwrap();
        let files: Vec<(&str, u64)> = m.typed.iter().map(|f| (&*f.path, f.rows)).collect();
        assert_eq!(
            files,
            [
                ("date=2026-01-01/part-v1-00000.parquet", 10),
                ("date=2026-01-01/part-v1-00001.parquet", PUSH_ROWS as u64),
                ("date=2026-01-01/part-v1-00002.parquet", 2)
            ]
        );
        // Each typed file holds its window's rows, read back by the Parquet reader.
        let second = bytes::Bytes::from(parts.typed.into_iter().nth(1).unwrap().file);
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(second)
            .unwrap()
            .build()
            .unwrap();
        let read: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(read, PUSH_ROWS);
    }

    #[test]
    fn negative_timestamps_fall_in_their_own_window() {
        assert_eq!(window_of(-1), -1);
        assert_eq!(window_of(0), 0);
        assert_eq!(window_of(TYPED_WINDOW_MS - 1), 0);
        assert_eq!(window_of(TYPED_WINDOW_MS), 1);
    }
}
