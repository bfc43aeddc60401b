//! Resources, resource templates and prompts: aggregated from every upstream and governed like tools. Each is a
//! protected resource: the caller's chain must reach its exposed name (URI or prompt name), the policy decides
//! `list` for every item of a listing and `list` then the action (`read`, `subscribe`, `get`, `complete`) for a
//! request; an item hidden from the caller is answered exactly as a missing one; what comes back is redacted to
//! the caller's clearance; every decision leaves a record.
//!
//! Exposed names follow the naming mode of their upstream: a prefixed upstream's prompts are
//! `<upstream><separator><name>` like its tools, and its resource URIs `toolgate://<upstream>/<its URI>` (the
//! upstream part is toolgate's, so no URI an upstream lists can point into another upstream); an unprefixed
//! upstream's names and URIs are its own, the first upstream to list one keeps it, and a URI of the gateway's own
//! form from such an upstream is left out.

use std::sync::Arc;
use std::time::Instant;

use rmcp::model::{ErrorCode, ErrorData};
use serde_json::{Map, Value, json};

use super::record::{Outcome, caller_record, request_id_text};
use super::refusal::cannot_decide;
use super::{CallContext, Gateway, elapsed_us};
use crate::audit::DecisionRecord;
use crate::catalog::{Upstream, UpstreamError};
use crate::manifest::ToolManifest;
use crate::names;
use crate::policy::input::{CallerInput, ItemKind, ItemRef};
use crate::policy::{Action, Bundle, Decision};
use crate::reason::Reason;
use crate::redact::Rules;

/// One resource, resource template or prompt as toolgate exposes it.
#[derive(Clone)]
pub(super) struct Item {
    pub kind: ItemKind,
    /// The exposed URI, URI template or prompt name.
    pub exposed: String,
    pub upstream: Arc<Upstream>,
    /// The upstream's own URI, URI template or name.
    pub original: String,
    /// The upstream's definition, its URI or name replaced by the exposed one.
    pub definition: Value,
}

/// How each kind is listed and named.
pub(super) struct Shape {
    pub method: &'static str,
    pub field: &'static str,
    pub key: &'static str,
}

pub(super) fn shape(kind: ItemKind) -> Shape {
    match kind {
        ItemKind::Resource => Shape {
            method: "resources/list",
            field: "resources",
            key: "uri",
        },
        ItemKind::Template => Shape {
            method: "resources/templates/list",
            field: "resourceTemplates",
            key: "uriTemplate",
        },
        ItemKind::Prompt => Shape {
            method: "prompts/list",
            field: "prompts",
            key: "name",
        },
    }
}

/// An item a request was granted on, and the rules its answer is redacted by.
pub(super) struct Granted {
    pub item: Item,
    pub rules: Rules,
}

impl Gateway {
    /// The exposed form of an upstream's URI, template or prompt name; `None` when it cannot be exposed.
    pub(super) fn expose(
        &self,
        kind: ItemKind,
        upstream: &Upstream,
        original: &str,
    ) -> Option<String> {
        match kind {
            ItemKind::Prompt => names::exposed_name(
                &upstream.name,
                &self.config.namespace_separator,
                original,
                upstream.prefix,
            )
            .ok(),
            ItemKind::Resource | ItemKind::Template => {
                if upstream.prefix {
                    Some(names::exposed_uri(&upstream.name, original))
                } else if names::is_gateway_uri(original) {
                    // Would read as another upstream's URI.
                    None
                } else {
                    Some(original.to_string())
                }
            }
        }
    }

