//! Measuring one Avro datum before apache-avro decodes it: lengths, indexes and counts checked
//! against the bytes and the schema, values counted, so a record that claims too much is
//! refused. (The direct decoder counts into the same counters as it decodes.)

use apache_avro::schema::{NamesRef, Namespace, Schema};

use super::container::{Cursor, Fault};
use super::MAX_DEPTH;

/// Walks one datum without building it: checks every length, index and count against the
/// bytes and the schema, and counts the values it would decode to.
pub(super) struct Walk<'s> {
    pub(super) names: &'s NamesRef<'s>,
    pub(super) steps: usize,
    pub(super) max_steps: usize,
    /// Bytes of strings, bytes and fixed values.
    pub(super) payload: usize,
}

impl<'s> Walk<'s> {
    pub(super) fn new(names: &'s NamesRef<'s>, max_steps: usize) -> Self {
        Walk {
            names,
            steps: 0,
            max_steps,
            payload: 0,
        }
    }

    /// Counts one value; `TooMany` past `max_steps`.
    pub(super) fn step(&mut self) -> Result<(), Fault> {
        self.steps += 1;
        if self.steps > self.max_steps {
            return Err(Fault::TooMany);
        }
        Ok(())
    }

    pub(super) fn value(
        &mut self,
        schema: &Schema,
        ns: &Namespace,
        c: &mut Cursor<'_>,
        depth: usize,
    ) -> Result<(), Fault> {
        if depth > MAX_DEPTH {
            return Err(Fault::Invalid(format!(
                "values nested deeper than {MAX_DEPTH}"
            )));
        }
        self.step()?;
        match schema {
            Schema::Null => {}
            Schema::Boolean => match c.byte()? {
                0 | 1 => {}
                b => return Err(Fault::Invalid(format!("boolean byte {b}"))),
            },
            int_like!() => {
                let v = c.long()?;
                if i32::try_from(v).is_err() {
                    return Err(Fault::Invalid(format!("int {v} out of range")));
                }
            }
            long_like!() => {
                c.long()?;
            }
            Schema::Float => {
                c.take(4)?;
            }
            Schema::Double => {
                c.take(8)?;
            }
            Schema::Duration => {
                c.take(12)?;
            }
            Schema::Bytes | Schema::String | Schema::BigDecimal | Schema::Uuid => {
                self.payload = self.payload.saturating_add(c.bytes()?.len());
            }
            Schema::Fixed(f) => {
                self.payload = self.payload.saturating_add(c.take(f.size)?.len());
            }
            Schema::Decimal(d) => self.value(&d.inner, ns, c, depth + 1)?,
            Schema::Enum(e) => {
                let i = c.long()?;
                if usize::try_from(i).map_or(true, |i| i >= e.symbols.len()) {
                    return Err(Fault::Invalid(format!("enum index {i} out of range")));
                }
            }
            Schema::Union(u) => {
                let i = c.long()?;
                let variant = usize::try_from(i)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| Fault::Invalid(format!("union index {i} out of range")))?;
                self.value(variant, ns, c, depth + 1)?;
            }
            Schema::Array(a) => self.blocks(c, |w, c| w.value(&a.items, ns, c, depth + 1))?,
            Schema::Map(m) => self.blocks(c, |w, c| {
                w.value(&Schema::String, ns, c, depth + 1)?;
                w.value(&m.types, ns, c, depth + 1)
            })?,
            Schema::Record(r) => {
                let inner = r.name.fully_qualified_name(ns).namespace;
                for f in &r.fields {
                    self.value(&f.schema, &inner, c, depth + 1)?;
                }
            }
            Schema::Ref { name } => {
                let full = name.fully_qualified_name(ns);
                let target = self
                    .names
                    .get(&full)
                    .ok_or_else(|| Fault::Invalid(format!("unknown type {full}")))?;
                self.value(target, &full.namespace, c, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Array and map blocks: a count (negative: followed by a byte size), items, until 0.
    pub(super) fn blocks(
        &mut self,
        c: &mut Cursor<'_>,
        mut item: impl FnMut(&mut Self, &mut Cursor<'_>) -> Result<(), Fault>,
    ) -> Result<(), Fault> {
        loop {
            let n = c.long()?;
            if n == 0 {
                return Ok(());
            }
            if n < 0 {
                c.len()?;
            }
            for _ in 0..n.unsigned_abs() {
                item(self, c)?;
            }
        }
    }
}
