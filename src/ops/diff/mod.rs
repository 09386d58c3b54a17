//! `diff`: compare two lakes partition by partition (SPEC 12). Partitions whose content
//! fingerprints (in their index footers) and columns match are equal without reading a row;
//! the others are compared row by row, keyed by timestamp, order-insensitive, streaming both
//! sides ([`rows`]), typed and untyped parts alike: rows only in A, only in B, and changed
//! (per column, with examples).

mod rows;

use std::collections::BTreeMap;
use std::time::Instant;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::day_to_date;
use crate::names;
use crate::ops::options::{Common, CommonOptions};
use crate::report::RunReport;
use crate::storage::Location;
use crate::write::index::read_footer;
use crate::write::stored::{list_stored, StoredPartition};
use rows::{PartitionRows, Row};

/// Examples kept per differing partition.
const EXAMPLES: usize = 5;

/// What `diff` found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DiffCounts {
    pub a: String,
    pub b: String,
    pub equal: bool,
    /// Partitions in either lake (of the selection).
    pub partitions: u64,
    /// Equal by their content fingerprints, no row read.
    pub equal_by_fingerprint: u64,
    /// Equal after comparing their rows.
    pub equal_by_rows: u64,
    pub rows_compared: u64,
    pub differing: Vec<PartitionDiff>,
}

/// How one partition differs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionDiff {
    /// `tenant/metric/date`.
    pub partition: String,
    /// `a` or `b` when only that lake holds the partition.
    pub only_in: Option<String>,
    pub rows_only_in_a: u64,
    pub rows_only_in_b: u64,
    pub rows_changed: u64,
    /// Changed values per column (`untyped:<name>` for untyped fields).
    pub columns: BTreeMap<String, u64>,
    pub examples: Vec<Example>,
}

/// One difference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub timestamp: i64,
    /// `only_in_a`, `only_in_b` or `changed`.
    pub kind: String,
    pub column: Option<String>,
    pub a: Option<String>,
    pub b: Option<String>,
}

/// The `diff` operation.
pub struct Diff {
    a: Location,
    b: Location,
    common: Common,
}

impl CommonOptions for Diff {
    fn common(&mut self) -> &mut Common {
        &mut self.common
    }
}

/// A partition: (tenant, metric directory segment, day).
type PartKey = (String, String, i32);

/// Its index in lake A and in lake B.
type Sides = (Option<StoredPartition>, Option<StoredPartition>);

/// One partition on both sides.
type Pair = (PartKey, Option<StoredPartition>, Option<StoredPartition>);

impl Diff {
    /// Compares lake `a` with lake `b`.
    pub fn new(a: Location, b: Location) -> Self {
        Diff {
            a,
            b,
            common: Common::default(),
        }
    }

