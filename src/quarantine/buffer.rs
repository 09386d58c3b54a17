//! A run's quarantine lines, kept in object order and spilled to local disk past a budget, so
//! a flood of bad records costs disk, not memory.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::FileExt;

use super::BadRecord;
use crate::error::{Error, Result};
use crate::names;

enum Data {
    Memory(Vec<u8>),
    Spilled { offset: u64, len: usize },
}

struct Entry {
    tenant: String,
    data: Data,
}

/// Quarantine lines by object (arrival order), then by tenant when written out.
pub struct QuarantineBuffer {
    run_id: String,
    per_object: Vec<Vec<Entry>>,
    in_memory: usize,
    budget: usize,
    spill: Option<(std::fs::File, u64)>,
    /// Bad records by reason code.
    pub errors_by_reason: BTreeMap<String, u64>,
    /// Damaged objects by reason code.
    pub damaged: BTreeMap<String, u64>,
}

impl QuarantineBuffer {
    /// A buffer for `objects` objects that spills past `budget` bytes.
    pub fn new(run_id: &str, objects: usize, budget: usize) -> Self {
        QuarantineBuffer {
            run_id: run_id.to_string(),
            per_object: (0..objects).map(|_| Vec::new()).collect(),
            in_memory: 0,
            budget,
            spill: None,
            errors_by_reason: BTreeMap::new(),
            damaged: BTreeMap::new(),
        }
    }

    /// Bad records (not damage) so far.
    pub fn errors(&self) -> u64 {
        self.errors_by_reason.values().sum()
    }

    /// Adds the bad records of object number `object` (key `key`).
    pub fn add(&mut self, object: usize, key: &str, bad: Vec<BadRecord>) -> Result<()> {
        for b in bad {
            let code = b.reason.code().to_string();
            let counts = if b.object_level {
                &mut self.damaged
            } else {
                &mut self.errors_by_reason
            };
            *counts.entry(code).or_default() += 1;
            let mut line = serde_json::to_vec(&b.line(&self.run_id, key)).expect("quarantine json");
            line.push(b'\n');
            self.in_memory += line.len();
            let tenant = b
                .tenant
                .filter(|t| names::valid_tenant(t))
                .unwrap_or_else(|| "_unknown".into());
            self.per_object[object].push(Entry {
                tenant,
                data: Data::Memory(line),
            });
        }
        if self.in_memory > self.budget {
            self.spill_all()?;
        }
        Ok(())
    }

    fn spill_all(&mut self) -> Result<()> {
        if self.spill.is_none() {
            let file = tempfile::tempfile().map_err(|e| Error::io("quarantine spill", e))?;
            self.spill = Some((file, 0));
        }
        let (file, end) = self.spill.as_mut().expect("spill file");
        for entry in self.per_object.iter_mut().flatten() {
            if let Data::Memory(line) = &entry.data {
                file.write_all(line)
                    .map_err(|e| Error::io("quarantine spill", e))?;
                let len = line.len();
                entry.data = Data::Spilled { offset: *end, len };
                *end += len as u64;
            }
        }
        self.in_memory = 0;
        Ok(())
    }

    /// Tenants with quarantine lines (`_unknown` for unreadable or invalid ones).
    pub fn tenants(&self) -> BTreeSet<String> {
        self.per_object
            .iter()
            .flatten()
            .map(|e| e.tenant.clone())
            .collect()
    }

    /// The lines of `tenant` in arrival order, read back from disk where they were spilled.
    pub fn lines<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = Result<Vec<u8>>> + 'a {
        self.per_object
            .iter()
            .flatten()
            .filter(move |e| e.tenant == tenant)
            .map(|entry| match &entry.data {
                Data::Memory(line) => Ok(line.clone()),
                Data::Spilled { offset, len } => {
                    let (file, _) = self.spill.as_ref().expect("spilled entries have a file");
                    let mut buf = vec![0; *len];
                    file.read_exact_at(&mut buf, *offset)
                        .map_err(|e| Error::io("quarantine spill", e))?;
                    Ok(buf)
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Position;
    use crate::quarantine::{Raw, Reason};

    fn bad(tenant: Option<&str>, line: u64, object_level: bool) -> BadRecord {
        BadRecord {
            reason: if object_level {
                Reason::TruncatedObject
            } else {
                Reason::BadJson
            },
            message: "m".into(),
            position: Position {
                record: line,
                line: Some(line),
                ..Default::default()
            },
            tenant: tenant.map(str::to_string),
            raw: Raw::Text(format!("raw {line}")),
            object_level,
        }
    }

    fn text(q: &QuarantineBuffer, tenant: &str) -> Vec<String> {
        q.lines(tenant)
            .map(|l| {
                let v: serde_json::Value = serde_json::from_slice(&l.unwrap()).unwrap();
                format!(
                    "{}:{}",
                    v["object"].as_str().unwrap(),
                    v["position"]["line"]
                )
            })
            .collect()
    }

    #[test]
    fn arrival_order_and_spill_give_the_same_lines() {
        for budget in [usize::MAX, 0] {
            let mut q = QuarantineBuffer::new("run", 3, budget);
            // Objects finish out of order; lines come back in object order.
            q.add(2, "c", vec![bad(Some("t1"), 1, false)]).unwrap();
            q.add(
                0,
                "a",
                vec![bad(Some("t1"), 4, false), bad(Some("../x"), 5, false)],
            )
            .unwrap();
            q.add(1, "b", vec![bad(None, 9, true)]).unwrap();
            assert_eq!(text(&q, "t1"), ["a:4", "c:1"], "budget {budget}");
            assert_eq!(text(&q, "_unknown"), ["a:5", "b:9"]);
            assert_eq!(q.errors(), 3);
            assert_eq!(q.damaged["truncated_object"], 1);
            assert_eq!(
                q.tenants().into_iter().collect::<Vec<_>>(),
                ["_unknown", "t1"]
            );
        }
    }
}
