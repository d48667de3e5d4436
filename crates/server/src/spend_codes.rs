//! One-time spend codes: how a member consents to a venue debiting their wallet.
//!
//! A member creates a code (8 characters of Crockford base32, 40 bits), valid for the configured
//! TTL (15 minutes by default), optionally capped at an amount, and reads it out or shows it as a
//! QR code. The venue redeems it once. A code made before the member's credential was revoked or
//! reissued (a lost phone) is void ([`SpendCodes::reserve`]).
//!
//! # Stored hashed, durably
//! A code is never stored. The table keys each code by `HMAC-SHA256(k, code)`, with `k` derived
//! from the server secret (a plain SHA-256 of a 40-bit code would be reversed by brute force in
//! minutes). A repeated creation (same `Idempotency-Key`) gets the same code back because the code
//! itself is derived: `HMAC(k, nonce, member, key)` with a random nonce that is stored. Every
//! change is an event in `spend-codes` in the data directory (the ledger's checksummed journal
//! format): a code is `fdatasync`ed there before it is handed out, and a reservation before its
//! spend goes to the ledger, so after a crash every handed-out code is still valid, and a
//! reservation whose outcome was lost is settled by asking the ledger whether the spend was
//! committed. The file is compacted (rewritten with only what is still live) at every start and
//! whenever it has grown to twice its compacted size (at least 1 MiB).
//!
//! # No oracle
//! A venue's redemption is remembered by (venue, `Idempotency-Key`) with the fingerprint of the
//! whole request (code included) for [`Config::outcome_window`]. A repeat is decided from that
//! fingerprint alone, before the code is looked up: the same request is answered from the ledger,
//! a different one is refused with `idempotency_key_reused`, whichever code it carries. Every
//! refused redemption counts against four [`GuessLimits`] (per API key, per partner, per source
//! address, and a breaker for the whole service), checked before anything else, so switching keys
//! or addresses does not buy more guesses.
//!
//! # Bounded, and never scanned
//! Creating, finding and expiring a code are hash-map and ordered-set operations (O(1) or
//! O(log n)). A member holds at most [`Config::max_live_per_member`] live codes (further creations
//! are refused with `too_many_spend_codes` until one is used or expires). A code is dropped one
//! TTL after it expired (until then it answers `spend_code_expired`); a redemption record after
//! the outcome window (after which the ledger still answers a repeat, comparing everything but
//! the code).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use timecredits_ledger::journal::{Journal, JournalError};
use uuid::Uuid;

use crate::problem::ApiError;
use crate::throttle::Window;

/// Crockford's base32 alphabet (no I, L, O, U).
pub(crate) const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The length of a code.
pub const CODE_LEN: usize = 8;

/// The file of spend-code events in the data directory.
pub const FILE: &str = "spend-codes";

/// The smallest file size at which the file is compacted (small in unit tests, so they reach
/// it quickly).
const MIN_COMPACT_BYTES: u64 = if cfg!(test) { 32 << 10 } else { 1 << 20 };

type Key = [u8; 32];
/// A request's (actor, idempotency key).
pub type By = (Uuid, String);

/// How many refused redemptions are allowed per window, by whom. A limit of 0 disables it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuessLimits {
    /// Per API key.
    pub per_key: usize,
    /// Per partner, whichever of its keys is used.
    pub per_partner: usize,
    /// Per source address (the TCP peer), whichever key is used.
    pub per_address: usize,
    /// For the whole service: a breaker on the code space. When it trips, every redemption is
    /// refused with 429 until the window has passed.
    pub global: usize,
    /// The window the limits count in.
    pub window: Duration,
}

impl Default for GuessLimits {
    fn default() -> Self {
        GuessLimits {
            per_key: 5,
            per_partner: 10,
            per_address: 20,
            global: 100,
            window: Duration::from_secs(60),
        }
    }
}

/// How spend codes behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How long a code is valid.
    pub ttl: chrono::Duration,
    /// Live (unused, unexpired) codes a member may hold at once.
    pub max_live_per_member: usize,
    /// How long a redemption's fingerprint is kept to answer repeats.
    pub outcome_window: chrono::Duration,
    /// The throttle on refused redemptions.
    pub guesses: GuessLimits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ttl: SpendCodes::TTL,
            max_live_per_member: 5,
            outcome_window: chrono::Duration::hours(24),
            guesses: GuessLimits::default(),
        }
    }
}

/// A failure to read or write the spend-code file.
#[derive(Debug, thiserror::Error)]
#[error("spend-code file {path}: {reason}")]
pub struct StoreError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Use {
    Fresh,
    Reserved { by: By },
    Used { by: By },
}

struct Code {
    member: Uuid,
    cap: Option<u64>,
    /// When it was made (`None` if written before this was kept).
    issued: Option<DateTime<Utc>>,
    expires: DateTime<Utc>,
    state: Use,
    /// The member's creation request (member, key), to forget its record with the code.
    issue: By,
}

impl Code {
    /// Whether the code was made before `credential_changed` (the member's credential's last
    /// revocation or reissue), which voids it. A code from a file written before codes kept
    /// their time of issue is never void: it expires as it would have.
    fn made_before(&self, credential_changed: Option<DateTime<Utc>>) -> bool {
        self.issued
            .zip(credential_changed)
            .is_some_and(|(issued, changed)| issued < changed)
    }
}

/// What a creation request left behind: enough to answer its repeat.
struct Issue {
    fingerprint: String,
    nonce: [u8; 16],
    code: Key,
}

