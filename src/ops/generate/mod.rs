//! `generate`: a realistic, deterministic staged archive (Firehose keys, aliases, unknown
//! fields, duplicates, corrections, late and out-of-order deliveries, bad records), its
//! catalog, and the ground truth a correct compaction must reproduce.

mod encode;
mod model;

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::StreamExt;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::Location;
use encode::{GenRecord, ObjectFormat, TsForm};
pub use model::World;
use model::{GenValue, Rng};

/// Which encodings the generated objects use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SampleFormat {
    JsonlGz,
    Avro,
    Mixed,
}

/// Duplicate counts for one keep policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthDedup {
    pub exact: u64,
    pub conflicting: u64,
    pub untyped_lines: u64,
}

/// What a correct compaction of the archive must produce.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    pub seed: u64,
    /// Every record written, good or bad.
    pub records: u64,
    pub good_records: u64,
    pub distinct_keys: u64,
    pub typed_rows: u64,
    /// With the default `--keep latest`.
    pub latest: TruthDedup,
    /// With `--keep first`.
    pub first: TruthDedup,
    pub errors: BTreeMap<String, u64>,
    /// Typed rows per `tenant/metric`.
    pub typed_rows_by_table: BTreeMap<String, u64>,
    /// Object keys (relative to the staged prefix) in the order they physically arrived,
    /// which is not quite key order: some objects land late.
    pub deliveries: Vec<String>,
}

/// The `generate` operation.
pub struct Generate {
    out: Location,
    records: u64,
    format: SampleFormat,
    seed: u64,
    days: u64,
    world: World,
}

const HOUR_MS: i64 = 3_600_000;
/// 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;

/// One delivery of an event: hour, field values, content version.
type Copy = (i64, Vec<(String, GenValue)>, u8);

/// One record copy waiting for its object.
struct Placed {
    hour: i64,
    slot: u64,
    record: Pending,
}

enum Pending {
    Good(GenRecord),
    Bad(u64),
}

impl Generate {
    /// Writes a sample archive below `out` (`staged/`, `catalog/`, `truth.json`).
    pub fn new(out: Location) -> Self {
        Generate {
            out,
            records: 10_000,
            format: SampleFormat::JsonlGz,
            seed: 1,
            days: 3,
            world: World::sample(),
        }
    }

    /// Approximate number of records (good copies and bad records together).
    pub fn with_records(mut self, n: u64) -> Self {
        self.records = n.max(1);
        self
    }

    /// Object encodings.
    pub fn with_format(mut self, f: SampleFormat) -> Self {
        self.format = f;
        self
    }

    /// Random seed: the same seed gives the same archive.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Days of event time the archive covers.
    pub fn with_days(mut self, days: u64) -> Self {
        self.days = days.max(1);
        self
    }

    /// The tenants and metrics events are drawn from (default: the small built-in sample).
    pub fn with_world(mut self, world: World) -> Self {
        self.world = world;
        self
    }

    /// Generates the archive and returns its ground truth.
    pub async fn execute(self) -> Result<Truth> {
        for tenant in &self.world.tenants {
            if let Some(known) = &tenant.known {
                let doc = model::catalog_doc(&self.world, &tenant.id, known);
                let bytes = serde_json::to_vec_pretty(&doc).expect("catalog json");
                self.out
                    .put(&format!("catalog/{}.json", tenant.id), Bytes::from(bytes))
                    .await?;
            }
        }
        let hours = (self.days * 24) as i64;
        let opp = (self.records / hours as u64 / 4000).clamp(2, 64);
        let events = (self.records as f64 / 1.08) as u64;
        let step = (hours * HOUR_MS) as f64 / events.max(1) as f64;
        let mut truth = Truth {
            seed: self.seed,
            ..Default::default()
        };
        let mut rng = Rng::new(self.seed);
        let mut pending: BTreeMap<(i64, u64), Vec<Pending>> = BTreeMap::new();
        let mut keys = Vec::new();
        for e in 0..events {
            let ts = START_MS + (e as f64 * step) as i64;
            let hour = ts.div_euclid(HOUR_MS);
            for p in self.event(e, ts, opp, &mut rng, &mut truth) {
                pending.entry((p.hour, p.slot)).or_default().push(p.record);
            }
            // Objects of hours before this event's hour can get no more records.
            let ready: Vec<(i64, u64)> = pending.range(..(hour, 0)).map(|(k, _)| *k).collect();
            if ready.len() >= 2 * opp as usize {
                let batch: Vec<_> = ready
                    .iter()
                    .map(|k| (*k, pending.remove(k).expect("key")))
                    .collect();
                keys.extend(self.write_objects(batch, opp, &mut truth).await?);
            }
        }
        let rest: Vec<_> = std::mem::take(&mut pending).into_iter().collect();
        keys.extend(self.write_objects(rest, opp, &mut truth).await?);
        truth.deliveries = physical_order(keys);
        let bytes = serde_json::to_vec_pretty(&truth).expect("truth json");
        self.out.put("truth.json", Bytes::from(bytes)).await?;
        self.out.put("export.csv", export_csv(self.seed)).await?;
        Ok(truth)
    }

