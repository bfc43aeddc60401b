//! The agent inventory (`tool-manifests/agents.yaml`): every agent toolgate will let act, its owner and limits.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::scope::Scope;
use crate::classification::Classification;

/// Which issuer and subject (or client id) may assert an agent acting alone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub issuer: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
}

/// One registered agent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Accountable owner (a team or person).
    pub owner: String,
    pub description: String,
    /// Most this agent may ever reach: tool patterns (`files__read_file`, `sql__*`, `*`).
    pub scope: Vec<String>,
    /// Highest data classification this agent may carry.
    pub max_classification: Classification,
    /// May act for a human (principal-context).
    #[serde(default)]
    pub acts_for_humans: bool,
    /// May act alone (agent-only), asserted by these bindings.
    #[serde(default)]
    pub acts_alone: Vec<Binding>,
    /// Agents this one may delegate to.
    #[serde(default)]
    pub delegates_to: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    agents: BTreeMap<String, AgentSpec>,
}

/// Why an inventory does not load.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read agent inventory `{path}`: {reason}")]
    Read { path: String, reason: String },
    #[error("agent inventory `{path}`: {source}")]
    In {
        path: String,
        #[source]
        source: Box<InventoryError>,
    },
    #[error("{0}")]
    Yaml(String),
    #[error("agent `{0}` is defined in the inventory file, which is read-only")]
    ReadOnly(String),
    /// An agent breaks a rule (named in the text).
    #[error("{0}")]
    Invalid(String),
}

/// A validated agent.
#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub spec: AgentSpec,
    pub scope: Scope,
}

impl Agent {
    /// The tools of `known` this agent's scope reaches that `used` does not name: least-privilege hints.
    pub fn unused_tools(
        &self,
        known: &[String],
        used: &std::collections::BTreeSet<String>,
    ) -> Vec<String> {
        known
            .iter()
            .filter(|t| self.scope.allows(t) && !used.contains(*t))
            .cloned()
            .collect()
    }
}

/// Every registered agent, by id.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    agents: BTreeMap<String, Agent>,
}

impl Inventory {
    /// Loads and validates the inventory file.
    pub fn load(path: &Path) -> Result<Self, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|e| InventoryError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_yaml(&text).map_err(|e| InventoryError::In {
            path: path.display().to_string(),
            source: Box::new(e),
        })
    }

    pub fn from_yaml(text: &str) -> Result<Self, InventoryError> {
        Self::merged(text, &BTreeMap::new())
    }

    /// The inventory file's agents plus agents registered at run time (which may not reuse a file agent's id),
    /// validated together.
    pub fn merged(
        text: &str,
        registered: &BTreeMap<String, AgentSpec>,
    ) -> Result<Self, InventoryError> {
        let mut file: File =
            serde_yaml_ng::from_str(text).map_err(|e| InventoryError::Yaml(e.to_string()))?;
        for (id, spec) in registered {
            if file.agents.contains_key(id) {
                return Err(InventoryError::ReadOnly(id.clone()));
            }
            file.agents.insert(id.clone(), spec.clone());
        }
        let mut agents = BTreeMap::new();
        for (id, spec) in &file.agents {
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(InventoryError::Invalid(format!(
                    "agent id `{id}` is invalid"
                )));
            }
            if spec.owner.trim().is_empty() {
                return Err(InventoryError::Invalid(format!(
                    "agent `{id}` has no owner"
                )));
            }
            for target in &spec.delegates_to {
                if !file.agents.contains_key(target) {
                    return Err(InventoryError::Invalid(format!(
                        "agent `{id}` delegates to unknown agent `{target}`"
                    )));
                }
            }
            for binding in &spec.acts_alone {
                if binding.subject.is_none() && binding.client_id.is_none() {
                    return Err(InventoryError::Invalid(format!(
                        "agent `{id}`: an acts_alone binding needs a subject or a client_id"
                    )));
                }
            }
            let scope = Scope::parse(&spec.scope)
                .map_err(|e| InventoryError::Invalid(format!("agent `{id}`: {e}")))?;
            agents.insert(
                id.clone(),
                Agent {
                    id: id.clone(),
                    spec: spec.clone(),
                    scope,
                },
            );
        }
        Ok(Self { agents })
    }

    pub fn get(&self, id: &str) -> Option<&Agent> {
        self.agents.get(id)
    }

    /// Every registered agent, by id.
    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// Every agent as policy data (`data.toolgate.agents`): `{id: spec}`.
    pub fn to_policy_data(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.agents
                .iter()
                .map(|(id, a)| {
                    (
                        id.clone(),
                        serde_json::to_value(&a.spec).unwrap_or(serde_json::Value::Null),
                    )
                })
                .collect(),
        )
    }

    /// The agent that `(issuer, subject)` (or its client id) is bound to, for agent-only tokens.
    pub fn bound_agent(
        &self,
        issuer: &str,
        subject: &str,
        client_id: Option<&str>,
    ) -> Option<&Agent> {
        self.agents.values().find(|agent| {
            agent.spec.acts_alone.iter().any(|b| {
                b.issuer == issuer
                    && (b.subject.as_deref() == Some(subject)
                        // A client-credentials token: the client itself is the subject. A human's token that
                        // merely names the client it logged in through never makes them the agent.
                        || (b.client_id.is_some() && b.client_id.as_deref() == client_id && client_id == Some(subject)))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_delegate_and_missing_owner() {
        let bad = "agents:\n  a:\n    owner: x\n    description: d\n    scope: ['*']\n    max_classification: public\n    delegates_to: [ghost]\n";
        assert!(
            Inventory::from_yaml(bad)
                .unwrap_err()
                .to_string()
                .contains("ghost")
        );
        let no_owner = "agents:\n  a:\n    owner: ''\n    description: d\n    scope: ['*']\n    max_classification: public\n";
        assert!(
            Inventory::from_yaml(no_owner)
                .unwrap_err()
                .to_string()
                .contains("owner")
        );
    }

    #[test]
    fn tools_in_scope_never_called_are_named() {
        let yaml = "agents:\n  helper:\n    owner: qa\n    description: d\n    scope: ['tb__*', other__x]\n    max_classification: public\n";
        let inventory = Inventory::from_yaml(yaml).unwrap();
        let helper = inventory.get("helper").unwrap();
        let tools: Vec<String> = ["tb__echo", "tb__add", "other__x", "other__y"]
            .map(String::from)
            .to_vec();
        let used = std::collections::BTreeSet::from(["tb__echo".to_string()]);
        assert_eq!(helper.unused_tools(&tools, &used), ["tb__add", "other__x"]);
    }

    #[test]
    fn loads_the_quickstart_inventory() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tool-manifests/agents.yaml");
        let inventory = Inventory::load(&path).unwrap();
        assert!(inventory.get("assistant").unwrap().spec.acts_for_humans);
        assert!(
            inventory
                .bound_agent("toolgate-dev", "nightly-report", None)
                .is_some()
        );
    }
}