/// A venue's redemption: its fingerprint and whether its spend was committed.
struct Redemption {
    fingerprint: String,
    code: Key,
    at: DateTime<Utc>,
    committed: bool,
}

/// A code as issued to a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// The code to give to the venue (shown once; only its keyed hash is kept).
    pub code: String,
    /// When it stops being accepted.
    pub expires: DateTime<Utc>,
    /// The most minutes it may pay, if the member set a cap.
    pub cap: Option<u64>,
}

/// Who presents a code, for the throttle.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The API key presenting it.
    pub api_key: Uuid,
    /// That key's partner.
    pub partner: Uuid,
    /// The client's address, when known.
    pub address: Option<IpAddr>,
}

/// The source a guess limit counts by: an IPv4 address, or an IPv6 address's /64 (one host
/// usually holds a whole /64, and could otherwise switch addresses at will).
pub fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().expect("mapped")),
        v4 => v4,
    }
}

/// What is known of an earlier redemption under the same (venue, key).
#[derive(Debug, PartialEq, Eq)]
pub enum Prior {
    /// Nothing (never made, refused, or older than the outcome window).
    None,
    /// The same request, committed: the ledger answers it.
    Same,
    /// A different request: refused, whatever it carries.
    Different,
}

/// A change to the table, as written to the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event {
    Issued {
        code: String,
        member: Uuid,
        cap: Option<u64>,
        /// When it was made (absent in files written before codes were voided by a credential's
        /// revocation).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issued: Option<DateTime<Utc>>,
        expires: DateTime<Utc>,
        key: String,
        fingerprint: String,
        nonce: String,
    },
    Reserved {
        code: String,
        actor: Uuid,
        key: String,
        fingerprint: String,
        at: DateTime<Utc>,
    },
    Finished {
        actor: Uuid,
        key: String,
        committed: bool,
    },
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    hex::decode(s).ok()?.try_into().ok()
}

/// The in-memory table. Every change goes through [`Table::apply`], at open and when serving.
#[derive(Default)]
struct Table {
    codes: HashMap<Key, Code>,
    /// Codes by the time they are dropped (one TTL after expiry).
    drop_at: BTreeSet<(DateTime<Utc>, Key)>,
    issues: HashMap<By, Issue>,
    /// Each member's codes not yet used (expired ones are pruned when counted).
    live: HashMap<Uuid, Vec<Key>>,
    redemptions: HashMap<By, Redemption>,
    /// Redemptions in the order they were made, to forget them after the outcome window.
    redemption_order: VecDeque<(DateTime<Utc>, By)>,
}

impl Table {
    fn apply(&mut self, event: Event, grace: chrono::Duration) {
        match event {
            Event::Issued {
                code,
                member,
                cap,
                issued,
                expires,
                key,
                fingerprint,
                nonce,
            } => {
                let (Some(hash), Some(nonce)) = (unhex(&code), unhex(&nonce)) else {
                    return;
                };
                if self.codes.contains_key(&hash) {
                    return;
                }
                let issue = (member, key);
                self.codes.insert(
                    hash,
                    Code {
                        member,
                        cap,
                        issued,
                        expires,
                        state: Use::Fresh,
                        issue: issue.clone(),
                    },
                );
                self.drop_at.insert((expires + grace, hash));
                self.issues.insert(
                    issue,
                    Issue {
                        fingerprint,
                        nonce,
                        code: hash,
                    },
                );
                self.live.entry(member).or_default().push(hash);
            }
            Event::Reserved {
                code,
                actor,
                key,
                fingerprint,
                at,
            } => {
                let Some(hash) = unhex(&code) else { return };
                let by = (actor, key);
                if let Some(c) = self.codes.get_mut(&hash) {
                    if c.state == Use::Fresh {
                        c.state = Use::Reserved { by: by.clone() };
                    }
                }
                if self.redemptions.contains_key(&by) {
                    return;
                }
                self.redemption_order.push_back((at, by.clone()));
                self.redemptions.insert(
                    by,
                    Redemption {
                        fingerprint,
                        code: hash,
                        at,
                        committed: false,
                    },
                );
            }
            Event::Finished {
                actor,
                key,
                committed,
            } => {
                let by = (actor, key);
                let Some(r) = self.redemptions.get_mut(&by) else {
                    return;
                };
                let hash = r.code;
                if committed {
                    r.committed = true;
                } else {
                    // A refused spend leaves nothing to replay: a repeat is a new attempt.
                    self.redemptions.remove(&by);
                }
                let Some(c) = self.codes.get_mut(&hash) else {
                    return;
                };
                if c.state == (Use::Reserved { by: by.clone() }) {
                    if committed {
                        c.state = Use::Used { by };
                        let member = c.member;
                        self.forget_live(member, |k| *k != hash);
                    } else {
                        c.state = Use::Fresh;
                    }
                }
            }
        }
    }

    /// Drops codes one grace period after expiry, and redemption records after `keep`.
    fn expire(&mut self, now: DateTime<Utc>, keep: chrono::Duration) {
        while let Some(&(when, hash)) = self.drop_at.first() {
            if when > now {
                break;
            }
            self.drop_at.pop_first();
            if let Some(code) = self.codes.remove(&hash) {
                if self.issues.get(&code.issue).is_some_and(|i| i.code == hash) {
                    self.issues.remove(&code.issue);
                }
                self.forget_live(code.member, |k| *k != hash);
            }
        }
        while let Some((at, _)) = self.redemption_order.front() {
            if *at + keep > now {
                break;
            }
            let (at, by) = self.redemption_order.pop_front().expect("a front");
            // A record refused and made again later has a newer time: it stays.
            if self.redemptions.get(&by).is_some_and(|r| r.at == at) {
                self.redemptions.remove(&by);
            }
        }
    }

