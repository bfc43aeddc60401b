//! Console sign-ins: a random id in an HttpOnly cookie, kept (by its SHA-256) in memory with the admin it stands
//! for, its CSRF token and its end. Short-lived, bounded in number, ended by sign-out.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use sha2::{Digest, Sha256};

use super::super::Admin;

/// At most this many console sessions at once; a sign-in beyond them is refused until some end.
pub(super) const MAX_SESSIONS: usize = 256;

/// One signed-in admin.
#[derive(Clone, Debug)]
pub(in crate::admin) struct Signed {
    pub admin: Admin,
    /// Every state-changing form carries it back.
    pub csrf: String,
    /// The cookie's value: what sign-out ends.
    pub id: String,
    ends: Instant,
    /// A message for the next page shown (the outcome of the last action).
    flash: Option<String>,
}

/// At most this many sessions of one admin identity; signing in again beyond them ends its oldest.
pub(super) const MAX_PER_ADMIN: usize = 8;

/// The console's sessions, and the work that only a few of them may do at a time.
#[derive(Default)]
pub(in crate::admin) struct ConsoleSessions {
    sessions: DashMap<[u8; 32], Signed>,
    /// Held while the chains are verified (each verification reads every chain).
    pub verifying: tokio::sync::Mutex<()>,
    /// Reports, exports and searches that may read every record: a few at a time.
    pub heavy: HeavyWork,
}

/// A bound on the console's reads of every record at once.
pub(in crate::admin) struct HeavyWork(tokio::sync::Semaphore);

impl Default for HeavyWork {
    fn default() -> Self {
        Self(tokio::sync::Semaphore::new(2))
    }
}

impl HeavyWork {
    /// Waits (up to 30 s) for a turn; none when the gateway is that busy.
    pub async fn turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        tokio::time::timeout(Duration::from_secs(30), self.0.acquire())
            .await
            .ok()?
            .ok()
    }
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn random() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    // Without randomness no session can be made safely: an empty id is refused by `start`.
    if getrandom::fill(&mut bytes).is_err() {
        return String::new();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl ConsoleSessions {
    /// Signs `admin` in for `ttl` (never beyond `token_exp`, Unix seconds): the new session, or `None` when too
    /// many are open or no random id can be made.
    pub fn start(&self, admin: Admin, ttl: Duration, token_exp: Option<i64>) -> Option<Signed> {
        let now = Instant::now();
        self.sessions.retain(|_, s| s.ends > now);
        // One identity cannot fill the table: beyond its share, its oldest session ends.
        let mut own: Vec<([u8; 32], Instant)> = self
            .sessions
            .iter()
            .filter(|s| s.admin.label == admin.label)
            .map(|s| (*s.key(), s.ends))
            .collect();
        own.sort_by_key(|(_, ends)| *ends);
        let beyond = (own.len() + 1).saturating_sub(MAX_PER_ADMIN);
        for (key, _) in own.into_iter().take(beyond) {
            self.sessions.remove(&key);
        }
        if self.sessions.len() >= MAX_SESSIONS {
            return None;
        }
        let ttl = match token_exp {
            Some(exp) => {
                let left = exp.saturating_sub(crate::clock::unix_now());
                ttl.min(Duration::from_secs(u64::try_from(left).unwrap_or(0)))
            }
            None => ttl,
        };
        let (id, csrf) = (random(), random());
        if id.is_empty() || csrf.is_empty() || ttl.is_zero() {
            return None;
        }
        let signed = Signed {
            admin,
            csrf,
            id: id.clone(),
            ends: now + ttl,
            flash: None,
        };
        self.sessions.insert(key(&id), signed.clone());
        Some(signed)
    }

    /// The session of a cookie's value, if it has not ended.
    pub fn get(&self, id: &str) -> Option<Signed> {
        let key = key(id);
        let signed = self.sessions.get(&key).map(|s| s.clone())?;
        if signed.ends <= Instant::now() {
            self.sessions.remove(&key);
            return None;
        }
        Some(signed)
    }

    /// Seconds the session has left (the cookie's `Max-Age`).
    pub fn left(signed: &Signed) -> u64 {
        signed
            .ends
            .saturating_duration_since(Instant::now())
            .as_secs()
    }

    pub fn end(&self, id: &str) {
        self.sessions.remove(&key(id));
    }

    /// Keeps a message for the session's next page.
    pub fn flash(&self, id: &str, message: String) {
        if let Some(mut signed) = self.sessions.get_mut(&key(id)) {
            signed.flash = Some(message);
        }
    }

    /// The message kept for this page, once.
    pub fn take_flash(&self, id: &str) -> Option<String> {
        self.sessions
            .get_mut(&key(id))
            .and_then(|mut s| s.flash.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classification::Classification;
    use crate::config::AdminRole;

    fn admin() -> Admin {
        Admin {
            label: "bootstrap".into(),
            token: None,
            clearance: Classification::Internal,
            role: AdminRole::Admin,
            claims: None,
        }
    }

    #[test]
    fn sessions_end_with_their_time_their_token_and_sign_out() {
        let sessions = ConsoleSessions::default();
        let signed = sessions
            .start(admin(), Duration::from_secs(60), None)
            .unwrap();
        assert_ne!(signed.id, signed.csrf);
        assert!(sessions.get(&signed.id).is_some());
        assert!(sessions.get(&signed.csrf).is_none());
        sessions.end(&signed.id);
        assert!(sessions.get(&signed.id).is_none());
        // A token that has expired signs nobody in; one about to expire bounds the session.
        let past = crate::clock::unix_now() - 1;
        assert!(
            sessions
                .start(admin(), Duration::from_secs(60), Some(past))
                .is_none()
        );
        let soon = crate::clock::unix_now() + 5;
        let short = sessions
            .start(admin(), Duration::from_secs(600), Some(soon))
            .unwrap();
        assert!(ConsoleSessions::left(&short) <= 5);
        let gone = sessions.start(admin(), Duration::ZERO, None);
        assert!(gone.is_none());
    }

    #[test]
    fn sessions_are_bounded_per_admin_and_in_all() {
        let sessions = ConsoleSessions::default();
        let first = sessions
            .start(admin(), Duration::from_secs(60), None)
            .unwrap();
        for _ in 1..MAX_PER_ADMIN {
            sessions
                .start(admin(), Duration::from_secs(60), None)
                .unwrap();
        }
        assert!(sessions.get(&first.id).is_some());
        // One more of the same admin ends its oldest.
        sessions
            .start(admin(), Duration::from_secs(60), None)
            .unwrap();
        assert!(sessions.get(&first.id).is_none());
        assert_eq!(sessions.sessions.len(), MAX_PER_ADMIN);
        // Many admins together still meet the overall bound.
        let mut n = 0;
        while sessions.sessions.len() < MAX_SESSIONS {
            let mut other = admin();
            other.label = format!("admin-{}", n / MAX_PER_ADMIN);
            sessions
                .start(other, Duration::from_secs(60), None)
                .unwrap();
            n += 1;
        }
        let mut late = admin();
        late.label = "late".into();
        assert!(
            sessions
                .start(late, Duration::from_secs(60), None)
                .is_none()
        );
    }

    #[test]
    fn a_flash_is_shown_once() {
        let sessions = ConsoleSessions::default();
        let signed = sessions
            .start(admin(), Duration::from_secs(60), None)
            .unwrap();
        sessions.flash(&signed.id, "done".into());
        assert_eq!(sessions.take_flash(&signed.id).as_deref(), Some("done"));
        assert_eq!(sessions.take_flash(&signed.id), None);
    }
}
