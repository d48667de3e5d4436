//! What the commands print: a verdict on the first line (`VALID` or `INVALID`), then the details.

use std::fmt::Write as _;

use timecredits_domain::MINUTES_PER_CREDIT;
use timecredits_tlog::checkpoint::Checkpoint;

use crate::b64;
use crate::proofs::Receipt;
use crate::replay::Summary;
use crate::verify::Report;
use crate::{Failure, Verified};

/// The text `verify` prints.
pub fn report(report: &Report) -> String {
    let h = &report.header;
    let mut out = String::new();
    let range = match h.size - h.from {
        0 => "no entries".to_owned(),
        n => format!("entries {} to {} ({n})", h.from, h.size - 1),
    };
    match &report.failure {
        None => {
            let _ = writeln!(out, "VALID: export of {}, {range}", h.origin);
        }
        Some(failure) => {
            let _ = writeln!(out, "INVALID: {failure}");
            let _ = writeln!(
                out,
                "  export of {}, {range}; {} entries checked before this failure",
                h.origin, report.checked
            );
        }
    }
    if let Some(checkpoint) = &report.checkpoint {
        let _ = writeln!(out, "  {}", signed(checkpoint));
    }
    for rotation in &report.rotations {
        let _ = writeln!(
            out,
            "  signing key handed over at entry {} to {}",
            rotation.seq, rotation.vkey
        );
    }
    if let Some(size) = report.extends {
        let _ = writeln!(
            out,
            "  extends the kept checkpoint of size {size}: nothing before it was changed"
        );
    }
    match (&report.summary, report.failure.is_none()) {
        (Some(summary), _) => out.push_str(&totals(summary)),
        (None, true) => {
            let _ = writeln!(
                out,
                "  rules not replayed: the export starts at entry {}, and a replay needs the whole history",
                h.from
            );
        }
        (None, false) => {}
    }
    out
}

fn signed(checkpoint: &Checkpoint) -> String {
    format!(
        "signed checkpoint: origin {}, size {}, root {}",
        checkpoint.origin,
        checkpoint.size,
        b64(&checkpoint.root)
    )
}

fn totals(s: &Summary) -> String {
    let a = &s.accounts;
    let mut out = format!(
        "  accounts: {} (programme {}, budgets {}, venues {}, members {}; closed {})\n",
        a.total, a.programme, a.budget, a.venue, a.member, a.closed
    );
    let m = &s.moved;
    for (what, minutes) in [
        ("allocated", m.allocated),
        ("earned", m.earned),
        ("spent", m.spent),
        ("gifted", m.gifted),
        ("reversed", m.reversed),
        ("retired", m.retired),
        ("expired", m.expired),
    ] {
        let _ = writeln!(out, "  credits {what:<9} {}", credits(i128::from(minutes)));
    }
    let h = &s.holdings;
    let _ = writeln!(out, "  in budgets        {}", credits(h.budgets));
    let _ = writeln!(out, "  in wallets        {}", credits(h.wallets));
    let _ = writeln!(out, "  at venues         {}", credits(h.venues));
    let _ = writeln!(out, "  in circulation    {}", credits(s.in_circulation));
    out.push_str("  balances sum to zero; no wallet, budget or venue ever went below zero\n");
    out
}

/// Minutes as credits (hours) and minutes.
pub fn credits(minutes: i128) -> String {
    let per = i128::from(MINUTES_PER_CREDIT);
    match minutes % per {
        0 => format!("{} credits ({minutes} min)", minutes / per),
        rest => format!(
            "{} credits {} min ({minutes} min)",
            minutes / per,
            rest.abs()
        ),
    }
}

/// The text `receipt` prints.
pub fn receipt(result: &Result<Receipt, Failure>) -> String {
    match result {
        Ok(r) => format!(
            "VALID: entry {} is in the log\n  {}\n  entry: {}\n",
            r.entry.seq,
            signed(&r.checkpoint),
            String::from_utf8_lossy(&r.bytes)
        ),
        Err(failure) => format!("INVALID: {failure}\n"),
    }
}

/// The text `consistency` prints.
pub fn consistency(result: &Result<(Verified, Verified), Failure>) -> String {
    match result {
        Ok((old, new)) => format!(
            "VALID: the log of size {} extends the log of size {}: nothing before it was changed\n  old {}\n  new {}\n",
            new.checkpoint.size,
            old.checkpoint.size,
            signed(&old.checkpoint),
            signed(&new.checkpoint)
        ),
        Err(failure) => format!("INVALID: {failure}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::credits;

    #[test]
    fn minutes_read_as_credits_and_minutes() {
        assert_eq!(credits(0), "0 credits (0 min)");
        assert_eq!(credits(120), "2 credits (120 min)");
        assert_eq!(credits(135), "2 credits 15 min (135 min)");
        assert_eq!(credits(45), "0 credits 45 min (45 min)");
    }
}
