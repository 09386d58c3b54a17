//! `backup`: one standalone bundle per changed tenant-day (SPEC 11). Plans from the lake's
//! partition index and the bundles already in the backup location (an unchanged day costs one
//! small read), copies each day's partition files with their checksums, and creates the
//! manifest last. The lake is only read.

mod read;
pub mod verify;

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;

use crate::bundle::{self, BundleId, BundleSet, CatalogRef, FileEntry, Manifest, MANIFEST};
use crate::catalog::TenantDoc;
use crate::commit::{applied, LakeLog};
use crate::error::{Error, Result};
use crate::model::day_to_date;
use crate::ops::options::{Common, CommonOptions};
use crate::report::{BackupCounts, RunReport};
use crate::schema::store::CatalogStore;
use crate::storage::{Created, Location};
use crate::write::stored::{list_stored, StoredPartition};

pub use crate::ops::options::Selection;
pub use verify::VerifyBundles;

/// The `backup` operation, configured with `with_*` and run with [`Backup::execute`].
pub struct Backup {
    lake: Location,
    to: Location,
    common: Common,
}

/// One tenant-day to back up.
struct DayJob {
    tenant: String,
    day: i32,
    parts: Vec<StoredPartition>,
}

/// What one tenant-day came to.
enum DayOutcome {
    Written {
        dir: String,
        manifest: Box<Manifest>,
        lake_bytes: u64,
    },
    Unchanged,
    AlreadyComplete,
    ChangedDuringBackup(String),
}

impl CommonOptions for Backup {
    fn common(&mut self) -> &mut Common {
        &mut self.common
    }
}

impl Backup {
    /// Backs up `lake` into the backup location `to`.
    pub fn new(lake: Location, to: Location) -> Self {
        Backup {
            lake,
            to,
            common: Common::default(),
        }
    }

    /// Runs the backup; its report is also kept under `<B>/_runs/`.
    pub async fn execute(self) -> Result<RunReport> {
        let started = Instant::now();
        let mut report = RunReport::start("backup");
        let version = LakeLog::new(&self.lake).latest_published().await?;
        report.base_version = version;
        let jobs = self.plan().await?;
        let bundles = bundle::list_bundles(&self.to, &self.common.selection.tenants).await?;
        let catalogs = self.catalogs(&jobs).await?;
        let mut counts = BackupCounts {
            lake_version: version,
            tenant_days: jobs.len() as u64,
            ..Default::default()
        };
        self.common
            .progress
            .start("backup", Some(jobs.len() as u64));
        let ctx = DayCtx {
            lake: &self.lake,
            to: &self.to,
            bundles: &bundles,
            catalogs: &catalogs,
            version,
        };
        let mut outcomes = futures::stream::iter(jobs)
            .map(|job| ctx.back_up(job))
            .buffer_unordered(self.common.concurrency);
        while let Some(outcome) = outcomes.next().await {
            self.common.progress.advance(1, 0);
            match outcome? {
                DayOutcome::Written {
                    dir,
                    manifest,
                    lake_bytes,
                } => {
                    counts.files_written += manifest.files.len() as u64 + 1;
                    counts.bytes_written += manifest.bytes();
                    counts.lake_bytes_read += lake_bytes;
                    counts.records += manifest.records;
                    counts.written.push(dir);
                }
                DayOutcome::Unchanged => counts.unchanged += 1,
                DayOutcome::AlreadyComplete => counts.already_complete += 1,
                DayOutcome::ChangedDuringBackup(d) => counts.changed_during_backup.push(d),
            }
        }
        drop(outcomes);
        self.common.progress.finish();
        counts.written.sort();
        counts.changed_during_backup.sort();
        report.run_id = format!(
            "backup-v{version:06}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
        );
        report.message = match counts.written.len() {
            0 => format!("nothing to back up: every selected tenant-day is unchanged (lake version {version})"),
            n => format!("wrote {n} bundles of lake version {version}"),
        };
        report.backup = Some(counts);
        report.conservation_ok = true;
        report
            .finish(started, Some(&self.lake), self.common.report.as_ref())
            .await?;
        Ok(report)
    }

