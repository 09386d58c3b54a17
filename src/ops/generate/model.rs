//! The sample world the generator draws from: tenants, metrics with aliases and typed fields,
//! and a small deterministic random number generator.

use serde_json::json;

use crate::catalog::TenantDoc;

/// SplitMix64: small, fast and deterministic per seed.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A generated field value.
#[derive(Clone, Debug, PartialEq)]
pub enum GenValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// How a field of a sample metric is generated.
#[derive(Clone, Debug)]
pub struct SampleField {
    pub name: String,
    pub ty: &'static str,
    pub aliases: Vec<String>,
}

/// A sample metric.
#[derive(Clone, Debug)]
pub struct SampleMetric {
    pub name: String,
    pub aliases: Vec<String>,
    pub fields: Vec<SampleField>,
}

/// A sample tenant: its id and the metric indexes its catalog knows (`None`: no catalog).
#[derive(Clone, Debug)]
pub struct SampleTenant {
    pub id: String,
    pub known: Option<Vec<usize>>,
}

/// What the generator draws events from: tenants and the metrics their devices send.
#[derive(Clone, Debug)]
pub struct World {
    pub tenants: Vec<SampleTenant>,
    pub metrics: Vec<SampleMetric>,
    /// The small built-in world picks metrics with a fixed skew; a synthetic one uniformly.
    skewed: bool,
}

fn field(name: &str, ty: &'static str, aliases: &[&str]) -> SampleField {
    SampleField {
        name: name.into(),
        ty,
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
    }
}

fn metric(name: &str, aliases: &[&str], fields: Vec<SampleField>) -> SampleMetric {
    SampleMetric {
        name: name.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        fields,
    }
}

/// Names and types the synthetic world's fields cycle through (about what a device sends).
const SYNTH_FIELDS: &[(&str, &str)] = &[
    ("temperature", "double"),
    ("pressure", "long"),
    ("running", "boolean"),
    ("site", "string"),
    ("voltage", "int"),
    ("read_at", "timestamp"),
    ("humidity", "double"),
    ("flow", "double"),
    ("count", "long"),
    ("status", "string"),
    ("current", "double"),
    ("speed", "int"),
];

/// Metric names of the synthetic world.
const SYNTH_METRICS: &[&str] = &[
    "boiler", "meter", "door", "chiller", "pump", "valve", "hvac", "tank", "fan", "light",
];

impl World {
    /// The small built-in world: four tenants (`t04` has no catalog) and four metrics
    /// (`probe` is in no catalog).
    pub fn sample() -> Self {
        let metrics = vec![
            metric(
                "boiler",
                &["machine1", "machine1b"],
                vec![
                    field("temperature", "double", &["temp", "tmp"]),
                    field("pressure", "long", &["psi"]),
                    field("running", "boolean", &[]),
                    field("site", "string", &[]),
                ],
            ),
            metric(
                "meter",
                &["power_meter"],
                vec![
                    field("kwh", "double", &["energy"]),
                    field("voltage", "int", &["volts"]),
                    field("read_at", "timestamp", &[]),
                ],
            ),
            metric(
                "door",
                &["entry"],
                vec![
                    field("open", "boolean", &["is_open"]),
                    field("count", "long", &[]),
                ],
            ),
            metric(
                "probe",
                &[],
                vec![field("level", "double", &[]), field("note", "string", &[])],
            ),
        ];
        let tenant = |id: &str, known: Option<&[usize]>| SampleTenant {
            id: id.into(),
            known: known.map(|k| k.to_vec()),
        };
        World {
            tenants: vec![
                tenant("t01", Some(&[0, 1, 2])),
                tenant("t02", Some(&[0, 1, 2])),
                tenant("t03", Some(&[0, 1])),
                tenant("t04", None),
            ],
            metrics,
            skewed: true,
        }
    }

    /// A production-shaped world: `tenants` tenants (`t01`...), each with a catalog that
    /// knows all `metrics` metrics, each metric with `fields` declared fields; every metric
    /// has an alias and every third field one too.
    pub fn synthetic(tenants: usize, metrics: usize, fields: usize) -> Self {
        let metrics = (0..metrics.clamp(1, 99))
            .map(|m| {
                let base = SYNTH_METRICS[m % SYNTH_METRICS.len()];
                let name = match m / SYNTH_METRICS.len() {
                    0 => base.to_string(),
                    k => format!("{base}{k}"),
                };
                // Each metric starts at its own place in the list, so metrics differ.
                let fields = (0..fields.clamp(1, 99))
                    .map(|f| {
                        let (base, ty) = SYNTH_FIELDS[(f + 3 * m) % SYNTH_FIELDS.len()];
                        let name = match f / SYNTH_FIELDS.len() {
                            0 => base.to_string(),
                            k => format!("{base}{k}"),
                        };
                        let aliases = match f % 3 {
                            0 => vec![format!("{name}_v1")],
                            _ => vec![],
                        };
                        SampleField { name, ty, aliases }
                    })
                    .collect();
                SampleMetric {
                    aliases: vec![format!("{name}_legacy")],
                    name,
                    fields,
                }
            })
            .collect::<Vec<_>>();
        let all: Vec<usize> = (0..metrics.len()).collect();
        let tenants = (1..=tenants.clamp(1, 999))
            .map(|t| SampleTenant {
                id: format!("t{t:02}"),
                known: Some(all.clone()),
            })
            .collect();
        World {
            tenants,
            metrics,
            skewed: false,
        }
    }

    /// The metric index of an event, from one draw.
    pub fn pick_metric(&self, rng: &mut Rng) -> usize {
        if !self.skewed {
            return rng.below(self.metrics.len() as u64) as usize;
        }
        match rng.below(10) {
            0..=3 => 0,
            4..=6 => 1,
            7..=8 => 2,
            _ => 3,
        }
    }

    /// The metric called `name`.
    pub fn metric(&self, name: &str) -> &SampleMetric {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .expect("a metric of this world")
    }
}

/// The catalog document of a tenant, if it has one.
pub fn catalog_doc(world: &World, tenant: &str, known: &[usize]) -> TenantDoc {
    let mut metrics = serde_json::Map::new();
    for &m in known {
        let sm = &world.metrics[m];
        let mut fields = serde_json::Map::new();
        for f in &sm.fields {
            fields.insert(f.name.clone(), json!({"type": f.ty, "aliases": f.aliases}));
        }
        metrics.insert(
            sm.name.clone(),
            json!({"aliases": sm.aliases, "fields": fields, "hidden": []}),
        );
    }
    serde_json::from_value(json!({"tenant": tenant, "metrics": metrics})).expect("sample catalog")
}
