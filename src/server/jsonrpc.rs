//! Parsing one client JSON-RPC message, once, into rmcp's model types, and the errors for what does not parse.

use rmcp::model::{ClientJsonRpcMessage, ErrorCode, ErrorData, RequestId, ServerJsonRpcMessage};
use serde_json::Value;

use crate::identity::Scheme;

/// Parses a message; on failure returns the JSON-RPC error to send back (parse error or invalid request).
pub fn parse(bytes: &[u8]) -> Result<ClientJsonRpcMessage, Box<ServerJsonRpcMessage>> {
    match serde_json::from_slice::<ClientJsonRpcMessage>(bytes) {
        Ok(message) => Ok(message),
        Err(error) => Err(Box::new(classify(bytes, &error))),
    }
}

/// Works out why a message did not parse; runs only on the error path.
fn classify(bytes: &[u8], error: &serde_json::Error) -> ServerJsonRpcMessage {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(_) => {
            return error_message(
                None,
                ErrorCode::PARSE_ERROR,
                format!("parse error: {}", short(error)),
            );
        }
    };
    let Some(object) = value.as_object() else {
        let what = if value.is_array() {
            "batches are not supported; send one JSON-RPC message per request"
        } else {
            "a JSON-RPC message must be an object"
        };
        return error_message(None, ErrorCode::INVALID_REQUEST, what.to_string());
    };
    let id = object
        .get("id")
        .and_then(|id| serde_json::from_value::<RequestId>(id.clone()).ok());
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return error_message(
            id,
            ErrorCode::INVALID_REQUEST,
            "`jsonrpc` must be \"2.0\"".into(),
        );
    }
    match object.get("method") {
        Some(Value::String(method)) if id.is_some() => error_message(
            id,
            ErrorCode::INVALID_PARAMS,
            format!("invalid params for `{method}`: {}", short(error)),
        ),
        Some(Value::String(_)) => error_message(
            None,
            ErrorCode::INVALID_REQUEST,
            "invalid notification".into(),
        ),
        Some(_) => error_message(
            id,
            ErrorCode::INVALID_REQUEST,
            "`method` must be a string".into(),
        ),
        None if object.contains_key("id") && id.is_none() => error_message(
            None,
            ErrorCode::INVALID_REQUEST,
            "`id` must be a string or an integer".into(),
        ),
        None => error_message(
            id,
            ErrorCode::INVALID_REQUEST,
            "not a JSON-RPC request or notification".into(),
        ),
    }
}

fn short(error: &serde_json::Error) -> String {
    let mut text = error.to_string();
    // Cut on a character boundary: the message may quote the input.
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// A JSON-RPC error message.
pub fn error_message(
    id: Option<RequestId>,
    code: ErrorCode,
    message: String,
) -> ServerJsonRpcMessage {
    ServerJsonRpcMessage::error(ErrorData::new(code, message, None), id)
}

/// The JSON-RPC error for refused credentials, on every transport: code -32001 with the reason id in
/// `data.reason`. Logged here once: a 403 kind of refusal is an escalation attempt.
pub fn auth_refusal(
    id: Option<RequestId>,
    error: &crate::identity::AuthError,
) -> ServerJsonRpcMessage {
    if error.is_forbidden() {
        tracing::warn!(
            reason = %error.reason_id(),
            "refused as an escalation attempt: {error}"
        );
    } else {
        tracing::info!(reason = %error.reason_id(), "request refused: {error}");
    }
    let mut data = ErrorData::new(
        ErrorCode(-32001),
        format!("{error} ({})", error.reason_id()),
        None,
    );
    data.data = Some(serde_json::json!({"reason": error.reason_id()}));
    ServerJsonRpcMessage::error(data, id)
}

/// Serializes a message for the wire. JSON-RPC wants `"id": null` on errors whose id is unknown.
pub fn to_bytes(message: &ServerJsonRpcMessage) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(message).unwrap_or_else(|_| {
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}"#
            .to_vec()
    });
    if let ServerJsonRpcMessage::Error(error) = message
        && error.id.is_none()
        && let Ok(mut value) = serde_json::from_slice::<Value>(&bytes)
        && let Some(object) = value.as_object_mut()
    {
        object.insert("id".into(), Value::Null);
        if let Ok(b) = serde_json::to_vec(&value) {
            bytes = b;
        }
    }
    bytes
}

