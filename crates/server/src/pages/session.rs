//! Sign-in sessions for the pages, and the throttle on sign-in attempts.
//!
//! A session is a random 256-bit token in an `HttpOnly`, `SameSite=Strict` cookie (`Secure`
//! when the request came over TLS), known to the server only by its SHA-256. Sessions live in
//! memory: a restart signs everyone out, which costs a sign-in and keeps no secret on disk. Each
//! holds the CSRF token its forms must carry. What the session stands for is looked up again on
//! every request (the staff login's key, the member's credential generation), so a revoked key or
//! credential ends its sessions at once.
//!
//! # Limits
//! At most [`MAX_SESSIONS`] sessions in all (the oldest is dropped for a new one), at most
//! [`MAX_PER_PERSON`] per person (the same), each ending [`IDLE`] after its last use and
//! [`LIFETIME`] after sign-in, whichever comes first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::throttle::Window;

/// The session cookie.
pub const SESSION_COOKIE: &str = "tc_session";
/// The cookie holding the CSRF token of the sign-in forms (before there is a session).
pub const SIGN_IN_COOKIE: &str = "tc_sign_in";
/// The most sessions held.
pub const MAX_SESSIONS: usize = 100_000;
/// The most sessions one person holds.
pub const MAX_PER_PERSON: usize = 20;
/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(60 * 60);
/// A session ends this long after sign-in.
pub const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Failed sign-ins allowed per username (or card) in [`SIGN_IN_WINDOW`].
pub const SIGN_IN_FAILURES_PER_NAME: usize = 5;
/// Failed sign-ins allowed per source address in [`SIGN_IN_WINDOW`].
pub const SIGN_IN_FAILURES_PER_ADDRESS: usize = 30;
/// The window of the sign-in throttle.
pub const SIGN_IN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Who a session is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Person {
    /// A staff login, acting with its key.
    Staff {
        /// The login's key.
        key: Uuid,
        /// The username, to greet.
        username: String,
    },
    /// A member, signed in with the credential of this generation.
    Member {
        /// The member's wallet.
        account: Uuid,
        /// The credential generation they signed in with: a reissue ends the session.
        generation: u32,
    },
}

/// A live session as a request sees it.
#[derive(Clone, Debug)]
pub struct Session {
    /// Whom it is for.
    pub person: Person,
    /// The token every form of the session carries.
    pub csrf: String,
}

/// A request's session, to end it: its cookie token and whom it is for.
#[derive(Clone, Copy, Debug)]
pub struct SessionRef<'a> {
    /// The cookie token.
    pub token: &'a str,
    /// Whom it is for.
    pub person: &'a Person,
}

struct Held {
    session: Session,
    started: Instant,
    last_used: Instant,
}

/// The live sessions.
#[derive(Default)]
pub struct Sessions {
    held: Mutex<HashMap<[u8; 32], Held>>,
}

