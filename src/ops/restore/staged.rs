//! `restore --staged`: bundles written back as archive objects, to reload the serving store or
//! rebuild a lake elsewhere. `staged`: gzip JSON Lines in the Firehose key layout, every record
//! as its device sent it (compacting them with the same catalog gives the same lake);
//! `dynamodb-json`: DynamoDB's S3 import format, one typed item per record. Object names derive
//! from the bundle, and an object is only created where none is, so a rerun after a crash
//! writes the rest and rewrites nothing.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::select;
use crate::bundle::Verified;
use crate::catalog::{Catalog, TenantDoc};
use crate::error::{Error, Result};
use crate::model::{RawValue, Rec, TypedValue};
use crate::ops::compact::on_rayon;
use crate::ops::compact::partition::resolve_all;
use crate::ops::options::{Common, CommonOptions};
use crate::report::{RestoreCounts, RunReport};
use crate::resolve::raw;
use crate::schema::store::CatalogVersion;
use crate::storage::{Created, Location};
use crate::write::index;

/// What `restore --staged` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StagedFormat {
    /// gzip JSON Lines in the Firehose key layout (SPEC 3).
    Staged,
    /// DynamoDB's S3 import format (`{"Item": {...}}` per line, gzip).
    DynamoDbJson,
}

impl StagedFormat {
    fn name(self) -> &'static str {
        match self {
            StagedFormat::Staged => "staged",
            StagedFormat::DynamoDbJson => "dynamodb-json",
        }
    }
}

/// The `restore --staged` operation.
pub struct RestoreStaged {
    from: Location,
    staged: Location,
    common: Common,
    as_of: Option<u64>,
    format: StagedFormat,
    max_object_bytes: usize,
}

impl CommonOptions for RestoreStaged {
    fn common(&mut self) -> &mut Common {
        &mut self.common
    }
}

impl RestoreStaged {
    /// Writes the bundles of `from` as archive objects below `staged`.
    pub fn new(from: Location, staged: Location) -> Self {
        RestoreStaged {
            from,
            staged,
            common: Common::default(),
            as_of: None,
            format: StagedFormat::Staged,
            max_object_bytes: 64 << 20,
        }
    }

    /// Per tenant-day the latest bundle at or below this lake version.
    pub fn with_as_of(mut self, version: Option<u64>) -> Self {
        self.as_of = version;
        self
    }

    /// The output format.
    pub fn with_format(mut self, format: StagedFormat) -> Self {
        self.format = format;
        self
    }

    /// Uncompressed bytes per object at most (like a Firehose buffer).
    pub fn with_max_object_bytes(mut self, n: usize) -> Self {
        self.max_object_bytes = n.max(1 << 10);
        self
    }

    /// Writes the objects; returns the report.
    pub async fn execute(self) -> Result<RunReport> {
        let started = Instant::now();
        let mut report = RunReport::start("restore");
        let chosen = select::choose(
            &self.from,
            &self.common.selection,
            self.as_of,
            self.common.concurrency,
            0,
            self.common.progress.as_ref(),
        )
        .await?;
        let mut counts = RestoreCounts {
            target: self.format.name().into(),
            bundles: chosen.bundles.iter().map(|b| b.id.dir()).collect(),
            bytes_verified: chosen.bytes,
            no_bundle_at_or_before: chosen.too_new.clone(),
            ..Default::default()
        };
        self.common
            .progress
            .start("write", Some(chosen.bundles.len() as u64));
        for b in &chosen.bundles {
            self.write_bundle(b, &mut counts).await?;
            self.common.progress.advance(1, 0);
        }
        self.common.progress.finish();
        report.run_id = format!(
            "restore-{}-{}",
            self.format.name(),
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
        );
        report.records.written = counts.records;
        report.message = format!(
            "wrote {} records of {} bundles as {} objects ({} new, {} already there)",
            counts.records,
            chosen.bundles.len(),
            self.format.name(),
            counts.objects_written,
            counts.objects_existing
        );
        report.noop = chosen.bundles.is_empty();
        report.conservation_ok = true;
        report.restore = Some(counts);
        report
            .finish(started, None, self.common.report.as_ref())
            .await?;
        Ok(report)
    }

