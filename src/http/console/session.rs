//! Console sessions: what the login form's cookie stands for.
//!
//! A session is a random 256-bit token, kept as its SHA-256 digest (the cookie's value is
//! never stored), with its own CSRF token and an expiry. A plain state machine: the caller
//! passes the clock, so tests drive time by hand.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::super::auth::digest;

/// How long a session lasts from login (it does not slide).
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// At most this many sessions at once: the oldest goes first.
const MAX_SESSIONS: usize = 256;

#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    expires: Instant,
}

/// A session just opened: the cookie's value and the CSRF token the pages send back.
#[derive(Debug, Clone)]
pub struct Opened {
    pub token: String,
    pub csrf: String,
}

/// The open sessions, by the digest of their token.
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_hex() -> String {
    crate::ledger::keys::hex(&rand::random())
}

impl Sessions {
    /// Opens a session at `now`.
    pub fn open(&self, now: Instant) -> Opened {
        let opened = Opened {
            token: random_hex(),
            csrf: random_hex(),
        };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|_, s| s.expires > now);
        if open.len() >= MAX_SESSIONS {
            if let Some(oldest) = open.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) {
                open.remove(&oldest);
            }
        }
        open.insert(
            digest(opened.token.as_bytes()),
            Session {
                csrf: opened.csrf.clone(),
                expires: now + LIFETIME,
            },
        );
        opened
    }

    /// The CSRF token of the session `token` names, if it is open at `now`.
    pub fn csrf(&self, token: &str, now: Instant) -> Option<String> {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&digest(token.as_bytes()))
            .filter(|s| s.expires > now)
            .map(|s| s.csrf.clone())
    }

    /// Ends the session `token` names.
    pub fn close(&self, token: &str) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.remove(&digest(token.as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_expires_and_closes() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let a = sessions.open(t0);
        assert_eq!(a.token.len(), 64);
        assert_ne!(a.token, a.csrf);
        assert_eq!(sessions.csrf(&a.token, t0).as_deref(), Some(&*a.csrf));
        assert_eq!(sessions.csrf("not-a-session", t0), None);
        assert_eq!(sessions.csrf(&a.token, t0 + LIFETIME), None, "expired");
        let b = sessions.open(t0);
        sessions.close(&b.token);
        assert_eq!(sessions.csrf(&b.token, t0), None, "closed");
    }

    #[test]
    fn the_oldest_session_gives_way() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let first = sessions.open(t0);
        for i in 1..=MAX_SESSIONS as u64 {
            sessions.open(t0 + Duration::from_secs(i));
        }
        assert_eq!(sessions.csrf(&first.token, t0), None);
        assert_eq!(sessions.open.lock().unwrap().len(), MAX_SESSIONS);
    }
}
