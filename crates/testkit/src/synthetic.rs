//! Synthetic ledgers: realistic, valid histories built from the domain types alone, and signed
//! exports of them, for the verifier's tests and benchmark. The real ledger is not needed, so a
//! history of millions of entries takes seconds, and a test can sign a history the ledger would
//! never have accepted.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use chrono::{DateTime, Days, TimeDelta, Utc};
use timecredits_domain::export::ExportHeader;
use timecredits_domain::{
    AccountId, AccountKind, Entry, EntryBody, IdempotencyKey, Minutes, Movement, MovementKind,
};
use timecredits_tlog::checkpoint::{sign_checkpoint, Checkpoint};
use timecredits_tlog::merkle::{leaf_hash, Frontier};
use timecredits_tlog::note::NoteSigner;
use uuid::Uuid;

use crate::intents::{details, text};
use crate::rng::Rng;

/// A deterministic, endless stream of entries that obey every ledger rule: a programme, earn
/// partners whose budgets it tops up, venues, and a growing population of members who earn,
/// spend and gift credits, with group issues (multi-part requests), reversals, retirements,
/// closures and expiries. The same seed always gives the same history.
///
/// Entries follow each other by microseconds, so no wallet would ever go unused for a month:
/// now and then (at most once in [`QUIET_EVERY`] entries) the scheme has a quiet month, the
/// clock jumps 31 days, and wallets last used before it may then expire under a one-month
/// policy. A history of a million entries gains at most five months that way.
pub struct History {
    rng: Rng,
    seq: u64,
    /// Recorded time of the next entry, in microseconds since 1970.
    now: i64,
    admin: Uuid,
    programme: AccountId,
    budgets: Vec<Party>,
    venues: Vec<Party>,
    /// Members' wallets and balances; a closed wallet stays in place (with `None`) so that the
    /// positions kept in `earns` stay valid.
    members: Vec<Option<(AccountId, i64)>>,
    /// Recent earns that may still be reversed: (seq, movement, budget and member positions).
    earns: VecDeque<(u64, Movement, usize, usize)>,
    /// How many members are open; some always stay open.
    open_members: usize,
    /// When an entry last touched each member's wallet (microseconds since 1970), by position.
    last_use: Vec<i64>,
    /// The time and sequence number at which the last quiet month began: a wallet last used
    /// before that time has been unused for a month.
    quiet: Option<(i64, u64)>,
    /// Entries built but not yet returned (the parts of a request, the set-up).
    queue: VecDeque<Entry>,
}

/// A partner's account: its id, owner and balance.
struct Party {
    account: AccountId,
    owner: Uuid,
    balance: i64,
}

/// How many members the population grows to.
const MEMBERS: usize = 200_000;

/// The fewest entries between two quiet months.
pub const QUIET_EVERY: u64 = 200_000;

/// A quiet month, in microseconds: longer than any calendar month.
const QUIET_MONTH: i64 = 31 * 24 * 3600 * 1_000_000;

impl History {
    /// A history from `seed`.
    pub fn new(seed: u64) -> History {
        let mut history = History {
            rng: Rng::new(seed),
            seq: 0,
            now: 1_790_000_000_000_000, // 2026-09-21
            admin: Uuid::nil(),
            programme: AccountId(Uuid::nil()),
            budgets: Vec::new(),
            venues: Vec::new(),
            members: Vec::new(),
            earns: VecDeque::new(),
            open_members: 0,
            last_use: Vec::new(),
            quiet: None,
            queue: VecDeque::new(),
        };
        history.admin = history.uuid();
        history.programme = history.open(Uuid::nil(), AccountKind::Programme, None, "genesis");
        for _ in 0..10 {
            let budget = history.partner(AccountKind::Budget);
            history.budgets.push(budget);
            let venue = history.partner(AccountKind::Venue);
            history.venues.push(venue);
        }
        history
    }

