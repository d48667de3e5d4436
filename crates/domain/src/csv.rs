//! CSV as every file the service and the verifier write it (RFC 4180): UTF-8 without a
//! byte-order mark, records ended by CRLF, a field quoted only when it holds a comma, a double
//! quote, CR or LF, with each double quote inside doubled.
//!
//! Text a person typed (a reference, an activity) goes through [`text`] first: a spreadsheet
//! runs a cell that starts with `=`, `+`, `-` or `@` (or a tab or CR before them) as a formula,
//! so such a text is written with a `'` before it, which spreadsheets show as text (OWASP, "CSV
//! injection"). Numbers, dates, ids and the service's own names are written as they are.

use std::borrow::Cow;

/// Appends `field` to `line`, quoted if RFC 4180 requires it.
pub fn push_field(line: &mut String, field: &str) {
    if !field.contains([',', '"', '\r', '\n']) {
        line.push_str(field);
        return;
    }
    line.push('"');
    for c in field.chars() {
        if c == '"' {
            line.push('"');
        }
        line.push(c);
    }
    line.push('"');
}

/// One record of `fields`, each as [`push_field`] writes it, with its CRLF.
pub fn record(fields: &[&str]) -> String {
    let mut line = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        push_field(&mut line, field);
    }
    line.push_str("\r\n");
    line
}

/// A text a person typed, safe for a spreadsheet cell (see the module documentation).
pub fn text(typed: &str) -> Cow<'_, str> {
    if typed.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{typed}"))
    } else {
        Cow::Borrowed(typed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        assert_eq!(record(&["a", "b c", ""]), "a,b c,\r\n");
        assert_eq!(
            record(&["x,y", "say \"hi\"", "two\r\nlines"]),
            "\"x,y\",\"say \"\"hi\"\"\",\"two\r\nlines\"\r\n"
        );
    }

    #[test]
    fn a_typed_text_never_starts_a_formula() {
        for formula in [
            "=HYPERLINK(\"x\")",
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
        ] {
            assert_eq!(text(formula), format!("'{formula}"));
        }
        for plain in ["lunch club", "R-1042", "'quoted", "1=1", ""] {
            assert_eq!(text(plain), plain);
        }
    }
}
