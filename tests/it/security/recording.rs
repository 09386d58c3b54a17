//! A store that passes every request through and records the path of every write and delete
//! (put, multipart, copy target, delete), for tenant-isolation checks.

use std::fmt;
use std::sync::{Arc, Mutex};

use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use fineo_batch::storage::Location;

/// What a request did to a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Put,
    Multipart,
    Copy,
    Delete,
}

/// Records writes and deletes of the wrapped store.
#[derive(Debug)]
pub struct RecordingStore {
    inner: Arc<dyn ObjectStore>,
    log: Arc<Mutex<Vec<(Op, String)>>>,
}

impl fmt::Display for RecordingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordingStore({})", self.inner)
    }
}

impl RecordingStore {
    /// `loc` over a recording store, and the recording store.
    pub fn wrap(loc: &Location) -> (Location, Arc<RecordingStore>) {
        let store = Arc::new(RecordingStore {
            inner: loc.store().clone(),
            log: Arc::default(),
        });
        let wrapped = Location::with_store(store.clone(), loc.prefix().clone(), loc.url().clone());
        (wrapped, store)
    }

    fn note(&self, op: Op, path: &StorePath) {
        self.log.lock().unwrap().push((op, path.to_string()));
    }

    /// Every recorded write and delete, in order.
    pub fn recorded(&self) -> Vec<(Op, String)> {
        self.log.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl ObjectStore for RecordingStore {
    async fn put_opts(
        &self,
        location: &StorePath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.note(Op::Put, location);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &StorePath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.note(Op::Multipart, location);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &StorePath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<StorePath>>,
    ) -> BoxStream<'static, object_store::Result<StorePath>> {
        let log = self.log.clone();
        let noted = locations
            .map(move |r| {
                if let Ok(p) = &r {
                    log.lock().unwrap().push((Op::Delete, p.to_string()));
                }
                r
            })
            .boxed();
        self.inner.delete_stream(noted)
    }

    fn list(
        &self,
        prefix: Option<&StorePath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&StorePath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &StorePath,
        to: &StorePath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.note(Op::Copy, to);
        self.inner.copy_opts(from, to, options).await
    }
}
