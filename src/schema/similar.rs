//! Name similarity: is an unknown field name a likely variant of a declared one.
//!
//! Two names are compared through a normalization: split into words at the separators
//! `_ - . space` and at camelCase boundaries (`tempC` -> `temp`, `C`), lowercase, drop one
//! trailing unit word (`Temp_C`, `humidity_pct`, `Pressure_kPa`) when at least three
//! characters remain, and expand common abbreviations word by word (`batt_lvl` ->
//! `battery level`). Equal normalized forms are likely variants; so are forms that differ in
//! one word by a single typo (insertion, deletion, substitution or swap of two adjacent
//! letters) when both spellings of that word have at least [`MIN_TYPO_WORD`] characters and
//! the typo touches no digit (`sensor1` is not `sensor2`, `site` is not `size`).

/// Score of names equal once lowercased and stripped of separators (`Temp` ~ `temp`).
pub const SAME_SPELLING: u32 = 100;
/// Score of names equal after dropping a unit suffix and expanding abbreviations.
pub const SAME_NORMALIZED: u32 = 80;
/// Score of names whose normalized forms differ by one typo in one word.
pub const ONE_TYPO: u32 = 50;
/// Shortest word a typo is tolerated in: shorter words differing by one letter are usually
/// different words (`site`/`size`, `door`/`doors`).
pub const MIN_TYPO_WORD: usize = 6;
/// Characters that must remain once a unit suffix is dropped (`v_a` keeps its `a`).
const MIN_STEM: usize = 3;

const SEPARATORS: [char; 4] = ['_', '-', '.', ' '];

/// Unit words dropped from the end of a name. `min` is not one: it means "minimum" as often
/// as "minutes", and `temp_min` is not `temperature`.
const UNITS: &[&str] = &[
    "c",
    "f",
    "k",
    "degc",
    "degf",
    "celsius",
    "fahrenheit",
    "kelvin",
    "pct",
    "percent",
    "pa",
    "kpa",
    "hpa",
    "mbar",
    "bar",
    "psi",
    "v",
    "mv",
    "kv",
    "a",
    "ma",
    "w",
    "kw",
    "kwh",
    "wh",
    "m",
    "cm",
    "mm",
    "km",
    "s",
    "ms",
    "sec",
    "secs",
    "h",
    "hr",
    "hrs",
    "hz",
    "khz",
    "rpm",
    "db",
    "dbm",
    "lux",
    "ppm",
    "ppb",
];

/// Abbreviation -> word, applied to whole words. `max` and `min` stay as they are; `amp` is
/// left alone (amperes or amplitude).
const ABBREVIATIONS: &[(&str, &str)] = &[
    ("temp", "temperature"),
    ("tmp", "temperature"),
    ("pct", "percent"),
    ("perc", "percent"),
    ("hum", "humidity"),
    ("press", "pressure"),
    ("pres", "pressure"),
    ("volt", "voltage"),
    ("volts", "voltage"),
    ("bat", "battery"),
    ("batt", "battery"),
    ("lvl", "level"),
    ("spd", "speed"),
    ("ts", "timestamp"),
    ("qty", "quantity"),
    ("cnt", "count"),
    ("avg", "average"),
    ("freq", "frequency"),
    ("pwr", "power"),
];

/// How likely `candidate` (a name as sent) is a variant of `known` (a declared name):
/// `Some(score)`, higher is closer, or `None` when the names are not similar.
pub fn likely_variant(candidate: &str, known: &str) -> Option<u32> {
    let squashed = squash(candidate);
    if !squashed.is_empty() && squashed == squash(known) {
        return Some(SAME_SPELLING);
    }
    let (a, b) = (normalize(candidate), normalize(known));
    if a.is_empty() || b.is_empty() {
        return None;
    }
    if a.concat() == b.concat() {
        return Some(SAME_NORMALIZED);
    }
    one_typo_apart(&a, &b).then_some(ONE_TYPO)
}

