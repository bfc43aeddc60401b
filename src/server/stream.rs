//! Server-sent events: the GET stream of a session, and closing a session.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::identity::{Caller, Identity};
use rmcp::model::{ErrorCode, ServerJsonRpcMessage};

use super::handlers::{
    accepts, authenticate, check_version, http_error, session_limit, session_of,
};
use super::replay::parse_event_id;
use super::{AppState, SESSION_HEADER, Session, jsonrpc};

pub(super) fn sse_frame(message: &ServerJsonRpcMessage) -> Bytes {
    let mut frame = b"event: message\ndata: ".to_vec();
    frame.extend_from_slice(&jsonrpc::to_bytes(message));
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// A frame with an event id, so that the client can resume after it; `retry` (ms) tells it how long to wait
/// before it reconnects.
pub(super) fn sse_frame_with_id(
    message: &ServerJsonRpcMessage,
    id: &str,
    retry: Option<u64>,
) -> Bytes {
    let mut frame = format!(
        "id: {id}
"
    )
    .into_bytes();
    if let Some(retry) = retry {
        frame.extend_from_slice(
            format!(
                "retry: {retry}
"
            )
            .as_bytes(),
        );
    }
    frame.extend_from_slice(&sse_frame(message));
    Bytes::from(frame)
}

pub(super) fn sse_response(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub(super) async fn get_stream(
    State(state): State<AppState>,
    peer: axum::extract::ConnectInfo<std::net::SocketAddr>,
    uri: http::Uri,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let caller = authenticate(&state, &headers, &http::Method::GET, &uri, peer)?;
    if !accepts(&headers, "text/event-stream") {
        return Err(http_error(
            StatusCode::NOT_ACCEPTABLE,
            ErrorCode::INVALID_REQUEST,
            "Accept must include text/event-stream",
        ));
    }
    check_version(&headers)?;
    let session = session_of(&state, &headers, &caller).await?;
    // Counted against the caller while the stream lasts; given back when the stream ends, however it ends.
    let permit = state
        .sessions
        .stream_permit(&session.subject)
        .map_err(session_limit)?;
    // A call's answer stream resumed after the last event the client got: only in the session that made the call.
    if let Some(last) = headers.get("last-event-id") {
        let events = last
            .to_str()
            .ok()
            .and_then(parse_event_id)
            .and_then(|(stream, sequence)| {
                Some(session.replay(stream)?.events_after(Some(sequence)))
            })
            .ok_or_else(|| {
                http_error(
                    StatusCode::NOT_FOUND,
                    ErrorCode::INVALID_REQUEST,
                    "this event stream cannot be resumed from that id: no answer stream of this session has it \
                     (unknown, or forgotten a minute after its answer)",
                )
            })?;
        // Ends as a GET stream does: with the session, the credential, or the gateway.
        let identity = Arc::clone(&state.gateway.identity);
        let ended = async move {
            tokio::select! {
                () = session_closed(session) => {}
                () = credential_lapses(identity, caller) => {}
            }
        };
        let stream = events.take_until(ended).map(move |frame| {
            let _held = &permit;
            Ok::<_, Infallible>(frame)
        });
        return Ok(sse_response(Body::from_stream(stream)));
    }
    let Some(rx) = session.open_stream() else {
        return Err(http_error(
            StatusCode::CONFLICT,
            ErrorCode::INVALID_REQUEST,
            "this session already has a GET stream",
        ));
    };
    let messages = futures::stream::unfold(rx, |mut rx| async move {
        let message = rx.recv().await?;
        Some((sse_frame(&message), rx))
    });
    let keepalive = futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_secs(15)).await;
        Some((Bytes::from_static(b": keepalive\n\n"), ()))
    });
    let stream = futures::stream::select(messages.map(Some), keepalive.map(Some))
        .take_while(|m| std::future::ready(m.is_some()))
        .filter_map(std::future::ready)
        .map(Ok::<_, Infallible>);
    // End the stream when the session closes, the token expires or its credential is revoked.
    let identity = Arc::clone(&state.gateway.identity);
    let draining = state.gateway.draining.clone();
    let ended = async move {
        tokio::select! {
            () = session_closed(session) => {}
            () = credential_lapses(identity, caller) => {}
            () = draining.cancelled() => {}
        }
    };
    let stream = stream.take_until(ended).map(move |frame| {
        let _held = &permit;
        frame
    });
    Ok(sse_response(Body::from_stream(stream)))
}

/// Resolves when the caller's token expires or one of its credentials is revoked.
pub(super) async fn credential_lapses(identity: Arc<Identity>, caller: Caller) {
    loop {
        // Armed before the check, so that a revocation indexed in between is not missed.
        let revoked = identity.revocations().changed();
        let now = jsonwebtoken::get_current_timestamp() as i64;
        if now >= caller.expires_at || identity.revocations().check(&caller).is_err() {
            return;
        }
        let until_expiry = Duration::from_secs(caller.expires_at.saturating_sub(now).max(0) as u64);
        tokio::select! {
            () = revoked => {}
            () = tokio::time::sleep(until_expiry.min(Duration::from_secs(2))) => {}
        }
    }
}

pub(super) async fn session_closed(session: Arc<Session>) {
    session.closed().await;
}

pub(super) async fn delete_session(
    State(state): State<AppState>,
    peer: axum::extract::ConnectInfo<std::net::SocketAddr>,
    uri: http::Uri,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let caller = authenticate(&state, &headers, &http::Method::DELETE, &uri, peer)?;
    session_of(&state, &headers, &caller).await?;
    let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(http_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::INVALID_REQUEST,
            "missing Mcp-Session-Id header",
        ));
    };
    // Remembered as ended before it is closed: a session no replica may resume, or none closed at all.
    if let Err(e) = super::tickets::ended(&state, id).await {
        tracing::warn!("session not closed: {e}");
        return Err(http_error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::INTERNAL_ERROR,
            "the session cannot be closed now (the shared store does not answer); try again",
        ));
    }
    match state.sessions.remove(id) {
        Some(session) => {
            tracing::info!(session = %session.id, "session closed by client");
            state.gateway.forget_session(&session.id);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        None => Err(http_error(
            StatusCode::NOT_FOUND,
            ErrorCode::INVALID_REQUEST,
            "unknown or expired session",
        )),
    }
}
