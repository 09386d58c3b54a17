//! Property tests of the decoders: random bytes and random mutations of valid objects (JSON
//! Lines, gzip, multi-member gzip, Avro with every codec, gzip Avro) never panic, never hang,
//! never allocate beyond a bound set by the limits, and account for every record they meet.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use apache_avro::types::{Record, Value};
use apache_avro::{Codec, Schema};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use super::{decode_object, Format, Limits, RecordSink};
use crate::model::{Position, RawRecord};
use crate::quarantine::BadRecord;

// ---------------------------------------------------------------- allocation accounting

/// Counts the bytes each thread holds, and their peak, while that thread asks it to.
struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let held = HELD.with(|h| {
                h.set(h.get() + delta);
                h.get()
            });
            PEAK.with(|p| p.set(p.get().max(held)));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// ---------------------------------------------------------------- running one decode

/// Small limits, so "bounded by the limits" is a tight bound.
const LIMITS: Limits = Limits {
    max_object_bytes: 1 << 20,
    max_record_bytes: 64 << 10,
    max_raw_bytes: 1 << 10,
};

/// Peak bytes one decode may hold: a few times the decompression limit plus the input.
fn allocation_bound(input: usize) -> isize {
    (8 * (LIMITS.max_object_bytes + input) + (8 << 20)) as isize
}

/// One decoded item, in the order the decoder produced it.
#[derive(Debug, Clone)]
enum Item {
    Record(Position),
    Bad(BadRecord),
}

/// Keeps positions and bad records, not the records themselves (their memory is the sink's).
#[derive(Default)]
struct Log {
    items: Vec<Item>,
}

impl RecordSink for Log {
    fn record(&mut self, record: &RawRecord<'_>) {
        self.items.push(Item::Record(record.position));
    }
    fn bad(&mut self, bad: BadRecord) {
        self.items.push(Item::Bad(bad));
    }
}

/// What one decode did.
#[derive(Debug)]
struct Outcome {
    format: Format,
    items: Vec<Item>,
    peak: isize,
}

/// Decodes `input` on its own thread: a panic, a decode slower than 10 s, or a peak
/// allocation above the bound is an error.
fn run(input: &[u8]) -> Result<Outcome, String> {
    let (tx, rx) = mpsc::channel();
    let owned = input.to_vec();
    std::thread::Builder::new()
        .name("decode".into())
        .spawn(move || {
            let mut log = Log {
                items: Vec::with_capacity(1024),
            };
            HELD.with(|h| h.set(0));
            PEAK.with(|p| p.set(0));
            TRACKING.with(|t| t.set(true));
            let format = decode_object(&owned, &LIMITS, &mut log);
            TRACKING.with(|t| t.set(false));
            let peak = PEAK.with(|p| p.get());
            let _ = tx.send(Outcome {
                format,
                items: log.items,
                peak,
            });
        })
        .expect("spawn decode thread");
    let outcome = match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(o) => o,
        Err(mpsc::RecvTimeoutError::Timeout) => return Err("decode took over 10 s".into()),
        Err(mpsc::RecvTimeoutError::Disconnected) => return Err("decode panicked".into()),
    };
    if outcome.peak > allocation_bound(input.len()) {
        return Err(format!(
            "decode of {} bytes allocated {} bytes at peak (bound {})",
            input.len(),
            outcome.peak,
            allocation_bound(input.len())
        ));
    }
    Ok(outcome)
}

