//! The library's one error type: every variant names the object, position or tenant it is about.

use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop an operation. Bad *records* are not errors: they are quarantined
/// (see [`crate::quarantine`]); these are the failures that end a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A location string that is not a usable URL or path.
    #[error("invalid location {location:?}: {reason}")]
    InvalidLocation { location: String, reason: String },

    /// A storage setting (`--sse`, `--storage-option`, a job file's `[storage]`, or the AWS
    /// environment) that is unknown or inconsistent. Names the key, never its value (values
    /// may be credentials).
    #[error("storage option {key}: {reason}")]
    StorageOption { key: String, reason: String },

    /// An object store request failed.
    #[error("storage error on {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: object_store::Error,
    },

    /// A Delta Lake operation failed for a table.
    #[error("delta table {table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },

    /// A catalog document is malformed or violates the catalog rules.
    #[error("catalog for tenant {tenant:?}: {reason}")]
    Catalog { tenant: String, reason: String },

    /// Concurrent editors kept taking the next catalog version; the edit was not written.
    #[error("catalog for tenant {tenant:?}: gave up after {attempts} attempts, each lost to a concurrent edit (latest version {latest}); run the edit again")]
    CatalogConflict {
        tenant: String,
        attempts: u32,
        latest: u64,
    },

    /// A lake metadata file (commit log, ledger, index) could not be read back.
    #[error("lake metadata {path}: {reason}")]
    Metadata { path: String, reason: String },

    /// Parquet or Arrow encoding/decoding failed for a lake file.
    #[error("data file {path}: {reason}")]
    DataFile { path: String, reason: String },

    /// A fan-out run's plan was made on a lake version that is no longer the latest.
    #[error("fan-out run {run:?} was planned on lake version {base}, but the lake is at version {latest} now (another run committed): nothing was committed; plan it again with `fineo-batch fanout plan`")]
    StalePlan { run: String, base: u64, latest: u64 },

    /// A fan-out step found a step it depends on unfinished.
    #[error("fan-out run {run:?}: {missing} has not finished; run it (again) first")]
    UnitMissing { run: String, missing: String },

    /// Another run committed to the lake first and retries were exhausted.
    #[error("concurrent commit: lake version {version} was taken by run {other_run}; {reason}")]
    Conflict {
        version: u64,
        other_run: String,
        reason: String,
    },

    /// A job file could not be parsed or holds a bad value.
    #[error("job file {path}: {reason}")]
    JobFile { path: PathBuf, reason: String },

    /// Invalid options given to an operation.
    #[error("invalid option: {0}")]
    InvalidOption(String),

    /// The conservation check failed: records were lost or invented. Always a bug.
    #[error("conservation check failed: {0}")]
    Conservation(String),

    /// Local IO (spill files, temp dirs).
    #[error("local io on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// The lake's latest version was committed but its publish did not finish.
    #[error("lake version {version} is committed but not yet published (an interrupted run); run `fineo-batch compact` on the lake (it rolls the publish forward) and try again")]
    Unpublished { version: u64 },

    /// Selected bundles failed their checks; nothing was written.
    #[error("refusing to restore: {count} problem(s) in the selected bundles, nothing was written:\n{list}\nrun `fineo-batch backup verify --from <backup> --deep` for a full check; pick older bundles with --as-of, or leave the damaged tenant-days out with --tenant/--since/--until")]
    DamagedBundles { count: usize, list: String },

    /// The days a restore replaces hold records of archive objects processed after the bundles
    /// were taken, and no `--newer` policy says what becomes of them.
    #[error("refusing to restore: the restored days hold {records} records of {objects} archive objects processed after the bundles were taken ({examples}); nothing was written. Say what becomes of them: --newer keep (merged on top of the bundles: nothing lost), --newer requeue (replaced now; the next compact reads those objects again), or --newer drop (replaced: gone from the lake unless replayed). `--dry-run` shows them per day")]
    NewerRecords {
        records: u64,
        objects: usize,
        examples: String,
    },

    /// Archived objects a replay must read again are gone from the archive, or changed since
    /// they were compacted; nothing was replaced.
    #[error(
        "replay stopped, nothing was replaced: {}{}",
        gone_list("gone from the archive", missing),
        gone_list("changed since they were compacted", changed)
    )]
    ArchiveGone {
        missing: Vec<String>,
        changed: Vec<String>,
    },

    /// A worker task panicked or was cancelled.
    #[error("internal task failure: {0}")]
    Task(String),
}

impl Error {
    /// Wraps an object store error with the path it concerns.
    pub fn store(path: impl ToString, source: object_store::Error) -> Self {
        Error::Store {
            path: path.to_string(),
            source,
        }
    }

    /// Wraps a Delta error with its table location.
    pub fn delta(table: impl ToString, source: deltalake::DeltaTableError) -> Self {
        Error::Delta {
            table: table.to_string(),
            source: Box::new(source),
        }
    }

    /// A lake metadata problem.
    pub fn metadata(path: impl ToString, reason: impl ToString) -> Self {
        Error::Metadata {
            path: path.to_string(),
            reason: reason.to_string(),
        }
    }

    /// A data file problem.
    pub fn data_file(path: impl ToString, reason: impl ToString) -> Self {
        Error::DataFile {
            path: path.to_string(),
            reason: reason.to_string(),
        }
    }

    /// A catalog problem of one tenant.
    pub fn catalog(tenant: impl ToString, reason: impl ToString) -> Self {
        Error::Catalog {
            tenant: tenant.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Local IO problem.
    pub fn io(path: impl ToString, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }
}

/// `"<what>: a, b (and 3 more); "` for a non-empty list.
fn gone_list(what: &str, keys: &[String]) -> String {
    match keys.len() {
        0 => String::new(),
        n => {
            let shown: Vec<&str> = keys.iter().take(5).map(String::as_str).collect();
            let more = if n > 5 {
                format!(" (and {} more)", n - 5)
            } else {
                String::new()
            };
            format!("{n} archived objects {what}: {}{more}; ", shown.join(", "))
        }
    }
}
