//! Job files (SPEC 14): TOML naming the locations and options of a scheduled job; command-line
//! flags override them.

use std::path::Path;

use serde::Deserialize;

use crate::dedup::Keep;
use crate::error::{Error, Result};
use crate::storage::{Sse, StorageOptions};

/// A job file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// Free text for operators.
    #[serde(default)]
    pub description: Option<String>,
    /// Settings of `compact`.
    #[serde(default)]
    pub compact: Option<CompactJob>,
    /// Settings of `backup`.
    #[serde(default)]
    pub backup: Option<BackupJob>,
    /// Settings of `replay`.
    #[serde(default)]
    pub replay: Option<ReplayJob>,
    /// Settings of `ingest`.
    #[serde(default)]
    pub ingest: Option<IngestJob>,
    /// Storage settings of every location the job's commands use.
    #[serde(default)]
    pub storage: Option<StorageJob>,
    /// Schedule and deployment hints (read by the AWS artifacts, checked here).
    #[serde(default)]
    pub schedule: Option<Schedule>,
}

/// `[storage]` table of a job file: server-side encryption and object_store settings of every
/// location (SPEC 15). Credentials do not belong here: they come from the environment or the
/// task role.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageJob {
    /// `aes256`, `aws:kms` or `aws:kms:dsse`.
    pub sse: Option<Sse>,
    /// KMS key id, ARN or `alias/...` (with `aws:kms` / `aws:kms:dsse`).
    pub sse_kms_key_id: Option<String>,
    /// object_store S3 configuration keys (`aws_endpoint`, `aws_region`, ...).
    #[serde(default)]
    pub options: StorageOptions,
}

impl StorageJob {
    /// The settings: `options`, then `sse` and `sse_kms_key_id` over them.
    pub fn storage_options(&self) -> StorageOptions {
        let mut o = self.options.clone();
        if let Some(sse) = self.sse {
            o = o.with_sse(sse);
        }
        if let Some(id) = &self.sse_kms_key_id {
            o = o.with_sse_kms_key_id(id.clone());
        }
        o
    }
}

/// `[compact]` table of a job file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactJob {
    pub staged: Option<String>,
    pub lake: Option<String>,
    pub catalog: Option<String>,
    pub keep: Option<Keep>,
    pub report: Option<String>,
    pub fail_on_error: Option<bool>,
    /// Bytes of buffered records before spilling to local disk.
    pub memory_budget_mb: Option<usize>,
    pub fetch_concurrency: Option<usize>,
    /// List the whole staged prefix, not from the watermark (a reconcile job).
    pub reconcile: Option<bool>,
    /// Hours before the watermark's hour where a listing starts.
    pub lookback_hours: Option<u32>,
}

/// `[backup]` table of a job file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupJob {
    /// The lake to back up (default: `[compact] lake`).
    pub lake: Option<String>,
    /// The backup location.
    pub to: Option<String>,
    /// Only these tenants (default: all).
    #[serde(default)]
    pub tenants: Vec<String>,
    pub report: Option<String>,
    /// Tenant-days read and written at once.
    pub concurrency: Option<usize>,
}

/// `[replay]` table of a job file: where a replay reads and writes (the window is given on
/// the command line).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayJob {
    pub staged: Option<String>,
    pub lake: Option<String>,
    /// Write the rebuilt partitions into this lake instead (a dark launch).
    pub to: Option<String>,
    pub catalog: Option<String>,
    pub report: Option<String>,
    pub memory_budget_mb: Option<usize>,
    pub fetch_concurrency: Option<usize>,
}

/// `[ingest]` table of a job file: how a customer's export files map to staged records
/// (`ingest --dry-run --write-job FILE` writes one from what it detected).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestJob {
    /// The file or prefix to ingest.
    pub source: Option<String>,
    pub tenant: Option<String>,
    pub staged: Option<String>,
    pub metric: Option<String>,
    pub metric_column: Option<String>,
    pub timestamp_column: Option<String>,
    pub timestamp_format: Option<String>,
    pub timezone: Option<String>,
    pub ambiguous: Option<String>,
    pub nonexistent: Option<String>,
    /// Source column -> field name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub rename: std::collections::BTreeMap<String, String>,
    /// `csv`, `jsonl`, `avro` or `parquet` (detected when absent).
    pub format: Option<String>,
    /// CSV delimiter, one character.
    pub delimiter: Option<String>,
    pub max_bad_rows: Option<u64>,
}

