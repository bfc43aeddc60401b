//! A fast upstream for load benchmarks: `--tools N` tools named `lookup_0` … `lookup_{N-1}`, each answering at
//! once with a small employee record (structured, plus its JSON text) that has a `salary` field and an email in
//! its notes, so a gateway in front has something to redact. Serves stdio, or streamable HTTP with `--http ADDR`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, JsonObject, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::json;

#[derive(Clone)]
struct Bench {
    tools: Arc<Vec<Tool>>,
}

impl rmcp::ServerHandler for Bench {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(n) = request
            .name
            .strip_prefix("lookup_")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n < self.tools.len())
        else {
            return Err(ErrorData::invalid_params(
                format!("no tool {}", request.name),
                None,
            ));
        };
        let id = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("id"))
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        Ok(CallToolResult::structured(json!({
            "id": id,
            "tool": n,
            "name": "Dana Whitfield",
            "team": "platform",
            "salary": 98000,
            "notes": "reach her at dana.whitfield@example.com",
        }))
        .into())
    }
}

fn tools(count: usize) -> Vec<Tool> {
    let schema: JsonObject = serde_json::from_value(json!({
        "type": "object",
        "properties": {"id": {"type": "integer", "description": "Employee number."}},
        "required": ["id"],
    }))
    .expect("static schema");
    let schema = Arc::new(schema);
    (0..count)
        .map(|i| {
            Tool::new(
                format!("lookup_{i}"),
                "Looks up one employee record by number.",
                schema.clone(),
            )
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count = common::arg("--tools")
        .map(|n| n.parse::<usize>())
        .transpose()?
        .unwrap_or(10);
    let tools = Arc::new(tools(count));
    common::serve(move || Bench {
        tools: tools.clone(),
    })
    .await
}
