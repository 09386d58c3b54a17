//! Backup bundles (SPEC 11): one tenant-day of the lake as standalone, immutable, checksummed
//! files under `<B>/tenant=<t>/date=<D>/<lake version>/`, described by `manifest.json`.
//!
//! A bundle holds, per metric of the day, the partition index (every record as sent, with its
//! provenance), the typed Parquet file and the untyped JSON Lines (gzip), exactly as the lake
//! has them, plus the tenant catalog they were built with. Paths inside are relative, so a
//! bundle restores anywhere. The manifest is written last (a conditional create): a directory
//! without one is an interrupted backup, never a bundle.

pub mod layout;
pub mod manifest;
pub mod verify;

pub use layout::{list_bundles, BundleId, BundleSet};
pub use manifest::{
    sha256_hex, CatalogRef, FileEntry, Manifest, MetricEntry, TypedEntry, FORMAT, FORMAT_VERSION,
};
pub use verify::{verify_bundle, Damage, KeptFiles, Verified, VerifyDepth};

/// The manifest's name inside a bundle.
pub const MANIFEST: &str = "manifest.json";

/// The catalog file's name inside a bundle.
pub const CATALOG: &str = "catalog.json";
