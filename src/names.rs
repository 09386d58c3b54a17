//! Names that become paths: tenant id validation and Hive-style escaping of metric names.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Longest metric or field name accepted, in bytes (SPEC 3).
pub const MAX_NAME_BYTES: usize = 256;

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

/// The relative directory of a (tenant, metric) below `typed/` or `untyped/`.
pub fn table_dir(tenant: &str, metric: &str) -> String {
    format!("tenant={}/metric={}", tenant, escape(metric))
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
}