/// A new random token, 256 bits in base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the operating system gives random bytes");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// Starts a session for `person`; returns its cookie token.
    pub fn start(&self, person: Person) -> String {
        let token = random_token();
        let now = Instant::now();
        let mut held = self.lock();
        held.retain(|_, h| live(h, now));
        let mut mine: Vec<([u8; 32], Instant)> = held
            .iter()
            .filter(|(_, h)| h.session.person == person)
            .map(|(k, h)| (*k, h.started))
            .collect();
        if mine.len() >= MAX_PER_PERSON {
            mine.sort_by_key(|(_, started)| *started);
            held.remove(&mine[0].0);
        }
        if held.len() >= MAX_SESSIONS {
            if let Some(oldest) = held.iter().min_by_key(|(_, h)| h.started).map(|(k, _)| *k) {
                held.remove(&oldest);
            }
        }
        let session = Session {
            person,
            csrf: random_token(),
        };
        held.insert(
            digest(&token),
            Held {
                session,
                started: now,
                last_used: now,
            },
        );
        token
    }

    /// The live session of `token`, marked used now.
    pub fn find(&self, token: &str) -> Option<Session> {
        let now = Instant::now();
        let mut held = self.lock();
        let key = digest(token);
        let h = held.get_mut(&key)?;
        if !live(h, now) {
            held.remove(&key);
            return None;
        }
        h.last_used = now;
        Some(h.session.clone())
    }

    /// Ends the session of `token`.
    pub fn end(&self, token: &str) {
        self.lock().remove(&digest(token));
    }

    /// Ends every session of `person` (sign out everywhere).
    pub fn end_all(&self, person: &Person) {
        self.lock().retain(|_, h| &h.session.person != person);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn live(h: &Held, now: Instant) -> bool {
    now.duration_since(h.last_used) < IDLE && now.duration_since(h.started) < LIFETIME
}

/// The throttle on failed sign-ins: per username (or card) and per source address, so that
/// guessing one person's password from many addresses, or many people's from one, is slow.
pub struct SignInThrottle {
    by_name: Mutex<Window<String>>,
    by_address: Mutex<Window<IpAddr>>,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        SignInThrottle {
            by_name: Mutex::new(Window::new(SIGN_IN_FAILURES_PER_NAME, SIGN_IN_WINDOW)),
            by_address: Mutex::new(Window::new(SIGN_IN_FAILURES_PER_ADDRESS, SIGN_IN_WINDOW)),
        }
    }
}

impl SignInThrottle {
    /// How long `name` from `address` must wait before trying again, if it must.
    pub fn blocked(&self, name: &str, address: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let by_name = lock(&self.by_name).blocked(&name.to_owned(), now);
        let by_address = address.and_then(|a| lock(&self.by_address).blocked(&a, now));
        by_name.max(by_address)
    }

    /// Counts a failed sign-in as `name` from `address`.
    pub fn failed(&self, name: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        lock(&self.by_name).record(name.to_owned(), now);
        if let Some(a) = address {
            lock(&self.by_address).record(a, now);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u32) -> Person {
        Person::Member {
            account: Uuid::nil(),
            generation: n,
        }
    }

    #[test]
    fn a_session_is_found_by_its_token_only_until_it_ends() {
        let sessions = Sessions::default();
        let token = sessions.start(member(0));
        let found = sessions.find(&token).unwrap();
        assert_eq!(found.person, member(0));
        assert_eq!(found.csrf.len(), 43);
        assert!(sessions.find(&random_token()).is_none());
        sessions.end(&token);
        assert!(sessions.find(&token).is_none());
    }

    #[test]
    fn signing_out_everywhere_ends_every_session_of_the_person_only() {
        let sessions = Sessions::default();
        let a = sessions.start(member(0));
        let b = sessions.start(member(0));
        let other = sessions.start(member(1));
        sessions.end_all(&member(0));
        assert!(sessions.find(&a).is_none() && sessions.find(&b).is_none());
        assert!(sessions.find(&other).is_some());
    }

    #[test]
    fn a_person_holds_at_most_the_limit_the_oldest_going_first() {
        let sessions = Sessions::default();
        let first = sessions.start(member(0));
        let rest: Vec<String> = (0..MAX_PER_PERSON)
            .map(|_| sessions.start(member(0)))
            .collect();
        assert!(sessions.find(&first).is_none());
        assert!(rest.iter().all(|t| sessions.find(t).is_some()));
    }

    #[test]
    fn failures_beyond_the_limit_block_the_name_from_any_address() {
        let throttle = SignInThrottle::default();
        for i in 0..SIGN_IN_FAILURES_PER_NAME {
            let address = IpAddr::from([10, 0, 0, i as u8]);
            assert!(throttle.blocked("ana", Some(address)).is_none());
            throttle.failed("ana", Some(address));
        }
        assert!(throttle
            .blocked("ana", Some([10, 9, 9, 9].into()))
            .is_some());
        assert!(throttle
            .blocked("bob", Some([10, 9, 9, 9].into()))
            .is_none());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd") && !same_token("abc", "ab"));
    }
}
