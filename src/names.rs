//! Names that become paths: tenant id validation, Hive-style escaping of metric names, and
//! a length bound on the resulting path segment.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Longest metric or field name accepted, in bytes (SPEC 3).
pub const MAX_NAME_BYTES: usize = 256;

/// Longest metric segment value (after `metric=`) written whole: with the prefix it stays
/// well inside the 255 bytes most filesystems allow per file name.
pub const MAX_SEGMENT_BYTES: usize = 200;

/// Hex digits of the name hash ending a shortened segment (128 bits).
const HASH_HEX: usize = 32;

/// Marks a shortened segment: [`escape`] never produces it.
const SHORTENED: char = '!';

/// Everything but `[A-Za-z0-9_.-]` is escaped, as Hive does for partition values.
const HIVE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-').remove(b'.');

/// Whether `tenant` matches `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}` and holds no `..`.
pub fn valid_tenant(tenant: &str) -> bool {
    let b = tenant.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        && !tenant.contains("..")
}

/// Why a metric or field name is unusable, if it is.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty name")
    } else if name.len() > MAX_NAME_BYTES {
        Some("name longer than 256 bytes")
    } else {
        None
    }
}

/// Escapes a name for use as one path segment: `/`, `=`, `%`, control characters and every
/// other byte outside `[A-Za-z0-9_.-]` become `%XX`; a leading `.` is escaped too, so no
/// segment is ever `.` or `..`.
pub fn escape(name: &str) -> String {
    let escaped = utf8_percent_encode(name, HIVE).to_string();
    match escaped.strip_prefix('.') {
        Some(rest) => format!("%2E{rest}"),
        None => escaped,
    }
}

/// Undoes [`escape`].
pub fn unescape(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// The path segment value of a metric: its [`escape`]d form, or, when that is longer than
/// [`MAX_SEGMENT_BYTES`] (a 256-byte name escapes to as much as 768 bytes, and a file name is
/// at most 255 bytes on most filesystems), an escaped prefix, `!`, and the hex of the name's
/// 128-bit hash. `!` never occurs in an escaped name, so the forms cannot collide; the full name
/// stays in the partition index ([`crate::write::index`]).
pub fn metric_segment(name: &str) -> String {
    let escaped = escape(name);
    if escaped.len() <= MAX_SEGMENT_BYTES {
        return escaped;
    }
    // The longest prefix of whole characters whose escape fits (the escape works character
    // by character, so it is a prefix of the full escape that never splits a character).
    let budget = MAX_SEGMENT_BYTES - 1 - HASH_HEX;
    let (mut end, mut len) = (0, 0);
    for (i, c) in name.char_indices() {
        let plain = c.is_ascii_alphanumeric() || matches!(c, '_' | '-') || (c == '.' && i > 0);
        len += if plain { 1 } else { 3 * c.len_utf8() };
        if len > budget {
            break;
        }
        end = i + c.len_utf8();
    }
    let hash = xxhash_rust::xxh3::xxh3_128(name.as_bytes());
    format!(
        "{}{SHORTENED}{hash:0width$x}",
        escape(&name[..end]),
        width = HASH_HEX
    )
}

/// Whether a metric segment is a shortened one (the name is not its unescaped text).
pub fn is_shortened(segment: &str) -> bool {
    segment.contains(SHORTENED)
}

/// The relative directory of a (tenant, metric) below `typed/` or `untyped/`.
pub fn table_dir(tenant: &str, metric: &str) -> String {
    format!("tenant={}/metric={}", tenant, metric_segment(metric))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants() {
        assert!(valid_tenant("t07"));
        assert!(valid_tenant("a.b-c_d"));
        for bad in [
            "",
            "../x",
            "a/b",
            ".",
            "-a",
            "a..b",
            "tén",
            &"a".repeat(129),
        ] {
            assert!(!valid_tenant(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn escaping_never_climbs() {
        assert_eq!(escape("boiler"), "boiler");
        assert_eq!(escape("a/b=c%d"), "a%2Fb%3Dc%25d");
        assert_eq!(escape(".."), "%2E.");
        assert_eq!(escape("x\ny"), "x%0Ay");
        assert_eq!(unescape(&escape("a/b=c%d é")), "a/b=c%d é");
    }

    #[test]
    fn long_names_get_a_bounded_unique_segment() {
        let plain = "m".repeat(MAX_SEGMENT_BYTES);
        assert_eq!(metric_segment(&plain), plain, "at the bound: whole");
        assert!(!is_shortened(&metric_segment(&plain)));
        let names = [
            "m".repeat(256),
            "m".repeat(255) + "n",
            "é".repeat(128),
            "/".repeat(256),
            "a".repeat(166) + "/" + &"b".repeat(89),
        ];
        let segs: Vec<String> = names.iter().map(|n| metric_segment(n)).collect();
        for (n, seg) in names.iter().zip(&segs) {
            assert!(is_shortened(seg), "{n}");
            assert!(seg.len() <= MAX_SEGMENT_BYTES, "{} bytes", seg.len());
            assert!(
                seg.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-%!".contains(&b)),
                "{seg}"
            );
            // The prefix is the escaped name's start, never a split escape or character.
            let (prefix, hash) = seg.split_once('!').unwrap();
            assert!(escape(n).starts_with(prefix));
            assert_eq!(hash.len(), 32);
            assert!(!prefix.ends_with('%') && prefix.as_bytes()[prefix.len() - 2] != b'%');
        }
        let unique: std::collections::BTreeSet<&String> = segs.iter().collect();
        assert_eq!(
            unique.len(),
            names.len(),
            "distinct names, distinct segments"
        );
        assert_eq!(
            segs[0],
            format!(
                "{}!{:032x}",
                "m".repeat(167),
                xxhash_rust::xxh3::xxh3_128(names[0].as_bytes())
            )
        );
        // "é" escapes to 6 bytes: 27 of them (162 bytes) fit in 167, a 28th would not.
        assert_eq!(segs[2].split_once('!').unwrap().0, "%C3%A9".repeat(27));
        assert_eq!(
            table_dir("t1", &names[0]),
            format!("tenant=t1/metric={}", segs[0])
        );
    }
}
