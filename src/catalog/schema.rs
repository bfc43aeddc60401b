//! Each tool's `inputSchema`, compiled once when the tool enters the catalog, and the check of a call's arguments
//! against it.
//!
//! The dialect is the schema's `$schema`: JSON Schema 2020-12 when absent (as MCP specifies) or draft-07; any other
//! dialect is refused. References are resolved inside the schema only: nothing is ever fetched (no network, no
//! files). `format` is an annotation, never asserted. Reasons never quote argument values: they name the place
//! (a JSON pointer into the arguments) and what is wrong, bounded in length whatever the caller sent.

pub mod mirrors;

use std::fmt::Write as _;
use std::sync::Arc;

use crate::reason::Reason;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{Draft, ValidationError, Validator};
use rmcp::model::JsonObject;
use serde_json::Value;

/// At most this many validation errors are reported for one call.
const MAX_ERRORS: usize = 5;
/// Bounds on what a reason quotes, in characters: a place in the arguments, a property name, a whole reason.
const MAX_PATH: usize = 80;
const MAX_NAME: usize = 64;
const MAX_REASON: usize = 240;
/// At most this many unexpected property names are named in one reason.
const MAX_NAMES: usize = 5;

const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";
const DRAFT_07: &str = "http://json-schema.org/draft-07/schema";

/// A tool's `inputSchema`, compiled; or why it cannot be used, in which case every call to the tool is refused.
pub struct InputSchema {
    /// The schema it was compiled from: the object advertised to clients as the tool's `inputSchema`.
    source: Arc<JsonObject>,
    compiled: Result<Validator, String>,
}

impl std::fmt::Debug for InputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputSchema")
            .field("usable", &self.compiled.is_ok())
            .finish_non_exhaustive()
    }
}

/// Why a call's arguments were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgumentsRefused {
    /// The arguments do not match the schema: one reason per error found (the first five, then a note that there
    /// are more).
    Invalid(Vec<String>),
    /// The tool's schema does not compile (or is of an unsupported dialect): no arguments can be checked.
    Unusable(String),
}

impl ArgumentsRefused {
    /// Stable reason id for records and the caller.
    pub fn reason_id(&self) -> Reason {
        match self {
            Self::Invalid(_) => Reason::InvalidArguments,
            Self::Unusable(_) => Reason::InvalidInputSchema,
        }
    }

    /// The reasons, as recorded.
    pub fn reasons(&self) -> Vec<String> {
        match self {
            Self::Invalid(reasons) => reasons.clone(),
            Self::Unusable(why) => vec![format!("the tool's inputSchema cannot be used: {why}")],
        }
    }

    /// What the caller reads (an `isError` result), in the style of toolgate's other refusals.
    pub fn message(&self, tool: &str) -> String {
        let why = match self {
            Self::Invalid(reasons) => format!(
                "the arguments do not match the tool's inputSchema: {}; correct them and call again",
                reasons.join("; ")
            ),
            Self::Unusable(why) => format!(
                "the tool's inputSchema cannot be used ({why}), so no call to it is forwarded; calling again will \
                 not help until its upstream fixes the schema"
            ),
        };
        format!(
            "toolgate refused this call to `{tool}` (reason `{}`): {why}",
            self.reason_id()
        )
    }
}

impl InputSchema {
    /// Compiles `schema` (the tool's advertised `inputSchema`).
    pub fn compile(schema: &Arc<JsonObject>) -> Self {
        Self {
            source: Arc::clone(schema),
            compiled: compile(schema),
        }
    }

    /// `previous` when it was compiled from a schema equal to `schema` (a refresh that left the tool's schema
    /// alone), else `schema` newly compiled, with a warning logged when it cannot be used.
    pub fn reuse_or_compile(
        previous: Option<&Arc<InputSchema>>,
        schema: &Arc<JsonObject>,
        tool: &str,
    ) -> Arc<InputSchema> {
        if let Some(previous) = previous
            && previous.source == *schema
        {
            return Arc::clone(previous);
        }
        let compiled = Self::compile(schema);
        if let Some(why) = compiled.unusable() {
            tracing::warn!(tool = %tool, "the tool's inputSchema cannot be used, every call to it will be refused: {why}");
        }
        Arc::new(compiled)
    }

    /// The schema this was compiled from.
    pub fn source(&self) -> &Arc<JsonObject> {
        &self.source
    }

    /// Why the schema cannot be used, if it cannot.
    pub fn unusable(&self) -> Option<&str> {
        self.compiled.as_ref().err().map(String::as_str)
    }