    /// Keeps the member's live codes for which `keep` holds; a member with none left is
    /// forgotten, so the map holds only members with live codes.
    fn forget_live(&mut self, member: Uuid, keep: impl FnMut(&Key) -> bool) {
        if let Some(live) = self.live.get_mut(&member) {
            live.retain(keep);
            if live.is_empty() {
                self.live.remove(&member);
            }
        }
    }

    /// The member's live codes' expiry times (at most the per-member limit of them): neither
    /// expired nor void.
    fn live_expiries(
        &mut self,
        member: Uuid,
        now: DateTime<Utc>,
        credential_changed: Option<DateTime<Utc>>,
    ) -> Vec<DateTime<Utc>> {
        let Some(live) = self.live.get_mut(&member) else {
            return Vec::new();
        };
        let codes = &self.codes;
        live.retain(|k| {
            codes
                .get(k)
                .is_some_and(|c| c.expires > now && !c.made_before(credential_changed))
        });
        let expiries: Vec<_> = live
            .iter()
            .filter_map(|k| codes.get(k).map(|c| c.expires))
            .collect();
        if expiries.is_empty() {
            self.live.remove(&member);
        }
        expiries
    }

    /// Everything still live, as events that rebuild this table.
    fn snapshot(&self) -> Vec<Event> {
        let mut events = Vec::with_capacity(self.codes.len() + 2 * self.redemptions.len());
        for (hash, code) in &self.codes {
            let Some(issue) = self.issues.get(&code.issue).filter(|i| i.code == *hash) else {
                continue;
            };
            events.push(Event::Issued {
                code: hex::encode(hash),
                member: code.member,
                cap: code.cap,
                issued: code.issued,
                expires: code.expires,
                key: code.issue.1.clone(),
                fingerprint: issue.fingerprint.clone(),
                nonce: hex::encode(issue.nonce),
            });
        }
        for (at, by) in &self.redemption_order {
            let Some(r) = self.redemptions.get(by).filter(|r| r.at == *at) else {
                continue;
            };
            events.push(Event::Reserved {
                code: hex::encode(r.code),
                actor: by.0,
                key: by.1.clone(),
                fingerprint: r.fingerprint.clone(),
                at: r.at,
            });
            if r.committed {
                events.push(Event::Finished {
                    actor: by.0,
                    key: by.1.clone(),
                    committed: true,
                });
            }
        }
        events
    }
}

/// The refused-redemption throttle: four windows, all checked, all counted.
struct Guesses {
    key: Window<Uuid>,
    partner: Window<Uuid>,
    address: Window<IpAddr>,
    global: Window<()>,
}

impl Guesses {
    fn new(l: &GuessLimits) -> Guesses {
        Guesses {
            key: Window::new(l.per_key, l.window),
            partner: Window::new(l.per_partner, l.window),
            address: Window::new(l.per_address, l.window),
            global: Window::new(l.global, l.window),
        }
    }

    /// The longest wait any limit imposes on `who`, if one does.
    fn blocked(&mut self, who: &Attempt, now: Instant) -> Option<Duration> {
        let waits = [
            self.key.blocked(&who.api_key, now),
            self.partner.blocked(&who.partner, now),
            who.address.and_then(|a| self.address.blocked(&a, now)),
            self.global.blocked(&(), now),
        ];
        waits.into_iter().flatten().max()
    }

    /// Counts a refusal; returns the names of the limits it used up.
    fn record(&mut self, who: &Attempt, now: Instant) -> Vec<&'static str> {
        let mut full = Vec::new();
        if self.key.record(who.api_key, now) {
            full.push("api key");
        }
        if self.partner.record(who.partner, now) {
            full.push("partner");
        }
        if let Some(a) = who.address {
            if self.address.record(a, now) {
                full.push("source address");
            }
        }
        if self.global.record((), now) {
            full.push("whole service");
        }
        full
    }
}

/// The append side of the file.
struct Store {
    path: PathBuf,
    journal: Journal,
    /// The file's size after the last compaction.
    compacted: u64,
    /// Counts compactions: offsets compare only within one file.
    generation: u64,
}

/// What is known to be durable, for group commit.
struct Synced {
    generation: u64,
    /// The file's length at the start of the last sync of this generation.
    upto: u64,
    /// A handle on the current file to sync it with.
    file: Option<std::fs::File>,
}

type HmacSha256 = Hmac<Sha256>;

/// The table of spend codes.
pub struct SpendCodes {
    table: Mutex<Table>,
    store: Mutex<Store>,
    synced: Mutex<Synced>,
    guesses: Mutex<Guesses>,
    secret: [u8; 32],
    config: Config,
}

/// Normalises what a person typed: case, spaces and hyphens do not matter, and the letters
/// Crockford maps to digits (I, L -> 1, O -> 0) are read as those digits.
pub fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        })
        .collect()
}

/// How long a redemption record is kept: the outcome window, and at least as long as its code
/// (dropped one TTL after it expired), so a used code cannot become fresh at a compaction.
fn keep(config: &Config) -> chrono::Duration {
    config.outcome_window.max(config.ttl + config.ttl)
}

