//! Encoding generated records as staged objects: JSON Lines (plain, gzip, multi-member gzip)
//! and Avro container files with the reference staged schema.

use std::io::Write;

use apache_avro::types::Value;
use apache_avro::{Codec, Schema, Writer};

use super::model::GenValue;

/// How a record's timestamp is written in JSON.
#[derive(Clone, Copy, Debug)]
pub enum TsForm {
    Int,
    Digits,
    Rfc3339,
}

/// A record as the generator emits it.
#[derive(Clone, Debug)]
pub enum GenRecord {
    Good {
        tenant: String,
        metric: String,
        ts: i64,
        ts_form: TsForm,
        fields: Vec<(String, GenValue)>,
    },
    /// A bad line written verbatim in a JSON object.
    BadJson(String),
    /// A bad record in an Avro object: tenant, metric, timestamp.
    BadAvro(String, String, i64),
}

/// Object encodings the generator writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectFormat {
    JsonlGzip,
    JsonlGzipMembers,
    Jsonl,
    AvroDeflate,
    AvroSnappy,
    AvroZstd,
}

impl ObjectFormat {
    /// File extension of the format (the reader ignores it; it is for humans).
    pub fn ext(self) -> &'static str {
        match self {
            ObjectFormat::JsonlGzip | ObjectFormat::JsonlGzipMembers => "gz",
            ObjectFormat::Jsonl => "json",
            _ => "avro",
        }
    }
}

/// The reference staged Avro schema (SPEC 3).
pub const STAGED_SCHEMA: &str = r#"{"type":"record","name":"StagedRecord","fields":[
 {"name":"tenant","type":"string"},{"name":"metric","type":"string"},
 {"name":"timestamp","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"fields","type":{"type":"map","values":["null","boolean","int","long","float","double","string"]}}]}"#;

/// Encodes records as one object.
pub fn encode(records: &[GenRecord], format: ObjectFormat) -> Vec<u8> {
    match format {
        ObjectFormat::Jsonl => jsonl(records),
        ObjectFormat::JsonlGzip => gzip(&jsonl(records)),
        ObjectFormat::JsonlGzipMembers => {
            let half = records.len() / 2;
            let mut out = gzip(&jsonl(&records[..half]));
            out.extend(gzip(&jsonl(&records[half..])));
            out
        }
        ObjectFormat::AvroDeflate => avro(records, Codec::Deflate(Default::default())),
        ObjectFormat::AvroSnappy => avro(records, Codec::Snappy),
        ObjectFormat::AvroZstd => avro(records, Codec::Zstandard(Default::default())),
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    e.write_all(data).expect("gzip to vec");
    e.finish().expect("gzip to vec")
}

fn jsonl(records: &[GenRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * 160);
    for r in records {
        match r {
            GenRecord::BadJson(json) => out.extend_from_slice(json.as_bytes()),
            GenRecord::BadAvro(..) => unreachable!("Avro bad records go to Avro objects"),
            GenRecord::Good {
                tenant,
                metric,
                ts,
                ts_form,
                fields,
            } => {
                let mut m = serde_json::Map::new();
                m.insert("tenant".into(), tenant.clone().into());
                m.insert("metric".into(), metric.clone().into());
                let ts = match ts_form {
                    TsForm::Int => serde_json::Value::from(*ts),
                    TsForm::Digits => ts.to_string().into(),
                    TsForm::Rfc3339 => chrono::DateTime::from_timestamp_millis(*ts)
                        .expect("ts")
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                        .into(),
                };
                m.insert("timestamp".into(), ts);
                for (k, v) in fields {
                    m.insert(k.clone(), json_value(v));
                }
                serde_json::to_writer(&mut out, &m).expect("json to vec");
            }
        }
        out.push(b'\n');
    }
    out
}

fn json_value(v: &GenValue) -> serde_json::Value {
    match v {
        GenValue::Null => serde_json::Value::Null,
        GenValue::Bool(b) => (*b).into(),
        GenValue::Int(i) => (*i).into(),
        GenValue::Float(f) => (*f).into(),
        GenValue::Str(s) => s.clone().into(),
    }
}

fn avro(records: &[GenRecord], codec: Codec) -> Vec<u8> {
    let schema = Schema::parse_str(STAGED_SCHEMA).expect("staged schema");
    let mut w = Writer::with_codec(&schema, Vec::new(), codec);
    for r in records {
        let (tenant, metric, ts, fields) = match r {
            GenRecord::Good {
                tenant,
                metric,
                ts,
                fields,
                ..
            } => (tenant.clone(), metric.clone(), *ts, fields.as_slice()),
            GenRecord::BadAvro(t, m, ts) => (t.clone(), m.clone(), *ts, &[][..]),
            GenRecord::BadJson(_) => unreachable!("JSON bad records go to JSON objects"),
        };
        let map = fields
            .iter()
            .map(|(k, v)| (k.clone(), avro_value(v)))
            .collect();
        let rec = Value::Record(vec![
            ("tenant".into(), Value::String(tenant)),
            ("metric".into(), Value::String(metric)),
            ("timestamp".into(), Value::TimestampMillis(ts)),
            ("fields".into(), Value::Map(map)),
        ]);
        w.append(rec).expect("append generated avro record");
    }
    w.into_inner().expect("avro flush")
}

fn avro_value(v: &GenValue) -> Value {
    match v {
        GenValue::Null => Value::Union(0, Box::new(Value::Null)),
        GenValue::Bool(b) => Value::Union(1, Box::new(Value::Boolean(*b))),
        GenValue::Int(i) => Value::Union(3, Box::new(Value::Long(*i))),
        GenValue::Float(f) => Value::Union(5, Box::new(Value::Double(*f))),
        GenValue::Str(s) => Value::Union(6, Box::new(Value::String(s.clone()))),
    }
}
