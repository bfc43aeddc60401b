//! Pinned tool definitions. A tool's definition (name, description, schemas, annotations) is hashed over canonical
//! JSON when first approved; when its upstream later reports another definition, the tool is quarantined — hidden
//! from `tools/list`, refused on `tools/call` — until an admin approves the new definition (re-pins) or rejects it.

use std::sync::Arc;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use super::{ExposedTool, pinned_definition};
use crate::store::{Store, StoreError};

use crate::config::FirstSight;

/// Where a pin stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PinStatus {
    /// The upstream's definition is the pinned one.
    Approved,
    /// The upstream reports a definition that awaits review.
    Quarantined,
    /// An admin rejected the definition the upstream reports; the tool stays hidden.
    Rejected,
}

/// One tool's pin, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pin {
    /// Exposed name.
    pub tool: String,
    pub upstream: String,
    /// The approved definition's hash and content (none before the first approval).
    pub hash: Option<String>,
    pub definition: Option<serde_json::Value>,
    pub status: PinStatus,
    /// The definition the upstream reports now, when it is not the approved one.
    pub pending_hash: Option<String>,
    pub pending_definition: Option<serde_json::Value>,
    pub decided_by: Option<String>,
    pub updated_at: i64,
}

impl Pin {
    /// A readable diff from the approved definition to the pending one.
    pub fn diff(&self) -> String {
        let pretty = |v: &Option<serde_json::Value>| {
            v.as_ref()
                .and_then(|v| serde_json::to_string_pretty(v).ok())
                .unwrap_or_default()
        };
        let (old, new) = (pretty(&self.definition), pretty(&self.pending_definition));
        similar::TextDiff::from_lines(&old, &new)
            .unified_diff()
            .context_radius(3)
            .header("approved", "reported by the upstream")
            .to_string()
    }
}

/// Every pin, mirrored in memory; the store keeps them across restarts.
pub struct Pins {
    first_sight: FirstSight,
    pins: DashMap<String, Pin>,
    store: Store,
}

impl Pins {
    pub async fn load(store: Store, first_sight: FirstSight) -> Result<Self, StoreError> {
        let pins = DashMap::new();
        for pin in store.pins::<Pin>().await? {
            pins.insert(pin.tool.clone(), pin);
        }
        Ok(Self {
            first_sight,
            pins,
            store,
        })
    }

    /// Reads every pin again (another replica decided or observed some); returns whether any changed.
    pub async fn reload(&self) -> Result<bool, StoreError> {
        let stored = self.store.pins::<Pin>().await?;
        let mut changed = self.pins.len() != stored.len();
        self.pins
            .retain(|tool, _| stored.iter().any(|p| &p.tool == tool));
        for pin in stored {
            let same = self.pins.get(&pin.tool).is_some_and(|p| *p == pin);
            if !same {
                changed = true;
                self.pins.insert(pin.tool.clone(), pin);
            }
        }
        Ok(changed)
    }

    /// Whether this definition of the tool may be listed and called.
    pub fn approved(&self, tool: &ExposedTool) -> bool {
        match self.pins.get(tool.name.as_ref()) {
            Some(pin) => pin.hash.as_deref() == Some(tool.pin_hash.as_ref()),
            None => self.first_sight == FirstSight::TrustOnFirstUse,
        }
    }

