//! A fast path for [`Entry::decode`]: one forward scan that recognises canonical entry bytes
//! directly, without building a JSON tree and re-encoding it.
//!
//! Decoding is the bulk of the work when an auditor verifies an export of millions of entries,
//! and the general path (parse with `serde_json`, rebuild the entry, re-encode it and compare the
//! bytes) costs a few microseconds per entry. This scanner matches the canonical layout field by
//! field and builds the entry through the same validating constructors.
//!
//! It only has to be **sound**, not complete: whatever it accepts must be exactly what the
//! general path accepts, with the same result; anything unusual (an escaped character in a string,
//! a leap second, a year outside `0000`..=`9999`, a missing or misplaced field, a value a
//! constructor refuses) makes it give up, and [`Entry::decode`] falls back to the general path,
//! which then decides and explains. So the definition of the encoding stays the general path's;
//! the differential tests in `entry.rs` check the two agree.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use uuid::Uuid;

use crate::amount::Minutes;
use crate::entry::{
    AccountId, AccountKind, Details, Entry, EntryBody, EntryKind, IdempotencyKey, Movement,
    ShortText,
};

/// Recognises canonical entry bytes, or returns `None` to leave the decision to the general path.
pub(crate) fn entry(bytes: &[u8]) -> Option<Entry> {
    // Checking UTF-8 once for the whole line lets every string below be cut out without another
    // check; the general path refuses invalid UTF-8 too.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut c = Cursor { s: text, i: 0 };
    c.lit(b"{\"seq\":")?;
    let seq = c.uint()?;
    c.lit(b",\"id\":")?;
    let id = c.uuid()?;
    c.lit(b",\"kind\":")?;
    let kind = c.kind()?;
    c.lit(b",\"recorded\":")?;
    let recorded = c.time()?;
    c.lit(b",\"actor\":")?;
    let actor = c.uuid()?;
    c.lit(b",\"key\":")?;
    let key = IdempotencyKey::new(c.string()?).ok()?;
    c.lit(b",\"part\":")?;
    let part = u32::try_from(c.uint()?).ok()?;
    let body = match kind.movement() {
        None => {
            c.lit(b",\"account\":")?;
            let account = AccountId(c.uuid()?);
            if kind == EntryKind::Open {
                c.lit(b",\"account_kind\":")?;
                let account_kind = c.account_kind()?;
                let owner = if c.opt(b",\"owner\":") {
                    Some(c.uuid()?)
                } else {
                    None
                };
                if account_kind.has_owner() != owner.is_some() {
                    return None;
                }
                EntryBody::Open {
                    account,
                    account_kind,
                    owner,
                }
            } else {
                EntryBody::Close { account }
            }
        }
        Some(movement) => {
            c.lit(b",\"debit\":")?;
            let debit = AccountId(c.uuid()?);
            c.lit(b",\"credit\":")?;
            let credit = AccountId(c.uuid()?);
            c.lit(b",\"minutes\":")?;
            let minutes = Minutes::new(c.uint()?).ok()?;
            c.lit(b",\"effective\":")?;
            let effective = c.date()?;
            let reverses = c.opt_uint(b",\"reverses\":")?;
            let activity = c.opt_text(b",\"activity\":", "activity")?;
            let reference = c.opt_text(b",\"reference\":", "reference")?;
            let adults = c.opt_u32(b",\"adults\":")?;
            let children = c.opt_u32(b",\"children\":")?;
            let expiry_months = c.opt_u32(b",\"expiry_months\":")?;
            let details = Details {
                activity,
                reference,
                adults,
                children,
                expiry_months,
            };
            EntryBody::Move(
                Movement::new(
                    movement, debit, credit, minutes, effective, reverses, details,
                )
                .ok()?,
            )
        }
    };
    c.lit(b"}")?;
    if c.i != text.len() {
        return None;
    }
    Some(Entry {
        seq,
        id,
        recorded,
        actor,
        key,
        part,
        body,
    })
}

