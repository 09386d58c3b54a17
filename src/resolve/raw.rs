//! A record's fields as sent, in a compact binary form kept with the record (in buckets and in
//! the lake index), so any later catalog can resolve it again exactly as if it were new.

use std::borrow::Cow;

use crate::model::RawValue;

/// Fields of a record in the order sent: names with their values' JSON kind and text.
pub type RawFields<'a> = Vec<(Cow<'a, str>, RawValue<'a>)>;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const NUMBER: u8 = 3;
const STR: u8 = 4;
const NESTED: u8 = 5;

/// Appends the encoding of `fields` to `out`.
pub fn encode(out: &mut Vec<u8>, fields: &[(Cow<'_, str>, RawValue<'_>)]) {
    put_len(out, fields.len());
    for (name, v) in fields {
        put_str(out, name);
        match v {
            RawValue::Null => out.push(NULL),
            RawValue::Bool(false) => out.push(FALSE),
            RawValue::Bool(true) => out.push(TRUE),
            RawValue::Number(s) => {
                out.push(NUMBER);
                put_str(out, s);
            }
            RawValue::Str(s) => {
                out.push(STR);
                put_str(out, s);
            }
            RawValue::Nested(s) => {
                out.push(NESTED);
                put_str(out, s);
            }
        }
    }
}

/// Decodes fields written by [`encode`], borrowing the text from `buf`. `None` when the bytes
/// are not such an encoding (a damaged index).
pub fn decode(buf: &[u8]) -> Option<RawFields<'_>> {
    let mut out = Vec::new();
    decode_into(buf, &mut out)?;
    Some(out)
}

/// [`decode`] into `out` (cleared first), so one vector serves record after record.
pub fn decode_into<'a>(buf: &'a [u8], out: &mut RawFields<'a>) -> Option<()> {
    out.clear();
    // Usually the whole encoding is UTF-8 (the lengths are single bytes below 128): then it is
    // checked once, not string by string.
    let text = simdutf8::basic::from_utf8(buf).ok();
    let mut r = Reader { buf, pos: 0, text };
    let n = r.len()?;
    out.reserve(n.min(buf.len()));
    for _ in 0..n {
        let name = r.str()?;
        let v = match r.byte()? {
            NULL => RawValue::Null,
            FALSE => RawValue::Bool(false),
            TRUE => RawValue::Bool(true),
            NUMBER => RawValue::Number(Cow::Borrowed(r.str()?)),
            STR => RawValue::Str(Cow::Borrowed(r.str()?)),
            NESTED => RawValue::Nested(Cow::Borrowed(r.str()?)),
            _ => return None,
        };
        out.push((Cow::Borrowed(name), v));
    }
    (r.pos == buf.len()).then_some(())
}

/// An empty vector with `v`'s allocation, for fields borrowed from another buffer.
// Not `filter`: the items change type (their lifetime).
#[allow(clippy::unnecessary_filter_map)]
pub fn recycle<'b>(mut v: RawFields<'_>) -> RawFields<'b> {
    v.clear();
    // Collecting a vector's own iterator into a vector of the same layout reuses its memory.
    v.into_iter().filter_map(|_| None).collect()
}

/// Field names of an encoding, as bytes, skipping the values without decoding them (for the
/// partition's name summary; names are UTF-8 when the encoding is whole).
pub fn name_bytes(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut r = Reader {
        buf,
        pos: 0,
        text: None,
    };
    let n = r.len().unwrap_or(0);
    (0..n).map_while(move |_| {
        let name = r.bytes()?;
        match r.byte()? {
            NULL | FALSE | TRUE => {}
            NUMBER | STR | NESTED => {
                r.bytes()?;
            }
            _ => return None,
        }
        Some(name)
    })
}

/// Writes a LEB128 length.
#[inline]
pub fn put_len(out: &mut Vec<u8>, mut n: usize) {
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

/// `n` as a LEB128 varint ([`put_len`]'s bytes): its bytes and how many of them.
pub fn varint(mut n: usize) -> ([u8; 10], usize) {
    let mut out = [0u8; 10];
    let mut k = 0;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out[k] = b;
            return (out, k + 1);
        }
        out[k] = b | 0x80;
        k += 1;
    }
}

/// Writes a length-prefixed string.
#[inline]
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// `buf` as text when it is UTF-8 as a whole: a string in it is then a slice of it.
    text: Option<&'a str>,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn len(&mut self) -> Option<usize> {
        let mut n = 0usize;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= ((b & 0x7f) as usize) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len())?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Some(b)
    }
    fn str(&mut self) -> Option<&'a str> {
        let bytes = self.bytes()?;
        let whole = self
            .text
            .and_then(|t| t.get(self.pos - bytes.len()..self.pos));
        whole.or_else(|| std::str::from_utf8(bytes).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_kinds_order_and_nulls() {
        let fields: RawFields<'_> = vec![
            ("b".into(), RawValue::Str("21.5".into())),
            ("a".into(), RawValue::Number("21.5".into())),
            ("n".into(), RawValue::Null),
            ("t".into(), RawValue::Bool(true)),
            ("f".into(), RawValue::Bool(false)),
            ("j".into(), RawValue::Nested("{\"x\":[1]}".into())),
            ("é".into(), RawValue::Str("x".repeat(300).into())),
        ];
        let mut buf = Vec::new();
        encode(&mut buf, &fields);
        assert_eq!(decode(&buf).unwrap(), fields);
        assert_eq!(
            name_bytes(&buf).collect::<Vec<_>>(),
            ["b", "a", "n", "t", "f", "j", "é"].map(str::as_bytes)
        );
        assert!(decode(&buf[..buf.len() - 1]).is_none());
        assert!(decode(&[1, 1, b'a', 9]).is_none());
    }

    #[test]
    fn an_encoding_read_as_text_or_string_by_string_decodes_the_same() {
        // UTF-8 as a whole (lengths below 128), with strings that are not ASCII.
        let fields: RawFields<'_> = vec![
            ("é".into(), RawValue::Str("日本".into())),
            ("a".into(), RawValue::Number("1".into())),
        ];
        let mut buf = Vec::new();
        encode(&mut buf, &fields);
        assert!(std::str::from_utf8(&buf).is_ok());
        assert_eq!(decode(&buf).unwrap(), fields);
        // Not UTF-8 as a whole (a length of 200), and a string that is not UTF-8.
        let fields: RawFields<'_> = vec![("b".repeat(200).into(), RawValue::Null)];
        let mut buf = Vec::new();
        encode(&mut buf, &fields);
        assert!(std::str::from_utf8(&buf).is_err());
        assert_eq!(decode(&buf).unwrap(), fields);
        assert!(decode(&[1, 1, 0xff, 0]).is_none());
    }
}
