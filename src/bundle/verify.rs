//! Checking a bundle without restoring it: the manifest (format, checksum, identity, paths),
//! every file's presence, size and SHA-256, and with `--deep` the content itself (decoded,
//! counted, time ranges checked). Damage is described, never fixed.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use arrow::array::{Array, TimestampMicrosecondArray};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use super::layout::BundleId;
use super::manifest::{sha256_hex, Manifest, MetricEntry, FORMAT, FORMAT_VERSION};
use super::{CATALOG, MANIFEST};
use crate::catalog::TenantDoc;
use crate::error::{Error, Result};
use crate::model::day_of;
use crate::schema::store::CatalogVersion;
use crate::storage::Location;
use crate::write::index;

/// How much to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyDepth {
    /// Manifest and checksums of every file.
    Checksums,
    /// Also decode every file and check counts and time ranges.
    Deep,
}

/// One thing wrong with a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damage {
    /// The bundle directory, relative to the backup location.
    pub bundle: String,
    /// The file inside the bundle, when the damage is in one.
    pub file: Option<String>,
    pub problem: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}/{file}: {}", self.bundle, self.problem),
            None => write!(f, "{}: {}", self.bundle, self.problem),
        }
    }
}

/// A bundle that passed, with its manifest (and the checked bytes, when they were kept).
#[derive(Clone, Debug)]
pub struct Verified {
    pub id: BundleId,
    pub manifest: Manifest,
    pub kept: KeptFiles,
}

impl Verified {
    /// One of the bundle's files: the bytes kept when it was verified, or read and checked again
    /// against its manifest entry (it may have changed since the bundle was verified).
    pub async fn read(&self, backup: &Location, file: &str) -> Result<Bytes> {
        if let Some(bytes) = self.kept.get(file) {
            return Ok(bytes);
        }
        let path = self.id.file(file);
        let bytes = backup.get_opt(&path).await?.ok_or_else(|| {
            Error::metadata(&path, "verified, then gone from the backup location")
        })?;
        let want = self.manifest.file(file).map(|f| (f.size, f.sha256.clone()));
        let b = bytes.clone();
        let sha = crate::ops::compact::on_rayon(move || sha256_hex(&b)).await?;
        if want != Some((bytes.len() as u64, sha)) {
            return Err(Error::metadata(&path, "changed in the backup location since it was verified; nothing was committed, run the restore again"));
        }
        Ok(bytes)
    }
}

/// Bytes of a bundle's files exactly as they were checked, by path inside the bundle: a restore
/// copies them without reading and hashing them again.
#[derive(Clone, Default)]
pub struct KeptFiles(Arc<BTreeMap<String, Bytes>>);

impl KeptFiles {
    /// A kept file's bytes.
    pub fn get(&self, file: &str) -> Option<Bytes> {
        self.0.get(file).cloned()
    }
}

impl std::fmt::Debug for KeptFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes: usize = self.0.values().map(Bytes::len).sum();
        write!(f, "KeptFiles({} files, {bytes} bytes)", self.0.len())
    }
}

/// Checks one bundle. `listed`: the files the backup location lists inside it (path -> size);
/// `keep`: hold on to the checked bytes. Store failures are errors; anything wrong with the
/// bundle is returned as damage.
pub async fn verify_bundle(
    backup: &Location,
    id: &BundleId,
    listed: &BTreeMap<String, u64>,
    depth: VerifyDepth,
    keep: bool,
) -> Result<std::result::Result<Verified, Vec<Damage>>> {
    let mut check = Checker::new(id);
    let mut kept = BTreeMap::new();
    let Some(manifest) = read_manifest(backup, id, &mut check).await? else {
        return Ok(Err(check.damage));
    };
    check.identity(&manifest);
    check.listing(&manifest, listed);
    for f in &manifest.files {
        if !listed.contains_key(&f.path) {
            continue;
        }
        let Some(bytes) = backup.get_opt(&id.file(&f.path)).await? else {
            check.file(&f.path, "missing (listed, then gone)");
            continue;
        };
        if bytes.len() as u64 != f.size {
            let msg = format!("{} bytes, the manifest says {}", bytes.len(), f.size);
            check.file(&f.path, msg);
            continue;
        }
        let sha = crate::ops::compact::on_rayon({
            let b = bytes.clone();
            move || sha256_hex(&b)
        })
        .await?;
        if sha != f.sha256 {
            let msg = format!("SHA-256 {sha}, the manifest says {} (corrupted)", f.sha256);
            check.file(&f.path, msg);
            continue;
        }
        if keep {
            kept.insert(f.path.clone(), bytes.clone());
        }
        if f.path == CATALOG {
            check.catalog(&manifest, &bytes);
        } else if depth == VerifyDepth::Deep {
            let (m, day, path) = (manifest.clone(), check.day, f.path.clone());
            if let Some(p) =
                crate::ops::compact::on_rayon(move || deep_problem(&m, day, &path, bytes)).await?
            {
                check.file(&f.path, p);
            }
        } else {
            check.footer(&manifest, &f.path, &bytes);
        }
    }
    check.totals(&manifest);
    Ok(match check.damage.is_empty() {
        true => Ok(Verified {
            id: id.clone(),
            manifest,
            kept: KeptFiles(Arc::new(kept)),
        }),
        false => Err(check.damage),
    })
}

