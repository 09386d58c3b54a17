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
