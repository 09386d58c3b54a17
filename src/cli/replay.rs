//! `fineo-batch replay` and `fineo-batch diff`: arguments, job file settings, window checks,
//! and what they print.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use fineo_batch::ops::{CommonOptions, Diff, PipelineOptions, Replay};
use fineo_batch::storage::{FileTarget, Location};

use super::backup::{OutputArgs, SelectArgs};
use super::storage::StorageArgs;
use super::{progress, Usage};

/// Exit code of `diff` when the lakes differ.
const EXIT_DIFFERENT: i32 = 3;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The staged archive.
    #[arg(long)]
    staged: Option<String>,
    /// The lake whose partitions the window's objects fed.
    #[arg(long)]
    lake: Option<String>,
    /// First delivery time replayed (RFC 3339, or a date for its midnight UTC; inclusive).
    #[arg(long, value_name = "TIME")]
    since: String,
    /// End of the window (RFC 3339 or a date; exclusive: [since, until)).
    #[arg(long, value_name = "TIME")]
    until: String,
    /// Write the rebuilt partitions into this lake instead and leave --lake untouched (a dark
    /// launch; compare them with `fineo-batch diff`).
    #[arg(long)]
    to: Option<String>,
    /// Resolve with the `<tenant>.json` catalogs of this directory instead of the lake's.
    #[arg(long)]
    catalog: Option<String>,
    /// List the objects and partitions the replay would take; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Which duplicate wins: the lake's `compact --keep` (default latest).
    #[arg(long, value_enum)]
    keep: Option<super::KeepArg>,
    /// Job file (TOML) with a [replay] table; flags override it.
    #[arg(long)]
    job: Option<PathBuf>,
    /// Memory for buffered records before spilling to local disk, in MiB.
    #[arg(long)]
    memory_budget_mb: Option<usize>,
    /// Objects fetched and decoded at once.
    #[arg(long)]
    fetch_concurrency: Option<usize>,
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The two lakes: `--lake A --lake B`.
    #[arg(long = "lake", num_args = 1, required = true)]
    lakes: Vec<String>,
    #[command(flatten)]
    select: SelectArgs,
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    storage: StorageArgs,
}

/// A time given as RFC 3339 or a `YYYY-MM-DD` date (its midnight, UTC), in ms.
fn parse_time(flag: &str, text: &str) -> Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    if let Some(day) = fineo_batch::model::date_to_day(text) {
        return Ok(i64::from(day) * 86_400_000);
    }
    Err(Usage(format!(
        "--{flag} {text:?}: expected RFC 3339 (2026-01-01T05:00:00Z) or a date (2026-01-01)"
    ))
    .into())
}

/// `fineo-batch replay ...`.
pub async fn replay(a: ReplayArgs) -> Result<i32> {
    let (since, until) = (
        parse_time("since", &a.since)?,
        parse_time("until", &a.until)?,
    );
    if since >= until {
        return Err(Usage(format!(
            "--since {} is not before --until {} (the window is [since, until))",
            a.since, a.until
        ))
        .into());
    }
    let (file, opts) = a.storage.with_job(a.job.as_deref())?;
    let job = file.replay.clone().unwrap_or_default();
    let compact = file.compact.clone().unwrap_or_default();
    let staged = a
        .staged
        .or(job.staged)
        .or(compact.staged)
        .context("--staged is required (flag or job file)")?;
    let lake = a
        .lake
        .or(job.lake)
        .or(compact.lake)
        .context("--lake is required (flag or job file)")?;
    let to =
        a.to.or(job.to)
            .map(|t| Location::parse_with(&t, &opts))
            .transpose()?;
    let catalog = a
        .catalog
        .or(job.catalog)
        .map(|c| Location::parse_existing_with(&c, &opts))
        .transpose()?;
    let report = a
        .out
        .report
        .or(job.report)
        .map(|r| FileTarget::parse_with(&r, &opts))
        .transpose()?;
    let mut op = Replay::new(
        Location::parse_existing_with(&staged, &opts)?,
        Location::parse_existing_with(&lake, &opts)?,
        since,
        until,
    )?
    .with_to(to)
    .with_catalog(catalog)
    .with_dry_run(a.dry_run)
    .with_keep(match a.keep {
        Some(super::KeepArg::First) => fineo_batch::dedup::Keep::First,
        _ => fineo_batch::dedup::Keep::Latest,
    })
    .with_report(report)
    .with_progress(Arc::from(progress::for_stderr()));
    if let Some(mb) = a.memory_budget_mb.or(job.memory_budget_mb) {
        op = op.with_memory_budget(mb << 20);
    }
    if let Some(n) = a.fetch_concurrency.or(job.fetch_concurrency) {
        op = op.with_fetch_concurrency(n);
    }
    let report = op.execute().await?;
    super::backup::print(a.out.json, &report)?;
    Ok(0)
}

/// `fineo-batch diff ...`: exit 0 when the lakes are equal, 3 when they differ.
pub async fn diff(a: DiffArgs) -> Result<i32> {
    let [lake_a, lake_b] = <[String; 2]>::try_from(a.lakes).map_err(|l| {
        Usage(format!(
            "diff compares two lakes: give --lake exactly twice (got {})",
            l.len()
        ))
    })?;
    let opts = a.storage.options(None)?;
    let report = a
        .out
        .report
        .map(|r| FileTarget::parse_with(&r, &opts))
        .transpose()?;
    let op = Diff::new(
        Location::parse_existing_with(&lake_a, &opts)?,
        Location::parse_existing_with(&lake_b, &opts)?,
    );
    let report = a
        .select
        .apply(op, &[], None)?
        .with_report(report)
        .with_progress(Arc::from(progress::for_stderr()))
        .execute()
        .await?;
    super::backup::print(a.out.json, &report)?;
    let equal = report.diff.as_ref().is_some_and(|d| d.equal);
    Ok(if equal { 0 } else { EXIT_DIFFERENT })
}
