//! Stdio mode: the same gateway for one local client over newline-delimited JSON-RPC on stdin/stdout.

use std::sync::Arc;

use futures::StreamExt;
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, ErrorCode, ServerJsonRpcMessage, ServerResult,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};

use super::{Session, jsonrpc, list_changes, resource_updated};
use crate::gateway::Gateway;
use crate::identity::{AuthError, Caller};
use crate::telemetry;

/// Authenticates the stdio caller's token (from the environment) afresh, for one request.
fn authenticate(gateway: &Gateway, token: Option<&str>) -> Result<Caller, AuthError> {
    gateway.authenticate(token.ok_or(AuthError::Missing), None, "stdio", false)
}

/// Serves one session on stdin/stdout until stdin closes.
pub async fn serve_stdio(gateway: Arc<Gateway>) -> std::io::Result<()> {
    let (out_tx, mut out_rx) = mpsc::channel::<Box<ServerJsonRpcMessage>>(256);
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(message) = out_rx.recv().await {
            let mut line = jsonrpc::to_bytes(&message);
            line.push(b'\n');
            if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                return;
            }
        }
    });
    let mut session: Option<Arc<Session>> = None;
    let mut changes = gateway.subscribe_changes();
    let announcer = {
        let out = out_tx.clone();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        for message in list_changes() {
                            if out.send(Box::new(message)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    };
    // Over stdio every session of the process is this one client's: its subscribed resources' updates go to it.
    let deliverer = {
        let out = out_tx.clone();
        let mut updates = gateway.resource_updates();
        tokio::spawn(async move {
            loop {
                match updates.recv().await {
                    Ok(delivery) => {
                        if out
                            .send(Box::new(resource_updated(&delivery.uri)))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    };
    let limit = gateway.config.limits.max_request_bytes;
    // The caller's token comes from the environment and is checked on every request (expiry included).
    let token = gateway
        .config
        .auth
        .as_ref()
        .and_then(|a| std::env::var(&a.stdio_token_env).ok())
        .filter(|t| !t.trim().is_empty());
    // Lines are split on raw bytes, so input that is not UTF-8 is a parse error, not the end of the session.
    let codec = AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), limit);
    let mut lines = FramedRead::new(tokio::io::stdin(), codec);
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok(line) => line,
            Err(AnyDelimiterCodecError::MaxChunkLengthExceeded) => {
                let error = jsonrpc::error_message(
                    None,
                    ErrorCode::INVALID_REQUEST,
                    format!("message exceeds {limit} bytes"),
                );
                let _ = out_tx.send(Box::new(error)).await;
                continue;
            }
            Err(AnyDelimiterCodecError::Io(e)) => return Err(e),
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let message = match jsonrpc::parse(&line) {
            Ok(message) => message,
            Err(error) => {
                let _ = out_tx.send(error).await;
                continue;
            }
        };
        match message {
            ClientJsonRpcMessage::Request(request) => {
                // Over stdio the message is read before authentication, so its `_meta` (SEP-414) sets the parent.
                let span = telemetry::request_span("pipe");
                let remote =
                    telemetry::from_meta(&rmcp::model::GetMeta::get_meta(&request.request).0.0);
                telemetry::adopt(&span, &remote);
                telemetry::name_request(&span, &request.request, &request.id);
                let caller = match span.in_scope(|| authenticate(&gateway, token.as_deref())) {
                    Ok(caller) => caller,
                    Err(error) => {
                        let _ = out_tx
                            .send(Box::new(jsonrpc::auth_refusal(Some(request.id), &error)))
                            .await;
                        continue;
                    }
                };
                if let ClientRequest::InitializeRequest(init) = &request.request {
                    let result = super::dispatch::initialize(&init.params);
                    let new = Session::new(
                        result.protocol_version.to_string(),
                        caller.subject_key(),
                        caller.actor.clone(),
                    );
                    new.set_client_capabilities(&init.params.capabilities);
                    tracing::info!(session = %new.id, client = %init.params.client_info.name, "stdio session opened");
                    session = Some(new);
                    let answer = ServerJsonRpcMessage::response(
                        ServerResult::InitializeResult(result),
                        request.id,
                    );
                    let _ = out_tx.send(Box::new(answer)).await;
                    continue;
                }
                // Before any `initialize`, a request that names protocol 2026-07-28 is answered statelessly.
                if session.is_none()
                    && let Some(envelope) = super::modern::stdio_envelope(&line)
                {
                    let gateway = Arc::clone(&gateway);
                    let out = out_tx.clone();
                    let call = async move {
                        let answer = super::modern::answer_stdio(
                            &gateway,
                            caller,
                            envelope,
                            request,
                            out.clone(),
                        )
                        .await;
                        let _ = out.send(Box::new(answer)).await;
                    };
                    tokio::spawn(telemetry::within(call, span, remote));
                    continue;
                }
                let Some(session) = session.clone() else {
                    let error = jsonrpc::error_message(
                        Some(request.id),
                        ErrorCode::INVALID_REQUEST,
                        "send initialize first".into(),
                    );
                    let _ = out_tx.send(Box::new(error)).await;
                    continue;
                };
                telemetry::in_session(&span, &session.id, &session.protocol_version);
                let gateway = Arc::clone(&gateway);
                let out = out_tx.clone();
                let call = async move {
                    let answer = super::dispatch::handle_request(
                        &gateway,
                        &session,
                        &caller,
                        request.id,
                        request.request,
                        Some(out.clone()),
                    )
                    .await;
                    let _ = out.send(Box::new(answer)).await;
                };
                tokio::spawn(telemetry::within(call, span, remote));
            }
            ClientJsonRpcMessage::Notification(notification) => {
                if let Some(session) = &session {
                    super::dispatch::handle_notification(session, notification.notification);
                }
            }
            answer @ (ClientJsonRpcMessage::Response(_) | ClientJsonRpcMessage::Error(_)) => {
                if let Some(session) = &session {
                    super::dispatch::handle_answer(session, answer);
                }
            }
        }
    }
    if let Some(session) = session {
        session.close();
        gateway.forget_session(&session.id);
    }
    announcer.abort();
    deliverer.abort();
    drop(out_tx);
    // Answers of calls still running are written if they finish within a moment.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
    Ok(())
}
