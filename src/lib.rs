//! fineo-batch: the batch half of the Fineo IoT platform. It turns the staged S3 archive
//! (Firehose deliveries of device events) into a deduplicated analytics lake.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! sources   list staged objects, arrival order            (src/sources)
//!   -> decode    gzip / Avro / JSON Lines -> raw records  (src/decode)
//!   -> resolve   catalog: aliases, types, untyped rest    (src/resolve, src/catalog)
//!   -> dedup     buckets per partition, merge with lake   (src/dedup)
//!   -> write     typed Parquet, untyped JSONL, index      (src/write)
//!   -> commit    lake log, ledger, Delta publish          (src/commit)
//! ```
//!
//! Operations (one per command) live in [`ops`]; bad input goes to [`quarantine`]; every run
//! ends with a [`report`]. Locations are URLs handled by `object_store` ([`storage`]).

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
pub use ops::{Compact, Generate};
