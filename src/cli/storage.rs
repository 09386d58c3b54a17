//! Storage flags of every command (`--sse`, `--sse-kms-key-id`, `--storage-option`), merged
//! over a job file's `[storage]` table into the library's `StorageOptions`.

use std::fmt;

use anyhow::Result;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use fineo_batch::jobfile::{JobFile, StorageJob};
use fineo_batch::storage::{Sse, StorageOptions};

use super::{redact, Usage};

/// Storage settings on the command line; they override the job file's `[storage]`.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct StorageArgs {
    /// Server-side encryption of every object written to S3: SSE-S3 (aes256), SSE-KMS
    /// (aws:kms) or DSSE-KMS (aws:kms:dsse).
    #[arg(
        long,
        global = true,
        value_name = "MODE",
        ignore_case = true,
        value_parser = PossibleValuesParser::new(["aes256", "aws:kms", "aws:kms:dsse"])
            .map(|s| s.parse::<Sse>().expect("a listed value"))
    )]
    sse: Option<Sse>,
    /// KMS key (id, ARN or alias/NAME) for --sse aws:kms or aws:kms:dsse.
    #[arg(long, global = true, value_name = "ID")]
    sse_kms_key_id: Option<String>,
    /// An object_store S3 setting for every location (aws_endpoint, aws_region, ...);
    /// repeatable.
    #[arg(
        long = "storage-option",
        global = true,
        value_name = "KEY=VALUE",
        value_parser = parse_assignment
    )]
    storage_option: Vec<Assignment>,
}

/// One `--storage-option KEY=VALUE`, split but not checked (a check failing inside clap would
/// print the whole argument, and the value may be a credential). `Debug` shows the key only.
#[derive(Clone)]
pub struct Assignment {
    key: String,
    value: Option<String>,
}

impl fmt::Debug for Assignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(_) => write!(f, "{}=<value>", self.key),
            None => f.write_str("<no '='>"),
        }
    }
}

fn parse_assignment(arg: &str) -> Result<Assignment, std::convert::Infallible> {
    Ok(match arg.split_once('=') {
        Some((key, value)) => Assignment {
            key: key.trim().to_string(),
            value: Some(value.to_string()),
        },
        None => Assignment {
            key: String::new(),
            value: None,
        },
    })
}

impl StorageArgs {
    /// The job file (empty without `--job`) and the storage settings from it and the flags.
    pub fn with_job(&self, job: Option<&std::path::Path>) -> Result<(JobFile, StorageOptions)> {
        let file = job.map(JobFile::load).transpose()?.unwrap_or_default();
        let opts = self.options(file.storage.as_ref())?;
        Ok((file, opts))
    }

    /// The settings of every location of the command: the job file's, then the flags'
    /// (`--storage-option`s, then `--sse` and `--sse-kms-key-id`), checked over the
    /// environment. Credential values among them are registered for redaction.
    pub fn options(&self, job: Option<&StorageJob>) -> Result<StorageOptions> {
        let mut o = job.map(StorageJob::storage_options).unwrap_or_default();
        for a in &self.storage_option {
            let Some(value) = &a.value else {
                return Err(Usage(
                    "--storage-option takes KEY=VALUE (an argument had no '=')".into(),
                )
                .into());
            };
            o = o.with_option(&a.key, value.clone())?;
        }
        if let Some(sse) = self.sse {
            o = o.with_sse(sse);
        }
        if let Some(id) = &self.sse_kms_key_id {
            o = o.with_sse_kms_key_id(id.clone());
        }
        redact::register(o.credentials());
        o.check()?;
        Ok(o)
    }
}
