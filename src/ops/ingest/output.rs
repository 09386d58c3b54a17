//! What an ingest writes below the staged prefix: the staged objects of a source file (gzip JSON
//! Lines in the Firehose key layout, named from the source, its content and the part number,
//! delivered at the source's last-modified time), its error file, and last its ledger record,
//! which is what makes the objects visible to `compact` (all of a file's, or none).

use serde::{Deserialize, Serialize};

use super::rows::BadRow;
use crate::error::{Error, Result};
use crate::storage::Location;

/// Ingest's bookkeeping below the staged prefix (`compact` ignores `_` segments).
pub const LEDGER_DIR: &str = "_ingest/ledger";
const ERRORS_DIR: &str = "_ingest/errors";

/// The stream name of ingested objects: `fineo-ingest-<source id>-<time>-<id>.gz`.
pub const STREAM: &str = "fineo-ingest";

/// The ledger record of a source file: what it was when ingested, and the objects it became.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IngestRecord {
    pub source: String,
    pub size: u64,
    pub etag: Option<String>,
    /// RFC 3339: the staged objects' delivery time.
    pub last_modified: String,
    pub sha256: String,
    /// Fingerprint of the ingest settings used.
    pub settings: String,
    pub format: String,
    pub rows: u64,
    pub staged: u64,
    pub bad_rows: u64,
    /// The staged objects (keys below the staged prefix).
    pub objects: Vec<String>,
    /// The error file (key below the staged prefix), when there were bad rows.
    pub errors: Option<String>,
}

/// A source's id: its URL's hash.
pub fn source_id(url: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(url.as_bytes()))
}

/// Where a source's ledger record is.
pub fn ledger_path(id: &str) -> String {
    format!("{LEDGER_DIR}/{id}.json")
}

/// The source id in an ingested object's key, if it is one.
pub fn id_of_object(key: &str) -> Option<&str> {
    let name = key.rsplit('/').next()?;
    let rest = name.strip_prefix(STREAM)?.strip_prefix('-')?;
    let id = rest.get(..16)?;
    (rest.as_bytes().get(16) == Some(&b'-') && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(id)
}

/// The ledger record of a source, if it was ingested.
pub async fn load_record(staged: &Location, id: &str) -> Result<Option<IngestRecord>> {
    let path = ledger_path(id);
    match staged.get_opt(&path).await? {
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::metadata(path, e)),
        None => Ok(None),
    }
}

/// A staged object's key: `YYYY/MM/DD/HH/fineo-ingest-<id>-YYYY-MM-DD-HH-mm-ss-<uuid>.gz`.
pub fn object_key(id: &str, delivery_ms: i64, sha: &str, part: usize) -> String {
    let t = chrono::DateTime::from_timestamp_millis(delivery_ms).unwrap_or_default();
    let u = xxhash_rust::xxh3::xxh3_128(format!("{id}/{sha}/{part}").as_bytes());
    let h = format!("{u:032x}");
    format!(
        "{}/{STREAM}-{id}-{}-{}-{}-{}-{}-{}.gz",
        t.format("%Y/%m/%d/%H"),
        t.format("%Y-%m-%d-%H-%M-%S"),
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The error file of a source's content.
pub fn errors_key(id: &str, sha: &str) -> String {
    format!("{ERRORS_DIR}/{id}/{}.jsonl", &sha[..16])
}

/// One line of an error file: the source file and the bad row.
#[derive(Serialize)]
pub struct ErrorLine<'a> {
    pub source: &'a str,
    #[serde(flatten)]
    pub row: &'a BadRow,
}