    /// Writes one bundle's records, a metric at a time, in objects of at most
    /// `max_object_bytes` (memory: one partition's records and one object).
    async fn write_bundle(&self, b: &Verified, counts: &mut RestoreCounts) -> Result<()> {
        let catalog = match self.format {
            StagedFormat::Staged => None,
            StagedFormat::DynamoDbJson => Some(Arc::new(self.catalog_of(b).await?)),
        };
        let mut out = Chunker {
            staged: &self.staged,
            bundle: b,
            format: self.format,
            max: self.max_object_bytes,
            chunk: Vec::new(),
            delivery: i64::MIN,
            part: 0,
        };
        for (metric, entry) in &b.manifest.metrics {
            let path = b.id.file(&entry.index);
            let bytes = self
                .from
                .get_opt(&path)
                .await?
                .ok_or_else(|| Error::metadata(&path, "verified, then gone"))?;
            let (tenant, metric, format) = (b.id.tenant.clone(), metric.clone(), self.format);
            let catalog = catalog.clone();
            let lines = on_rayon(move || {
                let (mut recs, _) = index::decode(&path, bytes)?;
                recs.sort_by_key(|r| r.ts);
                if let (StagedFormat::DynamoDbJson, Some(c)) = (format, catalog) {
                    let spec = c.metric(&tenant, &metric).cloned();
                    resolve_all(&mut recs, spec.as_ref(), |_, _, _, _| {})?;
                    return Ok(recs
                        .iter()
                        .map(|r| (dynamodb_item(&tenant, &metric, r), r.arrival.delivery_ms))
                        .collect());
                }
                recs.iter()
                    .map(|r| Ok((staged_line(&tenant, r)?, r.arrival.delivery_ms)))
                    .collect::<Result<Vec<_>>>()
            })
            .await??;
            counts.records += lines.len() as u64;
            for (line, delivery) in lines {
                out.push(line, delivery, counts).await?;
            }
        }
        out.flush(counts).await
    }

    /// The catalog the bundle's records were built with.
    async fn catalog_of(&self, b: &Verified) -> Result<Catalog> {
        let Some(c) = &b.manifest.catalog else {
            return Catalog::from_docs([]);
        };
        let path = b.id.file(&c.file);
        let bytes = self
            .from
            .get_opt(&path)
            .await?
            .ok_or_else(|| Error::metadata(&path, "verified, then gone"))?;
        let doc = match c.version {
            Some(_) => serde_json::from_slice::<CatalogVersion>(&bytes).map(|v| v.catalog),
            None => serde_json::from_slice::<TenantDoc>(&bytes),
        }
        .map_err(|e| Error::metadata(&path, e))?;
        Catalog::from_docs([doc])
    }
}

/// A record as its device sent it: tenant, metric as sent, timestamp and the fields as sent.
fn staged_line(tenant: &str, r: &Rec) -> Result<Vec<u8>> {
    let fields = raw::decode(&r.raw).ok_or_else(|| {
        Error::data_file(
            &*r.arrival.source,
            format!("record {} has damaged stored fields", r.arrival.position),
        )
    })?;
    let mut out = Vec::with_capacity(64 + r.raw.len());
    out.extend_from_slice(b"{\"tenant\":");
    serde_json::to_writer(&mut out, tenant).expect("json");
    out.extend_from_slice(b",\"metric\":");
    serde_json::to_writer(&mut out, &*r.metric_sent).expect("json");
    out.extend_from_slice(format!(",\"timestamp\":{}", r.ts).as_bytes());
    for (name, v) in &fields {
        out.push(b',');
        serde_json::to_writer(&mut out, name.as_ref()).expect("json");
        out.push(b':');
        match v {
            RawValue::Null => out.extend_from_slice(b"null"),
            RawValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            RawValue::Number(n) | RawValue::Nested(n) => out.extend_from_slice(n.as_bytes()),
            RawValue::Str(s) => serde_json::to_writer(&mut out, s.as_ref()).expect("json"),
        }
    }
    out.extend_from_slice(b"}\n");
    Ok(out)
}

