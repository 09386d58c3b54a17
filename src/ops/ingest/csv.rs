//! CSV with a header: the dialect sniffed from the file's start (delimiter; `"` quotes, fields
//! may hold newlines; a UTF-8 BOM is skipped), column types sniffed from samples at the start,
//! middle and end of the file and then proven by a full pass (a column that fails its sniffed
//! type becomes text, and that is reported), rows streamed from a local file.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::rows::{bad, BadRow, Row};
use crate::error::{Error, Result};
use crate::model::RawValue;

/// Delimiters tried when none is given.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Bytes read for sniffing at each sample point.
const SAMPLE_BYTES: u64 = 256 << 10;

/// Rows per sample.
const SAMPLE_ROWS: usize = 2000;

/// How a CSV file is written.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CsvDialect {
    pub delimiter: char,
    pub quote: char,
    pub header: Vec<String>,
    /// Whether the file starts with a UTF-8 byte order mark.
    pub bom: bool,
}

/// The type of a CSV column's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColType {
    /// No value seen yet.
    Unknown,
    Boolean,
    Long,
    Double,
    Text,
}

impl ColType {
    /// The narrowest type of one value.
    fn of(v: &str) -> ColType {
        if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
            ColType::Boolean
        } else if is_long(v) {
            ColType::Long
        } else if is_double(v) {
            ColType::Double
        } else {
            ColType::Text
        }
    }

    /// The narrowest type holding both.
    fn join(self, other: ColType) -> ColType {
        use ColType::*;
        match (self, other) {
            (Unknown, t) | (t, Unknown) => t,
            (a, b) if a == b => a,
            (Long, Double) | (Double, Long) => Double,
            _ => Text,
        }
    }

    /// Whether a value of type `v` is written as this type.
    fn holds(self, v: ColType) -> bool {
        self == v || (self == ColType::Double && v == ColType::Long) || self == ColType::Text
    }
}

/// An integer without leading zeros, of at most 18 digits (longer ids stay text).
fn is_long(v: &str) -> bool {
    let d = v.strip_prefix('-').unwrap_or(v);
    !d.is_empty()
        && d.len() <= 18
        && d.bytes().all(|b| b.is_ascii_digit())
        && (d == "0" || !d.starts_with('0'))
}

/// A JSON number with a fraction or an exponent.
fn is_double(v: &str) -> bool {
    let d = v.strip_prefix('-').unwrap_or(v);
    let (int, rest) = d.split_at(
        d.bytes()
            .position(|b| b == b'.' || b == b'e' || b == b'E')
            .unwrap_or(d.len()),
    );
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || (int.len() > 1 && int.starts_with('0'))
        || rest.is_empty()
    {
        return false;
    }
    let (frac, exp) = match rest.strip_prefix('.') {
        Some(r) => r.split_at(
            r.bytes()
                .position(|b| b == b'e' || b == b'E')
                .unwrap_or(r.len()),
        ),
        None => ("x", rest),
    };
    let frac_ok = frac == "x" || (!frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()));
    let exp_ok = exp.is_empty() || {
        let e = &exp[1..];
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    };
    frac_ok && exp_ok && v.parse::<f64>().is_ok_and(f64::is_finite)
}

/// A column whose values did not all fit its sniffed type.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Widening {
    pub column: String,
    pub sniffed: ColType,
    pub now: ColType,
    /// The first value that did not fit, and its record number.
    pub value: String,
    pub record: u64,
}

/// A CSV file being read.
pub struct CsvReader {
    path: PathBuf,
    pub dialect: CsvDialect,
    /// Per column, in header order.
    pub types: Vec<ColType>,
    max_record_bytes: usize,
}