    /// Records what the upstreams report: pins tools seen for the first time (or quarantines them, as configured)
    /// and quarantines tools whose definition changed. Returns whether any tool's standing changed.
    pub async fn observe(&self, tools: &[Arc<ExposedTool>]) -> Result<bool, StoreError> {
        let mut changed = false;
        for tool in tools {
            let definition = pinned_definition(&tool.original_definition());
            let hash = tool.pin_hash.to_string();
            let current = self.pins.get(tool.name.as_ref()).map(|p| p.clone());
            let before = current.as_ref().map(|p| (p.status, p.hash.clone()));
            let next = match current {
                None => Some(match self.first_sight {
                    FirstSight::TrustOnFirstUse => Pin {
                        tool: tool.name.to_string(),
                        upstream: tool.upstream.to_string(),
                        hash: Some(hash),
                        definition: Some(definition),
                        status: PinStatus::Approved,
                        pending_hash: None,
                        pending_definition: None,
                        decided_by: Some("trust_on_first_use".into()),
                        updated_at: crate::clock::unix_now(),
                    },
                    FirstSight::RequireApproval => Pin {
                        tool: tool.name.to_string(),
                        upstream: tool.upstream.to_string(),
                        hash: None,
                        definition: None,
                        status: PinStatus::Quarantined,
                        pending_hash: Some(hash),
                        pending_definition: Some(definition),
                        decided_by: None,
                        updated_at: crate::clock::unix_now(),
                    },
                }),
                // Back to the approved definition: nothing is pending any more.
                Some(pin) if pin.hash.as_deref() == Some(hash.as_str()) => {
                    (pin.status != PinStatus::Approved).then(|| Pin {
                        status: PinStatus::Approved,
                        pending_hash: None,
                        pending_definition: None,
                        updated_at: crate::clock::unix_now(),
                        ..pin
                    })
                }
                // The definition under review (or rejected) is still the one reported.
                Some(pin) if pin.pending_hash.as_deref() == Some(hash.as_str()) => None,
                // A new definition: quarantined for review.
                Some(pin) => {
                    tracing::warn!(tool = %tool.name, upstream = %tool.upstream, "tool definition changed upstream: quarantined until an admin reviews it");
                    Some(Pin {
                        status: PinStatus::Quarantined,
                        pending_hash: Some(hash),
                        pending_definition: Some(definition),
                        decided_by: None,
                        updated_at: crate::clock::unix_now(),
                        ..pin
                    })
                }
            };
            if let Some(pin) = next {
                self.store.put_pin(pin.tool.clone(), pin.clone()).await?;
                changed |= match before {
                    None => pin.status != PinStatus::Approved,
                    Some(before) => before != (pin.status, pin.hash.clone()),
                };
                self.pins.insert(pin.tool.clone(), pin);
            }
        }
        Ok(changed)
    }

    pub fn list(&self) -> Vec<Pin> {
        let mut pins: Vec<Pin> = self.pins.iter().map(|p| p.clone()).collect();
        pins.sort_by(|a, b| a.tool.cmp(&b.tool));
        pins
    }

    pub fn get(&self, tool: &str) -> Option<Pin> {
        self.pins.get(tool).map(|p| p.clone())
    }

    /// Approves the pending definition (it becomes the pin) or rejects it. `None` when nothing is pending.
    /// When `reviewed` is given, it must be the pending definition's hash: a definition that changed again after
    /// the review is not approved unseen.
    pub async fn decide(
        &self,
        tool: &str,
        approve: bool,
        by: &str,
        reviewed: Option<&str>,
    ) -> Result<Option<Pin>, StoreError> {
        let Some(pin) = self.get(tool) else {
            return Ok(None);
        };
        if pin.pending_hash.is_none()
            || reviewed.is_some_and(|h| pin.pending_hash.as_deref() != Some(h))
        {
            return Ok(None);
        }
        let decided = if approve {
            Pin {
                hash: pin.pending_hash.clone(),
                definition: pin.pending_definition.clone(),
                status: PinStatus::Approved,
                pending_hash: None,
                pending_definition: None,
                decided_by: Some(by.to_string()),
                updated_at: crate::clock::unix_now(),
                ..pin
            }
        } else {
            Pin {
                status: PinStatus::Rejected,
                decided_by: Some(by.to_string()),
                updated_at: crate::clock::unix_now(),
                ..pin
            }
        };
        self.store
            .put_pin(decided.tool.clone(), decided.clone())
            .await?;
        self.pins.insert(decided.tool.clone(), decided.clone());
        Ok(Some(decided))
    }
}
