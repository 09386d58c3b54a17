//! JSON Lines: one flat object per line, parsed without copying keys or plain strings.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue as JsonRaw;

use super::flat;
use super::gzip::Cut;
use super::{Limits, RecordSink};
use crate::model::{Position, RawRecord, RawValue};
use crate::quarantine::{BadRecord, Raw, Reason};
use crate::resolve::raw::RawFields;

/// Decodes JSON Lines; `cuts` are where damaged gzip members stopped (see [`Cut`]).
pub fn decode(data: &[u8], cuts: &[Cut], limits: &Limits, sink: &mut dyn RecordSink) {
    // The vector every line's fields are parsed into, handed back after the sink saw them.
    let mut spare = Vec::with_capacity(16);
    let mut ordinal = 0u64;
    let mut line_no = 0u64;
    let mut seg_start = 0usize;
    let ends = cuts.iter().map(Some).chain(std::iter::once(None::<&Cut>));
    for cut in ends {
        let seg_end = cut
            .map_or(data.len(), |c| c.at)
            .clamp(seg_start, data.len());
        let untrusted_from = cut.and_then(|c| c.untrusted_from).unwrap_or(usize::MAX);
        let mut pos = seg_start;
        while pos < seg_end {
            let nl = memchr::memchr(b'\n', &data[pos..seg_end]).map(|i| pos + i);
            let end = nl.unwrap_or(seg_end);
            line_no += 1;
            let line = trim(&data[pos..end], pos == 0);
            let position = Position {
                record: ordinal,
                line: Some(line_no),
                byte_offset: Some(pos as u64),
                ..Default::default()
            };
            if !line.is_empty() {
                ordinal += 1;
                match cut {
                    Some(c) if nl.is_none() => sink.bad(bad(
                        c.reason,
                        "record cut off by a damaged gzip member".into(),
                        position,
                        line,
                        limits,
                    )),
                    Some(_) if end > untrusted_from => sink.bad(bad(
                        Reason::CorruptObject,
                        "record decoded from a gzip member that failed its integrity check".into(),
                        position,
                        line,
                        limits,
                    )),
                    _ => one_line(line, position, limits, sink, &mut spare),
                }
            }
            pos = end + 1;
        }
        seg_start = seg_end;
    }
}

fn trim(line: &[u8], first: bool) -> &[u8] {
    let line = if first {
        line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
    } else {
        line
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        &[]
    } else {
        line
    }
}

fn one_line<'a>(
    line: &'a [u8],
    position: Position,
    limits: &Limits,
    sink: &mut dyn RecordSink,
    spare: &mut RawFields<'a>,
) {
    if line.len() > limits.max_record_bytes {
        let msg = format!(
            "line of {} bytes exceeds the {} byte limit",
            line.len(),
            limits.max_record_bytes
        );
        sink.bad(bad(Reason::RecordTooLarge, msg, position, line, limits));
        return;
    }
    match parse_with(line, position, flat::scan, std::mem::take(spare)) {
        Ok(rec) => {
            sink.record(&rec);
            *spare = rec.fields;
        }
        Err((reason, msg)) => sink.bad(bad(reason, msg, position, line, limits)),
    }
}

fn bad(
    reason: Reason,
    message: String,
    position: Position,
    line: &[u8],
    limits: &Limits,
) -> BadRecord {
    BadRecord {
        reason,
        message,
        position,
        tenant: None,
        raw: Raw::from_bytes(line, limits.max_raw_bytes),
        object_level: false,
    }
}

/// Parses one JSON line into a raw record (fields borrowed from the line where possible).
pub fn parse_line(line: &[u8], position: Position) -> Result<RawRecord<'_>, (Reason, String)> {
    parse_with(line, position, flat::scan, Vec::with_capacity(16))
}

/// [`parse_line`] with `fast` tried before the general parser; `fast` fills `spare` (whose
/// memory the record's fields then keep).
pub(super) fn parse_with<'a>(
    line: &'a [u8],
    position: Position,
    fast: impl Fn(&'a str, &mut RawFields<'a>) -> Option<()>,
    mut spare: RawFields<'a>,
) -> Result<RawRecord<'a>, (Reason, String)> {
    let text = simdutf8::basic::from_utf8(line).map_err(|_| {
        let at = std::str::from_utf8(line).map_or_else(|e| e.valid_up_to(), str::len);
        (Reason::BadJson, format!("invalid UTF-8 at byte {at}"))
    })?;
    let mut fields = match fast(text, &mut spare) {
        Some(()) => no_duplicate_key(spare)?,
        None => parse_pairs(text)?,
    };
    let mut rec = RawRecord::empty(0, position);
    rec.sent = line;
    fields.retain_mut(|(k, value)| {
        let reserved = match k.as_ref() {
            "tenant" => &mut rec.tenant,
            "metric" => &mut rec.metric,
            "timestamp" => &mut rec.timestamp,
            _ => return true,
        };
        *reserved = std::mem::replace(value, RawValue::Null);
        false
    });
    rec.fields = fields;
    Ok(rec)
}