    /// Compares the lakes; the report says whether they are equal.
    pub async fn execute(self) -> Result<RunReport> {
        let started = Instant::now();
        let mut report = RunReport::start("diff");
        let pairs = self.pairs().await?;
        let mut counts = DiffCounts {
            a: self.a.url().to_string(),
            b: self.b.url().to_string(),
            partitions: pairs.len() as u64,
            ..Default::default()
        };
        self.common.progress.start("diff", Some(pairs.len() as u64));
        let mut compared = futures::stream::iter(pairs)
            .map(|p| self.compare(p))
            .buffered(self.common.concurrency);
        while let Some(done) = compared.next().await {
            self.common.progress.advance(1, 0);
            match done? {
                Outcome::Fingerprint => counts.equal_by_fingerprint += 1,
                Outcome::Rows(n) => {
                    counts.equal_by_rows += 1;
                    counts.rows_compared += n;
                }
                Outcome::Differs(d, n) => {
                    counts.rows_compared += n;
                    counts.differing.push(*d);
                }
            }
        }
        drop(compared);
        self.common.progress.finish();
        counts.equal = counts.differing.is_empty();
        report.run_id = format!("diff-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f"));
        report.message = match counts.equal {
            true => format!("equal: {} partitions", counts.partitions),
            false => format!(
                "{} of {} partitions differ",
                counts.differing.len(),
                counts.partitions
            ),
        };
        report.conservation_ok = true;
        report.diff = Some(counts);
        report
            .finish(started, None, self.common.report.as_ref())
            .await?;
        Ok(report)
    }

    /// Every selected partition of either lake, matched by tenant, metric directory and day.
    async fn pairs(&self) -> Result<Vec<Pair>> {
        let mut by_key: BTreeMap<PartKey, Sides> = BTreeMap::new();
        for (side, lake) in [(0, &self.a), (1, &self.b)] {
            let mut parts = Vec::new();
            match self.common.selection.tenants.is_empty() {
                true => parts = list_stored(lake, None).await?,
                false => {
                    for t in &self.common.selection.tenants {
                        parts.extend(list_stored(lake, Some(t)).await?);
                    }
                }
            }
            for p in parts
                .into_iter()
                .filter(|p| self.common.selection.takes(&p.tenant, p.day))
            {
                let slot = by_key
                    .entry((p.tenant.clone(), p.segment.clone(), p.day))
                    .or_default();
                match side {
                    0 => slot.0 = Some(p),
                    _ => slot.1 = Some(p),
                }
            }
        }
        Ok(by_key.into_iter().map(|(k, (a, b))| (k, a, b)).collect())
    }

    async fn compare(&self, (key, a, b): Pair) -> Result<Outcome> {
        let (tenant, segment, day) = key;
        let name = format!(
            "{tenant}/{}/{}",
            names::unescape(&segment),
            day_to_date(day)
        );
        let fa = match &a {
            Some(p) => read_footer(&self.a, &p.index).await?,
            None => None,
        };
        let fb = match &b {
            Some(p) => read_footer(&self.b, &p.index).await?,
            None => None,
        };
        let (ma, mb) = match (fa, fb) {
            (Some((ma, _)), Some((mb, _))) => (ma, mb),
            (Some((_, n)), None) => return Ok(only(name, "a", n)),
            (None, Some((_, n))) => return Ok(only(name, "b", n)),
            (None, None) => return Ok(Outcome::Fingerprint),
        };
        // How many typed files hold the records does not matter (appends add files).
        let same_files = ma.typed.is_empty() == mb.typed.is_empty()
            && ma.untyped.is_some() == mb.untyped.is_some();
        if !ma.content.is_empty()
            && ma.content == mb.content
            && ma.columns == mb.columns
            && same_files
        {
            return Ok(Outcome::Fingerprint);
        }
        let table = format!("tenant={tenant}/metric={segment}");
        let date = day_to_date(day);
        let rows_a = PartitionRows::open(&self.a, &table, &date, &ma).await?;
        let rows_b = PartitionRows::open(&self.b, &table, &date, &mb).await?;
        compare_rows(name, rows_a, rows_b).await
    }
}

/// How a partition compared.
enum Outcome {
    Fingerprint,
    Rows(u64),
    Differs(Box<PartitionDiff>, u64),
}

fn only(partition: String, side: &str, rows: u64) -> Outcome {
    let mut d = PartitionDiff {
        partition,
        only_in: Some(side.to_string()),
        ..Default::default()
    };
    match side {
        "a" => d.rows_only_in_a = rows,
        _ => d.rows_only_in_b = rows,
    }
    Outcome::Differs(Box::new(d), 0)
}

