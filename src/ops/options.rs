//! What operations share, set with the `with_*` methods of a trait: the tenant-day operations
//! (backup, verify, restore, replay, ingest) their selection, concurrency, report and progress
//! ([`CommonOptions`]); the record pipelines (compact, replay) their catalog, duplicate policy,
//! read settings and commit attempts ([`PipelineOptions`]).

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::decode::Limits;
use crate::dedup::Keep;
use crate::error::Result;
use crate::ops::compact::read::ReadSettings;
use crate::progress::{NoProgress, Progress};
use crate::schema::store::CatalogStore;
use crate::storage::{FileTarget, Location};

/// Which tenant-days a command takes: tenants (all when empty) and a day range
/// `[since, until)` of UTC days since the epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub tenants: Vec<String>,
    pub since: Option<i32>,
    pub until: Option<i32>,
}

impl Selection {
    /// Whether a tenant-day is selected.
    pub fn takes(&self, tenant: &str, day: i32) -> bool {
        (self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant))
            && self.since.is_none_or(|s| day >= s)
            && self.until.is_none_or(|u| day < u)
    }

    /// Whether a tenant-day given by its date text is selected.
    pub fn takes_date(&self, tenant: &str, date: &str) -> bool {
        crate::model::date_to_day(date).is_some_and(|d| self.takes(tenant, d))
    }
}

/// The settings themselves.
#[derive(Clone)]
pub struct Common {
    pub selection: Selection,
    /// Tenant-days (bundles) handled at once.
    pub concurrency: usize,
    /// Also write the JSON report here.
    pub report: Option<FileTarget>,
    pub progress: Arc<dyn Progress>,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            selection: Selection::default(),
            concurrency: 4,
            report: None,
            progress: Arc::new(NoProgress),
        }
    }
}

/// The `with_*` setters of [`Common`], for every operation that holds one.
pub trait CommonOptions: Sized {
    /// The operation's common settings.
    fn common(&mut self) -> &mut Common;

    /// Which tenant-days to take (default: all).
    fn with_selection(mut self, selection: Selection) -> Self {
        self.common().selection = selection;
        self
    }

    /// Tenant-days handled at once.
    fn with_concurrency(mut self, n: usize) -> Self {
        self.common().concurrency = n.max(1);
        self
    }

    /// Also writes the JSON report to this file.
    fn with_report(mut self, report: Option<FileTarget>) -> Self {
        self.common().report = report;
        self
    }

    /// Where progress goes.
    fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.common().progress = progress;
        self
    }
}

/// What a record pipeline (read -> decode -> resolve -> dedup -> commit) takes.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// Tenant catalogs from this directory instead of the lake's `_catalog/`.
    pub catalog: Option<Location>,
    /// Which duplicate wins.
    pub keep: Keep,
    pub read: ReadSettings,
    /// Plans made at most when commit races are lost.
    pub max_attempts: u32,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            catalog: None,
            keep: Keep::Latest,
            read: ReadSettings {
                limits: Limits::default(),
                fetch_concurrency: 8,
                memory_budget: 256 << 20,
            },
            max_attempts: 5,
        }
    }
}

impl Pipeline {
    /// The catalog records resolve with: `catalog` when set, else the lake's.
    pub async fn load_catalog(&self, lake: &Location) -> Result<Catalog> {
        match &self.catalog {
            Some(dir) => Catalog::load_dir(dir).await,
            None => CatalogStore::new(lake).load_catalog().await,
        }
    }
}

/// The `with_*` setters of [`Pipeline`], for every operation that holds one.
pub trait PipelineOptions: Sized {
    /// The operation's pipeline settings.
    fn pipeline(&mut self) -> &mut Pipeline;

    /// Reads tenant catalogs from this directory instead of the lake's `_catalog/`.
    fn with_catalog(mut self, catalog: Option<Location>) -> Self {
        self.pipeline().catalog = catalog;
        self
    }

    /// Which duplicate wins.
    fn with_keep(mut self, keep: Keep) -> Self {
        self.pipeline().keep = keep;
        self
    }

    /// Decoder limits.
    fn with_limits(mut self, limits: Limits) -> Self {
        self.pipeline().read.limits = limits;
        self
    }

    /// Objects fetched and decoded at once.
    fn with_fetch_concurrency(mut self, n: usize) -> Self {
        self.pipeline().read.fetch_concurrency = n.max(1);
        self
    }

    /// Bytes of buffered records kept in memory before spilling to local disk.
    fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.pipeline().read.memory_budget = bytes;
        self
    }

    /// How many times to plan again after losing a commit race.
    fn with_max_attempts(mut self, n: u32) -> Self {
        self.pipeline().max_attempts = n.max(1);
        self
    }
}
