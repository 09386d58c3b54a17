//! Job files (SPEC 14): TOML naming the locations and options of a scheduled job; command-line
//! flags override them.

use std::path::Path;

use serde::Deserialize;

use crate::dedup::Keep;
use crate::error::{Error, Result};

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
    /// Schedule and deployment hints (read by the AWS artifacts, checked here).
    #[serde(default)]
    pub schedule: Option<Schedule>,
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
        let job: JobFile = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        if let Some(s) = &job.schedule {
            if !(s.expression.starts_with("cron(") || s.expression.starts_with("rate(")) {
                return Err(err(format!(
                    "schedule expression {:?} is not cron(...) or rate(...)",
                    s.expression
                )));
            }
            for step in &s.steps {
                if !["compact", "backup"].contains(&step.as_str()) {
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
        Ok(job)
    }
}
