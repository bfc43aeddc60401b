//! The checks of a modern request before it is answered: its version and required `_meta`, and its routing
//! headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) against its body.

use http::{HeaderMap, StatusCode};
use rmcp::model::{ErrorCode, ErrorData, LoggingLevel};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    HEADER_MISMATCH, META_CAPABILITIES, META_LOG_LEVEL, META_VERSION, MODERN_VERSION,
    UNSUPPORTED_VERSION, supported_versions,
};
use crate::server::{VERSION_HEADER, dispatch};

/// What the modern checks read of a request's body, apart from its parse into rmcp's types.
#[derive(Deserialize)]
pub(in crate::server) struct Envelope {
    pub(super) method: String,
    #[serde(default)]
    params: Option<EnvelopeParams>,
}

#[derive(Deserialize, Default)]
struct EnvelopeParams {
    #[serde(rename = "_meta", default)]
    meta: Option<Map<String, Value>>,
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    uri: Option<Value>,
}

impl Envelope {
    fn meta(&self) -> Option<&Map<String, Value>> {
        self.params.as_ref().and_then(|p| p.meta.as_ref())
    }
}

/// The envelope of a request over stdio before any `initialize` when it is of the modern era (`_meta` names a
/// version, or it is `server/discover`); `None` for a legacy one.
pub(in crate::server) fn stdio_envelope(bytes: &[u8]) -> Option<Envelope> {
    let envelope: Envelope = serde_json::from_slice(bytes).ok()?;
    let modern = envelope.method == "server/discover"
        || envelope
            .meta()
            .is_some_and(|meta| meta.contains_key(META_VERSION));
    modern.then_some(envelope)
}

/// The envelope of a request without a session when it is of the modern era; `None` for a legacy one.
pub(in crate::server) fn envelope(headers: &HeaderMap, bytes: &[u8]) -> Option<Envelope> {
    let envelope: Envelope = serde_json::from_slice(bytes).ok()?;
    let in_meta = envelope
        .meta()
        .is_some_and(|meta| meta.contains_key(META_VERSION));
    let in_header = headers
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !dispatch::LEGACY_PROTOCOL_VERSIONS.contains(&v));
    (in_meta || in_header).then_some(envelope)
}

/// A modern request, refused before dispatch: its HTTP status and JSON-RPC error.
pub(super) type Refusal = (StatusCode, ErrorData);

/// What a modern request declared of itself.
pub(super) struct Declared {
    pub(super) capabilities: Value,
    pub(super) log_level: Option<LoggingLevel>,
}

impl Declared {
    /// The session of one modern request: what it declared, for its caller; it ends with the request.
    pub(super) fn session(
        self,
        caller: &crate::identity::Caller,
    ) -> std::sync::Arc<crate::server::Session> {
        let session = crate::server::Session::new(
            MODERN_VERSION.to_string(),
            caller.subject_key(),
            caller.actor.clone(),
        );
        session.set_client_capabilities_value(self.capabilities);
        if let Some(level) = self.log_level {
            session.set_log_level(level);
        }
        session
    }
}

/// Checks a modern request's version, its required `_meta` and its routing headers (over HTTP; stdio has none)
/// against its body.
pub(super) fn check(headers: Option<&HeaderMap>, envelope: &Envelope) -> Result<Declared, Refusal> {
    let bad = |code: ErrorCode, message: String, data: Option<Value>| {
        (StatusCode::BAD_REQUEST, ErrorData::new(code, message, data))
    };
    let meta = envelope.meta();
    let version = meta.and_then(|m| m.get(META_VERSION));
    let header_version = headers.map(|h| h.get(VERSION_HEADER).map(|v| v.to_str()));
    let version = match version {
        Some(Value::String(version)) => version.as_str(),
        Some(_) => {
            return Err(bad(
                ErrorCode::INVALID_PARAMS,
                format!("`_meta.{META_VERSION}` must be a string"),
                None,
            ));
        }
        None => {
            return Err(bad(
                ErrorCode::INVALID_PARAMS,
                format!(
                    "missing `_meta.{META_VERSION}`: every request of protocol {MODERN_VERSION} names its version"
                ),
                None,
            ));
        }
    };
    match header_version {
        None => {}
        Some(None) => {
            return Err(bad(
                HEADER_MISMATCH,
                "Header mismatch: missing MCP-Protocol-Version header".into(),
                None,
            ));
        }
        Some(Some(Ok(header))) if header == version => {}
        Some(Some(_)) => {
            return Err(bad(
                HEADER_MISMATCH,
                format!(
                    "Header mismatch: MCP-Protocol-Version header does not match body value '{version}'"
                ),
                None,
            ));
        }
    }
    if version != MODERN_VERSION {
        return Err(bad(
            UNSUPPORTED_VERSION,
            "Unsupported protocol version".into(),
            Some(json!({"supported": supported_versions(), "requested": version})),
        ));
    }
    let capabilities = match meta.and_then(|m| m.get(META_CAPABILITIES)) {
        Some(Value::Object(c)) => Value::Object(c.clone()),
        Some(_) => {
            return Err(bad(
                ErrorCode::INVALID_PARAMS,
                format!("`_meta.{META_CAPABILITIES}` must be an object"),
                None,
            ));
        }
        None => {
            return Err(bad(
                ErrorCode::INVALID_PARAMS,
                format!("missing `_meta.{META_CAPABILITIES}`"),
                None,
            ));
        }
    };
    let log_level = match meta.and_then(|m| m.get(META_LOG_LEVEL)) {
        None => None,
        Some(level) => Some(
            serde_json::from_value::<LoggingLevel>(level.clone()).map_err(|_| {
                bad(
                    ErrorCode::INVALID_PARAMS,
                    format!("`_meta.{META_LOG_LEVEL}` is not a log level"),
                    None,
                )
            })?,
        ),
    };
    if let Some(headers) = headers {
        check_header(headers, "mcp-method", Some(&envelope.method), "Mcp-Method")?;
        let named = match envelope.method.as_str() {
            "tools/call" | "prompts/get" => envelope.params.as_ref().and_then(|p| p.name.as_ref()),
            "resources/read" => envelope.params.as_ref().and_then(|p| p.uri.as_ref()),
            _ => None,
        };
        // A name that is not a string is refused by the method's own parse.
        if let Some(Value::String(named)) = named {
            check_header(headers, "mcp-name", Some(named), "Mcp-Name")?;
        }
    }
    Ok(Declared {
        capabilities,
        log_level,
    })
}

/// Checks one routing header against its body value: present, well formed (Base64 sentinel decoded) and equal.
fn check_header(
    headers: &HeaderMap,
    name: &str,
    body: Option<&str>,
    display: &str,
) -> Result<(), Refusal> {
    let mismatch = |message: String| {
        (
            StatusCode::BAD_REQUEST,
            ErrorData::new(HEADER_MISMATCH, message, None),
        )
    };
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(mismatch(format!(
            "Header mismatch: {display} header missing or repeated"
        )));
    };
    let value = crate::names::header_value(value.as_bytes())
        .ok_or_else(|| mismatch(format!("Header mismatch: {display} header is malformed")))?;
    match body {
        Some(body) if body == value => Ok(()),
        Some(body) => Err(mismatch(format!(
            "Header mismatch: {display} header value '{}' does not match body value '{}'",
            value.escape_debug(),
            body.escape_debug()
        ))),
        None => Ok(()),
    }
}
