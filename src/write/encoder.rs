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

/// A partition's finished files: each sink with its size.
pub struct Parts<W> {
    /// The typed file and its Delta stats JSON.
    pub typed: Option<(W, u64, String)>,
    pub lines: Option<(W, u64)>,
    pub untyped_count: u64,
    /// `None` when the partition is now empty.
    pub index: Option<W>,
    pub rows: u64,
}

/// How a finished partition is described in its index manifest.
pub struct Finish<'a, R> {
    pub typed_path: &'a str,
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

/// Adds two content fingerprints as written in manifests (`None` when one is not a sum).
pub fn add_fingerprints(a: &str, b: &str) -> Option<String> {
    let (a, b) = (
        u128::from_str_radix(a, 16).ok()?,
        u128::from_str_radix(b, 16).ok()?,
    );
    Some(format!("{:032x}", a.wrapping_add(b)))
}

/// Encodes a partition's winners, pushed in timestamp order.
pub struct PartitionEncoder<W: Sink> {
    sinks: W,
    columns: Option<Columns>,
    typed: Option<(ArrowWriter<Counted<W>>, StatsAcc)>,
    lines: Option<Counted<W>>,
    line_buf: Vec<u8>,
    untyped_count: u64,
    index: Option<ArrowWriter<W>>,
    rows: u64,
    metrics: FastSet<Arc<str>>,
    fields: FastSet<Box<[u8]>>,
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
            typed: None,
            lines: None,
            line_buf: Vec::new(),
            untyped_count: 0,
            index: None,
            rows: 0,
            metrics: FastSet::default(),
            fields: FastSet::default(),
            sources: FastMap::default(),
            content: 0,
        }
    }

    /// Takes the next winners (after those pushed before, in timestamp order). Pushes of a
    /// multiple of 1,024 records give the bytes one push of them all gives.
    pub fn push(&mut self, winners: &[Rec]) -> Result<()> {
        if winners.is_empty() {
            return Ok(());
        }
        self.rows += winners.len() as u64;
        if let Some(cols) = &self.columns {
            if self.typed.is_none() {
                let sink = Counted {
                    inner: self.sinks.create()?,
                    bytes: 0,
                };
                self.typed = Some((
                    typed::writer(sink, cols.arrow_schema())?,
                    StatsAcc::default(),
                ));
            }
            let (w, stats) = self.typed.as_mut().expect("created above");
            let batch = typed::to_batch(cols, winners)?;
            stats.add(&batch);
            w.write(&batch)
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
            for name in raw::name_bytes(&r.raw) {
                if !self.fields.contains(name) {
                    self.fields.insert(name.into());
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
    pub fn finish<R: FnOnce(&SentNames) -> u64>(self, how: Finish<'_, R>) -> Result<Parts<W>> {
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
        let typed = match self.typed {
            Some((w, stats)) => {
                let schema = self
                    .columns
                    .as_ref()
                    .expect("typed has columns")
                    .arrow_schema();
                let sink = w
                    .into_inner()
                    .map_err(|e| Error::data_file("parquet writer", e))?;
                let Counted { mut inner, bytes } = sink;
                inner.flush().map_err(|e| Error::io("typed file", e))?;
                Some((inner, bytes, stats.json(&schema)))
            }
            None => None,
        };
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
                .map(|(_, size, _)| DataFile {
                    path: how.typed_path.to_string(),
                    size: *size,
                    rows: self.rows,
                })
                .collect(),
            untyped: lines.as_ref().map(|(_, size)| DataFile {
                path: "part-00000.jsonl".into(),
                size: *size,
                rows: self.untyped_count,
            }),
            version: how.version,
            columns: match (&self.columns, &typed) {
                (Some(c), Some(_)) => c.0.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
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
