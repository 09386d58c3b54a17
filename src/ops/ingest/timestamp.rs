//! Turning a row's timestamp into epoch milliseconds: epoch numbers (their unit fixed per file
//! from the first value, and every value checked to fall in a plausible range, so seconds read
//! as milliseconds are an error, never a 1970 date), RFC 3339, or a strftime pattern; a time
//! without an offset is read in `--timezone` (DST-aware: an ambiguous or missing local time is
//! an error unless a policy says otherwise), and never in the host's zone.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone};

use super::settings::{Ambiguous, IngestSettings, Nonexistent, TimestampFormat};
use crate::model::RawValue;

/// 1971-01-01 and 2200-01-01, UTC, in ms: what an epoch timestamp may plausibly be.
const PLAUSIBLE: std::ops::Range<i64> = 31_536_000_000..7_258_118_400_000;

/// Epoch units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Seconds,
    Millis,
    Micros,
}

impl Unit {
    fn to_ms(self, v: f64) -> f64 {
        match self {
            Unit::Seconds => v * 1000.0,
            Unit::Millis => v,
            Unit::Micros => v / 1000.0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Millis => "milliseconds",
            Unit::Micros => "microseconds",
        }
    }
}

/// Parses one file's timestamps (remembers the epoch unit the file uses).
pub struct TimestampParser<'a> {
    settings: &'a IngestSettings,
    unit: Option<Unit>,
}

impl<'a> TimestampParser<'a> {
    pub fn new(settings: &'a IngestSettings) -> Self {
        let unit = match settings.timestamp_format {
            TimestampFormat::EpochSeconds => Some(Unit::Seconds),
            TimestampFormat::EpochMillis => Some(Unit::Millis),
            TimestampFormat::EpochMicros => Some(Unit::Micros),
            _ => None,
        };
        TimestampParser { settings, unit }
    }

    /// The value in epoch ms, or why it is not a timestamp.
    pub fn parse(&mut self, v: &RawValue<'_>) -> Result<i64, String> {
        let text = match v {
            RawValue::Null => return Err("no timestamp".into()),
            RawValue::Bool(_) | RawValue::Nested(_) => return Err("not a timestamp".into()),
            RawValue::Number(n) => return self.epoch(n),
            RawValue::Str(s) => s.trim(),
        };
        match &self.settings.timestamp_format {
            TimestampFormat::Pattern(p) => self.pattern(text, p),
            TimestampFormat::Rfc3339 => self.text(text),
            TimestampFormat::Auto if looks_numeric(text) => self.epoch(text),
            TimestampFormat::Auto => self.text(text),
            _ => self.epoch(text),
        }
    }

    fn epoch(&mut self, text: &str) -> Result<i64, String> {
        if matches!(
            self.settings.timestamp_format,
            TimestampFormat::Rfc3339 | TimestampFormat::Pattern(_)
        ) {
            return Err(format!(
                "{text:?} is a number, the timestamp format says text"
            ));
        }
        let v: f64 = text
            .parse()
            .map_err(|_| format!("{text:?} is not an epoch number"))?;
        let unit = match self.unit {
            Some(u) => u,
            None => {
                let u = [Unit::Seconds, Unit::Millis, Unit::Micros]
                    .into_iter()
                    .find(|u| PLAUSIBLE.contains(&(u.to_ms(v) as i64)))
                    .ok_or_else(|| format!("{text:?} is no plausible epoch time in seconds, milliseconds or microseconds"))?;
                self.unit = Some(u);
                u
            }
        };
        let ms = unit.to_ms(v);
        if !ms.is_finite() || !PLAUSIBLE.contains(&(ms as i64)) {
            return Err(format!(
                "{text:?} read as epoch {} is {}: not a plausible time (is the unit wrong?)",
                unit.name(),
                describe(ms)
            ));
        }
        Ok(ms.round() as i64)
    }

    fn text(&self, text: &str) -> Result<i64, String> {
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(t.timestamp_millis());
        }
        let naive = [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .ok_or_else(|| {
            format!("{text:?} is not RFC 3339 (give --timestamp-format with a strftime pattern)")
        })?;
        self.local(naive, text)
    }

    fn pattern(&self, text: &str, pattern: &str) -> Result<i64, String> {
        if pattern.contains("%z") || pattern.contains("%:z") || pattern.contains("%#z") {
            return DateTime::parse_from_str(text, pattern)
                .map(|t| t.timestamp_millis())
                .map_err(|e| format!("{text:?} does not match {pattern:?}: {e}"));
        }
        let naive = NaiveDateTime::parse_from_str(text, pattern)
            .or_else(|e| {
                NaiveDate::parse_from_str(text, pattern)
                    .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight"))
                    .map_err(|_| e)
            })
            .map_err(|e| format!("{text:?} does not match {pattern:?}: {e}"))?;
        self.local(naive, text)
    }

