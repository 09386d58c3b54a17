//! Which bundles a restore takes (per selected tenant-day the latest, or the latest at or below
//! `--as-of`), every one verified before anything is written: one damaged file refuses the
//! whole restore, naming the bundle and the file.

use std::collections::BTreeMap;

use futures::StreamExt;

use crate::bundle::{self, verify_bundle, BundleId, BundleSet, Damage, Verified, VerifyDepth};
use crate::error::{Error, Result};
use crate::ops::backup::Selection;
use crate::progress::Progress;
use crate::storage::Location;

/// The bundles chosen and verified.
pub struct Chosen {
    pub bundles: Vec<Verified>,
    /// Bytes read to verify them.
    pub bytes: u64,
    /// Selected tenant-days that have bundles, but none at or below `as_of`.
    pub too_new: Vec<String>,
}

/// Picks and verifies the bundles of `selection` in `from`, keeping the checked bytes of the
/// first bundles that fit in `keep_bytes` (the others are read again when copied).
pub async fn choose(
    from: &Location,
    selection: &Selection,
    as_of: Option<u64>,
    concurrency: usize,
    keep_bytes: u64,
    progress: &dyn Progress,
) -> Result<Chosen> {
    let set = bundle::list_bundles(from, &selection.tenants).await?;
    let (ids, too_new) = pick(&set, selection, as_of);
    let mut damage = unfinished(&set, selection, as_of, &ids);
    progress.start("verify", Some(ids.len() as u64));
    let set = &set;
    let mut room = keep_bytes;
    let ids: Vec<(BundleId, bool)> = ids
        .into_iter()
        .map(|id| {
            let size: u64 = set.files.get(&id).map_or(0, |f| f.values().sum());
            let keep = size <= room;
            room -= if keep { size } else { 0 };
            (id, keep)
        })
        .collect();
    let mut checks = futures::stream::iter(ids)
        .map(|(id, keep)| async move {
            let listed = set.files.get(&id).cloned().unwrap_or_default();
            let bytes: u64 = listed.values().sum();
            verify_bundle(from, &id, &listed, VerifyDepth::Checksums, keep)
                .await
                .map(|r| (r, bytes))
        })
        .buffer_unordered(concurrency.max(1));
    let (mut bundles, mut total) = (Vec::new(), 0u64);
    while let Some(done) = checks.next().await {
        let (result, bytes) = done?;
        progress.advance(1, bytes);
        total += bytes;
        match result {
            Ok(v) => bundles.push(v),
            Err(d) => damage.extend(d),
        }
    }
    drop(checks);
    progress.finish();
    if !damage.is_empty() {
        damage.sort_by(|a, b| (&a.bundle, &a.file).cmp(&(&b.bundle, &b.file)));
        let list: Vec<String> = damage.iter().map(|d| format!("  {d}")).collect();
        return Err(Error::DamagedBundles {
            count: damage.len(),
            list: list.join("\n"),
        });
    }
    bundles.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Chosen {
        bundles,
        bytes: total,
        too_new,
    })
}

/// Per selected tenant-day, the bundle to take; and the tenant-days with only newer ones.
fn pick(
    set: &BundleSet,
    selection: &Selection,
    as_of: Option<u64>,
) -> (Vec<bundle::BundleId>, Vec<String>) {
    let mut ids = Vec::new();
    let mut too_new = Vec::new();
    let days: BTreeMap<_, _> = set
        .complete
        .keys()
        .filter(|(t, d)| selection.takes_date(t, d))
        .map(|k| (k.clone(), ()))
        .collect();
    for (t, d) in days.keys() {
        match set.latest(t, d, as_of) {
            Some(id) => ids.push(id),
            None => too_new.push(format!("tenant={t}/date={d}")),
        }
    }
    (ids, too_new)
}

/// A selected tenant-day whose newest bundle directory (at or below `as_of`) has no manifest
/// must not silently fall back to an older bundle (or to nothing): each is damage to refuse.
fn unfinished(
    set: &BundleSet,
    selection: &Selection,
    as_of: Option<u64>,
    chosen: &[bundle::BundleId],
) -> Vec<Damage> {
    set.incomplete
        .iter()
        .filter(|id| selection.takes_date(&id.tenant, &id.date))
        .filter(|id| as_of.is_none_or(|a| id.version <= a))
        .filter(|id| {
            !chosen
                .iter()
                .any(|c| c.tenant == id.tenant && c.date == id.date && c.version > id.version)
        })
        .map(|id| {
            let older = chosen
                .iter()
                .find(|c| c.tenant == id.tenant && c.date == id.date)
                .map(|c| format!("take the older bundle with --as-of {}", c.version))
                .unwrap_or_else(|| "there is no older bundle of this day".into());
            Damage {
                bundle: id.dir(),
                file: Some(crate::bundle::MANIFEST.into()),
                problem: format!(
                    "missing in the newest bundle of this day (an interrupted or running backup, or a damaged bundle): run the backup again, or {older}"
                ),
            }
        })
        .collect()
}
