//! What the lake remembers of which archived objects fed which partitions: a file per run that
//! read objects (`_fineo/fed/<tag>.jsonl.gz`, named by its commit record), one line per object
//! with the (tenant, metric as sent, day) of its records. Mapped through a catalog, they are the
//! partitions the object fed; a replay finds there where an object's records went, even when a
//! fix routes them elsewhere now.

use std::collections::HashMap;
use std::io::Read;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ops::compact::read::Fed;
use crate::storage::Location;

/// The file of a run.
pub fn path(tag: &str) -> String {
    format!("_fineo/fed/{tag}.jsonl.gz")
}

#[derive(Serialize, Deserialize)]
struct Line {
    key: String,
    fed: Vec<Fed>,
}

/// Writes a run's file (before its commit: unreferenced until then, and the same name and
/// bytes when the run is repeated); returns its path.
pub async fn write(lake: &Location, tag: &str, objects: &[(String, Vec<Fed>)]) -> Result<String> {
    let mut text = Vec::new();
    for (key, fed) in objects {
        let line = Line {
            key: key.clone(),
            fed: fed.clone(),
        };
        serde_json::to_writer(&mut text, &line).expect("fed json");
        text.push(b'\n');
    }
    let gz = crate::write::gzip(&text)?;
    let p = path(tag);
    lake.put(&p, gz).await?;
    Ok(p)
}

/// Reads a run's file: object key -> what it fed.
pub async fn read(lake: &Location, path: &str) -> Result<HashMap<String, Vec<Fed>>> {
    let bytes: Bytes = lake
        .get_opt(path)
        .await?
        .ok_or_else(|| Error::metadata(path, "the commit names it and it is missing"))?;
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .map_err(|e| Error::metadata(path, e))?;
    let mut out = HashMap::new();
    for l in text.lines().filter(|l| !l.is_empty()) {
        let line: Line = serde_json::from_str(l).map_err(|e| Error::metadata(path, e))?;
        out.insert(line.key, line.fed);
    }
    Ok(out)
}
