//! The input document of a decision: `{mode, principal, agent, chain, scope, tool, arguments, facts, action,
//! context}` (contract in `policies/README.md`). The caller's part is built once per request and shared by every
//! tool a `tools/list` decides.

use std::collections::BTreeMap;

use regorus::Value;
use serde_json::{Map, json};

use crate::identity::{Caller, Mode};
use crate::manifest::ToolManifest;

/// What the caller wants to do with the tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Call it (with these arguments).
    Call,
    /// See it in a list (`tools/list`, `resources/list`, `resources/templates/list`, `prompts/list`).
    List,
    /// Read a resource (`resources/read`).
    Read,
    /// Be told when a resource changes (`resources/subscribe`).
    Subscribe,
    /// Get a prompt with these arguments (`prompts/get`).
    Get,
    /// Ask for completions of a prompt's or resource template's argument (`completion/complete`).
    Complete,
    /// Let the tool's upstream ask the client's model for a completion (`sampling/createMessage`).
    Sample,
    /// Let the tool's upstream ask the client's user for input (`elicitation/create`).
    Elicit,
    /// Let the tool's upstream ask the client for its filesystem roots (`roots/list`).
    Roots,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::List => "list",
            Self::Read => "read",
            Self::Subscribe => "subscribe",
            Self::Get => "get",
            Self::Complete => "complete",
            Self::Sample => "sample",
            Self::Elicit => "elicit",
            Self::Roots => "roots",
        }
    }
}

/// The tool being decided on.
#[derive(Debug, Clone, Copy)]
pub struct ToolRef<'a> {
    /// Exposed name (`<upstream>__<tool>`).
    pub name: &'a str,
    pub upstream: &'a str,
    /// The tool's name on its upstream.
    pub original: &'a str,
    pub manifest: &'a ToolManifest,
    /// The upstream's annotations (hints), as JSON.
    pub annotations: Option<&'a serde_json::Value>,
}

/// What kind of item beside tools is decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// A resource, by URI.
    Resource,
    /// A resource template, by URI template.
    Template,
    /// A prompt, by name.
    Prompt,
}

/// A resource, resource template or prompt being decided on.
#[derive(Debug, Clone, Copy)]
pub struct ItemRef<'a> {
    pub kind: ItemKind,
    /// The exposed URI, URI template or prompt name.
    pub exposed: &'a str,
    pub upstream: &'a str,
    /// The upstream's own URI, URI template or name.
    pub original: &'a str,
    /// The manifest entry that describes it (the safe default when none does).
    pub manifest: &'a ToolManifest,
}

/// A complete input document.
#[derive(Debug, Clone)]
pub struct PolicyInput {
    pub(crate) value: Value,
}

impl PolicyInput {
    /// An input document given as JSON (for `toolgate policy eval` and tests).
    pub fn from_json(json: serde_json::Value) -> Self {
        Self {
            value: Value::from(json),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.value).unwrap_or(serde_json::Value::Null)
    }
}

/// The caller's part of every input of one request.
#[derive(Debug, Clone)]
pub struct CallerInput {
    fields: BTreeMap<Value, Value>,
}

fn key(name: &str) -> Value {
    Value::from(name)
}

impl CallerInput {
    pub fn new(caller: &Caller, session: &str, request_id: &str) -> Self {
        let principal = caller.principal.as_ref().map_or(json!(null), |p| {
            // Roles and groups come only from the token's issuer, and only when it is configured to assert them:
            // who asserted them is said with them.
            json!({"issuer": p.issuer, "subject": p.subject, "roles": p.roles, "groups": p.groups,
                   "roles_asserted_by": p.issuer})
        });
        let mode = match caller.mode {
            Mode::PrincipalContext => "principal_context",
            Mode::AgentOnly => "agent_only",
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let context = json!({
            "time": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            "unix_time": now,
            "session": session,
            "request_id": request_id,
        });
        let mut fields = BTreeMap::new();
        fields.insert(key("mode"), Value::from(mode));
        fields.insert(key("principal"), Value::from(principal));
        fields.insert(
            key("agent"),
            Value::from(
                json!({"id": caller.actor, "issuer": caller.issuer, "subject": caller.subject}),
            ),
        );
        fields.insert(key("chain"), Value::from(json!(caller.chain)));
        fields.insert(
            key("scope"),
            Value::from(json!({"token": caller.token_scope, "clearance": caller.clearance})),
        );
        fields.insert(key("context"), Value::from(context));
        Self { fields }
    }

    /// The input for one resource, resource template or prompt and action: `resource` (`uri`, `template`) or
    /// `prompt` (`name`) beside `upstream`, `original`, `classification`, `risk` and `owner`; `arguments` are a
    /// prompt's or a completion's (`{}` otherwise); no facts.
    pub fn for_item(
        &self,
        item: ItemRef<'_>,
        action: Action,
        arguments: Option<&Map<String, serde_json::Value>>,
    ) -> PolicyInput {
        let mut fields = self.fields.clone();
        let manifest = item.manifest;
        let (member, doc) = match item.kind {
            ItemKind::Resource | ItemKind::Template => (
                "resource",
                json!({
                    "uri": item.exposed,
                    "template": item.kind == ItemKind::Template,
                    "upstream": item.upstream,
                    "original": item.original,
                    "classification": manifest.classification,
                    "risk": manifest.risk,
                    "owner": manifest.owner,
                }),
            ),
            ItemKind::Prompt => (
                "prompt",
                json!({
                    "name": item.exposed,
                    "upstream": item.upstream,
                    "original": item.original,
                    "classification": manifest.classification,
                    "risk": manifest.risk,
                    "owner": manifest.owner,
                }),
            ),
        };
        fields.insert(key(member), Value::from(doc));
        fields.insert(key("action"), Value::from(action.as_str()));
        fields.insert(
            key("arguments"),
            Value::from(serde_json::Value::Object(
                arguments.cloned().unwrap_or_default(),
            )),
        );
        fields.insert(
            key("facts"),
            Value::from(serde_json::Value::Object(Map::new())),
        );
        PolicyInput {
            value: Value::from(fields),
        }
    }

    /// The input for one tool and action. `arguments` and `facts` are empty for `list`.
    pub fn for_tool(
        &self,
        tool: ToolRef<'_>,
        action: Action,
        arguments: Option<&Map<String, serde_json::Value>>,
        facts: Map<String, serde_json::Value>,
    ) -> PolicyInput {
        let mut fields = self.fields.clone();
        let manifest = tool.manifest;
        let tool_doc = json!({
            "name": tool.name,
            "upstream": tool.upstream,
            "original": tool.original,
            "classification": manifest.classification,
            "risk": manifest.risk,
            "owner": manifest.owner,
            "annotations": tool.annotations.cloned().unwrap_or_else(|| json!({})),
        });
        fields.insert(key("tool"), Value::from(tool_doc));
        fields.insert(key("action"), Value::from(action.as_str()));
        fields.insert(
            key("arguments"),
            Value::from(serde_json::Value::Object(
                arguments.cloned().unwrap_or_default(),
            )),
        );
        fields.insert(key("facts"), Value::from(serde_json::Value::Object(facts)));
        PolicyInput {
            value: Value::from(fields),
        }
    }
}
