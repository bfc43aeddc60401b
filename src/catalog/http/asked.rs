//! What an HTTP upstream sends toolgate on its own: its requests towards the client (answered here, or relayed to
//! the client of the call on whose stream they came) and its GET stream of notifications.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http::{StatusCode, header};
use rmcp::model::{ErrorCode, ErrorData, JsonRpcMessage, RequestId, ServerRequest};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::wire::{server_request_method, without_url};
use super::{HttpConn, UpstreamMessage};
use crate::catalog::routing::CallSink;

impl HttpConn {
    /// Answers a request the upstream started towards the client: ping here; sampling, elicitation and roots by
    /// the client of the call on whose stream it came (`sink`), in the background; anything else, or a request
    /// tied to no call (the GET stream), is refused.
    pub(super) fn answer_request(
        &self,
        id: RequestId,
        request: ServerRequest,
        params: Option<Value>,
        sink: Option<&CallSink>,
    ) {
        let method = server_request_method(&request).to_string();
        let method = method.as_str();
        let relayed = matches!(
            method,
            "sampling/createMessage" | "elicitation/create" | "roots/list"
        );
        match (&request, sink) {
            (ServerRequest::PingRequest(_), _) => self
                .answer_to()
                .send(json!({"jsonrpc": "2.0", "id": id, "result": {}})),
            (_, Some(sink)) if relayed => {
                // As the upstream sent them, else as parsed.
                let params = params
                    .or_else(|| {
                        serde_json::to_value(&request)
                            .ok()
                            .and_then(|mut r| r.get_mut("params").map(Value::take))
                    })
                    .unwrap_or_else(|| json!({}));
                let (to, sink, method) = (self.answer_to(), sink.clone(), method.to_string());
                tokio::spawn(async move {
                    let answer = match sink.ask(&method, params).await {
                        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
                        Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
                    };
                    to.send(answer);
                });
            }
            _ => {
                let why = if relayed {
                    "it is tied to no call in flight"
                } else {
                    "toolgate relays only sampling, elicitation and roots"
                };
                tracing::info!(upstream = %self.upstream, method, "refused a request from upstream: {why}");
                let error = ErrorData::new(
                    ErrorCode::METHOD_NOT_FOUND,
                    format!("`{method}` was not relayed to a client: {why}"),
                    None,
                );
                self.answer_to()
                    .send(json!({"jsonrpc": "2.0", "id": id, "error": error}));
            }
        }
    }

    /// Where answers to the upstream's requests go.
    fn answer_to(&self) -> AnswerTo {
        AnswerTo {
            client: self.client.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
        }
    }

    /// Listens on the session's GET stream for notifications not tied to a call (tool list changes, logs).
    pub(super) async fn listen(self: Arc<Self>) {
        let mut delay = Duration::from_millis(500);
        while !self.closed.is_cancelled() {
            let request = self
                .client
                .get(self.url.clone())
                .headers(self.headers.clone())
                .header(header::ACCEPT, "text/event-stream")
                .send();
            let response = tokio::select! {
                r = request => r,
                () = self.closed.cancelled() => return,
            };
            match response {
                Ok(r) if r.status() == StatusCode::METHOD_NOT_ALLOWED => return,
                Ok(r) if r.status() == StatusCode::NOT_FOUND => {
                    self.closed.cancel();
                    return;
                }
                Ok(r) if r.status().is_success() => {
                    if !self.follow(r, &CancellationToken::new()).await {
                        return;
                    }
                    delay = Duration::from_millis(500);
                }
                Ok(r) => {
                    tracing::debug!(upstream = %self.upstream, status = %r.status(), "GET stream refused");
                    return;
                }
                Err(e) => {
                    tracing::debug!(upstream = %self.upstream, "GET stream failed: {}", without_url(&e))
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.closed.cancelled() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }
}

impl HttpConn {
    /// Tells the upstream a request of a session is cancelled (in the background).
    pub(super) fn send_cancel(&self, id: i64, reason: &str) {
        let body = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                          "params": {"requestId": id, "reason": reason}});
        let request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone());
        tokio::spawn(async move {
            let _ = request
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ACCEPT, "application/json, text/event-stream")
                .json(&body)
                .timeout(Duration::from_secs(5))
                .send()
                .await;
        });
    }

    /// Takes what comes on a stream of notifications (a GET stream, a listen stream) until it ends (`true`) or the
    /// session closes or `stop` is cancelled (`false`). Requests on it are tied to no call.
    pub(super) async fn follow(
        &self,
        response: reqwest::Response,
        stop: &CancellationToken,
    ) -> bool {
        let mut events = std::pin::pin!(sse_stream::SseByteStream::new(response.bytes_stream()));
        loop {
            let event = tokio::select! {
                e = events.next() => e,
                () = self.closed.cancelled() => return false,
                () = stop.cancelled() => return false,
            };
            let Some(Ok(event)) = event else { return true };
            let Some(data) = event.data else { continue };
            match serde_json::from_str::<UpstreamMessage>(&data) {
                Ok(JsonRpcMessage::Notification(n)) => self.notification(n.notification, None),
                Ok(JsonRpcMessage::Request(r)) => self.answer_request(r.id, r.request, None, None),
                _ => {}
            }
        }
    }
}

/// Where answers to an upstream's requests go: its session's endpoint.
struct AnswerTo {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: http::HeaderMap,
}

impl AnswerTo {
    /// Posts an answer (in the background).
    fn send(&self, answer: Value) {
        let request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .json(&answer)
            .timeout(Duration::from_secs(5));
        tokio::spawn(async move {
            let _ = request.send().await;
        });
    }
}
