//! Avro object container files (codecs null, deflate, snappy, zstd, bzip2, xz): the container
//! is framed here, every length checked against the bytes present, every block against its
//! sync marker, decompression bounded; each record is measured before apache-avro decodes it.
//! Damage costs the region it is in: a bad record, a bad block, and the rest is resynchronised.
//! A record has tenant, metric, timestamp and fields; a `fields` / `unknown_fields` map is
//! expanded into fields.

use std::borrow::Cow;
use std::io::Read;
use std::ops::Range;

use apache_avro::schema::{NamesRef, Namespace, ResolvedSchema, Schema};
use apache_avro::types::Value;

use super::{Limits, RecordSink};
use crate::model::{Position, RawRecord, RawValue};
use crate::quarantine::{BadRecord, Raw, Reason};

/// Avro values nested deeper than this are not decoded (serde_json's limit is the same).
const MAX_DEPTH: usize = 128;

/// A record may take this many times `max_record_bytes` once decoded (values, not bytes).
const DECODED_FACTOR: usize = 4;

/// Memory charged per decoded Avro value.
const VALUE_COST: usize = std::mem::size_of::<Value>();

/// Codecs of SPEC 3.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Codec {
    Null,
    Deflate,
    Snappy,
    Zstandard,
    Bzip2,
    Xz,
}

impl Codec {
    fn from_name(name: &[u8]) -> Option<Codec> {
        Some(match name {
            b"null" => Codec::Null,
            b"deflate" => Codec::Deflate,
            b"snappy" => Codec::Snappy,
            b"zstandard" => Codec::Zstandard,
            b"bzip2" => Codec::Bzip2,
            b"xz" => Codec::Xz,
            _ => return None,
        })
    }
}

/// Why reading stopped.
#[derive(Debug, PartialEq)]
enum Fault {
    /// The bytes end inside the item being read.
    Short,
    /// The bytes are not a valid encoding.
    Invalid(String),
    /// More values than a record may decode to.
    TooMany,
}

impl Fault {
    fn describe(&self) -> String {
        match self {
            Fault::Short => "the data ends early".into(),
            Fault::Invalid(m) => m.clone(),
            Fault::TooMany => "too many values".into(),
        }
    }
}

/// A read position in a byte slice; every length is checked against what is left.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8], pos: usize) -> Self {
        Cursor { buf, pos }
    }

    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Fault> {
        if n > self.left() {
            return Err(Fault::Short);
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, Fault> {
        Ok(self.take(1)?[0])
    }

    /// A zig-zag varint long (at most 10 bytes).
    fn long(&mut self) -> Result<i64, Fault> {
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
    fn len(&mut self) -> Result<usize, Fault> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| Fault::Invalid(format!("negative length {n}")))
    }

    /// Length-prefixed bytes.
    fn bytes(&mut self) -> Result<&'a [u8], Fault> {
        let n = self.len()?;
        self.take(n)
    }
}

/// The container header.
struct Header {
    schema: Schema,
    codec: Codec,
    sync: [u8; 16],
    /// Offset of the first block.
    end: usize,
}

fn header(bytes: &[u8]) -> Result<Header, (Reason, String)> {
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
    let mut c = Cursor::new(bytes, super::AVRO_MAGIC.len());
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
fn check_names(v: &serde_json::Value) -> Result<(), String> {
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

/// Decodes an Avro container. `untrusted` are byte ranges that failed an outer integrity
/// check (a corrupt gzip member): records from blocks touching them are quarantined, not kept.
pub fn decode(
    bytes: &[u8],
    untrusted: &[Range<usize>],
    limits: &Limits,
    sink: &mut dyn RecordSink,
) {
    let head = match header(bytes) {
        Ok(h) => h,
        Err((reason, message)) => {
            sink.bad(object_damage(
                reason,
                message,
                Position {
                    byte_offset: Some(0),
                    ..Default::default()
                },
                bytes,
                limits,
            ));
            return;
        }
    };
    let resolved = match ResolvedSchema::try_from(&head.schema) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("unresolvable Avro schema: {e}");
            let position = Position {
                byte_offset: Some(0),
                ..Default::default()
            };
            sink.bad(object_damage(
                Reason::CorruptObject,
                msg,
                position,
                bytes,
                limits,
            ));
            return;
        }
    };
    let mut blocks = Blocks {
        bytes,
        head: &head,
        names: resolved.get_names(),
        untrusted,
        limits,
        ordinal: 0,
        decompressed: 0,
    };
    blocks.run(sink);
}

