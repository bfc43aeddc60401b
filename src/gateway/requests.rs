//! Requests on one resource, prompt or completion: `resources/read`, `prompts/get`, `completion/complete`,
//! `resources/subscribe` and `resources/unsubscribe`. Each is granted by [`Gateway::grant`], forwarded under the
//! upstream's own URI or name, answered with the exposed ones, redacted to the caller's clearance and recorded
//! before the answer leaves.

use std::time::Instant;

use rmcp::model::ErrorData;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::contents::{redact_prompt, redact_read};
use super::record::{Outcome, caller_record};
use super::relay::Relayed;
use super::rounds::is_input_required;
use super::surface::{Granted, Item};
use super::{CallContext, Gateway, elapsed_us};
use crate::audit::{DecisionRecord, recorded_arguments};
use crate::catalog::UpstreamError;
use crate::policy::Action;
use crate::policy::input::ItemKind;
use crate::reason::Reason;
use crate::redact::{RedactError, RedactionSummary, Rules};

impl Gateway {
    /// `resources/read`.
    pub async fn read_resource(
        &self,
        call: &CallContext<'_>,
        uri: &str,
        cancel: &CancellationToken,
    ) -> Result<Value, ErrorData> {
        self.recorded("resources/read", call, async |record| {
            let granted = self
                .grant(call, ItemKind::Resource, uri, Action::Read, None, record)
                .await?;
            let params = json!({"uri": granted.item.original});
            let mut result = self
                .forward_granted(call, &granted, "resources/read", params, cancel, record)
                .await?;
            if is_input_required(&result) {
                return Ok(result);
            }
            if let Some(Value::Array(contents)) = result.get_mut("contents") {
                for content in contents.iter_mut() {
                    self.rename_uri(&granted.item, content.get_mut("uri"));
                }
            }
            self.redacted(result, &granted, record, redact_read)
        })
        .await
    }

    /// `prompts/get`.
    pub async fn get_prompt(
        &self,
        call: &CallContext<'_>,
        name: &str,
        arguments: Option<Map<String, Value>>,
        cancel: &CancellationToken,
    ) -> Result<Value, ErrorData> {
        self.recorded("prompts/get", call, async |record| {
            record.arguments = recorded_arguments(
                self.config.audit.arguments,
                arguments.as_ref(),
                &self.redactor,
                self.config.redaction.default_clearance,
            );
            let granted = self
                .grant(
                    call,
                    ItemKind::Prompt,
                    name,
                    Action::Get,
                    arguments.as_ref(),
                    record,
                )
                .await?;
            let mut params = json!({"name": granted.item.original});
            if let Some(arguments) = arguments {
                params["arguments"] = Value::Object(arguments);
            }
            let mut result = self
                .forward_granted(call, &granted, "prompts/get", params, cancel, record)
                .await?;
            if is_input_required(&result) {
                return Ok(result);
            }
            // Resources embedded or linked in the messages are named as the gateway exposes them.
            if let Some(Value::Array(messages)) = result.get_mut("messages") {
                for message in messages.iter_mut() {
                    let content = message.get_mut("content");
                    let uri = match content {
                        Some(c) if c.get("type").and_then(Value::as_str) == Some("resource") => {
                            c.pointer_mut("/resource/uri")
                        }
                        Some(c)
                            if c.get("type").and_then(Value::as_str) == Some("resource_link") =>
                        {
                            c.get_mut("uri")
                        }
                        _ => None,
                    };
                    self.rename_uri(&granted.item, uri);
                }
            }
            self.redacted(result, &granted, record, redact_prompt)
        })
        .await
    }

