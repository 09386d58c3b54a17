//! fineo-batch: the batch half of the Fineo IoT platform. It turns the staged S3 archive
//! (Firehose deliveries of device events) into a deduplicated analytics lake.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! sources   list staged objects, arrival order            (src/sources)
//!   -> decode    gzip / Avro / JSON Lines -> raw records  (src/decode)
//!   -> resolve   admit: tenant, metric, time -> partition (src/resolve, src/catalog)
//!   -> dedup     buckets per partition, merge with lake   (src/dedup)
//!                (fields resolved here: aliases, types, untyped rest; new and stored alike;
//!                a partition larger than its memory share: sorted runs on disk, k-way merge)
//!   -> write     typed Parquet, untyped JSONL, index      (src/write)
//!                (streamed from the winners in order: in memory or to local files)
//!   -> commit    lake log, ledger, Delta publish          (src/commit)
//! ```
//!
//! The index keeps every record as sent, so a catalog change re-types stored records through
//! the same resolution ([`schema`]: proposals, catalog versions and edits). Operations (one
//! per command) live in [`ops`]; bad input goes to [`quarantine`]; every run ends with a
//! [`report`]. Locations are URLs handled by `object_store` ([`storage`]). Backups are
//! standalone tenant-day [`bundle`]s, restored through the same commit path.

pub mod bundle;
pub mod catalog;
pub mod commit;
pub mod decode;
pub mod dedup;
pub mod error;
pub mod jobfile;
pub mod model;
pub mod names;
pub mod ops;
pub mod progress;
pub mod quarantine;
pub mod report;
pub mod resolve;
pub mod schema;
pub mod sources;
pub mod storage;
pub mod write;

pub use error::{Error, Result};
pub use ops::{Backup, Compact, Generate, Restore};
