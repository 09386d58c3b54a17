//! Avro records decoded straight into raw records, without building apache-avro values, for
//! the flat schemas staged objects use (scalars, unions of scalars, a `fields` map); the result
//! is the one [`super::record::record`] gives for apache-avro's value of the same datum.

use std::borrow::Cow;

use apache_avro::schema::{RecordSchema, Schema};

use super::container::Cursor;
use super::record::{check_names, float_into, int_into, Bad};
use super::walk::Walk;
use crate::model::{Position, RawRecord, RawValue};
use crate::resolve::raw::{self, RawFields};

/// The record schema when every record of it can be decoded directly.
pub(super) fn plan(schema: &Schema) -> Option<&RecordSchema> {
    let Schema::Record(r) = schema else {
        return None;
    };
    r.fields
        .iter()
        .all(|f| match f.name.as_str() {
            "fields" | "unknown_fields" => scalar_or_map(&f.schema),
            _ => scalar(&f.schema),
        })
        .then_some(r)
}

fn scalar(s: &Schema) -> bool {
    match s {
        Schema::Union(u) => u.variants().iter().all(plain),
        s => plain(s),
    }
}

fn scalar_or_map(s: &Schema) -> bool {
    let map_or_plain = |s: &Schema| match s {
        Schema::Map(m) => scalar(&m.types),
        s => plain(s),
    };
    match s {
        Schema::Union(u) => u.variants().iter().all(map_or_plain),
        s => map_or_plain(s),
    }
}

fn plain(s: &Schema) -> bool {
    matches!(
        s,
        Schema::Null
            | Schema::Boolean
            | Schema::Float
            | Schema::Double
            | Schema::String
            | Schema::Enum(_)
            | int_like!()
            | long_like!()
    )
}

/// Decodes the datum of `r` at the cursor, counting its values and payload into `w` as the
/// walk would; the cursor ends after the datum. `None` when the datum holds something this
/// path does not decode (text that is not UTF-8, an index out of range, more values than `w`
/// allows, bytes that end early): the caller then walks it and decodes it with apache-avro,
/// which names the problem. The record's vector and number texts come from `spare`.
pub(super) fn record<'d>(
    r: &'d RecordSchema,
    c: &mut Cursor<'d>,
    w: &mut Walk<'_>,
    position: Position,
    spare: &mut Spare,
) -> Option<Result<RawRecord<'d>, Bad>> {
    w.step().ok()?;
    let mut rec = RawRecord::empty(0, position);
    rec.fields = raw::recycle(std::mem::take(&mut spare.fields));
    let mut d = Datum { c, w, spare };
    for f in &r.fields {
        let name = f.name.as_str();
        match name {
            "tenant" => rec.tenant = d.value(&f.schema, false)?,
            "metric" => rec.metric = d.value(&f.schema, false)?,
            "timestamp" => rec.timestamp = d.value(&f.schema, true)?,
            "fields" | "unknown_fields" => {
                if let Some(v) = d.map_or_value(&f.schema, &mut rec.fields)? {
                    rec.fields.push((Cow::Borrowed(name), v));
                }
            }
            _ => rec
                .fields
                .push((Cow::Borrowed(name), d.value(&f.schema, false)?)),
        }
    }
    Some(check_names(rec))
}

/// What decoding a record leaves for the next one: the vector of its fields and the texts of
/// its numbers, handed back once the sink saw the record ([`Spare::reclaim`]), so that a
/// record decodes without an allocation per number.
#[derive(Default)]
pub(super) struct Spare {
    fields: RawFields<'static>,
    texts: Vec<String>,
}

/// The most number texts kept for reuse (more than a record usually has).
const MAX_SPARE_TEXTS: usize = 256;

impl Spare {
    /// Takes back the vector and number texts of a record the sink has seen.
    pub(super) fn reclaim(&mut self, mut rec: RawRecord<'_>) {
        self.keep(rec.tenant);
        self.keep(rec.metric);
        self.keep(rec.timestamp);
        for (_, v) in rec.fields.drain(..) {
            self.keep(v);
        }
        self.fields = raw::recycle(rec.fields);
    }

