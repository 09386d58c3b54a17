//! Per-partition buffers of encoded records, spilled to local disk past a memory budget so a
//! run's memory is bounded by settings, not by its input.

use std::io::{Read, Write};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::model::{FastMap, PartitionKey};

/// Records of one partition from one object or from the whole run.
#[derive(Debug, Default)]
pub struct Bucket {
    /// Whether the metric is declared in the catalog (records get typed rows).
    pub known: bool,
    pub buf: Vec<u8>,
    pub count: u64,
    /// The metric names its records were sent with (one object's bucket; usually one or two).
    pub sent: Vec<String>,
    /// In the run's buckets: the objects' buffers as they came, joined into `buf` only when
    /// the partition is taken (no copy, no growth slack while records wait).
    chunks: Vec<Vec<u8>>,
    spill: Option<PathBuf>,
    /// Taken without joining (larger than the buckets' join limit): its records are read in
    /// blocks from `spill` and `chunks` by [`Bucket::blocks`].
    streamed: bool,
}

impl Bucket {
    /// A bucket of `count` encoded records (read back from a fan-out bucket file).
    pub fn encoded(known: bool, count: u64, buf: Vec<u8>) -> Self {
        Bucket {
            known,
            buf,
            count,
            ..Default::default()
        }
    }
}

impl Bucket {
    /// Whether the bucket was left on disk and in chunks, to be read in blocks.
    pub fn streamed(&self) -> bool {
        self.streamed
    }

    /// Bytes of encoded records the bucket holds (on disk and in memory).
    pub fn stored_len(&self) -> Result<u64> {
        let spilled = match &self.spill {
            Some(path) => std::fs::metadata(path)
                .map_err(|e| Error::io(path.display(), e))?
                .len(),
            None => 0,
        };
        let chunks: usize = self.chunks.iter().map(Vec::len).sum();
        Ok(spilled + (chunks + self.buf.len()) as u64)
    }

    /// The bucket's encoded records in arrival order, as a reader (its spill file is removed
    /// once open).
    pub fn into_read(mut self) -> Result<Box<dyn std::io::Read + Send>> {
        let mut parts: Vec<Vec<u8>> = std::mem::take(&mut self.chunks);
        parts.push(std::mem::take(&mut self.buf));
        let memory = parts.into_iter().map(std::io::Cursor::new).fold(
            Box::new(std::io::empty()) as Box<dyn std::io::Read + Send>,
            |r, c| Box::new(r.chain(c)),
        );
        let Some(path) = self.spill.take() else {
            return Ok(memory);
        };
        let f = std::fs::File::open(&path).map_err(|e| Error::io(path.display(), e))?;
        let _ = std::fs::remove_file(&path);
        Ok(Box::new(std::io::Read::chain(f, memory)))
    }

    /// The bucket with every record in `buf` (read back from disk and chunks when streamed).
    pub fn joined(mut self) -> Result<Bucket> {
        if !self.streamed {
            return Ok(self);
        }
        let (known, count, sent) = (self.known, self.count, std::mem::take(&mut self.sent));
        let mut buf = Vec::with_capacity(self.stored_len()? as usize);
        self.into_read()?
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("spilled records", e))?;
        Ok(Bucket {
            known,
            buf,
            count,
            sent,
            ..Default::default()
        })
    }

    /// Passes the bucket's encoded records to `each` in arrival order, in blocks of whole
    /// records of about `block` bytes (all of `buf` at once when the bucket was joined).
    pub fn blocks(self, block: usize, mut each: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        if !self.streamed {
            return each(&self.buf);
        }
        let mut r = self.into_read()?;
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; block.clamp(1 << 12, 1 << 20)];
        loop {
            let n = r
                .read(&mut buf)
                .map_err(|e| Error::io("spilled records", e))?;
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&buf[..n]);
            if pending.len() >= block {
                let whole = super::codec::whole_records(&pending);
                each(&pending[..whole])?;
                pending.drain(..whole);
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        each(&pending)
    }
}

/// The buckets of one object, built without locks by a decode worker.
pub type LocalBuckets = FastMap<PartitionKey, Bucket>;

/// All buckets of a run.
pub struct Buckets {
    parts: FastMap<PartitionKey, Bucket>,
    in_memory: usize,
    budget: usize,
    dir: Option<tempfile::TempDir>,
    files: usize,
    /// Bytes written to spill files so far.
    pub spilled_bytes: u64,
    /// A partition holding more bytes than this is taken without joining its records.
    join_limit: usize,
}

