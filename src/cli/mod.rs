//! The command line: clap arguments, job files, logging and progress, turned into library
//! operations; the only place that knows clap, indicatif and anyhow.

mod backup;
mod fanout;
mod ingest;
mod progress;
mod proposals;
mod redact;
mod replay;
mod schema;
mod storage;
mod table;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use fineo_batch::dedup::Keep;
use fineo_batch::ops::compact::Listing;
use fineo_batch::ops::generate::{SampleFormat, World};
use fineo_batch::ops::PipelineOptions;
use fineo_batch::storage::{FileTarget, Location};
use fineo_batch::{Compact, Generate};
use storage::StorageArgs;

/// Exit code: completed, but records were quarantined and `--fail-on-error` was given.
const EXIT_QUARANTINED: i32 = 3;

/// Exit code: the command line (or the settings it names) is wrong.
const EXIT_USAGE: i32 = 2;
/// A fan-out run's lake moved on since its plan: nothing was committed; plan again.
const EXIT_STALE_PLAN: i32 = 4;

/// A usage error found after clap's parsing (exit code 2).
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// 2 for usage errors (ours, and unknown or inconsistent storage settings), 4 for a fan-out
/// plan whose lake moved on (plan again), else 1.
fn exit_code(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<fineo_batch::Error>() {
        Some(fineo_batch::Error::StorageOption { .. }) => EXIT_USAGE,
        Some(fineo_batch::Error::StalePlan { .. }) => EXIT_STALE_PLAN,
        _ if e.is::<Usage>() => EXIT_USAGE,
        _ => 1,
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "fineo-batch",
    version,
    about = "Batch compaction for the Fineo IoT platform: staged archive -> deduplicated Delta lake"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compact new staged objects into the lake (typed Delta tables + untyped JSON).
    Compact(CompactArgs),
    /// Write a sample staged archive, its catalog and its ground truth.
    Generate(GenerateArgs),
    /// Show, edit, import and export the versioned schema catalog in the lake.
    Schema(schema::SchemaArgs),
    /// Write standalone, checksummed backup bundles (one per changed tenant-day); `backup
    /// verify` checks them.
    Backup(backup::BackupArgs),
    /// Restore tenant-days from backup bundles into a lake, or as archive objects.
    Restore(backup::RestoreArgs),
    /// Reprocess the archived objects delivered in a window and rebuild the partitions they
    /// fed, in the lake or (--to) in another one.
    Replay(replay::ReplayArgs),
    /// Compare two lakes partition by partition (exit 0 equal, 3 different).
    Diff(replay::DiffArgs),
    /// Turn customer export files (CSV, JSON Lines, Avro, Parquet) into staged archive objects.
    Ingest(ingest::IngestArgs),
    /// One compaction fanned out over machines: plan, read units, merge units, commit.
    Fanout(fanout::FanoutArgs),
}

#[derive(clap::Args, Debug, Clone)]
struct CompactArgs {
    /// Staged archive location (s3://bucket/prefix, file:///path or a local path).
    #[arg(long)]
    staged: Option<String>,
    /// Lake location.
    #[arg(long)]
    lake: Option<String>,
    /// Directory of `<tenant>.json` catalogs (default: the lake's `_catalog/`).
    #[arg(long)]
    catalog: Option<String>,
    /// Which duplicate wins.
    #[arg(long, value_enum)]
    keep: Option<KeepArg>,
    /// Also write the JSON report to this file URL or path.
    #[arg(long)]
    report: Option<String>,
    /// Exit with code 3 when any record was quarantined.
    #[arg(long)]
    fail_on_error: bool,
    /// Job file (TOML) with the settings; flags override it.
    #[arg(long)]
    job: Option<PathBuf>,
    /// Memory for buffered records before spilling to local disk, in MiB.
    #[arg(long)]
    memory_budget_mb: Option<usize>,
    /// Objects fetched and decoded at once.
    #[arg(long)]
    fetch_concurrency: Option<usize>,
    /// Print the JSON report on stdout instead of the human summary.
    #[arg(long)]
    json: bool,
    /// Do not update the schema proposals (`<lake>/_proposals/`).
    #[arg(long)]
    no_proposals: bool,
    /// List the whole staged prefix and read the whole ledger, instead of listing from the
    /// last run's watermark: finds objects delivered later than the lookback (run it daily).
    #[arg(long)]
    reconcile: bool,
    /// Hours before the watermark's hour where an incremental listing starts [default: 3].
    #[arg(long, value_name = "HOURS")]
    lookback_hours: Option<u32>,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum KeepArg {
    Latest,
    First,
}

#[derive(clap::Args, Debug)]
struct GenerateArgs {
    /// Where to write `staged/`, `catalog/` and `truth.json`.
    #[arg(long)]
    out: String,
    /// Approximate number of records.
    #[arg(long, default_value_t = 10_000)]
    records: u64,
    /// Object encodings.
    #[arg(long, value_enum, default_value_t = FormatArg::JsonlGz)]
    format: FormatArg,
    /// Random seed (same seed, same archive).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Days of event time covered.
    #[arg(long, default_value_t = 3)]
    days: u64,
    /// A production-shaped world of this many tenants (t01, t02, ...), every one with a
    /// catalog of every metric, instead of the small built-in sample (4 tenants, 4 metrics).
    #[arg(long)]
    tenants: Option<usize>,
    /// Metrics per tenant in the production-shaped world (default 5).
    #[arg(long, requires = "tenants")]
    metrics: Option<usize>,
    /// Declared fields per metric in the production-shaped world (default 8; devices also
    /// send a few unknown ones).
    #[arg(long, requires = "tenants")]
    fields: Option<usize>,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    JsonlGz,
    Avro,
    Mixed,
}

/// Parses arguments, runs the command, returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    redact::register_env();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", redact::redact(&error_text(&e)));
            exit_code(&e)
        }
    }
}