    /// The selected tenant-days that have partitions, with them.
    async fn plan(&self) -> Result<Vec<DayJob>> {
        let mut parts: Vec<StoredPartition> = Vec::new();
        if self.common.selection.tenants.is_empty() {
            parts = list_stored(&self.lake, None).await?;
        } else {
            for t in &self.common.selection.tenants {
                parts.extend(list_stored(&self.lake, Some(t)).await?);
            }
        }
        let mut days: BTreeMap<(String, i32), Vec<StoredPartition>> = BTreeMap::new();
        for p in parts {
            if self.common.selection.takes(&p.tenant, p.day) {
                days.entry((p.tenant.clone(), p.day)).or_default().push(p);
            }
        }
        Ok(days
            .into_iter()
            .map(|((tenant, day), parts)| DayJob { tenant, day, parts })
            .collect())
    }

    /// Each selected tenant's catalog as the bundles carry it.
    async fn catalogs(
        &self,
        jobs: &[DayJob],
    ) -> Result<BTreeMap<String, Option<TenantCatalogFile>>> {
        let mut applied = applied::load(&self.lake).await?;
        let store = CatalogStore::new(&self.lake);
        let mut out = BTreeMap::new();
        for job in jobs {
            if out.contains_key(&job.tenant) {
                continue;
            }
            let file = match applied.remove(&job.tenant) {
                None => None,
                Some(doc) => Some(TenantCatalogFile::of(&store, doc).await?),
            };
            out.insert(job.tenant.clone(), file);
        }
        Ok(out)
    }
}

/// A tenant's catalog file in its bundles.
#[derive(Clone)]
pub(crate) struct TenantCatalogFile {
    pub doc: TenantDoc,
    pub version: Option<u64>,
    pub bytes: Bytes,
}

impl TenantCatalogFile {
    /// The newest stored catalog version holding `doc` (a version edited since but not yet
    /// compacted is not the one the partitions were built with), else the document alone.
    async fn of(store: &CatalogStore, doc: TenantDoc) -> Result<Self> {
        let history = store.history(&doc.tenant).await?;
        if let Some(v) = history.into_iter().rev().find(|v| v.catalog == doc) {
            let bytes = serde_json::to_vec_pretty(&v).expect("catalog json");
            return Ok(TenantCatalogFile {
                doc,
                version: Some(v.version),
                bytes: Bytes::from(bytes),
            });
        }
        let bytes = serde_json::to_vec_pretty(&doc).expect("catalog json");
        Ok(TenantCatalogFile {
            doc,
            version: None,
            bytes: Bytes::from(bytes),
        })
    }
}

/// What every tenant-day job shares.
struct DayCtx<'a> {
    lake: &'a Location,
    to: &'a Location,
    bundles: &'a BundleSet,
    catalogs: &'a BTreeMap<String, Option<TenantCatalogFile>>,
    version: u64,
}

/// Attempts at reading a day that keeps changing under the backup.
const READ_ATTEMPTS: u32 = 3;

