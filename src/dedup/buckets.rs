//! Per-partition buffers of encoded records, spilled to local disk past a memory budget so a
//! run's memory is bounded by settings, not by its input.

use std::io::Write;
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
        }
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
}
