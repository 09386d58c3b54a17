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
    spill: Option<PathBuf>,
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

    /// Adds one object's buckets; spills when over budget.
    pub fn absorb(&mut self, local: LocalBuckets) -> Result<()> {
        for (key, b) in local {
            self.in_memory += b.buf.len();
            let into = self.parts.entry(key).or_default();
            into.known = b.known;
            into.count += b.count;
            if into.buf.is_empty() {
                into.buf = b.buf;
            } else {
                into.buf.extend_from_slice(&b.buf);
            }
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
            if b.buf.is_empty() {
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
            f.write_all(&b.buf)
                .map_err(|e| Error::io(path.display(), e))?;
            self.spilled_bytes += b.buf.len() as u64;
            b.buf = Vec::new();
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
        self.in_memory = self.in_memory.saturating_sub(b.buf.len());
        if let Some(path) = b.spill.take() {
            let mut all = std::fs::read(&path).map_err(|e| Error::io(path.display(), e))?;
            all.extend_from_slice(&b.buf);
            b.buf = all;
            let _ = std::fs::remove_file(&path);
        }
        Ok(b)
    }
}