    /// `completion/complete`, for a prompt or resource template the caller may see.
    pub async fn complete(
        &self,
        call: &CallContext<'_>,
        mut params: Value,
        cancel: &CancellationToken,
    ) -> Result<Value, ErrorData> {
        self.recorded("completion/complete", call, async |record| {
            let reference = params.get("ref").cloned().unwrap_or(Value::Null);
            let (kind, key) = match reference.get("type").and_then(Value::as_str) {
                Some("ref/prompt") => (ItemKind::Prompt, "name"),
                Some("ref/resource") => (ItemKind::Template, "uri"),
                _ => {
                    record.deny(Reason::InvalidArguments, vec!["no ref".into()]);
                    return Err(ErrorData::invalid_params(
                        "completion/complete needs a `ref` of type `ref/prompt` or `ref/resource`",
                        None,
                    ));
                }
            };
            let Some(exposed) = reference.get(key).and_then(Value::as_str) else {
                record.deny(Reason::InvalidArguments, vec![format!("no ref.{key}")]);
                return Err(ErrorData::invalid_params(
                    format!("`ref.{key}` is missing"),
                    None,
                ));
            };
            // What the client typed so far, and the arguments it already chose, are the request's arguments.
            let mut arguments = Map::new();
            if let Some(argument) = params.get("argument") {
                arguments.insert("argument".into(), argument.clone());
            }
            if let Some(context) = params.pointer("/context/arguments") {
                arguments.insert("context".into(), context.clone());
            }
            record.arguments = recorded_arguments(
                self.config.audit.arguments,
                Some(&arguments),
                &self.redactor,
                self.config.redaction.default_clearance,
            );
            let granted = self
                .grant(
                    call,
                    kind,
                    exposed,
                    Action::Complete,
                    Some(&arguments),
                    record,
                )
                .await?;
            params["ref"][key] = Value::String(granted.item.original.clone());
            let result = self
                .forward(&granted.item, "completion/complete", params, cancel, record)
                .await?;
            self.redacted(result, &granted, record, |redactor, value, rules| {
                redactor.redact_value(value, rules)
            })
        })
        .await
    }

    /// `resources/subscribe`: granted like a read, then asked of the upstream.
    pub async fn subscribe_resource(
        &self,
        call: &CallContext<'_>,
        uri: &str,
        cancel: &CancellationToken,
    ) -> Result<Value, ErrorData> {
        self.recorded("resources/subscribe", call, async |record| {
                let granted = self
                    .grant(
                        call,
                        ItemKind::Resource,
                        uri,
                        Action::Subscribe,
                        None,
                        record,
                    )
                    .await?;
                let item = &granted.item;
                if self.subscriptions.add(item, call).is_err() {
                    record.deny(Reason::SubscriptionLimit, Vec::new());
                    return Err(ErrorData::invalid_request(
                        "this session holds as many subscriptions as it may (256): unsubscribe from one first",
                        Some(json!({"reason": Reason::SubscriptionLimit.as_str()})),
                    ));
                }
                // Asked of the upstream every time (subscribing is idempotent), so that a subscription another session
                // made a moment ago, and that failed, never stands for this one.
                let params = json!({"uri": item.original});
                if let Err(error) = self
                    .forward(item, "resources/subscribe", params, cancel, record)
                    .await
                {
                    self.subscriptions.remove(&item.exposed, call.session);
                    return Err(error);
                }
                record.decision = "allow".into();
                record.outcome = Reason::Allowed.into();
                Ok(json!({}))
        })
        .await
    }

    /// `resources/unsubscribe`: always answered; the upstream is told, before the answer, once no session is
    /// subscribed any more.
    pub async fn unsubscribe_resource(
        &self,
        call: &CallContext<'_>,
        uri: &str,
    ) -> Result<Value, ErrorData> {
        let mut record = caller_record("resources/unsubscribe", call);
        record.tool = Some(uri.to_string());
        record.decision = "allow".into();
        record.outcome = Reason::Allowed.into();
        if let Some((upstream, original)) = self.subscriptions.remove(uri, call.session) {
            record.upstream = Some(upstream.name.to_string());
            // Told before the answer, so that a subscription that follows is asked after it.
            let never = CancellationToken::new();
            let params = json!({"uri": original});
            if let Err(e) = self
                .catalog
                .request(&upstream, "resources/unsubscribe", params, &never)
                .await
            {
                record.upstream_outcome = Some(e.reason_id().into());
            }
        }
        self.commit(record, Ok(json!({}))).await
    }

