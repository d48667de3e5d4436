//! Impact reports: figures per period, partner and activity, derived from the entries alone.
//!
//! The ledger (for the service) and the auditor's replay of a verified export (for
//! `timecredits-audit report`) both feed the same entries, in log order, to a [`Tally`], so a
//! report and its re-derivation are the same function of the same ledger prefix: their CSV is
//! byte for byte the same. `docs/reports.md` defines every figure; in short:
//!
//! - Every movement is dated by one day (see [`DateBasis`]): by default its `effective` date, the
//!   day the time was given or used as the partner stated it; or the local day of its `recorded`
//!   time in a [`Zone`].
//! - A reversal counts on its own date, as separate `reversed_minutes` and `reversals` figures
//!   against the partner and activity of the movement it reverses; a report never revises an
//!   original's period for a later reversal.
//! - Flows (minutes, counts) add up across adjacent date ranges; stocks (`left_minutes`,
//!   `circulation_minutes`, `issued_minutes`) are balances at the end of a period and do not;
//!   `members_active` counts distinct members, so it adds up across neither.
//!
//! # Method: a fast scan
//! One pass over the entries, with no state kept between reports: per account its kind, owner
//! and first earn; per movement 16 bytes (its kind, accounts and activity) so that a reversal
//! finds its original; and one cell of figures per period, section, partner and activity that
//! occurs. Memory is `O(accounts + entries)`, and `members_active` needs a set of members per
//! earn cell: at most one element per earn entry in the range.
//!
//! # Invariants
//! 1. Every figure is an exact integer (minutes or a count); sums saturate at `i64::MAX`, which
//!    takes over 10^11 movements of the largest amount.
//! 2. Rows come in one order: period, section, partner (none first, then by UUID), activity
//!    (none first, then by its UTF-8 bytes), figure in [`Section::figures`] order.
//! 3. Nothing here panics on any sequence of entries; entries that no ledger could have
//!    committed (a movement on an account never opened, a reversal of no movement, a gap in the
//!    sequence numbers) make [`Tally::finish`] return a [`ReportError`].

mod bands;
mod period;
mod write;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use serde::Serialize;
use uuid::Uuid;

use crate::entry::{AccountId, AccountKind, Entry, EntryBody, MovementKind};

pub use bands::{age_bands, write_band_csv, Band, BandRow, BAND_CSV_HEADER, BAND_FIGURES};
pub use period::{Period, Zone};
pub use write::{write_csv, write_json, CSV_HEADER};

/// Which of an entry's dates places a movement in a period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DateBasis {
    /// The movement's `effective` date: the day the time was given or used. A calendar date as
    /// the partner stated it, so the zone does not shift it. A backdated entry recorded later
    /// changes the figures of the (earlier) period it is dated in.
    #[default]
    Effective,
    /// The local day, in the report's zone, of the entry's `recorded` time. Entries are appended
    /// in recorded order, so the figures of a period that has ended never change.
    Recorded,
}

impl std::str::FromStr for DateBasis {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "effective" => Ok(DateBasis::Effective),
            "recorded" => Ok(DateBasis::Recorded),
            _ => Err(format!("unknown date basis {s:?}: effective or recorded")),
        }
    }
}

/// What to report on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportSpec {
    /// The length of the periods.
    pub period: Period,
    /// Which date places a movement in a period.
    pub basis: DateBasis,
    /// The zone of local days, for [`DateBasis::Recorded`].
    pub zone: Zone,
    /// The first day reported on (inclusive).
    pub from: Option<NaiveDate>,
    /// The last day reported on (inclusive). Stocks are balances after this day at the latest.
    pub to: Option<NaiveDate>,
    /// Only the rows of this partner (the owner of budget and venue accounts): the `earn`,
    /// `budget` and `spend` sections. Scheme-wide sections are left out.
    pub partner: Option<Uuid>,
    /// Only the `earn` and `spend` rows of this activity (compared exactly).
    pub activity: Option<String>,
}

/// A group of figures, each row of a section with its own partner and activity columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// Time given: per earn partner and activity.
    Earn,
    /// An earn partner's budget: per partner.
    Budget,
    /// Credits redeemed: per venue's partner and activity.
    Spend,
    /// Gifts between members: scheme-wide.
    Gift,
    /// All reversals, whatever they reverse: scheme-wide.
    Reversal,
    /// The programme's allocations and retirements and the credit in circulation: scheme-wide.
    Scheme,
}

impl Section {
    /// The stable lowercase name, as in the `section` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Earn => "earn",
            Section::Budget => "budget",
            Section::Spend => "spend",
            Section::Gift => "gift",
            Section::Reversal => "reversal",
            Section::Scheme => "scheme",
        }
    }

    /// The figures of the section, in row order.
    pub fn figures(self) -> &'static [Figure] {
        use Figure::*;
        match self {
            Section::Earn => &[
                GivenMinutes,
                Earns,
                ReversedMinutes,
                Reversals,
                NetMinutes,
                MembersActive,
                MembersNew,
            ],
            Section::Budget => &[AllocatedMinutes, ReversedMinutes, UsedMinutes, LeftMinutes],
            Section::Spend => &[
                RedeemedMinutes,
                Visits,
                Adults,
                Children,
                ReversedMinutes,
                Reversals,
                NetMinutes,
            ],
            Section::Gift => &[GiftMinutes, Gifts, ReversedMinutes, Reversals],
            Section::Reversal => &[ReversedMinutes, Reversals],
            Section::Scheme => &[
                AllocatedMinutes,
                RetiredMinutes,
                ExpiredMinutes,
                CirculationMinutes,
                IssuedMinutes,
            ],
        }
    }

    /// Whether the section's rows are a partner's own (and name it).
    fn has_partner(self) -> bool {
        matches!(self, Section::Earn | Section::Budget | Section::Spend)
    }
}

