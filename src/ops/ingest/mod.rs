//! `ingest`: customer export files (CSV, JSON Lines, Avro, Parquet; gzip or not; one file or a
//! prefix) turned into staged archive objects (SPEC 13), so the next `compact` takes them like
//! streamed data. Per file: unchanged since its ledger record -> nothing; else read it (a local
//! copy, gzip undone, the format told from its bytes), map every row (tenant, metric,
//! timestamp, fields), write its objects, its error file, and last its ledger record, which is
//! what makes the objects visible to `compact`.

mod csv;
mod map;
pub mod output;
mod rows;
pub mod settings;
mod source;
mod timestamp;

use std::io::Write;
use std::time::Instant;

use bytes::Bytes;
use object_store::ObjectMeta;
use serde::Serialize;

use crate::decode::Limits;
use crate::error::{Error, Result};
use crate::ops::options::{Common, CommonOptions};
use crate::report::RunReport;
use crate::storage::Location;
use output::IngestRecord;
use rows::{BadRow, Row};

pub use self::csv::{ColType, CsvDialect, Widening};
pub use settings::{
    parse_timezone, Ambiguous, IngestSettings, MetricFrom, Nonexistent, SourceFormat,
    TimestampFormat,
};
pub use source::SourceFiles;

/// Rows shown as samples by a dry run, and bad rows shown in a report.
const SHOWN: usize = 5;
const SHOWN_BAD: usize = 10;

/// What `ingest` did, per file and in all.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct IngestCounts {
    pub dry_run: bool,
    pub files: Vec<FileReport>,
    pub rows: u64,
    pub staged_rows: u64,
    pub bad_rows: u64,
    pub objects_written: u64,
    pub bytes_written: u64,
    pub unchanged: u64,
    pub failed: u64,
}

/// One source file.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FileReport {
    pub source: String,
    /// `ingested`, `unchanged`, `failed` or `dry-run`.
    pub status: String,
    pub reason: Option<String>,
    pub format: Option<SourceFormat>,
    pub gzip: bool,
    pub dialect: Option<CsvDialect>,
    /// Each column: what it becomes and its type.
    pub columns: Vec<ColumnReport>,
    /// CSV columns that failed their sniffed type and became text.
    pub widened: Vec<Widening>,
    pub rows: u64,
    pub staged_rows: u64,
    pub bad_rows: u64,
    /// The first bad rows (all of them are in the error file).
    pub bad: Vec<BadRow>,
    /// The first staged records (a dry run shows them).
    pub samples: Vec<String>,
    pub objects: Vec<String>,
    pub error_file: Option<String>,
    pub sha256: Option<String>,
}

/// A column of a source file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ColumnReport {
    pub column: String,
    /// `timestamp`, `metric`, `tenant`, or `field <name>`.
    pub role: String,
    /// The CSV type proven for it (other formats carry their own types).
    pub r#type: Option<ColType>,
}

/// The `ingest` operation.
pub struct Ingest {
    sources: SourceFiles,
    staged: Location,
    settings: IngestSettings,
    dry_run: bool,
    limits: Limits,
    max_object_bytes: usize,
    common: Common,
}

impl CommonOptions for Ingest {
    fn common(&mut self) -> &mut Common {
        &mut self.common
    }
}

impl Ingest {
    /// Ingests `sources` into the staged archive `staged`.
    pub fn new(sources: SourceFiles, staged: Location, settings: IngestSettings) -> Self {
        Ingest {
            sources,
            staged,
            settings,
            dry_run: false,
            limits: Limits::default(),
            max_object_bytes: 128 << 20,
            common: Common::default(),
        }
    }

    /// Detect, map and check, write nothing.
    pub fn with_dry_run(mut self, on: bool) -> Self {
        self.dry_run = on;
        self
    }

    /// Uncompressed bytes per staged object at most (Firehose buffers up to 128 MiB).
    pub fn with_max_object_bytes(mut self, n: usize) -> Self {
        self.max_object_bytes = n.max(1 << 10);
        self
    }