    /// Opens a partner's budget or venue account, owned and opened by the partner.
    fn partner(&mut self, kind: AccountKind) -> Party {
        let owner = self.uuid();
        let account = self.open(owner, kind, Some(owner), "");
        Party {
            account,
            owner,
            balance: 0,
        }
    }

    fn uuid(&mut self) -> Uuid {
        let random = self.rng.next_u64().to_le_bytes();
        let more = self.rng.next_u64().to_le_bytes();
        let mut bytes = [0u8; 10];
        bytes[..8].copy_from_slice(&random);
        bytes[8..].copy_from_slice(&more[..2]);
        uuid::Builder::from_unix_timestamp_millis((self.now / 1000) as u64, &bytes).into_uuid()
    }

    fn recorded(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.now).unwrap_or_default()
    }

    /// Queues one entry; parts of one request share the actor, key and time.
    fn push(&mut self, actor: Uuid, key: &IdempotencyKey, part: u32, body: EntryBody) {
        let entry = Entry {
            seq: self.seq,
            id: self.uuid(),
            recorded: self.recorded(),
            actor,
            key: key.clone(),
            part,
            body,
        };
        self.seq += 1;
        self.queue.push_back(entry);
    }

    fn key(&mut self, key: &str) -> IdempotencyKey {
        let key = match key {
            "" => self.uuid().to_string(),
            key => key.to_owned(),
        };
        IdempotencyKey::new(key).unwrap_or_else(|_| unreachable!("keys here are valid"))
    }

    fn open(
        &mut self,
        actor: Uuid,
        kind: AccountKind,
        owner: Option<Uuid>,
        key: &str,
    ) -> AccountId {
        let account = AccountId(self.uuid());
        let key = self.key(key);
        self.push(
            actor,
            &key,
            0,
            EntryBody::Open {
                account,
                account_kind: kind,
                owner,
            },
        );
        account
    }

    fn movement(
        &mut self,
        kind: MovementKind,
        debit: AccountId,
        credit: AccountId,
        minutes: i64,
    ) -> Movement {
        let mut details = details(kind);
        match kind {
            MovementKind::Earn => {
                details.reference = Some(text(&format!("TS-{:06}", self.rng.below(1_000_000))));
            }
            MovementKind::Spend => {
                details.adults = Some(1 + self.rng.below(2) as u32);
                details.children = Some(self.rng.below(3) as u32);
            }
            _ => {}
        }
        let days_back = self.rng.below(3);
        let recorded = self.recorded();
        let effective = recorded
            .date_naive()
            .checked_sub_days(Days::new(days_back))
            .unwrap_or(recorded.date_naive());
        Movement {
            kind,
            debit,
            credit,
            minutes: Minutes::new(minutes as u64).unwrap_or_else(|_| unreachable!("positive")),
            effective,
            reverses: None,
            details,
        }
    }

    fn single(&mut self, actor: Uuid, movement: Movement) -> u64 {
        let key = self.key("");
        let seq = self.seq;
        self.push(actor, &key, 0, EntryBody::Move(movement));
        seq
    }

    /// Builds the next request.
    fn step(&mut self) {
        self.now += 1 + self.rng.below(2_000) as i64;
        let roll = self.rng.below(1000);
        let members = self.members.len();
        if members < 2 || (roll < 60 && members < MEMBERS) {
            let member = self.open(self.admin, AccountKind::Member, None, "");
            self.members.push(Some((member, 0)));
            self.last_use.push(self.now);
            self.open_members += 1;
        } else if roll < 420 {
            self.earn();
        } else if roll < 760 {
            self.spend();
        } else if roll < 850 {
            self.gift();
        } else if roll < 870 {
            self.reverse();
        } else if roll < 920 {
            let v = self.rng.below(self.venues.len() as u64) as usize;
            let balance = self.venues[v].balance;
            if balance > 0 {
                let m = self.movement(
                    MovementKind::Retire,
                    self.venues[v].account,
                    self.programme,
                    balance,
                );
                self.venues[v].balance = 0;
                self.single(self.admin, m);
            } else {
                self.earn();
            }
        } else if roll < 921 {
            self.expire();
        } else if roll < 925 {
            let i = self.rng.below(members as u64) as usize;
            match self.members[i] {
                Some((account, 0)) if self.open_members > 10 => {
                    self.members[i] = None;
                    self.open_members -= 1;
                    let key = self.key("");
                    self.push(self.admin, &key, 0, EntryBody::Close { account });
                }
                _ => self.spend(),
            }
        } else {
            self.earn();
        }
    }

    /// An earn from a budget (topped up first when low), to one member or, one time in ten, to a
    /// group of members in one request.
    fn earn(&mut self) {
        let b = self.rng.below(self.budgets.len() as u64) as usize;
        let group = if self.rng.below(10) == 0 {
            2 + self.rng.below(4)
        } else {
            1
        };
        let amounts: Vec<i64> = (0..group)
            .map(|_| 15 * (2 + self.rng.below(15) as i64))
            .collect();
        let total: i64 = amounts.iter().sum();
        if self.budgets[b].balance < total {
            let m = self.movement(
                MovementKind::Allocate,
                self.programme,
                self.budgets[b].account,
                600_000,
            );
            self.budgets[b].balance += 600_000;
            self.single(self.admin, m);
        }
        let (budget, owner) = (self.budgets[b].account, self.budgets[b].owner);
        let key = self.key("");
        for (part, minutes) in amounts.into_iter().enumerate() {
            let (i, member) = self.member();
            let m = self.movement(MovementKind::Earn, budget, member, minutes);
            self.credit(i, minutes);
            self.budgets[b].balance -= minutes;
            self.earns.push_back((self.seq, m.clone(), b, i));
            if self.earns.len() > 64 {
                self.earns.pop_front();
            }
            self.push(owner, &key, part as u32, EntryBody::Move(m));
        }
    }

    /// A random open member: its position and account.
    fn member(&mut self) -> (usize, AccountId) {
        loop {
            let i = self.rng.below(self.members.len() as u64) as usize;
            if let Some((account, _)) = self.members[i] {
                return (i, account);
            }
        }
    }

    fn balance(&self, i: usize) -> i64 {
        self.members[i].map_or(0, |(_, balance)| balance)
    }

    fn credit(&mut self, i: usize, minutes: i64) {
        if let Some((_, balance)) = &mut self.members[i] {
            *balance += minutes;
        }
        self.last_use[i] = self.now;
    }

    /// Expires the whole balance of a wallet unused since the last quiet month began, starting
    /// a quiet month first when none is recent (see [`History`]).
    fn expire(&mut self) {
        let recent = self
            .quiet
            .is_some_and(|(_, seq)| self.seq < seq + QUIET_EVERY);
        if !recent {
            self.quiet = Some((self.now, self.seq));
            self.now += QUIET_MONTH;
        }
        let since = self.quiet.map_or(i64::MIN, |(time, _)| time);
        let (i, member) = self.member();
        let balance = self.balance(i);
        if balance == 0 || self.last_use[i] > since {
            return self.earn();
        }
        let mut m = self.movement(MovementKind::Expire, member, self.programme, balance);
        m.details.expiry_months = Some(1);
        self.credit(i, -balance);
        self.single(self.admin, m);
    }

    fn spend(&mut self) {
        let (i, member) = self.member();
        let balance = self.balance(i);
        if balance < 30 {
            return self.earn();
        }
        let v = self.rng.below(self.venues.len() as u64) as usize;
        let minutes = balance.min(30 + 15 * self.rng.below(8) as i64);
        let m = self.movement(MovementKind::Spend, member, self.venues[v].account, minutes);
        self.credit(i, -minutes);
        self.venues[v].balance += minutes;
        self.single(self.venues[v].owner, m);
    }

    fn gift(&mut self) {
        let ((i, from), (j, to)) = (self.member(), self.member());
        if i == j || self.balance(i) < 15 {
            return self.earn();
        }
        let m = self.movement(MovementKind::Gift, from, to, 15);
        self.credit(i, -15);
        self.credit(j, 15);
        self.single(from.0, m);
    }

    /// Reverses a recent earn, if its member still holds the credits (each earn at most once).
    fn reverse(&mut self) {
        let Some((seq, original, b, i)) = self.earns.pop_back() else {
            return self.earn();
        };
        let minutes = original.minutes.get() as i64;
        match self.members[i] {
            Some((_, balance)) if balance >= minutes => {
                self.credit(i, -minutes);
                self.budgets[b].balance += minutes;
                let effective = self.recorded().date_naive();
                let m =
                    Movement::reversal_of(&original, seq, effective, Some(text("entered twice")));
                self.single(self.admin, m);
            }
            _ => self.earn(),
        }
    }
}

