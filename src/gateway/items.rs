//! Finding resources, resource templates and prompts across the upstreams: every item of a kind for a listing,
//! or the one item an exposed name stands for (as the upstreams list it now).

use std::sync::Arc;

use rmcp::model::ErrorCode;
use serde_json::{Value, json};

use super::Gateway;
use super::surface::{Item, shape};
use crate::catalog::{Upstream, UpstreamError};
use crate::names;
use crate::policy::input::ItemKind;

impl Gateway {
    /// Every item of a kind from every upstream that can list it, in exposed-name order; the first upstream to
    /// list an unprefixed name keeps it. Upstreams whose listing failed are named in the second list (one that is not
    /// connected, or has no such capability, simply has none).
    pub(super) async fn gather(&self, kind: ItemKind) -> (Vec<Item>, Vec<String>) {
        let shape = shape(kind);
        let upstreams = self.catalog.upstreams();
        let listed = futures::future::join_all(upstreams.iter().map(|upstream| async move {
            let found = self
                .catalog
                .list_fresh(upstream, shape.method, shape.field)
                .await;
            (upstream, found)
        }))
        .await;
        let mut items = std::collections::BTreeMap::new();
        let mut failures = Vec::new();
        for (upstream, found) in listed {
            let definitions = match found {
                Ok(definitions) => definitions,
                // An upstream without the capability simply has none.
                Err(UpstreamError::Rpc(e)) if e.code == ErrorCode::METHOD_NOT_FOUND => continue,
                Err(UpstreamError::Unavailable) => continue,
                Err(e) => {
                    failures.push(format!("upstream `{}`: {e}", upstream.name));
                    continue;
                }
            };
            for definition in definitions.iter() {
                let Some(original) = definition.get(shape.key).and_then(Value::as_str) else {
                    continue;
                };
                let original = original.to_string();
                let Some(exposed) = self.expose(kind, upstream, &original) else {
                    continue;
                };
                if items.contains_key(&exposed) {
                    continue;
                }
                let mut definition = definition.clone();
                if let Some(object) = definition.as_object_mut() {
                    object.insert(shape.key.into(), Value::String(exposed.clone()));
                }
                items.insert(
                    exposed.clone(),
                    Item {
                        kind,
                        exposed,
                        upstream: Arc::clone(upstream),
                        original,
                        definition,
                    },
                );
            }
        }
        (items.into_values().collect(), failures)
    }

    /// Finds the item an exposed name stands for, as the upstreams list it now; `None` when none does.
    pub(super) async fn find(&self, kind: ItemKind, exposed: &str) -> Option<Item> {
        let candidates: Vec<(Arc<Upstream>, String)> = match kind {
            ItemKind::Prompt => self
                .catalog
                .upstreams()
                .iter()
                .filter_map(|u| {
                    let original = if u.prefix {
                        exposed
                            .strip_prefix(&*u.name)?
                            .strip_prefix(self.config.namespace_separator.as_str())?
                    } else {
                        exposed
                    };
                    Some((Arc::clone(u), original.to_string()))
                })
                .collect(),
            ItemKind::Resource | ItemKind::Template => match names::split_uri(exposed) {
                Some((upstream, original)) => self
                    .catalog
                    .upstream_named(upstream)
                    .filter(|u| u.prefix)
                    .map(|u| (u, original.to_string()))
                    .into_iter()
                    .collect(),
                None => self
                    .catalog
                    .upstreams()
                    .iter()
                    .filter(|u| !u.prefix)
                    .map(|u| (Arc::clone(u), exposed.to_string()))
                    .collect(),
            },
        };
        let shape = shape(kind);
        // Every candidate is asked, and for a resource its templates too, whatever is found: a hidden item and a
        // missing one cost the same.
        let listed = futures::future::join_all(candidates.into_iter().map(
            |(upstream, original)| async move {
                let listing = self
                    .catalog
                    .list_fresh(&upstream, shape.method, shape.field);
                let templates = async {
                    match kind {
                        ItemKind::Resource => self
                            .catalog
                            .list_fresh(&upstream, "resources/templates/list", "resourceTemplates")
                            .await
                            .unwrap_or_default(),
                        _ => std::sync::Arc::default(),
                    }
                };
                let (listing, templates) = futures::join!(listing, templates);
                (upstream, original, listing.unwrap_or_default(), templates)
            },
        ))
        .await;
        for (upstream, original, listing, templates) in listed {
            let held = listing
                .iter()
                .find(|d| d.get(shape.key).and_then(Value::as_str) == Some(original.as_str()))
                .cloned()
                // A resource no list names may still be an instance of one of the upstream's templates.
                .or_else(|| {
                    templates
                        .iter()
                        .any(|t| {
                            t.get("uriTemplate")
                                .and_then(Value::as_str)
                                .is_some_and(|t| names::template_matches(t, &original))
                        })
                        .then(|| json!({"uri": original}))
                });
            let Some(mut definition) = held else { continue };
            // An unprefixed name another upstream listed first belongs to that upstream.
            let exposed_here = self.expose(kind, &upstream, &original);
            if exposed_here.as_deref() != Some(exposed) {
                continue;
            }
            if let Some(object) = definition.as_object_mut() {
                object.insert(shape.key.into(), Value::String(exposed.to_string()));
            }
            return Some(Item {
                kind,
                exposed: exposed.to_string(),
                upstream,
                original,
                definition,
            });
        }
        None
    }
}