/// Makes the file readable by the service's user only: its hashes are keyed, but the
/// redemption records name partners and members.
fn private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn store_error(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

impl SpendCodes {
    /// How long a code is valid, by default.
    pub const TTL: chrono::Duration = chrono::Duration::minutes(15);

    /// Opens (or creates) the table in `dir`. `secret` keys the code hashes; `committed` tells
    /// whether the ledger committed the request (actor, key), to settle reservations whose outcome
    /// a crash lost. The file is compacted before serving.
    pub fn open(
        dir: &Path,
        config: Config,
        secret: [u8; 32],
        committed: impl Fn(Uuid, &str) -> Result<bool, String>,
    ) -> Result<SpendCodes, StoreError> {
        let path = dir.join(FILE);
        let (journal, records) = Journal::open(&path, 0).map_err(|e| store_error(&path, e))?;
        private(&path).map_err(|e| store_error(&path, e))?;
        let mut table = Table::default();
        let grace = config.ttl;
        for (pos, payload) in records {
            let event: Event = serde_json::from_slice(&payload)
                .map_err(|e| store_error(&path, format!("record at offset {}: {e}", pos.offset)))?;
            table.apply(event, grace);
        }
        let now = Utc::now();
        table.expire(now, keep(&config));
        // Reservations whose outcome was not recorded: the ledger knows what happened.
        let pending: Vec<By> = table
            .redemptions
            .iter()
            .filter(|(_, r)| !r.committed)
            .map(|(by, _)| by.clone())
            .collect();
        for (actor, key) in pending {
            let done = committed(actor, &key).map_err(|e| store_error(&path, e))?;
            table.apply(
                Event::Finished {
                    actor,
                    key,
                    committed: done,
                },
                grace,
            );
        }
        let codes = SpendCodes {
            table: Mutex::new(table),
            store: Mutex::new(Store {
                path: path.clone(),
                journal,
                compacted: 0,
                generation: 0,
            }),
            synced: Mutex::new(Synced {
                generation: 0,
                upto: 0,
                file: None,
            }),
            guesses: Mutex::new(Guesses::new(&config.guesses)),
            secret,
            config,
        };
        codes
            .compact(&mut lock(&codes.store))
            .map_err(|e| store_error(&path, e))?;
        Ok(codes)
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key size");
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The key a code is stored under.
    fn hash(&self, code: &str) -> Key {
        self.mac(&[b"spend-code-hash", normalise(code).as_bytes()])
    }

    /// The code a creation request's nonce stands for.
    fn derive(&self, nonce: &[u8; 16], member: Uuid, key: &str) -> String {
        let bytes = self.mac(&[b"spend-code", nonce, member.as_bytes(), key.as_bytes()]);
        let bits = bytes[..5]
            .iter()
            .fold(0u64, |acc, b| acc << 8 | u64::from(*b));
        (0..CODE_LEN)
            .rev()
            .map(|i| ALPHABET[(bits >> (5 * i) & 31) as usize] as char)
            .collect()
    }

    fn keep(&self) -> chrono::Duration {
        keep(&self.config)
    }

    /// Appends events; `sync` makes them durable before returning. Compacts when the file has
    /// doubled.
    fn persist(&self, events: &[Event], sync: bool) -> Result<(), ApiError> {
        let payloads: Vec<Vec<u8>> = events
            .iter()
            .map(|e| serde_json::to_vec(e).expect("spend-code events always serialize"))
            .collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let unavailable = |e: std::io::Error| {
            ApiError::Unavailable(format!("spend codes cannot be recorded: {e}"))
        };
        let (generation, end) = {
            let mut store = lock(&self.store);
            store
                .journal
                .append(&refs)
                .map_err(|e| unavailable(std::io::Error::other(e)))?;
            let appended = (store.generation, store.journal.len());
            if store.journal.len() > MIN_COMPACT_BYTES.max(2 * store.compacted) {
                // A failed compaction leaves the current file in use: nothing is lost.
                if let Err(e) = self.compact(&mut store) {
                    tracing::warn!(error = %e, "could not compact the spend-code file");
                }
            }
            appended
        };
        if !sync {
            return Ok(());
        }
        // Group commit: the appends are made under the store's lock, the syncs outside it, one
        // at a time, each covering everything appended before it started. A request whose
        // append an earlier sync (or a compaction, which syncs its new file) covered is done.
        let mut synced = lock(&self.synced);
        if synced.generation > generation || (synced.generation == generation && synced.upto >= end)
        {
            return Ok(());
        }
        let (current, target, path) = {
            let store = lock(&self.store);
            (store.generation, store.journal.len(), store.path.clone())
        };
        if current != generation {
            *synced = Synced {
                generation: current,
                upto: 0,
                file: None,
            };
            return Ok(());
        }
        if synced.generation != current || synced.file.is_none() {
            // Any handle on the file syncs it: this one is opened once per compaction.
            synced.file = Some(std::fs::File::open(&path).map_err(unavailable)?);
            synced.generation = current;
        }
        if let Some(file) = &synced.file {
            file.sync_data().map_err(unavailable)?;
        }
        synced.upto = target;
        Ok(())
    }

    /// Rewrites the file with only what is live: to a temporary file, synced, renamed over.
    fn compact(&self, store: &mut Store) -> Result<(), JournalError> {
        let events = {
            let mut table = lock(&self.table);
            table.expire(Utc::now(), self.keep());
            table.snapshot()
        };
        let tmp = store.path.with_extension("compact");
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let (mut journal, _) = Journal::open(&tmp, 0)?;
        private(&tmp)?;
        for chunk in events.chunks(1024) {
            let payloads: Vec<Vec<u8>> = chunk
                .iter()
                .map(|e| serde_json::to_vec(e).expect("spend-code events always serialize"))
                .collect();
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            journal.append(&refs)?;
        }
        journal.sync()?;
        std::fs::rename(&tmp, &store.path)?;
        if let Some(dir) = store.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        store.compacted = journal.len();
        store.journal = journal;
        store.generation += 1;
        Ok(())
    }

    /// Issues a code to `member` for the request (key, fingerprint); a repeat of the request
    /// gets the same code back (with `true`: a replay), a different request under the same key
    /// is refused. The code is durable before it is returned. Codes made before
    /// `credential_changed` (the member's credential's last revocation or reissue) are void and
    /// do not count against the member's limit of live codes.
    pub fn issue(
        &self,
        member: Uuid,
        key: &str,
        fingerprint: &str,
        cap: Option<u64>,
        now: DateTime<Utc>,
        credential_changed: Option<DateTime<Utc>>,
    ) -> Result<(Issued, bool), ApiError> {
        let by = (member, key.to_owned());
        let mut table = lock(&self.table);
        table.expire(now, self.keep());
        if let Some(issue) = table.issues.get(&by) {
            if issue.fingerprint != fingerprint {
                return Err(ApiError::IdempotencyKeyReused(key.to_owned()));
            }
            let code = table
                .codes
                .get(&issue.code)
                .ok_or_else(|| ApiError::Internal("an issued code is missing".into()))?;
            let issued = Issued {
                code: self.derive(&issue.nonce, member, key),
                expires: code.expires,
                cap: code.cap,
            };
            return Ok((issued, true));
        }
        let live = table.live_expiries(member, now, credential_changed);
        if self.config.max_live_per_member > 0 && live.len() >= self.config.max_live_per_member {
            let first = live.iter().min().copied().unwrap_or(now);
            let retry_after = (first - now).num_seconds().max(1) as u64;
            return Err(ApiError::TooManySpendCodes {
                limit: self.config.max_live_per_member,
                retry_after,
            });
        }
        let (nonce, code, hash) = loop {
            let mut nonce = [0u8; 16];
            getrandom::getrandom(&mut nonce)
                .map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
            let code = self.derive(&nonce, member, key);
            let hash = self.hash(&code);
            if !table.codes.contains_key(&hash) {
                break (nonce, code, hash);
            }
        };
        let issued = Issued {
            code,
            expires: now + self.config.ttl,
            cap,
        };
        let event = Event::Issued {
            code: hex::encode(hash),
            member,
            cap,
            issued: Some(now),
            expires: issued.expires,
            key: key.to_owned(),
            fingerprint: fingerprint.to_owned(),
            nonce: hex::encode(nonce),
        };
        table.apply(event.clone(), self.config.ttl);
        drop(table);
        if let Err(e) = self.persist(&[event], true) {
            // Nobody has seen the code: forget it.
            let mut table = lock(&self.table);
            table.codes.remove(&hash);
            table.issues.remove(&by);
            if let Some(live) = table.live.get_mut(&member) {
                live.retain(|k| *k != hash);
            }
            return Err(e);
        }
        Ok((issued, false))
    }

    /// Whether `member` was issued a code under idempotency key `key` (and it is still kept).
    pub fn knows(&self, member: Uuid, key: &str) -> bool {
        lock(&self.table)
            .issues
            .contains_key(&(member, key.to_owned()))
    }

    /// Refuses with 429 if any guess limit is used up for `who`. Checked before anything else a
    /// redemption does, so a throttled caller learns nothing.
    pub fn admit(&self, who: &Attempt) -> Result<(), ApiError> {
        match lock(&self.guesses).blocked(who, Instant::now()) {
            None => Ok(()),
            Some(wait) => Err(ApiError::TooManyAttempts {
                retry_after: wait.as_secs().max(1),
            }),
        }
    }

    /// Counts a refused redemption against every limit of `who` and logs it.
    pub fn refused(&self, who: &Attempt, error: &ApiError) {
        let full = lock(&self.guesses).record(who, Instant::now());
        tracing::warn!(
            api_key = %who.api_key,
            partner = %who.partner,
            address = ?who.address,
            code = error.code().as_str(),
            "spend code redemption refused"
        );
        for limit in full {
            tracing::warn!(
                api_key = %who.api_key,
                partner = %who.partner,
                address = ?who.address,
                limit,
                "refused redemptions reached a limit: further redemptions get 429 for a while"
            );
        }
    }

    /// What is known of an earlier redemption by `by`, judged by its fingerprint only.
    pub fn prior(&self, by: &By, fingerprint: &str) -> Prior {
        match lock(&self.table).redemptions.get(by) {
            None => Prior::None,
            Some(r) if r.fingerprint != fingerprint => Prior::Different,
            Some(r) if r.committed => Prior::Same,
            // Still being settled (only its own in-flight request could be): a new attempt.
            Some(_) => Prior::None,
        }
    }

    /// Reserves `code` for a redemption of `minutes` by `by` (request `fingerprint`) and returns
    /// the member. The reservation is durable before this returns. The caller counts a refusal
    /// with [`SpendCodes::refused`].
    ///
    /// `credential_changed` tells when a member's credential was last revoked or reissued (the
    /// registry knows): a code made before then is void, so that a member who reports a lost
    /// phone is not paid from by a code it showed.
    pub fn reserve(
        &self,
        by: &By,
        fingerprint: &str,
        code: &str,
        minutes: u64,
        now: DateTime<Utc>,
        credential_changed: impl FnOnce(Uuid) -> Option<DateTime<Utc>>,
    ) -> Result<Uuid, ApiError> {
        let hash = self.hash(code);
        let mut table = lock(&self.table);
        table.expire(now, self.keep());
        let entry = table.codes.get(&hash).ok_or(ApiError::SpendCodeInvalid)?;
        match &entry.state {
            Use::Reserved { by: b } | Use::Used { by: b } if b == by => return Ok(entry.member),
            Use::Reserved { .. } | Use::Used { .. } => return Err(ApiError::SpendCodeUsed),
            Use::Fresh => {}
        }
        if entry.made_before(credential_changed(entry.member)) {
            return Err(ApiError::SpendCodeRevoked);
        }
        if entry.expires <= now {
            return Err(ApiError::SpendCodeExpired);
        }
        if entry.cap.is_some_and(|cap| minutes > cap) {
            return Err(ApiError::SpendCodeAmountExceeded);
        }
        let member = entry.member;
        let event = Event::Reserved {
            code: hex::encode(hash),
            actor: by.0,
            key: by.1.clone(),
            fingerprint: fingerprint.to_owned(),
            at: now,
        };
        table.apply(event.clone(), self.config.ttl);
        drop(table);
        if let Err(e) = self.persist(&[event], true) {
            self.finish(by, false);
            return Err(e);
        }
        Ok(member)
    }

    /// Remembers a redemption by `by` (request `fingerprint`) whose consent is not a spend code
    /// but a member card: durable before this returns, then settled with
    /// [`SpendCodes::finish`] and judged by [`SpendCodes::prior`] as a code's reservation is, so
    /// that its repeats too are decided by the fingerprint alone. It reserves no code.
    pub fn hold(&self, by: &By, fingerprint: &str, now: DateTime<Utc>) -> Result<(), ApiError> {
        let event = Event::Reserved {
            // A hash no code has: the table's records of codes are left alone.
            code: hex::encode(self.mac(&[b"card-redemption"])),
            actor: by.0,
            key: by.1.clone(),
            fingerprint: fingerprint.to_owned(),
            at: now,
        };
        {
            let mut table = lock(&self.table);
            table.expire(now, self.keep());
            table.apply(event.clone(), self.config.ttl);
        }
        if let Err(e) = self.persist(&[event], true) {
            self.finish(by, false);
            return Err(e);
        }
        Ok(())
    }

    /// Ends a reservation: the code is used if the spend was committed, free again if not. Not
    /// synced: a lost outcome is settled from the ledger at the next start.
    pub fn finish(&self, by: &By, committed: bool) {
        let event = Event::Finished {
            actor: by.0,
            key: by.1.clone(),
            committed,
        };
        {
            let mut table = lock(&self.table);
            // Only a reservation still open has an outcome to record.
            if table.redemptions.get(by).is_none_or(|r| r.committed) {
                return;
            }
            table.apply(event.clone(), self.config.ttl);
        }
        if let Err(e) = self.persist(&[event], false) {
            tracing::warn!(error = %e, "could not record a redemption's outcome; the next start settles it from the ledger");
        }
    }

    /// The number of codes and redemption records kept in memory.
    pub fn len(&self) -> (usize, usize) {
        let table = lock(&self.table);
        (table.codes.len(), table.redemptions.len())
    }

    /// Whether the table holds no code.
    pub fn is_empty(&self) -> bool {
        self.len().0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For [`SpendCodes::reserve`]: no member's credential was ever revoked or reissued.
    fn never_revoked(_: Uuid) -> Option<DateTime<Utc>> {
        None
    }

    fn by(key: &str) -> By {
        (Uuid::nil(), key.to_owned())
    }

    fn open(dir: &Path, config: Config) -> SpendCodes {
        SpendCodes::open(dir, config, [7; 32], |_, _| Ok(false)).unwrap()
    }

    fn table() -> (tempfile::TempDir, SpendCodes) {
        let dir = tempfile::tempdir().unwrap();
        let codes = open(dir.path(), Config::default());
        (dir, codes)
    }

    #[test]
    fn codes_are_eight_crockford_characters_and_typing_slips_are_forgiven() {
        let (_dir, codes) = table();
        let code = codes.derive(&[1; 16], Uuid::nil(), "k");
        assert_eq!(code.len(), CODE_LEN);
        assert!(code.bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(normalise("ab1o-il2z"), "AB1011 2Z".replace(' ', ""));
        assert_eq!(codes.hash(&code.to_lowercase()), codes.hash(&code));
    }

    #[test]
    fn a_code_is_used_once_and_a_retry_of_its_redemption_finds_it() {
        let (_dir, codes) = table();
        let now = Utc::now();
        let member = Uuid::now_v7();
        let (issued, replayed) = codes.issue(member, "k", "f", Some(120), now, None).unwrap();
        assert!(!replayed);
        assert_eq!(
            codes.issue(member, "k", "f", Some(120), now, None).unwrap(),
            (issued.clone(), true)
        );
        assert!(matches!(
            codes.issue(member, "k", "g", None, now, None),
            Err(ApiError::IdempotencyKeyReused(_))
        ));
        let lower = issued.code.to_lowercase();
        assert!(matches!(
            codes.reserve(&by("r1"), "p1", &lower, 121, now, never_revoked),
            Err(ApiError::SpendCodeAmountExceeded)
        ));
        assert_eq!(
            codes
                .reserve(&by("r1"), "p1", &lower, 60, now, never_revoked)
                .unwrap(),
            member
        );
        assert_eq!(codes.prior(&by("r1"), "p1"), Prior::None, "not settled yet");
        // A refused spend frees the code; a committed one uses it up.
        codes.finish(&by("r1"), false);
        assert_eq!(codes.prior(&by("r1"), "p1"), Prior::None);
        assert_eq!(
            codes
                .reserve(&by("r2"), "p2", &issued.code, 60, now, never_revoked)
                .unwrap(),
            member
        );
        codes.finish(&by("r2"), true);
        assert_eq!(codes.prior(&by("r2"), "p2"), Prior::Same);
        assert_eq!(codes.prior(&by("r2"), "other"), Prior::Different);
        assert!(matches!(
            codes.reserve(&by("r3"), "p3", &issued.code, 60, now, never_revoked),
            Err(ApiError::SpendCodeUsed)
        ));
    }

    #[test]
    fn a_code_made_before_the_members_credential_changed_is_void_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let codes = open(dir.path(), Config::default());
        let (member, other) = (Uuid::now_v7(), Uuid::now_v7());
        let then = Utc::now();
        let (before, _) = codes.issue(member, "k1", "f1", None, then, None).unwrap();
        let (others, _) = codes.issue(other, "k1", "f1", None, then, None).unwrap();
        // The member reports a lost phone: the credential is revoked (or reissued), then a
        // new code is made.
        let changed = then + chrono::Duration::seconds(1);
        let later = changed + chrono::Duration::seconds(1);
        let (after, _) = codes.issue(member, "k2", "f2", None, later, None).unwrap();
        drop(codes);
        // The time each code was made is in the file, and survives its compaction at open.
        let codes = open(dir.path(), Config::default());
        let changed_for = |m: Uuid| (m == member).then_some(changed);
        assert!(matches!(
            codes.reserve(&by("r1"), "p", &before.code, 1, later, changed_for),
            Err(ApiError::SpendCodeRevoked)
        ));
        assert_eq!(
            codes
                .reserve(&by("r2"), "p", &after.code, 1, later, changed_for)
                .unwrap(),
            member
        );
        assert_eq!(
            codes
                .reserve(&by("r3"), "p", &others.code, 1, later, changed_for)
                .unwrap(),
            other
        );
        // A code from a file written before the time was kept expires as it did then.
        let old = r#"{"event":"issued","code":"00","member":"0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e12","cap":null,"expires":"2026-12-01T00:00:00Z","key":"k","fingerprint":"f","nonce":"00"}"#;
        let Event::Issued { issued, .. } = serde_json::from_str(old).unwrap() else {
            panic!("an issue event");
        };
        assert_eq!(issued, None);
    }

    #[test]
    fn void_codes_do_not_count_against_the_members_limit() {
        let (_dir, codes) = table();
        let member = Uuid::now_v7();
        let now = Utc::now();
        for i in 0..Config::default().max_live_per_member {
            codes
                .issue(member, &format!("k{i}"), "f", None, now, None)
                .unwrap();
        }
        assert!(matches!(
            codes.issue(member, "more", "f", None, now, None),
            Err(ApiError::TooManySpendCodes { .. })
        ));
        // The credential is reissued: the codes made before are void and make room.
        let changed = now + chrono::Duration::seconds(1);
        let later = changed + chrono::Duration::seconds(1);
        let (made, replayed) = codes
            .issue(member, "more", "f", None, later, Some(changed))
            .unwrap();
        assert!(!replayed);
        assert_eq!(
            codes
                .reserve(&by("r"), "p", &made.code, 1, later, |_| Some(changed))
                .unwrap(),
            member
        );
    }

    #[test]
    fn codes_expire_and_are_dropped_a_ttl_later() {
        let (_dir, codes) = table();
        let then = Utc::now();
        let (issued, _) = codes
            .issue(Uuid::now_v7(), "k", "f", None, then, None)
            .unwrap();
        let later = then + SpendCodes::TTL;
        assert!(matches!(
            codes.reserve(&by("r"), "p", &issued.code, 60, later, never_revoked),
            Err(ApiError::SpendCodeExpired)
        ));
        let much_later = later + SpendCodes::TTL;
        assert!(matches!(
            codes.reserve(&by("r"), "p", &issued.code, 60, much_later, never_revoked),
            Err(ApiError::SpendCodeInvalid)
        ));
        assert_eq!(codes.len().0, 0);
    }

    #[test]
    fn a_member_holds_at_most_the_limit_of_live_codes() {
        let (_dir, codes) = table();
        let now = Utc::now();
        let member = Uuid::now_v7();
        let mut issued = Vec::new();
        for i in 0..5 {
            issued.push(
                codes
                    .issue(member, &format!("k{i}"), "f", None, now, None)
                    .unwrap()
                    .0,
            );
        }
        assert!(matches!(
            codes.issue(member, "k5", "f", None, now, None),
            Err(ApiError::TooManySpendCodes { limit: 5, retry_after }) if (1..=900).contains(&retry_after)
        ));
        // Another member is not affected; a used code frees a place.
        codes
            .issue(Uuid::now_v7(), "k", "f", None, now, None)
            .unwrap();
        codes
            .reserve(&by("r"), "p", &issued[0].code, 1, now, never_revoked)
            .unwrap();
        codes.finish(&by("r"), true);
        codes.issue(member, "k5", "f", None, now, None).unwrap();
        // So does expiry.
        let later = now + SpendCodes::TTL;
        codes.issue(member, "k6", "f", None, later, None).unwrap();
    }

    #[test]
    fn an_ipv6_source_counts_by_its_64_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source(a), source(b));
        assert_ne!(source(a), source(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(source(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn refusals_count_per_key_partner_address_and_for_everyone() {
        let limits = GuessLimits {
            per_key: 2,
            per_partner: 3,
            per_address: 4,
            global: 5,
            window: Duration::from_secs(60),
        };
        let mut guesses = Guesses::new(&limits);
        let now = Instant::now();
        let who = |key: u128, partner: u128, address: u8| Attempt {
            api_key: Uuid::from_u128(key),
            partner: Uuid::from_u128(partner),
            address: Some(IpAddr::from([10, 0, 0, address])),
        };
        guesses.record(&who(1, 1, 1), now);
        guesses.record(&who(1, 1, 1), now);
        assert!(guesses.blocked(&who(1, 1, 1), now).is_some(), "the key");
        assert!(guesses.blocked(&who(2, 1, 1), now).is_none());
        guesses.record(&who(2, 1, 1), now);
        assert!(guesses.blocked(&who(3, 1, 2), now).is_some(), "the partner");
        assert!(guesses.blocked(&who(3, 2, 1), now).is_none());
        guesses.record(&who(3, 2, 1), now);
        assert!(guesses.blocked(&who(4, 3, 1), now).is_some(), "the address");
        assert!(guesses.blocked(&who(4, 3, 2), now).is_none());
        guesses.record(&who(4, 3, 2), now);
        assert!(guesses.blocked(&who(5, 4, 3), now).is_some(), "everyone");
        let later = now + limits.window;
        assert!(guesses.blocked(&who(1, 1, 1), later).is_none());
    }

    #[test]
    fn codes_and_outcomes_survive_a_restart_and_lost_outcomes_are_settled_by_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let member = Uuid::now_v7();
        let (fresh, used, lost_done, lost_refused) = {
            let codes = open(dir.path(), Config::default());
            let issue = |k: &str| codes.issue(member, k, "f", None, now, None).unwrap().0;
            let (fresh, used, lost_done, lost_refused) =
                (issue("a"), issue("b"), issue("c"), issue("d"));
            codes
                .reserve(&by("used"), "p", &used.code, 1, now, never_revoked)
                .unwrap();
            codes.finish(&by("used"), true);
            // Reservations whose outcome a crash lost.
            codes
                .reserve(&by("done"), "p", &lost_done.code, 1, now, never_revoked)
                .unwrap();
            codes
                .reserve(
                    &by("refused"),
                    "p",
                    &lost_refused.code,
                    1,
                    now,
                    never_revoked,
                )
                .unwrap();
            (fresh, used, lost_done, lost_refused)
        };
        let codes = SpendCodes::open(dir.path(), Config::default(), [7; 32], |_, key| {
            Ok(key == "done")
        })
        .unwrap();
        assert_eq!(
            codes.issue(member, "a", "f", None, now, None).unwrap(),
            (fresh.clone(), true)
        );
        assert_eq!(codes.prior(&by("used"), "p"), Prior::Same);
        assert_eq!(codes.prior(&by("done"), "p"), Prior::Same);
        assert_eq!(codes.prior(&by("refused"), "p"), Prior::None);
        assert!(matches!(
            codes.reserve(&by("x"), "p", &used.code, 1, now, never_revoked),
            Err(ApiError::SpendCodeUsed)
        ));
        assert!(matches!(
            codes.reserve(&by("x"), "p", &lost_done.code, 1, now, never_revoked),
            Err(ApiError::SpendCodeUsed)
        ));
        assert_eq!(
            codes
                .reserve(&by("y"), "p", &lost_refused.code, 1, now, never_revoked)
                .unwrap(),
            member
        );
        assert_eq!(
            codes
                .reserve(&by("z"), "p", &fresh.code, 1, now, never_revoked)
                .unwrap(),
            member
        );
        // Only hashes are stored.
        let file = std::fs::read(dir.path().join(FILE)).unwrap();
        let text = String::from_utf8_lossy(&file);
        for code in [&fresh, &used, &lost_done, &lost_refused] {
            assert!(
                !text.contains(&code.code),
                "{} is stored in clear",
                code.code
            );
        }
    }

    #[test]
    fn the_file_is_compacted_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            max_live_per_member: 0,
            outcome_window: chrono::Duration::hours(1),
            ..Config::default()
        };
        let codes = open(dir.path(), config.clone());
        let start = Utc::now();
        // Many codes over many TTLs: only the recent ones are live.
        for i in 0..2_000u32 {
            let now = start + chrono::Duration::seconds(10 * i64::from(i));
            let (issued, _) = codes
                .issue(Uuid::now_v7(), "k", "f", None, now, None)
                .unwrap();
            if i % 2 == 0 {
                let r = by(&format!("r{i}"));
                codes
                    .reserve(&r, "p", &issued.code, 1, now, never_revoked)
                    .unwrap();
                codes.finish(&r, true);
            }
        }
        // About 800 kB were written; the file holds the last hour's redemptions and the live
        // codes, and at most doubles before it is compacted again.
        let size = std::fs::metadata(dir.path().join(FILE)).unwrap().len();
        let compacted = lock(&codes.store).compacted;
        assert!(
            size <= (2 * compacted).max(MIN_COMPACT_BYTES) + 4096,
            "{size} bytes"
        );
        assert!(size < 400_000, "{size} bytes");
        // Memory: only members with a live code are tracked (the last TTL's unused half).
        assert!(lock(&codes.table).live.len() <= 100);
        drop(codes);
        assert!(SpendCodes::open(dir.path(), config, [7; 32], |_, _| Ok(false)).is_ok());
    }
}
