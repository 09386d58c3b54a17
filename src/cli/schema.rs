//! `fineo-batch schema ...`: arguments of every subcommand, and their tables or JSON.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use fineo_batch::catalog::TenantDoc;
use fineo_batch::model::FieldType;
use fineo_batch::ops::schema::{import_path, EditReport, HistoryReport, ImportReport, ShowReport};
use fineo_batch::ops::SchemaOp;
use fineo_batch::schema::edit::SchemaEdit;
use fineo_batch::schema::store::CatalogVersion;
use fineo_batch::storage::{Location, StorageOptions};
use serde::Serialize;

use super::storage::StorageArgs;
use super::{proposals, table};

#[derive(Args, Debug)]
pub struct SchemaArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: SchemaCommand,
}

#[derive(Args, Debug)]
struct Common {
    /// Lake location (s3://bucket/prefix, file:///path or a local path).
    #[arg(long, global = true)]
    lake: Option<String>,
    /// Job file (TOML): its `[compact] lake` is used when --lake is not given.
    #[arg(long, global = true)]
    job: Option<PathBuf>,
    /// Print JSON on stdout instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Args, Debug)]
struct TenantArg {
    /// Tenant id.
    #[arg(long)]
    tenant: String,
}

#[derive(Subcommand, Debug)]
enum SchemaCommand {
    /// Show a catalog version (default: the latest): metrics, fields, types, aliases, hidden.
    Show {
        #[command(flatten)]
        t: TenantArg,
        /// Only this metric (canonical name or alias).
        #[arg(long)]
        metric: Option<String>,
        /// This version instead of the latest.
        #[arg(long)]
        version: Option<u64>,
    },
    /// Every catalog version with its time and change.
    History {
        #[command(flatten)]
        t: TenantArg,
    },
    /// Fields and metrics the catalog does not know, and declared fields that often fail
    /// their type, with statistics and a suggestion (against the latest catalog version).
    Proposals {
        #[command(flatten)]
        t: TenantArg,
        /// Only this metric (canonical name, alias, or the name an unknown metric was sent with).
        #[arg(long)]
        metric: Option<String>,
    },
    #[command(flatten)]
    Edit(EditCommand),
    /// Import a `<tenant>.json` catalog document, or a directory of them (one version each).
    Import {
        /// Document file or directory.
        path: PathBuf,
    },
    /// Print a catalog version's document (default: the latest) as JSON.
    Export {
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        version: Option<u64>,
        /// Write it to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// The subcommands that write a new catalog version.
#[derive(Subcommand, Debug)]
enum EditCommand {
    /// Accept an unknown field: as an alias of an existing field (--as), or as a new field;
    /// without --as/--type, as its proposal suggests.
    Accept {
        #[command(flatten)]
        t: TenantArg,
        /// Metric (canonical name or alias).
        #[arg(long)]
        metric: String,
        /// The field name as devices send it.
        #[arg(long)]
        field: String,
        /// An existing field it is an alias of, or the canonical name of the new field.
        #[arg(long = "as", value_name = "NAME")]
        as_: Option<String>,
        /// Type of a new field.
        #[arg(long = "type", value_enum, value_name = "TYPE")]
        ty: Option<TypeArg>,
    },
    /// Accept an unknown metric: as a new metric, or an alias of an existing one (--as);
    /// without --as, as its proposal suggests.
    AcceptMetric {
        #[command(flatten)]
        t: TenantArg,
        /// The metric name as devices send it.
        #[arg(long)]
        metric: String,
        /// An existing metric it is an alias of, or the canonical name of the new metric.
        #[arg(long = "as", value_name = "NAME")]
        as_: Option<String>,
    },
    /// Add an alias to a metric, or to one of its fields (--field).
    Alias {
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        metric: String,
        #[arg(long)]
        field: Option<String>,
        #[arg(long)]
        alias: String,
    },
    /// Rename a metric, or one of its fields (--field); the old name becomes the first alias.
    Rename {
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        metric: String,
        #[arg(long)]
        field: Option<String>,
        /// The new canonical name.
        #[arg(long)]
        to: String,
    },
    /// Hide a field: its values are no longer written to new output.
    Hide {
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        metric: String,
        #[arg(long)]
        field: String,
    },
    /// Make a hidden field visible again.
    Unhide {
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        metric: String,
        #[arg(long)]
        field: String,
    },
    /// Declare another type for a field.
    SetType {
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        metric: String,
        #[arg(long)]
        field: String,
        #[arg(long = "type", value_enum, value_name = "TYPE")]
        ty: TypeArg,
    },
}

/// Field types as the command line spells them.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum TypeArg {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    String,
    Timestamp,
}

impl From<TypeArg> for FieldType {
    fn from(t: TypeArg) -> Self {
        match t {
            TypeArg::Boolean => FieldType::Boolean,
            TypeArg::Int => FieldType::Int,
            TypeArg::Long => FieldType::Long,
            TypeArg::Float => FieldType::Float,
            TypeArg::Double => FieldType::Double,
            TypeArg::String => FieldType::String,
            TypeArg::Timestamp => FieldType::Timestamp,
        }
    }
}

/// Runs one `schema` subcommand.
pub async fn run(a: SchemaArgs) -> Result<i32> {
    let json = a.common.json;
    let (lake, opts) = lake_url(&a.common)?;
    let existing = || Location::parse_existing_with(&lake, &opts);
    let writable = || Location::parse_with(&lake, &opts);
    match a.command {
        SchemaCommand::Show { t, metric, version } => {
            let op = SchemaOp::new(&existing()?, &t.tenant);
            let report = op.show(metric.as_deref(), version).await?;
            print_or_json(json, &report, show_text)
        }
        SchemaCommand::History { t } => {
            let op = SchemaOp::new(&existing()?, &t.tenant);
            print_or_json(json, &op.history().await?, history_text)
        }
        SchemaCommand::Proposals { t, metric } => {
            let op = SchemaOp::new(&existing()?, &t.tenant);
            let report = op.proposals(metric.as_deref()).await?;
            print_or_json(json, &report, proposals::text)
        }
        SchemaCommand::Import { path } => {
            let report = import_path(&writable()?, &path).await?;
            print_or_json(json, &report, import_text)
        }
        SchemaCommand::Export { t, version, out } => {
            let op = SchemaOp::new(&existing()?, &t.tenant);
            export(&op.export(version).await?, out.as_deref())
        }
        SchemaCommand::Edit(edit) => {
            let (tenant, edit) = schema_edit(edit);
            let op = SchemaOp::new(&writable()?, &tenant);
            print_or_json(json, &op.edit(edit).await?, EditReport::summary)
        }
    }
}

/// The lake (`--lake`, else the job file's) and the storage settings (the job file's
/// `[storage]` under the flags).
fn lake_url(c: &Common) -> Result<(String, StorageOptions)> {
    let (file, opts) = c.storage.with_job(c.job.as_deref())?;
    let lake = match &c.lake {
        Some(lake) => lake.clone(),
        None => file
            .compact
            .and_then(|c| c.lake)
            .context("--lake is required (flag or job file)")?,
    };
    Ok((lake, opts))
}

/// The library edit of an edit subcommand, with its tenant.
fn schema_edit(cmd: EditCommand) -> (String, SchemaEdit) {
    use EditCommand as C;
    match cmd {
        C::Accept {
            t,
            metric,
            field,
            as_,
            ty,
        } => (
            t.tenant,
            SchemaEdit::AcceptField {
                metric,
                field,
                as_,
                ty: ty.map(Into::into),
            },
        ),
        C::AcceptMetric { t, metric, as_ } => {
            (t.tenant, SchemaEdit::AcceptMetric { name: metric, as_ })
        }
        C::Alias {
            t,
            metric,
            field,
            alias,
        } => (
            t.tenant,
            SchemaEdit::Alias {
                metric,
                field,
                alias,
            },
        ),
        C::Rename {
            t,
            metric,
            field,
            to,
        } => (t.tenant, SchemaEdit::Rename { metric, field, to }),
        C::Hide { t, metric, field } => (t.tenant, SchemaEdit::Hide { metric, field }),
        C::Unhide { t, metric, field } => (t.tenant, SchemaEdit::Unhide { metric, field }),
        C::SetType {
            t,
            metric,
            field,
            ty,
        } => (
            t.tenant,
            SchemaEdit::SetType {
                metric,
                field,
                ty: ty.into(),
            },
        ),
    }
}

fn print_or_json<T: Serialize>(json: bool, report: &T, text: impl Fn(&T) -> String) -> Result<i32> {
    match json {
        true => println!("{}", serde_json::to_string_pretty(report)?),
        false => println!("{}", text(report).trim_end()),
    }
    Ok(0)
}

fn show_text(r: &ShowReport) -> String {
    let Some(version) = r.version else {
        return format!("tenant {}: no catalog version yet", r.tenant);
    };
    let head = format!(
        "tenant {}: catalog version {version}, {} ({})\n",
        r.tenant,
        r.created.as_deref().unwrap_or_default(),
        r.change.as_deref().unwrap_or_default()
    );
    head + &table::render(
        &["METRIC", "FIELD", "TYPE", "ALIASES", "HIDDEN"],
        &show_rows(&r.catalog),
    )
}

/// One row per metric (its aliases), then one per field in document order.
fn show_rows(doc: &TenantDoc) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (name, m) in &doc.metrics {
        rows.push(vec![
            name.clone(),
            String::new(),
            String::new(),
            m.aliases.join(", "),
            String::new(),
        ]);
        for (field, f) in &m.fields.0 {
            let hidden = m.hidden.contains(field);
            rows.push(vec![
                name.clone(),
                field.clone(),
                f.ty.name().to_string(),
                f.aliases.join(", "),
                if hidden { "yes" } else { "no" }.to_string(),
            ]);
        }
    }
    rows
}

fn history_text(r: &HistoryReport) -> String {
    if r.versions.is_empty() {
        return format!("tenant {}: no catalog version yet", r.tenant);
    }
    let rows: Vec<Vec<String>> = r
        .versions
        .iter()
        .map(|v| vec![v.version.to_string(), v.created.clone(), v.change.clone()])
        .collect();
    format!("tenant {}\n", r.tenant) + &table::render(&["VERSION", "CREATED", "CHANGE"], &rows)
}

fn import_text(r: &ImportReport) -> String {
    let written = r.written.iter().map(EditReport::summary);
    let unchanged = r.unchanged.iter().map(|u| {
        format!(
            "tenant {}: unchanged (catalog version {} already holds this document)",
            u.tenant, u.version
        )
    });
    written.chain(unchanged).collect::<Vec<_>>().join("\n")
}

/// The document on stdout, or into `out` with a line saying which version it is.
fn export(v: &CatalogVersion, out: Option<&Path>) -> Result<i32> {
    let text = serde_json::to_string_pretty(&v.catalog)? + "\n";
    match out {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "tenant {}: catalog version {} exported to {}",
                v.catalog.tenant,
                v.version,
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_lists_metrics_then_fields() {
        let doc: TenantDoc = serde_json::from_str(
            r#"{"tenant":"t","metrics":{"boiler":{"aliases":["m1"],
            "fields":{"temperature":{"type":"double","aliases":["temp","tmp"]},"pressure":{"type":"long"}},
            "hidden":["pressure"]}}}"#,
        )
        .unwrap();
        let r = ShowReport {
            tenant: "t".into(),
            version: Some(2),
            created: Some("2026-01-01T00:00:00.000Z".into()),
            change: Some("import".into()),
            catalog: doc,
        };
        assert_eq!(
            show_text(&r),
            "tenant t: catalog version 2, 2026-01-01T00:00:00.000Z (import)\n\
             METRIC  FIELD        TYPE    ALIASES    HIDDEN\n\
             boiler  -            -       m1         -\n\
             boiler  temperature  double  temp, tmp  no\n\
             boiler  pressure     long    -          yes\n"
        );
    }
}
