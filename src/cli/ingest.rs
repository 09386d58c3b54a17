//! `fineo-batch ingest`: arguments and the job file's `[ingest]` table turned into ingest
//! settings (checked before anything is read), and what it prints; `--write-job` pins what a
//! dry run detected.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use fineo_batch::jobfile::IngestJob;
use fineo_batch::ops::ingest::{
    settings::parse_timezone, Ambiguous, IngestSettings, MetricFrom, Nonexistent, SourceFiles,
    SourceFormat, TimestampFormat,
};
use fineo_batch::ops::{CommonOptions, Ingest};
use fineo_batch::storage::{FileTarget, Location};

use super::backup::OutputArgs;
use super::storage::StorageArgs;
use super::{progress, Usage};

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// The export file, or a prefix of files (URL or local path).
    source: Option<String>,
    /// The tenant every row belongs to (a tenant column that disagrees makes a bad row).
    #[arg(long)]
    tenant: Option<String>,
    /// The staged archive the objects go to.
    #[arg(long)]
    staged: Option<String>,
    /// Every row is this metric.
    #[arg(long, conflicts_with = "metric_column")]
    metric: Option<String>,
    /// Each row's metric is in this column.
    #[arg(long)]
    metric_column: Option<String>,
    /// The column holding the time (default: timestamp).
    #[arg(long)]
    timestamp_column: Option<String>,
    /// auto (default), epoch_s, epoch_ms, epoch_us, rfc3339, or a strftime pattern.
    #[arg(long)]
    timestamp_format: Option<String>,
    /// IANA zone of times written without an offset (never the host's).
    #[arg(long)]
    timezone: Option<String>,
    /// A local time that occurs twice (clocks going back): error (default), earliest, latest.
    #[arg(long, value_enum)]
    ambiguous: Option<AmbiguousArg>,
    /// A local time that does not exist (clocks going forward): error (default), forward.
    #[arg(long, value_enum)]
    nonexistent: Option<NonexistentArg>,
    /// Name a column's field differently: COLUMN=NAME (repeatable).
    #[arg(long = "rename", value_name = "COLUMN=NAME")]
    renames: Vec<String>,
    /// The files' format (default: detected from their bytes).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// CSV delimiter (default: detected).
    #[arg(long)]
    delimiter: Option<char>,
    /// A file with more bad rows is not ingested at all (default 0).
    #[arg(long)]
    max_bad_rows: Option<u64>,
    /// Detect, map and check; print the format, dialect, columns, samples and errors; write
    /// nothing.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: write the settings it used (and detected) as a job file.
    #[arg(long, requires = "dry_run")]
    write_job: Option<PathBuf>,
    /// Job file (TOML) with an [ingest] table; flags override it.
    #[arg(long)]
    job: Option<PathBuf>,
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Auto,
    Csv,
    Jsonl,
    Avro,
    Parquet,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AmbiguousArg {
    Error,
    Earliest,
    Latest,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum NonexistentArg {
    Error,
    Forward,
}

/// The flags over the job file's table, as one table (what `--write-job` writes).
fn merged(a: &IngestArgs, job: IngestJob) -> Result<IngestJob> {
    let mut rename = job.rename;
    for r in &a.renames {
        let (from, to) = r
            .split_once('=')
            .filter(|(f, t)| !f.is_empty() && !t.is_empty())
            .ok_or_else(|| Usage(format!("--rename {r:?}: expected COLUMN=NAME")))?;
        rename.insert(from.to_string(), to.to_string());
    }
    let format = match a.format {
        Some(FormatArg::Auto) => None,
        Some(f) => Some(format!("{f:?}").to_lowercase()),
        None => job.format,
    };
    let (metric, metric_column) = match (&a.metric, &a.metric_column) {
        (None, None) => (job.metric, job.metric_column),
        (m, c) => (m.clone(), c.clone()),
    };
    Ok(IngestJob {
        source: a.source.clone().or(job.source),
        tenant: a.tenant.clone().or(job.tenant),
        staged: a.staged.clone().or(job.staged),
        metric,
        metric_column,
        timestamp_column: a.timestamp_column.clone().or(job.timestamp_column),
        timestamp_format: a.timestamp_format.clone().or(job.timestamp_format),
        timezone: a.timezone.clone().or(job.timezone),
        ambiguous: a
            .ambiguous
            .map(|x| format!("{x:?}").to_lowercase())
            .or(job.ambiguous),
        nonexistent: a
            .nonexistent
            .map(|x| format!("{x:?}").to_lowercase())
            .or(job.nonexistent),
        rename,
        format,
        delimiter: a.delimiter.map(|d| d.to_string()).or(job.delimiter),
        max_bad_rows: a.max_bad_rows.or(job.max_bad_rows),
    })
}

/// The library settings of a table; anything wrong is a usage error.
fn settings(j: &IngestJob) -> Result<IngestSettings> {
    let usage = |m: String| anyhow::Error::new(Usage(m));
    let tenant = j
        .tenant
        .as_deref()
        .ok_or_else(|| usage("--tenant is required (flag or job file)".into()))?;
    let metric = match (&j.metric, &j.metric_column) {
        (Some(m), None) => MetricFrom::Fixed(m.clone()),
        (None, Some(c)) => MetricFrom::Column(c.clone()),
        (Some(_), Some(_)) => {
            return Err(usage("give --metric or --metric-column, not both".into()))
        }
        (None, None) => return Err(usage("--metric or --metric-column is required".into())),
    };
    let mut s = IngestSettings::new(tenant, metric).map_err(|e| usage(e.to_string()))?;
    if let Some(c) = &j.timestamp_column {
        s.timestamp_column = c.clone();
    }
    if let Some(f) = &j.timestamp_format {
        s.timestamp_format = TimestampFormat::parse(f).map_err(|e| usage(e.to_string()))?;
    }
    if let Some(z) = &j.timezone {
        s.timezone = Some(parse_timezone(z).map_err(|e| usage(e.to_string()))?);
    }
    s.ambiguous = match j.ambiguous.as_deref() {
        None | Some("error") => Ambiguous::Error,
        Some("earliest") => Ambiguous::Earliest,
        Some("latest") => Ambiguous::Latest,
        Some(o) => {
            return Err(usage(format!(
                "ambiguous {o:?}: expected error, earliest or latest"
            )))
        }
    };
    s.nonexistent = match j.nonexistent.as_deref() {
        None | Some("error") => Nonexistent::Error,
        Some("forward") => Nonexistent::Forward,
        Some(o) => {
            return Err(usage(format!(
                "nonexistent {o:?}: expected error or forward"
            )))
        }
    };
    s.rename = j.rename.clone();
    s.format = match j.format.as_deref() {
        None | Some("auto") => None,
        Some("csv") => Some(SourceFormat::Csv),
        Some("jsonl") => Some(SourceFormat::Jsonl),
        Some("avro") => Some(SourceFormat::Avro),
        Some("parquet") => Some(SourceFormat::Parquet),
        Some(o) => {
            return Err(usage(format!(
                "format {o:?}: expected auto, csv, jsonl, avro or parquet"
            )))
        }
    };
    s.delimiter = match j.delimiter.as_deref() {
        None => None,
        Some(d) if d.len() == 1 => Some(d.as_bytes()[0]),
        Some("\\t") => Some(b'\t'),
        Some(d) => {
            return Err(usage(format!(
                "delimiter {d:?}: expected one ASCII character"
            )))
        }
    };
    s.max_bad_rows = j.max_bad_rows.unwrap_or(0);
    Ok(s)
}

/// `fineo-batch ingest ...`: exit 0 when every file was ingested or unchanged, 1 when one
/// failed.
pub async fn ingest(a: IngestArgs) -> Result<i32> {
    let (file, opts) = a.storage.with_job(a.job.as_deref())?;
    let table = merged(&a, file.ingest.unwrap_or_default())?;
    let s = settings(&table)?;
    let source = table
        .source
        .clone()
        .context("the source file or prefix is required (argument or job file)")?;
    let staged = table
        .staged
        .clone()
        .context("--staged is required (flag or job file)")?;
    let report = a
        .out
        .report
        .as_ref()
        .map(|r| FileTarget::parse_with(r, &opts))
        .transpose()?;
    let sources = SourceFiles::resolve(&source, &opts).await?;
    let report = Ingest::new(sources, Location::parse_with(&staged, &opts)?, s)
        .with_dry_run(a.dry_run)
        .with_report(report)
        .with_progress(Arc::from(progress::for_stderr()))
        .execute()
        .await?;
    if let Some(path) = &a.write_job {
        write_job(path, table, &report)?;
    }
    super::backup::print(a.out.json, &report)?;
    let failed = report.ingest.as_ref().is_some_and(|i| i.failed > 0);
    Ok(i32::from(failed))
}

/// The settings as an `[ingest]` job file, with what the dry run detected pinned.
fn write_job(
    path: &std::path::Path,
    mut table: IngestJob,
    report: &fineo_batch::report::RunReport,
) -> Result<()> {
    if let Some(f) = report.ingest.as_ref().and_then(|i| i.files.first()) {
        if table.format.is_none() {
            table.format = f.format.map(|x| x.name().to_string());
        }
        if table.delimiter.is_none() {
            table.delimiter = f.dialect.as_ref().map(|d| match d.delimiter {
                '\t' => "\\t".to_string(),
                c => c.to_string(),
            });
        }
    }
    let mut doc: BTreeMap<&str, IngestJob> = BTreeMap::new();
    doc.insert("ingest", table);
    let text = toml::to_string(&doc).context("job file")?;
    let head = "# Written by `fineo-batch ingest --dry-run --write-job`: the settings it used, and what it\n# detected, pinned. Run with `fineo-batch ingest --job <this file>`.\n";
    std::fs::write(path, format!("{head}{text}"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
