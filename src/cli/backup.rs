//! `fineo-batch backup` (and `backup verify`) and `fineo-batch restore`: arguments, job file
//! settings, selection checks, and the summaries or JSON they print.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use fineo_batch::bundle::VerifyDepth;
use fineo_batch::model::date_to_day;
use fineo_batch::ops::backup::{Selection, VerifyBundles};
use fineo_batch::ops::restore::{self, NewerPolicy, RestoreStaged, StagedFormat};
use fineo_batch::ops::CommonOptions;
use fineo_batch::report::RunReport;
use fineo_batch::storage::{FileTarget, Location, StorageOptions};
use fineo_batch::{Backup, Restore};

use super::storage::StorageArgs;
use super::{progress, table, Usage};

/// Tenant-days to take, and how many at once.
#[derive(Args, Debug, Default)]
pub struct SelectArgs {
    /// Tenant-days (bundles, partitions) read and written at once; memory grows with it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: Option<u16>,
    /// Only this tenant (repeatable; default: every tenant).
    #[arg(long = "tenant", value_name = "T")]
    tenants: Vec<String>,
    /// First UTC day taken (YYYY-MM-DD, inclusive).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// Day after the last one taken (YYYY-MM-DD, exclusive: [since, until)).
    #[arg(long, value_name = "DATE")]
    until: Option<String>,
}

impl SelectArgs {
    /// The library selection; bad dates, tenants or an empty range are usage errors.
    pub fn selection(&self, job_tenants: &[String]) -> Result<Selection> {
        let day = |flag: &str, v: &Option<String>| -> Result<Option<i32>> {
            v.as_deref()
                .map(|d| {
                    date_to_day(d).ok_or_else(|| {
                        anyhow::Error::new(Usage(format!(
                            "--{flag} {d:?}: expected a date YYYY-MM-DD"
                        )))
                    })
                })
                .transpose()
        };
        let (since, until) = (day("since", &self.since)?, day("until", &self.until)?);
        if let (Some(s), Some(u)) = (since, until) {
            if s >= u {
                return Err(Usage(format!(
                    "--since {} is not before --until {} (the range is [since, until))",
                    self.since.as_deref().unwrap_or_default(),
                    self.until.as_deref().unwrap_or_default()
                ))
                .into());
            }
        }
        let tenants = match self.tenants.is_empty() {
            true => job_tenants.to_vec(),
            false => self.tenants.clone(),
        };
        if let Some(t) = tenants
            .iter()
            .find(|t| !fineo_batch::names::valid_tenant(t))
        {
            return Err(Usage(format!("--tenant {t:?}: not a valid tenant id")).into());
        }
        Ok(Selection {
            tenants,
            since,
            until,
        })
    }

    /// Sets the selection and (flag, else job file) concurrency of an operation.
    pub fn apply<O: CommonOptions>(
        &self,
        op: O,
        job_tenants: &[String],
        job_concurrency: Option<usize>,
    ) -> Result<O> {
        let op = op.with_selection(self.selection(job_tenants)?);
        Ok(
            match self.concurrency.map(usize::from).or(job_concurrency) {
                Some(n) => op.with_concurrency(n),
                None => op,
            },
        )
    }
}

