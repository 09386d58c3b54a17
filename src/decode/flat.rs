//! The common JSON line read without the general parser: one flat object of keys and scalar
//! values with no escapes. Any other line, valid or not, is left to the general parser, so
//! this gives exactly what it would give, only sooner.

use std::borrow::Cow;

use crate::model::RawValue;
use crate::resolve::raw::RawFields;

/// The fields of `text` into `out` (cleared first, so one vector serves line after line) when
/// it is a flat object whose keys and strings have no escapes and whose values are strings,
/// numbers, booleans or null; `None` for anything else (nested values, escapes, and every line
/// that is not JSON).
pub fn scan<'a>(text: &'a str, out: &mut RawFields<'a>) -> Option<()> {
    out.clear();
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (skip_ws(b, i + 1) == b.len()).then_some(());
    }
    loop {
        let (key, at) = plain_string(text, i)?;
        i = skip_ws(b, at);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let (value, at) = scalar(text, skip_ws(b, i + 1))?;
        out.push((Cow::Borrowed(key), value));
        i = skip_ws(b, at);
        match b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => break,
            _ => return None,
        }
    }
    (skip_ws(b, i + 1) == b.len()).then_some(())
}

/// The first position from `i` that is not JSON whitespace.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The bytes that end a plain string: its closing quote, or what it may not hold (an escape,
/// a control character).
const ENDS_PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// The string starting at `i` (its opening quote) when it has no escape and no control
/// character, and the position after its closing quote.
fn plain_string(text: &str, i: usize) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let len = b[start..].iter().position(|&c| ENDS_PLAIN[c as usize])?;
    let end = start + len;
    // `end` is at an ASCII byte, so both ends are character boundaries.
    (b[end] == b'"').then(|| (&text[start..end], end + 1))
}

/// The scalar value starting at `i` and the position after it.
fn scalar(text: &str, i: usize) -> Option<(RawValue<'_>, usize)> {
    let b = text.as_bytes();
    let word = |w: &[u8], v: RawValue<'static>| b[i..].starts_with(w).then_some((v, i + w.len()));
    match *b.get(i)? {
        b'"' => plain_string(text, i).map(|(s, at)| (RawValue::Str(Cow::Borrowed(s)), at)),
        b't' => word(b"true", RawValue::Bool(true)),
        b'f' => word(b"false", RawValue::Bool(false)),
        b'n' => word(b"null", RawValue::Null),
        b'-' | b'0'..=b'9' => {
            let end = number_end(b, i)?;
            Some((RawValue::Number(Cow::Borrowed(&text[i..end])), end))
        }
        _ => None,
    }
}

/// Where the JSON number starting at `i` ends: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |i: usize| i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if b[i] == b'-' {
        i += 1;
    }
    i = match b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(i + 1),
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits(i);
        if end == i {
            return None;
        }
        i = end;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::json::parse_with;
    use crate::model::{Position, RawRecord};
    use crate::quarantine::Reason;
    use proptest::prelude::*;

    /// What the general parser alone makes of a line.
    fn general(text: &str) -> Result<RawRecord<'_>, (Reason, String)> {
        parse_with(
            text.as_bytes(),
            Position::default(),
            |_, _| None,
            Vec::new(),
        )
    }

    /// What [`scan`] makes of a line, into a new vector.
    fn scanned(text: &str) -> Option<RawFields<'_>> {
        let mut out = Vec::new();
        scan(text, &mut out).map(|()| out)
    }

    fn fast(text: &str) -> Result<RawRecord<'_>, (Reason, String)> {
        parse_with(text.as_bytes(), Position::default(), scan, Vec::new())
    }

    #[test]
    fn plain_lines_are_read_and_the_rest_left_alone() {
        let text = r#" { "tenant":"t1" ,"timestamp": -1.5e+3,"a":0,"b":true,"c":null, "d":false,"e":"x y","f":10.25E2 } "#;
        let got = scanned(text).unwrap();
        assert_eq!(got.len(), 8);
        assert_eq!(fast(text), general(text));
        assert_eq!(got[1].1, RawValue::Number("-1.5e+3".into()));
        assert_eq!(scanned("{}"), Some(vec![]));
        for left in [
            r#"{"a":"x\"y"}"#,
            r#"{"a\n":1}"#,
            r#"{"a":{"b":1}}"#,
            r#"{"a":[1]}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":1e}"#,
            r#"{"a":+1}"#,
            r#"{"a":tru}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a" 1}"#,
            "{\"a\":\"\u{1}\"}",
            "[1]",
            "",
        ] {
            assert_eq!(scanned(left), None, "{left}");
        }
    }

    /// Text made of the pieces JSON lines are made of, valid or not.
    fn jsonish() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "{",
            "}",
            "\"",
            "\"a\"",
            "\"tenant\"",
            ":",
            ",",
            " ",
            "\t",
            "0",
            "1",
            "-",
            ".",
            "e",
            "E",
            "+",
            "12",
            "true",
            "false",
            "null",
            "nul",
            "[",
            "]",
            "\\",
            "\\\"",
            "\\n",
            "x",
            "é",
            "\u{1}",
            "\r",
        ]);
        prop::collection::vec(piece, 0..40).prop_map(|p| p.concat())
    }

    /// Flat objects of random keys and scalar values, with random spacing.
    fn flat_object() -> impl Strategy<Value = String> {
        let ws = prop::sample::select(vec!["", " ", "  ", "\t", "\r"]);
        let key = "[a-z\u{e9}\"\\\\]{0,6}";
        let value = prop_oneof![
            "-?(0|[1-9][0-9]{0,5})(\\.[0-9]{1,4})?([eE][+-]?[0-9]{1,3})?",
            "\"[a-z0-9 .\u{e9}\\\\\"]{0,8}\"",
            Just("true".to_string()),
            Just("false".to_string()),
            Just("null".to_string()),
            Just("{\"n\":1}".to_string()),
        ];
        let pair = (ws.clone(), key, ws.clone(), value, ws.clone())
            .prop_map(|(a, k, b, v, c)| format!("{a}\"{k}\"{b}:{c}{v}"));
        (prop::collection::vec(pair, 0..12), ws)
            .prop_map(|(pairs, w)| format!("{w}{{{}}}{w}", pairs.join(",")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_fast_path_changes_nothing(text in jsonish()) {
            prop_assert_eq!(fast(&text), general(&text), "{:?}", text);
        }

        #[test]
        fn flat_objects_read_as_the_general_parser_reads_them(text in flat_object()) {
            prop_assert_eq!(fast(&text), general(&text), "{:?}", text);
            // Without escapes or nesting, a line the general parser takes is a fast one.
            if general(&text).is_ok() && !text.contains('\\') && !text.contains("{\"n\"") {
                prop_assert!(scanned(&text).is_some(), "{:?}", text);
            }
        }
    }
}
