//! Avro object container files (codecs null, deflate, snappy, zstd, bzip2, xz): the container
//! is framed here, every length checked against the bytes present, every block against its
//! sync marker, decompression bounded; each record is measured as the direct decoder reads it,
//! or before apache-avro decodes it.
//! Damage costs the region it is in: a bad record, a bad block, and the rest is resynchronised.
//! A record has tenant, metric, timestamp and fields; a `fields` / `unknown_fields` map is
//! expanded into fields.

/// The schemas encoded as an Avro `int` (a zigzag varint within i32), as a pattern.
macro_rules! int_like {
    () => {
        Schema::Int | Schema::Date | Schema::TimeMillis
    };
}

/// The schemas encoded as an Avro `long` (a zigzag varint), as a pattern.
macro_rules! long_like {
    () => {
        Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos
    };
}

mod codec;
mod container;
mod direct;
mod record;
mod walk;

use std::ops::Range;

use codec::decompress;
use container::{header, Cursor, Fault, Header};
use record::record;
use walk::Walk;

use apache_avro::schema::{NamesRef, ResolvedSchema};
use apache_avro::types::Value;

use super::{Limits, RecordSink};
use crate::model::Position;
use crate::quarantine::{BadRecord, Raw, Reason};

/// Avro values nested deeper than this are not decoded (serde_json's limit is the same).
const MAX_DEPTH: usize = 128;

/// A record may take this many times `max_record_bytes` once decoded (values, not bytes).
const DECODED_FACTOR: usize = 4;

/// Memory charged per decoded Avro value.
const VALUE_COST: usize = std::mem::size_of::<Value>();

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
        direct: direct::plan(&head.schema),
        names: resolved.get_names(),
        untrusted,
        limits,
        ordinal: 0,
        decompressed: 0,
        spare: Default::default(),
    };
    blocks.run(sink);
}

/// The block loop of one container.
struct Blocks<'a> {
    bytes: &'a [u8],
    head: &'a Header,
    /// The record schema when records decode without apache-avro ([`direct`]).
    direct: Option<&'a apache_avro::schema::RecordSchema>,
    names: &'a NamesRef<'a>,
    untrusted: &'a [Range<usize>],
    limits: &'a Limits,
    /// Records seen so far (kept or quarantined), the next record's ordinal.
    ordinal: u64,
    /// Decompressed bytes so far (bounded by `max_object_bytes`).
    decompressed: usize,
    /// What a directly decoded record hands on to the next.
    spare: direct::Spare,
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
            let max_steps = self.decoded_budget() / VALUE_COST;
            let mut walk = Walk::new(self.names, max_steps);
            let spare = &mut self.spare;
            let fast = self
                .direct
                .and_then(|r| direct::record(r, &mut c, &mut walk, position, spare));
            if fast.is_none() {
                (c.pos, walk) = (start, Walk::new(self.names, max_steps));
                match walk.value(&self.head.schema, &None, &mut c, 0) {
                    Ok(()) => {}
                    Err(Fault::TooMany) => {
                        self.ordinal += 1;
                        sink.bad(record_bad(
                            Reason::RecordTooLarge,
                            format!("Avro record decodes to more than {max_steps} values"),
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
                            "Avro block {block}: record {i} of {} is damaged ({}); the rest of \
                             the block is not decoded",
                            frame.count,
                            f.describe()
                        )))
                    }
                }
            }
            if c.pos == start {
                return Err(Stop::Block(format!(
                    "Avro block {block}: record {i} takes no bytes"
                )));
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
            let decoded = match fast {
                Some(rec) => rec,
                None => {
                    match apache_avro::from_avro_datum(&self.head.schema, &mut &datum[..], None) {
                        Ok(v) => record(v, position),
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
                    }
                }
            };
            match decoded {
                Ok(rec) if trusted => {
                    sink.record(&rec);
                    self.spare.reclaim(rec);
                }
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
