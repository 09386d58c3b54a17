//! Deduplication of one partition: by timestamp (the key inside a partition), the latest
//! arrival wins (or the first with `--keep first`), against the lake's records too.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Rec;

/// Which duplicate wins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// The latest in arrival order (corrections win).
    #[default]
    Latest,
    /// The earliest in arrival order.
    First,
}

/// What merging one partition did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeStats {
    /// New records that won and were written.
    pub written: u64,
    /// New records that lost to a record with the same content.
    pub duplicates_exact: u64,
    /// New records that lost to a record with different content.
    pub duplicates_conflicting: u64,
    /// Records already in the lake that lost to a new record.
    pub lake_replaced: u64,
    /// Records already in the lake that stay.
    pub lake_kept: u64,
}

/// Records resolved at a time on one side of [`merge_streamed`].
const RESOLVE_CHUNK: usize = 1024;

/// Merges the lake's records with new ones in [`merge_order`]. Each side is resolved by
/// `resolve` (told whether the records are new) a chunk at a time, just before the merge
/// reaches it; the winners go to `emit` `batch` at a time (the last batch fewer), in timestamp
/// order. So a record is resolved, merged and encoded while it is in cache, and each batch is
/// freed before the next one is resolved: the working set is a batch, not the partition.
pub fn merge_streamed(
    mut lake: Vec<Rec>,
    mut new: Vec<Rec>,
    keep: Keep,
    batch: usize,
    mut resolve: impl FnMut(bool, &mut [Rec]) -> Result<()>,
    mut emit: impl FnMut(Vec<Rec>) -> Result<()>,
) -> Result<MergeStats> {
    sort_new(&mut lake);
    sort_new(&mut new);
    let room = batch.min(lake.len() + new.len());
    let (mut lake, mut new) = (Side::new(lake, false), Side::new(new, true));
    let mut merger = Merger::new(keep);
    let mut winners = Vec::with_capacity(room);
    loop {
        let take_new = match (lake.head(&mut resolve)?, new.head(&mut resolve)?) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            // Lake records first among equal arrivals, as `merge_order` says.
            (Some(l), Some(n)) => (n.ts, &n.arrival) < (l.ts, &l.arrival),
        };
        let side = if take_new { &mut new } else { &mut lake };
        merger.push(side.take(), take_new, &mut winners);
        if winners.len() >= batch {
            emit(std::mem::replace(&mut winners, Vec::with_capacity(room)))?;
        }
    }
    merger.finish(&mut winners);
    if !winners.is_empty() {
        emit(winners)?;
    }
    Ok(merger.stats)
}

/// One side of [`merge_streamed`]: its records sorted, the first `resolved` of them resolved.
struct Side {
    rest: std::vec::IntoIter<Rec>,
    resolved: usize,
    is_new: bool,
}

impl Side {
    fn new(recs: Vec<Rec>, is_new: bool) -> Self {
        Side {
            rest: recs.into_iter(),
            resolved: 0,
            is_new,
        }
    }

    /// The next record, resolved (with the rest of its chunk when it is the first).
    fn head(
        &mut self,
        resolve: &mut impl FnMut(bool, &mut [Rec]) -> Result<()>,
    ) -> Result<Option<&Rec>> {
        if self.resolved == 0 && self.rest.len() > 0 {
            let n = RESOLVE_CHUNK.min(self.rest.len());
            resolve(self.is_new, &mut self.rest.as_mut_slice()[..n])?;
            self.resolved = n;
        }
        Ok(self.rest.as_slice().first())
    }

    /// Takes the record [`Side::head`] showed.
    fn take(&mut self) -> Rec {
        self.resolved -= 1;
        self.rest.next().expect("a head was shown")
    }
}

/// The order records meet the merger in: timestamp, arrival, and lake records first among equal
/// arrivals (a new record with the arrival of a stored one is that record read again: an archive
/// object compacted into a restored lake).
pub fn merge_order(a: &(Rec, bool), b: &(Rec, bool)) -> std::cmp::Ordering {
    a.0.ts
        .cmp(&b.0.ts)
        .then_with(|| a.0.arrival.cmp(&b.0.arrival))
        .then_with(|| a.1.cmp(&b.1))
}