    /// The copies of one event (original, maybe a re-delivery and a correction, maybe a bad
    /// record) and their truth.
    fn event(&self, e: u64, ts: i64, opp: u64, rng: &mut Rng, truth: &mut Truth) -> Vec<Placed> {
        let world = &self.world;
        let sample_tenant = rng.pick(&world.tenants);
        let tenant = sample_tenant.id.as_str();
        let m = world.pick_metric(rng);
        let metric = &world.metrics[m];
        let known = sample_tenant.known.as_ref().is_some_and(|k| k.contains(&m));
        let sent_metric = if rng.chance(0.3) && !metric.aliases.is_empty() {
            rng.pick(&metric.aliases).to_string()
        } else {
            metric.name.to_string()
        };
        let hour = ts.div_euclid(HOUR_MS);
        let mut at = hour
            + if rng.chance(0.03) {
                1 + rng.below(3) as i64
            } else {
                0
            };
        let original = self.content(e, 0, metric);
        let mut copies = vec![(at, original.clone(), 0u8)];
        if rng.chance(0.05) {
            at += 1 + rng.below(2) as i64;
            copies.push((at, original.clone(), 0));
        }
        if rng.chance(0.02) {
            at += 1 + rng.below(3) as i64;
            // New values, and a revision field so the correction always differs from the
            // original once resolved (values alone may coincide, or differ only in an alias).
            let mut fixed = self.content(e, 1, metric);
            fixed.push(("rev".into(), GenValue::Int(1)));
            copies.push((at, fixed, 1));
        }
        self.tally(truth, tenant, &metric.name, known, &copies);
        let mut out: Vec<Placed> = copies
            .into_iter()
            .map(|(h, fields, _)| {
                let ts_form = match rng.below(20) {
                    0 => TsForm::Digits,
                    1 => TsForm::Rfc3339,
                    _ => TsForm::Int,
                };
                Placed {
                    hour: h,
                    slot: rng.below(opp),
                    record: Pending::Good(GenRecord::Good {
                        tenant: tenant.into(),
                        metric: sent_metric.clone(),
                        ts,
                        ts_form,
                        fields,
                    }),
                }
            })
            .collect();
        if rng.chance(0.005) {
            out.push(Placed {
                hour,
                slot: rng.below(opp),
                record: Pending::Bad(rng.next_u64()),
            });
        }
        out
    }

    /// Field values of content version `v` of event `e`.
    fn content(&self, e: u64, v: u64, metric: &model::SampleMetric) -> Vec<(String, GenValue)> {
        let mut r = Rng::new(self.seed.wrapping_mul(1_000_003) ^ (e << 2) ^ v);
        let mut fields = Vec::new();
        for f in &metric.fields {
            let name = if !f.aliases.is_empty() && r.chance(0.3) {
                r.pick(&f.aliases)
            } else {
                &f.name
            };
            let value = if r.chance(0.05) {
                GenValue::Null
            } else if f.ty != "string" && r.chance(0.01) {
                GenValue::Str("n/a".into())
            } else {
                sample_value(f.ty, &mut r)
            };
            fields.push((name.to_string(), value));
        }
        if r.chance(0.15) {
            fields.push((
                "fw".into(),
                GenValue::Str(format!("1.{}.{}", r.below(4), r.below(10))),
            ));
        }
        if r.chance(0.1) {
            fields.push(("rssi".into(), GenValue::Int(-(40 + r.below(50) as i64))));
        }
        fields
    }

