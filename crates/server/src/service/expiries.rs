//! The expiry policy: off by default; when configured, a member wallet with a balance that no
//! entry touched for `months` calendar months is emptied back to the programme by an explicit
//! `expire` entry (the domain's rule: `timecredits_domain::rules`, "Expiry"), announced
//! `notice_days` ahead in a list partners fetch ([`upcoming`]).
//!
//! The sweep ([`sweep`]) runs at start, then daily on a thread of its own
//! ([`spawn_daily_sweep`]), and when an administrator asks (`POST /v1/expiries/sweep`); one
//! sweep runs at a time (a later one waits for it). It submits each expiry through the ledger's
//! normal path under an idempotency key derived from the wallet and its last use
//! ([`expiry_key`]), by the administrator's actor: a sweep repeated after a crash, or two
//! sweeps over the same wallet, find the first one's request and record nothing more. A member
//! who used their wallet between the sweep's look and its entry makes the ledger refuse the
//! expiry (`ExpiryTooEarly`, `ExpiryNotWholeBalance`): the sweep skips that wallet.
//!
//! Cost: the ledger keeps no index of wallets by last use, so a sweep reads every registered
//! member's account (one keyed read, which also names its newest entry), and for those with a
//! balance that entry (one journal read): O(members), once a day. The wallets due are expired 32 at a time, so that the ledger's writer commits their
//! requests in shared batches. A page of [`upcoming`] copies the registry's records of the caller's
//! members after its cursor, then reads their wallets in id order until it has found a page of
//! wallets due (and one more, to know whether more follow): at worst all of them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use actix_web::web;
use chrono::{DateTime, Datelike, Months, NaiveDate, TimeDelta, Utc};
use timecredits_domain::{
    AccountId, AccountStatus, Details, Entry, IdempotencyKey, Intent, Minutes, MovementKind,
    RuleViolation, Transfer,
};
use timecredits_ledger::Clock;
use uuid::Uuid;

use crate::problem::ApiError;
use crate::registry::Member;
use crate::AppState;

/// How often the sweep runs after the one at start.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Expiries a sweep has under way at once: each is its own ledger request (its own key), and
/// the writer commits those that wait together in one batch.
const SWEEP_WRITERS: usize = 32;

/// Wallets due that a sweep collects before expiring them, which bounds what it holds.
const SWEEP_CHUNK: usize = 1024;

/// The expiry policy as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Months without use after which a wallet's credits expire (1 to
    /// [`Details::MAX_EXPIRY_MONTHS`]).
    pub months: u32,
    /// Days ahead a coming expiry appears in the notice list.
    pub notice_days: u32,
}

/// The service's expiry state: the policy, the clock that says what is due, the lock that keeps
/// sweeps one at a time, and the daily sweep's stop signal.
pub struct Expiry {
    /// The policy; `None`: nothing expires.
    pub policy: Option<Policy>,
    clock: Clock,
    sweeping: Mutex<()>,
    /// Dropped with the service's state, which wakes the daily sweep's thread to end.
    stop: Mutex<Option<mpsc::Sender<()>>>,
}

impl Expiry {
    /// The state for `policy`, deciding what is due by `clock` (the ledger's).
    pub fn new(policy: Option<Policy>, clock: Clock) -> Expiry {
        Expiry {
            policy,
            clock,
            sweeping: Mutex::new(()),
            stop: Mutex::new(None),
        }
    }
}

/// A member wallet with a balance, and when it expires.
#[derive(Debug)]
pub struct Expiring {
    /// The registry's record (with the registering partner's reference).
    pub member: Member,
    /// The wallet's balance, in minutes.
    pub balance: i64,
    /// The newest entry touching the wallet: its last use.
    pub last_use: Entry,
    /// The first moment the ledger accepts its expiry.
    pub expires: DateTime<Utc>,
}

/// The first moment at which a wallet last used at `last_use` may expire under a policy of
/// `months`: the earliest `t` with `rules::unused_since(t, months) >= last_use`. That is
/// `last_use + months` unless the target month is too short for `last_use`'s day (31 January
/// plus one month), when it is the first instant of the month after.
pub fn expiry_moment(last_use: DateTime<Utc>, months: u32) -> DateTime<Utc> {
    let Some(plain) = last_use.checked_add_months(Months::new(months)) else {
        return DateTime::<Utc>::MAX_UTC;
    };
    if plain.day() == last_use.day() {
        return plain;
    }
    let (year, month) = match plain.month() {
        12 => (plain.year() + 1, 1),
        m => (plain.year(), m + 1),
    };
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(DateTime::<Utc>::MAX_UTC, |t| t.and_utc())
}

