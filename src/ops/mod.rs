//! Operations: one per command, each a builder that plans, executes and returns a report.

pub mod compact;
pub mod generate;
pub mod schema;

pub use compact::Compact;
pub use generate::Generate;
pub use schema::SchemaOp;
