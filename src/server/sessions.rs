//! The table of open sessions: bounded in number (in all, per caller, per agent, GET streams per caller) and
//! expired when idle. Ids it expired are remembered for as long as a sealed id could be resumed, so that a
//! replica never brings back a session it let lapse.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::session::Session;

/// Why a session or a GET stream was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionLimit {
    #[error("too many sessions")]
    Full,
    #[error(
        "this caller already holds {0} sessions (limits.max_sessions_per_subject); close one (DELETE /mcp) or \
         let one expire"
    )]
    Subject(usize),
    #[error(
        "{0} sessions are already open through this agent (limits.max_sessions_per_agent); close one (DELETE \
         /mcp) or let one expire"
    )]
    Agent(usize),
    #[error(
        "this caller already holds {0} GET streams (limits.max_streams_per_subject); close one before opening \
         another"
    )]
    Streams(usize),
}

/// Every open session, bounded in number (in all, per caller, per agent) and expired when idle.
pub struct Sessions {
    map: DashMap<Arc<str>, Arc<Session>>,
    max: usize,
    per_subject: Counted,
    per_agent: Counted,
    streams: Counted,
    /// Ids expired here for idleness, with when: never resumed from their sealed id.
    lapsed: DashMap<Arc<str>, Instant>,
}

/// Most lapsed ids remembered; beyond, those older than a sealed id's lifetime are forgotten first.
const MAX_LAPSED: usize = 65_536;

/// Counts per key, each at most `max`.
struct Counted {
    counts: DashMap<String, usize>,
    max: usize,
}

impl Counted {
    fn new(max: usize) -> Self {
        Self {
            counts: DashMap::new(),
            max,
        }
    }

    /// Counts one more for `key`, unless it holds `max` already.
    fn take(&self, key: &str) -> bool {
        let mut count = self.counts.entry(key.to_string()).or_insert(0);
        if *count >= self.max {
            return false;
        }
        *count += 1;
        true
    }

    fn give(&self, key: &str) {
        if let Some(mut count) = self.counts.get_mut(key) {
            *count = count.saturating_sub(1);
        }
        self.counts.remove_if(key, |_, count| *count == 0);
    }
}

/// A GET stream counted against its caller; dropping it (the stream ended) gives the place back.
pub struct StreamPermit {
    sessions: Arc<Sessions>,
    subject: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.sessions.streams.give(&self.subject);
    }
}

impl Sessions {
    pub fn new(limits: &crate::config::Limits) -> Arc<Self> {
        Arc::new(Self {
            map: DashMap::new(),
            max: limits.max_sessions,
            per_subject: Counted::new(limits.max_sessions_per_subject),
            per_agent: Counted::new(limits.max_sessions_per_agent),
            streams: Counted::new(limits.max_streams_per_subject),
            lapsed: DashMap::new(),
        })
    }

    /// Adds a session, within the limits: in all, for its caller, through its agent.
    /// A session of the same id already there (resumed by two requests at once) is kept, not counted twice.
    pub fn insert(&self, session: Arc<Session>) -> Result<Arc<Session>, SessionLimit> {
        // Counted before the entry is held: counting reads every shard, the held one too.
        if self.map.len() >= self.max {
            return Err(SessionLimit::Full);
        }
        let slot = match self.map.entry(Arc::clone(&session.id)) {
            dashmap::Entry::Occupied(existing) => return Ok(Arc::clone(existing.get())),
            dashmap::Entry::Vacant(slot) => slot,
        };
        if !self.per_subject.take(&session.subject) {
            return Err(SessionLimit::Subject(self.per_subject.max));
        }
        if !self.per_agent.take(&session.agent) {
            self.per_subject.give(&session.subject);
            return Err(SessionLimit::Agent(self.per_agent.max));
        }
        session.touch();
        slot.insert(Arc::clone(&session));
        Ok(session)
    }

    /// A place for one more GET stream of `subject`.
    pub fn stream_permit(self: &Arc<Self>, subject: &str) -> Result<StreamPermit, SessionLimit> {
        if !self.streams.take(subject) {
            return Err(SessionLimit::Streams(self.streams.max));
        }
        Ok(StreamPermit {
            sessions: Arc::clone(self),
            subject: subject.to_string(),
        })
    }

    /// The session, without counting the lookup as its client's activity.
    pub fn peek(&self, id: &str) -> Option<Arc<Session>> {
        self.map.get(id).map(|s| Arc::clone(&s))
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let session = self.map.get(id).map(|s| Arc::clone(&s))?;
        session.touch();
        Some(session)
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let (_, session) = self.map.remove(id)?;
        self.per_subject.give(&session.subject);
        self.per_agent.give(&session.agent);
        session.close();
        Some(session)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Calls `f` for every session.
    pub fn for_each(&self, mut f: impl FnMut(&Session)) {
        for entry in self.map.iter() {
            f(entry.value());
        }
    }

    /// Closes sessions idle for longer than `idle`; returns their ids.
    /// Whether this table expired the session `id` for idleness.
    pub fn lapsed(&self, id: &str) -> bool {
        self.lapsed.contains_key(id)
    }

    pub fn expire(&self, idle: Duration) -> Vec<Arc<str>> {
        let stale: Vec<Arc<str>> = self
            .map
            .iter()
            .filter(|e| e.value().idle() > idle && !e.value().has_stream())
            .map(|e| Arc::clone(e.key()))
            .collect();
        if self.lapsed.len() + stale.len() > MAX_LAPSED {
            let lifetime = Duration::from_secs(super::tickets::MAX_AGE_SECS.unsigned_abs());
            self.lapsed.retain(|_, at| at.elapsed() < lifetime);
        }
        for id in &stale {
            tracing::debug!(session = %id, "session expired");
            self.remove(id);
            if self.lapsed.len() < MAX_LAPSED {
                self.lapsed.insert(Arc::clone(id), Instant::now());
            }
        }
        stale
    }
}