/// A record as a DynamoDB item: `pk` (`tenant#metric`), `timestamp` (the sort key), `tenant`,
/// `metric`, every typed value with its type, every untyped value as a string.
fn dynamodb_item(tenant: &str, metric: &str, r: &Rec) -> Vec<u8> {
    let mut item = Map::new();
    item.insert("pk".into(), json!({"S": format!("{tenant}#{metric}")}));
    item.insert("timestamp".into(), json!({"N": r.ts.to_string()}));
    item.insert("tenant".into(), json!({"S": tenant}));
    item.insert("metric".into(), json!({"S": metric}));
    for (name, v) in &r.typed {
        let attr = match v {
            TypedValue::Null => continue,
            TypedValue::Bool(b) => json!({"BOOL": b}),
            TypedValue::Int(i) => json!({"N": i.to_string()}),
            TypedValue::Float(f) => json!({"N": format!("{f:?}")}),
            TypedValue::Str(s) => json!({"S": s}),
        };
        insert_unique(&mut item, name, attr);
    }
    for (name, text) in &r.untyped {
        insert_unique(&mut item, name, json!({"S": text}));
    }
    let mut out = serde_json::to_vec(&json!({ "Item": Value::Object(item) })).expect("json");
    out.push(b'\n');
    out
}

/// Inserts under `name`, or `name#field` when an attribute of that name exists.
fn insert_unique(item: &mut Map<String, Value>, name: &str, v: Value) {
    match item.contains_key(name) {
        false => item.insert(name.to_string(), v),
        true => item.insert(format!("{name}#field"), v),
    };
}

/// Fills objects line by line and writes each when it is full.
struct Chunker<'a> {
    staged: &'a Location,
    bundle: &'a Verified,
    format: StagedFormat,
    max: usize,
    chunk: Vec<u8>,
    /// Latest delivery time of the chunk's records (names a staged object).
    delivery: i64,
    part: usize,
}

impl Chunker<'_> {
    async fn push(
        &mut self,
        line: Vec<u8>,
        delivery: i64,
        counts: &mut RestoreCounts,
    ) -> Result<()> {
        if !self.chunk.is_empty() && self.chunk.len() + line.len() > self.max {
            self.flush(counts).await?;
        }
        self.chunk.extend_from_slice(&line);
        self.delivery = self.delivery.max(delivery);
        Ok(())
    }

    /// Writes the chunk as the next object, unless an earlier run already created it.
    async fn flush(&mut self, counts: &mut RestoreCounts) -> Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let b = self.bundle;
        let name = match self.format {
            StagedFormat::Staged => firehose_key(b, self.delivery, self.part),
            StagedFormat::DynamoDbJson => format!(
                "tenant={}/date={}/v{:020}-{:05}.json.gz",
                b.id.tenant, b.id.date, b.id.version, self.part
            ),
        };
        let chunk = std::mem::take(&mut self.chunk);
        let gz = on_rayon(move || crate::write::gzip(&chunk)).await??;
        let size = gz.len() as u64;
        match self.staged.put_create(&name, gz).await? {
            Created::Yes => {
                counts.objects_written += 1;
                counts.bytes_written += size;
            }
            Created::AlreadyExists => counts.objects_existing += 1,
        }
        self.part += 1;
        self.delivery = i64::MIN;
        Ok(())
    }
}

/// `YYYY/MM/DD/HH/fineo-restore-<version>-YYYY-MM-DD-HH-mm-ss-<id>.gz`: delivered at the latest
/// delivery time of the bundle's records, named from the bundle and the part number.
fn firehose_key(b: &Verified, delivery_ms: i64, part: usize) -> String {
    let t = chrono::DateTime::from_timestamp_millis(delivery_ms.max(0)).unwrap_or_default();
    let id = xxhash_rust::xxh3::xxh3_128(format!("{}/{part}", b.id.dir()).as_bytes());
    let hex = format!("{id:032x}");
    format!(
        "{}/fineo-restore-{}-{}-{}-{}-{}-{}-{}.gz",
        t.format("%Y/%m/%d/%H"),
        b.id.version,
        t.format("%Y-%m-%d-%H-%M-%S"),
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