/// Lowercase without separators.
fn squash(name: &str) -> String {
    name.chars()
        .filter(|c| !SEPARATORS.contains(c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The normalized words of a name.
pub fn normalize(name: &str) -> Vec<String> {
    let parts: Vec<&str> = name.split(SEPARATORS).filter(|p| !p.is_empty()).collect();
    let mut words: Vec<String> = Vec::new();
    let unit_part = parts.len() > 1 && is_unit(parts[parts.len() - 1]) && {
        let stem: usize = parts[..parts.len() - 1].iter().map(|p| p.len()).sum();
        stem >= MIN_STEM
    };
    let kept = if unit_part {
        &parts[..parts.len() - 1]
    } else {
        &parts[..]
    };
    for part in kept {
        words.extend(camel_words(part).into_iter().map(str::to_lowercase));
    }
    if !unit_part && words.len() > 1 && is_unit(&words[words.len() - 1]) {
        let stem: usize = words[..words.len() - 1].iter().map(String::len).sum();
        if stem >= MIN_STEM {
            words.pop();
        }
    }
    words.into_iter().map(expand).collect()
}

fn is_unit(word: &str) -> bool {
    let lower = word.to_lowercase();
    UNITS.contains(&lower.as_str())
}

fn expand(word: String) -> String {
    match ABBREVIATIONS.iter().find(|(abbr, _)| *abbr == word) {
        Some((_, full)) => full.to_string(),
        None => word,
    }
}

/// Splits at lowercase-or-digit -> uppercase boundaries (`batteryLevel`, `pressureKPa`).
fn camel_words(part: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev: Option<char> = None;
    for (i, c) in part.char_indices() {
        if c.is_uppercase() && prev.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit()) {
            out.push(&part[start..i]);
            start = i;
        }
        prev = Some(c);
    }
    out.push(&part[start..]);
    out
}

/// Same words but one, and that one differs by a single typo.
fn one_typo_apart(a: &[String], b: &[String]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut differing = a.iter().zip(b).filter(|(x, y)| x != y);
    match (differing.next(), differing.next()) {
        (Some((x, y)), None) => typo_word(x, y),
        _ => false,
    }
}

fn typo_word(x: &str, y: &str) -> bool {
    let (x, y): (Vec<char>, Vec<char>) = (x.chars().collect(), y.chars().collect());
    x.len().min(y.len()) >= MIN_TYPO_WORD && single_edit(&x, &y)
}

/// Exactly one Damerau edit apart, not touching a digit.
fn single_edit(x: &[char], y: &[char]) -> bool {
    let prefix = x.iter().zip(y).take_while(|(p, q)| p == q).count();
    let (x, y) = (&x[prefix..], &y[prefix..]);
    let suffix = x
        .iter()
        .rev()
        .zip(y.iter().rev())
        .take_while(|(p, q)| p == q)
        .count();
    let (dx, dy) = (&x[..x.len() - suffix], &y[..y.len() - suffix]);
    if dx.iter().chain(dy).any(char::is_ascii_digit) {
        return false;
    }
    match (dx.len(), dy.len()) {
        (1, 0) | (0, 1) | (1, 1) => true,
        (2, 2) => dx[0] == dy[1] && dx[1] == dy[0],
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants() {
        for (candidate, known, score) in [
            ("Temp_C", "temperature", SAME_NORMALIZED),
            ("TEMPERATURE", "temperature", SAME_SPELLING),
            ("temp-f", "temperature", SAME_NORMALIZED),
            ("humidity_pct", "humidity", SAME_NORMALIZED),
            ("Pressure_kPa", "pressure", SAME_NORMALIZED),
            ("batt_lvl", "battery_level", SAME_NORMALIZED),
            ("batteryLevel", "battery_level", SAME_SPELLING),
            ("BattLvl", "battery_level", SAME_NORMALIZED),
            ("tempC", "temperature", SAME_NORMALIZED),
            ("pressureKPa", "pressure", SAME_NORMALIZED),
            ("machine-1", "machine1", SAME_SPELLING),
            ("Boiler", "boiler", SAME_SPELLING),
            ("temprature", "temperature", ONE_TYPO),
            ("humidty", "humidity", ONE_TYPO),
            ("batery_level", "battery_level", ONE_TYPO),
            ("pressrue", "pressure", ONE_TYPO),
            ("pressur", "pressure", ONE_TYPO),
        ] {
            assert_eq!(
                likely_variant(candidate, known),
                Some(score),
                "{candidate} ~ {known}"
            );
        }
    }

    #[test]
    fn not_variants() {
        for (candidate, known) in [
            ("site", "size"),
            ("door", "floor"),
            ("pressure", "temperature"),
            ("a", "b"),
            ("temp", "tamp"),
            ("tamp", "temperature"),
            ("temp_min", "temperature"),
            ("temp_max", "temp"),
            ("sensor1", "sensor2"),
            ("boiler2", "boiler"),
            ("phase_a", "phase_b"),
            ("inlet_temp", "outlet_temp"),
            ("v_a", "v"),
            ("", "x"),
            ("_", "-"),
        ] {
            assert_eq!(
                likely_variant(candidate, known),
                None,
                "{candidate} !~ {known}"
            );
        }
    }

    #[test]
    fn normal_forms() {
        assert_eq!(normalize("Temp_C"), ["temperature"]);
        assert_eq!(normalize("v_a"), ["v", "a"]);
        assert_eq!(normalize("batt.lvl pct"), ["battery", "level"]);
        assert_eq!(normalize("pct"), ["percent"]);
    }
}
