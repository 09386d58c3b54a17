//! `restore --list`: the bundles a backup location holds, per tenant-day and version, with
//! what each manifest says (records, metrics, bytes), so an operator picks `--as-of` knowingly.

use serde::{Deserialize, Serialize};

use crate::bundle::{self, Manifest, MANIFEST};
use crate::error::Result;
use crate::ops::backup::Selection;
use crate::storage::Location;

/// One bundle (or interrupted bundle directory) of a backup location.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BundleInfo {
    pub bundle: String,
    pub tenant: String,
    pub date: String,
    pub version: u64,
    /// Whether it has a manifest (an interrupted backup has none).
    pub complete: bool,
    /// The newest complete bundle of its tenant-day.
    pub latest: bool,
    pub records: Option<u64>,
    pub metrics: Option<u64>,
    pub bytes: u64,
    /// Why the manifest could not be read (`backup verify` says more).
    pub problem: Option<String>,
}

/// Every bundle of the selected tenant-days, in (tenant, date, version) order.
pub async fn list(from: &Location, selection: &Selection) -> Result<Vec<BundleInfo>> {
    let set = bundle::list_bundles(from, &selection.tenants).await?;
    let mut out = Vec::new();
    for (id, files) in &set.files {
        if !selection.takes_date(&id.tenant, &id.date) {
            continue;
        }
        let complete = files.contains_key(MANIFEST);
        let mut info = BundleInfo {
            bundle: id.dir(),
            tenant: id.tenant.clone(),
            date: id.date.clone(),
            version: id.version,
            complete,
            latest: set.latest(&id.tenant, &id.date, None).as_ref() == Some(id),
            records: None,
            metrics: None,
            bytes: files.values().sum(),
            problem: None,
        };
        if complete {
            let bytes = from.get_opt(&id.file(MANIFEST)).await?.unwrap_or_default();
            match serde_json::from_slice::<Manifest>(&bytes) {
                Ok(m) => {
                    info.records = Some(m.records);
                    info.metrics = Some(m.metrics.len() as u64);
                }
                Err(e) => info.problem = Some(format!("manifest does not parse: {e}")),
            }
        } else {
            info.problem = Some("no manifest: an interrupted or running backup".into());
        }
        out.push(info);
    }
    Ok(out)
}
