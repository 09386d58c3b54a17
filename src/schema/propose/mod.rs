//! Schema proposals: per tenant and metric, statistics of unknown fields and metrics and of declared fields that fail their type, merged across runs, with suggestions.
//!
//! Compaction feeds every record through [`observe_record`] into one [`MetricObs`] per
//! (tenant, partition metric); at commit, [`ProposalDoc::merge_run`] folds a run's
//! observations into the tenant's stored document (`<lake>/_proposals/<tenant>.json`) and
//! recomputes every suggestion under that run's catalog.
//!
//! Per-value types ([`PType`]) form the chain boolean < long < double < timestamp < string; a
//! field's inferred type is the narrowest type of the chain every observed per-value type
//! fits ([`PType::fits`], which follows [`crate::resolve::convert`]). A field that only ever
//! held nulls is inferred `string`: there is no evidence, and every value fits string.

mod doc;
mod observe;
mod ptype;
mod suggest;
#[cfg(test)]
mod tests;

pub use doc::{ts_text, FieldProposal, MetricProposal, ProposalDoc, TypeChange};
pub use observe::{observe_record, observe_resolved, MetricObs};
pub use ptype::{PType, TypeCounts};
pub use suggest::Suggestion;

/// Distinct sample values kept per field.
pub const MAX_SAMPLES: usize = 5;

/// A declared field "often fails" its type when at least one value failed and at least this
/// share of its non-null values failed; below it the type change is not proposed (and a
/// stored one is dropped).
pub const OFTEN_FAILS_RATE: f64 = 0.05;