    /// Checks a call's arguments (none are `{}`). They are validated where they are, never copied: the map is
    /// lent to the validator as a JSON value and put back unchanged.
    pub fn check(&self, arguments: &mut Option<JsonObject>) -> Result<(), ArgumentsRefused> {
        let validator = self
            .compiled
            .as_ref()
            .map_err(|why| ArgumentsRefused::Unusable(why.clone()))?;
        let given = arguments.is_some();
        let instance = Value::Object(arguments.take().unwrap_or_default());
        let checked = check_value(validator, &instance);
        if let (true, Value::Object(map)) = (given, instance) {
            *arguments = Some(map);
        }
        checked
    }
}

/// The reasons `instance` does not match, if it does not.
fn check_value(validator: &Validator, instance: &Value) -> Result<(), ArgumentsRefused> {
    if validator.is_valid(instance) {
        return Ok(());
    }
    let mut errors = validator.iter_errors(instance);
    let mut reasons: Vec<String> = errors
        .by_ref()
        .take(MAX_ERRORS)
        .map(|e| reason(&e))
        .collect();
    if errors.next().is_some() {
        reasons.push("and more errors".into());
    }
    if reasons.is_empty() {
        reasons.push("arguments: not valid".into());
    }
    Err(ArgumentsRefused::Invalid(reasons))
}

/// The dialect `$schema` names: 2020-12 when absent.
fn dialect(schema: &JsonObject) -> Result<Draft, String> {
    let Some(named) = schema.get("$schema") else {
        return Ok(Draft::Draft202012);
    };
    let Some(uri) = named.as_str() else {
        return Err("`$schema` is not a string".into());
    };
    match uri.strip_suffix('#').unwrap_or(uri) {
        DRAFT_2020_12 => Ok(Draft::Draft202012),
        DRAFT_07 => Ok(Draft::Draft7),
        _ => Err(format!(
            "`$schema` `{}` is not a supported dialect (supported: JSON Schema 2020-12, draft-07)",
            bounded(uri, MAX_NAME)
        )),
    }
}

fn compile(schema: &JsonObject) -> Result<Validator, String> {
    let draft = dialect(schema)?;
    jsonschema::options()
        .with_draft(draft)
        // Never fetch a referenced schema: an upstream's schema must not make the gateway reach anywhere.
        .offline()
        .should_validate_formats(false)
        .build(&Value::Object(schema.clone()))
        .map_err(|e| bounded(&e.to_string(), MAX_REASON))
}

/// One validation error as a reason: where in the arguments, and what is wrong, without the value.
fn reason(error: &ValidationError<'_>) -> String {
    let path = error.instance_path().as_str();
    let at = if path.is_empty() {
        "arguments".to_string()
    } else {
        format!("`{}`", bounded(path, MAX_PATH))
    };
    let what = match error.kind() {
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.to_string(),
                TypeKind::Multiple(types) => types
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            format!("expected {expected}, got {}", type_name(error.instance()))
        }
        ValidationErrorKind::Required { property } => match property.as_str() {
            Some(name) => format!("missing required property `{}`", bounded(name, MAX_NAME)),
            None => "missing a required property".into(),
        },
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            not_allowed("not allowed", unexpected)
        }
        ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            not_allowed("not allowed here", unexpected)
        }
        // The library reports a property where an object schema defines none as a false schema at the object.
        ValidationErrorKind::FalseSchema
            if error
                .schema_path()
                .as_str()
                .ends_with("/additionalProperties") =>
        {
            "no property is allowed here".into()
        }
        // The library's masked wording never quotes the instance's value.
        _ => error.masked_with("the value").to_string(),
    };
    bounded(&format!("{at}: {what}"), MAX_REASON)
}

fn not_allowed(verdict: &str, names: &[String]) -> String {
    if let [name] = names {
        return format!("property `{}` is {verdict}", bounded(name, MAX_NAME));
    }
    // The count first: a long list is cut short, the count never.
    let mut text = format!("{} properties are {verdict}:", names.len());
    for (i, name) in names.iter().take(MAX_NAMES).enumerate() {
        let sep = if i == 0 { " " } else { ", " };
        let _ = write!(text, "{sep}`{}`", bounded(name, MAX_NAME));
    }
    if names.len() > MAX_NAMES {
        text.push_str(", …");
    }
    text
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `text` escaped (no control characters reach a reason) and cut to at most `max` characters.
fn bounded(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (count, c) in text.chars().flat_map(char::escape_debug).enumerate() {
        if count == max {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
