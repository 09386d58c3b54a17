//! The catalog the lake's partitions were built with (`_fineo/catalog-applied.json`): one
//! tenant document per tenant, written by the run that built them.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::catalog::TenantDoc;
use crate::error::{Error, Result};
use crate::storage::Location;

/// Where the applied catalog lives in the lake.
pub const APPLIED_PATH: &str = "_fineo/catalog-applied.json";

/// Tenant documents by tenant id.
pub type Applied = BTreeMap<String, TenantDoc>;

/// The applied catalog (empty when no run applied one yet).
pub async fn load(lake: &Location) -> Result<Applied> {
    match lake.get_opt(APPLIED_PATH).await? {
        Some(b) => serde_json::from_slice(&b).map_err(|e| Error::metadata(APPLIED_PATH, e)),
        None => Ok(BTreeMap::new()),
    }
}

/// The document's bytes as a run stages them.
pub fn to_bytes(applied: &Applied) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(applied).expect("catalog json"))
}