/// Sorts new records by timestamp, then arrival: [`merge_order`] among records of one side.
pub fn sort_new(recs: &mut [Rec]) {
    recs.sort_unstable_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.arrival.cmp(&b.arrival)));
}

/// Deduplicates records fed in [`merge_order`] (from memory or from sorted runs on disk): one
/// winner per timestamp, counted as it goes.
pub struct Merger {
    keep: Keep,
    group: Vec<(Rec, bool)>,
    pub stats: MergeStats,
}

impl Merger {
    pub fn new(keep: Keep) -> Self {
        Merger {
            keep,
            group: Vec::new(),
            stats: MergeStats::default(),
        }
    }

    /// Takes the next record (`is_new`: from this run's input); a finished timestamp's winner
    /// goes to `winners`.
    pub fn push(&mut self, rec: Rec, is_new: bool, winners: &mut Vec<Rec>) {
        if self.group.first().is_some_and(|(g, _)| g.ts != rec.ts) {
            self.close(winners);
        }
        let reread = self
            .group
            .last()
            .is_some_and(|(prev, prev_new)| !prev_new && is_new && prev.arrival == rec.arrival);
        if reread {
            match self
                .group
                .last()
                .is_some_and(|(prev, _)| prev.hash == rec.hash)
            {
                true => self.stats.duplicates_exact += 1,
                false => self.stats.duplicates_conflicting += 1,
            }
        } else {
            self.group.push((rec, is_new));
        }
    }

    /// Emits the last timestamp's winner.
    pub fn finish(&mut self, winners: &mut Vec<Rec>) {
        if !self.group.is_empty() {
            self.close(winners);
        }
    }

