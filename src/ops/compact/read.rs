//! Phase 1 of compact: fetch new objects (async, bounded concurrency), decode and admit them
//! on the rayon pool, and bucket the records by partition.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;

use crate::catalog::Catalog;
use crate::decode::{decode_object, Format, Limits, RecordSink};
use crate::dedup::{codec, Bucket, Buckets, LocalBuckets};
use crate::error::{Error, Result};
use crate::model::{FastMap, PartitionKey, RawRecord};
use crate::progress::Progress;
use crate::quarantine::{BadRecord, QuarantineBuffer};
use crate::resolve::{admit, metric_sent, Admitted};
use crate::sources::StagedObject;
use crate::storage::Location;

/// Everything phase 1 produced.
pub struct ReadOutput {
    pub buckets: Buckets,
    /// Bad records with the key of their object, in arrival order.
    /// Quarantine lines, by object.
    pub quarantine: QuarantineBuffer,
    pub records_in: u64,
    pub good_records: u64,
    pub bytes_read: u64,
    pub by_format: BTreeMap<String, u64>,
    /// Per object (by index): the partitions its records went to, as (tenant, metric as sent,
    /// day), sorted: what the lake remembers of which objects fed which partitions.
    pub fed: Vec<Vec<Fed>>,
}

/// What the read phase saw, as the report counts it (a fan-out read unit hands it on).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ReadSummary {
    pub objects: u64,
    pub records_in: u64,
    pub good_records: u64,
    pub bytes_read: u64,
    pub by_format: BTreeMap<String, u64>,
    pub errors_by_reason: BTreeMap<String, u64>,
    pub damaged: BTreeMap<String, u64>,
}

impl ReadOutput {
    /// The counts of this read.
    pub fn summary(&self) -> ReadSummary {
        ReadSummary {
            objects: self.fed.len() as u64,
            records_in: self.records_in,
            good_records: self.good_records,
            bytes_read: self.bytes_read,
            by_format: self.by_format.clone(),
            errors_by_reason: self.quarantine.errors_by_reason.clone(),
            damaged: self.quarantine.damaged.clone(),
        }
    }
}

/// (tenant, metric as sent, day) of records an object fed.
pub type Fed = (String, String, i32);

/// One object's decoded content.
struct ObjectOutput {
    index: usize,
    buckets: LocalBuckets,
    bad: Vec<BadRecord>,
    records_in: u64,
    good: u64,
    format: Format,
    bytes: u64,
}

/// Settings of the read phase.
#[derive(Clone, Copy, Debug)]
pub struct ReadSettings {
    pub limits: Limits,
    pub fetch_concurrency: usize,
    pub memory_budget: usize,
}

/// Reads and buckets `objects` (in arrival order; `first` + index = object id in the
/// buckets: a fan-out unit reads a slice of the run's objects).
#[allow(clippy::too_many_arguments)]
pub async fn read_objects(
    staged: &Location,
    objects: &[StagedObject],
    first: usize,
    catalog: Arc<Catalog>,
    settings: &ReadSettings,
    run_id: &str,
    progress: &dyn Progress,
) -> Result<ReadOutput> {
    let mut out = ReadOutput {
        buckets: Buckets::new(settings.memory_budget),
        quarantine: QuarantineBuffer::new(run_id, objects.len(), settings.memory_budget),
        records_in: 0,
        good_records: 0,
        bytes_read: 0,
        by_format: BTreeMap::new(),
        fed: vec![Vec::new(); objects.len()],
    };
    let limits = settings.limits;
    let hint = BucketHint::default();
    let mut stream = futures::stream::iter(objects.iter().enumerate())
        .map(|(index, obj)| {
            let catalog = catalog.clone();
            let path = obj.path.clone();
            let hint = &hint;
            async move {
                let bytes = staged.get_path(&path).await?;
                let hint = hint.get();
                on_rayon(move || decode_one(index, first + index, &bytes, &catalog, &limits, hint))
                    .await
            }
        })
        .buffer_unordered(settings.fetch_concurrency.max(1));
    while let Some(done) = stream.next().await {
        let o = done?;
        progress.advance(1, o.bytes);
        out.records_in += o.records_in;
        out.good_records += o.good;
        out.bytes_read += o.bytes;
        *out.by_format.entry(format!("{:?}", o.format)).or_default() += 1;
        out.quarantine.add(o.index, &objects[o.index].key, o.bad)?;
        let mut fed: Vec<Fed> = o
            .buckets
            .iter()
            .flat_map(|(k, b)| b.sent.iter().map(|m| (k.tenant.clone(), m.clone(), k.day)))
            .collect();
        fed.sort();
        out.fed[o.index] = fed;
        hint.learn(&o.buckets);
        out.buckets.absorb(o.buckets)?;
    }
    Ok(out)
}

/// Runs CPU work on the rayon pool without blocking the async runtime. A panic in `f` (a bug,
/// or a decoder meeting input it did not expect) is an error of this call, never an abort of
/// the process.
pub async fn on_rayon<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(panic)) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            Err(Error::Task(format!("a worker panicked: {what}")))
        }
        Err(_) => Err(Error::Task("rayon worker dropped its result".into())),
    }
}