/// The block loop of one container.
struct Blocks<'a> {
    bytes: &'a [u8],
    head: &'a Header,
    names: &'a NamesRef<'a>,
    untrusted: &'a [Range<usize>],
    limits: &'a Limits,
    /// Records seen so far (kept or quarantined), the next record's ordinal.
    ordinal: u64,
    /// Decompressed bytes so far (bounded by `max_object_bytes`).
    decompressed: usize,
}

/// Damage that stopped a block (reported as corrupt_object).
enum Stop {
    /// The rest of this block is lost; decoding goes on with the next block.
    Block(String),
    /// Nothing more of the object is decoded (a limit was reached).
    Object(String),
}

/// A block's frame: where its data is and whether its sync marker checked out.
struct Frame {
    count: usize,
    data: Range<usize>,
    /// Offset just after the block's sync marker.
    end: usize,
    marker_ok: bool,
}

impl Blocks<'_> {
    fn run(&mut self, sink: &mut dyn RecordSink) {
        let mut at = self.head.end;
        let mut block = 0u64;
        while at < self.bytes.len() {
            let damage = |reason, message: String, ordinal, offset: usize| {
                let position = Position {
                    record: ordinal,
                    block: Some(block),
                    byte_offset: Some(offset as u64),
                    ..Default::default()
                };
                object_damage(reason, message, position, &[], self.limits)
            };
            let frame = match self.frame(at) {
                Ok(f) => f,
                Err(fault) => {
                    // The frame itself is damaged: its length runs past the end, or a header
                    // field is invalid. A later sync marker proves it is not just truncation.
                    let what = fault.describe();
                    match self.find_sync(at + 1) {
                        Some(next) => {
                            let msg = format!(
                                "Avro block {block} at byte {at} is damaged ({what}); \
                                 decoding resumed at the next sync marker (byte {next})"
                            );
                            sink.bad(damage(Reason::CorruptObject, msg, self.ordinal, at));
                            at = next;
                            block += 1;
                            continue;
                        }
                        None => {
                            let reason = match fault {
                                Fault::Short => Reason::TruncatedObject,
                                _ => Reason::CorruptObject,
                            };
                            let msg = format!(
                                "Avro block {block} at byte {at} is damaged or cut off \
                                 ({what}); nothing after it can be read"
                            );
                            sink.bad(damage(reason, msg, self.ordinal, at));
                            return;
                        }
                    }
                }
            };
            if !frame.marker_ok {
                // The block is framed but unverified. If what follows is a good block (or the
                // end), only the marker was hit: resume there and quarantine this block's
                // records; otherwise resume at the next sync marker found.
                let framed = frame.end == self.bytes.len() || self.frame_ok(frame.end);
                let next = if framed {
                    Some(frame.end)
                } else {
                    self.find_sync(at + 1)
                };
                let msg = format!(
                    "Avro block {block} at byte {at}: sync marker mismatch; {}",
                    match next {
                        Some(n) if framed => format!(
                            "its {} records are quarantined, decoding resumed at byte {n}",
                            frame.count
                        ),
                        Some(n) => format!("decoding resumed at the next sync marker (byte {n})"),
                        None => "nothing after it can be read".into(),
                    }
                );
                sink.bad(damage(Reason::CorruptObject, msg, self.ordinal, at));
                if framed {
                    let _ = self.block(block, &frame, false, sink);
                }
                match next {
                    Some(n) => at = n,
                    None => return,
                }
                block += 1;
                continue;
            }
            let trusted = !self
                .untrusted
                .iter()
                .any(|r| r.start < frame.end && at < r.end);
            let start_ordinal = self.ordinal;
            match self.block(block, &frame, trusted, sink) {
                Ok(()) => {}
                Err(Stop::Block(message)) => {
                    sink.bad(damage(Reason::CorruptObject, message, start_ordinal, at));
                }
                Err(Stop::Object(message)) => {
                    sink.bad(damage(Reason::CorruptObject, message, start_ordinal, at));
                    return;
                }
            }
            at = frame.end;
            block += 1;
        }
    }

    /// Reads the block frame at `at`: count, size, data, sync marker.
    fn frame(&self, at: usize) -> Result<Frame, Fault> {
        let mut c = Cursor::new(self.bytes, at);
        let count = c.long()?;
        let count = usize::try_from(count)
            .map_err(|_| Fault::Invalid(format!("negative record count {count}")))?;
        let size = c.len()?;
        let start = c.pos;
        c.take(size)?;
        let marker = c.take(16)?;
        Ok(Frame {
            count,
            data: start..start + size,
            end: c.pos,
            marker_ok: marker == self.head.sync,
        })
    }

    fn frame_ok(&self, at: usize) -> bool {
        self.frame(at).is_ok_and(|f| f.marker_ok)
    }

    /// The offset just after the next sync marker at or after `from`.
    fn find_sync(&self, from: usize) -> Option<usize> {
        let hay = self.bytes.get(from..)?;
        memchr::memmem::find(hay, &self.head.sync).map(|i| from + i + 16)
    }

    /// Decompresses and decodes one block; `Err` describes damage that stopped it (records
    /// before it in the block were delivered).
    fn block(
        &mut self,
        block: u64,
        frame: &Frame,
        trusted: bool,
        sink: &mut dyn RecordSink,
    ) -> Result<(), Stop> {
        let raw = &self.bytes[frame.data.clone()];
        let budget = self
            .limits
            .max_object_bytes
            .saturating_sub(self.decompressed);
        let data = decompress(self.head.codec, raw, budget).map_err(|f| match f {
            Fault::TooMany => Stop::Object(format!(
                "Avro block {block}: decompressed size exceeds the limit of {} bytes",
                self.limits.max_object_bytes
            )),
            f => Stop::Block(format!(
                "Avro block {block}: {:?} data does not decompress: {}",
                self.head.codec,
                f.describe()
            )),
        })?;
        self.decompressed += data.len();
        if frame.count > data.len().max(1) {
            return Err(Stop::Block(format!(
                "Avro block {block} claims {} records in {} bytes",
                frame.count,
                data.len()
            )));
        }
        let mut c = Cursor::new(&data, 0);
        for i in 0..frame.count {
            let start = c.pos;
            let position = Position {
                record: self.ordinal,
                block: Some(block),
                ..Default::default()
            };
            let mut walk = Walk {
                names: self.names,
                steps: 0,
                max_steps: self.decoded_budget() / VALUE_COST,
                payload: 0,
            };
            match walk.value(&self.head.schema, &None, &mut c, 0) {
                Ok(()) if c.pos == start => {
                    return Err(Stop::Block(format!(
                        "Avro block {block}: record {i} takes no bytes"
                    )))
                }
                Ok(()) => {}
                Err(Fault::TooMany) => {
                    self.ordinal += 1;
                    sink.bad(record_bad(
                        Reason::RecordTooLarge,
                        format!("Avro record decodes to more than {} values", walk.max_steps),
                        position,
                        &data[start..],
                        self.limits,
                    ));
                    return Err(Stop::Block(format!(
                        "Avro block {block}: the records after oversized record {i} are not \
                         decoded"
                    )));
                }
                Err(f) => {
                    return Err(Stop::Block(format!(
                        "Avro block {block}: record {i} of {} is damaged ({}); the rest of the \
                         block is not decoded",
                        frame.count,
                        f.describe()
                    )))
                }
            }
            self.ordinal += 1;
            let datum = &data[start..c.pos];
            let decoded_size = walk
                .steps
                .saturating_mul(VALUE_COST)
                .saturating_add(walk.payload);
            let limit = self.limits.max_record_bytes;
            let too_large = if datum.len() > limit {
                Some(format!(
                    "Avro record of {} bytes exceeds the {limit} byte limit",
                    datum.len()
                ))
            } else if decoded_size > self.decoded_budget() {
                Some(format!(
                    "Avro record decodes to about {decoded_size} bytes of values, more than \
                     {DECODED_FACTOR} x the {limit} byte record limit"
                ))
            } else {
                None
            };
            if let Some(msg) = too_large {
                sink.bad(record_bad(
                    Reason::RecordTooLarge,
                    msg,
                    position,
                    datum,
                    self.limits,
                ));
                continue;
            }
            let value = match apache_avro::from_avro_datum(&self.head.schema, &mut &datum[..], None)
            {
                Ok(v) => v,
                Err(e) => {
                    let msg = format!("Avro record does not decode: {e}");
                    sink.bad(record_bad(
                        Reason::CorruptObject,
                        msg,
                        position,
                        datum,
                        self.limits,
                    ));
                    continue;
                }
            };
            match record(value, position) {
                Ok(rec) if trusted => sink.record(rec),
                Ok(rec) => {
                    let text = crate::resolve::raw_text(&rec);
                    let msg = "record from an Avro block that failed its integrity check \
                               (quarantined, not written)";
                    sink.bad(BadRecord {
                        reason: Reason::CorruptObject,
                        message: msg.into(),
                        position,
                        tenant: None,
                        raw: Raw::from_bytes(text.as_bytes(), self.limits.max_raw_bytes),
                        object_level: false,
                    });
                }
                Err((reason, message, raw)) => sink.bad(BadRecord {
                    reason,
                    message,
                    position,
                    tenant: None,
                    raw: Raw::from_bytes(raw.as_bytes(), self.limits.max_raw_bytes),
                    object_level: false,
                }),
            }
        }
        if c.left() > 0 {
            return Err(Stop::Block(format!(
                "Avro block {block}: {} bytes left over after its {} records",
                c.left(),
                frame.count
            )));
        }
        Ok(())
    }

    fn decoded_budget(&self) -> usize {
        self.limits.max_record_bytes.saturating_mul(DECODED_FACTOR)
    }
}

