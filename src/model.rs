//! The record shapes that flow through the pipeline: raw (as decoded), resolved, and where a
//! record came from.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A declared field type (SPEC 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    String,
    Timestamp,
}

impl FieldType {
    /// The catalog spelling of the type.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Boolean => "boolean",
            FieldType::Int => "int",
            FieldType::Long => "long",
            FieldType::Float => "float",
            FieldType::Double => "double",
            FieldType::String => "string",
            FieldType::Timestamp => "timestamp",
        }
    }
}

/// A field value as the device sent it.
#[derive(Clone, Debug, PartialEq)]
pub enum RawValue<'a> {
    Null,
    Bool(bool),
    /// A number in its JSON text form (`12`, `-3.5e2`).
    Number(Cow<'a, str>),
    Str(Cow<'a, str>),
    /// A nested object or array, as compact JSON text.
    Nested(Cow<'a, str>),
}

impl RawValue<'_> {
    /// The value as text for the untyped output (`None` for null).
    pub fn as_text(&self) -> Option<&str> {
        match self {
            RawValue::Null => None,
            RawValue::Bool(true) => Some("true"),
            RawValue::Bool(false) => Some("false"),
            RawValue::Number(s) | RawValue::Str(s) | RawValue::Nested(s) => Some(s),
        }
    }
}

/// Where in its object a record sits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Record ordinal within the object, from 0: the arrival order inside the object.
    pub record: u64,
    /// 1-based line number for JSON Lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Avro block index, from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<u64>,
    /// Byte offset in the (decompressed) object where the record starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byte_offset: Option<u64>,
}

/// One decoded record before catalog resolution.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRecord<'a> {
    pub tenant: RawValue<'a>,
    pub metric: RawValue<'a>,
    pub timestamp: RawValue<'a>,
    /// Every other field, in the order sent.
    pub fields: Vec<(Cow<'a, str>, RawValue<'a>)>,
    pub position: Position,
    /// The record's bytes exactly as sent when its encoding has them one record at a time (a
    /// JSON line); empty otherwise. A quarantined record keeps these, not a re-serialization.
    pub sent: &'a [u8],
}

impl RawRecord<'_> {
    /// A record with no tenant, metric, timestamp or fields yet.
    pub fn empty(fields: usize, position: Position) -> Self {
        RawRecord {
            tenant: RawValue::Null,
            metric: RawValue::Null,
            timestamp: RawValue::Null,
            fields: Vec::with_capacity(fields),
            position,
            sent: &[],
        }
    }
}

/// In-memory maps on hot paths (never persisted: the hasher is seeded per process).
pub type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

/// In-memory sets on hot paths.
pub type FastSet<K> = std::collections::HashSet<K, ahash::RandomState>;

/// Non-null typed values of a record, by column name.
pub type TypedValues = Vec<(Name, TypedValue)>;

/// A declared field's name, interned for the life of the process: every typed value carries
/// one, and copying it costs no reference count (an `Arc`'s atomic increment and decrement
/// per value were about 3% of a compaction's time). The names interned are the catalogs'
/// declared fields and the typed tables' columns (`Name::new` is never given record content),
/// so their number is bounded by the catalogs and tables, not by the records. Equality is by
/// address: the only way to make a `Name` is to intern it.
#[derive(Clone, Copy)]
pub struct Name(&'static str);

impl Name {
    /// The interned copy of `name` (made on its first use).
    pub fn new(name: &str) -> Name {
        static NAMES: std::sync::Mutex<Option<FastSet<&'static str>>> = std::sync::Mutex::new(None);
        let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        let names = names.get_or_insert_with(Default::default);
        match names.get(name) {
            Some(&n) => Name(n),
            None => {
                let n: &'static str = Box::leak(name.into());
                names.insert(n);
                Name(n)
            }
        }
    }

    /// The name's text.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl PartialEq for Name {
    /// Interned names are equal when they are the same text, so the addresses decide.
    fn eq(&self, other: &Name) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Name {}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.hash(h)
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.0, f)
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name::new(s)
    }
}