    /// Keeps a number's text for reuse.
    fn keep(&mut self, v: RawValue<'_>) {
        if let RawValue::Number(Cow::Owned(text)) = v {
            if self.texts.len() < MAX_SPARE_TEXTS {
                self.texts.push(text);
            }
        }
    }

    /// A number's text, as [`super::record::int_text`] writes it, in a text handed back.
    fn int(&mut self, i: i64) -> RawValue<'static> {
        int_into(self.texts.pop().unwrap_or_default(), i)
    }

    /// A float's value, as [`super::record::float_text`] gives it, in a text handed back.
    fn float(&mut self, f: f64) -> RawValue<'static> {
        float_into(self.texts.pop().unwrap_or_default(), f)
    }
}

type Entries<'d> = Vec<(Cow<'d, str>, RawValue<'d>)>;

/// The cursor over a datum, the count of what it decodes to and the texts it may reuse.
struct Datum<'c, 'd, 'w, 's> {
    c: &'c mut Cursor<'d>,
    w: &'w mut Walk<'s>,
    spare: &'c mut Spare,
}

impl<'d> Datum<'_, 'd, '_, '_> {
    /// A union's branch (counted as the walk counts a union), or `s` itself.
    fn branch(&mut self, s: &'d Schema) -> Option<&'d Schema> {
        match s {
            Schema::Union(u) => {
                self.w.step().ok()?;
                u.variants().get(usize::try_from(self.c.long().ok()?).ok()?)
            }
            s => Some(s),
        }
    }

    /// A map's entries appended to `out` (`None`: in key order, the last of a repeated key
    /// winning as in apache-avro's map value), or a scalar (`Some`).
    fn map_or_value(
        &mut self,
        s: &'d Schema,
        out: &mut Entries<'d>,
    ) -> Option<Option<RawValue<'d>>> {
        let s = self.branch(s)?;
        let Schema::Map(m) = s else {
            return self.value(s, false).map(Some);
        };
        self.w.step().ok()?;
        let start = out.len();
        loop {
            let n = self.c.long().ok()?;
            if n == 0 {
                break;
            }
            if n < 0 {
                self.c.len().ok()?;
            }
            for _ in 0..n.unsigned_abs() {
                self.w.step().ok()?;
                let k = self.text()?;
                out.push((Cow::Borrowed(k), self.value(&m.types, false)?));
            }
        }
        in_key_order(out, start);
        Some(None)
    }

    /// One scalar as [`super::record::scalar`] (or, for the timestamp, `timestamp`) gives it.
    fn value(&mut self, s: &'d Schema, ts: bool) -> Option<RawValue<'d>> {
        let s = self.branch(s)?;
        self.w.step().ok()?;
        let c = &mut *self.c;
        Some(match s {
            Schema::Null => RawValue::Null,
            Schema::Boolean => match c.byte().ok()? {
                0 => RawValue::Bool(false),
                1 => RawValue::Bool(true),
                _ => return None,
            },
            int_like!() => self.spare.int(i32::try_from(c.long().ok()?).ok()?.into()),
            Schema::TimestampMicros | Schema::LocalTimestampMicros if ts => {
                self.spare.int(c.long().ok()?.div_euclid(1000))
            }
            Schema::TimestampNanos | Schema::LocalTimestampNanos if ts => {
                self.spare.int(c.long().ok()?.div_euclid(1_000_000))
            }
            long_like!() => self.spare.int(c.long().ok()?),
            Schema::Float => {
                let b: [u8; 4] = c.take(4).ok()?.try_into().ok()?;
                self.spare.float(f32::from_le_bytes(b) as f64)
            }
            Schema::Double => {
                let b: [u8; 8] = c.take(8).ok()?.try_into().ok()?;
                self.spare.float(f64::from_le_bytes(b))
            }
            Schema::String => RawValue::Str(Cow::Borrowed(self.text()?)),
            Schema::Enum(e) => {
                let i = usize::try_from(c.long().ok()?).ok()?;
                RawValue::Str(Cow::Borrowed(e.symbols.get(i)?.as_str()))
            }
            _ => return None,
        })
    }

    /// A string, its bytes counted as payload.
    fn text(&mut self) -> Option<&'d str> {
        let b = self.c.bytes().ok()?;
        self.w.payload = self.w.payload.saturating_add(b.len());
        std::str::from_utf8(b).ok()
    }
}