    /// Decode limits: the largest row (CSV record, JSON line, Avro record) is a bad row past
    /// `max_record_bytes`, not an out-of-memory.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Runs the ingest; the report says per file what happened.
    pub async fn execute(self) -> Result<RunReport> {
        let started = Instant::now();
        let mut report = RunReport::start("ingest");
        let mut counts = IngestCounts {
            dry_run: self.dry_run,
            ..Default::default()
        };
        self.common
            .progress
            .start("ingest", Some(self.sources.files.len() as u64));
        for meta in &self.sources.files {
            let file = self.one(meta).await?;
            self.common.progress.advance(1, meta.size);
            counts.rows += file.rows;
            counts.staged_rows += file.staged_rows;
            counts.bad_rows += file.bad_rows;
            match file.status.as_str() {
                "unchanged" => counts.unchanged += 1,
                "failed" => counts.failed += 1,
                "ingested" => counts.objects_written += file.objects.len() as u64,
                _ => {}
            }
            counts.files.push(file);
        }
        self.common.progress.finish();
        report.run_id = format!("ingest-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f"));
        report.records.records_in = counts.rows;
        report.records.written = counts.staged_rows;
        report.records.errors = counts.bad_rows;
        report.conservation_ok = counts
            .files
            .iter()
            .all(|f| f.status != "ingested" || f.rows == f.staged_rows + f.bad_rows);
        report.message = match (self.dry_run, counts.files.len()) {
            (_, 0) => "no source file found".into(),
            (true, n) => format!("dry run of {n} files: nothing was written"),
            (false, n) => format!(
                "{} of {n} files ingested, {} unchanged, {} failed",
                n as u64 - counts.unchanged - counts.failed,
                counts.unchanged,
                counts.failed
            ),
        };
        report.output.bytes_written = counts.bytes_written;
        report.ingest = Some(counts);
        report
            .finish(started, None, self.common.report.as_ref())
            .await?;
        Ok(report)
    }

    /// One source file.
    async fn one(&self, meta: &ObjectMeta) -> Result<FileReport> {
        let url = self.sources.url_of(meta);
        let id = output::source_id(&url);
        let fingerprint = self.settings.fingerprint();
        let mut file = FileReport {
            source: url.clone(),
            ..Default::default()
        };
        let previous = output::load_record(&self.staged, &id).await?;
        let same = |r: &IngestRecord| r.settings == fingerprint && r.size == meta.size;
        if let Some(r) = previous
            .as_ref()
            .filter(|r| same(r) && r.etag.is_some() && r.etag == meta.e_tag)
        {
            return Ok(unchanged(file, r));
        }
        let copy = match source::local_copy(&self.sources, meta).await {
            Ok(c) => c,
            Err(e) => return Ok(failed(file, e.to_string())),
        };
        if let Some(r) = previous
            .as_ref()
            .filter(|r| same(r) && r.sha256 == copy.sha256)
        {
            return Ok(unchanged(file, r));
        }
        file.gzip = copy.gzip;
        file.sha256 = Some(copy.sha256.clone());
        let delivery = meta.last_modified.timestamp_millis() / 1000 * 1000;
        let job = Job {
            source: url.clone(),
            path: copy.path.clone(),
            settings: self.settings.clone(),
            limits: self.limits,
            dry_run: self.dry_run,
            max_object_bytes: self.max_object_bytes,
            id: id.clone(),
            sha: copy.sha256.clone(),
            delivery,
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Bytes)>(2);
        let work = tokio::task::spawn_blocking(move || job.run(tx));
        let mut written = Vec::new();
        while let Some((key, gz)) = rx.recv().await {
            self.staged.put(&key, gz).await?;
            written.push(key);
        }
        let done = work.await.map_err(|e| Error::Task(e.to_string()))?;
        let mut out = match done {
            Ok(out) => out,
            Err(e) => {
                self.delete(&written).await?;
                return Ok(failed(file, e.to_string()));
            }
        };
        out.fill(&mut file);
        if self.dry_run {
            file.status = "dry-run".into();
            return Ok(file);
        }
        if out.bad_rows > 0 {
            let key = output::errors_key(&id, &copy.sha256);
            let mut errors = out.errors.take().expect("bad rows have an error file");
            errors.flush().map_err(|e| Error::io("error file", e))?;
            let bytes = std::fs::read(errors.path()).map_err(|e| Error::io("error file", e))?;
            self.staged.put(&key, Bytes::from(bytes)).await?;
            file.error_file = Some(key);
        }
        if out.bad_rows > self.settings.max_bad_rows {
            self.delete(&written).await?;
            let reason = format!(
                "{} bad rows, more than --max-bad-rows {}: no row of the file was ingested (the error file {} lists every bad row)",
                out.bad_rows,
                self.settings.max_bad_rows,
                file.error_file.as_deref().unwrap_or("-")
            );
            let mut f = failed(file, reason);
            f.staged_rows = 0;
            return Ok(f);
        }
        let record = IngestRecord {
            source: url,
            size: meta.size,
            etag: meta.e_tag.clone(),
            last_modified: meta.last_modified.to_rfc3339(),
            sha256: copy.sha256.clone(),
            settings: fingerprint,
            format: out.format.name().into(),
            rows: out.rows,
            staged: out.staged,
            bad_rows: out.bad_rows,
            objects: written.clone(),
            errors: file.error_file.clone(),
        };
        let json = serde_json::to_vec_pretty(&record).expect("record json");
        self.staged
            .put(&output::ledger_path(&id), Bytes::from(json))
            .await?;
        file.objects = written;
        file.status = "ingested".into();
        Ok(file)
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        for k in keys {
            self.staged.delete(k).await?;
        }
        Ok(())
    }
}

