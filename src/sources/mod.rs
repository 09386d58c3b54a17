//! Staged archive listing: every object below the staged prefix, in arrival order (Firehose
//! delivery time from the key, else last-modified; then key).

use chrono::{NaiveDate, TimeZone, Utc};
use object_store::ObjectMeta;

use crate::error::Result;
use crate::storage::Location;

/// One staged object to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedObject {
    /// Key relative to the staged prefix.
    pub key: String,
    /// The object's full path in its store, exactly as listed.
    pub path: object_store::path::Path,
    pub size: u64,
    pub etag: Option<String>,
    /// Delivery time: from the Firehose key, else the object's last-modified time.
    pub delivery_ms: i64,
}

/// Lists the staged prefix in arrival order; keys with a path segment starting with `_` or
/// `.` are bookkeeping (`_ingest/`, `_SUCCESS`, `.tmp`), not archive objects.
pub async fn list_staged(staged: &Location) -> Result<Vec<StagedObject>> {
    Ok(staged_objects(staged, staged.list("").await?))
}

/// Lists the staged objects whose keys sort after `offset` (see [`listing_offset`]).
pub async fn list_staged_after(staged: &Location, offset: &str) -> Result<Vec<StagedObject>> {
    Ok(staged_objects(staged, staged.list_after("", offset).await?))
}

/// Where a listing starts, given the greatest key read so far: `lookback_hours` before the
/// hour of its Firehose prefix (`YYYY/MM/DD/HH/`), so late deliveries into recent hours are
/// still found. `None` (list everything) when the key has no such prefix.
pub fn listing_offset(watermark: &str, lookback_hours: u32) -> Option<String> {
    let parts: Vec<&str> = watermark.splitn(5, '/').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if parts.len() < 5 || !parts.iter().zip([4, 2, 2, 2]).all(|(p, n)| digits(p, n)) {
        return None;
    }
    let n: Vec<u32> = parts[..4]
        .iter()
        .map(|p| p.parse().expect("digits"))
        .collect();
    let hour = NaiveDate::from_ymd_opt(n[0] as i32, n[1], n[2])?.and_hms_opt(n[3], 0, 0)?;
    let start = hour - chrono::Duration::hours(i64::from(lookback_hours));
    Some(start.format("%Y/%m/%d/%H").to_string())
}

fn staged_objects(staged: &Location, metas: Vec<ObjectMeta>) -> Vec<StagedObject> {
    let mut objects: Vec<StagedObject> = metas
        .iter()
        .map(|m| from_meta(staged, m))
        .filter(|o| {
            !o.key
                .split('/')
                .any(|s| s.starts_with('_') || s.starts_with('.'))
        })
        .collect();
    sort_arrival(&mut objects);
    objects
}

fn from_meta(staged: &Location, m: &ObjectMeta) -> StagedObject {
    let key = staged.relative(&m.location);
    let delivery_ms = firehose_time(&key).unwrap_or_else(|| m.last_modified.timestamp_millis());
    StagedObject {
        key,
        path: m.location.clone(),
        size: m.size,
        etag: m.e_tag.clone(),
        delivery_ms,
    }
}

/// Sorts objects into arrival order.
pub fn sort_arrival(objects: &mut [StagedObject]) {
    objects.sort_by(|a, b| {
        a.delivery_ms
            .cmp(&b.delivery_ms)
            .then_with(|| a.key.cmp(&b.key))
    });
}

/// The delivery time in a Firehose object name:
/// `<stream>-<version>-YYYY-MM-DD-HH-mm-ss-<uuid>[.ext]`.
pub fn firehose_time(key: &str) -> Option<i64> {
    let name = key.rsplit('/').next()?;
    let tokens: Vec<&str> = name.split('-').collect();
    let lens = [4, 2, 2, 2, 2, 2];
    (1..tokens.len().saturating_sub(6)).find_map(|i| {
        let w = &tokens[i..i + 6];
        let fits = w
            .iter()
            .zip(lens)
            .all(|(t, n)| t.len() == n && t.bytes().all(|b| b.is_ascii_digit()));
        if !fits {
            return None;
        }
        let n: Vec<u32> = w.iter().map(|t| t.parse().expect("digits")).collect();
        let date = NaiveDate::from_ymd_opt(n[0] as i32, n[1], n[2])?;
        let dt = date.and_hms_opt(n[3], n[4], n[5])?;
        Some(Utc.from_utc_datetime(&dt).timestamp_millis())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_starts_the_lookback_before_the_watermark_hour() {
        let w = "2026/01/02/01/s-1-2026-01-02-01-05-12-u.gz";
        assert_eq!(listing_offset(w, 3).as_deref(), Some("2026/01/01/22"));
        assert_eq!(listing_offset(w, 0).as_deref(), Some("2026/01/02/01"));
        assert!("2026/01/02/01/a" > "2026/01/02/01" && "2026/01/02/00/z" < "2026/01/02/01");
        assert_eq!(listing_offset("ingest/x.gz", 3), None);
        assert_eq!(listing_offset("2026/01/02/xx/a", 3), None);
        assert_eq!(
            listing_offset("2026/01/02/01", 3),
            None,
            "a key, not a directory"
        );
    }

    #[test]
    fn firehose_keys() {
        let k =
            "2026/01/01/00/my-stream-1-2026-01-01-00-05-12-0b9c7f9e-1111-2222-3333-444455556666.gz";
        assert_eq!(firehose_time(k), Some(1_767_225_912_000));
        assert_eq!(firehose_time("other/name.json"), None);
        assert_eq!(firehose_time("s-1-2026-13-01-00-05-12-u"), None);
    }
}