/// `[schedule]` table of a job file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// EventBridge schedule expression, e.g. `cron(5 * * * ? *)`.
    pub expression: String,
    /// Commands run in order by the state machine.
    #[serde(default)]
    pub steps: Vec<String>,
}

impl JobFile {
    /// Reads and validates a job file.
    pub fn load(path: &Path) -> Result<JobFile> {
        let err = |reason: String| Error::JobFile {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let job: JobFile = toml::from_str(&text).map_err(|e| err(toml_error(&text, &e)))?;
        if let Some(s) = &job.schedule {
            if !(s.expression.starts_with("cron(") || s.expression.starts_with("rate(")) {
                return Err(err(format!(
                    "schedule expression {:?} is not cron(...) or rate(...)",
                    s.expression
                )));
            }
            for step in &s.steps {
                if !["compact", "backup", "replay", "ingest"].contains(&step.as_str()) {
                    return Err(err(format!("unknown step {step:?}")));
                }
            }
        }
        if let Some(c) = &job.compact {
            if c.memory_budget_mb == Some(0) || c.fetch_concurrency == Some(0) {
                return Err(err(
                    "memory_budget_mb and fetch_concurrency must be positive".into(),
                ));
            }
        }
        if let Some(b) = &job.backup {
            if b.concurrency == Some(0) {
                return Err(err("[backup] concurrency must be positive".into()));
            }
            if let Some(t) = b.tenants.iter().find(|t| !crate::names::valid_tenant(t)) {
                return Err(err(format!("[backup] tenants: invalid tenant id {t:?}")));
            }
        }
        if let Some(st) = &job.storage {
            if st.sse_kms_key_id.is_some() && st.sse.is_some_and(|s| !s.uses_kms()) {
                return Err(err(
                    "[storage] sse_kms_key_id needs sse = \"aws:kms\" or \"aws:kms:dsse\"".into(),
                ));
            }
        }
        Ok(job)
    }
}

/// A TOML error as its message and position, without the quoted source line (which may hold
/// a credential someone put in the file).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("{} (line {line}, column {column})", e.message().trim_end())
        }
        None => e.message().trim_end().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<JobFile> {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        JobFile::load(f.path())
    }

    #[test]
    fn storage_table_gives_the_settings() {
        let job = load(
            "[storage]\nsse = \"aws:kms\"\nsse_kms_key_id = \"alias/lake\"\n\
             [storage.options]\nendpoint = \"http://127.0.0.1:9000\"\naws_region = \"eu-west-1\"\n",
        )
        .unwrap();
        let st = job.storage.unwrap();
        assert_eq!(st.sse, Some(Sse::Kms));
        assert_eq!(
            st.storage_options().iter().collect::<Vec<_>>(),
            [
                ("aws_endpoint", "http://127.0.0.1:9000"),
                ("aws_region", "eu-west-1"),
                ("aws_server_side_encryption", "aws:kms"),
                ("aws_sse_kms_key_id", "alias/lake"),
            ]
        );
    }

    #[test]
    fn bad_storage_tables_are_refused_without_showing_values() {
        let cases = [
            (
                "[storage]\nsse = \"kms\"\n",
                "unknown server-side encryption \"kms\": expected aes256, aws:kms or \
                 aws:kms:dsse (line 2, column 7)",
            ),
            (
                "[storage]\nsse = \"aes256\"\nsse_kms_key_id = \"alias/lake\"\n",
                "[storage] sse_kms_key_id needs sse = \"aws:kms\" or \"aws:kms:dsse\"",
            ),
            (
                "[storage]\noptions = { aws_secret_acess_key = \"s3cr3t-in-file\" }\n",
                "storage option aws_secret_acess_key: not an S3 storage option",
            ),
            (
                "[storage]\nsecret = \"s3cr3t-in-file\"\n",
                "unknown field `secret`",
            ),
        ];
        for (text, want) in cases {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
            assert!(!err.contains("s3cr3t-in-file"), "{err}");
        }
    }
}