/// Accounting: records and bad records carry ordinals 0, 1, 2, ... in the order produced
/// (each record counted once), object-level damage points at the next ordinal, JSON lines
/// and offsets move forward and stay inside the (decompressed) object.
fn check_accounting(input: &[u8], o: &Outcome) -> Result<(), String> {
    let mut next = 0u64;
    let mut last_line = 0u64;
    let mut last_offset: Option<u64> = None;
    let max_offset = input.len().max(LIMITS.max_object_bytes) as u64;
    for item in &o.items {
        let (pos, object_level) = match item {
            Item::Record(p) => (p, false),
            Item::Bad(b) => (&b.position, b.object_level),
        };
        if let Some(off) = pos.byte_offset {
            if off > max_offset {
                return Err(format!("byte offset {off} beyond the object: {item:?}"));
            }
        }
        if object_level {
            if pos.record > next {
                return Err(format!("damage after record {next} points at {item:?}"));
            }
            continue;
        }
        if pos.record != next {
            return Err(format!("expected record ordinal {next}, got {item:?}"));
        }
        next += 1;
        if let Some(line) = pos.line {
            if line <= last_line {
                return Err(format!("line {line} after line {last_line}"));
            }
            last_line = line;
            let off = pos.byte_offset.ok_or("a JSON record without byte offset")?;
            if last_offset.is_some_and(|l| off <= l) {
                return Err(format!("byte offset {off} does not move forward"));
            }
            last_offset = Some(off);
        }
        if let Item::Bad(b) = item {
            if b.message.is_empty() {
                return Err(format!("bad record without a message: {b:?}"));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- valid objects

fn json_lines(n: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n as u64 {
        let v = seed.wrapping_mul(6364136223846793005).wrapping_add(i);
        let metric = ["boiler", "a/b", "pump"][(v % 3) as usize];
        let rec = serde_json::json!({
            "tenant": format!("t{}", v % 3),
            "metric": metric,
            "timestamp": 1_767_225_600_000u64 + i,
            "temperature": (v % 1000) as f64 / 7.0,
            "note": format!("n{v:x}"),
            "nested": {"k": [i, i + 1]},
        });
        out.extend(serde_json::to_vec(&rec).expect("json"));
        out.push(b'\n');
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn gzip_members(data: &[u8], parts: usize) -> Vec<u8> {
    let chunk = data.len().div_ceil(parts).max(1);
    data.chunks(chunk).flat_map(gzip).collect()
}

fn staged_schema() -> Schema {
    Schema::parse_str(
        r#"{"type": "record", "name": "StagedRecord", "fields": [
            {"name": "tenant", "type": "string"},
            {"name": "metric", "type": "string"},
            {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "temperature", "type": ["null", "double"]},
            {"name": "count", "type": "long"},
            {"name": "tags", "type": {"type": "array", "items": ["null", "string"]}},
            {"name": "fields", "type": {"type": "map",
                "values": ["null", "boolean", "int", "long", "float", "double", "string"]}}]}"#,
    )
    .expect("schema")
}

/// An Avro container of `n` records in small blocks, and its header length. Byte for byte
/// the same on every run (fixed sync marker; maps of one entry, so no hash order), so a
/// failing mutation is reproducible.
fn avro(codec: Codec, n: usize) -> (Vec<u8>, usize) {
    let schema = staged_schema();
    let writer = |codec| {
        apache_avro::Writer::builder()
            .schema(&schema)
            .writer(Vec::new())
            .codec(codec)
            .block_size(256)
            .marker(*b"fineo-prop-sync!")
            .build()
    };
    let mut w = writer(codec);
    for i in 0..n as i64 {
        let mut r = Record::new(&schema).expect("record");
        r.put("tenant", "t1");
        r.put("metric", if i % 4 == 0 { "a/b" } else { "boiler" });
        r.put("timestamp", Value::TimestampMillis(1_767_225_600_000 + i));
        r.put(
            "temperature",
            Value::Union(1, Box::new(Value::Double(i as f64 / 3.0))),
        );
        r.put("count", Value::Long(i * 1000));
        r.put(
            "tags",
            Value::Array(vec![
                Value::Union(1, Box::new(Value::String(format!("tag{i}")))),
                Value::Union(0, Box::new(Value::Null)),
            ]),
        );
        let note = Value::Union(6, Box::new(Value::String("x".repeat(i as usize % 17))));
        r.put("fields", Value::Map([("note".to_string(), note)].into()));
        w.append(r).expect("append");
    }
    let data = w.into_inner().expect("avro");
    let mut empty = writer(codec);
    empty.flush().expect("header");
    let header = empty.into_inner().expect("avro").len();
    (data, header)
}

fn codecs() -> Vec<(&'static str, Codec)> {
    vec![
        ("null", Codec::Null),
        ("deflate", Codec::Deflate(Default::default())),
        ("snappy", Codec::Snappy),
        ("zstandard", Codec::Zstandard(Default::default())),
        ("bzip2", Codec::Bzip2(Default::default())),
        ("xz", Codec::Xz(Default::default())),
    ]
}

/// A valid object and the length of its record-free prefix (an Avro header), if any.
struct Valid {
    name: String,
    bytes: Vec<u8>,
    empty_prefix: Option<usize>,
}

fn valid_objects() -> Vec<Valid> {
    let lines = json_lines(40, 7);
    let mut out = vec![
        Valid {
            name: "json lines".into(),
            bytes: lines.clone(),
            empty_prefix: None,
        },
        Valid {
            name: "gzip json".into(),
            bytes: gzip(&lines),
            empty_prefix: None,
        },
        Valid {
            name: "multi-member gzip json".into(),
            bytes: gzip_members(&lines, 3),
            empty_prefix: None,
        },
    ];
    for (name, codec) in codecs() {
        let (bytes, header) = avro(codec, 40);
        out.push(Valid {
            name: format!("avro {name}"),
            bytes,
            empty_prefix: Some(header),
        });
    }
    let (avro_deflate, _) = avro(Codec::Deflate(Default::default()), 40);
    out.push(Valid {
        name: "gzip avro".into(),
        bytes: gzip(&avro_deflate),
        empty_prefix: None,
    });
    out
}

// ---------------------------------------------------------------- mutations

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    Overwrite(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
    /// Copies a run of the object over another place (a block spliced where it does not go).
    Splice(Index, Index, usize),
    /// Writes a 9-byte varint claiming about 2^60 (a length or count that is a lie).
    HugeVarint(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Overwrite(i, b)),
        2 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..24))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Remove(i, n)),
        1 => (any::<Index>(), any::<Index>(), 1usize..256)
            .prop_map(|(a, b, n)| Mutation::Splice(a, b, n)),
        1 => any::<Index>().prop_map(Mutation::HugeVarint),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match m {
        Mutation::FlipBit(i, b) => bytes[i.index(n)] ^= 1 << b,
        Mutation::Overwrite(i, v) => bytes[i.index(n)] = *v,
        Mutation::Truncate(i) => bytes.truncate(i.index(n)),
        Mutation::Insert(i, v) => {
            let at = i.index(n + 1);
            bytes.splice(at..at, v.iter().copied());
        }
        Mutation::Remove(i, len) => {
            let at = i.index(n);
            bytes.drain(at..(at + len).min(n));
        }
        Mutation::Splice(from, to, len) => {
            let from = from.index(n);
            let run: Vec<u8> = bytes[from..(from + len).min(n)].to_vec();
            let to = to.index(n);
            let end = (to + run.len()).min(n);
            bytes[to..end].copy_from_slice(&run[..end - to]);
        }
        Mutation::HugeVarint(i) => {
            let at = i.index(n);
            let varint = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
            let end = (at + varint.len()).min(n);
            bytes[at..end].copy_from_slice(&varint[..end - at]);
        }
    }
}

fn runner(cases: u32, seed: u8) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..Config::default()
    };
    TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    )
}