/// The error and its causes, each cause only when the text so far does not already hold it
/// (object_store and delta errors repeat their sources in their own messages).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
    }
    text
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,fineo_batch=info,fineo_batch_cli=info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(redact::RedactingStderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn dispatch(cmd: Command) -> Result<i32> {
    match cmd {
        Command::Compact(a) => compact(a).await,
        Command::Generate(a) => generate(a).await,
        Command::Schema(a) => schema::run(a).await,
        Command::Backup(a) => backup::backup(a).await,
        Command::Restore(a) => backup::restore(a).await,
        Command::Replay(a) => replay::replay(a).await,
        Command::Diff(a) => replay::diff(a).await,
        Command::Ingest(a) => ingest::ingest(a).await,
        Command::Fanout(a) => fanout::run(a).await,
    }
}

/// The compaction the arguments (and job file) describe, and whether quarantined records
/// fail the run.
fn compact_op(a: CompactArgs) -> Result<(Compact, bool)> {
    let (file, opts) = a.storage.with_job(a.job.as_deref())?;
    let job = file.compact.unwrap_or_default();
    let staged = a
        .staged
        .or(job.staged)
        .context("--staged is required (flag or job file)")?;
    let lake = a
        .lake
        .or(job.lake)
        .context("--lake is required (flag or job file)")?;
    let catalog = a.catalog.or(job.catalog);
    let keep = match a.keep {
        Some(KeepArg::First) => Keep::First,
        Some(KeepArg::Latest) => Keep::Latest,
        None => job.keep.unwrap_or_default(),
    };
    let fail_on_error = a.fail_on_error || job.fail_on_error.unwrap_or(false);
    let catalog = catalog
        .map(|c| Location::parse_existing_with(&c, &opts))
        .transpose()?;
    let report = a
        .report
        .or(job.report)
        .map(|r| FileTarget::parse_with(&r, &opts))
        .transpose()?;
    let progress: Arc<dyn fineo_batch::progress::Progress> = Arc::from(progress::for_stderr());
    let staged = Location::parse_existing_with(&staged, &opts)?;
    let mut op = Compact::new(staged, Location::parse_with(&lake, &opts)?)
        .with_catalog(catalog)
        .with_keep(keep)
        .with_report(report)
        .with_proposals(!a.no_proposals)
        .with_listing(Listing {
            reconcile: a.reconcile || job.reconcile.unwrap_or(false),
            lookback_hours: a
                .lookback_hours
                .or(job.lookback_hours)
                .unwrap_or(Listing::default().lookback_hours),
        })
        .with_progress(progress);
    if let Some(mb) = a.memory_budget_mb.or(job.memory_budget_mb) {
        op = op.with_memory_budget(mb << 20);
    }
    if let Some(n) = a.fetch_concurrency.or(job.fetch_concurrency) {
        op = op.with_fetch_concurrency(n);
    }
    Ok((op, fail_on_error))
}

async fn compact(a: CompactArgs) -> Result<i32> {
    let (op, fail_on_error) = compact_op(a.clone())?;
    let report = op.execute().await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.summary());
    }
    Ok(if fail_on_error && report.has_errors() {
        EXIT_QUARANTINED
    } else {
        0
    })
}

async fn generate(a: GenerateArgs) -> Result<i32> {
    let format = match a.format {
        FormatArg::JsonlGz => SampleFormat::JsonlGz,
        FormatArg::Avro => SampleFormat::Avro,
        FormatArg::Mixed => SampleFormat::Mixed,
    };
    let opts = a.storage.options(None)?;
    let mut op = Generate::new(Location::parse_with(&a.out, &opts)?);
    if let Some(tenants) = a.tenants {
        op = op.with_world(World::synthetic(
            tenants,
            a.metrics.unwrap_or(5),
            a.fields.unwrap_or(8),
        ));
    }
    let truth = op
        .with_records(a.records)
        .with_format(format)
        .with_seed(a.seed)
        .with_days(a.days)
        .execute()
        .await?;
    println!(
        "generated {} records ({} good, {} distinct keys, {} typed rows, {} exact + {} conflicting duplicates, {} bad) in {} objects under {}",
        truth.records,
        truth.good_records,
        truth.distinct_keys,
        truth.typed_rows,
        truth.latest.exact,
        truth.latest.conflicting,
        truth.errors.values().sum::<u64>(),
        truth.deliveries.len(),
        a.out
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_is_printed_without_repeating_causes_already_in_the_message() {
        #[derive(Debug, thiserror::Error)]
        #[error("Generic S3 error: request failed: 404 NoSuchBucket")]
        struct Inner;
        #[derive(Debug, thiserror::Error)]
        #[error("storage error on lake/_fineo/log: {0}")]
        struct Outer(#[source] Inner);
        let e = anyhow::Error::new(Outer(Inner)).context("compact failed");
        assert_eq!(
            error_text(&e),
            "compact failed: storage error on lake/_fineo/log: Generic S3 error: request failed: 404 NoSuchBucket"
        );
        let plain = anyhow::anyhow!("--lake is required");
        assert_eq!(error_text(&plain), "--lake is required");
    }
}