/// Decompresses one block's data into at most `max_out` bytes (`Fault::TooMany` beyond).
fn decompress(codec: Codec, data: &[u8], max_out: usize) -> Result<Cow<'_, [u8]>, Fault> {
    let io = |e: std::io::Error| Fault::Invalid(e.to_string());
    let bounded = |mut r: Box<dyn Read + '_>| -> Result<Cow<'_, [u8]>, Fault> {
        let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(max_out));
        (&mut r)
            .take(max_out as u64 + 1)
            .read_to_end(&mut out)
            .map_err(io)?;
        if out.len() > max_out {
            return Err(Fault::TooMany);
        }
        Ok(Cow::Owned(out))
    };
    match codec {
        Codec::Null if data.len() > max_out => Err(Fault::TooMany),
        Codec::Null => Ok(Cow::Borrowed(data)),
        Codec::Deflate => bounded(Box::new(flate2::read::DeflateDecoder::new(data))),
        Codec::Snappy => {
            let Some((body, crc)) = data.split_last_chunk::<4>() else {
                return Err(Fault::Short);
            };
            let len = snap::raw::decompress_len(body).map_err(|e| Fault::Invalid(e.to_string()))?;
            // A snappy copy of at most 64 bytes takes at least 3: no stream expands more than
            // ~22 times, so a larger claim is a lie, not a reason to allocate.
            if len > body.len().saturating_mul(SNAPPY_MAX_RATIO) {
                return Err(Fault::Invalid(format!(
                    "snappy block of {} bytes claims {len} bytes",
                    body.len()
                )));
            }
            if len > max_out {
                return Err(Fault::TooMany);
            }
            let mut out = vec![0; len];
            let n = snap::raw::Decoder::new()
                .decompress(body, &mut out)
                .map_err(|e| Fault::Invalid(e.to_string()))?;
            out.truncate(n);
            if crc32fast::hash(&out) != u32::from_be_bytes(*crc) {
                return Err(Fault::Invalid("snappy CRC-32 mismatch".into()));
            }
            Ok(Cow::Owned(out))
        }
        Codec::Zstandard => {
            let mut dec = zstd::stream::read::Decoder::with_buffer(data).map_err(io)?;
            // Windows above 2^27 (128 MiB) are refused rather than allocated.
            dec.window_log_max(27).map_err(io)?;
            bounded(Box::new(dec))
        }
        Codec::Bzip2 => bounded(Box::new(bzip2::read::BzDecoder::new(data))),
        Codec::Xz => {
            let stream = liblzma::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, 0)
                .map_err(|e| Fault::Invalid(e.to_string()))?;
            bounded(Box::new(liblzma::read::XzDecoder::new_stream(data, stream)))
        }
    }
}