fn decode_one(
    index: usize,
    id: usize,
    bytes: &[u8],
    catalog: &Catalog,
    limits: &Limits,
    bucket_bytes: usize,
) -> ObjectOutput {
    let mut sink = Sink {
        catalog,
        object: id as u32,
        buckets: ObjectBuckets {
            bucket_bytes,
            ..Default::default()
        },
        bad: Vec::new(),
        records_in: 0,
        good: 0,
    };
    let format = decode_object(bytes, limits, &mut sink);
    for (_, b) in &mut sink.buckets.all {
        if b.buf.len() < b.buf.capacity() / 2 {
            b.buf.shrink_to_fit();
        }
    }
    ObjectOutput {
        index,
        buckets: sink.buckets.all.into_iter().collect(),
        bad: sink.bad,
        records_in: sink.records_in,
        good: sink.good,
        format,
        bytes: bytes.len() as u64,
    }
}

/// One object's buckets, found by tenant, metric and day without making a key per record.
#[derive(Default)]
struct ObjectBuckets {
    /// Tenant -> metric -> (day, index in `all`).
    find: FastMap<String, FastMap<String, Vec<(i32, usize)>>>,
    all: Vec<(PartitionKey, Bucket)>,
    /// The room a new bucket starts with ([`BucketHint`]).
    bucket_bytes: usize,
}

/// The room an object's buckets start with: a quarter more than the mean bucket of the
/// objects read so far, so that most buckets are written without growing (each doubling of a
/// bucket's buffer is an allocation and a copy of what it holds), at most
/// [`MAX_BUCKET_HINT`]: an object of a few large buckets does not make every bucket of the
/// next objects large. Room a bucket did not use is given back when its object is done, when
/// it is more than half.
#[derive(Default)]
struct BucketHint {
    bytes: std::sync::atomic::AtomicUsize,
    buckets: std::sync::atomic::AtomicUsize,
}

/// The most room a new bucket starts with; a larger one grows from there.
const MAX_BUCKET_HINT: usize = 64 << 10;

impl BucketHint {
    /// Bytes to reserve for a new bucket.
    fn get(&self) -> usize {
        use std::sync::atomic::Ordering::Relaxed;
        let (bytes, n) = (self.bytes.load(Relaxed), self.buckets.load(Relaxed));
        ((bytes / n.max(1)).saturating_mul(5) / 4).min(MAX_BUCKET_HINT)
    }

    /// Counts the buckets of an object read.
    fn learn(&self, buckets: &LocalBuckets) {
        use std::sync::atomic::Ordering::Relaxed;
        let bytes: usize = buckets.values().map(|b| b.buf.len()).sum();
        self.bytes.fetch_add(bytes, Relaxed);
        self.buckets.fetch_add(buckets.len(), Relaxed);
    }
}

impl ObjectBuckets {
    /// The bucket of the partition `r` goes to.
    fn get(&mut self, r: &Admitted<'_>) -> &mut Bucket {
        let days = match self
            .find
            .get_mut(r.tenant)
            .and_then(|m| m.get_mut(r.metric))
        {
            Some(days) => days,
            None => self
                .find
                .entry(r.tenant.to_string())
                .or_default()
                .entry(r.metric.to_string())
                .or_default(),
        };
        let at = match days.iter().find(|(d, _)| *d == r.day) {
            Some(&(_, at)) => at,
            None => {
                let buf = Vec::with_capacity(self.bucket_bytes);
                self.all.push((r.key(), Bucket::encoded(r.known, 0, buf)));
                days.push((r.day, self.all.len() - 1));
                self.all.len() - 1
            }
        };
        &mut self.all[at].1
    }
}

struct Sink<'a> {
    catalog: &'a Catalog,
    object: u32,
    buckets: ObjectBuckets,
    bad: Vec<BadRecord>,
    records_in: u64,
    good: u64,
}

impl RecordSink for Sink<'_> {
    fn record(&mut self, rec: &RawRecord<'_>) {
        self.records_in += 1;
        match admit(rec, self.catalog) {
            Ok(r) => {
                self.good += 1;
                let b = self.buckets.get(&r);
                b.known = r.known;
                b.count += 1;
                let metric = metric_sent(rec).expect("admitted records have a metric");
                if !b.sent.iter().any(|m| m == metric) {
                    b.sent.push(metric.to_string());
                }
                codec::encode(
                    &mut b.buf,
                    r.ts,
                    self.object,
                    rec.position.record,
                    metric,
                    &rec.fields,
                );
            }
            Err(bad) => self.bad.push(*bad),
        }
    }

    fn bad(&mut self, bad: BadRecord) {
        if !bad.object_level {
            self.records_in += 1;
        }
        self.bad.push(bad);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_bucket_starts_with_a_quarter_more_than_the_mean_bucket_so_far() {
        let hint = BucketHint::default();
        assert_eq!(hint.get(), 0, "nothing read yet: buckets start empty");
        let mut object = LocalBuckets::default();
        for (day, len) in [(1, 100), (2, 300)] {
            let key = PartitionKey {
                tenant: "t".into(),
                metric: "m".into(),
                day,
            };
            object.insert(key, Bucket::encoded(true, 1, vec![0; len]));
        }
        hint.learn(&object);
        assert_eq!(hint.get(), 250);
        hint.learn(&LocalBuckets::default());
        assert_eq!(hint.get(), 250, "an object without records changes nothing");
        let key = PartitionKey {
            tenant: "t".into(),
            metric: "m".into(),
            day: 3,
        };
        let large = Bucket::encoded(true, 1, vec![0; 10 * MAX_BUCKET_HINT]);
        hint.learn(&[(key, large)].into_iter().collect());
        assert_eq!(hint.get(), MAX_BUCKET_HINT, "never more than the cap");
    }
}