/// The HTTP status of refused credentials: 403 for a valid credential that may not use the gateway this way,
/// 401 for a bad one, 503 while revocations cannot be confirmed.
pub fn auth_status(error: &crate::identity::AuthError) -> http::StatusCode {
    if matches!(error, crate::identity::AuthError::RevocationStateUnknown(_)) {
        http::StatusCode::SERVICE_UNAVAILABLE
    } else if error.is_forbidden() {
        http::StatusCode::FORBIDDEN
    } else {
        http::StatusCode::UNAUTHORIZED
    }
}

/// The access token of an HTTP request (the `Authorization` header) and how it is presented, as identity reads
/// it.
pub fn credential<'a>(
    headers: &'a http::HeaderMap,
    query: Option<&str>,
) -> Result<(Scheme, &'a str), crate::identity::AuthError> {
    crate::identity::Identity::credential(
        headers
            .get(http::header::AUTHORIZATION)
            .map(http::HeaderValue::as_bytes),
        query,
    )
}

/// The request's `DPoP` header: `Err` when there is more than one, or it is not text.
pub fn dpop_proof(headers: &http::HeaderMap) -> Result<Option<&str>, ()> {
    let mut values = headers.get_all("dpop").iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(());
    }
    first.map(|v| v.to_str().map_err(|_| ())).transpose()
}

/// Headers a proxy adds when it forwards a request.
const FORWARDING_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-real-ip",
    "x-original-forwarded-for",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "via",
];

/// Whether the request came through a proxy: it carries any forwarding header.
pub fn forwarded(headers: &http::HeaderMap) -> bool {
    FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(bytes: &[u8]) -> i32 {
        match parse(bytes) {
            Ok(_) => 0,
            Err(e) => match *e {
                ServerJsonRpcMessage::Error(e) => e.error.code.0,
                _ => -1,
            },
        }
    }

    #[test]
    fn codes() {
        assert_eq!(code(b"{not json"), -32700);
        assert_eq!(code(b"[]"), -32600);
        assert_eq!(code(b"42"), -32600);
        assert_eq!(code(br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#), -32600);
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":1,"method":7}"#), -32600);
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#), 0);
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#),
            0
        );
    }

    #[test]
    fn unknown_id_serializes_as_null() {
        let message = error_message(None, ErrorCode::PARSE_ERROR, "x".into());
        let value: Value = serde_json::from_slice(&to_bytes(&message)).unwrap();
        assert_eq!(value["id"], Value::Null);
    }
}

/// Fuzzing the framing: any bytes, and JSON shaped like JSON-RPC with every field wrong in every way, never panic;
/// every refusal is a well-formed JSON-RPC error, and every accepted message serializes back.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn cases() -> u32 {
        std::env::var("FUZZ_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(256)
    }

    /// Any JSON value, nested a few levels, with strings drawn from what a JSON-RPC message holds.
    fn value() -> impl Strategy<Value = Value> {
        crate::fuzzing::json_value(
            vec![
                "2.0",
                "1.0",
                "tools/call",
                "tools/list",
                "initialize",
                "ping",
                "notifications/initialized",
                "notifications/cancelled",
                "logging/setLevel",
                "resources/read",
                "",
                "é",
                "\u{0}",
            ],
            vec![
                "jsonrpc",
                "id",
                "method",
                "params",
                "result",
                "error",
                "name",
                "arguments",
                "_meta",
                "progressToken",
                "cursor",
                "protocolVersion",
                "capabilities",
                "clientInfo",
                "requestId",
            ],
            4,
        )
    }

    fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
        match parse(bytes) {
            Ok(message) => {
                prop_assert!(serde_json::to_vec(&message).is_ok());
            }
            Err(refusal) => {
                let text = to_bytes(&refusal);
                let back: Value = serde_json::from_slice(&text)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&back["jsonrpc"], "2.0");
                prop_assert!(back["error"]["code"].is_i64(), "{}", back);
                prop_assert!(text.len() < 4096, "refusal of {} bytes", text.len());
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        #[test]
        fn any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            check(&bytes)?;
        }

        #[test]
        fn json_rpc_shaped_values(value in value()) {
            check(&serde_json::to_vec(&value).unwrap_or_default())?;
        }

        #[test]
        fn requests_with_wrong_params(
            method in prop::sample::select(vec!["tools/call", "tools/list", "initialize", "ping", "logging/setLevel"]),
            id in value(),
            params in value(),
        ) {
            let message = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
            check(&serde_json::to_vec(&message).unwrap_or_default())?;
        }
    }
}
