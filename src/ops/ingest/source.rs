//! Which files an ingest reads: one file, or every file below a prefix (keys with a segment
//! starting with `_` or `.` aside), local or in an object store; and a local copy of each to
//! read (the file itself when it is local), hashed on the way, gzip undone.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use object_store::{ObjectMeta, ObjectStoreExt};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::storage::{Location, StorageOptions};

/// The files of an ingest.
pub struct SourceFiles {
    /// Their directory.
    pub dir: Location,
    pub files: Vec<ObjectMeta>,
    /// The directory on the local disk, when it is local (files are read in place).
    pub local_root: Option<PathBuf>,
}

impl SourceFiles {
    /// One file or every file below a prefix.
    pub async fn resolve(url: &str, options: &StorageOptions) -> Result<SourceFiles> {
        let local = match url.strip_prefix("file://") {
            Some(p) => Some(p),
            None if !url.contains("://") => Some(url),
            None => None,
        };
        if let Some(p) = local {
            let path = Path::new(p);
            let meta = std::fs::metadata(path).map_err(|e| Error::InvalidLocation {
                location: url.to_string(),
                reason: e.to_string(),
            })?;
            if meta.is_file() {
                let parent = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let dir = Location::parse_existing_with(parent.to_str().unwrap_or("."), options)?;
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                let full = dir.path(name);
                let meta = dir
                    .store()
                    .head(&full)
                    .await
                    .map_err(|e| Error::store(&full, e))?;
                let files = vec![meta];
                let local_root = Some(
                    std::fs::canonicalize(parent).map_err(|e| Error::io(parent.display(), e))?,
                );
                return Ok(SourceFiles {
                    files,
                    dir,
                    local_root,
                });
            }
            let dir = Location::parse_existing_with(p, options)?;
            let mut found = Self::listed(dir).await?;
            found.local_root = Some(std::fs::canonicalize(p).map_err(|e| Error::io(p, e))?);
            return Ok(found);
        }
        let loc = Location::parse_with(url, options)?;
        if let Ok(meta) = loc.store().head(loc.prefix()).await {
            let (parent, _) = url
                .trim_end_matches('/')
                .rsplit_once('/')
                .unwrap_or((url, ""));
            let dir = Location::parse_with(parent, options)?;
            return Ok(SourceFiles {
                dir,
                files: vec![meta],
                local_root: None,
            });
        }
        Self::listed(loc).await
    }

    async fn listed(dir: Location) -> Result<SourceFiles> {
        let mut files: Vec<ObjectMeta> = dir
            .list("")
            .await?
            .into_iter()
            .filter(|m| {
                !dir.relative(&m.location)
                    .split('/')
                    .any(|s| s.starts_with('_') || s.starts_with('.'))
            })
            .collect();
        files.sort_by(|a, b| a.location.cmp(&b.location));
        if files.is_empty() {
            return Err(Error::InvalidLocation {
                location: dir.url().to_string(),
                reason: "no file to ingest below it".into(),
            });
        }
        Ok(SourceFiles {
            dir,
            files,
            local_root: None,
        })
    }

    /// A file's URL (its ingest identity).
    pub fn url_of(&self, meta: &ObjectMeta) -> String {
        format!(
            "{}/{}",
            self.dir.url().as_str().trim_end_matches('/'),
            self.dir.relative(&meta.location)
        )
    }
}

/// A local, plain (not gzip) copy of a source file and its SHA-256.
pub struct LocalCopy {
    pub path: PathBuf,
    pub sha256: String,
    pub gzip: bool,
    /// Temporary files to keep until the copy is read.
    _temps: Vec<tempfile::TempPath>,
}

/// Fetches (streamed to a temporary file unless the file is on the local disk), hashes, and
/// undoes gzip (to another temporary file).
pub async fn local_copy(src: &SourceFiles, meta: &ObjectMeta) -> Result<LocalCopy> {
    let mut temps = Vec::new();
    let dir = &src.dir;
    let path = match &src.local_root {
        Some(root) => {
            let rel = dir.relative(&meta.location);
            let rel = percent_encoding::percent_decode_str(&rel)
                .decode_utf8_lossy()
                .into_owned();
            root.join(rel)
        }
        None => {
            let tmp = tempfile::NamedTempFile::new().map_err(|e| Error::io("temp file", e))?;
            let (mut file, tpath) = tmp.into_parts();
            let got = dir
                .store()
                .get(&meta.location)
                .await
                .map_err(|e| Error::store(&meta.location, e))?;
            let mut stream = got.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| Error::store(&meta.location, e))?;
                file.write_all(&chunk)
                    .map_err(|e| Error::io(tpath.display(), e))?;
            }
            file.flush().map_err(|e| Error::io(tpath.display(), e))?;
            let p = tpath.to_path_buf();
            temps.push(tpath);
            p
        }
    };
    let (sha256, gzip) = crate::ops::compact::on_rayon({
        let path = path.clone();
        move || hash_and_sniff(&path)
    })
    .await??;
    if !gzip {
        return Ok(LocalCopy {
            path,
            sha256,
            gzip,
            _temps: temps,
        });
    }
    let plain = crate::ops::compact::on_rayon({
        let path = path.clone();
        move || gunzip_to_temp(&path)
    })
    .await??;
    let p = plain.to_path_buf();
    temps.push(plain);
    Ok(LocalCopy {
        path: p,
        sha256,
        gzip,
        _temps: temps,
    })
}

fn hash_and_sniff(path: &Path) -> Result<(String, bool)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut first = Vec::new();
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path.display(), e))?;
        if n == 0 {
            break;
        }
        if first.len() < 2 {
            first.extend_from_slice(&buf[..n.min(2)]);
        }
        h.update(&buf[..n]);
    }
    let sha: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((sha, first.starts_with(&[0x1f, 0x8b])))
}

fn gunzip_to_temp(path: &Path) -> Result<tempfile::TempPath> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let tmp = tempfile::NamedTempFile::new().map_err(|e| Error::io("temp file", e))?;
    let (mut out, tpath) = tmp.into_parts();
    let mut dec = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f));
    std::io::copy(&mut dec, &mut out)
        .map_err(|e| Error::InvalidOption(format!("a damaged gzip file: {e}")))?;
    out.flush().map_err(|e| Error::io(tpath.display(), e))?;
    Ok(tpath)
}
