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
pub mod fed;
pub mod ledger;
pub mod log;
pub mod publish;
pub mod shards;

mod discard;

pub use discard::discard;
pub use ledger::Ledger;
pub use log::{CommitRecord, LakeLog, LedgerEntry};
pub use publish::publish;

use crate::storage::Location;

/// How one commit attempt of a run ended.
pub enum Attempt {
    /// Committed (or nothing to commit).
    Done,
    /// Another run took `version` first.
    LostRace { version: u64, other: String },
}

/// The latest version of `lake`, with an interrupted publish of it rolled forward first: the
/// version, and whether it had to be.
pub async fn latest_published(lake: &Location) -> crate::Result<(u64, bool)> {
    let log = LakeLog::new(lake);
    let base = log.latest().await?;
    if log.is_published(base).await? {
        return Ok((base, false));
    }
    tracing::info!(version = base, "rolling forward an interrupted publish");
    publish(lake, &log.read(base).await?).await?;
    Ok((base, true))
}

/// The atomic step of a run: creates `record` as its lake version. When another run took the
/// version first, returns the lost race and discards this run's files, but the typed files
/// `keep` names (a failure to read the winner is returned, never guessed at).
pub async fn create(
    lake: &Location,
    record: &CommitRecord,
    keep: impl Fn(&str) -> bool,
) -> crate::Result<Option<Attempt>> {
    let log = LakeLog::new(lake);
    if log.create(record).await? {
        return Ok(None);
    }
    let other = log.read(record.version).await?.run_id;
    if other != record.tag {
        discard(lake, record, keep).await;
    }
    Ok(Some(Attempt::LostRace {
        version: record.version,
        other,
    }))
}

/// After attempt number `attempts` lost the race for `version` to run `other`: an error once
/// `max` attempts were made, else a warning that the `what` plans again.
pub fn after_lost_race(
    attempts: u32,
    max: u32,
    version: u64,
    other: String,
    what: &str,
) -> crate::Result<()> {
    if attempts >= max {
        return Err(crate::Error::Conflict {
            version,
            other_run: other,
            reason: format!("gave up after {attempts} attempts"),
        });
    }
    tracing::warn!(version, other_run = %other, "another run committed first; planning the {what} again");
    Ok(())
}
