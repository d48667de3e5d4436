//! A report as CSV (RFC 4180) or JSON, streamed row by row to any writer.
//!
//! CSV: UTF-8 without a byte-order mark, the header [`CSV_HEADER`] first, every record ended by
//! CRLF. A field is quoted when it holds a comma, a double quote, CR or LF, with each double
//! quote inside doubled; no other field is quoted. Absent values (a scheme-wide row's partner,
//! a budget row's activity) are empty fields. Numbers are plain decimal integers. An activity
//! (typed by a partner) is written as [`crate::csv::text`] makes it safe for a spreadsheet.

use std::io::{self, Write};

use super::{Report, Row};

/// The CSV header: the column order, fixed.
pub const CSV_HEADER: &str = "period,section,partner,activity,figure,value\r\n";

/// Writes `report` as CSV to `out`. Wrap an unbuffered writer in a `BufWriter`.
pub fn write_csv(report: &Report, out: &mut impl Write) -> io::Result<()> {
    out.write_all(CSV_HEADER.as_bytes())?;
    let mut line = String::new();
    for row in &report.rows {
        line.clear();
        csv_record(row, &mut line);
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Appends `row` as one CSV record, CRLF included.
fn csv_record(row: &Row, line: &mut String) {
    use std::fmt::Write as _;
    crate::csv::push_field(line, &row.period);
    line.push(',');
    line.push_str(row.section.as_str());
    line.push(',');
    if let Some(partner) = row.partner {
        // Writing to a String cannot fail.
        let _ = write!(line, "{partner}");
    }
    line.push(',');
    if let Some(activity) = &row.activity {
        crate::csv::push_field(line, &crate::csv::text(activity));
    }
    line.push(',');
    line.push_str(row.figure.as_str());
    let _ = write!(line, ",{}\r\n", row.value);
}

/// Writes `report` as a JSON array of row objects, one per line, to `out`:
/// `{"period":…,"section":…,"partner":…|null,"activity":…|null,"figure":…,"value":…}`.
pub fn write_json(report: &Report, out: &mut impl Write) -> io::Result<()> {
    out.write_all(b"[")?;
    for (i, row) in report.rows.iter().enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *out, row).map_err(io::Error::other)?;
    }
    out.write_all(b"\n]\n")
}

#[cfg(test)]
mod tests {
    use super::super::{Figure, Section};
    use super::*;
    use uuid::Uuid;

    fn row(activity: Option<&str>) -> Row {
        Row {
            period: "2026-11".into(),
            section: Section::Earn,
            partner: Some(Uuid::from_u128(0xab)),
            activity: activity.map(str::to_owned),
            figure: Figure::GivenMinutes,
            value: -90,
        }
    }

    fn csv(rows: Vec<Row>) -> String {
        let mut out = Vec::new();
        write_csv(&Report { rows }, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_is_rfc_4180() {
        let text = csv(vec![
            row(Some("lunch club")),
            row(Some("tea, \"cake\"")),
            row(Some("a\r\nb")),
            row(None),
        ]);
        let partner = "00000000-0000-0000-0000-0000000000ab";
        let expected = format!(
            "{CSV_HEADER}\
             2026-11,earn,{partner},lunch club,given_minutes,-90\r\n\
             2026-11,earn,{partner},\"tea, \"\"cake\"\"\",given_minutes,-90\r\n\
             2026-11,earn,{partner},\"a\r\nb\",given_minutes,-90\r\n\
             2026-11,earn,{partner},,given_minutes,-90\r\n"
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn csv_keeps_utf8() {
        assert!(csv(vec![row(Some("café für Kinder"))]).contains(",café für Kinder,"));
    }

    #[test]
    fn json_is_an_array_of_rows() {
        let mut out = Vec::new();
        let report = Report {
            rows: vec![row(Some("x")), row(None)],
        };
        write_json(&report, &mut out).unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed[0]["figure"], "given_minutes");
        assert_eq!(parsed[0]["section"], "earn");
        assert_eq!(parsed[1]["activity"], serde_json::Value::Null);
        assert_eq!(parsed[1]["value"], -90);
        let mut empty = Vec::new();
        write_json(&Report::default(), &mut empty).unwrap();
        assert_eq!(empty, b"[\n]\n");
    }
}