impl CsvReader {
    /// Sniffs the dialect (the delimiter when not given) and reads the header.
    pub fn open(path: &Path, delimiter: Option<u8>, max_record_bytes: usize) -> Result<Self> {
        let io = |e| Error::io(path.display(), e);
        let mut head = Vec::new();
        File::open(path)
            .map_err(io)?
            .take(SAMPLE_BYTES)
            .read_to_end(&mut head)
            .map_err(io)?;
        let bom = head.starts_with(b"\xEF\xBB\xBF");
        let text = if bom { &head[3..] } else { &head[..] };
        if text.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(Error::InvalidOption("an empty file".into()));
        }
        let delimiter = delimiter.unwrap_or_else(|| sniff_delimiter(text));
        let mut r = builder(delimiter).has_headers(false).from_reader(text);
        let mut first = csv::ByteRecord::new();
        if !r
            .read_byte_record(&mut first)
            .map_err(|e| Error::InvalidOption(format!("no header row: {e}")))?
        {
            return Err(Error::InvalidOption("no header row".into()));
        }
        let header = header_names(&first)?;
        Ok(CsvReader {
            path: path.to_path_buf(),
            dialect: CsvDialect {
                delimiter: delimiter as char,
                quote: '"',
                header,
                bom,
            },
            types: Vec::new(),
            max_record_bytes,
        })
    }

    /// Column types from samples at the start, the middle and the end of the file.
    pub fn sniff_types(&mut self) -> Result<()> {
        let n = self.dialect.header.len();
        let mut types = vec![ColType::Unknown; n];
        let size = std::fs::metadata(&self.path)
            .map_err(|e| Error::io(self.path.display(), e))?
            .len();
        let points = [
            (0, true),
            (size / 2, false),
            (size.saturating_sub(SAMPLE_BYTES), false),
        ];
        // A file smaller than a sample is read whole by the first one.
        for (at, skip_header) in points
            .into_iter()
            .filter(|(at, first)| *first || (*at > 0 && size > SAMPLE_BYTES))
        {
            let mut f = File::open(&self.path).map_err(|e| Error::io(self.path.display(), e))?;
            f.seek(SeekFrom::Start(at))
                .map_err(|e| Error::io(self.path.display(), e))?;
            let mut chunk = Vec::new();
            f.take(SAMPLE_BYTES)
                .read_to_end(&mut chunk)
                .map_err(|e| Error::io(self.path.display(), e))?;
            let body: &[u8] = match (at, memchr::memchr(b'\n', &chunk)) {
                (0, _) => &chunk,
                (_, Some(i)) => &chunk[i + 1..],
                (_, None) => continue,
            };
            let mut r = builder(self.dialect.delimiter as u8)
                .has_headers(skip_header)
                .from_reader(body);
            let mut rec = csv::ByteRecord::new();
            let mut rows = 0;
            while rows < SAMPLE_ROWS && matches!(r.read_byte_record(&mut rec), Ok(true)) {
                if rec.len() != n {
                    continue;
                }
                rows += 1;
                for (t, v) in types.iter_mut().zip(rec.iter()) {
                    if let Ok(v) = std::str::from_utf8(v) {
                        if !v.is_empty() {
                            *t = t.join(ColType::of(v));
                        }
                    }
                }
            }
        }
        self.types = types;
        Ok(())
    }

    /// A full pass: every value must fit its sniffed type, or the column becomes text (said in
    /// the returned widenings). Columns never seen with a value are text.
    pub fn prove(&mut self) -> Result<Vec<Widening>> {
        let mut widened: Vec<Widening> = Vec::new();
        let header = self.dialect.header.clone();
        let mut types = self.types.clone();
        self.scan(&mut |rec, record| {
            for (i, v) in rec.iter().enumerate() {
                let Ok(v) = std::str::from_utf8(v) else {
                    continue;
                };
                if v.is_empty() {
                    continue;
                }
                let t = ColType::of(v);
                match types[i] {
                    ColType::Unknown => types[i] = t,
                    cur if cur.holds(t) => {}
                    cur => {
                        types[i] = ColType::Text;
                        widened.push(Widening {
                            column: header[i].clone(),
                            sniffed: cur,
                            now: ColType::Text,
                            value: v.chars().take(200).collect(),
                            record,
                        });
                    }
                }
            }
            Ok(())
        })?;
        for t in types.iter_mut() {
            if *t == ColType::Unknown {
                *t = ColType::Text;
            }
        }
        self.types = types;
        Ok(widened)
    }

    /// Every row, with its values of the proven types; bad rows say where and why.
    pub fn rows(
        &self,
        each: &mut dyn FnMut(std::result::Result<Row, Box<BadRow>>) -> Result<()>,
    ) -> Result<()> {
        let header = &self.dialect.header;
        let types = &self.types;
        let mut pending: Option<(csv::ByteRecord, csv::Position)> = None;
        let emit = |rec: &csv::ByteRecord,
                    pos: &csv::Position,
                    each: &mut dyn FnMut(std::result::Result<Row, Box<BadRow>>) -> Result<()>|
         -> Result<()> {
            each(convert(rec, pos, header, types, self.max_record_bytes))
        };
        let mut last_end = 0u64;
        let mut reader = self.reader()?;
        let mut rec = csv::ByteRecord::new();
        loop {
            let more = reader
                .read_byte_record(&mut rec)
                .map_err(|e| Error::InvalidOption(format!("CSV: {e}")))?;
            if !more {
                break;
            }
            let pos = rec.position().cloned().unwrap_or_else(csv::Position::new);
            last_end = reader.position().byte();
            if let Some((p, pp)) = pending.replace((rec.clone(), pos)) {
                emit(&p, &pp, each)?;
            }
        }
        if let Some((p, pp)) = pending {
            match self.unterminated(pp.byte(), last_end)? {
                true => each(Err(bad(
                    pp.record(),
                    Some(pp.line()),
                    Some(pp.byte() + self.bom_len()),
                    None,
                    &p.as_slice()[..p.as_slice().len().min(200)],
                    "unterminated_quote",
                    "a quoted field runs to the end of the file".into(),
                )))?,
                false => emit(&p, &pp, each)?,
            }
        }
        Ok(())
    }

    /// Reads every record once (for proving types).
    fn scan(&self, f: &mut dyn FnMut(&csv::ByteRecord, u64) -> Result<()>) -> Result<()> {
        let mut reader = self.reader()?;
        let mut rec = csv::ByteRecord::new();
        while reader
            .read_byte_record(&mut rec)
            .map_err(|e| Error::InvalidOption(format!("CSV: {e}")))?
        {
            if rec.len() == self.dialect.header.len() {
                let record = rec.position().map_or(0, |p| p.record());
                f(&rec, record)?;
            }
        }
        Ok(())
    }

    fn bom_len(&self) -> u64 {
        if self.dialect.bom {
            3
        } else {
            0
        }
    }

    fn reader(&self) -> Result<csv::Reader<BufReader<File>>> {
        let mut f = File::open(&self.path).map_err(|e| Error::io(self.path.display(), e))?;
        f.seek(SeekFrom::Start(self.bom_len()))
            .map_err(|e| Error::io(self.path.display(), e))?;
        Ok(builder(self.dialect.delimiter as u8)
            .has_headers(true)
            .from_reader(BufReader::with_capacity(1 << 20, f)))
    }

    /// Whether the record starting at `start` (to the end of the file) opens a quote it never
    /// closes.
    fn unterminated(&self, start: u64, end: u64) -> Result<bool> {
        let mut f = File::open(&self.path).map_err(|e| Error::io(self.path.display(), e))?;
        f.seek(SeekFrom::Start(start + self.bom_len()))
            .map_err(|e| Error::io(self.path.display(), e))?;
        let mut tail = Vec::new();
        f.take(end.saturating_sub(start) + 1)
            .read_to_end(&mut tail)
            .map_err(|e| Error::io(self.path.display(), e))?;
        Ok(memchr::memchr_iter(b'"', &tail).count() % 2 == 1)
    }
}