fn unchanged(mut file: FileReport, r: &IngestRecord) -> FileReport {
    file.status = "unchanged".into();
    file.reason =
        Some("ingested before with the same content and settings: nothing written".into());
    file.objects = r.objects.clone();
    file.sha256 = Some(r.sha256.clone());
    file
}

fn failed(mut file: FileReport, reason: String) -> FileReport {
    file.status = "failed".into();
    file.reason = Some(reason);
    file
}

/// Reading and mapping one file, on a blocking thread.
struct Job {
    source: String,
    path: std::path::PathBuf,
    settings: IngestSettings,
    limits: Limits,
    dry_run: bool,
    max_object_bytes: usize,
    id: String,
    sha: String,
    delivery: i64,
}

/// What a job found.
struct JobOut {
    source: String,
    format: SourceFormat,
    dialect: Option<CsvDialect>,
    columns: Vec<ColumnReport>,
    widened: Vec<Widening>,
    rows: u64,
    staged: u64,
    bad_rows: u64,
    bad: Vec<BadRow>,
    samples: Vec<String>,
    errors: Option<tempfile::NamedTempFile>,
}

impl JobOut {
    fn fill(&self, f: &mut FileReport) {
        f.format = Some(self.format);
        f.dialect = self.dialect.clone();
        f.columns = self.columns.clone();
        f.widened = self.widened.clone();
        f.rows = self.rows;
        f.staged_rows = self.staged;
        f.bad_rows = self.bad_rows;
        f.bad = self.bad.clone();
        f.samples = self.samples.clone();
    }
}

impl Job {
    fn run(self, tx: tokio::sync::mpsc::Sender<(String, Bytes)>) -> Result<JobOut> {
        let format = match self.settings.format {
            Some(f) => f,
            None => detect(&self.path)?,
        };
        let mut out = JobOut {
            source: self.source.clone(),
            format,
            dialect: None,
            columns: Vec::new(),
            widened: Vec::new(),
            rows: 0,
            staged: 0,
            bad_rows: 0,
            bad: Vec::new(),
            samples: Vec::new(),
            errors: None,
        };
        let mut mapper = map::Mapper::new(&self.settings);
        let mut sink = Objects {
            tx: &tx,
            id: &self.id,
            sha: &self.sha,
            delivery: self.delivery,
            max: self.max_object_bytes,
            chunk: Vec::new(),
            part: 0,
            dry_run: self.dry_run,
        };
        let mut each = |row: std::result::Result<Row, Box<BadRow>>,
                        out: &mut JobOut,
                        mapper: &mut map::Mapper<'_>|
         -> Result<()> {
            out.rows += 1;
            let mapped = row.and_then(|r| mapper.line(&r));
            match mapped {
                Ok((line, _)) => {
                    out.staged += 1;
                    if out.samples.len() < SHOWN {
                        out.samples
                            .push(String::from_utf8_lossy(line.trim_ascii_end()).into_owned());
                    }
                    sink.push(&line)
                }
                Err(bad) => out.bad_row(bad),
            }
        };
        match format {
            SourceFormat::Csv => {
                let mut reader = csv::CsvReader::open(
                    &self.path,
                    self.settings.delimiter,
                    self.limits.max_record_bytes,
                )?;
                reader.sniff_types()?;
                out.widened = reader.prove()?;
                check_columns(&mapper, &reader.dialect.header, &self.settings)?;
                out.columns = columns(
                    &mapper,
                    &reader.dialect.header,
                    Some(&reader.types),
                    &self.settings,
                );
                out.dialect = Some(reader.dialect.clone());
                reader.rows(&mut |row| each(row, &mut out, &mut mapper))?;
            }
            SourceFormat::Jsonl => rows::jsonl(&self.path, &self.limits, &mut |row| {
                each(row, &mut out, &mut mapper)
            })?,
            SourceFormat::Avro => rows::avro(&self.path, &self.limits, &mut |row| {
                each(row, &mut out, &mut mapper)
            })?,
            SourceFormat::Parquet => {
                rows::parquet(&self.path, &mut |row| each(row, &mut out, &mut mapper))?
            }
        }
        if out.rows == 0 {
            return Err(Error::InvalidOption("the file holds no rows".into()));
        }
        sink.flush()?;
        Ok(out)
    }
}

