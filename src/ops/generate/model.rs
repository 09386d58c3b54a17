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
pub struct SampleField {
    pub name: &'static str,
    pub ty: &'static str,
    pub aliases: &'static [&'static str],
}

/// A sample metric.
pub struct SampleMetric {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub fields: &'static [SampleField],
}

/// The metrics every tenant's devices send; `probe` is never in a catalog.
pub const METRICS: &[SampleMetric] = &[
    SampleMetric {
        name: "boiler",
        aliases: &["machine1", "machine1b"],
        fields: &[
            SampleField {
                name: "temperature",
                ty: "double",
                aliases: &["temp", "tmp"],
            },
            SampleField {
                name: "pressure",
                ty: "long",
                aliases: &["psi"],
            },
            SampleField {
                name: "running",
                ty: "boolean",
                aliases: &[],
            },
            SampleField {
                name: "site",
                ty: "string",
                aliases: &[],
            },
        ],
    },
    SampleMetric {
        name: "meter",
        aliases: &["power_meter"],
        fields: &[
            SampleField {
                name: "kwh",
                ty: "double",
                aliases: &["energy"],
            },
            SampleField {
                name: "voltage",
                ty: "int",
                aliases: &["volts"],
            },
            SampleField {
                name: "read_at",
                ty: "timestamp",
                aliases: &[],
            },
        ],
    },
    SampleMetric {
        name: "door",
        aliases: &["entry"],
        fields: &[
            SampleField {
                name: "open",
                ty: "boolean",
                aliases: &["is_open"],
            },
            SampleField {
                name: "count",
                ty: "long",
                aliases: &[],
            },
        ],
    },
    SampleMetric {
        name: "probe",
        aliases: &[],
        fields: &[
            SampleField {
                name: "level",
                ty: "double",
                aliases: &[],
            },
            SampleField {
                name: "note",
                ty: "string",
                aliases: &[],
            },
        ],
    },
];

/// Tenants: (id, catalog knows these metric indexes). `t04` has no catalog at all.
pub const TENANTS: &[(&str, Option<&[usize]>)] = &[
    ("t01", Some(&[0, 1, 2])),
    ("t02", Some(&[0, 1, 2])),
    ("t03", Some(&[0, 1])),
    ("t04", None),
];

/// The catalog document of a tenant, if it has one.
pub fn catalog_doc(tenant: &str, known: &[usize]) -> TenantDoc {
    let mut metrics = serde_json::Map::new();
    for &m in known {
        let sm = &METRICS[m];
        let mut fields = serde_json::Map::new();
        for f in sm.fields {
            fields.insert(f.name.into(), json!({"type": f.ty, "aliases": f.aliases}));
        }
        metrics.insert(
            sm.name.into(),
            json!({"aliases": sm.aliases, "fields": fields, "hidden": []}),
        );
    }
    serde_json::from_value(json!({"tenant": tenant, "metrics": metrics})).expect("sample catalog")
}
