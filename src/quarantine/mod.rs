//! Quarantine (SPEC 8): bad records and bad objects, with reason codes, positions and raw bytes.

use base64::Engine;
use serde::Serialize;

use crate::model::Position;

/// Why a record or object was quarantined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// `tenant`, `metric` or `timestamp` is missing or null.
    MissingField,
    /// The tenant id does not match the allowed pattern.
    BadTenant,
    /// The timestamp is not epoch ms, digits or RFC 3339, or is out of range.
    BadTimestamp,
    /// The line is not a JSON object (or not UTF-8).
    BadJson,
    /// The same key appears twice in one JSON object.
    DuplicateKey,
    /// A metric or field name is empty or longer than 256 bytes.
    NameTooLong,
    /// A single record is larger than the configured limit.
    RecordTooLarge,
    /// The object's bytes are not a supported or intact encoding.
    CorruptObject,
    /// The object ends before its encoding says it should.
    TruncatedObject,
}

impl Reason {
    /// The reason code as written in quarantine lines and reports.
    pub fn code(self) -> &'static str {
        match self {
            Reason::MissingField => "missing_field",
            Reason::BadTenant => "bad_tenant",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::BadJson => "bad_json",
            Reason::DuplicateKey => "duplicate_key",
            Reason::NameTooLong => "name_too_long",
            Reason::RecordTooLarge => "record_too_large",
            Reason::CorruptObject => "corrupt_object",
            Reason::TruncatedObject => "truncated_object",
        }
    }
}

/// The raw bytes of a bad record, kept for the quarantine line.
#[derive(Clone, Debug, PartialEq)]
pub enum Raw {
    None,
    Text(String),
    Binary(Vec<u8>),
}

impl Raw {
    /// Text when the bytes are UTF-8, base64 otherwise; long raw values are cut at `limit`.
    pub fn from_bytes(bytes: &[u8], limit: usize) -> Raw {
        let cut = &bytes[..bytes.len().min(limit)];
        match std::str::from_utf8(cut) {
            Ok(s) => Raw::Text(s.to_string()),
            Err(_) => Raw::Binary(cut.to_vec()),
        }
    }
}

/// One bad record or object, as decoded; tenant known when it could be read.
#[derive(Clone, Debug)]
pub struct BadRecord {
    pub reason: Reason,
    pub message: String,
    pub position: Position,
    pub tenant: Option<String>,
    pub raw: Raw,
    /// Damage to the object itself (it stands for no record: it is reported, and not counted
    /// in `records_in`).
    pub object_level: bool,
}

/// One line of `<lake>/errors/.../<run-id>.jsonl`.
#[derive(Debug, Serialize)]
pub struct QuarantineLine<'a> {
    pub run_id: &'a str,
    pub object: &'a str,
    pub position: &'a Position,
    pub reason: &'static str,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_base64: Option<String>,
}

impl BadRecord {
    /// The quarantine line for this record from `object`.
    pub fn line<'a>(&'a self, run_id: &'a str, object: &'a str) -> QuarantineLine<'a> {
        let (raw, raw_base64) = match &self.raw {
            Raw::None => (None, None),
            Raw::Text(t) => (Some(t.as_str()), None),
            Raw::Binary(b) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(b)),
            ),
        };
        QuarantineLine {
            run_id,
            object,
            position: &self.position,
            reason: self.reason.code(),
            message: &self.message,
            raw,
            raw_base64,
        }
    }
}

mod buffer;

pub use buffer::QuarantineBuffer;

/// Writes the quarantine lines of each tenant to the run's staging (streamed, multipart when
/// big), to be moved to `errors/tenant=<t>/date=<run day>/<tag>.jsonl` on publish.
pub async fn stage(
    lake: &crate::storage::Location,
    tag: &str,
    quarantine: &QuarantineBuffer,
) -> crate::Result<Vec<crate::commit::log::StagedCopy>> {
    let day = run_day();
    let mut out = Vec::new();
    for tenant in quarantine.tenants() {
        let lines = quarantine.lines(&tenant).map(|l| l.map(bytes::Bytes::from));
        let lines = futures::stream::iter(lines);
        out.push(stage_tenant(lake, tag, &day, &tenant, lines).await?);
    }
    Ok(out)
}

/// The day a run's quarantine files are filed under: taken once, so a run crossing
/// midnight files every tenant under the same day.
pub fn run_day() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

/// Writes one tenant's quarantine lines (in order) to the run's staging, under `day`.
pub async fn stage_tenant(
    lake: &crate::storage::Location,
    tag: &str,
    day: &str,
    tenant: &str,
    lines: impl futures::Stream<Item = crate::Result<bytes::Bytes>>,
) -> crate::Result<crate::commit::log::StagedCopy> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let rel = format!("errors/tenant={tenant}/date={day}/{tag}.jsonl");
    let staged = format!("_fineo/staging/{tag}/{rel}");
    let path = lake.path(&staged);
    let mut w = object_store::buffered::BufWriter::new(lake.store().clone(), path.clone());
    let mut lines = std::pin::pin!(lines);
    while let Some(line) = lines.next().await {
        w.write_all(&line?)
            .await
            .map_err(|e| crate::Error::io(&path, e))?;
    }
    w.shutdown().await.map_err(|e| crate::Error::io(&path, e))?;
    Ok(crate::commit::log::StagedCopy { staged, path: rel })
}
