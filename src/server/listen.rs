//! `subscriptions/listen` (protocol 2026-07-28): a long-lived event stream of the list changes and resource
//! updates its request opted in to. Each stream is a session of its own in the session table (counted against its
//! caller like any session and stream, found by the list-change fan-out and by resource updates) that nobody can
//! name: it ends with the stream. Every resource it asks for is decided as `resources/subscribe` is (one it may
//! not subscribe to is left out of the acknowledgment, as one that does not exist is); each update is decided
//! again at delivery. The stream ends, with the request's final answer, when the caller's token expires, one of
//! its credentials is revoked, or the gateway drains; closing it ends the subscription.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures::StreamExt;
use rmcp::model::{RequestId, SubscriptionsListenRequestParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::handlers::session_limit;
use super::modern::{META_SUBSCRIPTION, MODERN_VERSION};
use super::stream::{credential_lapses, sse_response};
use super::{AppState, Session, jsonrpc};
use crate::gateway::CallContext;
use crate::identity::Caller;

/// Most resources one stream may ask for.
const MAX_RESOURCES: usize = 256;

/// Removes a listen stream's session, and its subscriptions, however the stream ends.
struct Listening {
    state: AppState,
    session: Arc<Session>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.session.close();
        self.state.sessions.remove(&self.session.id);
        self.state.gateway.forget_session(&self.session.id);
    }
}

/// What a stream opted in to, as honoured.
#[derive(Default)]
struct Filter {
    tools: bool,
    prompts: bool,
    resources: bool,
    uris: Vec<String>,
}

impl Filter {
    fn as_json(&self) -> Value {
        let mut filter = serde_json::Map::new();
        if self.tools {
            filter.insert("toolsListChanged".into(), json!(true));
        }
        if self.prompts {
            filter.insert("promptsListChanged".into(), json!(true));
        }
        if self.resources {
            filter.insert("resourcesListChanged".into(), json!(true));
        }
        if !self.uris.is_empty() {
            filter.insert("resourceSubscriptions".into(), json!(self.uris));
        }
        Value::Object(filter)
    }

    /// Whether a message the session received is one this stream asked for.
    fn wants(&self, message: &Value) -> bool {
        match message.get("method").and_then(Value::as_str) {
            Some("notifications/tools/list_changed") => self.tools,
            Some("notifications/prompts/list_changed") => self.prompts,
            Some("notifications/resources/list_changed") => self.resources,
            Some("notifications/resources/updated") => message
                .pointer("/params/uri")
                .and_then(Value::as_str)
                .is_some_and(|uri| self.uris.iter().any(|u| u == uri)),
            _ => false,
        }
    }
}

/// A notification of the stream with its subscription id.
fn tagged(mut message: Value, id: &RequestId) -> Bytes {
    if let Some(object) = message.as_object_mut() {
        let params = object.entry("params").or_insert_with(|| json!({}));
        if let Some(params) = params.as_object_mut() {
            let meta = params.entry("_meta").or_insert_with(|| json!({}));
            if let Some(meta) = meta.as_object_mut() {
                meta.insert(META_SUBSCRIPTION.into(), json!(id));
            }
        }
    }
    frame(&message)
}

fn frame(message: &Value) -> Bytes {
    let mut frame = b"event: message\ndata: ".to_vec();
    frame.extend_from_slice(&serde_json::to_vec(message).unwrap_or_default());
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// Answers `subscriptions/listen`.
pub(super) async fn listen(
    state: AppState,
    caller: Caller,
    id: RequestId,
    params: SubscriptionsListenRequestParams,
) -> Response {
    let asked = params.notifications;
    let session = Session::new(
        MODERN_VERSION.to_string(),
        caller.subject_key(),
        caller.actor.clone(),
    );
    let permit = match state.sessions.stream_permit(&session.subject) {
        Ok(permit) => permit,
        Err(limit) => return session_limit(limit),
    };
    let session = match state.sessions.insert(session) {
        Ok(session) => session,
        Err(limit) => return session_limit(limit),
    };
    let Some(rx) = session.open_stream() else {
        return session_limit(super::session::SessionLimit::Full);
    };
    let listening = Listening {
        state: state.clone(),
        session: Arc::clone(&session),
    };
    let mut filter = Filter {
        tools: asked.tools_list_changed == Some(true),
        prompts: asked.prompts_list_changed == Some(true),
        resources: asked.resources_list_changed == Some(true),
        uris: Vec::new(),
    };
    let never = CancellationToken::new();
    for uri in asked
        .resource_subscriptions
        .unwrap_or_default()
        .into_iter()
        .take(MAX_RESOURCES)
    {
        if filter.uris.contains(&uri) {
            continue;
        }
        let call = CallContext::new(&caller, &session.id, &id);
        if state
            .gateway
            .subscribe_resource(&call, &uri, &never)
            .await
            .is_ok()
        {
            filter.uris.push(uri);
        }
    }
    tracing::info!(subject = %caller.subject, actor = %caller.actor, "listen stream opened");
    let acknowledged = json!({
        "jsonrpc": "2.0",
        "method": "notifications/subscriptions/acknowledged",
        "params": {"_meta": {META_SUBSCRIPTION: id}, "notifications": filter.as_json()},
    });
    let first = frame(&acknowledged);
    let identity = Arc::clone(&state.gateway.identity);
    let draining = state.gateway.draining.clone();
    let closed = Arc::clone(&session);
    let ended = Box::pin(async move {
        tokio::select! {
            () = closed.closed() => {}
            () = credential_lapses(identity, caller) => {}
            () = draining.cancelled() => {}
        }
    });
    let notify_id = id.clone();
    let events = futures::stream::unfold(Some((rx, ended, filter)), move |state| {
        let id = notify_id.clone();
        async move {
            let (mut rx, mut ended, filter) = state?;
            loop {
                tokio::select! {
                    biased;
                    () = &mut ended => {
                        // Ended by toolgate: the request's final answer, then the end of the stream.
                        let done = json!({"jsonrpc": "2.0", "id": id,
                            "result": {"resultType": "complete", "_meta": {META_SUBSCRIPTION: id}}});
                        return Some((frame(&done), None));
                    }
                    message = rx.recv() => {
                        let message = message?;
                        let message = serde_json::from_slice::<Value>(&jsonrpc::to_bytes(&message)).ok()?;
                        if filter.wants(&message) {
                            return Some((tagged(message, &id), Some((rx, ended, filter))));
                        }
                    }
                    () = tokio::time::sleep(Duration::from_secs(15)) => {
                        return Some((Bytes::from_static(b": keepalive\n\n"), Some((rx, ended, filter))));
                    }
                }
            }
        }
    });
    let stream = futures::stream::once(async move { first })
        .chain(events)
        .map(move |frame| {
            let _held = (&permit, &listening);
            Ok::<_, Infallible>(frame)
        });
    sse_response(Body::from_stream(stream))
}