    fn tally(&self, truth: &mut Truth, tenant: &str, metric: &str, known: bool, copies: &[Copy]) {
        truth.good_records += copies.len() as u64;
        truth.records += copies.len() as u64;
        truth.distinct_keys += 1;
        if known {
            truth.typed_rows += 1;
            *truth
                .typed_rows_by_table
                .entry(format!("{tenant}/{metric}"))
                .or_default() += 1;
        }
        let metric_spec = self.world.metric(metric);
        let has_untyped = |fields: &[(String, GenValue)]| -> bool {
            !known
                || fields.iter().any(|(n, v)| {
                    let declared = metric_spec
                        .fields
                        .iter()
                        .find(|f| &f.name == n || f.aliases.contains(n));
                    match declared {
                        None => !matches!(v, GenValue::Null),
                        Some(f) => f.ty != "string" && matches!(v, GenValue::Str(_)),
                    }
                })
        };
        for (policy, win) in [(&mut truth.latest, copies.len() - 1), (&mut truth.first, 0)] {
            let winner = &copies[win];
            if has_untyped(&winner.1) {
                policy.untyped_lines += 1;
            }
            for (i, c) in copies.iter().enumerate() {
                if i == win {
                    continue;
                }
                if c.2 == winner.2 {
                    policy.exact += 1;
                } else {
                    policy.conflicting += 1;
                }
            }
        }
    }

    /// Encodes and writes the objects of `batch`; returns their keys.
    async fn write_objects(
        &self,
        batch: Vec<((i64, u64), Vec<Pending>)>,
        opp: u64,
        truth: &mut Truth,
    ) -> Result<Vec<String>> {
        let mut prepared = Vec::with_capacity(batch.len());
        for ((hour, slot), recs) in batch {
            let format = self.object_format(hour, slot);
            let avro = matches!(
                format,
                ObjectFormat::AvroDeflate | ObjectFormat::AvroSnappy | ObjectFormat::AvroZstd
            );
            let records: Vec<GenRecord> = recs
                .into_iter()
                .map(|p| match p {
                    Pending::Good(g) => g,
                    Pending::Bad(seed) => bad_record(seed, avro, truth),
                })
                .collect();
            let key = object_key(hour, slot, opp, self.seed, format);
            prepared.push((key, records, format));
        }
        let encoded: Vec<(String, Vec<u8>)> = prepared
            .into_par_iter()
            .map(|(key, recs, format)| (key, encode::encode(&recs, format)))
            .collect();
        let keys: Vec<String> = encoded.iter().map(|(k, _)| k.clone()).collect();
        let out = &self.out;
        futures::stream::iter(encoded)
            .map(|(key, bytes)| async move {
                out.put(&format!("staged/{key}"), Bytes::from(bytes)).await
            })
            .buffer_unordered(8)
            .collect::<Vec<Result<()>>>()
            .await
            .into_iter()
            .collect::<Result<Vec<()>>>()
            .map_err(|e| Error::InvalidOption(format!("generate: {e}")))?;
        Ok(keys)
    }

    fn object_format(&self, hour: i64, slot: u64) -> ObjectFormat {
        match self.format {
            SampleFormat::JsonlGz => ObjectFormat::JsonlGzip,
            SampleFormat::Avro => ObjectFormat::AvroDeflate,
            SampleFormat::Mixed => match (hour as u64 * 7 + slot) % 6 {
                0 => ObjectFormat::JsonlGzip,
                1 => ObjectFormat::AvroDeflate,
                2 => ObjectFormat::Jsonl,
                3 => ObjectFormat::AvroSnappy,
                4 => ObjectFormat::JsonlGzipMembers,
                _ => ObjectFormat::AvroZstd,
            },
        }
    }
}

