//! What goes over the wire to a streamable-HTTP upstream: request bodies, bounded answer bodies, errors
//! without their URL.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use rmcp::model::ServerRequest;

use crate::catalog::UpstreamError;

#[allow(deprecated)] // sampling and roots are deprecated by SEP-2577 but still sent by 2025 servers
pub(super) fn server_request_method(request: &ServerRequest) -> &str {
    match request {
        ServerRequest::PingRequest(_) => "ping",
        ServerRequest::CreateMessageRequest(_) => "sampling/createMessage",
        ServerRequest::ListRootsRequest(_) => "roots/list",
        ServerRequest::ElicitRequest(_) => "elicitation/create",
        ServerRequest::CustomRequest(r) => r.method.as_str(),
        _ => "unknown",
    }
}

/// A request's body, serialised straight from its parts.
pub(super) fn request_body(
    id: i64,
    method: &str,
    params: &impl serde::Serialize,
) -> Result<Vec<u8>, UpstreamError> {
    #[derive(serde::Serialize)]
    struct Request<'a, P> {
        jsonrpc: &'static str,
        id: i64,
        method: &'a str,
        params: &'a P,
    }
    serde_json::to_vec(&Request {
        jsonrpc: "2.0",
        id,
        method,
        params,
    })
    .map_err(|e| UpstreamError::Malformed(e.to_string()))
}

/// The response body grew past the limit.
#[derive(Debug, thiserror::Error)]
#[error("answer exceeds {0} bytes")]
pub(super) struct TooLarge(pub(super) usize);

pub(super) fn find_too_large(error: &sse_stream::Error) -> Option<usize> {
    match error {
        sse_stream::Error::Body(inner) => inner.downcast_ref::<TooLarge>().map(|t| t.0),
        _ => None,
    }
}

/// Passes a body through until it exceeds `max` bytes, then fails; transport errors end the stream.
pub(super) fn limited(
    body: impl Stream<Item = reqwest::Result<Bytes>>,
    max: usize,
) -> impl Stream<Item = Result<Bytes, TooLarge>> {
    let mut seen = 0usize;
    body.take_while(|chunk| std::future::ready(chunk.is_ok()))
        .filter_map(|chunk| std::future::ready(chunk.ok()))
        .scan(false, move |failed, chunk| {
            if *failed {
                return std::future::ready(None);
            }
            seen = seen.saturating_add(chunk.len());
            if seen > max {
                *failed = true;
                return std::future::ready(Some(Err(TooLarge(max))));
            }
            std::future::ready(Some(Ok(chunk)))
        })
}

/// A reqwest error's text without the URL (which may carry credentials in its query).
pub(super) fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<upstream>");
    }
    text
}

/// A response's media type, lowercased (empty when it has none).
pub(super) fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Most of a refusal's body read for the JSON-RPC error it may carry.
const REFUSAL_BYTES: usize = 64 * 1024;

/// The JSON-RPC error a refused request's body carries, if it is one (2026-07-28 answers its own errors with
/// 400 and 404).
pub(super) async fn refusal_error(response: reqwest::Response) -> Option<rmcp::model::ErrorData> {
    if !response.status().is_client_error()
        || !content_type(&response).starts_with("application/json")
    {
        return None;
    }
    let mut body = Vec::new();
    let mut bytes = std::pin::pin!(limited(response.bytes_stream(), REFUSAL_BYTES));
    while let Some(Ok(chunk)) = bytes.next().await {
        body.extend_from_slice(&chunk);
    }
    match serde_json::from_slice::<super::UpstreamMessage>(&body).ok()? {
        rmcp::model::JsonRpcMessage::Error(error) => Some(error.error),
        _ => None,
    }
}
