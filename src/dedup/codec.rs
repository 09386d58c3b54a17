//! Compact binary form of admitted records while they wait (in memory or spilled) for their
//! partition to be merged: key time, provenance, metric as sent and the fields as sent.

use std::sync::Arc;

use bytes::Bytes;

use crate::model::RawValue;
use crate::model::{Arrival, FastMap, Rec};
use crate::resolve::raw::{self, put_str};

/// Appends one record: ts, object index, position, metric as sent, encoded fields.
pub fn encode(
    out: &mut Vec<u8>,
    ts: i64,
    object: u32,
    position: u64,
    metric_sent: &str,
    fields: &[(std::borrow::Cow<'_, str>, RawValue<'_>)],
) {
    out.extend_from_slice(&ts.to_le_bytes());
    out.extend_from_slice(&object.to_le_bytes());
    out.extend_from_slice(&position.to_le_bytes());
    put_str(out, metric_sent);
    // The body goes straight after room for a 2-byte length (most bodies), which is then
    // fitted to the length's varint.
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    raw::encode(out, fields);
    let (len, k) = raw::varint(out.len() - at - 2);
    match k {
        2 => out[at..at + 2].copy_from_slice(&len[..2]),
        _ => drop(out.splice(at..at + 2, len[..k].iter().copied())),
    }
}

/// Where each object index came from: key and delivery time.
pub type ObjectTable = [(Arc<str>, i64)];

/// Decodes every record in `shared` (written by [`encode`]), not yet resolved; their fields as
/// sent are slices of `shared`.
pub fn decode_all(shared: &Bytes, objects: &ObjectTable, names: &mut Interner, out: &mut Vec<Rec>) {
    let buf = &shared[..];
    let mut r = Reader { buf, pos: 0 };
    while r.pos < buf.len() {
        let ts = r.i64();
        let object = r.u32() as usize;
        let position = r.u64();
        let metric_sent = names.get(r.str());
        let n = r.len();
        let raw = shared.slice(r.pos..r.pos + n);
        r.pos += n;
        let (source, delivery_ms) = &objects[object];
        out.push(Rec {
            ts,
            arrival: Arrival {
                delivery_ms: *delivery_ms,
                source: source.clone(),
                position,
            },
            metric_sent,
            raw,
            typed: Vec::new(),
            untyped: Vec::new(),
            hash: 0,
        });
    }
}

/// How many bytes at the start of `buf` are whole records (the rest is a record cut short,
/// waiting for the next block of a file read in blocks).
pub fn whole_records(buf: &[u8]) -> usize {
    let varint = |pos: &mut usize| -> Option<usize> {
        let (mut n, mut shift) = (0usize, 0);
        loop {
            let b = *buf.get(*pos)?;
            *pos += 1;
            n |= ((b & 0x7f) as usize) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
            shift += 7;
        }
    };
    let mut done = 0;
    loop {
        let mut pos = done + 20;
        let Some(metric) = varint(&mut pos) else {
            return done;
        };
        pos += metric;
        let Some(body) = varint(&mut pos) else {
            return done;
        };
        pos += body;
        if pos > buf.len() {
            return done;
        }
        done = pos;
    }
}

/// How many records `buf` (whole records) holds.
pub fn count_records(buf: &[u8]) -> u64 {
    let mut r = Reader { buf, pos: 0 };
    let mut n = 0;
    while r.pos < buf.len() {
        r.pos += 20;
        let metric = r.len();
        r.pos += metric;
        let body = r.len();
        r.pos += body;
        n += 1;
    }
    n
}

/// Shares one `Arc<str>` per distinct name.
#[derive(Default)]
pub struct Interner(FastMap<String, Arc<str>>);

impl Interner {
    /// The shared name.
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(s.to_string(), a.clone());
        a
    }
}

/// Reads what [`encode`] wrote to an in-process buffer (never external input).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.take(8).try_into().expect("8 bytes"))
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().expect("8 bytes"))
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().expect("4 bytes"))
    }
    fn len(&mut self) -> usize {
        let mut n = 0usize;
        let mut shift = 0;
        loop {
            let b = self.take(1)[0];
            n |= ((b & 0x7f) as usize) << shift;
            if b & 0x80 == 0 {
                return n;
            }
            shift += 7;
        }
    }
    fn str(&mut self) -> &'a str {
        let n = self.len();
        // Written from &str by `put_str`, so always UTF-8.
        std::str::from_utf8(self.take(n)).expect("utf-8 written by encode")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::raw::RawFields;

    #[test]
    fn encode_decode_round_trip() {
        let fields: RawFields<'_> = vec![
            ("a".into(), RawValue::Number("-7".into())),
            ("c".into(), RawValue::Str("x\u{e9}".repeat(100).into())),
            ("n".into(), RawValue::Null),
        ];
        let mut buf = Vec::new();
        encode(&mut buf, 86_400_123, 1, 42, "machine1", &fields);
        let first = buf.len();
        encode(&mut buf, 5, 0, 7, "boiler", &[]);
        let second = buf.len();
        // A body whose length takes three bytes.
        let long: RawFields<'_> = vec![("l".into(), RawValue::Str("y".repeat(20_000).into()))];
        encode(&mut buf, 6, 0, 8, "boiler", &long);
        let objects: Vec<(Arc<str>, i64)> = vec![("o0".into(), 5), ("o1".into(), 9)];
        let mut out = Vec::new();
        decode_all(
            &buf.clone().into(),
            &objects,
            &mut Interner::default(),
            &mut out,
        );
        assert_eq!(out.len(), 3);
        assert_eq!(count_records(&buf), 3);
        assert_eq!(whole_records(&buf), buf.len());
        assert_eq!(raw::decode(&out[2].raw).unwrap(), long);
        assert_eq!(out[0].ts, 86_400_123);
        assert_eq!(out[0].metric_sent.as_ref(), "machine1");
        assert_eq!(raw::decode(&out[0].raw).unwrap(), fields);
        assert_eq!(
            out[0].arrival,
            Arrival {
                delivery_ms: 9,
                source: "o1".into(),
                position: 42
            }
        );
        assert_eq!(out[1].arrival.source.as_ref(), "o0");
        assert_eq!(raw::decode(&out[1].raw).unwrap(), vec![]);
        for cut in 0..=buf.len() {
            let want = [buf.len(), second, first, 0]
                .into_iter()
                .find(|&end| end <= cut)
                .unwrap();
            assert_eq!(whole_records(&buf[..cut]), want, "cut at {cut}");
        }
    }
}
