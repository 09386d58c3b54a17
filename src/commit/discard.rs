//! Cleaning up after a run that lost the commit race: the typed files it put in place (never
//! referenced) and its staging directory.

use super::log::CommitRecord;
use crate::names;
use crate::storage::Location;

/// Removes what `record`'s run wrote, but the typed files `keep` names (content-named files a
/// concurrent run may reference). Best effort: a leftover is unreferenced either way.
pub async fn discard(lake: &Location, record: &CommitRecord, keep: impl Fn(&str) -> bool) {
    for p in &record.partitions {
        for f in p.typed_add.iter().filter(|f| !keep(&f.file.path)) {
            let path = format!(
                "typed/{}/{}",
                names::table_dir(&p.tenant, &p.metric),
                f.file.path
            );
            let _ = lake.delete(&path).await;
        }
    }
    if let Some(f) = &record.fed {
        let _ = lake.delete(f).await;
    }
    if let Ok(staged) = lake.list(&format!("_fineo/staging/{}", record.tag)).await {
        for m in staged {
            let _ = lake.delete_path(&m.location).await;
        }
    }
}