fn fail(e: String) -> TestCaseError {
    TestCaseError::fail(e)
}

// ---------------------------------------------------------------- the properties

#[test]
fn random_bytes_never_panic_hang_or_blow_up() {
    let starts: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x1f, 0x8b, 0x08],
        b"Obj\x01".to_vec(),
        b"{\"tenant\":".to_vec(),
    ];
    let mut r = runner(2048, 1);
    let strategy = (
        prop::sample::select(starts),
        prop::collection::vec(any::<u8>(), 0..2048),
    );
    r.run(&strategy, |(prefix, tail)| {
        let input: Vec<u8> = prefix.into_iter().chain(tail).collect();
        let o = run(&input).map_err(fail)?;
        check_accounting(&input, &o).map_err(fail)?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn mutated_objects_never_panic_hang_or_blow_up_and_account_for_their_records() {
    for (k, valid) in valid_objects().into_iter().enumerate() {
        let clean = run(&valid.bytes).expect("valid object decodes");
        let bad = clean
            .items
            .iter()
            .filter(|i| matches!(i, Item::Bad(_)))
            .count();
        assert_eq!(bad, 0, "{}: the unmutated object is clean", valid.name);
        assert_eq!(clean.items.len(), 40, "{}: 40 records", valid.name);

        let mut r = runner(1024, 10 + k as u8);
        let strategy = prop::collection::vec(mutation(), 1..4);
        let result = r.run(&strategy, |mutations| {
            let mut input = valid.bytes.clone();
            for m in &mutations {
                apply(&mut input, m);
            }
            let o = run(&input).map_err(fail)?;
            check_accounting(&input, &o).map_err(fail)?;
            let header_only = valid.empty_prefix.is_some_and(|h| input.len() == h)
                && valid.bytes.starts_with(&input);
            if o.items.is_empty() && !input.is_empty() && !header_only {
                return Err(fail(format!(
                    "a mutated object ({} bytes, {:?}) yields nothing at all",
                    input.len(),
                    o.format
                )));
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{}: {e}", valid.name);
        }
    }
}

// ---------------------------------------------------------------- regressions

/// What a decode produced: records kept, bad records and damage by reason code.
fn summary(o: &Outcome) -> (usize, Vec<(&'static str, bool)>) {
    let records = o
        .items
        .iter()
        .filter(|i| matches!(i, Item::Record(_)))
        .count();
    let bad = o
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Bad(b) => Some((b.reason.code(), b.object_level)),
            Item::Record(_) => None,
        })
        .collect();
    (records, bad)
}

/// The offset a proptest `Index` picks in an object of `len` bytes.
fn index(raw: usize, len: usize) -> usize {
    ((len as u128 * raw as u128) >> 64) as usize
}

/// Found by `random_bytes_...`: a 7-byte header whose metadata map claims ~115k entries made
/// apache-avro reserve 21 MB; a larger count aborted the process (allocation failure).
#[test]
fn regression_avro_header_map_count_lie() {
    let o = run(b"Obj\x01\x82\x80\x0e").unwrap();
    assert_eq!(summary(&o), (0, vec![("truncated_object", true)]));
    let o = run(b"Obj\x01\xfe\xff\xff\xff\xff\xff\xff\xff\x7f").unwrap();
    assert_eq!(summary(&o), (0, vec![("truncated_object", true)]));
}

/// Found by `mutated_objects_...`: a flipped bit in a bzip2 block panicked inside apache-avro
/// (`read_to_end(..).unwrap()`), which aborts a compact run (rayon worker panic).
#[test]
fn regression_avro_bzip2_bit_flip_panicked() {
    let (mut bytes, _) = avro(Codec::Bzip2(Default::default()), 40);
    let at = index(4447206020478961880, bytes.len());
    bytes[at] ^= 1;
    let o = run(&bytes).unwrap();
    let (records, bad) = summary(&o);
    assert_eq!(bad, vec![("corrupt_object", true)], "one damaged block");
    assert!(
        records > 0 && records < 40,
        "the other blocks are kept: {records}"
    );
}

/// Found by `mutated_objects_...`: the same panic for an xz block.
#[test]
fn regression_avro_xz_bit_flip_panicked() {
    let (mut bytes, _) = avro(Codec::Xz(Default::default()), 40);
    let at = index(4551682668745247170, bytes.len());
    bytes[at] ^= 1;
    let o = run(&bytes).unwrap();
    let (records, bad) = summary(&o);
    assert_eq!(bad, vec![("corrupt_object", true)], "one damaged block");
    assert!(
        records > 0 && records < 40,
        "the other blocks are kept: {records}"
    );
}

/// Avro's zig-zag varint at `pos`: (value, offset after it).
fn varint(bytes: &[u8], mut pos: usize) -> (i64, usize) {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let b = bytes[pos];
        pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return ((v >> 1) as i64 ^ -((v & 1) as i64), pos);
        }
    }
}

fn zigzag(v: i64) -> Vec<u8> {
    let mut v = ((v << 1) ^ (v >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// Replaces the data of the first block of an Avro container (fixing its size field).
fn with_first_block_data(bytes: &[u8], header: usize, edit: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let (count, p) = varint(bytes, header);
    let (size, p) = varint(bytes, p);
    let data = &bytes[p..p + size as usize];
    let new = edit(data);
    let mut out = bytes[..header].to_vec();
    out.extend(zigzag(count));
    out.extend(zigzag(new.len() as i64));
    out.extend(&new);
    out.extend(&bytes[p + size as usize..]);
    out
}

/// Found by `mutated_objects_...`: a snappy block whose length prefix claims more than it
/// holds made apache-avro allocate the claimed size (up to 4 GiB) before decompressing.
#[test]
fn regression_avro_snappy_length_lie() {
    let (bytes, header) = avro(Codec::Snappy, 40);
    let mutated = with_first_block_data(&bytes, header, |data| {
        let old = data.iter().position(|b| b & 0x80 == 0).unwrap() + 1;
        let mut new = vec![0xff, 0xff, 0xff, 0xff, 0x0f]; // 2^32 - 1 bytes
        new.extend(&data[old..]);
        new
    });
    let o = run(&mutated).unwrap();
    let (records, bad) = summary(&o);
    assert_eq!(
        bad,
        vec![("corrupt_object", true)],
        "the first block is damaged"
    );
    assert!(
        records > 0 && records < 40,
        "later blocks are kept: {records}"
    );
}

/// Found by `mutated_objects_...` (a HugeVarint in a null-codec block): a string length of
/// 400 MiB inside a record made apache-avro allocate it; an array count did the same for
/// its items (a large one aborted the process).
#[test]
fn regression_avro_lengths_inside_a_record() {
    let (bytes, header) = avro(Codec::Null, 40);
    for claim in [400 << 20, 1i64 << 60] {
        // The first record starts with the tenant: length 2, "t1". Claim more.
        let mutated = with_first_block_data(&bytes, header, |data| {
            assert_eq!(&data[..3], b"\x04t1");
            let mut new = zigzag(claim);
            new.extend(&data[1..]);
            new
        });
        let o = run(&mutated).unwrap();
        let (records, bad) = summary(&o);
        assert_eq!(bad, vec![("corrupt_object", true)], "claim {claim}");
        assert!(
            records > 0 && records < 40,
            "later blocks are kept: {records}"
        );
    }
}

/// Found by `mutated_objects_...`: a bit flip in the schema's record name ("StagedR/cord")
/// panicked inside apache-avro's schema parser (`Name::new(..).unwrap()`).
#[test]
fn regression_avro_invalid_schema_name_panicked() {
    let (bytes, _) = avro(Codec::Null, 40);
    let at = bytes
        .windows(12)
        .position(|w| w == b"StagedRecord")
        .unwrap();
    for (bad, what) in [
        (&b"StagedR/cord"[..], "record name"),
        (b"9tagedRecord", "leading digit"),
    ] {
        let mut mutated = bytes.clone();
        mutated[at..at + 12].copy_from_slice(bad);
        let o = run(&mutated).unwrap();
        assert_eq!(summary(&o), (0, vec![("corrupt_object", true)]), "{what}");
    }
    // A type reference to an invalid name takes the same path.
    let schema = br#"{"type":"record","name":"R","fields":[{"name":"a","type":"x/y"}]}"#;
    let mut header = b"Obj\x01\x02\x16avro.schema".to_vec();
    header.extend(zigzag(schema.len() as i64));
    header.extend(schema);
    header.push(0);
    header.extend(b"fineo-prop-sync!");
    let o = run(&header).unwrap();
    assert_eq!(summary(&o), (0, vec![("corrupt_object", true)]));
}
