//! Operations: one per command, each a builder that plans, executes and returns a report.

pub mod backup;
pub mod compact;
pub mod generate;
pub mod options;
pub mod restore;
pub mod schema;

pub use backup::Backup;
pub use compact::Compact;
pub use generate::Generate;
pub use options::{CommonOptions, Selection};
pub use restore::Restore;
pub use schema::SchemaOp;