/// Output and report flags shared by these commands.
#[derive(Args, Debug, Default)]
pub struct OutputArgs {
    /// Print the JSON report on stdout instead of the summary.
    #[arg(long)]
    pub(super) json: bool,
    /// Also write the JSON report to this file URL or path.
    #[arg(long)]
    pub(super) report: Option<String>,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: Option<BackupCommand>,
    /// The lake to back up.
    #[arg(long)]
    lake: Option<String>,
    /// The backup location (bundles go to <to>/tenant=<t>/date=<D>/<lake version>/).
    #[arg(long)]
    to: Option<String>,
    #[command(flatten)]
    select: SelectArgs,
    /// Job file (TOML) with a [backup] table; flags override it.
    #[arg(long)]
    job: Option<PathBuf>,
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Subcommand, Debug)]
enum BackupCommand {
    /// Check bundles without restoring: manifests and every file's SHA-256 (exit 1 on damage).
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The backup location.
    #[arg(long)]
    from: Option<String>,
    /// Job file (TOML): its [backup] `to` is the default --from, its [storage] applies.
    #[arg(long)]
    job: Option<PathBuf>,
    #[command(flatten)]
    select: SelectArgs,
    /// Also decode every file and check record counts and time ranges.
    #[arg(long)]
    deep: bool,
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup location to restore from.
    #[arg(long)]
    from: Option<String>,
    /// Restore into this lake (the same lake or another one).
    #[arg(long, conflicts_with = "staged")]
    lake: Option<String>,
    /// Write the records as archive objects below this location instead.
    #[arg(long)]
    staged: Option<String>,
    /// With --staged: gzip JSON Lines in the Firehose layout, or DynamoDB's S3 import format.
    #[arg(long, value_enum, requires = "staged")]
    format: Option<FormatArg>,
    #[command(flatten)]
    select: SelectArgs,
    /// Point in time: per tenant-day the latest bundle at or below this lake version.
    #[arg(long, value_name = "VERSION")]
    as_of: Option<u64>,
    /// List the bundles available (per tenant-day and version) and exit.
    #[arg(long)]
    list: bool,
    /// Verify the bundles and show what would be replaced; write nothing.
    #[arg(long, conflicts_with = "staged")]
    dry_run: bool,
    /// What becomes of records the restored days hold from archive objects processed after the
    /// bundles were taken: merged on top (keep), replaced and read again by the next compact
    /// (requeue), or replaced (drop). Without it, a restore that would replace any refuses.
    #[arg(long, value_enum, conflicts_with = "staged")]
    newer: Option<NewerArg>,
    /// Memory for verified bundle bytes kept until they are copied, in MiB (default 256);
    /// bundles beyond it are read and checked again when copied.
    #[arg(long, value_name = "MiB", conflicts_with = "staged")]
    memory_budget_mb: Option<u64>,
    /// Job file (TOML): its [backup] `to` is the default --from, its [storage] applies.
    #[arg(long)]
    job: Option<PathBuf>,
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum NewerArg {
    Keep,
    Requeue,
    Drop,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Staged,
    DynamodbJson,
}

/// `fineo-batch backup ...`.
pub async fn backup(a: BackupArgs) -> Result<i32> {
    if let Some(BackupCommand::Verify(v)) = a.command {
        return verify(v).await;
    }
    let (file, opts) = a.storage.with_job(a.job.as_deref())?;
    let job = file.backup.clone().unwrap_or_default();
    let compact_lake = file.compact.as_ref().and_then(|c| c.lake.clone());
    let lake = a
        .lake
        .or(job.lake)
        .or(compact_lake)
        .context("--lake is required (flag or job file)")?;
    let to =
        a.to.or(job.to)
            .context("--to is required (flag or job file)")?;
    let report = target(a.out.report.or(job.report), &opts)?;
    let op = Backup::new(
        Location::parse_existing_with(&lake, &opts)?,
        Location::parse_with(&to, &opts)?,
    )
    .with_report(report)
    .with_progress(Arc::from(progress::for_stderr()));
    let report = a
        .select
        .apply(op, &job.tenants, job.concurrency)?
        .execute()
        .await?;
    print(a.out.json, &report)?;
    let failed = report
        .backup
        .as_ref()
        .is_some_and(|b| !b.changed_during_backup.is_empty());
    Ok(i32::from(failed))
}

async fn verify(a: VerifyArgs) -> Result<i32> {
    let (file, opts) = a.storage.with_job(a.job.as_deref())?;
    let from = a
        .from
        .or(file.backup.and_then(|b| b.to))
        .context("--from is required (flag or a job file's [backup] to)")?;
    let op = VerifyBundles::new(Location::parse_existing_with(&from, &opts)?);
    let report = a
        .select
        .apply(op, &[], None)?
        .with_depth(match a.deep {
            true => VerifyDepth::Deep,
            false => VerifyDepth::Checksums,
        })
        .with_report(target(a.out.report, &opts)?)
        .with_progress(Arc::from(progress::for_stderr()))
        .execute()
        .await?;
    print(a.out.json, &report)?;
    Ok(i32::from(report.has_damage()))
}

/// `fineo-batch restore ...`.
pub async fn restore(a: RestoreArgs) -> Result<i32> {
    let (file, opts) = a.storage.with_job(a.job.as_deref())?;
    let job = file.backup.clone().unwrap_or_default();
    let from = a
        .from
        .or(job.to)
        .context("--from is required (flag or a job file's [backup] to)")?;
    let from = Location::parse_existing_with(&from, &opts)?;
    let selection = a.select.selection(&[])?;
    if a.list {
        return list(&from, &selection, a.out.json).await;
    }
    let report = target(a.out.report, &opts)?;
    let progress: Arc<dyn fineo_batch::progress::Progress> = Arc::from(progress::for_stderr());
    let result =
        match (a.lake, a.staged) {
            (Some(lake), None) => {
                let mut op = Restore::new(from, Location::parse_with(&lake, &opts)?);
                if let Some(mb) = a.memory_budget_mb {
                    op = op.with_memory_budget(mb << 20);
                }
                a.select
                    .apply(op, &[], job.concurrency)?
                    .with_as_of(a.as_of)
                    .with_dry_run(a.dry_run)
                    .with_newer(match a.newer {
                        None => NewerPolicy::Refuse,
                        Some(NewerArg::Keep) => NewerPolicy::Keep,
                        Some(NewerArg::Requeue) => NewerPolicy::Requeue,
                        Some(NewerArg::Drop) => NewerPolicy::Drop,
                    })
                    .with_report(report)
                    .with_progress(progress)
                    .execute()
                    .await?
            }
            (None, Some(staged)) => {
                let format = match a.format {
                    Some(FormatArg::DynamodbJson) => StagedFormat::DynamoDbJson,
                    _ => StagedFormat::Staged,
                };
                let op = RestoreStaged::new(from, Location::parse_with(&staged, &opts)?);
                a.select
                    .apply(op, &[], job.concurrency)?
                    .with_as_of(a.as_of)
                    .with_format(format)
                    .with_report(report)
                    .with_progress(progress)
                    .execute()
                    .await?
            }
            _ => return Err(Usage(
                "restore needs --lake L (into a lake) or --staged S (archive objects), or --list"
                    .into(),
            )
            .into()),
        };
    print(a.out.json, &result)?;
    Ok(0)
}

async fn list(from: &Location, selection: &Selection, json: bool) -> Result<i32> {
    let bundles = restore::list(from, selection).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&bundles)?);
        return Ok(0);
    }
    if bundles.is_empty() {
        println!("no bundles in {}", from.url());
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = bundles
        .iter()
        .map(|b| {
            vec![
                b.tenant.clone(),
                b.date.clone(),
                b.version.to_string(),
                b.records.map_or("-".into(), |r| r.to_string()),
                b.metrics.map_or("-".into(), |m| m.to_string()),
                b.bytes.to_string(),
                match (b.latest, &b.problem) {
                    (_, Some(p)) => p.clone(),
                    (true, None) => "latest".into(),
                    (false, None) => String::new(),
                },
            ]
        })
        .collect();
    let header = [
        "TENANT", "DATE", "VERSION", "RECORDS", "METRICS", "BYTES", "NOTE",
    ];
    println!("{}", table::render(&header, &rows).trim_end());
    Ok(0)
}

fn target(report: Option<String>, opts: &StorageOptions) -> Result<Option<FileTarget>> {
    Ok(report
        .map(|r| FileTarget::parse_with(&r, opts))
        .transpose()?)
}

pub fn print(json: bool, report: &RunReport) -> Result<()> {
    match json {
        true => println!("{}", serde_json::to_string_pretty(report)?),
        false => print!("{}", report.summary()),
    }
    Ok(())
}
