//! Revoked credentials: by token id, by `(iss, sub)`, by agent, optionally only for tokens issued before a time.
//! The store keeps them across restarts; this index answers on every request without touching the disk.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use dashmap::DashMap;

use super::{AuthError, Caller};
use crate::store::{Revocation, RevocationTarget, Store, StoreError};

/// In-memory index of every revocation, loaded from the store at start and updated with it.
pub struct Revocations {
    store: Store,
    /// By `(issuer, jti)`; an empty issuer means any issuer.
    tokens: DashMap<(String, String), Option<i64>>,
    subjects: DashMap<(String, String), Option<i64>>,
    agents: DashMap<String, Option<i64>>,
    presented: AtomicU64,
    /// The highest id read from the store: a replica reads those above it when another changes them. Moved only
    /// by reading the store in id order, never by a revocation made here (one made elsewhere may have a lower id
    /// and not be read yet).
    last_id: AtomicI64,
    /// With revocations shared by replicas: how long they may go unconfirmed before every credential is refused,
    /// and when they were last confirmed (ms since `epoch`: a monotonic clock, which no clock step moves).
    stale_after_ms: OnceLock<u64>,
    epoch: std::time::Instant,
    confirmed_ms: AtomicU64,
    /// Woken whenever a revocation is indexed: open streams check their caller at once.
    indexed: tokio::sync::Notify,
}

/// `None` (everything) wins over any time; a later cut-off wins over an earlier one.
fn widen(current: Option<Option<i64>>, new: Option<i64>) -> Option<i64> {
    match (current, new) {
        (None, new) => new,
        (Some(None), _) | (_, None) => None,
        (Some(Some(a)), Some(b)) => Some(a.max(b)),
    }
}

fn applies(cut_off: Option<i64>, issued_at: i64) -> bool {
    cut_off.is_none_or(|t| issued_at < t)
}

impl Revocations {
    /// Loads every stored revocation; failing to read them fails start-up.
    pub async fn load(store: Store) -> Result<Self, StoreError> {
        let revocations = Self {
            store,
            tokens: DashMap::new(),
            subjects: DashMap::new(),
            agents: DashMap::new(),
            presented: AtomicU64::new(0),
            last_id: AtomicI64::new(0),
            stale_after_ms: OnceLock::new(),
            epoch: std::time::Instant::now(),
            confirmed_ms: AtomicU64::new(0),
            indexed: tokio::sync::Notify::new(),
        };
        revocations.catch_up().await?;
        Ok(revocations)
    }

    fn index(&self, revocation: &Revocation) {
        let cut = revocation.issued_before;
        match &revocation.target {
            RevocationTarget::Token { jti, issuer } => {
                let key = (issuer.clone().unwrap_or_default(), jti.clone());
                let merged = widen(self.tokens.get(&key).map(|v| *v), cut);
                self.tokens.insert(key, merged);
            }
            RevocationTarget::Subject { issuer, subject } => {
                let key = (issuer.clone(), subject.clone());
                let merged = widen(self.subjects.get(&key).map(|v| *v), cut);
                self.subjects.insert(key, merged);
            }
            RevocationTarget::Agent { agent } => {
                let merged = widen(self.agents.get(agent).map(|v| *v), cut);
                self.agents.insert(agent.clone(), merged);
            }
        }
    }

    /// Stores a revocation, then applies it: it takes effect on the next request.
    pub async fn revoke(&self, revocation: Revocation) -> Result<Revocation, StoreError> {
        let stored = self.store.add_revocation(revocation).await?;
        self.index(&stored);
        self.indexed.notify_waiters();
        Ok(stored)
    }

    /// Reads the revocations stored since the last one indexed (by another replica) and applies them; on
    /// success, the state counts as confirmed now. Returns how many were new.
    pub async fn catch_up(&self) -> Result<usize, StoreError> {
        let after = self.last_id.load(Ordering::Acquire);
        let new = self.store.revocations_after(after).await?;
        for revocation in &new {
            self.last_id.fetch_max(revocation.id, Ordering::AcqRel);
            self.index(revocation);
        }
        self.confirmed_ms
            .store(self.elapsed_ms(), Ordering::Release);
        if !new.is_empty() {
            self.indexed.notify_waiters();
        }
        Ok(new.len())
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// From now on, revocations unconfirmed for longer than `stale_after` refuse every credential.
    pub fn require_confirmation(&self, stale_after: std::time::Duration) {
        let ms = u64::try_from(stale_after.as_millis()).unwrap_or(u64::MAX);
        let _ = self.stale_after_ms.set(ms);
    }

    /// Resolves at the next revocation indexed after this call (registered at once, before being awaited).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.indexed.notified()
    }