/// Puts the map entries `out[start..]` in key order, the last of a repeated key kept (the
/// entries come in the writer's order, a hash map's on most writers).
fn in_key_order(out: &mut Entries<'_>, start: usize) {
    let entries = &mut out[start..];
    if entries.windows(2).all(|w| w[0].0 < w[1].0) {
        return;
    }
    // Reversed, a stable sort puts the last of equal keys first, and the dedup keeps it.
    entries.reverse();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut kept = start;
    for i in start..out.len() {
        if kept == start || out[kept - 1].0 != out[i].0 {
            out.swap(kept, i);
            kept += 1;
        }
    }
    out.truncate(kept);
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use apache_avro::types::Value;

    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"R","fields":[
      {"name":"tenant","type":"string"},
      {"name":"metric","type":{"type":"enum","name":"M","symbols":["boiler","meter"]}},
      {"name":"timestamp","type":["null",{"type":"long","logicalType":"timestamp-micros"}]},
      {"name":"count","type":"int"},
      {"name":"seen","type":{"type":"long","logicalType":"timestamp-nanos"}},
      {"name":"ratio","type":"float"},
      {"name":"fields","type":["null",{"type":"map","values":
        ["null","boolean","int","long","float","double","string"]}]}]}"#;

    fn zigzag(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    fn string(out: &mut Vec<u8>, s: &str) {
        zigzag(out, s.len() as i64);
        out.extend_from_slice(s.as_bytes());
    }

    /// The apache-avro path: its value, then `record`.
    fn via_values(schema: &Schema, datum: &[u8]) -> Result<RawRecord<'static>, Bad> {
        let v = apache_avro::from_avro_datum(schema, &mut &datum[..], None).unwrap();
        super::super::record::record(v, Position::default())
    }

    /// The direct decoding of a whole datum, its count checked against the walk's.
    fn direct<'d>(
        schema: &'d Schema,
        datum: &'d [u8],
        spare: &mut Spare,
    ) -> Option<Result<RawRecord<'d>, Bad>> {
        let names = apache_avro::schema::ResolvedSchema::try_from(schema).unwrap();
        let mut walk = Walk::new(names.get_names(), usize::MAX);
        walk.value(schema, &None, &mut Cursor::new(datum, 0), 0)
            .unwrap();
        let mut count = Walk::new(names.get_names(), usize::MAX);
        let mut c = Cursor::new(datum, 0);
        let rec = record(
            plan(schema)?,
            &mut c,
            &mut count,
            Position::default(),
            spare,
        )?;
        assert_eq!(c.left(), 0, "the datum read to its end");
        let counts = |w: &Walk| (w.steps, w.payload);
        assert_eq!(counts(&count), counts(&walk), "counted as the walk counts");
        let mut short = Walk::new(names.get_names(), walk.steps - 1);
        let again = record(
            plan(schema)?,
            &mut Cursor::new(datum, 0),
            &mut short,
            Position::default(),
            &mut Spare::default(),
        );
        assert!(
            again.is_none(),
            "more values than allowed are left to the walk"
        );
        Some(rec)
    }

    /// Decodes `datum` both ways and compares; the direct record is then handed back to
    /// `spare`, as the decoder does, so the next datum reuses its vector and texts.
    fn both(schema: &Schema, datum: &[u8], spare: &mut Spare) {
        let direct = direct(schema, datum, spare).expect("decodes directly");
        // (Debug: a raw record has no PartialEq; borrowed and owned text print alike)
        let (got, want) = (
            format!("{direct:?}"),
            format!("{:?}", via_values(schema, datum)),
        );
        assert_eq!(got, want, "datum {datum:?}");
        if let Ok(rec) = direct {
            spare.reclaim(rec);
        }
    }

    #[test]
    fn direct_decoding_gives_what_apache_avro_values_give() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let union = |i: u32, v: Value| Value::Union(i, Box::new(v));
        let map = |pairs: &[(&str, Value)]| {
            let m: HashMap<String, Value> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            union(1, Value::Map(m))
        };
        let fields = [
            map(&[
                ("temp", union(5, Value::Double(21.25))),
                ("on", union(1, Value::Boolean(true))),
                ("n", union(2, Value::Int(-7))),
                ("big", union(3, Value::Long(1 << 60))),
                ("f", union(4, Value::Float(0.1))),
                ("inf", union(5, Value::Double(f64::INFINITY))),
                ("site", union(6, Value::String("Zürich".into()))),
                ("gone", union(0, Value::Null)),
            ]),
            union(0, Value::Null),
            map(&[("tenant", union(6, Value::String("other".into())))]),
            map(&[
                ("b", union(3, Value::Long(3))),
                ("a", union(5, Value::Double(-0.5))),
            ]),
        ];
        let mut spare = Spare::default();
        for (i, f) in fields.into_iter().enumerate() {
            let value = Value::Record(vec![
                ("tenant".into(), Value::String("t01".into())),
                ("metric".into(), Value::Enum(1, "meter".into())),
                (
                    "timestamp".into(),
                    union(1, Value::TimestampMicros(-1_767_225_600_123_456 + i as i64)),
                ),
                ("count".into(), Value::Int(i32::MIN)),
                ("seen".into(), Value::TimestampNanos(-5)),
                ("ratio".into(), Value::Float(f32::NAN)),
                ("fields".into(), f),
            ]);
            let datum = apache_avro::to_avro_datum(&schema, value).unwrap();
            // One spare for all: a later record's numbers are written over an earlier one's.
            both(&schema, &datum, &mut spare);
        }
        assert!(!spare.texts.is_empty(), "number texts were handed back");
    }

    #[test]
    fn a_repeated_map_key_keeps_its_last_value_as_apache_avro_maps_do() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let mut d = Vec::new();
        string(&mut d, "t01");
        zigzag(&mut d, 0); // metric: boiler
        zigzag(&mut d, 1);
        zigzag(&mut d, 1_767_225_600_000_000);
        zigzag(&mut d, 3);
        zigzag(&mut d, 9);
        d.extend_from_slice(&1.5f32.to_le_bytes());
        zigzag(&mut d, 1); // fields: the map
        zigzag(&mut d, -3); // a block of 3 entries with its byte size
        zigzag(&mut d, 0);
        for (k, v) in [("b", 1), ("a", 2), ("b", 3)] {
            string(&mut d, k);
            zigzag(&mut d, 2);
            zigzag(&mut d, v);
        }
        zigzag(&mut d, 0);
        both(&schema, &d, &mut Spare::default());
        let rec = direct(&schema, &d, &mut Spare::default()).unwrap().unwrap();
        let got: Vec<_> = rec.fields[3..]
            .iter()
            .map(|(k, v)| (k.as_ref(), v.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", RawValue::Number("2".into())),
                ("b", RawValue::Number("3".into()))
            ]
        );
    }

    #[test]
    fn text_that_is_not_utf8_is_left_to_apache_avro_and_nested_schemas_are_not_planned() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let mut d = Vec::new();
        zigzag(&mut d, 2);
        d.extend_from_slice(&[0xff, 0xfe]);
        let names = apache_avro::schema::ResolvedSchema::try_from(&schema).unwrap();
        let mut w = Walk::new(names.get_names(), usize::MAX);
        let r = plan(&schema).unwrap();
        let mut spare = Spare::default();
        assert!(record(
            r,
            &mut Cursor::new(&d, 0),
            &mut w,
            Position::default(),
            &mut spare
        )
        .is_none());
        let nested = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"tenant","type":"string"},
            {"name":"pos","type":{"type":"array","items":"double"}}]}"#,
        )
        .unwrap();
        assert!(plan(&nested).is_none());
    }
}
