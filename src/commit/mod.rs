//! Commit: the lake log (the atomic step of a run), the ledger of processed objects, and
//! publishing a committed version to the Delta tables and untyped files.
//!
//! A run moves through `Planned -> Written -> Committed -> Published`. Files written before
//! the commit are unreferenced (typed files are not in any Delta log yet; untyped and index
//! files sit in staging), so a crash before the commit changes nothing a reader sees, and the
//! rerun writes the same names again. A crash after the commit is rolled forward by the next
//! run, which publishes the committed version before it plans anything.

pub mod applied;
pub mod delta;
pub mod ledger;
pub mod log;
pub mod publish;

pub use ledger::Ledger;
pub use log::{CommitRecord, LakeLog, LedgerEntry};
pub use publish::publish;