    pub async fn list(&self) -> Result<Vec<Revocation>, StoreError> {
        self.store.revocations().await
    }

    /// How many requests presented a revoked credential.
    pub fn presented(&self) -> u64 {
        self.presented.load(Ordering::Relaxed)
    }

    /// Refuses a caller whose token, subject or any agent in its chain is revoked.
    pub fn check(&self, caller: &Caller) -> Result<(), AuthError> {
        self.check_parts(
            &caller.issuer,
            &caller.subject,
            caller.token_id.as_deref(),
            caller.issued_at,
            &caller.chain,
        )
    }

    /// The same check for a token's parts (also used for admin tokens).
    pub fn check_parts(
        &self,
        issuer: &str,
        subject: &str,
        token_id: Option<&str>,
        issued: i64,
        chain: &[String],
    ) -> Result<(), AuthError> {
        if let Some(&stale) = self.stale_after_ms.get() {
            let unconfirmed = self
                .elapsed_ms()
                .saturating_sub(self.confirmed_ms.load(Ordering::Acquire));
            if unconfirmed > stale {
                return Err(AuthError::RevocationStateUnknown(unconfirmed));
            }
        }
        let token_revoked = |jti: &str| {
            [issuer, ""].iter().any(|i| {
                self.tokens
                    .get(&(i.to_string(), jti.to_string()))
                    .is_some_and(|c| applies(*c, issued))
            })
        };
        let hit = if let Some(jti) = token_id
            && token_revoked(jti)
        {
            Some(format!("token `{jti}`"))
        } else if self
            .subjects
            .get(&(issuer.to_string(), subject.to_string()))
            .is_some_and(|c| applies(*c, issued))
        {
            Some(format!("subject `{subject}`"))
        } else {
            chain
                .iter()
                .find(|agent| self.agents.get(*agent).is_some_and(|c| applies(*c, issued)))
                .map(|agent| format!("agent `{agent}`"))
        };
        match hit {
            None => Ok(()),
            Some(what) => {
                let count = self.presented.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    %issuer, %subject, ?chain, token = token_id.unwrap_or(""), revoked = %what,
                    presented_total = count, "revoked credential presented"
                );
                Err(AuthError::Revoked(what))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revocation(agent: &str) -> Revocation {
        Revocation {
            id: 0,
            target: RevocationTarget::Agent {
                agent: agent.into(),
            },
            issued_before: None,
            reason: None,
            created_at: 0,
            created_by: "admin".into(),
        }
    }

    /// Another replica's revocation, stored before one made here but not read yet, is read at the next catch-up:
    /// one made here never moves past it.
    #[tokio::test]
    async fn a_revocation_made_here_never_hides_one_made_elsewhere() {
        let store = Store::in_memory().unwrap();
        let revocations = Revocations::load(store.clone()).await.unwrap();
        let elsewhere = store.add_revocation(revocation("scout")).await.unwrap();
        let here = revocations.revoke(revocation("helper")).await.unwrap();
        assert!(elsewhere.id < here.id);
        let agent_revoked = |agent: &str| {
            revocations
                .check_parts("iss", "sub", None, 0, &[agent.to_string()])
                .is_err()
        };
        assert!(agent_revoked("helper"));
        assert!(!agent_revoked("scout"), "not read yet");
        assert_eq!(revocations.catch_up().await.unwrap(), 2);
        assert!(agent_revoked("scout"));
    }

    #[tokio::test]
    async fn unconfirmed_revocations_refuse_every_credential() {
        let revocations = Revocations::load(Store::in_memory().unwrap())
            .await
            .unwrap();
        revocations.require_confirmation(std::time::Duration::from_millis(50));
        revocations.catch_up().await.unwrap();
        assert!(revocations.check_parts("iss", "sub", None, 0, &[]).is_ok());
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        assert!(matches!(
            revocations.check_parts("iss", "sub", None, 0, &[]),
            Err(AuthError::RevocationStateUnknown(_))
        ));
        revocations.catch_up().await.unwrap();
        assert!(revocations.check_parts("iss", "sub", None, 0, &[]).is_ok());
    }
}
