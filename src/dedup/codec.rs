//! Compact binary form of resolved records while they wait (in memory or spilled) for their
//! partition to be merged.

use std::sync::Arc;

use crate::model::{Arrival, FastMap, Rec, TypedValue};
use crate::resolve::Resolved;

/// Appends one record: ts, object index, position, hash, typed values, untyped pairs.
pub fn encode(out: &mut Vec<u8>, r: &Resolved, object: u32, position: u64) {
    out.extend_from_slice(&r.ts.to_le_bytes());
    out.extend_from_slice(&object.to_le_bytes());
    out.extend_from_slice(&position.to_le_bytes());
    out.extend_from_slice(&r.hash.to_le_bytes());
    put_len(out, r.typed.len());
    for (name, v) in &r.typed {
        put_str(out, name);
        match v {
            TypedValue::Null => out.push(0),
            TypedValue::Bool(b) => out.extend_from_slice(&[1, *b as u8]),
            TypedValue::Int(i) => {
                out.push(2);
                out.extend_from_slice(&i.to_le_bytes());
            }
            TypedValue::Float(f) => {
                out.push(3);
                out.extend_from_slice(&f.to_le_bytes());
            }
            TypedValue::Str(s) => {
                out.push(4);
                put_str(out, s);
            }
        }
    }
    put_len(out, r.untyped.len());
    for (k, v) in &r.untyped {
        put_str(out, k);
        put_str(out, v);
    }
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// Where each object index came from: key and delivery time.
pub type ObjectTable = [(Arc<str>, i64)];

/// Decodes every record in `buf` (written by [`encode`]).
pub fn decode_all(buf: &[u8], objects: &ObjectTable, names: &mut Interner, out: &mut Vec<Rec>) {
    let mut r = Reader { buf, pos: 0 };
    while r.pos < buf.len() {
        let ts = r.i64();
        let object = r.u32() as usize;
        let position = r.u64();
        let hash = r.u64();
        let n = r.len();
        let mut typed = Vec::with_capacity(n);
        for _ in 0..n {
            let name = names.get(r.str());
            let v = match r.byte() {
                0 => TypedValue::Null,
                1 => TypedValue::Bool(r.byte() != 0),
                2 => TypedValue::Int(r.i64()),
                3 => TypedValue::Float(f64::from_bits(r.u64())),
                _ => TypedValue::Str(r.str().to_string()),
            };
            typed.push((name, v));
        }
        let n = r.len();
        let mut untyped = Vec::with_capacity(n);
        for _ in 0..n {
            let k = r.str().to_string();
            untyped.push((k, r.str().to_string()));
        }
        let (source, delivery_ms) = &objects[object];
        out.push(Rec {
            ts,
            arrival: Arrival {
                delivery_ms: *delivery_ms,
                source: source.clone(),
                position,
            },
            typed,
            untyped,
            hash,
        });
    }
}

/// Shares one `Arc<str>` per distinct column name.
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
    fn byte(&mut self) -> u8 {
        self.take(1)[0]
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
            let b = self.byte();
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
    use crate::model::{content_hash, PartitionKey};

    #[test]
    fn encode_decode_round_trip() {
        let typed = vec![
            (Arc::<str>::from("a"), TypedValue::Int(-7)),
            (Arc::<str>::from("b"), TypedValue::Float(1.5)),
            (Arc::<str>::from("c"), TypedValue::Str("x\u{e9}".into())),
            (Arc::<str>::from("d"), TypedValue::Bool(true)),
        ];
        let untyped = vec![("k".to_string(), "v".repeat(300))];
        let r = Resolved {
            key: PartitionKey {
                tenant: "t".into(),
                metric: "m".into(),
                day: 1,
            },
            known: true,
            ts: 86_400_123,
            hash: content_hash(&typed, &untyped),
            typed: typed.clone(),
            untyped: untyped.clone(),
            mismatches: vec![],
        };
        let mut buf = Vec::new();
        encode(&mut buf, &r, 1, 42);
        encode(&mut buf, &r, 0, 7);
        let objects: Vec<(Arc<str>, i64)> = vec![("o0".into(), 5), ("o1".into(), 9)];
        let mut out = Vec::new();
        decode_all(&buf, &objects, &mut Interner::default(), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].ts, out[0].hash), (r.ts, r.hash));
        assert_eq!(out[0].typed, typed);
        assert_eq!(out[0].untyped, untyped);
        assert_eq!(
            out[0].arrival,
            Arrival {
                delivery_ms: 9,
                source: "o1".into(),
                position: 42
            }
        );
        assert_eq!(out[1].arrival.source.as_ref(), "o0");
    }
}