/// Merge-joins both sides' rows by timestamp.
async fn compare_rows(
    partition: String,
    mut a: PartitionRows,
    mut b: PartitionRows,
) -> Result<Outcome> {
    let mut d = PartitionDiff {
        partition,
        ..Default::default()
    };
    let (mut ra, mut rb) = (a.next().await?, b.next().await?);
    let mut compared = 0u64;
    loop {
        let order = match (&ra, &rb) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => x.0.cmp(&y.0),
        };
        compared += 1;
        match order {
            std::cmp::Ordering::Less => {
                d.rows_only_in_a += 1;
                example(&mut d, ra.as_ref().expect("a row"), "only_in_a");
                ra = a.next().await?;
            }
            std::cmp::Ordering::Greater => {
                d.rows_only_in_b += 1;
                example(&mut d, rb.as_ref().expect("a row"), "only_in_b");
                rb = b.next().await?;
            }
            std::cmp::Ordering::Equal => {
                changed(
                    &mut d,
                    ra.as_ref().expect("a row"),
                    rb.as_ref().expect("a row"),
                );
                ra = a.next().await?;
                rb = b.next().await?;
            }
        }
    }
    let differs = d.rows_only_in_a + d.rows_only_in_b + d.rows_changed > 0;
    Ok(match differs {
        true => Outcome::Differs(Box::new(d), compared),
        false => Outcome::Rows(compared),
    })
}

fn example(d: &mut PartitionDiff, row: &Row, kind: &str) {
    if d.examples.len() < EXAMPLES {
        d.examples.push(Example {
            timestamp: row.0,
            kind: kind.into(),
            column: None,
            a: None,
            b: None,
        });
    }
}

/// Compares two rows of the same timestamp column by column (a missing value is null).
fn changed(d: &mut PartitionDiff, a: &Row, b: &Row) {
    let (va, vb): (BTreeMap<&str, &str>, BTreeMap<&str, &str>) = (
        a.1.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        b.1.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
    );
    let mut any = false;
    for col in va
        .keys()
        .chain(vb.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (x, y) = (va.get(col).copied(), vb.get(col).copied());
        if x == y {
            continue;
        }
        any = true;
        *d.columns.entry(col.to_string()).or_default() += 1;
        if d.examples.len() < EXAMPLES {
            d.examples.push(Example {
                timestamp: a.0,
                kind: "changed".into(),
                column: Some(col.to_string()),
                a: x.map(str::to_string),
                b: y.map(str::to_string),
            });
        }
    }
    d.rows_changed += u64::from(any);
}

/// The one-screen summary of a diff.
pub fn summary(r: &RunReport, d: &DiffCounts) -> String {
    let mut s = format!(
        "fineo-batch diff\n  A {}\n  B {}\n  {}\n  partitions: {} compared, {} equal by fingerprint, {} equal row by row ({} rows read)\n",
        d.a, d.b, r.message, d.partitions, d.equal_by_fingerprint, d.equal_by_rows, d.rows_compared
    );
    for p in &d.differing {
        match &p.only_in {
            Some(side) => s.push_str(&format!(
                "  {}: only in {} ({} records)\n",
                p.partition,
                side.to_uppercase(),
                p.rows_only_in_a + p.rows_only_in_b
            )),
            None => {
                let cols: Vec<String> = p.columns.iter().map(|(c, n)| format!("{c} {n}")).collect();
                s.push_str(&format!(
                    "  {}: {} rows only in A, {} only in B, {} changed{}\n",
                    p.partition,
                    p.rows_only_in_a,
                    p.rows_only_in_b,
                    p.rows_changed,
                    match cols.is_empty() {
                        true => String::new(),
                        false => format!(" (columns: {})", cols.join(", ")),
                    }
                ));
            }
        }
        for e in &p.examples {
            match &e.column {
                Some(c) => s.push_str(&format!(
                    "    timestamp {} {}: A {} | B {}\n",
                    e.timestamp,
                    c,
                    e.a.as_deref().unwrap_or("null"),
                    e.b.as_deref().unwrap_or("null")
                )),
                None => s.push_str(&format!(
                    "    timestamp {} {}\n",
                    e.timestamp,
                    e.kind.replace('_', " ")
                )),
            }
        }
    }
    s.push_str(&format!(
        "  elapsed {:.2}s, peak memory {} MiB\n",
        r.elapsed_seconds,
        r.peak_rss_bytes >> 20
    ));
    s
}