/// A position in the text being scanned. Every method consumes what it recognises and returns
/// `None` (giving up) otherwise.
struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.s.as_bytes()[self.i..]
    }

    fn lit<const N: usize>(&mut self, lit: &[u8; N]) -> Option<()> {
        self.opt(lit).then_some(())
    }

    /// Consumes `lit` if it comes next. The length is a constant, so the comparison compiles to
    /// a few word compares rather than a call to `memcmp`.
    fn opt<const N: usize>(&mut self, lit: &[u8; N]) -> bool {
        let found = self.rest().get(..N) == Some(lit.as_slice());
        if found {
            self.i += N;
        }
        found
    }

    /// A decimal integer as `serde_json` writes one: digits, no sign, no leading zero.
    fn uint(&mut self) -> Option<u64> {
        let digits = self
            .rest()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = &self.rest()[..digits];
        if digits == 0 || (digits > 1 && text[0] == b'0') {
            return None;
        }
        let mut value: u64 = 0;
        for &d in text {
            value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.i += digits;
        Some(value)
    }

    /// `lit` and an integer, if `lit` comes next. The outer `None` gives up; the inner one means
    /// the field is absent.
    fn opt_uint<const N: usize>(&mut self, lit: &[u8; N]) -> Option<Option<u64>> {
        if self.opt(lit) {
            self.uint().map(Some)
        } else {
            Some(None)
        }
    }

    fn opt_u32<const N: usize>(&mut self, lit: &[u8; N]) -> Option<Option<u32>> {
        match self.opt_uint(lit)? {
            Some(v) => u32::try_from(v).ok().map(Some),
            None => Some(None),
        }
    }

    /// A string that `serde_json` writes verbatim: no quote, backslash or control character
    /// inside. Strings that needed escaping are left to the general path.
    fn string(&mut self) -> Option<&'a str> {
        let rest = self.rest();
        if rest.first() != Some(&b'"') {
            return None;
        }
        let mut len = 0;
        loop {
            match *rest.get(1 + len)? {
                b'"' => break,
                b'\\' | 0..0x20 => return None,
                _ => len += 1,
            }
        }
        let start = self.i + 1;
        self.i = start + len + 1;
        Some(&self.s[start..start + len])
    }

    fn opt_text<const N: usize>(
        &mut self,
        lit: &[u8; N],
        field: &'static str,
    ) -> Option<Option<ShortText>> {
        if self.opt(lit) {
            ShortText::new(field, self.string()?).ok().map(Some)
        } else {
            Some(None)
        }
    }

    /// The `N` characters of a fixed-width string (a UUID, a date, a time), quotes included in
    /// the check but not in the result. Those values never need escaping, so the closing quote
    /// must come exactly `N` characters on.
    fn fixed<const N: usize>(&mut self) -> Option<&'a [u8; N]> {
        let quoted = self.rest().get(..N + 2)?;
        if quoted[0] != b'"' || quoted[N + 1] != b'"' {
            return None;
        }
        self.i += N + 2;
        quoted[1..=N].try_into().ok()
    }

    /// A UUID in the only form the encoder writes: lowercase and hyphenated.
    fn uuid(&mut self) -> Option<Uuid> {
        /// Where each of the 16 bytes' two hex digits start.
        const PAIRS: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
        let text = self.fixed::<36>()?;
        if [8, 13, 18, 23].iter().any(|&i| text[i] != b'-') {
            return None;
        }
        let mut bytes = [0u8; 16];
        // Any non-digit sets a high bit in `bad`; checking once at the end keeps the loop
        // branch-free.
        let mut bad = 0u8;
        for (byte, &at) in bytes.iter_mut().zip(&PAIRS) {
            let (hi, lo) = (HEX[usize::from(text[at])], HEX[usize::from(text[at + 1])]);
            bad |= hi | lo;
            *byte = hi << 4 | lo;
        }
        (bad & 0xf0 == 0).then(|| Uuid::from_bytes(bytes))
    }

    fn kind(&mut self) -> Option<EntryKind> {
        let name = self.string()?;
        EntryKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    fn account_kind(&mut self) -> Option<AccountKind> {
        let name = self.string()?;
        [
            AccountKind::Programme,
            AccountKind::Budget,
            AccountKind::Venue,
            AccountKind::Member,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

    /// A date as `YYYY-MM-DD`, the encoder's form for years `0000`..=`9999`.
    fn date(&mut self) -> Option<NaiveDate> {
        ymd(self.fixed::<10>()?)
    }

    /// A recorded time as `YYYY-MM-DDTHH:MM:SS.ffffffZ`: the encoder's form (RFC 3339, UTC,
    /// microseconds) for years `0000`..=`9999`, leap seconds aside.
    fn time(&mut self) -> Option<DateTime<Utc>> {
        let text = self.fixed::<27>()?;
        if text[10] != b'T' || text[26] != b'Z' {
            return None;
        }
        let day = ymd(&text[..10])?;
        let [h, m, s] = [11, 14, 17].map(|at| digits(&text[at..at + 2]));
        if text[13] != b':' || text[16] != b':' || text[19] != b'.' {
            return None;
        }
        let micros = digits(&text[20..26])?;
        let time = NaiveTime::from_hms_micro_opt(h?, m?, s?, micros)?;
        Some(day.and_time(time).and_utc())
    }
}

/// The value of each lowercase hex digit, and 0xff for every other byte.
const HEX: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Parses `YYYY-MM-DD`.
fn ymd(text: &[u8]) -> Option<NaiveDate> {
    if text[4] != b'-' || text[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(&text[..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(&text[5..7])?, digits(&text[8..10])?)
}

/// Parses a fixed number of ASCII digits.
fn digits(text: &[u8]) -> Option<u32> {
    text.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}
