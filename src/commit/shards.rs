//! The ledger kept in shards, one per staged directory, so a run reads only the shards of the
//! directories it listed; and the listing watermark each version leaves for the next run.
//!
//! A shard file `_fineo/ledger/shards/<dir hash>/<v>.jsonl.gz` holds every entry of one staged
//! directory as of version `v`; publishing `v` rewrites the shards of the directories `v`
//! touched. A lake written before shards existed is converted whole by the first publish that
//! finds no `_since.json` marker; until then (and for older versions) the ledger is read the
//! old way, from its full checkpoints and the log.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::ledger::Ledger;
use super::log::{CommitRecord, LakeLog};
use crate::error::{Error, Result};
use crate::storage::Location;

const SHARDS: &str = "_fineo/ledger/shards";
const SINCE: &str = "_fineo/ledger/shards/_since.json";
const WATERMARKS: &str = "_fineo/ledger/watermark";

/// Shards read or written at once.
const CONCURRENCY: usize = 16;

/// The staged directory a key's ledger entry lives in (`""` at the top).
pub fn dir_of(key: &str) -> &str {
    key.rsplit_once('/').map_or("", |(dir, _)| dir)
}

fn shard_dir(dir: &str) -> String {
    format!(
        "{SHARDS}/{:016x}",
        xxhash_rust::xxh3::xxh3_64(dir.as_bytes())
    )
}

fn shard_path(dir: &str, v: u64) -> String {
    format!("{}/{v:020}.jsonl.gz", shard_dir(dir))
}

fn watermark_path(v: u64) -> String {
    format!("{WATERMARKS}/{v:020}.json")
}

/// The first version kept in shards, `None` when the lake was never converted.
async fn since(lake: &Location) -> Result<Option<u64>> {
    let Some(bytes) = lake.get_opt(SINCE).await? else {
        return Ok(None);
    };
    #[derive(Deserialize)]
    struct Since {
        version: u64,
    }
    let s: Since = serde_json::from_slice(&bytes).map_err(|e| Error::metadata(SINCE, e))?;
    Ok(Some(s.version))
}

/// Which part of the ledger a reader needs.
#[derive(Clone, Debug)]
pub enum Scope {
    /// Every entry.
    All,
    /// The entries of objects in these staged directories (see [`dir_of`]).
    Dirs(BTreeSet<String>),
}

/// The ledger as of version `v`, at least the entries `scope` asks for.
pub async fn load(lake: &Location, log: &LakeLog<'_>, v: u64, scope: &Scope) -> Result<Ledger> {
    if v == 0 {
        return Ok(Ledger::default());
    }
    match since(lake).await? {
        Some(s) if s <= v => load_shards(lake, v, scope).await,
        _ => Ledger::load_whole(lake, log, v).await,
    }
}