fn sample_value(ty: &str, r: &mut Rng) -> GenValue {
    match ty {
        "double" => GenValue::Float((r.below(100_000) as f64) / 100.0),
        "long" => GenValue::Int(r.below(5000) as i64),
        "int" => GenValue::Int(200 + r.below(40) as i64),
        "boolean" => GenValue::Bool(r.chance(0.5)),
        "timestamp" => GenValue::Int(START_MS + r.below(1 << 30) as i64),
        _ => GenValue::Str(format!("site-{}", r.below(12))),
    }
}

fn bad_record(seed: u64, avro: bool, truth: &mut Truth) -> GenRecord {
    let mut r = Rng::new(seed);
    let kinds: &[&str] = if avro {
        &["bad_tenant", "missing_field", "bad_timestamp"]
    } else {
        &["bad_tenant", "missing_field", "bad_timestamp", "bad_json"]
    };
    let kind = *r.pick(kinds);
    truth.records += 1;
    *truth.errors.entry(kind.to_string()).or_default() += 1;
    let ts = START_MS + r.below(1 << 30) as i64;
    match (kind, avro) {
        ("bad_tenant", true) => GenRecord::BadAvro("../x".into(), "boiler".into(), ts),
        ("missing_field", true) => GenRecord::BadAvro("t01".into(), "".into(), ts),
        (_, true) => GenRecord::BadAvro("t01".into(), "boiler".into(), -5),
        ("bad_tenant", false) => GenRecord::BadJson(format!(
            r#"{{"tenant":"../x","metric":"boiler","timestamp":{ts}}}"#
        )),
        ("missing_field", false) => {
            GenRecord::BadJson(format!(r#"{{"tenant":"t01","timestamp":{ts},"temp":1}}"#))
        }
        ("bad_timestamp", false) => GenRecord::BadJson(
            r#"{"tenant":"t01","metric":"boiler","timestamp":"yesterday"}"#.into(),
        ),
        _ => GenRecord::BadJson(format!(
            r#"{{"tenant":"t01","metric":"boiler","timestamp":{ts},"temp":"#
        )),
    }
}

/// `YYYY/MM/DD/HH/fineo-staged-1-YYYY-MM-DD-HH-mm-ss-<uuid>.<ext>`.
fn object_key(hour: i64, slot: u64, opp: u64, seed: u64, format: ObjectFormat) -> String {
    let secs = (slot * (3600 / opp)) as i64 + 7;
    let t = chrono::DateTime::from_timestamp_millis(hour * HOUR_MS + secs * 1000).expect("time");
    let mut r = Rng::new(seed ^ (hour as u64) << 8 ^ slot);
    let uuid = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        r.next_u64() as u32,
        r.next_u64() as u16,
        r.next_u64() as u16 & 0xfff,
        r.next_u64() as u16 & 0xfff,
        r.next_u64() & 0xffff_ffff_ffff
    );
    format!(
        "{}/fineo-staged-1-{}-{}.{}",
        t.format("%Y/%m/%d/%H"),
        t.format("%Y-%m-%d-%H-%M-%S"),
        uuid,
        format.ext()
    )
}

/// Physical delivery order: key order, but every ninth object lands six objects late.
fn physical_order(mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    let mut order: Vec<(usize, String)> = keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| (if i % 9 == 4 { i * 10 + 65 } else { i * 10 }, k))
        .collect();
    order.sort();
    order.into_iter().map(|(_, k)| k).collect()
}

/// A small customer export (`export.csv`) for trying `ingest`: t01 boiler readings of the
/// sample's first day, a CSV with a header, quoted text holding commas, and a text id column.
fn export_csv(seed: u64) -> Bytes {
    let mut rng = Rng::new(seed ^ 0x5eed_e4a0);
    let mut out = String::from("ts,temperature,pressure,running,serial,remark\n");
    for i in 0..200i64 {
        let ts = START_MS + 7 * HOUR_MS + i * 61_000;
        let temp = 60.0 + (rng.next_u64() % 400) as f64 / 10.0;
        let remark = match i % 3 {
            0 => "ok".to_string(),
            1 => "\"checked, fine\"".to_string(),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{ts},{temp:.1},{},{},{:06},{remark}\n",
            900 + rng.next_u64() % 200,
            i % 4 != 0,
            rng.next_u64() % 1_000_000
        ));
    }
    Bytes::from(out)
}
