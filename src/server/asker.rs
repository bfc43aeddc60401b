//! The client's side of a call: requests an upstream makes during the call (sampling, elicitation, roots) are sent
//! on the call's own stream to its client, with an id of toolgate's that only this session's answer can meet.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::model::{
    CustomRequest, ErrorCode, ErrorData, RequestId, ServerJsonRpcMessage, ServerRequest,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Session;
use crate::catalog::Asker;
use crate::reason::Reason;

/// Asks one session's client on one call's stream.
pub(super) struct SessionAsker {
    session: Arc<Session>,
    stream: mpsc::Sender<Box<ServerJsonRpcMessage>>,
    timeout: Duration,
}

impl SessionAsker {
    pub(super) fn new(
        session: Arc<Session>,
        stream: mpsc::Sender<Box<ServerJsonRpcMessage>>,
        timeout: Duration,
    ) -> Self {
        Self {
            session,
            stream,
            timeout,
        }
    }
}

/// The capability (a JSON pointer into what the client declared) a request needs.
fn needs(method: &str, params: &Value) -> Option<&'static str> {
    match method {
        "sampling/createMessage" => Some("/sampling"),
        "elicitation/create" if params.get("mode").and_then(Value::as_str) == Some("url") => {
            Some("/elicitation/url")
        }
        "elicitation/create" => Some("/elicitation"),
        "roots/list" => Some("/roots"),
        _ => None,
    }
}

/// Why a request may not be asked of this session's client: toolgate relays only sampling, elicitation and
/// roots, and only what the client declared it can do.
pub(super) fn refusal_for(session: &Session, method: &str, params: &Value) -> Option<ErrorData> {
    let Some(capability) = needs(method, params) else {
        return Some(ErrorData::new(
            ErrorCode::METHOD_NOT_FOUND,
            format!("`{method}` requests are not relayed to clients"),
            None,
        ));
    };
    if !session.declared(capability) {
        return Some(ErrorData::new(
            ErrorCode::METHOD_NOT_FOUND,
            format!(
                "the client did not declare the `{}` capability",
                capability.trim_start_matches('/').replace('/', ".")
            ),
            Some(json!({"reason": Reason::ClientCapabilityMissing.as_str()})),
        ));
    }
    None
}

impl Asker for SessionAsker {
    fn ask(&self, method: String, params: Value) -> BoxFuture<'static, Result<Value, ErrorData>> {
        let (session, stream, timeout) =
            (Arc::clone(&self.session), self.stream.clone(), self.timeout);
        Box::pin(async move {
            if let Some(refusal) = refusal_for(&session, &method, &params) {
                return Err(refusal);
            }
            let Some((id, answer)) = session.expect_answer() else {
                return Err(ErrorData::internal_error(
                    "too many requests are waiting for this client's answers",
                    None,
                ));
            };
            // Sent as the upstream wrote it: a typed request would round numbers (a sampling `temperature`).
            let request = ServerJsonRpcMessage::request(
                ServerRequest::CustomRequest(CustomRequest::new(method.as_str(), Some(params))),
                RequestId::String(id.as_str().into()),
            );
            if stream.send(Box::new(request)).await.is_err() {
                session.forget_answer(&id);
                return Err(ErrorData::internal_error(
                    "the client's stream for this call is gone",
                    None,
                ));
            }
            match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err(ErrorData::internal_error(
                    "the client's session ended",
                    None,
                )),
                Err(_) => {
                    session.forget_answer(&id);
                    Err(ErrorData::internal_error(
                        format!("the client did not answer `{method}` in time"),
                        None,
                    ))
                }
            }
        })
    }
}