async fn load_shards(lake: &Location, v: u64, scope: &Scope) -> Result<Ledger> {
    let files: Vec<String> = match scope {
        Scope::All => latest_of_all(lake, v).await?,
        Scope::Dirs(dirs) => futures::stream::iter(dirs)
            .map(|d| latest_of(lake, shard_dir(d), v))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .flatten()
            .collect(),
    };
    let parts: Vec<Ledger> = futures::stream::iter(files)
        .map(|path| async move {
            let bytes = lake
                .get_opt(&path)
                .await?
                .ok_or_else(|| Error::metadata(&path, "ledger shard vanished"))?;
            let mut part = Ledger::default();
            part.read_gz(&path, &bytes)?;
            Ok::<_, Error>(part)
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    let mut ledger = Ledger::default();
    for p in parts {
        ledger.entries.extend(p.entries);
    }
    Ok(ledger)
}

/// The version number of a shard file name.
fn version_of(path: &str) -> Option<u64> {
    path.rsplit('/')
        .next()?
        .strip_suffix(".jsonl.gz")?
        .parse()
        .ok()
}

/// The newest shard file of one directory at or before `v` (one listing).
async fn latest_of(lake: &Location, dir: String, v: u64) -> Result<Option<String>> {
    let listed = lake.list(&dir).await?;
    Ok(listed
        .iter()
        .map(|m| lake.relative(&m.location))
        .filter_map(|p| version_of(&p).filter(|&n| n <= v).map(|n| (n, p)))
        .max()
        .map(|(_, p)| p))
}

/// The newest shard file of every directory at or before `v`.
async fn latest_of_all(lake: &Location, v: u64) -> Result<Vec<String>> {
    let mut best: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for m in lake.list(SHARDS).await? {
        let p = lake.relative(&m.location);
        let Some(n) = version_of(&p).filter(|&n| n <= v) else {
            continue;
        };
        let dir = p.rsplit_once('/').map_or("", |(d, _)| d).to_string();
        if best.get(&dir).is_none_or(|(b, _)| *b < n) {
            best.insert(dir, (n, p));
        }
    }
    Ok(best.into_values().map(|(_, p)| p).collect())
}

/// Publishes the ledger side of `record`: the shards of the directories it touched (all of
/// them when this version converts the lake) and its watermark. Idempotent.
pub async fn publish(lake: &Location, log: &LakeLog<'_>, record: &CommitRecord) -> Result<()> {
    let v = record.version;
    let converted = since(lake).await?;
    if converted.is_some_and(|s| s > v) {
        // A later version converted the lake already, with this version's entries in it.
        return Ok(());
    }
    let touched: BTreeSet<&str> = record
        .ledger
        .iter()
        .map(|e| e.key.as_str())
        .chain(record.ledger_removed.iter().map(String::as_str))
        .map(dir_of)
        .collect();
    let (mut ledger, dirs) = match converted {
        Some(s) if s < v => {
            let scope = Scope::Dirs(touched.iter().map(|d| d.to_string()).collect());
            (load_shards(lake, v - 1, &scope).await?, Some(touched))
        }
        // Converting: the whole ledger, written out as shards.
        _ => (Ledger::load_whole(lake, log, v - 1).await?, None),
    };
    ledger.apply(record);
    write_shards(lake, &ledger, dirs.as_ref(), v).await?;
    let watermarks = next_watermarks(load_watermarks(lake, v - 1).await?, record);
    let body = serde_json::to_vec_pretty(&watermarks).expect("watermark json");
    lake.put(&watermark_path(v), Bytes::from(body)).await?;
    if converted.is_none() {
        let body = serde_json::json!({ "version": v }).to_string();
        lake.put(SINCE, Bytes::from(body)).await?;
    }
    Ok(())
}

/// Writes the shard of every directory in `dirs` (every directory of `ledger` when `None`).
async fn write_shards(
    lake: &Location,
    ledger: &Ledger,
    dirs: Option<&BTreeSet<&str>>,
    v: u64,
) -> Result<()> {
    let mut by_dir: BTreeMap<&str, Ledger> = BTreeMap::new();
    if let Some(dirs) = dirs {
        // A directory whose last entry a restore removed gets an empty shard.
        by_dir.extend(dirs.iter().map(|d| (*d, Ledger::default())));
    }
    for (k, e) in &ledger.entries {
        let d = dir_of(k);
        if dirs.is_none_or(|s| s.contains(d)) {
            by_dir
                .entry(d)
                .or_default()
                .entries
                .insert(k.clone(), e.clone());
        }
    }
    futures::stream::iter(by_dir)
        .map(|(dir, part)| async move {
            let bytes = part.to_gz()?;
            lake.put(&shard_path(dir, v), Bytes::from(bytes)).await
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Where the next listing of each staged location may start: the greatest key read from it so
/// far (a location without one is listed whole).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Watermarks {
    /// Staged location URL -> key.
    pub staged: BTreeMap<String, String>,
}

/// The watermarks version `v` left (none before shards, or at version 0).
pub async fn load_watermarks(lake: &Location, v: u64) -> Result<Watermarks> {
    if v == 0 {
        return Ok(Watermarks::default());
    }
    let path = watermark_path(v);
    match lake.get_opt(&path).await? {
        Some(b) => serde_json::from_slice(&b).map_err(|e| Error::metadata(&path, e)),
        None => Ok(Watermarks::default()),
    }
}

/// The watermarks after `record`: a compaction sets its staged location's; objects a restore
/// queued to be read again lower every one to the first of them, so the next listings reach
/// them (the ledger does not say which location they came from).
fn next_watermarks(mut w: Watermarks, record: &CommitRecord) -> Watermarks {
    if let Some(set) = &record.watermark {
        w.staged.insert(set.staged.clone(), set.key.clone());
    }
    if let Some(low) = record.ledger_removed.iter().min() {
        for key in w.staged.values_mut() {
            if *low < *key {
                key.clone_from(low);
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(watermark: Option<&str>, removed: &[&str]) -> CommitRecord {
        CommitRecord {
            version: 2,
            run_id: "r".into(),
            tag: "t".into(),
            committed_ms: 0,
            ledger: Vec::new(),
            partitions: Vec::new(),
            errors: Vec::new(),
            files: Vec::new(),
            schemas: Vec::new(),
            creates: Vec::new(),
            ledger_removed: removed.iter().map(|s| s.to_string()).collect(),
            fed: None,
            watermark: watermark.map(|k| super::super::log::StagedWatermark {
                staged: "s3://b/a".into(),
                key: k.into(),
            }),
        }
    }

    #[test]
    fn a_compaction_sets_its_watermark_and_a_restore_lowers_them_all() {
        let mut prev = Watermarks::default();
        prev.staged
            .insert("s3://b/a".into(), "2026/01/02/05/b".into());
        prev.staged
            .insert("file:///x".into(), "2026/01/01/01/b".into());
        let set = next_watermarks(prev.clone(), &record(Some("2026/01/02/07/c"), &[]));
        assert_eq!(set.staged["s3://b/a"], "2026/01/02/07/c");
        assert_eq!(
            set.staged["file:///x"], "2026/01/01/01/b",
            "other locations keep theirs"
        );
        let restore = next_watermarks(
            prev.clone(),
            &record(None, &["2026/01/01/03/a", "2026/01/02/01/x"]),
        );
        assert_eq!(restore.staged["s3://b/a"], "2026/01/01/03/a");
        assert_eq!(
            restore.staged["file:///x"], "2026/01/01/01/b",
            "already lower"
        );
        assert_eq!(next_watermarks(prev.clone(), &record(None, &[])), prev);
    }

    #[test]
    fn entries_are_kept_by_directory() {
        assert_eq!(dir_of("2026/01/02/03/s-1.gz"), "2026/01/02/03");
        assert_eq!(dir_of("top.gz"), "");
        assert_eq!(
            version_of("_fineo/ledger/shards/ab/00000000000000000012.jsonl.gz"),
            Some(12)
        );
    }
}