/// Typed columns of a table, by name.
pub type ColumnTypes = Vec<(Arc<str>, FieldType)>;

/// A typed value after conversion to the declared type.
#[derive(Clone, Debug, PartialEq)]
pub enum TypedValue {
    Null,
    Bool(bool),
    /// int, long, and timestamp (epoch ms).
    Int(i64),
    /// float and double.
    Float(f64),
    Str(String),
}

/// Arrival order of a record (SPEC 3): object delivery time, object key, position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    pub delivery_ms: i64,
    pub source: Arc<str>,
    pub position: u64,
}

impl Ord for Arrival {
    fn cmp(&self, other: &Self) -> Ordering {
        self.delivery_ms
            .cmp(&other.delivery_ms)
            .then_with(|| self.source.cmp(&other.source))
            .then_with(|| self.position.cmp(&other.position))
    }
}

impl PartialOrd for Arrival {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A record inside one partition (tenant, canonical metric, date): as sent (metric name and
/// encoded fields, see [`crate::resolve::raw`]) and, once resolved, its typed and untyped parts.
#[derive(Clone, Debug, PartialEq)]
pub struct Rec {
    /// Event time, ms since the epoch.
    pub ts: i64,
    pub arrival: Arrival,
    /// The metric name as the device sent it.
    pub metric_sent: Arc<str>,
    /// The fields as sent, encoded by [`crate::resolve::raw::encode`]: usually a slice of the
    /// buffer the record was decoded from, shared by its records (no copy per record).
    pub raw: bytes::Bytes,
    /// Typed values by column name (only non-null ones), for known metrics.
    pub typed: TypedValues,
    /// Untyped fields: name as sent, value as text.
    pub untyped: Vec<(String, String)>,
    /// Content hash of typed + untyped parts, to tell exact duplicates from conflicting ones.
    pub hash: u64,
}

/// Hashes a record's content (typed values by column, untyped pairs in name order), stable
/// across runs and encodings. The bytes are laid out in a reused buffer and hashed in one call
/// (the same value as feeding them to a streaming XXH3, without its per-piece cost).
pub fn content_hash(typed: &[(Name, TypedValue)], untyped: &[(String, String)]) -> u64 {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        content_bytes(buf, typed, untyped);
        xxhash_rust::xxh3::xxh3_64(buf)
    })
}

/// The bytes [`content_hash`] hashes.
fn content_bytes(h: &mut Vec<u8>, typed: &[(Name, TypedValue)], untyped: &[(String, String)]) {
    for (name, v) in typed {
        h.extend_from_slice(name.as_bytes());
        h.push(0xff);
        match v {
            TypedValue::Null => h.push(0),
            TypedValue::Bool(b) => h.extend_from_slice(&[1, *b as u8]),
            TypedValue::Int(i) => {
                h.push(2);
                h.extend_from_slice(&i.to_le_bytes())
            }
            TypedValue::Float(f) => {
                h.push(3);
                h.extend_from_slice(&f.to_bits().to_le_bytes())
            }
            TypedValue::Str(s) => {
                h.push(4);
                h.extend_from_slice(s.as_bytes());
                h.push(0xff)
            }
        }
    }
    h.push(0xfe);
    // Untyped fields hash in name order: the same record sent as JSON and as Avro (whose maps
    // have no order) is the same content.
    let push = |h: &mut Vec<u8>, (k, v): &(String, String)| {
        h.extend_from_slice(k.as_bytes());
        h.push(0xff);
        h.extend_from_slice(v.as_bytes());
        h.push(0xff);
    };
    if untyped.windows(2).all(|w| w[0] <= w[1]) {
        untyped.iter().for_each(|p| push(h, p));
    } else {
        let mut pairs: Vec<&(String, String)> = untyped.iter().collect();
        pairs.sort_unstable();
        pairs.into_iter().for_each(|p| push(h, p));
    }
}

/// Identifies one output partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionKey {
    pub tenant: String,
    /// Canonical metric name (or the name as sent for unknown metrics).
    pub metric: String,
    /// Days since the epoch (UTC).
    pub day: i32,
}