impl Iterator for History {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        while self.queue.is_empty() {
            self.step();
        }
        self.queue.pop_front()
    }
}

/// Spreads a history over time: entry `seq` is recorded `seq * seconds` seconds later than
/// `entries` had it, and a movement's effective date moves by as many days as its recording day
/// did. A history of a million entries then spans months instead of minutes (so a report has
/// many periods), and stays valid: recorded times still never decrease, and no effective date
/// passes its recording day + 1.
pub fn spread(entries: impl Iterator<Item = Entry>, seconds: i64) -> impl Iterator<Item = Entry> {
    entries.map(move |mut entry| {
        let shift = TimeDelta::seconds(seconds.saturating_mul(entry.seq as i64));
        let recorded = entry.recorded + shift;
        let days = (recorded.date_naive() - entry.recorded.date_naive()).num_days();
        entry.recorded = recorded;
        if let EntryBody::Move(m) = &mut entry.body {
            m.effective = m
                .effective
                .checked_add_days(Days::new(days as u64))
                .unwrap_or(m.effective);
        }
        entry
    })
}

/// Signs the checkpoint of the tree `frontier` describes, for the origin named by the signer.
pub fn sign(signer: &NoteSigner, frontier: &Frontier) -> String {
    let checkpoint = Checkpoint {
        origin: signer.name().to_owned(),
        size: frontier.size(),
        root: frontier.root(),
        extensions: Vec::new(),
    };
    sign_checkpoint(&checkpoint, &[signer])
        .unwrap_or_else(|e| unreachable!("a key name is a valid origin: {e}"))
}

/// Writes a full export of the entries `lines` (canonical bytes, in order) to `path`, signed by
/// `signer` for the origin of its name, and returns its header. The lines are streamed through a
/// temporary file beside `path`, since the header that comes first depends on all of them.
pub fn write_export(
    path: &Path,
    signer: &NoteSigner,
    lines: impl IntoIterator<Item = Vec<u8>>,
) -> io::Result<ExportHeader> {
    let body_path = path.with_extension("body");
    let mut body = BufWriter::with_capacity(1 << 20, File::create(&body_path)?);
    let mut frontier = Frontier::new();
    for line in lines {
        frontier.append_with(leaf_hash(&line), |_| {});
        body.write_all(&line)?;
        body.write_all(b"\n")?;
    }
    body.flush()?;
    drop(body);
    let header = ExportHeader::new(
        signer.name().to_owned(),
        signer.verifier().to_vkey(),
        0,
        frontier.size(),
        Vec::new(),
        sign(signer, &frontier),
    );
    let mut out = BufWriter::new(File::create(path)?);
    out.write_all(&header.to_line())?;
    io::copy(&mut File::open(&body_path)?, &mut out)?;
    out.flush()?;
    std::fs::remove_file(body_path)?;
    Ok(header)
}
