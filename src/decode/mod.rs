//! Decoding staged objects: encoding detected from the bytes (gzip, Avro, JSON Lines), records
//! handed to a sink in object order, damage reported with its position.

mod avro;
mod flat;
mod gzip;
mod inflate;
pub(crate) mod json;

use serde::Serialize;

use crate::model::{Position, RawRecord};
use crate::quarantine::{BadRecord, Raw, Reason};

pub use json::parse_line;

#[cfg(test)]
mod props;

/// Receives the records of one object, in order.
pub trait RecordSink {
    /// A decoded record.
    fn record(&mut self, record: &RawRecord<'_>);
    /// A record or object region that could not be decoded.
    fn bad(&mut self, bad: BadRecord);
}

/// Limits that keep one object from exhausting memory.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest decompressed object, in bytes.
    pub max_object_bytes: usize,
    /// Largest single record (JSON line), in bytes.
    pub max_record_bytes: usize,
    /// Longest raw text kept in a quarantine line.
    pub max_raw_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_object_bytes: 4 << 30,
            max_record_bytes: 16 << 20,
            max_raw_bytes: 64 << 10,
        }
    }
}

/// The encoding an object turned out to have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Empty,
    JsonLines,
    Avro,
    GzipJsonLines,
    GzipAvro,
}

const AVRO_MAGIC: &[u8] = b"Obj\x01";

/// Decodes one object into `sink`; returns the detected format.
pub fn decode_object(bytes: &[u8], limits: &Limits, sink: &mut dyn RecordSink) -> Format {
    if bytes.is_empty() {
        return Format::Empty;
    }
    if gzip::is_gzip(bytes) {
        let out = gzip::gunzip(bytes, limits.max_object_bytes);
        let inner = if out.data.starts_with(AVRO_MAGIC) {
            avro::decode(&out.data, &out.untrusted(), limits, sink);
            Format::GzipAvro
        } else {
            json::decode(&out.data, &out.cuts, limits, sink);
            Format::GzipJsonLines
        };
        for damage in out.damage {
            sink.bad(damage);
        }
        return inner;
    }
    if bytes.starts_with(AVRO_MAGIC) {
        avro::decode(bytes, &[], limits, sink);
        return Format::Avro;
    }
    if looks_binary(bytes) {
        sink.bad(BadRecord {
            reason: Reason::CorruptObject,
            message: "not gzip, Avro or UTF-8 JSON Lines (binary content)".into(),
            position: Position {
                byte_offset: Some(0),
                ..Default::default()
            },
            tenant: None,
            raw: Raw::from_bytes(bytes, limits.max_raw_bytes),
            object_level: true,
        });
        return Format::Empty;
    }
    json::decode(bytes, &[], limits, sink);
    Format::JsonLines
}

/// Binary garbage: a first significant byte that cannot start JSON, or one that might but a
/// NUL byte in the first 4 KiB. A JSON Lines object starts with `{`: when it does, it is text,
/// and a NUL or control byte in a later line makes that line bad, not the whole object.
fn looks_binary(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let first = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .copied()
        .unwrap_or(b'{');
    if first == b'{' {
        return false;
    }
    memchr::memchr(0, head).is_some()
        || !(first == b'[' || first == b'"' || first.is_ascii_graphic() || first == 0xEF)
}

#[cfg(test)]
mod tests {
    use super::testing::Collect;
    use super::*;

    #[test]
    fn binary_or_text() {
        let good = br#"{"tenant":"t1","metric":"m","timestamp":1}"#;
        let mut text = good.to_vec();
        text.extend(b"\n{\"tenant\":\"t1\",\"x\":\"a\x00b\"}\n");
        text.extend(good);
        assert!(
            !looks_binary(&text),
            "a NUL in a later line is that line's problem"
        );
        let mut sink = Collect::default();
        assert_eq!(
            decode_object(&text, &Limits::default(), &mut sink),
            Format::JsonLines
        );
        assert_eq!(sink.records.len(), 2);
        assert_eq!(sink.bad.len(), 1);
        assert_eq!(sink.bad[0].reason, Reason::BadJson);
        assert!(!looks_binary(b"\xEF\xBB\xBF  {\"a\":1}"));
        assert!(!looks_binary(b"[1,2]\nnot json"));
        assert!(looks_binary(b"Obj\x02\x04\x00\x00"));
        assert!(looks_binary(b"\x89PNG\r\n"));
        assert!(looks_binary(b"\x03\x04"));
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A sink that keeps everything, for unit tests.
    #[derive(Default)]
    pub struct Collect {
        pub records: Vec<RawRecord<'static>>,
        pub bad: Vec<BadRecord>,
    }

    impl RecordSink for Collect {
        fn record(&mut self, r: &RawRecord<'_>) {
            self.records.push(owned(r.clone()));
        }
        fn bad(&mut self, b: BadRecord) {
            self.bad.push(b);
        }
    }

    fn owned(r: RawRecord<'_>) -> RawRecord<'static> {
        use crate::model::RawValue;
        use std::borrow::Cow;
        fn v(v: RawValue<'_>) -> RawValue<'static> {
            match v {
                RawValue::Null => RawValue::Null,
                RawValue::Bool(b) => RawValue::Bool(b),
                RawValue::Number(s) => RawValue::Number(Cow::Owned(s.into_owned())),
                RawValue::Str(s) => RawValue::Str(Cow::Owned(s.into_owned())),
                RawValue::Nested(s) => RawValue::Nested(Cow::Owned(s.into_owned())),
            }
        }
        RawRecord {
            tenant: v(r.tenant),
            metric: v(r.metric),
            timestamp: v(r.timestamp),
            fields: r
                .fields
                .into_iter()
                .map(|(k, x)| (Cow::Owned(k.into_owned()), v(x)))
                .collect(),
            position: r.position,
            sent: &[],
        }
    }
}