/// Most a snappy stream can expand (64 bytes from a 3-byte copy, with margin).
const SNAPPY_MAX_RATIO: usize = 24;

/// Memory an xz stream may ask for (xz -9 needs 65 MiB).
const XZ_MEMLIMIT: u64 = 128 << 20;

/// Walks one datum without building it: checks every length, index and count against the
/// bytes and the schema, and counts the values it would decode to.
struct Walk<'s> {
    names: &'s NamesRef<'s>,
    steps: usize,
    max_steps: usize,
    /// Bytes of strings, bytes and fixed values.
    payload: usize,
}

impl Walk<'_> {
    fn value(
        &mut self,
        schema: &Schema,
        ns: &Namespace,
        c: &mut Cursor<'_>,
        depth: usize,
    ) -> Result<(), Fault> {
        if depth > MAX_DEPTH {
            return Err(Fault::Invalid(format!(
                "values nested deeper than {MAX_DEPTH}"
            )));
        }
        self.steps += 1;
        if self.steps > self.max_steps {
            return Err(Fault::TooMany);
        }
        match schema {
            Schema::Null => {}
            Schema::Boolean => match c.byte()? {
                0 | 1 => {}
                b => return Err(Fault::Invalid(format!("boolean byte {b}"))),
            },
            Schema::Int | Schema::Date | Schema::TimeMillis => {
                let v = c.long()?;
                if i32::try_from(v).is_err() {
                    return Err(Fault::Invalid(format!("int {v} out of range")));
                }
            }
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => {
                c.long()?;
            }
            Schema::Float => {
                c.take(4)?;
            }
            Schema::Double => {
                c.take(8)?;
            }
            Schema::Duration => {
                c.take(12)?;
            }
            Schema::Bytes | Schema::String | Schema::BigDecimal | Schema::Uuid => {
                self.payload = self.payload.saturating_add(c.bytes()?.len());
            }
            Schema::Fixed(f) => {
                self.payload = self.payload.saturating_add(c.take(f.size)?.len());
            }
            Schema::Decimal(d) => self.value(&d.inner, ns, c, depth + 1)?,
            Schema::Enum(e) => {
                let i = c.long()?;
                if usize::try_from(i).map_or(true, |i| i >= e.symbols.len()) {
                    return Err(Fault::Invalid(format!("enum index {i} out of range")));
                }
            }
            Schema::Union(u) => {
                let i = c.long()?;
                let variant = usize::try_from(i)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| Fault::Invalid(format!("union index {i} out of range")))?;
                self.value(variant, ns, c, depth + 1)?;
            }
            Schema::Array(a) => self.blocks(c, |w, c| w.value(&a.items, ns, c, depth + 1))?,
            Schema::Map(m) => self.blocks(c, |w, c| {
                w.value(&Schema::String, ns, c, depth + 1)?;
                w.value(&m.types, ns, c, depth + 1)
            })?,
            Schema::Record(r) => {
                let inner = r.name.fully_qualified_name(ns).namespace;
                for f in &r.fields {
                    self.value(&f.schema, &inner, c, depth + 1)?;
                }
            }
            Schema::Ref { name } => {
                let full = name.fully_qualified_name(ns);
                let target = self
                    .names
                    .get(&full)
                    .ok_or_else(|| Fault::Invalid(format!("unknown type {full}")))?;
                self.value(target, &full.namespace, c, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Array and map blocks: a count (negative: followed by a byte size), items, until 0.
    fn blocks(
        &mut self,
        c: &mut Cursor<'_>,
        mut item: impl FnMut(&mut Self, &mut Cursor<'_>) -> Result<(), Fault>,
    ) -> Result<(), Fault> {
        loop {
            let n = c.long()?;
            if n == 0 {
                return Ok(());
            }
            if n < 0 {
                c.len()?;
            }
            for _ in 0..n.unsigned_abs() {
                item(self, c)?;
            }
        }
    }
}

fn object_damage(
    reason: Reason,
    message: String,
    position: Position,
    raw: &[u8],
    limits: &Limits,
) -> BadRecord {
    BadRecord {
        reason,
        message,
        position,
        tenant: None,
        raw: if raw.is_empty() {
            Raw::None
        } else {
            Raw::from_bytes(raw, limits.max_raw_bytes)
        },
        object_level: true,
    }
}

fn record_bad(
    reason: Reason,
    message: String,
    position: Position,
    datum: &[u8],
    limits: &Limits,
) -> BadRecord {
    BadRecord {
        reason,
        message,
        position,
        tenant: None,
        raw: Raw::from_bytes(datum, limits.max_raw_bytes),
        object_level: false,
    }
}

type Bad = (Reason, String, String);

fn record(value: Value, position: Position) -> Result<RawRecord<'static>, Bad> {
    let Value::Record(pairs) = value else {
        let raw = to_json_text(value);
        return Err((
            Reason::MissingField,
            "top-level Avro value is not a record".into(),
            raw,
        ));
    };
    let mut rec = RawRecord::empty(pairs.len(), position);
    for (name, v) in pairs {
        match name.as_str() {
            "tenant" => rec.tenant = scalar(v),
            "metric" => rec.metric = scalar(v),
            "timestamp" => rec.timestamp = timestamp(v),
            "fields" | "unknown_fields" if is_map(&v) => expand_map(v, &mut rec.fields),
            _ => rec.fields.push((Cow::Owned(name), scalar(v))),
        }
    }
    // A map key may repeat a top-level field or name a reserved one: ambiguous, like a JSON
    // object with a key twice.
    let mut seen = std::collections::HashSet::with_capacity(rec.fields.len());
    for (name, _) in &rec.fields {
        let reserved = matches!(name.as_ref(), "tenant" | "metric" | "timestamp");
        if reserved || !seen.insert(name.as_ref()) {
            let msg = format!("field {name:?} appears twice (or repeats a reserved name)");
            return Err((Reason::DuplicateKey, msg, crate::resolve::raw_text(&rec)));
        }
    }
    Ok(rec)
}

fn unwrap_union(v: Value) -> Value {
    match v {
        Value::Union(_, inner) => unwrap_union(*inner),
        v => v,
    }
}

fn is_map(v: &Value) -> bool {
    match v {
        Value::Map(_) => true,
        Value::Union(_, inner) => is_map(inner),
        _ => false,
    }
}

fn expand_map(v: Value, out: &mut Vec<(Cow<'static, str>, RawValue<'static>)>) {
    if let Value::Map(map) = unwrap_union(v) {
        let mut entries: Vec<_> = map.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in entries {
            out.push((Cow::Owned(k), scalar(v)));
        }
    }
}

/// Timestamps: long / timestamp-millis as ms, timestamp-micros and -nanos scaled down.
fn timestamp(v: Value) -> RawValue<'static> {
    match unwrap_union(v) {
        Value::TimestampMicros(us) | Value::LocalTimestampMicros(us) => {
            RawValue::Number(Cow::Owned(us.div_euclid(1000).to_string()))
        }
        Value::TimestampNanos(ns) | Value::LocalTimestampNanos(ns) => {
            RawValue::Number(Cow::Owned(ns.div_euclid(1_000_000).to_string()))
        }
        v => scalar(v),
    }
}

fn scalar(v: Value) -> RawValue<'static> {
    let num = |s: String| RawValue::Number(Cow::Owned(s));
    match unwrap_union(v) {
        Value::Null => RawValue::Null,
        Value::Boolean(b) => RawValue::Bool(b),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => num(i.to_string()),
        Value::Long(i)
        | Value::TimeMicros(i)
        | Value::TimestampMillis(i)
        | Value::TimestampMicros(i)
        | Value::TimestampNanos(i)
        | Value::LocalTimestampMillis(i)
        | Value::LocalTimestampMicros(i)
        | Value::LocalTimestampNanos(i) => num(i.to_string()),
        Value::Float(f) => float_text(f as f64),
        Value::Double(f) => float_text(f),
        Value::String(s) | Value::Enum(_, s) => RawValue::Str(Cow::Owned(s)),
        Value::Uuid(u) => RawValue::Str(Cow::Owned(u.to_string())),
        other => RawValue::Nested(Cow::Owned(to_json_text(other))),
    }
}

/// Floats in JSON form; non-finite values (not JSON numbers) travel as strings.
fn float_text(f: f64) -> RawValue<'static> {
    if f.is_finite() {
        RawValue::Number(Cow::Owned(
            serde_json::Number::from_f64(f).expect("finite").to_string(),
        ))
    } else {
        RawValue::Str(Cow::Owned(f.to_string()))
    }
}

fn to_json_text(v: Value) -> String {
    match serde_json::Value::try_from(v) {
        Ok(j) => j.to_string(),
        Err(e) => format!("<unrepresentable Avro value: {e}>"),
    }
}