/// A line's keys and values by the general parser (any JSON object); a repeated key is told
/// before any value's own trouble.
pub(super) fn parse_pairs(text: &str) -> Result<RawFields<'_>, (Reason, String)> {
    let mut de = serde_json::Deserializer::from_str(text);
    let pairs = de
        .deserialize_map(PairsVisitor)
        .and_then(|p| de.end().map(|_| p))
        .map_err(|e| (Reason::BadJson, e.to_string()))?;
    no_duplicate_key(pairs)?
        .into_iter()
        .map(|(k, v)| Ok((k, classify(v).map_err(|e| (Reason::BadJson, e))?)))
        .collect()
}

/// Keys with their values (parsed or still raw), in the order sent.
type Keyed<'a, V> = Vec<(Cow<'a, str>, V)>;

/// `pairs` when no key appears twice.
fn no_duplicate_key<V>(pairs: Keyed<'_, V>) -> Result<Keyed<'_, V>, (Reason, String)> {
    match duplicate_key(&pairs) {
        Some(k) => Err((Reason::DuplicateKey, format!("key {k:?} appears twice"))),
        None => Ok(pairs),
    }
}

/// The first key that appears twice, if any.
fn duplicate_key<'a, V>(pairs: &'a [(Cow<'_, str>, V)]) -> Option<&'a str> {
    first_key_that(pairs, |_| false)
}

/// The first key, in order, that `bad` refuses or that repeats an earlier one. A key is
/// compared with the earlier ones only when its length and last byte were seen before
/// (rarely, for distinct keys).
pub(super) fn first_key_that<'a, V>(
    pairs: &'a [(Cow<'_, str>, V)],
    bad: impl Fn(&str) -> bool,
) -> Option<&'a str> {
    if pairs.len() <= 16 {
        let mut seen = 0u64;
        return pairs
            .iter()
            .enumerate()
            .find(|(i, (k, _))| {
                let b = k.as_bytes();
                let bit = 1u64 << ((b.len() * 7 + b.last().map_or(0, |&c| c as usize)) % 64);
                let again = seen & bit != 0 && pairs[..*i].iter().any(|(p, _)| p == k);
                seen |= bit;
                again || bad(k)
            })
            .map(|(_, (k, _))| k.as_ref());
    }
    let mut seen = std::collections::HashSet::with_capacity(pairs.len());
    pairs
        .iter()
        .map(|(k, _)| k.as_ref())
        .find(|k| !seen.insert(*k) || bad(k))
}

/// Turns a raw JSON value into a field value: scalars as text, nested values as compact JSON.
fn classify(v: &JsonRaw) -> Result<RawValue<'_>, String> {
    let s = v.get();
    Ok(match s.as_bytes()[0] {
        b'n' => RawValue::Null,
        b't' => RawValue::Bool(true),
        b'f' => RawValue::Bool(false),
        b'"' => {
            let inner = &s[1..s.len() - 1];
            if inner.contains('\\') {
                RawValue::Str(Cow::Owned(
                    serde_json::from_str::<String>(s).map_err(|e| e.to_string())?,
                ))
            } else {
                RawValue::Str(Cow::Borrowed(inner))
            }
        }
        b'{' | b'[' => {
            let value: serde_json::Value = serde_json::from_str(s).map_err(|e| e.to_string())?;
            RawValue::Nested(Cow::Owned(value.to_string()))
        }
        _ => RawValue::Number(Cow::Borrowed(s)),
    })
}

type Pairs<'de> = Keyed<'de, &'de JsonRaw>;

struct PairsVisitor;

impl<'de> Visitor<'de> for PairsVisitor {
    type Value = Pairs<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(k) = map.next_key::<Key<'de>>()? {
            out.push((k.0, map.next_value::<&'de JsonRaw>()?));
        }
        Ok(out)
    }
}

struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::testing::Collect;

    #[test]
    fn lines_fields_and_errors() {
        let data = b"{\"tenant\":\"t1\",\"metric\":\"m\",\"timestamp\":5,\"a\":1.5,\"b\":\"x\\\"y\",\"c\":{\"k\": [1, 2]},\"d\":null}\n\n{bad\n{\"a\":1,\"a\":2}\r\n[1]\n";
        let mut sink = Collect::default();
        decode(data, &[], &Limits::default(), &mut sink);
        assert_eq!(sink.records.len(), 1);
        let r = &sink.records[0];
        assert_eq!(r.tenant, RawValue::Str("t1".into()));
        assert_eq!(r.timestamp, RawValue::Number("5".into()));
        assert_eq!(r.fields[1].1, RawValue::Str("x\"y".into()));
        assert_eq!(r.fields[2].1, RawValue::Nested("{\"k\":[1,2]}".into()));
        assert_eq!(r.fields[3].1, RawValue::Null);
        let reasons: Vec<_> = sink
            .bad
            .iter()
            .map(|b| (b.reason, b.position.line))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (Reason::BadJson, Some(3)),
                (Reason::DuplicateKey, Some(4)),
                (Reason::BadJson, Some(5))
            ]
        );
        assert_eq!(sink.bad[0].position.record, 1);
    }

    #[test]
    fn a_repeated_key_is_found_wherever_it_is() {
        let line = |keys: &[String]| {
            let pairs: Vec<String> = keys.iter().map(|k| format!("{k:?}:1")).collect();
            format!("{{{}}}", pairs.join(","))
        };
        for n in [2, 10, 16, 17, 40] {
            // Keys of one length and last byte, and keys of many.
            let same: Vec<String> = (0..n).map(|i| format!("k{i:03}x")).collect();
            let varied: Vec<String> = (0..n).map(|i| "v".repeat(i + 1)).collect();
            for keys in [same, varied] {
                let ok = line(&keys);
                assert!(
                    parse_line(ok.as_bytes(), Position::default()).is_ok(),
                    "{ok}"
                );
                for (a, b) in [(0, n - 1), (n / 2 - 1, n - 1), (0, 1)] {
                    let mut dup = keys.clone();
                    dup[b] = dup[a].clone();
                    let text = line(&dup);
                    let err = parse_line(text.as_bytes(), Position::default()).unwrap_err();
                    assert_eq!(err.0, Reason::DuplicateKey, "{text}");
                    assert_eq!(err.1, format!("key {:?} appears twice", dup[a]));
                }
            }
        }
    }

    #[test]
    fn invalid_utf8_is_named_with_its_byte() {
        for line in [&b"{\"a\":\"\xff\"}"[..], b"{\"\xc3\":1}", b"{\"a\":1}\xff"] {
            let err = parse_line(line, Position::default()).unwrap_err();
            let at = std::str::from_utf8(line).unwrap_err().valid_up_to();
            assert_eq!(
                err,
                (Reason::BadJson, format!("invalid UTF-8 at byte {at}"))
            );
        }
    }

    #[test]
    fn lines_of_a_damaged_gzip_member() {
        let good = br#"{"tenant":"t1","metric":"m","timestamp":1}"#;
        let mut data = good.to_vec();
        data.push(b'\n');
        let member_start = data.len();
        data.extend_from_slice(b"{\"tenant\":\"t1\",\"metric\":\"m\",\"timestamp\":2}\n{\"ten");
        let cut = |reason, untrusted_from| Cut {
            at: data.len(),
            reason,
            untrusted_from,
        };
        let outcome = |cuts: &[Cut]| {
            let mut sink = Collect::default();
            decode(&data, cuts, &Limits::default(), &mut sink);
            let bad: Vec<_> = sink
                .bad
                .iter()
                .map(|b| (b.reason, b.position.record))
                .collect();
            (sink.records.len(), bad)
        };
        // Cut short: the complete line is kept, the partial one is the damage.
        assert_eq!(
            outcome(&[cut(Reason::TruncatedObject, None)]),
            (2, vec![(Reason::TruncatedObject, 2)])
        );
        // Failed its check: nothing it produced is kept, earlier members are.
        assert_eq!(
            outcome(&[cut(Reason::CorruptObject, Some(member_start))]),
            (
                1,
                vec![(Reason::CorruptObject, 1), (Reason::CorruptObject, 2)]
            )
        );
    }
}
