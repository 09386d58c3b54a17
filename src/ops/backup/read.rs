//! Reading one tenant-day of the lake into a bundle: per partition its index, typed and
//! untyped files, checked against the index's own manifest and written below the bundle
//! directory as they are read. A day that changes while it is read is reported as such
//! (`None`), never bundled half old, half new.

use arrow::record_batch::RecordBatchReader;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::TenantCatalogFile;
use crate::bundle::{sha256_hex, BundleId, FileEntry, Manifest, MetricEntry, TypedEntry};
use crate::error::{Error, Result};
use crate::names;
use crate::ops::compact::on_rayon;
use crate::storage::Location;
use crate::write::index::{self, PartitionManifest};
use crate::write::stored::{metric_name, StoredPartition};
use crate::write::typed;

/// Builds the bundle's data files (not the catalog or manifest) for `id` from `parts`; returns
/// its manifest (without `source` and catalog) and the lake bytes read, or `None` when the
/// day changed under the read.
pub async fn build(
    lake: &Location,
    to: &Location,
    id: &BundleId,
    parts: &[StoredPartition],
    catalog: Option<&TenantCatalogFile>,
    version: u64,
) -> Result<Option<(Manifest, u64)>> {
    let mut manifest = Manifest {
        format: crate::bundle::FORMAT.into(),
        format_version: crate::bundle::FORMAT_VERSION,
        tenant: id.tenant.clone(),
        date: id.date.clone(),
        lake_version: version,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        source: String::new(),
        catalog: None,
        records: 0,
        min_ts: None,
        max_ts: None,
        metrics: Default::default(),
        files: Vec::new(),
        manifest_sha256: String::new(),
    };
    let mut lake_bytes = 0u64;
    for p in parts {
        let Some((index_bytes, meta)) = lake.get_with_meta(&p.index).await? else {
            return Ok(None);
        };
        if meta.e_tag != p.etag || meta.size != p.size {
            return Ok(None);
        }
        let doc = catalog.map(|c| &c.doc);
        let name = metric_name(lake, &p.segment, std::slice::from_ref(&p.index), doc)
            .await?
            .ok_or_else(|| Error::metadata(&p.index, "no metric name matches the directory"))?;
        let Some(files) = read_partition(lake, p, &name, index_bytes).await? else {
            return Ok(None);
        };
        if files.manifest.version > version {
            return Ok(None);
        }
        lake_bytes += files.files.iter().map(|(_, b)| b.1).sum::<u64>();
        for (rel, (bytes, _)) in files.files {
            let sha = on_rayon({
                let b = bytes.clone();
                move || sha256_hex(&b)
            })
            .await?;
            manifest.files.push(FileEntry {
                path: rel.clone(),
                size: bytes.len() as u64,
                sha256: sha,
            });
            to.put(&id.file(&rel), bytes).await?;
        }
        manifest.records += files.entry.records;
        manifest.min_ts = manifest
            .min_ts
            .min(Some(files.entry.min_ts))
            .or(Some(files.entry.min_ts));
        manifest.max_ts = manifest.max_ts.max(Some(files.entry.max_ts));
        manifest.metrics.insert(name, files.entry);
    }
    for p in parts {
        let now = lake.head(&p.index).await?;
        if now.is_none_or(|m| m.e_tag != p.etag || m.size != p.size) {
            return Ok(None);
        }
    }
    Ok(Some((manifest, lake_bytes)))
}

/// One partition's bundle files: (path in the bundle, (bytes, lake bytes they came from)).
struct PartitionFiles {
    manifest: PartitionManifest,
    entry: MetricEntry,
    files: Vec<(String, (Bytes, u64))>,
}

async fn read_partition(
    lake: &Location,
    p: &StoredPartition,
    metric: &str,
    index_bytes: Bytes,
) -> Result<Option<PartitionFiles>> {
    let dir = format!("metric={}", p.segment);
    let table = names::table_dir(&p.tenant, metric);
    let (pm, records, min_ts, max_ts) = index::footer_facts(&p.index, &index_bytes)?;
    let mut entry = MetricEntry {
        index: format!("{dir}/index.parquet"),
        typed: Vec::new(),
        untyped: None,
        columns: None,
        records,
        typed_rows: 0,
        untyped_lines: 0,
        min_ts,
        max_ts,
    };
    let index_len = index_bytes.len() as u64;
    let mut files = vec![(entry.index.clone(), (index_bytes, index_len))];
    for (i, f) in pm.typed.iter().enumerate() {
        let path = format!("typed/{table}/{}", f.path);
        let bytes = lake.get_opt(&path).await?.ok_or_else(|| {
            Error::metadata(
                &path,
                "the partition index names this typed file and it is missing: the lake is \
                 damaged; restore this day from an earlier bundle",
            )
        })?;
        if bytes.len() as u64 != f.size {
            return Ok(None);
        }
        let stats = on_rayon({
            let (b, path) = (bytes.clone(), path.clone());
            move || typed_stats(&path, b)
        })
        .await??;
        let file = format!("{dir}/typed-{i:05}.parquet");
        entry.typed.push(TypedEntry {
            file: file.clone(),
            rows: f.rows,
            stats,
        });
        entry.typed_rows += f.rows;
        files.push((file, (bytes, f.size)));
    }
    if !pm.typed.is_empty() {
        entry.columns = Some(pm.columns.clone());
    }
    if let Some(u) = &pm.untyped {
        let path = format!(
            "untyped/{table}/date={}/{}",
            crate::model::day_to_date(p.day),
            u.path
        );
        let Some(bytes) = lake.get_opt(&path).await? else {
            return Ok(None);
        };
        if bytes.len() as u64 != u.size
            || memchr::memchr_iter(b'\n', &bytes).count() as u64 != u.rows
        {
            return Ok(None);
        }
        let gz = on_rayon(move || crate::write::gzip(&bytes)).await??;
        let file = format!("{dir}/untyped.jsonl.gz");
        entry.untyped = Some(file.clone());
        entry.untyped_lines = u.rows;
        files.push((file, (gz, u.size)));
    }
    Ok(Some(PartitionFiles {
        manifest: pm,
        entry,
        files,
    }))
}

/// Delta statistics of a typed file, as the run that wrote it computed them.
fn typed_stats(path: &str, bytes: Bytes) -> Result<String> {
    let bad = |e: &dyn std::fmt::Display| Error::data_file(path, e);
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| bad(&e))?
        .with_batch_size(1 << 20)
        .build()
        .map_err(|e| bad(&e))?;
    let schema = reader.schema();
    let mut acc = typed::StatsAcc::default();
    for batch in reader {
        acc.add(&batch.map_err(|e| bad(&e))?);
    }
    Ok(acc.json(&schema))
}

/// Deletes what an abandoned attempt wrote below the bundle directory, unless a concurrent
/// backup completed it meanwhile (a bundle with a manifest is never touched).
pub async fn discard(to: &Location, id: &BundleId) -> Result<()> {
    if to.exists(&id.file(crate::bundle::MANIFEST)).await? {
        return Ok(());
    }
    for m in to.list(&id.dir()).await? {
        to.delete_path(&m.location).await?;
    }
    Ok(())
}
