//! Session ids that carry their session: what `initialize` negotiated (version, client capabilities) and whose it
//! is, sealed with the key every replica shares (AES-256-GCM). A request naming a session this replica does not
//! hold (its replica died, or the load balancer sent it elsewhere) resumes it here, for the same subject only.
//! Nothing else is carried: a resumed session has no GET stream, subscriptions or log level until the client
//! makes them again. A session the client deleted is remembered as ended (in the shared store), and never resumed;
//! nor is one this replica expired for idleness. Only replicas (PostgreSQL) seal ids: a single gateway's stay
//! plain random ids, as sessions cannot move anywhere.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::AppState;
use super::session::Session;
use crate::identity::Caller;

const PURPOSE: &str = "toolgate session";
/// Longest sealed content of an id: what does not fit gets a plain random id (not resumable elsewhere).
const MAX_TICKET: usize = 2048;
/// Longest id opened: what a sealed ticket can be (Base64 of nonce, content and tag), no more.
const MAX_ID: usize = (MAX_TICKET + 28) * 4 / 3 + 4;
/// How long after `initialize` a session may still be resumed.
pub const MAX_AGE_SECS: i64 = 24 * 3600;

#[derive(Serialize, Deserialize)]
struct Ticket {
    /// The subject key (`iss` and `sub`).
    s: String,
    /// The agent it was opened through.
    a: String,
    /// Negotiated protocol version.
    v: String,
    /// The client's capabilities.
    c: serde_json::Value,
    /// Opened at (Unix seconds).
    t: i64,
}

/// A new session for `caller`, its id a ticket when it fits.
pub(super) fn open(
    state: &AppState,
    protocol_version: String,
    caller: &Caller,
    capabilities: serde_json::Value,
) -> Arc<Session> {
    let ticket = Ticket {
        s: caller.subject_key(),
        a: caller.actor.clone(),
        v: protocol_version.clone(),
        c: capabilities.clone(),
        t: crate::clock::unix_now(),
    };
    // A single gateway has nowhere else to resume a session: its ids stay plain.
    let replicated = state.gateway.config.storage.postgres.is_some();
    let sealed = serde_json::to_vec(&ticket)
        .ok()
        .filter(|_| replicated)
        .filter(|payload| payload.len() <= MAX_TICKET)
        .and_then(|payload| state.gateway.sessions.seal(PURPOSE, &payload));
    let session = match sealed {
        Some(id) => Session::with_id(id, protocol_version, ticket.s, ticket.a),
        None => Session::new(protocol_version, ticket.s, ticket.a),
    };
    session.set_client_capabilities_value(capabilities);
    session
}

/// Why a session id cannot be resumed here.
pub(super) enum NotResumed {
    /// Not a ticket toolgate sealed, lapsed, or ended by its client.
    Unknown,
    /// Another subject's session, or another agent's.
    OtherSubject,
    /// The session table or the caller's share of it is full.
    Limit(super::session::SessionLimit),
}

/// Resumes the session whose id is `id` for `caller`.
pub(super) async fn resume(
    state: &AppState,
    id: &str,
    caller: &Caller,
) -> Result<Arc<Session>, NotResumed> {
    // A single gateway seals no id: nothing to open (no work for a made-up one).
    if state.gateway.config.storage.postgres.is_none()
        || id.len() > MAX_ID
        || state.sessions.lapsed(id)
    {
        return Err(NotResumed::Unknown);
    }
    let ticket: Ticket = state
        .gateway
        .sessions
        .open(PURPOSE, id)
        .and_then(|payload| serde_json::from_slice(&payload).ok())
        .ok_or(NotResumed::Unknown)?;
    if crate::clock::unix_now() - ticket.t > MAX_AGE_SECS {
        return Err(NotResumed::Unknown);
    }
    // The same subject through the same agent: another agent of the same person gets its own session.
    if ticket.s != caller.subject_key() || ticket.a != caller.actor {
        return Err(NotResumed::OtherSubject);
    }
    // Fails closed: a store that cannot say whether the client ended it resumes nothing.
    match state.gateway.store.session_ended(id.to_string()).await {
        Ok(false) => {}
        Ok(true) => return Err(NotResumed::Unknown),
        Err(e) => {
            tracing::warn!("session not resumed: {e}");
            return Err(NotResumed::Unknown);
        }
    }
    let session = Session::with_id(id.to_string(), ticket.v, ticket.s, ticket.a);
    session.set_client_capabilities_value(ticket.c);
    session.mark_initialized();
    let session = state.sessions.insert(session).map_err(NotResumed::Limit)?;
    tracing::info!(session = %session.id, subject = %caller.subject, "session resumed on this replica");
    Ok(session)
}

/// Remembers that the client ended the session, so that no replica resumes it (with replicas only: a single
/// gateway's plain ids resume nowhere).
pub(super) async fn ended(state: &AppState, id: &str) -> Result<(), crate::store::StoreError> {
    if state.gateway.config.storage.postgres.is_none() {
        return Ok(());
    }
    state.gateway.store.end_session(id.to_string()).await
}