/// One figure. `docs/reports.md` defines each; the doc comments here say what is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    /// Minutes of earn movements.
    GivenMinutes,
    /// Earn movements.
    Earns,
    /// Minutes of reversals of the section's movements (budget: of allocations).
    ReversedMinutes,
    /// Reversals of the section's movements.
    Reversals,
    /// The section's minutes less its reversed minutes; may be negative.
    NetMinutes,
    /// Distinct members credited by an earn.
    MembersActive,
    /// Members whose first earn ever is in this row.
    MembersNew,
    /// Minutes of spend movements.
    RedeemedMinutes,
    /// Spend movements.
    Visits,
    /// Adults in the parties of spend movements.
    Adults,
    /// Children in the parties of spend movements.
    Children,
    /// Minutes allocated from the programme to budgets.
    AllocatedMinutes,
    /// Earn minutes less reversed earn minutes, from the partner's budgets.
    UsedMinutes,
    /// Balance of the partner's budgets at the end of the period (a stock).
    LeftMinutes,
    /// Minutes of gifts.
    GiftMinutes,
    /// Gift movements.
    Gifts,
    /// Minutes retired from venues to the programme.
    RetiredMinutes,
    /// Sum of all member balances at the end of the period (a stock).
    CirculationMinutes,
    /// Minus the programme's balance at the end of the period: every credit that exists, in
    /// budgets, wallets and venues (a stock).
    IssuedMinutes,
    /// Minutes expired from unused wallets to the programme (`expire`).
    ExpiredMinutes,
}

impl Figure {
    /// How many figures there are.
    const COUNT: usize = 20;

    /// The stable lowercase name, as in the `figure` column.
    pub fn as_str(self) -> &'static str {
        use Figure::*;
        match self {
            GivenMinutes => "given_minutes",
            Earns => "earns",
            ReversedMinutes => "reversed_minutes",
            Reversals => "reversals",
            NetMinutes => "net_minutes",
            MembersActive => "members_active",
            MembersNew => "members_new",
            RedeemedMinutes => "redeemed_minutes",
            Visits => "visits",
            Adults => "adults",
            Children => "children",
            AllocatedMinutes => "allocated_minutes",
            UsedMinutes => "used_minutes",
            LeftMinutes => "left_minutes",
            GiftMinutes => "gift_minutes",
            Gifts => "gifts",
            RetiredMinutes => "retired_minutes",
            CirculationMinutes => "circulation_minutes",
            IssuedMinutes => "issued_minutes",
            ExpiredMinutes => "expired_minutes",
        }
    }

    /// Whether the figure of a period is the sum of its figures over any split of the period's
    /// days: true of flows, false of stocks and of the distinct count `members_active`.
    pub fn is_additive(self) -> bool {
        !matches!(
            self,
            Figure::MembersActive
                | Figure::LeftMinutes
                | Figure::CirculationMinutes
                | Figure::IssuedMinutes
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One row of a report.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Row {
    /// The period's label ([`Period::label`]).
    pub period: String,
    /// The section.
    pub section: Section,
    /// The partner (owner of the budget or venue accounts) for partner sections.
    pub partner: Option<Uuid>,
    /// The activity, for `earn` and `spend` rows.
    pub activity: Option<String>,
    /// What is counted.
    pub figure: Figure,
    /// The exact figure: minutes or a count.
    pub value: i64,
}

/// A computed report: its rows, in the order of the module's invariant 2.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The rows.
    pub rows: Vec<Row>,
}

/// Entries no ledger could have committed, found while tallying.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ReportError {
    /// An entry's sequence number is not the one after the previous entry's.
    #[error("entry {found} follows entry {previous}: the entries must be consecutive")]
    Sequence {
        /// The previous entry's sequence number.
        previous: u64,
        /// The sequence number found.
        found: u64,
    },
    /// A movement names an account no earlier `open` created, or one of the wrong kind.
    #[error(
        "entry {seq} moves credits to or from an account it cannot (unknown or of the wrong kind)"
    )]
    Account {
        /// The movement's sequence number.
        seq: u64,
    },
    /// More accounts or distinct activities than 32-bit numbers count.
    #[error("more than {} accounts or activities: beyond what a report counts", u32::MAX - 1)]
    TooLarge,
    /// A reversal names no earlier movement.
    #[error("entry {seq} reverses entry {reverses}, which is not an earlier movement")]
    Reversal {
        /// The reversal's sequence number.
        seq: u64,
        /// The entry it names.
        reverses: u64,
    },
}

/// Computes the report of `entries` (in log order, from the first) for `spec`.
pub fn report<E: std::borrow::Borrow<Entry>>(
    entries: impl IntoIterator<Item = E>,
    spec: &ReportSpec,
) -> Result<Report, ReportError> {
    let mut tally = Tally::new(spec.clone());
    for entry in entries {
        tally.add(entry.borrow());
    }
    tally.finish()
}

/// "No activity": the activity index of rows without one.
const NO_ACTIVITY: u32 = u32::MAX;

/// The 32-bit number of the next account or activity; `u32::MAX` stays free for
/// [`NO_ACTIVITY`].
fn number(len: usize) -> Result<u32, ReportError> {
    u32::try_from(len)
        .ok()
        .filter(|&i| i < u32::MAX)
        .ok_or(ReportError::TooLarge)
}

/// What the tally knows of an account.
#[derive(Clone)]
struct Account {
    kind: AccountKind,
    /// The owner of a budget or venue.
    owner: Option<Uuid>,
    /// For a member: the day, partner and activity of its earliest-dated earn (the first in log
    /// order among earns of that day).
    first_earn: Option<(NaiveDate, Option<Uuid>, u32)>,
}

/// What a reversal needs of the movement it reverses: 16 bytes.
#[derive(Clone, Copy)]
struct Moved {
    kind: MovementKind,
    debit: u32,
    credit: u32,
    activity: u32,
}

/// The key of a cell: period start, section, partner, activity index.
type CellKey = (NaiveDate, Section, Option<Uuid>, u32);

/// The figures of one row group, and for earn cells the members credited.
#[derive(Clone, Default)]
struct Cell {
    values: [i64; Figure::COUNT],
    members: HashSet<u32>,
}

