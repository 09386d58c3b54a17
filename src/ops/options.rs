//! What the tenant-day operations (backup, verify, restore) share: which tenant-days they take,
//! how many at once, and where their report and progress go; set with the `with_*` methods of
//! [`CommonOptions`].

use std::sync::Arc;

use crate::progress::{NoProgress, Progress};
use crate::storage::FileTarget;

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
