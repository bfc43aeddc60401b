//! The request pipeline, top to bottom as in the design:
//! authenticate → resolve tool → authorize → call upstream → redact → record → reply.
//!
//! Steps that later capabilities fill in (identity, policy, redaction, durable records) are explicit here so
//! that every call already passes through them in this order.

use std::sync::Arc;
use std::time::Instant;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, ErrorCode, ErrorData, ListToolsResult,
    RequestId,
};
use tokio_util::sync::CancellationToken;

use super::Gateway;
use crate::catalog::{CallSink, ExposedTool, UpstreamError};
use crate::identity::Caller;
use crate::server::Session;

impl Gateway {
    /// `tools/list`: the tools this caller may call, one page at a time.
    pub(super) fn list_tools(
        &self,
        session: &Session,
        caller: &Caller,
        request_id: &RequestId,
        cursor: Option<&str>,
    ) -> Result<ListToolsResult, ErrorData> {
        // authenticate: `caller` was verified for this very request.
        // authorize: only tools within the caller's effective scope are shown.
        let page_size = self.config.limits.page_size;
        let after = match cursor {
            Some(c) => Some(
                decode_cursor(c)
                    .ok_or_else(|| ErrorData::invalid_params("invalid cursor", None))?,
            ),
            None => None,
        };
        // One tool more than a page tells whether there is a next page.
        let mut tools =
            self.catalog
                .tools_after(after.as_deref(), page_size.saturating_add(1), |t| {
                    caller.in_scope(&t.name)
                });
        let next_cursor = if tools.len() > page_size {
            tools.truncate(page_size);
            tools.last().map(|t| encode_cursor(&t.name))
        } else {
            None
        };
        let mut result =
            ListToolsResult::with_all_items(tools.iter().map(|t| t.definition.clone()).collect());
        result.result_type = None;
        result.next_cursor = next_cursor;
        tracing::debug!(session = %session.id, request = ?request_id, count = result.tools.len(), "tools/list");
        Ok(result)
    }

    /// `tools/call`: resolve, authorize, forward, redact, record.
    pub(super) async fn call_tool(
        &self,
        session: &Session,
        caller: &Caller,
        request_id: &RequestId,
        params: CallToolRequestParams,
        sink: CallSink,
        cancel: &CancellationToken,
    ) -> Result<CallToolResult, ErrorData> {
        let started = Instant::now();
        tracing::debug!(session = %session.id, request = ?request_id, tool = %params.name, "tools/call received");
        // 1. authenticate: `caller` was verified for this very request.
        // 2. resolve the tool; unknown tools and tools outside the caller's scope get the same answer.
        let Some(tool) = self
            .catalog
            .resolve(&params.name)
            .filter(|t| caller.in_scope(&t.name))
        else {
            tracing::info!(
                session = %session.id, actor = %caller.actor, subject = %caller.subject,
                tool = %params.name, outcome = "unknown_tool", "tools/call"
            );
            return Err(unknown_tool(&params.name));
        };
        // 3. authorize: scope is enforced above; policy decisions arrive with the policy capability.
        // 4. call the upstream; the call's notifications go back to this client only.
        let outcome = self
            .catalog
            .call(&tool, params.arguments, sink, cancel)
            .await;
        // 5. redact: responses pass unchanged until classifications are configured.
        // 6. record.
        let result = match outcome {
            Ok(mut result) => {
                result.result_type = None;
                record(session, caller, &tool, "allowed", None, started);
                result
            }
            Err(error) => {
                record(
                    session,
                    caller,
                    &tool,
                    "upstream_error",
                    Some(&error),
                    started,
                );
                upstream_failure(&tool, &error)
            }
        };
        Ok(result)
    }
}

/// Cursors are opaque to clients: the last listed name, base64url-encoded.
fn encode_cursor(name: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
}

fn decode_cursor(cursor: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The JSON-RPC error for a tool that does not exist or that the caller may not see.
pub fn unknown_tool(name: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode::INVALID_PARAMS,
        format!("Unknown tool: {name}"),
        None,
    )
}

/// A failed upstream call becomes an `isError` result the model can read.
fn upstream_failure(tool: &ExposedTool, error: &UpstreamError) -> CallToolResult {
    let text = format!(
        "toolgate: {} (tool `{}`, upstream `{}`, reason `{}`)",
        error,
        tool.name,
        tool.upstream,
        error.reason_id()
    );
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    result.result_type = None;
    result
}

fn record(
    session: &Session,
    caller: &Caller,
    tool: &Arc<ExposedTool>,
    outcome: &str,
    error: Option<&UpstreamError>,
    started: Instant,
) {
    tracing::info!(
        session = %session.id,
        mode = ?caller.mode,
        issuer = %caller.issuer,
        subject = %caller.subject,
        chain = ?caller.chain,
        tool = %tool.name,
        upstream = %tool.upstream,
        outcome,
        reason = error.map(UpstreamError::reason_id),
        elapsed_us = started.elapsed().as_micros() as u64,
        "tools/call"
    );
}
