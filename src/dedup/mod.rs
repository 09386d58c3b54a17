//! Deduplication: records wait in per-partition buckets (spilled past a budget), then each
//! partition is merged with what the lake already holds, in memory or, when larger than its
//! share of the budget, through sorted runs on disk.

pub mod buckets;
pub mod codec;
pub mod merge;
pub mod runs;

pub use buckets::{Bucket, Buckets, LocalBuckets};
pub use merge::{Keep, MergeStats};