    fn close(&mut self, winners: &mut Vec<Rec>) {
        let win = match self.keep {
            Keep::Latest => self.group.len() - 1,
            Keep::First => 0,
        };
        let win_hash = self.group[win].0.hash;
        let stats = &mut self.stats;
        for (i, (rec, is_new)) in self.group.iter().enumerate() {
            match (i == win, *is_new) {
                (true, true) => stats.written += 1,
                (true, false) => stats.lake_kept += 1,
                (false, false) => stats.lake_replaced += 1,
                (false, true) if rec.hash == win_hash => stats.duplicates_exact += 1,
                (false, true) => stats.duplicates_conflicting += 1,
            }
        }
        winners.push(self.group.swap_remove(win).0);
        self.group.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arrival;

    /// Merges the lake's records with new ones, both resolved; returns the winners sorted by
    /// timestamp.
    fn merge(lake: Vec<Rec>, new: Vec<Rec>, keep: Keep) -> (Vec<Rec>, MergeStats) {
        let mut winners = Vec::new();
        let stats = merge_streamed(
            lake,
            new,
            keep,
            usize::MAX,
            |_, _| Ok(()),
            |w| {
                winners.extend(w);
                Ok(())
            },
        )
        .expect("neither resolving nor emitting fails");
        (winners, stats)
    }

    fn rec(ts: i64, delivery: i64, pos: u64, hash: u64) -> Rec {
        Rec {
            ts,
            arrival: Arrival {
                delivery_ms: delivery,
                source: "o".into(),
                position: pos,
            },
            metric_sent: "m".into(),
            raw: Default::default(),
            typed: vec![],
            untyped: vec![],
            hash,
        }
    }

    #[test]
    fn a_stored_record_read_again_is_a_duplicate_whatever_the_policy() {
        let lake = vec![rec(1, 10, 3, 7)];
        for keep in [Keep::Latest, Keep::First] {
            let (w, s) = merge(lake.clone(), vec![rec(1, 10, 3, 7), rec(1, 5, 0, 9)], keep);
            let want = match keep {
                Keep::Latest => 7,
                Keep::First => 9,
            };
            assert_eq!(w.iter().map(|r| r.hash).collect::<Vec<_>>(), vec![want]);
            let counts = (
                s.written,
                s.duplicates_exact,
                s.duplicates_conflicting,
                s.lake_replaced,
            );
            let want = match keep {
                Keep::Latest => (0, 1, 1, 0),
                Keep::First => (1, 1, 0, 1),
            };
            assert_eq!(counts, want, "{keep:?}");
        }
    }

    /// Each record is resolved once, before the merger sees it, in sorted order on its side;
    /// winners come in full batches and one short last batch, as the whole merge has them.
    #[test]
    fn streamed_merge_resolves_each_record_once_and_emits_full_batches() {
        let n = 3 * RESOLVE_CHUNK as i64 + 5;
        // Lake: even timestamps, in reverse; new: every third timestamp plus a correction of
        // each lake record at a multiple of 6, unsorted.
        let lake: Vec<Rec> = (0..n).rev().map(|t| rec(2 * t, 10, 0, 0)).collect();
        let mut new: Vec<Rec> = (0..n).map(|t| rec(3 * t, 20, t as u64, 0)).collect();
        new.swap(0, 7);
        let mut seen: Vec<(bool, i64)> = Vec::new();
        let mut batches = Vec::new();
        let mut streamed = Vec::new();
        let stats = merge_streamed(
            lake.clone(),
            new.clone(),
            Keep::Latest,
            1000,
            |is_new, recs| {
                for r in recs.iter_mut() {
                    assert_eq!(r.hash, 0, "resolved once");
                    r.hash = (r.ts as u64) << 1 | is_new as u64;
                    seen.push((is_new, r.ts));
                }
                Ok(())
            },
            |w| {
                batches.push(w.len());
                streamed.extend(w);
                Ok(())
            },
        )
        .unwrap();
        for side in [false, true] {
            let ts: Vec<i64> = seen.iter().filter(|s| s.0 == side).map(|s| s.1).collect();
            assert_eq!(ts.len(), n as usize);
            assert!(ts.windows(2).all(|w| w[0] < w[1]), "sorted on side {side}");
        }
        let resolve = |recs: Vec<Rec>, is_new: bool| -> Vec<Rec> {
            let mut recs = recs;
            recs.iter_mut()
                .for_each(|r| r.hash = (r.ts as u64) << 1 | is_new as u64);
            recs
        };
        let (whole, whole_stats) = merge(resolve(lake, false), resolve(new, true), Keep::Latest);
        assert_eq!(streamed, whole);
        assert_eq!(stats, whole_stats);
        assert_eq!(stats.lake_replaced, (n as u64).div_ceil(3));
        let full = whole.len() / 1000;
        assert_eq!(batches[..full], vec![1000; full][..]);
        assert_eq!(batches[full..], [whole.len() % 1000]);
    }

    #[test]
    fn latest_wins_against_lake_and_counts() {
        let lake = vec![rec(1, 10, 0, 7), rec(2, 30, 0, 8)];
        // ts 1: a later correction; ts 2: an object delivered earlier than the lake's record.
        let new = vec![
            rec(1, 20, 0, 9),
            rec(2, 20, 5, 8),
            rec(3, 20, 1, 1),
            rec(3, 20, 2, 1),
        ];
        let (w, s) = merge(lake.clone(), new.clone(), Keep::Latest);
        assert_eq!(
            w.iter().map(|r| (r.ts, r.hash)).collect::<Vec<_>>(),
            vec![(1, 9), (2, 8), (3, 1)]
        );
        assert_eq!(
            w[1].arrival.delivery_ms, 30,
            "the lake's later arrival stays"
        );
        assert_eq!(
            s,
            MergeStats {
                written: 2,
                duplicates_exact: 2,
                duplicates_conflicting: 0,
                lake_replaced: 1,
                lake_kept: 1
            }
        );
        let (w, s) = merge(lake, new, Keep::First);
        assert_eq!(w.iter().map(|r| r.hash).collect::<Vec<_>>(), vec![7, 8, 1]);
        assert_eq!(w[1].arrival.delivery_ms, 20);
        assert_eq!(
            (s.written, s.duplicates_conflicting, s.lake_replaced),
            (2, 1, 1)
        );
    }
}