    /// The manifest that describes an item (the safe default when none does).
    pub(super) fn item_manifest<'b>(bundle: &'b Bundle, item: &Item) -> &'b ToolManifest {
        match item.kind {
            ItemKind::Prompt => bundle.manifests.prompt(&item.upstream.name, &item.original),
            ItemKind::Resource | ItemKind::Template => bundle
                .manifests
                .resource(&item.upstream.name, &item.original),
        }
    }

    /// Whether the caller may see `item` in a list: its chain reaches the exposed name and the policy's `list`
    /// decision allows it. A decision that fails hides the item.
    pub(super) fn listable(
        bundle: &Bundle,
        who: &CallerInput,
        caller: &crate::identity::Caller,
        item: &Item,
    ) -> Result<(), String> {
        if !caller.in_scope(&item.exposed) {
            return Err("outside the chain's scope".into());
        }
        let decision = bundle.decide(&item_input(who, bundle, item, Action::List, None));
        match (&decision.error, decision.allow) {
            (Some(error), _) => Err(format!("hidden: {} ({error})", error.reason_id())),
            (None, true) => Ok(()),
            (None, false) => Err("hidden by policy".into()),
        }
    }

    /// `resources/list`, `resources/templates/list` or `prompts/list`: the items this caller may see, a page at a
    /// time, recorded once.
    pub async fn list_surface(
        &self,
        call: &CallContext<'_>,
        kind: ItemKind,
        cursor: Option<&str>,
    ) -> Result<Value, ErrorData> {
        let started = Instant::now();
        let shape = shape(kind);
        let caller = call.caller;
        let after = match cursor {
            Some(c) => Some(
                self.cursors
                    .decode(shape.method, caller, c)
                    .ok_or_else(|| ErrorData::invalid_params("invalid cursor", None))?,
            ),
            None => None,
        };
        let (items, failures) = self.gather(kind).await;
        let bundle = self.policy.current();
        let who = CallerInput::new(caller, call.session, &request_id_text(call.request_id));
        let page_size = self.config.limits.page_size;
        let mut page: Vec<Item> = items
            .into_iter()
            .filter(|i| after.as_deref().is_none_or(|a| i.exposed.as_str() > a))
            .filter(|i| Self::listable(&bundle, &who, caller, i).is_ok())
            .take(page_size.saturating_add(1))
            .collect();
        let mut result = Map::new();
        if page.len() > page_size {
            page.truncate(page_size);
            if let Some(last) = page.last() {
                result.insert(
                    "nextCursor".into(),
                    Value::String(self.cursors.encode(shape.method, caller, &last.exposed)),
                );
            }
        }
        let listed = page.len();
        result.insert(
            shape.field.into(),
            Value::Array(page.into_iter().map(|i| i.definition).collect()),
        );
        let mut record = caller_record(shape.method, call);
        record.decision = "allow".into();
        record.outcome = Reason::Listed.into();
        record.listed = Some(listed as u64);
        record.policy_version = Some(bundle.version.clone());
        record.reasons = failures;
        record.latency.total_us = elapsed_us(started);
        self.commit(record, Ok(Value::Object(result))).await
    }

    /// Resolves and authorizes one request on an item: the chain must reach it and the policy must let the
    /// caller see it (else it is answered as missing), then allow `action`. Fills in `record`.
    pub(super) async fn grant(
        &self,
        call: &CallContext<'_>,
        kind: ItemKind,
        exposed: &str,
        action: Action,
        arguments: Option<&Map<String, Value>>,
        record: &mut DecisionRecord,
    ) -> Result<Granted, ErrorData> {
        let caller = call.caller;
        record.tool = Some(exposed.to_string());
        let bundle = self.policy.current();
        record.policy_version = Some(bundle.version.clone());
        let Some(item) = self.find(kind, exposed).await else {
            record.deny(Reason::UnknownItem, Vec::new());
            return Err(not_found(kind, exposed));
        };
        record.upstream = Some(item.upstream.name.to_string());
        let who = CallerInput::new(caller, call.session, &request_id_text(call.request_id));
        if let Err(why) = Self::listable(&bundle, &who, caller, &item) {
            record.deny(Reason::UnknownItem, vec![why]);
            return Err(not_found(kind, exposed));
        }
        let decision = bundle.decide(&item_input(&who, &bundle, &item, action, arguments));
        if let Some(error) = &decision.error {
            record.fail(error.reason_id(), decision.reasons.clone());
            return Err(cannot_decide(error.reason_id()));
        }
        record.reasons.clone_from(&decision.reasons);
        if !decision.allow || decision.escalate {
            let mut reasons = decision.reasons.clone();
            if decision.escalate {
                reasons.push(format!(
                    "approval is offered for tool calls only; `{}` of `{exposed}` is refused",
                    action.as_str()
                ));
            }
            record.deny(Reason::PolicyDenied, reasons.clone());
            return Err(denied(exposed, action, &reasons));
        }
        let rules = match self.item_rules(&decision, &bundle, &item, caller, record) {
            Ok(rules) => rules,
            Err(answer) => return Err(answer),
        };
        // Nothing reaches an upstream while decisions cannot be recorded.
        if !self.audit.healthy() {
            record.fail(Reason::AuditUnavailable, Vec::new());
            return Err(cannot_decide(Reason::AuditUnavailable));
        }
        Ok(Granted { item, rules })
    }

    /// The redaction rules of an allowed request on an item, recorded.
    fn item_rules(
        &self,
        decision: &Decision,
        bundle: &Bundle,
        item: &Item,
        caller: &crate::identity::Caller,
        record: &mut DecisionRecord,
    ) -> Result<Rules, ErrorData> {
        let manifest = Self::item_manifest(bundle, item);
        let clearance = decision
            .obligations
            .clearance
            .unwrap_or(self.config.redaction.default_clearance)
            .min(caller.clearance);
        let rules = Rules::for_tool(manifest, clearance, decision.obligations.redact.clone());
        if !decision.obligations.mask_columns.is_empty() {
            let why = "the policy grants columns only masked, which applies to tool results only"
                .to_string();
            record.deny(Reason::PolicyDenied, vec![why.clone()]);
            return Err(denied(&item.exposed, Action::Read, &[why]));
        }
        if let Some(class) = rules.output.filter(|c| rules.hides(*c)) {
            let why = format!(
                "`{}` is classified `{}`, above what this caller may see",
                item.exposed,
                crate::redact::class_name(class)
            );
            record.deny(Reason::PolicyDenied, vec![why.clone()]);
            return Err(denied(&item.exposed, Action::Read, &[why]));
        }
        record.obligations = Some(json!({
            "clearance": clearance,
            "policy_clearance": decision.obligations.clearance,
            "redact": decision.obligations.redact,
        }));
        Ok(rules)
    }

    /// An upstream's failure as the client sees it: its own JSON-RPC error (message redacted), else an internal
    /// error naming the reason. Recorded.
    pub(super) fn upstream_failed(
        &self,
        kind: ItemKind,
        item: &Item,
        error: &UpstreamError,
        record: &mut DecisionRecord,
    ) -> ErrorData {
        record.decision = "allow".into();
        record.outcome = error.reason_id().into();
        record.upstream_outcome = Some(error.reason_id().into());
        let mut said = Value::String(error.to_string());
        let plain = Rules::plain(self.config.redaction.default_clearance);
        let said = match self.redactor.redact_value(&mut said, &plain) {
            Ok(_) => said.as_str().unwrap_or_default().to_string(),
            Err(_) => "the upstream's error could not be redacted".to_string(),
        };
        record.reasons.push(said.clone());
        match error {
            // What the upstream does not hold is answered as toolgate answers a hidden item.
            UpstreamError::Rpc(e)
                if e.code.0 == RESOURCE_NOT_FOUND || e.code == ErrorCode::INVALID_PARAMS =>
            {
                // A resource an upstream does not hold: -32002 before 2026-07-28, -32602 since.
                if e.code.0 == RESOURCE_NOT_FOUND || kind == ItemKind::Resource {
                    not_found(kind, &item.exposed)
                } else {
                    ErrorData::new(
                        e.code,
                        said,
                        Some(json!({"reason": Reason::UpstreamError.as_str()})),
                    )
                }
            }
            UpstreamError::Rpc(e) => ErrorData::new(
                e.code,
                said,
                Some(json!({"reason": Reason::UpstreamError.as_str()})),
            ),
            other => ErrorData::new(
                ErrorCode::INTERNAL_ERROR,
                format!("upstream `{}` failed: {said}", item.upstream.name),
                Some(json!({"reason": other.reason_id().as_str()})),
            ),
        }
    }
}