impl Buckets {
    /// Empty buckets that spill past `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Buckets {
            parts: FastMap::default(),
            in_memory: 0,
            budget,
            dir: None,
            files: 0,
            spilled_bytes: 0,
            join_limit: usize::MAX,
        }
    }

    /// Partitions holding more than `bytes` are taken streamed ([`Bucket::streamed`]).
    pub fn with_join_limit(mut self, bytes: usize) -> Self {
        self.join_limit = bytes;
        self
    }

    /// Adds one object's buckets; spills when over budget. Memory is counted as the buffers'
    /// capacity: what they hold, not only what they store.
    pub fn absorb(&mut self, local: LocalBuckets) -> Result<()> {
        for (key, b) in local {
            self.in_memory += b.buf.capacity();
            let into = self.parts.entry(key).or_default();
            into.known = b.known;
            into.count += b.count;
            into.chunks.push(b.buf);
        }
        if self.in_memory > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        if self.dir.is_none() {
            let dir = tempfile::Builder::new()
                .prefix("fineo-spill-")
                .tempdir()
                .map_err(|e| Error::io("spill dir", e))?;
            self.dir = Some(dir);
        }
        let dir = self.dir.as_ref().expect("dir").path().to_path_buf();
        for b in self.parts.values_mut() {
            if b.chunks.is_empty() {
                continue;
            }
            if b.spill.is_none() {
                b.spill = Some(dir.join(format!("p{}.bin", self.files)));
                self.files += 1;
            }
            let path = b.spill.clone().expect("set above");
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| Error::io(path.display(), e))?;
            for chunk in std::mem::take(&mut b.chunks) {
                f.write_all(&chunk)
                    .map_err(|e| Error::io(path.display(), e))?;
                self.spilled_bytes += chunk.len() as u64;
            }
        }
        self.in_memory = 0;
        Ok(())
    }

    /// The partitions that received records, in key order.
    pub fn keys(&self) -> Vec<PartitionKey> {
        let mut k: Vec<_> = self.parts.keys().cloned().collect();
        k.sort();
        k
    }

    /// Takes a partition's records out (spilled part first, so arrival data stays whole).
    pub fn take(&mut self, key: &PartitionKey) -> Result<Bucket> {
        let mut b = self.parts.remove(key).unwrap_or_default();
        let held: usize = b.chunks.iter().map(Vec::capacity).sum();
        self.in_memory = self.in_memory.saturating_sub(held);
        let stored: usize = b.chunks.iter().map(Vec::len).sum();
        if b.stored_len()? > self.join_limit as u64 {
            b.streamed = true;
            return Ok(b);
        }
        let mut all = match b.spill.take() {
            Some(path) => {
                let mut f = std::fs::File::open(&path).map_err(|e| Error::io(path.display(), e))?;
                let size = f
                    .metadata()
                    .map_err(|e| Error::io(path.display(), e))?
                    .len();
                let mut all = Vec::with_capacity(size as usize + stored);
                std::io::Read::read_to_end(&mut f, &mut all)
                    .map_err(|e| Error::io(path.display(), e))?;
                let _ = std::fs::remove_file(&path);
                all
            }
            None if b.chunks.len() == 1 => b.chunks.pop().expect("one chunk"),
            None => Vec::with_capacity(stored),
        };
        for chunk in b.chunks.drain(..) {
            all.extend_from_slice(&chunk);
        }
        b.buf = all;
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(key: &PartitionKey, bytes: &[u8]) -> LocalBuckets {
        let mut m = LocalBuckets::default();
        let mut b = Bucket {
            known: true,
            count: 1,
            ..Default::default()
        };
        b.buf.extend_from_slice(bytes);
        m.insert(key.clone(), b);
        m
    }

    #[test]
    fn a_partition_is_taken_whole_in_arrival_order_spilled_or_not() {
        let key = |m: &str| PartitionKey {
            tenant: "t01".into(),
            metric: m.into(),
            day: 1,
        };
        for budget in [0, 10, 1 << 20] {
            let mut all = Buckets::new(budget);
            for (i, chunk) in [&b"aaaa"[..], b"bb", b"cccccc", b"d"]
                .into_iter()
                .enumerate()
            {
                all.absorb(local(&key("x"), chunk)).unwrap();
                if i % 2 == 0 {
                    all.absorb(local(&key("y"), &[b'0' + i as u8])).unwrap();
                }
            }
            let x = all.take(&key("x")).unwrap();
            assert_eq!((x.buf.as_slice(), x.count), (&b"aaaabbccccccd"[..], 4));
            assert_eq!(all.take(&key("y")).unwrap().buf, b"02");
            assert!(all.take(&key("z")).unwrap().buf.is_empty());
            assert_eq!(all.spilled_bytes > 0, budget < 16, "budget {budget}");
        }
    }

    #[test]
    fn a_streamed_partition_comes_in_blocks_of_whole_records() {
        let key = PartitionKey {
            tenant: "t01".into(),
            metric: "x".into(),
            day: 1,
        };
        let mut want = Vec::new();
        let mut all = Buckets::new(300).with_join_limit(0);
        for object in 0..20u32 {
            let mut b = Bucket {
                known: true,
                count: 5,
                ..Default::default()
            };
            for pos in 0..5u64 {
                let name = "m".repeat(pos as usize * 7);
                super::super::codec::encode(&mut b.buf, pos as i64, object, pos, &name, &[]);
            }
            want.extend_from_slice(&b.buf);
            let mut m = LocalBuckets::default();
            m.insert(key.clone(), b);
            all.absorb(m).unwrap();
        }
        assert!(all.spilled_bytes > 0);
        let b = all.take(&key).unwrap();
        assert!(b.streamed() && b.buf.is_empty());
        let mut got = Vec::new();
        b.blocks(64, |block| {
            assert_eq!(super::super::codec::whole_records(block), block.len());
            got.extend_from_slice(block);
            Ok(())
        })
        .unwrap();
        assert_eq!(got, want);
    }
}