/// Reads and checks the manifest itself; `None` (with damage) when it cannot be trusted.
async fn read_manifest(
    backup: &Location,
    id: &BundleId,
    check: &mut Checker,
) -> Result<Option<Manifest>> {
    let Some(bytes) = backup.get_opt(&id.file(MANIFEST)).await? else {
        check.file(
            MANIFEST,
            "missing: an interrupted or running backup, not a bundle",
        );
        return Ok(None);
    };
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            check.file(MANIFEST, format!("not JSON: {e}"));
            return Ok(None);
        }
    };
    if value["format"] != FORMAT {
        check.file(MANIFEST, format!("not a {FORMAT} manifest"));
        return Ok(None);
    }
    match value["format_version"].as_u64() {
        Some(v) if v > u64::from(FORMAT_VERSION) => {
            let msg = format!(
                "bundle format version {v} is newer than this fineo-batch reads ({FORMAT_VERSION}); \
                 use the fineo-batch release that wrote it ({})",
                value["tool_version"].as_str().unwrap_or("unknown")
            );
            check.file(MANIFEST, msg);
            return Ok(None);
        }
        Some(_) => {}
        None => {
            check.file(MANIFEST, "no format_version");
            return Ok(None);
        }
    }
    let manifest: Manifest = match serde_json::from_value(value) {
        Ok(m) => m,
        Err(e) => {
            check.file(MANIFEST, format!("does not parse: {e}"));
            return Ok(None);
        }
    };
    let sum = manifest.checksum();
    if sum != manifest.manifest_sha256 {
        let msg = format!(
            "checksum mismatch: it says {}, its content hashes to {sum} (edited or corrupted)",
            manifest.manifest_sha256
        );
        check.file(MANIFEST, msg);
        return Ok(None);
    }
    Ok(Some(manifest))
}

/// Collects damage of one bundle.
struct Checker {
    bundle: String,
    day: i32,
    damage: Vec<Damage>,
}

impl Checker {
    fn new(id: &BundleId) -> Self {
        let day = chrono::NaiveDate::parse_from_str(&id.date, "%Y-%m-%d")
            .map(|d| {
                day_of(
                    d.and_hms_opt(0, 0, 0)
                        .expect("midnight")
                        .and_utc()
                        .timestamp_millis(),
                )
            })
            .unwrap_or_default();
        Checker {
            bundle: id.dir(),
            day,
            damage: Vec::new(),
        }
    }

    fn bundle(&mut self, problem: impl Into<String>) {
        self.damage.push(Damage {
            bundle: self.bundle.clone(),
            file: None,
            problem: problem.into(),
        });
    }

    fn file(&mut self, file: &str, problem: impl Into<String>) {
        self.damage.push(Damage {
            bundle: self.bundle.clone(),
            file: Some(file.to_string()),
            problem: problem.into(),
        });
    }

    /// The manifest describes this bundle: its tenant, day and version, with safe paths.
    fn identity(&mut self, m: &Manifest) {
        let id = BundleId::parse(&format!("{}/x", self.bundle)).map(|(id, _)| id);
        let Some(id) = id else { return };
        if m.tenant != id.tenant {
            self.bundle(format!(
                "the manifest is tenant {:?}'s, but the bundle is under tenant={} (a bundle moved to another tenant's path)",
                m.tenant, id.tenant
            ));
        }
        if m.date != id.date {
            let msg = format!(
                "the manifest is for {}, the bundle is under date={}",
                m.date, id.date
            );
            self.bundle(msg);
        }
        if m.lake_version != id.version {
            let msg = format!(
                "the manifest is lake version {}, the bundle directory says {}",
                m.lake_version, id.version
            );
            self.bundle(msg);
        }
        for f in &m.files {
            if !safe_path(&f.path) || f.path == MANIFEST {
                self.file(&f.path, "not a plain relative path inside the bundle");
            }
        }
        for (name, e) in &m.metrics {
            let refs = std::iter::once(&e.index)
                .chain(e.typed.iter().map(|t| &t.file))
                .chain(e.untyped.iter());
            for r in refs {
                if m.file(r).is_none() {
                    self.file(
                        r,
                        format!("metric {name:?} names it, the file list does not"),
                    );
                }
            }
        }
        if let Some(c) = &m.catalog {
            if m.file(&c.file).is_none() {
                self.file(&c.file, "the catalog file is not in the file list");
            }
        }
    }

