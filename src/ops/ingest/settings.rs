//! What an ingest is told about its files: the tenant, where metric and timestamp come from,
//! how timestamps are written and in which zone, column renames, the format, and how many bad
//! rows a file may have; checked before anything is read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The format of a source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Csv,
    Jsonl,
    Avro,
    Parquet,
}

impl SourceFormat {
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Csv => "csv",
            SourceFormat::Jsonl => "jsonl",
            SourceFormat::Avro => "avro",
            SourceFormat::Parquet => "parquet",
        }
    }
}

/// How timestamps are written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimestampFormat {
    /// Numbers or RFC 3339 text, told apart per value; an epoch's unit from its size.
    Auto,
    /// Epoch seconds, milliseconds or microseconds.
    EpochSeconds,
    EpochMillis,
    EpochMicros,
    /// RFC 3339 (a missing offset needs a zone).
    Rfc3339,
    /// A strftime pattern (`%Y-%m-%d %H:%M:%S`); without `%z` it needs a zone.
    Pattern(String),
}

impl TimestampFormat {
    /// `auto`, `epoch_s`, `epoch_ms`, `epoch_us`, `rfc3339`, or a pattern holding `%`.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "auto" => TimestampFormat::Auto,
            "epoch_s" | "epoch_seconds" => TimestampFormat::EpochSeconds,
            "epoch_ms" | "epoch_millis" => TimestampFormat::EpochMillis,
            "epoch_us" | "epoch_micros" => TimestampFormat::EpochMicros,
            "rfc3339" | "iso8601" => TimestampFormat::Rfc3339,
            p if p.contains('%') => TimestampFormat::Pattern(p.to_string()),
            other => {
                return Err(Error::InvalidOption(format!(
                    "timestamp format {other:?}: expected auto, epoch_s, epoch_ms, epoch_us, rfc3339 or a strftime pattern such as %Y-%m-%d %H:%M:%S"
                )))
            }
        })
    }

    /// The setting's text (as a job file holds it).
    pub fn text(&self) -> String {
        match self {
            TimestampFormat::Auto => "auto".into(),
            TimestampFormat::EpochSeconds => "epoch_s".into(),
            TimestampFormat::EpochMillis => "epoch_ms".into(),
            TimestampFormat::EpochMicros => "epoch_us".into(),
            TimestampFormat::Rfc3339 => "rfc3339".into(),
            TimestampFormat::Pattern(p) => p.clone(),
        }
    }
}

/// What to do with a local time that occurs twice (the hour a clock goes back).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ambiguous {
    /// A bad row.
    #[default]
    Error,
    Earliest,
    Latest,
}

/// What to do with a local time that does not occur (the hour a clock goes forward).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Nonexistent {
    /// A bad row.
    #[default]
    Error,
    /// Moved forward by the gap (02:30 on a spring-forward night becomes 03:30).
    Forward,
}

/// Where each row's metric comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetricFrom {
    /// Every row is this metric.
    Fixed(String),
    /// Each row's value of this column.
    Column(String),
}

/// The settings of an ingest.
#[derive(Clone, Debug, PartialEq)]
pub struct IngestSettings {
    pub tenant: String,
    pub metric: MetricFrom,
    pub timestamp_column: String,
    pub timestamp_format: TimestampFormat,
    /// IANA zone of timestamps written without an offset.
    pub timezone: Option<chrono_tz::Tz>,
    pub ambiguous: Ambiguous,
    pub nonexistent: Nonexistent,
    /// Source column -> field name.
    pub rename: BTreeMap<String, String>,
    /// `None`: detected from the bytes.
    pub format: Option<SourceFormat>,
    /// CSV delimiter (detected when `None`).
    pub delimiter: Option<u8>,
    /// A file with more bad rows is not ingested at all.
    pub max_bad_rows: u64,
}

impl IngestSettings {
    /// Settings for `tenant`, rows of `metric`, timestamps in column `timestamp`.
    pub fn new(tenant: &str, metric: MetricFrom) -> Result<Self> {
        if !crate::names::valid_tenant(tenant) {
            return Err(Error::InvalidOption(format!(
                "tenant {tenant:?} is not a valid tenant id"
            )));
        }
        let (MetricFrom::Fixed(m) | MetricFrom::Column(m)) = &metric;
        if m.is_empty() {
            return Err(Error::InvalidOption(
                "an empty metric name or column".into(),
            ));
        }
        Ok(IngestSettings {
            tenant: tenant.to_string(),
            metric,
            timestamp_column: "timestamp".into(),
            timestamp_format: TimestampFormat::Auto,
            timezone: None,
            ambiguous: Ambiguous::Error,
            nonexistent: Nonexistent::Error,
            rename: BTreeMap::new(),
            format: None,
            delimiter: None,
            max_bad_rows: 0,
        })
    }

    /// A fingerprint of everything that decides the staged records: a file ingested again
    /// with other settings is ingested anew.
    pub fn fingerprint(&self) -> String {
        let text = format!(
            "{}|{:?}|{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.tenant,
            self.metric,
            self.timestamp_column,
            self.timestamp_format.text(),
            self.timezone.map(|t| t.name().to_string()),
            self.ambiguous,
            self.nonexistent,
            self.rename,
            self.format,
            self.delimiter
        );
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
    }
}

/// An IANA zone name.
pub fn parse_timezone(name: &str) -> Result<chrono_tz::Tz> {
    name.parse::<chrono_tz::Tz>().map_err(|_| {
        Error::InvalidOption(format!(
            "--timezone {name:?} is not an IANA zone (e.g. Europe/Berlin, America/New_York, UTC)"
        ))
    })
}
