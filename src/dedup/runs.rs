//! Sorted runs on local disk for a partition larger than its share of the memory budget:
//! records written in merge order, read back one at a time, and merged k ways so the merger
//! sees them as if the whole partition had been sorted in memory.

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::codec::Interner;
use super::merge::merge_order;
use crate::error::{Error, Result};
use crate::model::{Arrival, Rec};
use crate::resolve::raw::{put_len, put_str};

/// Writes `recs` (sorted by timestamp, then arrival) to a new run file at `path`.
pub fn write_run(path: &Path, recs: &[Rec]) -> Result<()> {
    let err = |e| Error::io(path.display(), e);
    let mut w = BufWriter::with_capacity(1 << 16, File::create(path).map_err(err)?);
    let mut buf = Vec::with_capacity(256);
    for r in recs {
        buf.clear();
        buf.extend_from_slice(&r.ts.to_le_bytes());
        buf.extend_from_slice(&r.arrival.delivery_ms.to_le_bytes());
        buf.extend_from_slice(&r.arrival.position.to_le_bytes());
        put_str(&mut buf, &r.arrival.source);
        put_str(&mut buf, &r.metric_sent);
        put_len(&mut buf, r.raw.len());
        buf.extend_from_slice(&r.raw);
        w.write_all(&buf).map_err(err)?;
    }
    w.flush().map_err(err)
}

/// Reads a run file back, one record at a time (not resolved).
pub struct RunReader {
    path: PathBuf,
    r: BufReader<File>,
    names: Interner,
}

impl RunReader {
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| Error::io(path.display(), e))?;
        Ok(RunReader {
            path: path.to_path_buf(),
            r: BufReader::with_capacity(1 << 16, f),
            names: Interner::default(),
        })
    }

    /// The next record, `None` at the end of the run.
    pub fn next_rec(&mut self) -> Result<Option<Rec>> {
        let mut head = [0u8; 24];
        match self.r.read_exact(&mut head[..8]) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            r => r.map_err(|e| Error::io(self.path.display(), e))?,
        }
        self.fill(&mut head[8..])?;
        let word = |i: usize| <[u8; 8]>::try_from(&head[i * 8..i * 8 + 8]).expect("8 bytes");
        let source = self.text()?;
        let source = self.names.get(&source);
        let metric = self.text()?;
        let metric_sent = self.names.get(&metric);
        let n = self.len()?;
        let mut raw = vec![0u8; n];
        self.fill(&mut raw)?;
        Ok(Some(Rec {
            ts: i64::from_le_bytes(word(0)),
            arrival: Arrival {
                delivery_ms: i64::from_le_bytes(word(1)),
                source,
                position: u64::from_le_bytes(word(2)),
            },
            metric_sent,
            raw: raw.into(),
            typed: Vec::new(),
            untyped: Vec::new(),
            hash: 0,
        }))
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        self.r
            .read_exact(buf)
            .map_err(|e| Error::io(self.path.display(), e))
    }

    fn len(&mut self) -> Result<usize> {
        let (mut n, mut shift) = (0usize, 0);
        loop {
            let mut b = [0u8; 1];
            self.fill(&mut b)?;
            n |= ((b[0] & 0x7f) as usize) << shift;
            if b[0] & 0x80 == 0 {
                return Ok(n);
            }
            shift += 7;
        }
    }

    fn text(&mut self) -> Result<String> {
        let mut b = vec![0u8; self.len()?];
        self.fill(&mut b)?;
        String::from_utf8(b).map_err(|e| Error::io(self.path.display(), std::io::Error::other(e)))
    }
}

/// A source of records in merge order: a run on disk, or the lake's records of a partition.
pub trait SortedSource: Send {
    /// The next record and whether it is new input.
    fn next_rec(&mut self) -> Result<Option<(Rec, bool)>>;
}

/// A run of new records.
pub struct NewRun(pub RunReader);

impl SortedSource for NewRun {
    fn next_rec(&mut self) -> Result<Option<(Rec, bool)>> {
        Ok(self.0.next_rec()?.map(|r| (r, true)))
    }
}

/// The head of one source in the k-way merge (a min-heap through reversed order).
struct Head {
    rec: (Rec, bool),
    source: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        merge_order(&other.rec, &self.rec).then_with(|| other.source.cmp(&self.source))
    }
}

/// Merges sorted sources into one stream in merge order.
pub struct KWay {
    sources: Vec<Box<dyn SortedSource>>,
    heap: BinaryHeap<Head>,
}

impl KWay {
    pub fn new(mut sources: Vec<Box<dyn SortedSource>>) -> Result<Self> {
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some(rec) = s.next_rec()? {
                heap.push(Head { rec, source: i });
            }
        }
        Ok(KWay { sources, heap })
    }

    /// The next record over all sources.
    pub fn next_rec(&mut self) -> Result<Option<(Rec, bool)>> {
        let Some(head) = self.heap.pop() else {
            return Ok(None);
        };
        if let Some(rec) = self.sources[head.source].next_rec()? {
            self.heap.push(Head {
                rec,
                source: head.source,
            });
        }
        Ok(Some(head.rec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ts: i64, delivery: i64, source: &str, pos: u64) -> Rec {
        Rec {
            ts,
            arrival: Arrival {
                delivery_ms: delivery,
                source: source.into(),
                position: pos,
            },
            metric_sent: "m\u{e9}".into(),
            raw: vec![1, 2, pos as u8].into(),
            typed: vec![],
            untyped: vec![],
            hash: 0,
        }
    }

    #[test]
    fn runs_merge_in_the_order_a_whole_sort_gives() {
        let dir = tempfile::tempdir().unwrap();
        let all: Vec<Rec> = (0..300u64)
            .map(|i| {
                rec(
                    (i * 7 % 50) as i64,
                    (i % 3) as i64,
                    &format!("o{}", i % 5),
                    i,
                )
            })
            .collect();
        let mut sources: Vec<Box<dyn SortedSource>> = Vec::new();
        for (n, chunk) in all.chunks(70).enumerate() {
            let mut chunk = chunk.to_vec();
            chunk.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.arrival.cmp(&b.arrival)));
            let path = dir.path().join(format!("r{n}"));
            write_run(&path, &chunk).unwrap();
            sources.push(Box::new(NewRun(RunReader::open(&path).unwrap())));
        }
        let mut k = KWay::new(sources).unwrap();
        let mut got = Vec::new();
        while let Some((r, new)) = k.next_rec().unwrap() {
            assert!(new);
            got.push(r);
        }
        let mut want = all;
        want.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.arrival.cmp(&b.arrival)));
        let key = |r: &Rec| {
            (
                r.ts,
                r.arrival.clone(),
                r.metric_sent.clone(),
                r.raw.clone(),
            )
        };
        assert_eq!(
            got.iter().map(key).collect::<Vec<_>>(),
            want.iter().map(key).collect::<Vec<_>>()
        );
    }
}