impl DayCtx<'_> {
    async fn back_up(&self, job: DayJob) -> Result<DayOutcome> {
        let date = day_to_date(job.day);
        let (mut version, mut parts) = (self.version, job.parts);
        let mut catalog = self.catalogs.get(&job.tenant).cloned().flatten();
        let mut id = BundleId {
            tenant: job.tenant.clone(),
            date: date.clone(),
            version,
        };
        for attempt in 1..=READ_ATTEMPTS {
            if attempt > 1 {
                tracing::warn!(bundle = %id, attempt, "the day changed while it was read; reading it again");
                version = LakeLog::new(self.lake).latest_published().await?;
                parts = list_stored(self.lake, Some(&job.tenant))
                    .await?
                    .into_iter()
                    .filter(|p| p.day == job.day)
                    .collect();
                catalog = reload_catalog(self.lake, &job.tenant).await?;
                if parts.is_empty() {
                    return Ok(DayOutcome::Unchanged);
                }
            }
            id.version = version;
            let source = fingerprint(&parts);
            if let Some(outcome) = self.unchanged(&id, &source).await? {
                return Ok(outcome);
            }
            let built =
                read::build(self.lake, self.to, &id, &parts, catalog.as_ref(), version).await?;
            let Some((mut manifest, lake_bytes)) = built else {
                continue;
            };
            // Publishing a newer version starts only once it is committed: no commit after the
            // one read means every file read belongs to it.
            if LakeLog::new(self.lake).exists(version + 1).await? {
                continue;
            }
            manifest.source = source.clone();
            if let Some(c) = &catalog {
                let file = bundle::CATALOG.to_string();
                self.to.put(&id.file(&file), c.bytes.clone()).await?;
                manifest.files.push(FileEntry {
                    path: file.clone(),
                    size: c.bytes.len() as u64,
                    sha256: bundle::sha256_hex(&c.bytes),
                });
                manifest.catalog = Some(CatalogRef {
                    file,
                    version: c.version,
                });
            }
            manifest.files.sort_by(|a, b| a.path.cmp(&b.path));
            let bytes = Bytes::from(manifest.to_bytes());
            return match self
                .to
                .put_create(&id.file(MANIFEST), bytes.clone())
                .await?
            {
                Created::Yes => Ok(DayOutcome::Written {
                    dir: id.dir(),
                    manifest: Box::new(manifest),
                    lake_bytes,
                }),
                Created::AlreadyExists => self.existing(&id, &bytes).await,
            };
        }
        read::discard(self.to, &id).await?;
        Ok(DayOutcome::ChangedDuringBackup(id.dir()))
    }

    /// Whether the day needs no new bundle: its latest bundle was made from the same files.
    /// A bundle directory of this very version that holds a manifest is never written into.
    async fn unchanged(&self, id: &BundleId, source: &str) -> Result<Option<DayOutcome>> {
        if let Some(latest) = self.bundles.latest(&id.tenant, &id.date, None) {
            if let Some(m) = self.manifest_of(&latest).await? {
                if m.source == source {
                    return Ok(Some(match latest.version == id.version {
                        true => DayOutcome::AlreadyComplete,
                        false => DayOutcome::Unchanged,
                    }));
                }
            }
        }
        match self.to.get_opt(&id.file(MANIFEST)).await? {
            None => Ok(None),
            Some(bytes) => {
                let intact = serde_json::from_slice::<Manifest>(&bytes)
                    .ok()
                    .filter(|m| m.manifest_sha256 == m.checksum());
                match intact {
                    Some(m) if m.source == source => Ok(Some(DayOutcome::AlreadyComplete)),
                    Some(_) => Err(Error::metadata(
                        self.to.url().as_str().to_string() + "/" + &id.file(MANIFEST),
                        "a bundle of this tenant-day and lake version exists, made from other lake \
                         files: is this backup location shared by two lakes? Give each lake its own",
                    )),
                    None => Err(Error::metadata(
                        self.to.url().as_str().to_string() + "/" + &id.file(MANIFEST),
                        "a damaged bundle of this tenant-day and lake version is in the way \
                         (`backup verify` says what is wrong): move its directory aside and run \
                         the backup again",
                    )),
                }
            }
        }
    }

    /// A manifest already at our name: the same bytes (a concurrent backup of the same lake
    /// state), or a conflict.
    async fn existing(&self, id: &BundleId, ours: &Bytes) -> Result<DayOutcome> {
        let theirs = self.to.get_opt(&id.file(MANIFEST)).await?;
        match theirs.as_ref() == Some(ours) {
            true => Ok(DayOutcome::AlreadyComplete),
            false => Err(Error::metadata(
                self.to.url().as_str().to_string() + "/" + &id.file(MANIFEST),
                "a bundle of this tenant-day and lake version exists with other content: \
                 is this backup location shared by two lakes? Give each lake its own",
            )),
        }
    }

    /// The manifest of a bundle, when it parses (a damaged one never counts as unchanged).
    async fn manifest_of(&self, id: &BundleId) -> Result<Option<Manifest>> {
        let Some(bytes) = self.to.get_opt(&id.file(MANIFEST)).await? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice::<Manifest>(&bytes)
            .ok()
            .filter(|m| m.manifest_sha256 == m.checksum()))
    }
}

/// A tenant's catalog as bundles carry it, read again.
async fn reload_catalog(lake: &Location, tenant: &str) -> Result<Option<TenantCatalogFile>> {
    match applied::load(lake).await?.remove(tenant) {
        None => Ok(None),
        Some(doc) => Ok(Some(
            TenantCatalogFile::of(&CatalogStore::new(lake), doc).await?,
        )),
    }
}

/// Fingerprint of a tenant-day's stored partitions from their listing: which index files
/// exist, with their sizes and ETags (an index is rewritten whenever its partition changes).
fn fingerprint(parts: &[StoredPartition]) -> String {
    let mut text = String::new();
    for p in parts {
        text.push_str(&format!(
            "{}|{}|{}|{}\n",
            p.segment,
            p.day,
            p.size,
            p.etag.as_deref().unwrap_or("-")
        ));
    }
    bundle::sha256_hex(text.as_bytes())[..32].to_string()
}