/// The idempotency key of the expiry of `wallet` last used by entry `last_use_seq`: the same
/// for every sweep that finds the wallet in that state, another once it is used again.
pub fn expiry_key(wallet: Uuid, last_use_seq: u64) -> IdempotencyKey {
    let prefix = crate::idempotency::SERVICE_KEY_PREFIX;
    IdempotencyKey::new(format!("{prefix}{wallet}:{last_use_seq}"))
        .expect("a uuid and a number make a visible ASCII key")
}

/// `member`'s wallet and when it expires under `policy`, if it is open and holds credits.
fn expiring(
    state: &AppState,
    policy: Policy,
    member: Member,
) -> Result<Option<Expiring>, ApiError> {
    let id = AccountId(member.account);
    let Some((wallet, newest)) = state.ledger.account_and_newest(id)? else {
        return Ok(None);
    };
    if wallet.status != AccountStatus::Open || wallet.balance <= 0 {
        return Ok(None);
    }
    let last_use = state.ledger.entry(newest)?.ok_or_else(|| {
        ApiError::Internal(format!(
            "member {}'s newest entry is missing",
            member.account
        ))
    })?;
    Ok(Some(Expiring {
        expires: expiry_moment(last_use.recorded, policy.months),
        balance: wallet.balance,
        last_use,
        member,
    }))
}

/// What a sweep expired.
#[derive(Debug, Default)]
pub struct Swept {
    /// The `expire` entries it recorded (none that an earlier sweep recorded).
    pub entries: Vec<Entry>,
    /// The minutes they moved.
    pub minutes: u64,
}

/// Expires every wallet due now, one `expire` entry each; waits for a sweep under way to end
/// first. Refused with `expiry_policy_off` when there is no policy. Blocking: call it off the
/// async workers.
pub fn sweep(state: &AppState) -> Result<Swept, ApiError> {
    let policy = state.expiry.policy.ok_or(ApiError::ExpiryPolicyOff)?;
    let _one_at_a_time = state
        .expiry
        .sweeping
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let now = state.expiry.clock.now();
    let mut swept = Swept::default();
    let mut due = Vec::with_capacity(SWEEP_CHUNK);
    for member in state.registry.members_after(None, None, usize::MAX).0 {
        if state.drain.is_draining() {
            break;
        }
        match expiring(state, policy, member)? {
            Some(wallet) if wallet.expires <= now => due.push(wallet),
            _ => {}
        }
        if due.len() == SWEEP_CHUNK {
            expire_all(state, policy, &due, &mut swept)?;
            due.clear();
        }
    }
    expire_all(state, policy, &due, &mut swept)?;
    swept.entries.sort_by_key(|e| e.seq);
    if !swept.entries.is_empty() {
        tracing::info!(
            wallets = swept.entries.len(),
            minutes = swept.minutes,
            "the expiry sweep expired unused wallets"
        );
    }
    Ok(swept)
}

/// Expires each of `due` ([`expire`]), [`SWEEP_WRITERS`] at a time so that the ledger's writer
/// commits them in shared batches (one journal sync for many), and adds what it recorded to
/// `swept`. The first error stops it, after the expiries under way.
fn expire_all(
    state: &AppState,
    policy: Policy,
    due: &[Expiring],
    swept: &mut Swept,
) -> Result<(), ApiError> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let outcomes = std::thread::scope(|s| {
        let writers: Vec<_> = (0..SWEEP_WRITERS.min(due.len()))
            .map(|_| {
                s.spawn(|| {
                    let mut entries = Vec::new();
                    while !failed.load(Ordering::Relaxed) && !state.drain.is_draining() {
                        let Some(wallet) = due.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            break;
                        };
                        match expire(state, policy, wallet) {
                            Ok(entry) => entries.extend(entry),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                return (entries, Some(e));
                            }
                        }
                    }
                    (entries, None)
                })
            })
            .collect();
        writers.into_iter().map(|w| w.join()).collect::<Vec<_>>()
    });
    let mut error = None;
    for outcome in outcomes {
        let (entries, e) =
            outcome.map_err(|_| ApiError::Internal("an expiry sweep's writer panicked".into()))?;
        swept.minutes += entries.iter().map(entry_minutes).sum::<u64>();
        swept.entries.extend(entries);
        error = error.or(e);
    }
    error.map_or(Ok(()), Err)
}

fn entry_minutes(entry: &Entry) -> u64 {
    match &entry.body {
        timecredits_domain::EntryBody::Move(m) => m.minutes.get(),
        _ => 0,
    }
}

