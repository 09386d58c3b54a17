//! `fanout plan | read | merge | commit`: the steps of a fanned-out compaction, each its own
//! process (an AWS Batch job, array job child or Distributed Map item).

use anyhow::Result;
use clap::Subcommand;
use fineo_batch::ops::compact::Fanout;

use super::{compact_op, CompactArgs, EXIT_QUARANTINED};

#[derive(clap::Args, Debug)]
pub struct FanoutArgs {
    #[command(subcommand)]
    step: Step,
}

#[derive(Subcommand, Debug)]
enum Step {
    /// Plan the run on the latest lake version: the new objects into read units, the
    /// partitions into merge units (item lists for a Distributed Map under
    /// `<lake>/_fineo/fanout/<run>/`). Prints the plan as JSON.
    Plan(PlanArgs),
    /// Read unit N: decode its slice of the new objects into one bucket file per merge unit.
    Read(UnitArgs),
    /// Merge unit N: merge its partitions from every read unit's bucket files, write their
    /// files (unreferenced until the commit).
    Merge(UnitArgs),
    /// Commit the run as one lake version and publish it (once; exit 4 when the lake moved on
    /// since the plan: plan again).
    Commit(RunArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The run's name (letters, digits, '-', '_'): e.g. the Step Functions execution name.
    #[arg(long, default_value = "fanout")]
    run: String,
    #[command(flatten)]
    compact: CompactArgs,
}

#[derive(clap::Args, Debug)]
struct PlanArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Read units (slices of the new objects of about equal bytes).
    #[arg(long, default_value_t = 2)]
    read_units: usize,
    /// Merge units (sets of partitions).
    #[arg(long, default_value_t = 2)]
    merge_units: usize,
}

#[derive(clap::Args, Debug)]
struct UnitArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The unit (0-based); an AWS Batch array job child takes its array index.
    #[arg(long, env = "AWS_BATCH_JOB_ARRAY_INDEX")]
    unit: usize,
}

fn fanout(run: RunArgs) -> Result<(Fanout, bool, bool)> {
    let json = run.compact.json;
    let (op, fail_on_error) = compact_op(run.compact)?;
    Ok((Fanout::new(op, &run.run)?, json, fail_on_error))
}

pub async fn run(a: FanoutArgs) -> Result<i32> {
    match a.step {
        Step::Plan(p) => {
            let (f, _, _) = fanout(p.run)?;
            let outcome = f.plan(p.read_units, p.merge_units).await?;
            println!("{}", serde_json::to_string_pretty(&outcome)?);
        }
        Step::Read(u) => {
            let (f, _, _) = fanout(u.run)?;
            let m = f.read(u.unit).await?;
            println!(
                "read unit {}: {} objects, {} records in ({} good), {} bucket bytes for {} merge units",
                m.unit,
                m.summary.objects,
                m.summary.records_in,
                m.summary.good_records,
                m.buckets.values().sum::<u64>(),
                m.buckets.len()
            );
        }
        Step::Merge(u) => {
            let (f, _, _) = fanout(u.run)?;
            let m = f.merge(u.unit).await?;
            println!(
                "merge unit {}: {} partitions from {} bucket bytes",
                m.unit,
                m.partitions.len(),
                m.bytes_in
            );
        }
        Step::Commit(r) => {
            let (f, json, fail_on_error) = fanout(r)?;
            let report = f.commit().await?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&report)?),
                false => print!("{}", report.summary()),
            }
            if fail_on_error && report.has_errors() {
                return Ok(EXIT_QUARANTINED);
            }
        }
    }
    Ok(0)
}