    /// A local time in the configured zone.
    fn local(&self, naive: NaiveDateTime, text: &str) -> Result<i64, String> {
        let tz = self.settings.timezone.ok_or_else(|| {
            format!("{text:?} has no offset: give --timezone (an IANA zone), the host's zone is never assumed")
        })?;
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => Ok(t.timestamp_millis()),
            LocalResult::Ambiguous(a, b) => match self.settings.ambiguous {
                Ambiguous::Earliest => Ok(a.min(b).timestamp_millis()),
                Ambiguous::Latest => Ok(a.max(b).timestamp_millis()),
                Ambiguous::Error => Err(format!(
                    "{text:?} occurs twice in {} (clocks went back): give --ambiguous earliest or latest",
                    tz.name()
                )),
            },
            LocalResult::None => match self.settings.nonexistent {
                Nonexistent::Forward => forward(tz, naive).ok_or_else(|| format!("{text:?} cannot be moved forward in {}", tz.name())),
                Nonexistent::Error => Err(format!(
                    "{text:?} does not exist in {} (clocks went forward): give --nonexistent forward",
                    tz.name()
                )),
            },
        }
    }
}

/// A missing local time moved forward by the gap: read with the offset in force just before
/// it (02:30 on a spring-forward night becomes 03:30).
fn forward(tz: chrono_tz::Tz, naive: NaiveDateTime) -> Option<i64> {
    use chrono::Offset;
    let before = match tz.from_local_datetime(&(naive - chrono::Duration::hours(3))) {
        LocalResult::Single(t) => t.offset().fix(),
        _ => return None,
    };
    Some(
        (naive - chrono::Duration::seconds(i64::from(before.local_minus_utc())))
            .and_utc()
            .timestamp_millis(),
    )
}

fn looks_numeric(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|b| *b == b'.').count() <= 1
}

fn describe(ms: f64) -> String {
    match DateTime::from_timestamp_millis(ms as i64) {
        Some(t) if ms.is_finite() => t.format("%Y-%m-%d").to_string(),
        _ => "out of range".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::ingest::settings::{IngestSettings, MetricFrom};

    fn settings(fmt: TimestampFormat, tz: Option<&str>) -> IngestSettings {
        let mut s = IngestSettings::new("t01", MetricFrom::Fixed("m".into())).unwrap();
        s.timestamp_format = fmt;
        s.timezone = tz.map(|t| t.parse().unwrap());
        s
    }

    fn num(s: &str) -> RawValue<'_> {
        RawValue::Number(s.into())
    }

    fn text(s: &str) -> RawValue<'_> {
        RawValue::Str(s.into())
    }

    #[test]
    fn epoch_units_are_found_once_and_checked_for_every_value() {
        let s = settings(TimestampFormat::Auto, None);
        let mut p = TimestampParser::new(&s);
        assert_eq!(p.parse(&num("1767225600")), Ok(1_767_225_600_000));
        assert_eq!(p.parse(&text("1767225601")), Ok(1_767_225_601_000));
        let err = p.parse(&num("1767225600000")).unwrap_err();
        assert!(err.contains("not a plausible time"), "{err}");
        let s = settings(TimestampFormat::EpochMillis, None);
        let mut p = TimestampParser::new(&s);
        let err = p.parse(&num("1767225600")).unwrap_err();
        assert!(err.contains("epoch milliseconds is 1970-01-21"), "{err}");
        assert_eq!(p.parse(&num("1767225600123")), Ok(1_767_225_600_123));
    }

    #[test]
    fn offsets_are_honoured_and_naive_times_need_a_zone() {
        let s = settings(TimestampFormat::Auto, None);
        let mut p = TimestampParser::new(&s);
        assert_eq!(
            p.parse(&text("2026-01-01T01:00:00+01:00")),
            Ok(1_767_225_600_000)
        );
        assert_eq!(
            p.parse(&text("2026-01-01T00:00:00Z")),
            Ok(1_767_225_600_000)
        );
        assert!(p
            .parse(&text("2026-01-01 00:00:00"))
            .unwrap_err()
            .contains("give --timezone"));
        assert!(p
            .parse(&text("2024/12/12"))
            .unwrap_err()
            .contains("not RFC 3339"));
        let s = settings(TimestampFormat::Auto, Some("Europe/Berlin"));
        let mut p = TimestampParser::new(&s);
        assert_eq!(p.parse(&text("2026-01-01 01:00:00")), Ok(1_767_225_600_000));
        let s = settings(TimestampFormat::Pattern("%Y/%m/%d".into()), Some("UTC"));
        let mut p = TimestampParser::new(&s);
        assert_eq!(p.parse(&text("2026/01/01")), Ok(1_767_225_600_000));
    }

    #[test]
    fn daylight_saving_gaps_and_overlaps_are_errors_unless_a_policy_says() {
        let mut s = settings(TimestampFormat::Auto, Some("Europe/Berlin"));
        let mut p = TimestampParser::new(&s);
        // 2026-03-29 02:30 does not exist in Berlin; 2026-10-25 02:30 happens twice.
        assert!(p
            .parse(&text("2026-03-29 02:30:00"))
            .unwrap_err()
            .contains("does not exist"));
        assert!(p
            .parse(&text("2026-10-25 02:30:00"))
            .unwrap_err()
            .contains("occurs twice"));
        s.ambiguous = Ambiguous::Earliest;
        s.nonexistent = Nonexistent::Forward;
        let mut p = TimestampParser::new(&s);
        // 02:30 CEST (+02) = 00:30 UTC; 03:30 CEST = 01:30 UTC.
        assert_eq!(p.parse(&text("2026-10-25 02:30:00")), Ok(1_792_888_200_000));
        assert_eq!(p.parse(&text("2026-03-29 02:30:00")), Ok(1_774_747_800_000));
    }
}