    /// Every listed file is in the manifest and the other way round.
    fn listing(&mut self, m: &Manifest, listed: &BTreeMap<String, u64>) {
        for f in &m.files {
            if !listed.contains_key(&f.path) {
                self.file(&f.path, "missing");
            }
        }
        for path in listed.keys() {
            if path != MANIFEST && m.file(path).is_none() {
                self.file(path, "not in the manifest (unexpected file)");
            }
        }
    }

    fn catalog(&mut self, m: &Manifest, bytes: &[u8]) {
        let doc: std::result::Result<TenantDoc, String> =
            match m.catalog.as_ref().and_then(|c| c.version) {
                Some(v) => serde_json::from_slice::<CatalogVersion>(bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|cv| match cv.version == v {
                        true => Ok(cv.catalog),
                        false => Err(format!(
                            "holds version {}, the manifest says {v}",
                            cv.version
                        )),
                    }),
                None => serde_json::from_slice::<TenantDoc>(bytes).map_err(|e| e.to_string()),
            };
        match doc {
            Ok(d) if d.tenant == m.tenant => {}
            Ok(d) => self.file(CATALOG, format!("the catalog of tenant {:?}", d.tenant)),
            Err(e) => self.file(CATALOG, format!("not a catalog: {e}")),
        }
    }

    /// A Parquet file's footer against the manifest: the index's record count and time range
    /// (inside the bundle's day), a typed file's row count and columns.
    fn footer(&mut self, m: &Manifest, path: &str, bytes: &Bytes) {
        for (name, e) in &m.metrics {
            let problem = if e.index == path {
                self.index_footer(e, path, bytes)
            } else if let Some(t) = e.typed.iter().find(|t| t.file == path) {
                typed_footer(e, t.rows, bytes)
            } else {
                continue;
            };
            if let Some(p) = problem {
                self.file(path, format!("metric {name:?}: {p}"));
            }
        }
    }

    fn index_footer(&self, e: &MetricEntry, path: &str, bytes: &Bytes) -> Option<String> {
        let (_, rows, lo, hi) = match index::footer_facts(path, bytes) {
            Ok(f) => f,
            Err(err) => return Some(format!("not a readable partition index: {err}")),
        };
        if rows != e.records {
            return Some(format!("{rows} rows, the manifest says {}", e.records));
        }
        if (lo, hi) != (e.min_ts, e.max_ts)
            || !in_range(self.day, e, lo)
            || !in_range(self.day, e, hi)
        {
            return Some(format!(
                "event times {lo}..{hi}, the manifest says {}..{} on {}",
                e.min_ts, e.max_ts, self.bundle
            ));
        }
        None
    }

    /// The day's totals agree with its metrics.
    fn totals(&mut self, m: &Manifest) {
        let records: u64 = m.metrics.values().map(|e| e.records).sum();
        if records != m.records {
            self.bundle(format!(
                "metrics hold {records} records, the manifest says {}",
                m.records
            ));
        }
        for (name, e) in &m.metrics {
            let typed: u64 = e.typed.iter().map(|t| t.rows).sum();
            if typed != e.typed_rows
                || (e.columns.is_some() && !e.typed.is_empty() && typed != e.records)
            {
                self.bundle(format!(
                    "metric {name:?}: {typed} typed rows for {} records",
                    e.records
                ));
            }
        }
        let lo = m.metrics.values().map(|e| e.min_ts).min();
        let hi = m.metrics.values().map(|e| e.max_ts).max();
        if (lo, hi) != (m.min_ts, m.max_ts) {
            self.bundle("the day's time range disagrees with its metrics");
        }
    }
}

/// Deep check of one data file against its metric entry.
fn deep_problem(m: &Manifest, day: i32, path: &str, bytes: Bytes) -> Option<String> {
    let (name, e) = m.metrics.iter().find(|(_, e)| {
        e.index == path
            || e.untyped.as_deref() == Some(path)
            || e.typed.iter().any(|t| t.file == path)
    })?;
    let problem = if e.index == path {
        index_problem(day, e, path, bytes)
    } else if e.untyped.as_deref() == Some(path) {
        untyped_problem(day, e, &bytes)
    } else {
        let t = e
            .typed
            .iter()
            .find(|t| t.file == path)
            .expect("found above");
        typed_problem(day, e, t.rows, bytes)
    };
    problem.map(|p| format!("metric {name:?}: {p}"))
}

fn in_range(day: i32, e: &MetricEntry, ts: i64) -> bool {
    ts >= e.min_ts && ts <= e.max_ts && day_of(ts) == day
}