fn builder(delimiter: u8) -> csv::ReaderBuilder {
    let mut b = csv::ReaderBuilder::new();
    b.delimiter(delimiter)
        .quote(b'"')
        .flexible(true)
        .double_quote(true);
    b
}

/// The delimiter that splits most of the first rows into the same number (more than one) of
/// fields (a ragged row does not throw it off).
fn sniff_delimiter(text: &[u8]) -> u8 {
    let mut best = (b',', 0usize, 0usize);
    for d in DELIMITERS {
        let mut r = builder(d).has_headers(false).from_reader(text);
        let mut counts = Vec::new();
        let mut rec = csv::ByteRecord::new();
        while counts.len() < 50 && matches!(r.read_byte_record(&mut rec), Ok(true)) {
            counts.push(rec.len());
        }
        let mut freq: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
        for c in &counts {
            *freq.entry(*c).or_default() += 1;
        }
        let Some((&fields, &times)) = freq.iter().max_by_key(|(f, t)| (**t, **f)) else {
            continue;
        };
        if fields > 1 && (times, fields) > (best.2, best.1) {
            best = (d, fields, times);
        }
    }
    best.0
}

fn header_names(rec: &csv::ByteRecord) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for (i, f) in rec.iter().enumerate() {
        let n = std::str::from_utf8(f)
            .map_err(|_| Error::InvalidOption(format!("header column {} is not UTF-8", i + 1)))?
            .trim()
            .to_string();
        let n = if n.is_empty() {
            format!("column_{}", i + 1)
        } else {
            n
        };
        if names.contains(&n) {
            return Err(Error::InvalidOption(format!(
                "the header names column {n:?} twice"
            )));
        }
        names.push(n);
    }
    Ok(names)
}