impl JobOut {
    /// A bad row: kept for the report (the first ones) and written to the error file.
    fn bad_row(&mut self, bad: Box<BadRow>) -> Result<()> {
        self.bad_rows += 1;
        let file = match &mut self.errors {
            Some(f) => f,
            None => self
                .errors
                .insert(tempfile::NamedTempFile::new().map_err(|e| Error::io("error file", e))?),
        };
        let line = output::ErrorLine {
            source: &self.source,
            row: &bad,
        };
        serde_json::to_writer(&mut *file, &line).expect("json");
        file.write_all(b"\n")
            .map_err(|e| Error::io("error file", e))?;
        if self.bad.len() < SHOWN_BAD {
            self.bad.push(*bad);
        }
        Ok(())
    }
}

/// Fills staged objects and hands each full one (gzip) to the writer.
struct Objects<'a> {
    tx: &'a tokio::sync::mpsc::Sender<(String, Bytes)>,
    id: &'a str,
    sha: &'a str,
    delivery: i64,
    max: usize,
    chunk: Vec<u8>,
    part: usize,
    dry_run: bool,
}

impl Objects<'_> {
    fn push(&mut self, line: &[u8]) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        if !self.chunk.is_empty() && self.chunk.len() + line.len() > self.max {
            self.flush()?;
        }
        self.chunk.extend_from_slice(line);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let gz = crate::write::gzip(&std::mem::take(&mut self.chunk))?;
        let key = output::object_key(self.id, self.delivery, self.sha, self.part);
        self.part += 1;
        self.tx
            .blocking_send((key, gz))
            .map_err(|_| Error::Task("the object writer stopped".into()))
    }
}

/// The format of a plain (not gzip) file, from its bytes.
fn detect(path: &std::path::Path) -> Result<SourceFormat> {
    use std::io::Read;
    let mut head = [0u8; 4096];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| Error::io(path.display(), e))?;
    let head = &head[..n];
    if head.starts_with(b"PAR1") {
        return Ok(SourceFormat::Parquet);
    }
    if head.starts_with(b"Obj\x01") {
        return Ok(SourceFormat::Avro);
    }
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    match text.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Err(Error::InvalidOption("an empty file".into())),
        Some(b'{') => Ok(SourceFormat::Jsonl),
        Some(_) => Ok(SourceFormat::Csv),
    }
}

/// The timestamp (and metric) column must be there, and no field may be named like the
/// record's own keys.
fn check_columns(mapper: &map::Mapper<'_>, header: &[String], s: &IngestSettings) -> Result<()> {
    if !header.contains(&s.timestamp_column) {
        return Err(Error::InvalidOption(format!(
            "no column {:?} in the header {header:?} (is the header missing? give --timestamp-column)",
            s.timestamp_column
        )));
    }
    if let MetricFrom::Column(c) = &s.metric {
        if !header.contains(c) {
            return Err(Error::InvalidOption(format!(
                "no metric column {c:?} in the header {header:?}"
            )));
        }
    }
    let clashes = mapper.clashes(header);
    if !clashes.is_empty() {
        return Err(Error::InvalidOption(format!(
            "columns {clashes:?} would become fields named like the record's tenant, metric or timestamp: rename them with --rename COLUMN=NAME"
        )));
    }
    Ok(())
}

/// What each column becomes.
fn columns(
    mapper: &map::Mapper<'_>,
    header: &[String],
    types: Option<&[ColType]>,
    s: &IngestSettings,
) -> Vec<ColumnReport> {
    header
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let role = match mapper.field_name(c) {
                Some(name) => format!("field {name}"),
                None if *c == s.timestamp_column => "timestamp".into(),
                None if c == "tenant" => "tenant".into(),
                None => "metric".into(),
            };
            ColumnReport {
                column: c.clone(),
                role,
                r#type: types.and_then(|t| t.get(i).copied()),
            }
        })
        .collect()
}
