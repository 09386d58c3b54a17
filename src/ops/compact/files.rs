//! A partition's encoded files: in memory or on local disk, put in the lake (the typed files
//! in place but unreferenced, the untyped and index files staged), and the change they make
//! for the commit to reference.

use bytes::Bytes;

use super::partition::PartitionPaths;
use crate::commit::log::{PartitionChange, TypedFile};
use crate::error::{Error, Result};
use crate::model::PartitionKey;
use crate::storage::Location;
use crate::write::encoder::{DiskFile, Parts, TypedNames, TypedPart};
use crate::write::index::DataFile;
use crate::write::typed::Columns;

/// A finished file of a partition: in memory, or on local disk with its size.
pub(crate) enum Body {
    Mem(Bytes),
    Disk(std::path::PathBuf, u64),
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Mem(b) => b.len() as u64,
            Body::Disk(_, n) => *n,
        }
    }

    /// Writes the file to `rel` in `lake` (a file on disk streamed, multipart when big).
    async fn put(self, lake: &Location, rel: &str) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        match self {
            Body::Mem(bytes) => lake.put(rel, bytes).await,
            Body::Disk(file, _) => {
                let path = lake.path(rel);
                let mut f = tokio::fs::File::open(&file)
                    .await
                    .map_err(|e| Error::io(file.display(), e))?;
                let mut w =
                    object_store::buffered::BufWriter::new(lake.store().clone(), path.clone());
                tokio::io::copy(&mut f, &mut w)
                    .await
                    .map_err(|e| Error::io(&path, e))?;
                w.shutdown().await.map_err(|e| Error::io(&path, e))
            }
        }
    }
}

/// A typed file encoded: its body, Delta stats and rows.
pub(crate) struct TypedBody {
    pub body: Body,
    pub stats: String,
    pub rows: u64,
}

impl TypedBody {
    /// The encoder's finished typed files, each's body made by `body` from its sink and size.
    fn all<W>(parts: Vec<TypedPart<W>>, body: impl Fn(W, u64) -> Body) -> Vec<Self> {
        let one = |t: TypedPart<W>| TypedBody {
            body: body(t.file, t.size),
            stats: t.stats,
            rows: t.rows,
        };
        parts.into_iter().map(one).collect()
    }
}

/// A partition's encoded files.
pub(crate) struct Encoded {
    /// The typed files (one per window) in order.
    pub typed: Vec<TypedBody>,
    pub lines: Option<Body>,
    pub untyped_count: u64,
    /// `None` when the partition is now empty.
    pub index: Option<Body>,
}

impl From<Parts<Vec<u8>>> for Encoded {
    fn from(p: Parts<Vec<u8>>) -> Self {
        let mem = |v: Vec<u8>| Body::Mem(Bytes::from(v));
        Encoded {
            typed: TypedBody::all(p.typed, |w, _| mem(w)),
            lines: p.lines.map(|(w, _)| mem(w)),
            untyped_count: p.untyped_count,
            index: p.index.map(mem),
        }
    }
}

impl From<Parts<DiskFile>> for Encoded {
    fn from(p: Parts<DiskFile>) -> Self {
        Encoded {
            typed: TypedBody::all(p.typed, |w, n| Body::Disk(w.path, n)),
            lines: p.lines.map(|(w, n)| Body::Disk(w.path, n)),
            untyped_count: p.untyped_count,
            index: p.index.map(|w| {
                let n = std::fs::metadata(&w.path).map(|m| m.len()).unwrap_or(0);
                Body::Disk(w.path, n)
            }),
        }
    }
}

/// What a version changes in partition `key`: the files `w` wrote (taken out of it) replace
/// `typed_remove`.
pub(crate) fn partition_change(
    key: &PartitionKey,
    paths: PartitionPaths,
    columns: Option<Columns>,
    typed_remove: Vec<DataFile>,
    w: &mut Written,
) -> PartitionChange {
    PartitionChange {
        tenant: key.tenant.clone(),
        metric: key.metric.clone(),
        date: key.date(),
        columns: columns.map(|c| c.0.iter().map(|(n, t)| (n.to_string(), *t)).collect()),
        typed_add: std::mem::take(&mut w.typed_add),
        typed_remove,
        untyped_staged: w.untyped_staged.take(),
        untyped_kept: false,
        untyped_path: paths.untyped,
        index_staged: w.index_staged.take(),
        index_path: paths.index,
    }
}

/// The files a partition wrote.
pub(crate) struct Written {
    pub typed_add: Vec<TypedFile>,
    pub untyped_staged: Option<String>,
    pub index_staged: Option<String>,
    pub bytes: u64,
    pub typed_rows: u64,
    pub untyped_lines: u64,
}

/// Puts the typed file in place (unreferenced until the Delta commit) and stages the others.
pub(crate) async fn write_files(
    lake: &Location,
    tag: &str,
    key: &PartitionKey,
    paths: &PartitionPaths,
    enc: Encoded,
    names: &TypedNames,
) -> Result<Written> {
    let mut bytes_written = 0u64;
    let mut typed_add = Vec::new();
    let typed_rows = enc.typed.iter().map(|t| t.rows).sum();
    for (n, t) in enc.typed.into_iter().enumerate() {
        let path = names.file(n);
        bytes_written += t.body.len();
        typed_add.push(TypedFile {
            file: DataFile {
                path: path.clone(),
                size: t.body.len(),
                rows: t.rows,
            },
            stats: t.stats,
        });
        t.body
            .put(lake, &format!("{}/{}", paths.table, path))
            .await?;
    }
    let mut staged = Vec::with_capacity(2);
    for (body, kind) in [(enc.lines, "untyped.jsonl"), (enc.index, "index.parquet")] {
        let Some(body) = body else {
            staged.push(None);
            continue;
        };
        let p = PartitionPaths::staged(tag, key, kind);
        bytes_written += body.len();
        body.put(lake, &p).await?;
        staged.push(Some(p));
    }
    let [untyped_staged, index_staged]: [Option<String>; 2] =
        staged.try_into().expect("two staged kinds");
    Ok(Written {
        typed_add,
        untyped_staged,
        index_staged,
        bytes: bytes_written,
        typed_rows,
        untyped_lines: enc.untyped_count,
    })
}