/// A record as a row of typed values, or why it is bad.
fn convert(
    rec: &csv::ByteRecord,
    pos: &csv::Position,
    header: &[String],
    types: &[ColType],
    max: usize,
) -> std::result::Result<Row, Box<BadRow>> {
    let (record, line, offset) = (pos.record(), Some(pos.line()), Some(pos.byte()));
    let raw = rec.as_slice();
    if raw.len() > max {
        return Err(bad(
            record,
            line,
            offset,
            None,
            &raw[..200.min(raw.len())],
            "oversized_row",
            format!("a row over {max} bytes"),
        ));
    }
    if rec.len() != header.len() {
        let msg = format!("{} fields, the header has {}", rec.len(), header.len());
        return Err(bad(
            record,
            line,
            offset,
            None,
            &joined(rec),
            "ragged_row",
            msg,
        ));
    }
    let mut values = Vec::with_capacity(header.len());
    for ((name, t), v) in header.iter().zip(types).zip(rec.iter()) {
        let Ok(text) = std::str::from_utf8(v) else {
            return Err(bad(
                record,
                line,
                offset,
                Some(name.clone()),
                v,
                "invalid_utf8",
                "not UTF-8".into(),
            ));
        };
        let value = match (t, text.is_empty()) {
            (_, true) => RawValue::Null,
            (ColType::Boolean, _) => RawValue::Bool(text.eq_ignore_ascii_case("true")),
            (ColType::Long | ColType::Double, _) => RawValue::Number(text.to_string().into()),
            _ => RawValue::Str(text.to_string().into()),
        };
        values.push((name.clone(), value));
    }
    Ok(Row {
        record,
        line,
        offset,
        values,
    })
}

/// A record's fields joined by commas, for an error line.
fn joined(rec: &csv::ByteRecord) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in rec.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_types_keep_ids_as_text() {
        assert_eq!(ColType::of("12"), ColType::Long);
        assert_eq!(ColType::of("-0"), ColType::Long);
        assert_eq!(ColType::of("007"), ColType::Text);
        assert_eq!(ColType::of("1234567890123456789"), ColType::Text);
        assert_eq!(ColType::of("1.5e3"), ColType::Double);
        assert_eq!(ColType::of(".5"), ColType::Text);
        assert_eq!(ColType::of("5."), ColType::Text);
        assert_eq!(ColType::of("NaN"), ColType::Text);
        assert_eq!(ColType::of("TRUE"), ColType::Boolean);
        assert_eq!(ColType::of("2024/12/12"), ColType::Text);
        assert_eq!(ColType::Long.join(ColType::Double), ColType::Double);
        assert_eq!(ColType::Boolean.join(ColType::Long), ColType::Text);
    }

    #[test]
    fn delimiters_are_sniffed() {
        assert_eq!(sniff_delimiter(b"a;b;c\n1;2;3\n4;5;6\n"), b';');
        assert_eq!(sniff_delimiter(b"a\tb\n1\t2\n"), b'\t');
        assert_eq!(sniff_delimiter(b"a,b\n\"x,y\",2\n"), b',');
    }
}
