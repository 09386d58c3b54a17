//! The Avro container header: a bounds-checked cursor over the bytes, the metadata map (schema
//! and codec), the sync marker, and a name check that keeps hostile schemas from the parser.

use apache_avro::schema::Schema;

use super::codec::Codec;
use crate::quarantine::Reason;

/// Why reading stopped.
#[derive(Debug, PartialEq)]
pub(super) enum Fault {
    /// The bytes end inside the item being read.
    Short,
    /// The bytes are not a valid encoding.
    Invalid(String),
    /// More values than a record may decode to.
    TooMany,
}

impl Fault {
    pub(super) fn describe(&self) -> String {
        match self {
            Fault::Short => "the data ends early".into(),
            Fault::Invalid(m) => m.clone(),
            Fault::TooMany => "too many values".into(),
        }
    }
}

/// A read position in a byte slice; every length is checked against what is left.
pub(super) struct Cursor<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(buf: &'a [u8], pos: usize) -> Self {
        Cursor { buf, pos }
    }

    pub(super) fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], Fault> {
        if n > self.left() {
            return Err(Fault::Short);
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(super) fn byte(&mut self) -> Result<u8, Fault> {
        Ok(self.take(1)?[0])
    }

    /// A zig-zag varint long (at most 10 bytes).
    #[inline]
    pub(super) fn long(&mut self) -> Result<i64, Fault> {
        // Most varints are one byte: union branches, map block counts, short lengths.
        match self.buf.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(i64::from(b >> 1) ^ -i64::from(b & 1))
            }
            _ => self.long_varint(),
        }
    }

    fn long_varint(&mut self) -> Result<i64, Fault> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err(Fault::Invalid("varint longer than 64 bits".into()));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((v >> 1) as i64 ^ -((v & 1) as i64));
            }
        }
        Err(Fault::Invalid("varint longer than 64 bits".into()))
    }

    /// A non-negative length.
    pub(super) fn len(&mut self) -> Result<usize, Fault> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| Fault::Invalid(format!("negative length {n}")))
    }

    /// Length-prefixed bytes.
    pub(super) fn bytes(&mut self) -> Result<&'a [u8], Fault> {
        let n = self.len()?;
        self.take(n)
    }
}

/// The container header.
pub(super) struct Header {
    pub(super) schema: Schema,
    pub(super) codec: Codec,
    pub(super) sync: [u8; 16],
    /// Offset of the first block.
    pub(super) end: usize,
}

pub(super) fn header(bytes: &[u8]) -> Result<Header, (Reason, String)> {
    let fault = |f: Fault| match f {
        Fault::Short => (
            Reason::TruncatedObject,
            "the Avro header ends early (or claims more bytes than the object has)".into(),
        ),
        other => (
            Reason::CorruptObject,
            format!("unreadable Avro header: {}", other.describe()),
        ),
    };
    let mut c = Cursor::new(bytes, crate::decode::AVRO_MAGIC.len());
    let (mut schema, mut codec) = (None, None);
    loop {
        let mut count = c.long().map_err(fault)?;
        if count == 0 {
            break;
        }
        if count < 0 {
            c.long().map_err(fault)?; // the block's byte size
            count = count.checked_neg().unwrap_or(i64::MAX);
        }
        for _ in 0..count {
            let key = c.bytes().map_err(fault)?;
            let value = c.bytes().map_err(fault)?;
            match key {
                b"avro.schema" => schema = Some(value),
                b"avro.codec" => codec = Some(value),
                _ => {}
            }
        }
    }
    let sync: [u8; 16] = c.take(16).map_err(fault)?.try_into().expect("16 bytes");
    let codec = match codec {
        None => Codec::Null,
        Some(name) => Codec::from_name(name).ok_or_else(|| {
            (
                Reason::CorruptObject,
                format!(
                    "unsupported Avro codec {:?}",
                    String::from_utf8_lossy(&name[..name.len().min(64)])
                ),
            )
        })?,
    };
    let text = schema.ok_or((
        Reason::CorruptObject,
        "the Avro header has no avro.schema".to_string(),
    ))?;
    let unreadable = |e: String| {
        (
            Reason::CorruptObject,
            format!("unreadable Avro schema: {e}"),
        )
    };
    let json: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| unreadable(e.to_string()))?;
    check_names(&json).map_err(unreadable)?;
    // apache-avro's schema parser has panicking paths on hostile input besides the names
    // checked above; a panic here must not take the whole run down.
    let parsed = std::panic::catch_unwind(|| Schema::parse(&json))
        .map_err(|_| unreadable("the schema parser failed".into()))?;
    let schema = parsed.map_err(|e| unreadable(e.to_string()))?;
    Ok(Header {
        schema,
        codec,
        sync,
        end: c.pos,
    })
}

/// Refuses invalid Avro names (`[A-Za-z_][A-Za-z0-9_]*`, dotted for full names) wherever the
/// schema names or refers to a type: apache-avro 0.21 panics on some of them (an `unwrap` in
/// its schema parser) instead of returning an error. Defaults, docs and symbols are data.
pub(super) fn check_names(v: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value as J;
    let name = |s: &str| -> Result<(), String> {
        let ok = s.split('.').all(|part| {
            let mut b = part.bytes();
            b.next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
                && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        });
        match ok {
            true => Ok(()),
            false => Err(format!(
                "invalid Avro name {:?}",
                s.chars().take(64).collect::<String>()
            )),
        }
    };
    let types = |v: &J| -> Result<(), String> {
        match v {
            J::String(s) => name(s),
            J::Array(a) => a.iter().try_for_each(|x| match x {
                J::String(s) => name(s),
                x => check_names(x),
            }),
            x => check_names(x),
        }
    };
    match v {
        J::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("name", J::String(s)) => name(s)?,
                    ("namespace", J::String(s)) if !s.is_empty() => name(s)?,
                    ("aliases", J::Array(a)) => {
                        a.iter().filter_map(J::as_str).try_for_each(name)?
                    }
                    ("type" | "items" | "values", x) => types(x)?,
                    ("fields", J::Array(a)) => a.iter().try_for_each(check_names)?,
                    _ => {}
                }
            }
            Ok(())
        }
        other => types(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Avro encoding of a long: zig-zag, then a little-endian base-128 varint.
    fn zigzag(v: i64) -> Vec<u8> {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        let mut out = Vec::new();
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
        out
    }

    #[test]
    fn longs_of_one_byte_and_of_many_decode_alike() {
        let values = [
            0,
            -1,
            1,
            -64,
            63,
            64,
            -65,
            300,
            -300,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ];
        let bytes: Vec<u8> = values.iter().flat_map(|&v| zigzag(v)).collect();
        let mut c = Cursor::new(&bytes, 0);
        for v in values {
            assert_eq!(c.long(), Ok(v));
        }
        assert_eq!(c.left(), 0);
        assert_eq!(c.long(), Err(Fault::Short), "nothing left");
        assert_eq!(Cursor::new(&[0x80, 0x80], 0).long(), Err(Fault::Short));
        let overlong = [0xff; 10];
        assert!(matches!(
            Cursor::new(&overlong, 0).long(),
            Err(Fault::Invalid(_))
        ));
    }
}
