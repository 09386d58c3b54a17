//! Operations: one per command, each a builder that plans, executes and returns a report.

pub mod backup;
pub mod compact;
pub mod diff;
pub mod generate;
pub mod ingest;
pub mod options;
pub mod replay;
pub mod restore;
pub mod schema;

pub use backup::Backup;
pub use compact::Compact;
pub use diff::Diff;
pub use generate::Generate;
pub use ingest::Ingest;
pub use options::{CommonOptions, PipelineOptions, Selection};
pub use replay::Replay;
pub use restore::Restore;
pub use schema::SchemaOp;