/// MCP's code for a resource that does not exist.
pub(super) const RESOURCE_NOT_FOUND: i32 = -32002;

/// The policy input for one item and action.
pub(super) fn item_input(
    who: &CallerInput,
    bundle: &Bundle,
    item: &Item,
    action: Action,
    arguments: Option<&Map<String, Value>>,
) -> crate::policy::input::PolicyInput {
    let manifest = Gateway::item_manifest(bundle, item);
    who.for_item(
        ItemRef {
            kind: item.kind,
            exposed: &item.exposed,
            upstream: &item.upstream.name,
            original: &item.original,
            manifest,
        },
        action,
        arguments,
    )
}

/// The answer for an item that does not exist, or that this caller may not see: the same in both cases.
pub(super) fn not_found(kind: ItemKind, exposed: &str) -> ErrorData {
    match kind {
        ItemKind::Prompt => ErrorData::invalid_params(format!("Unknown prompt: {exposed}"), None),
        ItemKind::Resource | ItemKind::Template => ErrorData::new(
            ErrorCode(RESOURCE_NOT_FOUND),
            "Resource not found",
            Some(json!({"uri": exposed})),
        ),
    }
}

/// The answer for a request the policy refused.
pub(super) fn denied(exposed: &str, action: Action, reasons: &[String]) -> ErrorData {
    ErrorData::new(
        ErrorCode::INVALID_REQUEST,
        format!(
            "toolgate refused to {} `{exposed}`: {}",
            action.as_str(),
            if reasons.is_empty() {
                "the policy does not allow it".to_string()
            } else {
                reasons.join("; ")
            }
        ),
        Some(json!({"reason": Reason::PolicyDenied.as_str(), "reasons": reasons})),
    )
}
