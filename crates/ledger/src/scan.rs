//! Reading committed entries in sequence order, front to back through the journal: what a report
//! or any other pass over the whole log uses instead of [`Ledger::entry`] per entry (a state
//! lookup and a small read each).

use std::ops::Range;

use timecredits_domain::Entry;

use crate::journal::JournalScan;
use crate::{Ledger, LedgerError};

impl Ledger {
    /// The committed entries in `range`, in order, read from the journal front to back in large
    /// reads. The range ends at the ledger's size when the call is made (see [`Entries::end`]):
    /// entries committed meanwhile are not read, so a scan sees exactly the first `end` entries
    /// whatever the writer does. Every record's checksum is checked and every entry decoded; a
    /// damaged record is an error naming its offset, and the iterator ends after an error.
    pub fn entries(&self, range: Range<u64>) -> Result<Entries, LedgerError> {
        let end = range.end.min(self.size()?);
        let start = range.start.min(end);
        let store = self.store_for_checks()?;
        let position = |seq: u64| {
            store
                .entry_pos(seq)?
                .ok_or_else(|| crate::ledger::missing(seq))
        };
        let (from, limit) = if start == end {
            (0, 0)
        } else {
            (position(start)?.offset, position(end - 1)?.end())
        };
        Ok(Entries {
            scan: self.journal_for_checks().scan(from, limit)?,
            next: start,
            end,
            failed: false,
        })
    }
}

/// The iterator of [`Ledger::entries`].
#[derive(Debug)]
pub struct Entries {
    scan: JournalScan,
    /// The sequence number the next record must hold.
    next: u64,
    end: u64,
    failed: bool,
}

impl Entries {
    /// Where the scan stops: the ledger's size when it began, or the range's end if smaller.
    pub fn end(&self) -> u64 {
        self.end
    }

    fn read(&mut self) -> Result<Option<Entry>, LedgerError> {
        let Some((pos, payload)) = self.scan.next_record()? else {
            return match self.next {
                n if n == self.end => Ok(None),
                n => Err(LedgerError::Corrupt(format!(
                    "the journal's committed records end before entry {n} of {}",
                    self.end
                ))),
            };
        };
        let entry = Entry::decode(payload)
            .map_err(|e| LedgerError::Corrupt(format!("entry at offset {}: {e}", pos.offset)))?;
        if entry.seq != self.next {
            return Err(LedgerError::Corrupt(format!(
                "the record at offset {} holds entry {} where entry {} belongs",
                pos.offset, entry.seq, self.next
            )));
        }
        self.next += 1;
        Ok(Some(entry))
    }
}

impl Iterator for Entries {
    type Item = Result<Entry, LedgerError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let read = self.read();
        self.failed = read.is_err();
        read.transpose()
    }
}