/// Records the expiry of `wallet` under its derived key: the new entry, or `None` when an
/// earlier sweep recorded it, or the wallet was used (or is being) since it was read.
fn expire(state: &AppState, policy: Policy, wallet: &Expiring) -> Result<Option<Entry>, ApiError> {
    let member = wallet.member.account;
    let Some(minutes) = u64::try_from(wallet.balance)
        .ok()
        .and_then(|b| Minutes::new(b).ok())
    else {
        tracing::warn!(
            %member,
            balance = wallet.balance,
            "a wallet due to expire holds more than one movement moves; it is left as it is"
        );
        return Ok(None);
    };
    let intent = Intent::Transfer(Transfer {
        kind: MovementKind::Expire,
        debit: AccountId(member),
        credit: state.ledger.programme_account(),
        minutes,
        effective: None,
        details: Details {
            expiry_months: Some(policy.months),
            ..Details::default()
        },
    });
    let key = expiry_key(member, wallet.last_use.seq);
    let actor = state.registry.administrator();
    match super::submit_blocking_as(state, actor, &key, vec![intent]) {
        Ok(committed) if committed.replayed => Ok(None),
        Ok(committed) => Ok(committed.entries.into_iter().next()),
        Err(ApiError::Rule(
            RuleViolation::ExpiryTooEarly { .. } | RuleViolation::ExpiryNotWholeBalance { .. },
        ))
        | Err(ApiError::IdempotencyKeyInFlight(_)) => {
            tracing::info!(%member, "a wallet was used while the expiry sweep looked at it; skipped");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Whose members a notice list shows.
#[derive(Clone, Copy, Debug)]
pub enum Whose {
    /// Every member (administrators, auditors).
    All,
    /// Those this partner registered.
    RegisteredBy(Uuid),
}

/// A page of the notice list: up to `limit` wallets that expire within the notice period
/// (those already due included), in member id order after `after`, and whether more follow.
/// With no policy, an empty page.
pub fn upcoming(
    state: &AppState,
    whose: Whose,
    after: Option<Uuid>,
    limit: usize,
) -> Result<(Vec<Expiring>, bool), ApiError> {
    let Some(policy) = state.expiry.policy else {
        return Ok((Vec::new(), false));
    };
    let horizon = state.expiry.clock.now() + TimeDelta::days(policy.notice_days.into());
    let registrar = match whose {
        Whose::All => None,
        Whose::RegisteredBy(partner) => Some(partner),
    };
    let mut page = Vec::new();
    for member in state.registry.members_after(registrar, after, usize::MAX).0 {
        let Some(wallet) = expiring(state, policy, member)? else {
            continue;
        };
        if wallet.expires <= horizon {
            if page.len() == limit {
                return Ok((page, true));
            }
            page.push(wallet);
        }
    }
    Ok((page, false))
}

/// Starts the daily sweep on a thread of its own: one sweep now, then one every
/// [`SWEEP_INTERVAL`]. The thread holds the service only while it sweeps, and ends as soon as
/// the service's state is dropped (its stop signal goes with it).
pub fn spawn_daily_sweep(state: &web::Data<AppState>) {
    let (stop, stopped) = mpsc::channel::<()>();
    *state
        .expiry
        .stop
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(stop);
    let service = std::sync::Arc::downgrade(&state.clone().into_inner());
    let spawned = std::thread::Builder::new()
        .name("expiry-sweep".into())
        .spawn(move || loop {
            let Some(state) = service.upgrade() else {
                return;
            };
            if let Err(e) = sweep(&state) {
                tracing::warn!(error = %e, "the expiry sweep could not finish");
            }
            drop(state);
            match stopped.recv_timeout(SWEEP_INTERVAL) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "the expiry sweep could not start");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timecredits_domain::rules;
    use timecredits_testkit::ledger::TestClock;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    /// The moment is the domain's own boundary: the rule allows an expiry then, and not a
    /// microsecond before, whatever the day of the month.
    #[test]
    fn the_expiry_moment_is_the_rules_boundary() {
        let allowed = |t: DateTime<Utc>, used, months| {
            rules::unused_since(t, months).is_some_and(|s| used <= s)
        };
        for used in [
            "2026-01-31T10:00:00Z",
            "2026-01-15T23:59:59.999999Z",
            "2024-02-29T12:00:00Z",
            "2026-03-31T00:00:00Z",
            "2026-12-31T08:30:00Z",
        ] {
            let used = at(used);
            for months in [1, 2, 11, 12, 13, 120] {
                let t = expiry_moment(used, months);
                assert!(allowed(t, used, months), "{used} + {months}: {t}");
                let before = t - TimeDelta::microseconds(1);
                assert!(
                    !allowed(before, used, months),
                    "{used} + {months}: {before}"
                );
            }
        }
    }

    /// `f`'s answer, from a thread of its own: the ledger's blocking submit may not run on the
    /// test's runtime.
    fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| s.spawn(f).join().unwrap())
    }

    /// A service with a policy of 12 months on a clock the test moves, an earn partner with
    /// a budget, and a member of it holding 90 minutes.
    async fn a_member_with_credits() -> (tempfile::TempDir, AppState, TestClock, Member) {
        use crate::registry::{Role, Scope};
        use crate::service::{members, partners, submit, testing};
        let dir = tempfile::tempdir().unwrap();
        let clock = TestClock::default();
        let mut settings = crate::Settings::new(dir.path(), "127.0.0.1:0".parse().unwrap());
        settings.clock = clock.clock();
        settings.expiry = Some(Policy {
            months: 12,
            notice_days: 30,
        });
        let state = AppState::open(&settings).unwrap();
        let admin = testing::administrator();
        let key = testing::idempotency_key;
        let name = timecredits_domain::ShortText::new("name", "Club").unwrap();
        let (club, _) = partners::create(&state, &admin, &key("p"), name, vec![Role::Earn])
            .await
            .unwrap();
        let budget = AccountId(club.budget_account.unwrap());
        let transfer = |kind, debit, credit| {
            Intent::Transfer(Transfer {
                kind,
                debit,
                credit,
                minutes: Minutes::new(90).unwrap(),
                effective: None,
                details: Details::default(),
            })
        };
        let programme = state.ledger.programme_account();
        let allocate = transfer(MovementKind::Allocate, programme, budget);
        submit(&state, &admin, &key("a"), vec![allocate])
            .await
            .unwrap();
        let own = testing::partner(&club, vec![Scope::Earn]);
        let (member, _) = members::register(&state, &own, &key("m"), None)
            .await
            .unwrap();
        let wallet = AccountId(member.member_id);
        let mut earn = transfer(MovementKind::Earn, budget, wallet);
        if let Intent::Transfer(t) = &mut earn {
            t.details.activity =
                Some(timecredits_domain::ShortText::new("activity", "lunch").unwrap());
        }
        submit(&state, &own, &key("e"), vec![earn]).await.unwrap();
        let member = state.registry.member(member.member_id).unwrap();
        (dir, state, clock, member)
    }

    /// The same wallet in the same state, expired twice (a sweep repeated after a crash, or a
    /// second sweep that read it before the first wrote): one entry, the second finds it.
    #[actix_web::test]
    async fn an_expiry_submitted_twice_is_recorded_once() {
        let (_dir, state, clock, member) = a_member_with_credits().await;
        clock.advance(TimeDelta::days(400));
        let policy = state.expiry.policy.unwrap();
        let read = || expiring(&state, policy, member.clone()).unwrap().unwrap();
        let (first, second) = (read(), read());
        let size = state.ledger.size().unwrap();
        let entry = blocking(|| expire(&state, policy, &first))
            .unwrap()
            .unwrap();
        assert_eq!(entry_minutes(&entry), 90);
        assert!(blocking(|| expire(&state, policy, &second))
            .unwrap()
            .is_none());
        assert_eq!(state.ledger.size().unwrap(), size + 1);
        assert!(expiring(&state, policy, member).unwrap().is_none());
        assert!(blocking(|| sweep(&state)).unwrap().entries.is_empty());
    }

    /// A wallet used after the sweep read it: the rules refuse the expiry, and the sweep skips
    /// the wallet instead of failing.
    #[actix_web::test]
    async fn a_wallet_used_after_the_sweep_read_it_is_skipped() {
        let (_dir, state, clock, member) = a_member_with_credits().await;
        clock.advance(TimeDelta::days(400));
        let policy = state.expiry.policy.unwrap();
        let stale = expiring(&state, policy, member.clone()).unwrap().unwrap();
        let admin = crate::service::testing::administrator();
        let retire = Intent::Transfer(Transfer {
            kind: MovementKind::Retire,
            debit: AccountId(member.account),
            credit: state.ledger.programme_account(),
            minutes: Minutes::new(30).unwrap(),
            effective: None,
            details: Details::default(),
        });
        let key = crate::service::testing::idempotency_key("r");
        crate::service::submit(&state, &admin, &key, vec![retire])
            .await
            .unwrap();
        let size = state.ledger.size().unwrap();
        assert!(blocking(|| expire(&state, policy, &stale))
            .unwrap()
            .is_none());
        assert_eq!(state.ledger.size().unwrap(), size);
        let violation = ApiError::Rule(RuleViolation::ExpiryTooEarly {
            account: AccountId(member.account),
            last_use: None,
            unused_since: Utc::now(),
        });
        assert_eq!(violation.code(), crate::problem::Code::ExpiryNotDue);
        assert_eq!(violation.status().as_u16(), 409);
    }

    #[test]
    fn a_key_names_the_wallet_and_its_last_use() {
        let wallet = Uuid::now_v7();
        assert_eq!(expiry_key(wallet, 7), expiry_key(wallet, 7));
        assert_ne!(expiry_key(wallet, 7), expiry_key(wallet, 8));
        assert_ne!(expiry_key(wallet, 7), expiry_key(Uuid::now_v7(), 7));
    }
}
