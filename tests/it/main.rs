//! The one integration-test binary: every module below drives the real binary or the library
//! against real files, and checks the lake with other engines (deltalake, DuckDB, json).

mod harness;

mod append;
mod avro;
mod backup;
mod big_partition;
mod cli;
mod corpus;
mod delta_log;
mod deploy;
mod fanout;
mod fault_store;
mod faults;
mod fixtures;
mod generated;
mod incremental;
mod ingest;
mod listing;
mod races;
mod replay;
mod replay_faults;
mod restore_faults;
mod retype;
mod schema;
mod security;
mod storage;