impl Cell {
    fn add(&mut self, figure: Figure, amount: i64) {
        let value = &mut self.values[figure.index()];
        *value = value.saturating_add(amount);
    }
}

/// A stock series: a partner's budgets ([`Figure::LeftMinutes`]), or the scheme's
/// ([`Figure::CirculationMinutes`], [`Figure::IssuedMinutes`]).
type StockKey = (Figure, Option<Uuid>);

/// The report being computed: feed it every entry in log order with [`Tally::add`], then call
/// [`Tally::finish`], or [`Tally::report`] for the report so far of a tally kept to take more.
pub struct Tally {
    spec: ReportSpec,
    accounts: Vec<Account>,
    index: HashMap<AccountId, u32>,
    activities: Vec<String>,
    activity_index: HashMap<String, u32>,
    /// Per entry since `first`, the movement it made (`None` for other entries).
    moved: Vec<Option<Moved>>,
    /// The sequence number of the first entry.
    first: Option<u64>,
    cells: HashMap<CellKey, Cell>,
    /// Changes of each stock per period start, up to `spec.to`.
    stocks: HashMap<StockKey, BTreeMap<NaiveDate, i64>>,
    error: Option<ReportError>,
}

impl Tally {
    /// An empty tally for `spec`.
    pub fn new(spec: ReportSpec) -> Tally {
        Tally {
            spec,
            accounts: Vec::new(),
            index: HashMap::new(),
            activities: Vec::new(),
            activity_index: HashMap::new(),
            moved: Vec::new(),
            first: None,
            cells: HashMap::new(),
            stocks: HashMap::new(),
            error: None,
        }
    }

