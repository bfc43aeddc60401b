//! A call's answer as an event stream, resumed where it stopped: an upstream may close the stream before the
//! answer (SSE polling, or a dropped connection) after giving its events ids; toolgate then asks again with
//! `Last-Event-ID` after the `retry` the upstream set, a bounded number of times, within the call's timeout.

use std::time::Duration;

use futures::StreamExt;
use http::{HeaderValue, header};
use serde_json::Value;

use super::wire::{content_type, find_too_large, limited, without_url};
use super::{HttpConn, UpstreamMessage};
use crate::catalog::UpstreamError;
use crate::catalog::routing::CallSink;

/// Most times one answer's stream is resumed.
const MAX_RESUMPTIONS: usize = 5;
/// Wait before resuming when the upstream set no `retry`.
const DEFAULT_RETRY: Duration = Duration::from_millis(500);
/// Longest wait before resuming, whatever `retry` the upstream set.
const MAX_RETRY: Duration = Duration::from_secs(10);
/// Longest event id kept to resume with.
const MAX_EVENT_ID: usize = 1024;

impl HttpConn {
    /// Reads the answer to request `id` from an event stream (and its resumptions), routing what comes before it.
    pub(super) async fn read_events(
        &self,
        response: reqwest::Response,
        id: i64,
        sink: Option<&CallSink>,
        max_bytes: usize,
    ) -> Result<Value, UpstreamError> {
        let mut last_event_id: Option<String> = None;
        let mut retry = DEFAULT_RETRY;
        let mut next = Some(response);
        for _ in 0..=MAX_RESUMPTIONS {
            let response = match next.take() {
                Some(response) => response,
                None => {
                    // The stream ended without the answer: resume after the last event seen, if the upstream gave
                    // its events ids.
                    let Some(last) = &last_event_id else {
                        return Err(UpstreamError::Closed);
                    };
                    tokio::time::sleep(retry).await;
                    self.resume(last).await?
                }
            };
            let bytes = limited(response.bytes_stream(), max_bytes);
            let mut events = Box::pin(sse_stream::SseByteStream::new(bytes));
            while let Some(event) = events.next().await {
                let event = event.map_err(|e| match find_too_large(&e) {
                    Some(limit) => UpstreamError::TooLarge(limit),
                    None => UpstreamError::Transport(format!("event stream broke: {e}")),
                })?;
                if let Some(event_id) = event
                    .id
                    .filter(|i| !i.is_empty() && i.len() <= MAX_EVENT_ID)
                {
                    last_event_id = Some(event_id);
                }
                if let Some(ms) = event.retry {
                    retry = Duration::from_millis(ms).min(MAX_RETRY);
                }
                let Some(data) = event.data else { continue };
                if data.is_empty() {
                    continue;
                }
                let message: UpstreamMessage = serde_json::from_str(&data)
                    .map_err(|e| UpstreamError::Malformed(format!("event is not JSON-RPC: {e}")))?;
                if let Some(result) = self.handle_message(message, data.as_bytes(), id, sink)? {
                    // Read the stream to its end in the background so that the connection goes back to the pool.
                    tokio::spawn(async move {
                        let drain = async { while events.next().await.is_some() {} };
                        let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
                    });
                    return Ok(result);
                }
            }
        }
        Err(UpstreamError::Closed)
    }

    /// Asks for the rest of an event stream after `last_event_id`.
    async fn resume(&self, last_event_id: &str) -> Result<reqwest::Response, UpstreamError> {
        let mut headers = self.headers.clone();
        let value = HeaderValue::from_str(last_event_id)
            .map_err(|_| UpstreamError::Malformed("an event id is not a header value".into()))?;
        headers.insert("last-event-id", value);
        crate::telemetry::to_headers(&mut headers);
        let response = self
            .client
            .get(self.url.clone())
            .headers(headers)
            .header(header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| UpstreamError::Transport(without_url(&e)))?;
        let status = response.status();
        let is_events = content_type(&response).starts_with("text/event-stream");
        if !status.is_success() || !is_events {
            return Err(UpstreamError::Transport(format!(
                "resuming the answer's event stream: upstream answered HTTP {status}"
            )));
        }
        Ok(response)
    }
}