    /// Tells an upstream nobody listens to one of its resources any more (in the background).
    pub(super) fn unsubscribe_upstream(
        &self,
        upstream: std::sync::Arc<crate::catalog::Upstream>,
        original: String,
    ) {
        let catalog = std::sync::Arc::clone(&self.catalog);
        tokio::spawn(async move {
            let never = CancellationToken::new();
            let params = json!({"uri": original});
            if let Err(e) = catalog
                .request(&upstream, "resources/unsubscribe", params, &never)
                .await
            {
                tracing::debug!(upstream = %upstream.name, "unsubscribe failed: {e}");
            }
        });
    }

    /// A URI of `item`'s upstream in an answer, given in the form toolgate exposes it.
    fn rename_uri(&self, item: &Item, uri: Option<&mut Value>) {
        if let Some(Value::String(uri)) = uri
            && let Some(exposed) = self.expose(ItemKind::Resource, &item.upstream, uri)
        {
            *uri = exposed;
        }
    }

    /// Runs `work` with the request's record (who is asking filled in), times it, and commits the record before
    /// the answer leaves.
    async fn recorded(
        &self,
        kind: &str,
        call: &CallContext<'_>,
        work: impl AsyncFnOnce(&mut DecisionRecord) -> Result<Value, ErrorData>,
    ) -> Result<Value, ErrorData> {
        let started = Instant::now();
        let mut record = caller_record(kind, call);
        let answer = work(&mut record).await;
        record.latency.total_us = elapsed_us(started);
        self.commit(record, answer).await
    }

    /// Forwards a granted request; the upstream's failure is answered and recorded.
    async fn forward(
        &self,
        item: &Item,
        method: &str,
        params: Value,
        cancel: &CancellationToken,
        record: &mut DecisionRecord,
    ) -> Result<Value, ErrorData> {
        let started = Instant::now();
        let result = self
            .catalog
            .request(&item.upstream, method, params, cancel)
            .await;
        record.latency.upstream_us = Some(elapsed_us(started));
        match result {
            Ok(result) => {
                record.decision = "allow".into();
                record.outcome = Reason::Allowed.into();
                record.upstream_outcome = Some("ok".into());
                Ok(result)
            }
            // Given back as it came; the request's own function passes it on, decided and sealed.
            Err(UpstreamError::InputRequired(result)) => Ok(*result),
            Err(error) => Err(self.upstream_failed(item.kind, item, &error, record)),
        }
    }

    /// Forwards a request that may ask for input (`resources/read`, `prompts/get`): an upstream's
    /// `input_required` result comes back decided and sealed for the client, ready to go.
    async fn forward_granted(
        &self,
        call: &CallContext<'_>,
        granted: &Granted,
        method: &str,
        params: Value,
        cancel: &CancellationToken,
        record: &mut DecisionRecord,
    ) -> Result<Value, ErrorData> {
        let result = self
            .forward(&granted.item, method, params, cancel, record)
            .await?;
        if !is_input_required(&result) {
            return Ok(result);
        }
        let relayed = Relayed::Item(&granted.item);
        self.pass_input_required(call, relayed, &granted.rules, method, result, record)
            .await
    }

    /// Redacts an answer with `redact`; one that cannot be redacted is withheld.
    fn redacted(
        &self,
        mut result: Value,
        granted: &Granted,
        record: &mut DecisionRecord,
        redact: impl FnOnce(
            &crate::redact::Redactor,
            &mut Value,
            &Rules,
        ) -> Result<RedactionSummary, RedactError>,
    ) -> Result<Value, ErrorData> {
        let started = Instant::now();
        let outcome = redact(&self.redactor, &mut result, &granted.rules);
        record.latency.redact_us = Some(elapsed_us(started));
        match outcome {
            Ok(summary) => {
                if !summary.is_empty() {
                    record.redactions = serde_json::to_value(&summary).ok();
                }
                Ok(result)
            }
            Err(error) => {
                record.fail(Reason::RedactionFailed, vec![error.to_string()]);
                Err(super::refusal::cannot_decide(Reason::RedactionFailed))
            }
        }
    }
}
