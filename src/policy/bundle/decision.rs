//! The policy's decision document, parsed strictly: a decision of the wrong shape is a policy error, never a
//! partial allow.

use regorus::Value;
use serde_json::json;

use crate::classification::Classification;
use crate::policy::{Decision, Obligations, PolicyError};

pub(super) fn shape(message: &str) -> PolicyError {
    PolicyError::Shape(message.to_string())
}

/// `obligations.mask_columns`: `[{name, class}]`.
pub(super) fn mask_columns(
    value: Option<&Value>,
) -> Result<Vec<(String, Classification)>, PolicyError> {
    let shape = |m: &str| PolicyError::Shape(format!("`obligations.mask_columns` {m}"));
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let items: Vec<&Value> = if let Ok(items) = value.as_array() {
        items.iter().collect()
    } else if let Ok(items) = value.as_set() {
        items.iter().collect()
    } else {
        return Err(shape("must be an array"));
    };
    items
        .into_iter()
        .map(|item| {
            let object = item.as_object().map_err(|_| shape("holds a non-object"))?;
            let text = |key: &str| {
                object
                    .get(&Value::from(key))
                    .and_then(|v| v.as_string().ok())
                    .map(|s| s.to_string())
                    .ok_or_else(|| shape(&format!("entry lacks `{key}`")))
            };
            let class = serde_json::from_value::<Classification>(json!(text("class")?))
                .map_err(|_| shape("names an unknown class"))?;
            Ok((text("name")?, class))
        })
        .collect()
}

/// Reads `{allow, escalate, reasons, obligations}`; anything else is an error (and so a denial).
pub(super) fn parse_decision(value: &Value) -> Result<Decision, PolicyError> {
    if *value == Value::Undefined {
        return Err(PolicyError::Undefined);
    }
    let object = value
        .as_object()
        .map_err(|_| shape("the decision is not an object"))?;
    let field = |name: &str| object.get(&Value::from(name));
    let allow = match field("allow") {
        Some(Value::Bool(b)) => *b,
        _ => return Err(shape("`allow` must be a boolean")),
    };
    let escalate = match field("escalate") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(shape("`escalate` must be a boolean")),
    };
    if allow && escalate {
        return Err(shape("`allow` and `escalate` cannot both be true"));
    }
    let strings = |v: Option<&Value>, name: &str| -> Result<Vec<String>, PolicyError> {
        match v {
            None => Ok(Vec::new()),
            Some(v) => {
                let items: Vec<Value> = match v {
                    Value::Array(a) => a.iter().cloned().collect(),
                    Value::Set(s) => s.iter().cloned().collect(),
                    _ => return Err(shape(&format!("`{name}` must be an array of strings"))),
                };
                items
                    .iter()
                    .map(|i| {
                        i.as_string()
                            .map(|s| s.to_string())
                            .map_err(|_| shape(&format!("`{name}` must be an array of strings")))
                    })
                    .collect()
            }
        }
    };
    let reasons = strings(field("reasons"), "reasons")?;
    let obligations = match field("obligations") {
        None => Obligations::default(),
        Some(o) => {
            let o = o
                .as_object()
                .map_err(|_| shape("`obligations` must be an object"))?;
            let clearance = match o.get(&Value::from("clearance")) {
                None => None,
                Some(v) => {
                    let text = v
                        .as_string()
                        .map_err(|_| shape("`obligations.clearance` must be a class name"))?;
                    Some(
                        serde_json::from_value::<Classification>(json!(text.as_ref())).map_err(
                            |_| shape(&format!("unknown clearance `{text}` in obligations")),
                        )?,
                    )
                }
            };
            Obligations {
                clearance,
                redact: strings(o.get(&Value::from("redact")), "obligations.redact")?
                    .iter()
                    .map(|name| {
                        serde_json::from_value::<Classification>(json!(name)).map_err(|_| {
                            shape(&format!("unknown class `{name}` in `obligations.redact`"))
                        })
                    })
                    .collect::<Result<_, _>>()?,
                mask_columns: mask_columns(o.get(&Value::from("mask_columns")))?,
            }
        }
    };
    Ok(Decision {
        allow,
        escalate,
        reasons,
        obligations,
        error: None,
    })
}
