//! Request counting: every location's store is wrapped so a run can report the requests it
//! made, by kind, as S3 would bill them (a listing is one request per 1,000 keys returned).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use serde::{Deserialize, Serialize};

/// Keys per page of an S3 listing.
const PAGE: u64 = 1000;

/// Requests by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requests {
    /// Listing pages (LIST).
    pub list: u64,
    /// Reads, whole or ranged, and HEADs (GET).
    pub get: u64,
    /// Of `get`, the reads of Delta logs (`_delta_log/`), made by the Delta library: how often
    /// it reads a commit again varies with its timing, by a few per table.
    #[serde(default)]
    pub delta_log_get: u64,
    /// Puts, multipart starts and copies (PUT).
    pub put: u64,
    /// Delete requests.
    pub delete: u64,
}

impl std::ops::Add for Requests {
    type Output = Requests;
    fn add(self, o: Requests) -> Requests {
        Requests {
            list: self.list + o.list,
            get: self.get + o.get,
            delta_log_get: self.delta_log_get + o.delta_log_get,
            put: self.put + o.put,
            delete: self.delete + o.delete,
        }
    }
}

impl std::ops::Sub for Requests {
    type Output = Requests;
    fn sub(self, o: Requests) -> Requests {
        Requests {
            list: self.list.saturating_sub(o.list),
            get: self.get.saturating_sub(o.get),
            delta_log_get: self.delta_log_get.saturating_sub(o.delta_log_get),
            put: self.put.saturating_sub(o.put),
            delete: self.delete.saturating_sub(o.delete),
        }
    }
}

/// Running counts, shared by a store and every location over it.
#[derive(Debug, Default)]
pub struct Counts {
    list: AtomicU64,
    get: AtomicU64,
    delta_log_get: AtomicU64,
    put: AtomicU64,
    delete: AtomicU64,
}

impl Counts {
    /// The counts so far.
    pub fn snapshot(&self) -> Requests {
        Requests {
            list: self.list.load(Ordering::Relaxed),
            get: self.get.load(Ordering::Relaxed),
            delta_log_get: self.delta_log_get.load(Ordering::Relaxed),
            put: self.put.load(Ordering::Relaxed),
            delete: self.delete.load(Ordering::Relaxed),
        }
    }

    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// `inner` wrapped so its requests are counted, and the counts.
pub fn wrap(inner: Arc<dyn ObjectStore>) -> (Arc<dyn ObjectStore>, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let store = Arc::new(Counted {
        inner,
        counts: counts.clone(),
    });
    (store, counts)
}

/// A store that counts the requests it passes on.
#[derive(Debug)]
struct Counted {
    inner: Arc<dyn ObjectStore>,
    counts: Arc<Counts>,
}

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Counted {
    /// A listing stream counted by page: the first request, then one per further 1,000 keys.
    fn pages(
        &self,
        listed: BoxStream<'static, object_store::Result<ObjectMeta>>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        Counts::add(&self.counts.list);
        let counts = self.counts.clone();
        let mut seen = 0u64;
        listed
            .inspect(move |_| {
                seen += 1;
                if seen.is_multiple_of(PAGE) {
                    Counts::add(&counts.list);
                }
            })
            .boxed()
    }
}

#[async_trait::async_trait]
impl ObjectStore for Counted {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        Counts::add(&self.counts.put);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Counts::add(&self.counts.put);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        Counts::add(&self.counts.get);
        if location.as_ref().contains("_delta_log/") {
            Counts::add(&self.counts.delta_log_get);
        }
        tracing::trace!(%location, head = options.head, "GET");
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        Counts::add(&self.counts.delete);
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.pages(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.pages(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        Counts::add(&self.counts.list);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        Counts::add(&self.counts.put);
        self.inner.copy_opts(from, to, options).await
    }
}