fn index_problem(day: i32, e: &MetricEntry, path: &str, bytes: Bytes) -> Option<String> {
    let (recs, _) = match index::decode(path, bytes) {
        Ok(x) => x,
        Err(err) => return Some(format!("does not decode: {err}")),
    };
    if recs.len() as u64 != e.records {
        return Some(format!(
            "{} records, the manifest says {}",
            recs.len(),
            e.records
        ));
    }
    let (lo, hi) = (
        recs.iter().map(|r| r.ts).min(),
        recs.iter().map(|r| r.ts).max(),
    );
    if (lo, hi) != (Some(e.min_ts), Some(e.max_ts)) {
        return Some(format!(
            "event times {lo:?}..{hi:?}, the manifest says {}..{}",
            e.min_ts, e.max_ts
        ));
    }
    recs.iter()
        .find(|r| !in_range(day, e, r.ts))
        .map(|r| format!("a record at {} is outside the bundle's day", r.ts))
}

fn typed_problem(day: i32, e: &MetricEntry, rows: u64, bytes: Bytes) -> Option<String> {
    let reader = match ParquetRecordBatchReaderBuilder::try_new(bytes).and_then(|b| b.build()) {
        Ok(r) => r,
        Err(err) => return Some(format!("not a readable Parquet file: {err}")),
    };
    let mut n = 0u64;
    for batch in reader {
        let batch = match batch {
            Ok(b) => b,
            Err(err) => return Some(format!("does not decode: {err}")),
        };
        if let Some(p) = schema_problem(e, &batch.schema()) {
            return Some(p);
        }
        let Some(ts) = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
        else {
            return Some("the timestamp column is not a timestamp".into());
        };
        if let Some(bad) = (0..ts.len())
            .map(|i| ts.value(i) / 1000)
            .find(|t| !in_range(day, e, *t))
        {
            return Some(format!("a row at {bad} is outside the metric's time range"));
        }
        n += batch.num_rows() as u64;
    }
    (n != rows).then(|| format!("{n} rows, the manifest says {rows}"))
}

fn untyped_problem(day: i32, e: &MetricEntry, bytes: &[u8]) -> Option<String> {
    let mut text = String::new();
    if let Err(err) = flate2::read::MultiGzDecoder::new(bytes).read_to_string(&mut text) {
        return Some(format!("not gzip JSON Lines: {err}"));
    }
    let mut n = 0u64;
    for (i, line) in text.lines().enumerate() {
        let ts = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["timestamp"].as_i64());
        match ts {
            Some(t) if in_range(day, e, t) => n += 1,
            Some(t) => {
                return Some(format!(
                    "line {}: timestamp {t} outside the metric's range",
                    i + 1
                ))
            }
            None => {
                return Some(format!(
                    "line {}: not a JSON object with a timestamp",
                    i + 1
                ))
            }
        }
    }
    (n != e.untyped_lines).then(|| format!("{n} lines, the manifest says {}", e.untyped_lines))
}

/// A typed file's row count and columns, from its footer.
fn typed_footer(e: &MetricEntry, rows: u64, bytes: &Bytes) -> Option<String> {
    let md = match parquet::file::metadata::ParquetMetaDataReader::new().parse_and_finish(bytes) {
        Ok(md) => md,
        Err(err) => return Some(format!("not a readable Parquet file: {err}")),
    };
    let n = md.file_metadata().num_rows() as u64;
    if n != rows {
        return Some(format!("{n} rows, the manifest says {rows}"));
    }
    let fm = md.file_metadata();
    match parquet::arrow::parquet_to_arrow_schema(fm.schema_descr(), fm.key_value_metadata()) {
        Ok(schema) => schema_problem(e, &schema),
        Err(err) => Some(format!("no Arrow schema: {err}")),
    }
}

/// Whether a typed file's columns are `timestamp` and the manifest's columns, with their types.
fn schema_problem(e: &MetricEntry, schema: &arrow::datatypes::Schema) -> Option<String> {
    let got: Vec<(String, arrow::datatypes::DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    let want: Vec<(String, arrow::datatypes::DataType)> = std::iter::once((
        "timestamp".to_string(),
        crate::write::typed::arrow_type(crate::model::FieldType::Timestamp),
    ))
    .chain(
        e.columns
            .iter()
            .flatten()
            .map(|(c, t)| (c.clone(), crate::write::typed::arrow_type(*t))),
    )
    .collect();
    (got != want).then(|| {
        let names = |v: &[(String, arrow::datatypes::DataType)]| -> Vec<String> {
            v.iter().map(|(n, t)| format!("{n} {t}")).collect()
        };
        format!(
            "columns {:?}, the manifest says {:?}",
            names(&got),
            names(&want)
        )
    })
}

/// A relative path of plain segments (no `..`, `.`, empty segment or leading `/`).
fn safe_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\'))
}