impl PartitionKey {
    /// `YYYY-MM-DD` of the partition.
    pub fn date(&self) -> String {
        day_to_date(self.day)
    }
}

/// Days since the epoch of a ms timestamp.
pub fn day_of(ts_ms: i64) -> i32 {
    ts_ms.div_euclid(86_400_000) as i32
}

/// `YYYY-MM-DD` of a day number.
pub fn day_to_date(day: i32) -> String {
    let d = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
        + chrono::Duration::days(day as i64);
    d.format("%Y-%m-%d").to_string()
}

/// The day number of a `YYYY-MM-DD` date, `None` when it is not one.
pub fn date_to_day(date: &str) -> Option<i32> {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(day_of(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis()))
}

/// For tests: a deterministic picker of indices below `n` (a 64-bit LCG from `seed`), so
/// random records repeat from run to run.
#[cfg(test)]
pub(crate) fn picker(seed: u64) -> impl FnMut(usize) -> usize {
    let mut state = seed;
    move |n| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_interned_once_and_compares_by_its_text() {
        use std::hash::{BuildHasher, Hash, Hasher};
        let a = Name::new("temperature");
        let b = Name::new(&String::from("temperature"));
        let c = Name::new("pressure");
        assert!(std::ptr::eq(a.as_str(), b.as_str()), "one copy per text");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a == *"temperature" && c != *"temperature");
        let hash = |x: &dyn Fn(&mut ahash::AHasher)| {
            let mut h = ahash::RandomState::with_seeds(1, 2, 3, 4).build_hasher();
            x(&mut h);
            h.finish()
        };
        assert_eq!(hash(&|h| a.hash(h)), hash(&|h| "temperature".hash(h)));
        assert_eq!(format!("{a} {a:?}"), "temperature \"temperature\"");
    }

    /// The streaming form the stored content fingerprints were first computed with.
    fn streaming(typed: &[(Name, TypedValue)], untyped: &[(String, String)]) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for (name, v) in typed {
            h.update(name.as_bytes());
            h.update(&[0xff]);
            match v {
                TypedValue::Null => h.update(&[0]),
                TypedValue::Bool(b) => h.update(&[1, *b as u8]),
                TypedValue::Int(i) => {
                    h.update(&[2]);
                    h.update(&i.to_le_bytes())
                }
                TypedValue::Float(f) => {
                    h.update(&[3]);
                    h.update(&f.to_bits().to_le_bytes())
                }
                TypedValue::Str(s) => {
                    h.update(&[4]);
                    h.update(s.as_bytes());
                    h.update(&[0xff])
                }
            }
        }
        h.update(&[0xfe]);
        let mut pairs: Vec<&(String, String)> = untyped.iter().collect();
        pairs.sort_unstable();
        for (k, v) in pairs {
            h.update(k.as_bytes());
            h.update(&[0xff]);
            h.update(v.as_bytes());
            h.update(&[0xff]);
        }
        h.digest()
    }

    #[test]
    fn the_content_hash_keeps_its_values_and_ignores_untyped_order() {
        let typed: TypedValues = vec![
            ("temperature".into(), TypedValue::Float(21.5)),
            ("pressure".into(), TypedValue::Int(-3)),
            ("running".into(), TypedValue::Bool(true)),
            ("site".into(), TypedValue::Str("site-7".repeat(40))),
        ];
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        let sorted = vec![pair("fw", "1.2.3"), pair("rssi", "-61"), pair("zz", "")];
        let shuffled = vec![sorted[2].clone(), sorted[0].clone(), sorted[1].clone()];
        for (t, u) in [
            (&typed[..], &sorted[..]),
            (&typed[..], &shuffled[..]),
            (&typed[..0], &sorted[..]),
            (&typed[..2], &[][..]),
        ] {
            assert_eq!(content_hash(t, u), streaming(t, u));
        }
        assert_eq!(
            content_hash(&typed, &sorted),
            content_hash(&typed, &shuffled)
        );
        assert_ne!(
            content_hash(&typed, &sorted),
            content_hash(&typed[..3], &sorted)
        );
    }
}
