//! Writing partitions: typed Parquet for the Delta tables, untyped JSON Lines, and the
//! partition index that remembers where every record came from.

pub mod index;
pub mod typed;
pub mod untyped;