    /// Adds the next entry of the log. After an entry no ledger could have committed, the tally
    /// ignores everything and [`Tally::finish`] says why.
    pub fn add(&mut self, entry: &Entry) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.try_add(entry) {
            self.error = Some(e);
        }
    }

    fn try_add(&mut self, entry: &Entry) -> Result<(), ReportError> {
        let first = *self.first.get_or_insert(entry.seq);
        let expected = first.saturating_add(self.moved.len() as u64);
        if entry.seq != expected {
            return Err(ReportError::Sequence {
                previous: expected.saturating_sub(1),
                found: entry.seq,
            });
        }
        let m = match &entry.body {
            EntryBody::Open {
                account,
                account_kind,
                owner,
            } => {
                let i = number(self.accounts.len())?;
                self.accounts.push(Account {
                    kind: *account_kind,
                    owner: *owner,
                    first_earn: None,
                });
                self.index.insert(*account, i);
                self.moved.push(None);
                return Ok(());
            }
            EntryBody::Close { .. } | EntryBody::Key(_) => {
                self.moved.push(None);
                return Ok(());
            }
            EntryBody::Move(m) => m,
        };
        let seq = entry.seq;
        let (debit, credit) = match (self.index.get(&m.debit), self.index.get(&m.credit)) {
            (Some(&d), Some(&c)) => (d, c),
            _ => return Err(ReportError::Account { seq }),
        };
        let activity = match &m.details.activity {
            None => NO_ACTIVITY,
            Some(text) => self.activity(text.as_str())?,
        };
        self.moved.push(Some(Moved {
            kind: m.kind,
            debit,
            credit,
            activity,
        }));
        let day = match self.spec.basis {
            DateBasis::Effective => m.effective,
            DateBasis::Recorded => self.spec.zone.day(&entry.recorded),
        };
        // An earn's partner; a member's first earn counts whatever the date range.
        let mut earn_partner = None;
        if m.kind == MovementKind::Earn {
            let partner = self.partner_of(debit, AccountKind::Budget, seq)?;
            let member = self.member(credit, seq)?;
            if member.first_earn.is_none_or(|(first, ..)| day < first) {
                member.first_earn = Some((day, partner, activity));
            }
            earn_partner = partner;
        }
        if self.spec.to.is_some_and(|to| day > to) {
            return Ok(());
        }
        let start = self.spec.period.start(day);
        let minutes = m.minutes.as_balance();
        self.stocks_move(start, debit, credit, minutes);
        if self.spec.from.is_some_and(|from| day < from) {
            return Ok(());
        }
        use Figure::*;
        match m.kind {
            MovementKind::Earn => {
                let partner = earn_partner;
                let cell = self.cell(start, Section::Earn, partner, activity);
                cell.add(GivenMinutes, minutes);
                cell.add(Earns, 1);
                cell.add(NetMinutes, minutes);
                cell.members.insert(credit);
                let budget = self.cell(start, Section::Budget, partner, NO_ACTIVITY);
                budget.add(UsedMinutes, minutes);
            }
            MovementKind::Spend => {
                let partner = self.partner_of(credit, AccountKind::Venue, seq)?;
                let cell = self.cell(start, Section::Spend, partner, activity);
                cell.add(RedeemedMinutes, minutes);
                cell.add(Visits, 1);
                cell.add(Adults, i64::from(m.details.adults.unwrap_or(0)));
                cell.add(Children, i64::from(m.details.children.unwrap_or(0)));
                cell.add(NetMinutes, minutes);
            }
            MovementKind::Gift => {
                let cell = self.cell(start, Section::Gift, None, NO_ACTIVITY);
                cell.add(GiftMinutes, minutes);
                cell.add(Gifts, 1);
            }
            MovementKind::Allocate => {
                let partner = self.partner_of(credit, AccountKind::Budget, seq)?;
                self.cell(start, Section::Budget, partner, NO_ACTIVITY)
                    .add(AllocatedMinutes, minutes);
                self.cell(start, Section::Scheme, None, NO_ACTIVITY)
                    .add(AllocatedMinutes, minutes);
            }
            MovementKind::Retire => {
                self.cell(start, Section::Scheme, None, NO_ACTIVITY)
                    .add(RetiredMinutes, minutes);
            }
            MovementKind::Expire => {
                self.cell(start, Section::Scheme, None, NO_ACTIVITY)
                    .add(ExpiredMinutes, minutes);
            }
            MovementKind::Reverse => {
                let reverses = m.reverses.unwrap_or(seq);
                let original = reverses
                    .checked_sub(first)
                    .filter(|_| reverses < seq)
                    .and_then(|i| self.moved.get(usize::try_from(i).ok()?).copied().flatten())
                    .ok_or(ReportError::Reversal { seq, reverses })?;
                let reversal = self.cell(start, Section::Reversal, None, NO_ACTIVITY);
                reversal.add(ReversedMinutes, minutes);
                reversal.add(Reversals, 1);
                let (section, partner) = match original.kind {
                    MovementKind::Earn => {
                        let partner = self.partner_of(original.debit, AccountKind::Budget, seq)?;
                        self.cell(start, Section::Budget, partner, NO_ACTIVITY)
                            .add(UsedMinutes, -minutes);
                        (Section::Earn, partner)
                    }
                    MovementKind::Spend => (
                        Section::Spend,
                        self.partner_of(original.credit, AccountKind::Venue, seq)?,
                    ),
                    MovementKind::Gift => (Section::Gift, None),
                    MovementKind::Allocate => (
                        Section::Budget,
                        self.partner_of(original.credit, AccountKind::Budget, seq)?,
                    ),
                    // Reversed retirements and expiries, and reversals (which the rules
                    // refuse), count in the reversal section only.
                    MovementKind::Retire | MovementKind::Expire | MovementKind::Reverse => {
                        return Ok(())
                    }
                };
                let cell = self.cell(start, section, partner, original.activity);
                cell.add(ReversedMinutes, minutes);
                if section != Section::Budget {
                    cell.add(Reversals, 1);
                    if section != Section::Gift {
                        cell.add(NetMinutes, -minutes);
                    }
                }
            }
        }
        Ok(())
    }

    /// The index of an activity's text, interned on first sight.
    fn activity(&mut self, text: &str) -> Result<u32, ReportError> {
        if let Some(&i) = self.activity_index.get(text) {
            return Ok(i);
        }
        let i = number(self.activities.len())?;
        self.activities.push(text.to_owned());
        self.activity_index.insert(text.to_owned(), i);
        Ok(i)
    }

    /// The owner of account `i`, which must be of `kind`.
    fn partner_of(&self, i: u32, kind: AccountKind, seq: u64) -> Result<Option<Uuid>, ReportError> {
        match self.accounts.get(i as usize) {
            Some(a) if a.kind == kind => Ok(a.owner),
            _ => Err(ReportError::Account { seq }),
        }
    }

    /// Account `i`, which must be a member's.
    fn member(&mut self, i: u32, seq: u64) -> Result<&mut Account, ReportError> {
        match self.accounts.get_mut(i as usize) {
            Some(a) if a.kind == AccountKind::Member => Ok(a),
            _ => Err(ReportError::Account { seq }),
        }
    }

    fn cell(
        &mut self,
        start: NaiveDate,
        section: Section,
        partner: Option<Uuid>,
        activity: u32,
    ) -> &mut Cell {
        self.cells
            .entry((start, section, partner, activity))
            .or_default()
    }

    /// Records what a movement of `minutes` from `debit` to `credit` in the period `start` does
    /// to the stocks.
    fn stocks_move(&mut self, start: NaiveDate, debit: u32, credit: u32, minutes: i64) {
        for (account, sign) in [(debit, -1), (credit, 1)] {
            let Some(a) = self.accounts.get(account as usize) else {
                continue;
            };
            let (key, delta) = match a.kind {
                AccountKind::Member => ((Figure::CirculationMinutes, None), minutes),
                AccountKind::Budget => ((Figure::LeftMinutes, a.owner), minutes),
                AccountKind::Programme => ((Figure::IssuedMinutes, None), -minutes),
                AccountKind::Venue => continue,
            };
            let change = self
                .stocks
                .entry(key)
                .or_default()
                .entry(start)
                .or_default();
            *change = change.saturating_add(sign * delta);
        }
    }

    /// The report of the entries added so far, as [`Tally::finish`] gives it, leaving the tally
    /// to take more: a report kept up to date adds only the entries after the last one. It
    /// copies what the report is made of (the accounts, the row groups, the stocks), not what
    /// only later entries need (a reversal's original, the indexes by id).
    pub fn report(&self) -> Result<Report, ReportError> {
        Tally {
            spec: self.spec.clone(),
            accounts: self.accounts.clone(),
            index: HashMap::new(),
            activities: self.activities.clone(),
            activity_index: HashMap::new(),
            moved: Vec::new(),
            first: self.first,
            cells: self.cells.clone(),
            stocks: self.stocks.clone(),
            error: self.error.clone(),
        }
        .finish()
    }

    /// The report, or why the entries could not come from a ledger.
    pub fn finish(mut self) -> Result<Report, ReportError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let in_range = |day: NaiveDate| {
            self.spec.from.is_none_or(|from| day >= from) && self.spec.to.is_none_or(|to| day <= to)
        };
        // Members new to the scheme, in the row of their first earn.
        let firsts: Vec<_> = self
            .accounts
            .iter()
            .filter_map(|a| a.first_earn)
            .filter(|(day, ..)| in_range(*day))
            .collect();
        for (day, partner, activity) in firsts {
            let start = self.spec.period.start(day);
            self.cell(start, Section::Earn, partner, activity)
                .add(Figure::MembersNew, 1);
        }
        // Stocks at the end of every period the report shows.
        let periods: Vec<NaiveDate> = {
            let mut p: Vec<_> = self.cells.keys().map(|k| k.0).collect();
            p.sort_unstable();
            p.dedup();
            p
        };
        for scheme in [Figure::CirculationMinutes, Figure::IssuedMinutes] {
            self.stocks.entry((scheme, None)).or_default();
        }
        let stocks = std::mem::take(&mut self.stocks);
        for ((figure, partner), changes) in stocks {
            let section = match figure {
                Figure::LeftMinutes => Section::Budget,
                _ => Section::Scheme,
            };
            // A partner's budget row appears once its budgets have moved; the scheme's always.
            let shown_from = match section {
                Section::Budget => changes.keys().next().copied(),
                _ => Some(NaiveDate::MIN),
            };
            let mut changes = changes.into_iter().peekable();
            let mut balance: i64 = 0;
            for &period in &periods {
                while let Some((_, change)) = changes.next_if(|(start, _)| *start <= period) {
                    balance = balance.saturating_add(change);
                }
                if shown_from.is_some_and(|first| first <= period) {
                    self.cell(period, section, partner, NO_ACTIVITY).values[figure.index()] =
                        balance;
                }
            }
        }
        Ok(self.rows())
    }

    /// The rows of the cells, filtered and in order.
    fn rows(self) -> Report {
        let Tally {
            spec,
            activities,
            cells,
            ..
        } = self;
        let text = |i: u32| activities.get(i as usize).map(String::as_str);
        let mut cells: Vec<_> = cells
            .into_iter()
            .filter(|((_, section, partner, activity), _)| {
                let partner_ok = spec
                    .partner
                    .is_none_or(|p| section.has_partner() && *partner == Some(p));
                let activity_ok = spec.activity.as_deref().is_none_or(|want| {
                    matches!(section, Section::Earn | Section::Spend)
                        && text(*activity) == Some(want)
                });
                partner_ok && activity_ok
            })
            .collect();
        cells.sort_unstable_by(|(a, _), (b, _)| {
            (a.0, a.1, a.2, text(a.3)).cmp(&(b.0, b.1, b.2, text(b.3)))
        });
        let mut rows = Vec::new();
        for ((start, section, partner, activity), cell) in cells {
            let period = spec.period.label(start);
            for &figure in section.figures() {
                let value = match figure {
                    Figure::MembersActive => cell.members.len() as i64,
                    _ => cell.values[figure.index()],
                };
                rows.push(Row {
                    period: period.clone(),
                    section,
                    partner,
                    activity: text(activity).map(str::to_owned),
                    figure,
                    value,
                });
            }
        }
        Report { rows }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::tests::{day, text};
    use crate::entry::{Details, IdempotencyKey, Movement};
    use crate::Minutes;
    use proptest::prelude::*;

    /// A hand-built log: accounts opened by number, movements on given days.
    #[derive(Debug)]
    struct Book {
        entries: Vec<Entry>,
        accounts: Vec<AccountId>,
    }

    const PROGRAMME: usize = 0;

    fn partner(n: u128) -> Uuid {
        Uuid::from_u128(0xf000 + n)
    }

    impl Book {
        /// A programme, budgets 1 and 2 (partners 1 and 2), venue 3 (partner 3), members 4 to 7.
        fn new() -> Book {
            let mut book = Book {
                entries: Vec::new(),
                accounts: Vec::new(),
            };
            book.open(AccountKind::Programme, None);
            book.open(AccountKind::Budget, Some(partner(1)));
            book.open(AccountKind::Budget, Some(partner(2)));
            book.open(AccountKind::Venue, Some(partner(3)));
            for _ in 4..8 {
                book.open(AccountKind::Member, None);
            }
            book
        }

        fn push(&mut self, body: EntryBody, recorded: &str) -> u64 {
            let seq = self.entries.len() as u64;
            self.entries.push(Entry {
                seq,
                id: Uuid::from_u128(u128::from(seq)),
                recorded: recorded.parse().unwrap(),
                actor: Uuid::nil(),
                key: IdempotencyKey::new(format!("k{seq}")).unwrap(),
                part: 0,
                body,
            });
            seq
        }

        fn open(&mut self, kind: AccountKind, owner: Option<Uuid>) {
            let account = AccountId(Uuid::from_u128(self.accounts.len() as u128 + 1));
            self.accounts.push(account);
            let body = EntryBody::Open {
                account,
                account_kind: kind,
                owner,
            };
            self.push(body, "2026-01-01T00:00:00Z");
        }

        /// A movement of `kind` from account `from` to `to`, effective `on`, recorded at noon UTC
        /// that day.
        fn mv(
            &mut self,
            kind: MovementKind,
            from: usize,
            to: usize,
            minutes: u64,
            on: &str,
            activity: &str,
        ) -> u64 {
            let details = Details {
                activity: matches!(kind, MovementKind::Earn | MovementKind::Spend)
                    .then(|| text(activity)),
                adults: (kind == MovementKind::Spend).then_some(2),
                children: (kind == MovementKind::Spend).then_some(1),
                expiry_months: (kind == MovementKind::Expire).then_some(12),
                ..Details::default()
            };
            let m = Movement::new(
                kind,
                self.accounts[from],
                self.accounts[to],
                Minutes::new(minutes).unwrap(),
                day(on),
                None,
                details,
            )
            .unwrap();
            self.push(EntryBody::Move(m), &format!("{on}T12:00:00Z"))
        }

        fn reverse(&mut self, seq: u64, on: &str) -> u64 {
            let EntryBody::Move(original) = &self.entries[seq as usize].body else {
                panic!("not a movement");
            };
            let m = Movement::reversal_of(original, seq, day(on), None);
            self.push(EntryBody::Move(m), &format!("{on}T12:00:00Z"))
        }

        fn report(&self, spec: &ReportSpec) -> Report {
            report(&self.entries, spec).unwrap()
        }
    }

    /// The value of one figure, 0 when there is no such row.
    fn value(
        report: &Report,
        period: &str,
        section: Section,
        partner: Option<Uuid>,
        activity: Option<&str>,
        figure: Figure,
    ) -> i64 {
        report
            .rows
            .iter()
            .find(|r| {
                r.period == period
                    && r.section == section
                    && r.partner == partner
                    && r.activity.as_deref() == activity
                    && r.figure == figure
            })
            .map_or(0, |r| r.value)
    }

    /// A small scheme over two months: allocations, earns (one reversed the same month, one the
    /// next), a spend, a gift, a retirement.
    fn scheme() -> Book {
        use MovementKind::*;
        let mut b = Book::new();
        b.mv(Allocate, PROGRAMME, 1, 6000, "2026-10-01", "");
        b.mv(Allocate, PROGRAMME, 2, 600, "2026-10-01", "");
        b.mv(Earn, 1, 4, 120, "2026-10-05", "garden");
        let twice = b.mv(Earn, 1, 4, 60, "2026-10-06", "garden");
        b.reverse(twice, "2026-10-07");
        let late = b.mv(Earn, 1, 5, 90, "2026-10-20", "lunch club");
        b.mv(Earn, 2, 6, 30, "2026-10-21", "garden");
        b.mv(Spend, 4, 3, 60, "2026-11-02", "swim");
        b.mv(Gift, 5, 7, 30, "2026-11-03", "");
        b.reverse(late, "2026-11-04");
        b.mv(Earn, 1, 4, 60, "2026-11-05", "garden");
        b.mv(Retire, 3, PROGRAMME, 60, "2026-11-30", "");
        b
    }

    #[test]
    fn the_figures_of_a_small_scheme() {
        use Figure::*;
        let r = scheme().report(&ReportSpec::default());
        let (p1, p2, p3) = (Some(partner(1)), Some(partner(2)), Some(partner(3)));
        let earn = |period, p, a, f| value(&r, period, Section::Earn, p, Some(a), f);
        assert_eq!(earn("2026-10", p1, "garden", GivenMinutes), 180);
        assert_eq!(earn("2026-10", p1, "garden", Earns), 2);
        // A reversal in the same period nets the earn out.
        assert_eq!(earn("2026-10", p1, "garden", ReversedMinutes), 60);
        assert_eq!(earn("2026-10", p1, "garden", NetMinutes), 120);
        assert_eq!(earn("2026-10", p1, "garden", MembersActive), 1);
        assert_eq!(earn("2026-10", p1, "garden", MembersNew), 1);
        assert_eq!(earn("2026-10", p1, "lunch club", MembersNew), 1);
        assert_eq!(earn("2026-10", p2, "garden", MembersNew), 1);
        // A reversal in a later period counts there and leaves October as published.
        assert_eq!(earn("2026-10", p1, "lunch club", NetMinutes), 90);
        assert_eq!(earn("2026-11", p1, "lunch club", ReversedMinutes), 90);
        assert_eq!(earn("2026-11", p1, "lunch club", NetMinutes), -90);
        assert_eq!(earn("2026-11", p1, "garden", MembersNew), 0);
        assert_eq!(earn("2026-11", p1, "garden", MembersActive), 1);

        let budget = |period, p, f| value(&r, period, Section::Budget, p, None, f);
        assert_eq!(budget("2026-10", p1, AllocatedMinutes), 6000);
        assert_eq!(budget("2026-10", p1, UsedMinutes), 210);
        assert_eq!(budget("2026-10", p1, LeftMinutes), 5790);
        assert_eq!(budget("2026-11", p1, UsedMinutes), -30);
        assert_eq!(budget("2026-11", p1, LeftMinutes), 5820);
        assert_eq!(budget("2026-11", p2, LeftMinutes), 570);

        let spend = |f| value(&r, "2026-11", Section::Spend, p3, Some("swim"), f);
        assert_eq!(
            [
                spend(RedeemedMinutes),
                spend(Visits),
                spend(Adults),
                spend(Children)
            ],
            [60, 1, 2, 1]
        );
        let scheme = |period, section, f| value(&r, period, section, None, None, f);
        assert_eq!(scheme("2026-11", Section::Gift, GiftMinutes), 30);
        assert_eq!(scheme("2026-11", Section::Gift, Gifts), 1);
        assert_eq!(scheme("2026-10", Section::Reversal, Reversals), 1);
        assert_eq!(scheme("2026-11", Section::Reversal, ReversedMinutes), 90);
        assert_eq!(scheme("2026-11", Section::Scheme, RetiredMinutes), 60);
        // October: members earned 120 + 60 - 60 + 90 + 30.
        assert_eq!(scheme("2026-10", Section::Scheme, CirculationMinutes), 240);
        // November: +60 earn, -60 spend, -90 reversal; the gift moves between members.
        assert_eq!(scheme("2026-11", Section::Scheme, CirculationMinutes), 150);
        assert_eq!(scheme("2026-10", Section::Scheme, IssuedMinutes), 6600);
        assert_eq!(scheme("2026-11", Section::Scheme, IssuedMinutes), 6540);
    }

    #[test]
    fn rows_come_in_one_order() {
        let r = scheme().report(&ReportSpec::default());
        let keys: Vec<_> = r
            .rows
            .iter()
            .map(|row| {
                (
                    row.period.clone(),
                    row.section,
                    row.partner,
                    row.activity.clone(),
                )
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        let again = scheme().report(&ReportSpec::default());
        assert_eq!(r, again);
    }

    #[test]
    fn filters_select_rows_and_never_change_figures() {
        let book = scheme();
        let all = book.report(&ReportSpec::default());
        let spec = ReportSpec {
            partner: Some(partner(1)),
            ..ReportSpec::default()
        };
        let own = book.report(&spec);
        assert!(!own.rows.is_empty());
        assert!(own.rows.iter().all(|r| r.partner == Some(partner(1))));
        assert!(own.rows.iter().all(|r| all.rows.contains(r)));
        let spec = ReportSpec {
            activity: Some("swim".into()),
            ..ReportSpec::default()
        };
        let swim = book.report(&spec);
        assert_eq!(swim.rows.len(), Section::Spend.figures().len());
        assert!(swim.rows.iter().all(|r| all.rows.contains(r)));
    }

    #[test]
    fn a_date_range_keeps_stocks_from_before_it() {
        let book = scheme();
        let spec = ReportSpec {
            from: Some(day("2026-11-01")),
            ..ReportSpec::default()
        };
        let r = book.report(&spec);
        assert!(r.rows.iter().all(|row| row.period == "2026-11"));
        let all = book.report(&ReportSpec::default());
        let stock = |r: &Report| {
            value(
                r,
                "2026-11",
                Section::Scheme,
                None,
                None,
                Figure::CirculationMinutes,
            )
        };
        assert_eq!(stock(&r), stock(&all));
        let spec = ReportSpec {
            to: Some(day("2026-11-02")),
            ..ReportSpec::default()
        };
        let r = book.report(&spec);
        assert_eq!(stock(&r), 240 - 60);
    }

    #[test]
    fn the_recorded_basis_uses_the_zone() {
        use MovementKind::*;
        let mut b = Book::new();
        b.mv(Allocate, PROGRAMME, 1, 600, "2026-06-30", "");
        // Recorded 2026-06-30T23:30Z: 1 July in London (BST), 30 June in UTC.
        let body = b.entries.last().unwrap().body.clone();
        b.entries.pop();
        b.push(body, "2026-06-30T23:30:00Z");
        let spec = |zone: &str| ReportSpec {
            basis: DateBasis::Recorded,
            zone: zone.parse().unwrap(),
            ..ReportSpec::default()
        };
        let periods = |r: Report| {
            r.rows
                .iter()
                .map(|r| r.period.clone())
                .collect::<HashSet<_>>()
        };
        assert_eq!(
            periods(b.report(&spec("UTC"))),
            HashSet::from(["2026-06".to_owned()])
        );
        assert_eq!(
            periods(b.report(&spec("Europe/London"))),
            HashSet::from(["2026-07".to_owned()])
        );
    }

    #[test]
    fn impossible_logs_are_errors_not_panics() {
        let mut b = scheme();
        b.entries.remove(9);
        assert!(matches!(
            report(&b.entries, &ReportSpec::default()),
            Err(ReportError::Sequence { .. })
        ));

        let mut b = Book::new();
        let stranger = AccountId(Uuid::from_u128(0xdead));
        let m = Movement::new(
            MovementKind::Gift,
            b.accounts[4],
            stranger,
            Minutes::new(1).unwrap(),
            day("2026-01-01"),
            None,
            Details::default(),
        )
        .unwrap();
        b.push(EntryBody::Move(m), "2026-01-01T00:00:00Z");
        assert_eq!(
            report(&b.entries, &ReportSpec::default()),
            Err(ReportError::Account { seq: 8 })
        );

        let mut b = Book::new();
        let mut m = Movement::new(
            MovementKind::Gift,
            b.accounts[4],
            b.accounts[5],
            Minutes::new(1).unwrap(),
            day("2026-01-01"),
            None,
            Details::default(),
        )
        .unwrap();
        m.kind = MovementKind::Reverse;
        m.reverses = Some(3);
        b.push(EntryBody::Move(m), "2026-01-01T00:00:00Z");
        assert_eq!(
            report(&b.entries, &ReportSpec::default()),
            Err(ReportError::Reversal {
                seq: 8,
                reverses: 3
            })
        );
    }

    /// A random log over 90 days from 2026-10-01: every movement kind, reversals of earlier
    /// movements, on random days (not in order).
    fn random_book() -> impl Strategy<Value = Book> {
        let step = (
            0u8..8,
            0usize..4,
            0usize..4,
            1u64..200,
            0u64..90,
            0usize..3,
            any::<prop::sample::Index>(),
        );
        prop::collection::vec(step, 1..80).prop_map(|steps| {
            use MovementKind::*;
            let mut b = Book::new();
            let mut reversible = Vec::new();
            let activities = ["garden", "lunch club", "swim, \"deep\""];
            for (kind, x, y, minutes, offset, activity, pick) in steps {
                let on = (day("2026-10-01") + chrono::Days::new(offset)).to_string();
                let activity = activities[activity];
                let (member, other) = (4 + x, 4 + y);
                let seq = match kind {
                    0 => b.mv(Allocate, PROGRAMME, 1 + x % 2, minutes, &on, activity),
                    1 | 2 => b.mv(Earn, 1 + y % 2, member, minutes, &on, activity),
                    3 => b.mv(Spend, member, 3, minutes, &on, activity),
                    4 if member != other => b.mv(Gift, member, other, minutes, &on, activity),
                    5 => b.mv(Retire, 3, PROGRAMME, minutes, &on, activity),
                    6 => {
                        // Not made reversible here: the test below derives the stocks from
                        // the sections' flows, and a reversed expiry is in none but the
                        // reversal section (as a reversed retirement is).
                        b.mv(Expire, member, PROGRAMME, minutes, &on, activity);
                        continue;
                    }
                    _ if !reversible.is_empty() => {
                        let original: u64 = reversible.swap_remove(pick.index(reversible.len()));
                        b.reverse(original, &on);
                        continue;
                    }
                    _ => continue,
                };
                reversible.push(seq);
            }
            b
        })
    }

    /// A row's key: period, section, partner, activity and figure.
    type RowKey = (String, Section, Option<Uuid>, Option<String>, Figure);

    /// The additive figures of a report, by row key.
    fn additive(r: &Report) -> HashMap<RowKey, i64> {
        let mut sums = HashMap::new();
        for row in r
            .rows
            .iter()
            .filter(|r| r.figure.is_additive() && r.value != 0)
        {
            let key = (
                row.period.clone(),
                row.section,
                row.partner,
                row.activity.clone(),
                row.figure,
            );
            *sums.entry(key).or_default() += row.value;
        }
        sums
    }

    proptest! {
        #[test]
        fn adjacent_ranges_add_up_to_the_whole(book in random_book(), split in 0u64..90, period in 0usize..5) {
            let period = [Period::Day, Period::Week, Period::Month, Period::Quarter, Period::Year][period];
            let cut = day("2026-10-01") + chrono::Days::new(split);
            let whole = ReportSpec { period, ..ReportSpec::default() };
            let before = ReportSpec { to: cut.pred_opt(), ..whole.clone() };
            let after = ReportSpec { from: Some(cut), ..whole.clone() };
            let mut sum = additive(&book.report(&before));
            for (key, v) in additive(&book.report(&after)) {
                *sum.entry(key).or_default() += v;
            }
            sum.retain(|_, v| *v != 0);
            prop_assert_eq!(sum, additive(&book.report(&whole)));
        }

        /// A tally kept to take more entries reports, after each one, what a tally of the
        /// entries so far finishes with: the report it copies is all the report is made of.
        #[test]
        fn the_report_so_far_is_the_report_of_the_entries_so_far(book in random_book(), period in 0usize..5, filtered in any::<bool>()) {
            let period = [Period::Day, Period::Week, Period::Month, Period::Quarter, Period::Year][period];
            let spec = ReportSpec {
                period,
                from: filtered.then(|| day("2026-10-15")),
                partner: filtered.then(|| partner(1)),
                ..ReportSpec::default()
            };
            let mut kept = Tally::new(spec.clone());
            for (i, entry) in book.entries.iter().enumerate() {
                kept.add(entry);
                prop_assert_eq!(kept.report(), report(&book.entries[..=i], &spec), "after entry {}", i);
            }
        }

        #[test]
        fn stocks_are_the_flows_so_far(book in random_book()) {
            use Figure::*;
            let r = book.report(&ReportSpec::default());
            let periods: Vec<String> = r.rows.iter().map(|r| r.period.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            let scheme = |p: &str, s, f| value(&r, p, s, None, None, f);
            let (mut circulation, mut issued) = (0, 0);
            for p in &periods {
                let earned: i64 = r.rows.iter().filter(|x| &x.period == p && x.section == Section::Earn && x.figure == NetMinutes).map(|x| x.value).sum();
                let spent: i64 = r.rows.iter().filter(|x| &x.period == p && x.section == Section::Spend && x.figure == NetMinutes).map(|x| x.value).sum();
                circulation += earned - spent - scheme(p, Section::Scheme, ExpiredMinutes);
                prop_assert_eq!(scheme(p, Section::Scheme, CirculationMinutes), circulation);
                let reversed_allocations: i64 = r.rows.iter().filter(|x| &x.period == p && x.section == Section::Budget && x.figure == ReversedMinutes).map(|x| x.value).sum();
                issued += scheme(p, Section::Scheme, AllocatedMinutes) - reversed_allocations - scheme(p, Section::Scheme, RetiredMinutes) - scheme(p, Section::Scheme, ExpiredMinutes);
                // Reversed retirements return to the venues: all reversals less the others.
                let others: i64 = r.rows.iter().filter(|x| &x.period == p && x.section != Section::Reversal && x.figure == ReversedMinutes).map(|x| x.value).sum();
                issued += scheme(p, Section::Reversal, ReversedMinutes) - others;
                prop_assert_eq!(scheme(p, Section::Scheme, IssuedMinutes), issued);
                for partner in [partner(1), partner(2)] {
                    let budget = |p: &str, f| value(&r, p, Section::Budget, Some(partner), None, f);
                    let previous = periods.iter().take_while(|q| *q < p).last().map_or(0, |q| budget(q, LeftMinutes));
                    prop_assert_eq!(budget(p, LeftMinutes), previous + budget(p, AllocatedMinutes) - budget(p, ReversedMinutes) - budget(p, UsedMinutes));
                }
            }
        }

        /// Per period, the age bands' given minutes and earns sum to the earn section's, whatever
        /// band each member is in and whatever the filters; the CSV has a line per row.
        #[test]
        fn the_age_bands_add_up_to_the_earn_section(book in random_book(), bands in prop::collection::vec(0usize..8, 4), partnered in any::<bool>(), split in 0u64..90, period in 0usize..5) {
            use crate::profile::AgeBand;
            let period = [Period::Day, Period::Week, Period::Month, Period::Quarter, Period::Year][period];
            let spec = ReportSpec {
                period,
                from: Some(day("2026-10-01") + chrono::Days::new(split)),
                partner: partnered.then(|| partner(1)),
                ..ReportSpec::default()
            };
            let band_of = |a: AccountId| {
                let i = book.accounts.iter().position(|x| *x == a).unwrap_or(4).saturating_sub(4);
                AgeBand::ALL.get(bands[i % 4]).map_or(Band::NotIncluded, |b| Band::Age(*b))
            };
            let rows = age_bands(&book.entries, &spec, band_of);
            let full = book.report(&spec);
            for figure in [Figure::GivenMinutes, Figure::Earns] {
                let mut banded: HashMap<String, i64> = HashMap::new();
                for r in rows.iter().filter(|r| r.figure == figure) {
                    *banded.entry(r.period.clone()).or_default() += r.value;
                }
                let mut earned: HashMap<String, i64> = HashMap::new();
                for r in full.rows.iter().filter(|r| r.section == Section::Earn && r.figure == figure) {
                    *earned.entry(r.period.clone()).or_default() += r.value;
                }
                // A reversal alone makes an earn row of zeros; the bands count earns only.
                earned.retain(|_, v| *v != 0);
                prop_assert_eq!(banded, earned);
            }
            // No band counts more members than credited in its period, nor fewer than one.
            for r in rows.iter().filter(|r| r.figure == Figure::MembersActive) {
                prop_assert!((1..=4).contains(&r.value));
            }
            let mut csv = Vec::new();
            write_band_csv(&rows, &mut csv).unwrap();
            let csv = String::from_utf8(csv).unwrap();
            prop_assert!(csv.starts_with(BAND_CSV_HEADER));
            prop_assert_eq!(csv.lines().count(), rows.len() + 1);
        }

        #[test]
        fn an_earn_reversed_in_its_period_nets_to_zero(minutes in 1u64..10_000, a in 0u64..30, b in 0u64..30) {
            let mut book = Book::new();
            let (first, second) = (a.min(b), a.max(b));
            let on = |d: u64| (day("2026-11-01") + chrono::Days::new(d)).to_string();
            let seq = book.mv(MovementKind::Earn, 1, 4, minutes, &on(first), "garden");
            book.reverse(seq, &on(second));
            let r = book.report(&ReportSpec::default());
            let net = value(&r, "2026-11", Section::Earn, Some(partner(1)), Some("garden"), Figure::NetMinutes);
            prop_assert_eq!(net, 0);
            prop_assert_eq!(value(&r, "2026-11", Section::Budget, Some(partner(1)), None, Figure::UsedMinutes), 0);
        }
    }
}
