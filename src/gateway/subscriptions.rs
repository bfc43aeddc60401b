//! Resource subscriptions: which session listens to which resource, and the delivery of an upstream's
//! `notifications/resources/updated` to exactly those sessions whose caller may still read the resource. Each
//! delivery is decided again (token expiry, revocation, scope, policy), so a revocation or a policy change applies
//! to the next update; a subscription whose caller may no longer read the resource ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::sync::broadcast;

use super::surface::{Item, item_input};
use super::{CallContext, Gateway};
use crate::catalog::Upstream;
use crate::catalog::surface::SurfaceEvent;
use crate::identity::Caller;
use crate::policy::Action;
use crate::policy::input::{CallerInput, ItemKind};
use crate::reason::Reason;

/// Most subscriptions one session may hold.
const MAX_PER_SESSION: usize = 256;

/// One session's subscription to one resource.
#[derive(Clone)]
struct Subscriber {
    caller: Caller,
    /// The URI the client subscribed to (exposed form).
    exposed: String,
}

/// An update for one session: `notifications/resources/updated` with the exposed URI.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub session: Arc<str>,
    pub uri: String,
}

/// An upstream's resource: the upstream's name and its own URI.
type ResourceKey = (Arc<str>, String);
/// One session's subscriptions: exposed URI → (upstream, its URI).
type Held = HashMap<String, (Arc<Upstream>, String)>;

/// Every subscription: by the upstream's resource (to deliver), and by session (to end them with it).
pub struct Subscriptions {
    /// (upstream, its URI) → session → subscriber.
    by_resource: Mutex<HashMap<ResourceKey, HashMap<Arc<str>, Subscriber>>>,
    /// session → exposed URI → (upstream, its URI).
    by_session: Mutex<HashMap<Arc<str>, Held>>,
    deliveries: broadcast::Sender<Delivery>,
}

impl Default for Subscriptions {
    fn default() -> Self {
        Self {
            by_resource: Mutex::default(),
            by_session: Mutex::default(),
            deliveries: broadcast::channel(256).0,
        }
    }
}

/// A session holds as many subscriptions as it may.
#[derive(Debug)]
pub(super) struct TooMany;

impl Subscriptions {
    /// Adds (or renews) a session's subscription.
    pub(super) fn add(&self, item: &Item, call: &CallContext<'_>) -> Result<(), TooMany> {
        let session: Arc<str> = Arc::from(call.session);
        let (Ok(mut by_resource), Ok(mut by_session)) =
            (self.by_resource.lock(), self.by_session.lock())
        else {
            return Err(TooMany);
        };
        let held = by_session.entry(Arc::clone(&session)).or_default();
        if held.len() >= MAX_PER_SESSION && !held.contains_key(&item.exposed) {
            return Err(TooMany);
        }
        held.insert(
            item.exposed.clone(),
            (Arc::clone(&item.upstream), item.original.clone()),
        );
        by_resource
            .entry((Arc::clone(&item.upstream.name), item.original.clone()))
            .or_default()
            .insert(
                session,
                Subscriber {
                    caller: call.caller.clone(),
                    exposed: item.exposed.clone(),
                },
            );
        Ok(())
    }

    /// Removes a session's subscription; the upstream's resource when nobody is subscribed to it any more.
    pub(super) fn remove(&self, exposed: &str, session: &str) -> Option<(Arc<Upstream>, String)> {
        let (Ok(mut by_resource), Ok(mut by_session)) =
            (self.by_resource.lock(), self.by_session.lock())
        else {
            return None;
        };
        let held = by_session.get_mut(session)?;
        let (upstream, original) = held.remove(exposed)?;
        if held.is_empty() {
            by_session.remove(session);
        }
        let key = (Arc::clone(&upstream.name), original.clone());
        let last = match by_resource.get_mut(&key) {
            Some(subscribers) => {
                subscribers.remove(session);
                subscribers.is_empty()
            }
            None => true,
        };
        if last {
            by_resource.remove(&key);
            return Some((upstream, original));
        }
        None
    }

    /// Every exposed URI a session subscribed to.
    fn of_session(&self, session: &str) -> Vec<String> {
        self.by_session
            .lock()
            .ok()
            .and_then(|s| s.get(session).map(|held| held.keys().cloned().collect()))
            .unwrap_or_default()
    }

    /// The caller a session's subscriptions are decided for, as it authenticated last.
    pub(super) fn renew_caller(&self, session: &str, caller: &crate::identity::Caller) {
        // The same order as everywhere else: by resource, then by session.
        let (Ok(mut by_resource), Ok(by_session)) =
            (self.by_resource.lock(), self.by_session.lock())
        else {
            return;
        };
        let Some(held) = by_session.get(session) else {
            return;
        };
        for (upstream, original) in held.values() {
            if let Some(subscriber) = by_resource
                .get_mut(&(Arc::clone(&upstream.name), original.clone()))
                .and_then(|s| s.get_mut(session))
            {
                subscriber.caller = caller.clone();
            }
        }
    }

    /// The upstream's own URIs of every resource of `upstream` someone is subscribed to.
    fn of_upstream(&self, upstream: &str) -> Vec<String> {
        self.by_resource
            .lock()
            .map(|r| {
                r.keys()
                    .filter(|(u, _)| &**u == upstream)
                    .map(|(_, uri)| uri.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn subscribers(&self, upstream: &Arc<str>, uri: &str) -> Vec<(Arc<str>, Subscriber)> {
        self.by_resource
            .lock()
            .ok()
            .and_then(|r| {
                r.get(&(Arc::clone(upstream), uri.to_string()))
                    .map(|s| s.iter().map(|(k, v)| (Arc::clone(k), v.clone())).collect())
            })
            .unwrap_or_default()
    }

    /// Updates for sessions, once decided.
    pub fn deliveries(&self) -> broadcast::Receiver<Delivery> {
        self.deliveries.subscribe()
    }
}

impl Gateway {
    /// Updates of subscribed resources, each already decided for its session.
    pub fn resource_updates(&self) -> broadcast::Receiver<Delivery> {
        self.subscriptions.deliveries()
    }

    /// Ends every subscription of a session that ended.
    pub fn forget_session(&self, session: &str) {
        for uri in self.subscriptions.of_session(session) {
            if let Some((upstream, original)) = self.subscriptions.remove(&uri, session) {
                self.unsubscribe_upstream(upstream, original);
            }
        }
    }

    /// Follows what upstreams say of their resources and prompts: updates go to the sessions that may still read
    /// the resource; list changes tell every client to list again.
    pub(super) fn follow_surface(self: &Arc<Self>) {
        let mut events = self.catalog.surface_events();
        let gateway = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("{n} resource notifications dropped (too many at once)");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let Some(gateway) = gateway.upgrade() else {
                    return;
                };
                match event {
                    SurfaceEvent::ListChanged { .. } => gateway.announce_change(),
                    SurfaceEvent::Connected { upstream } => gateway.resubscribe(&upstream),
                    SurfaceEvent::ResourceUpdated { upstream, uri } => {
                        gateway.deliver_update(&upstream, &uri).await;
                    }
                }
            }
        });
    }

    /// An upstream's new session knows nothing of the subscriptions of its last one: they are made again.
    fn resubscribe(&self, upstream: &str) {
        let Some(owner) = self.catalog.upstream_named(upstream) else {
            return;
        };
        for original in self.subscriptions.of_upstream(upstream) {
            let (catalog, owner) = (Arc::clone(&self.catalog), Arc::clone(&owner));
            tokio::spawn(async move {
                let never = tokio_util::sync::CancellationToken::new();
                let params = json!({"uri": original});
                if let Err(e) = catalog
                    .request(&owner, "resources/subscribe", params, &never)
                    .await
                {
                    tracing::warn!(upstream = %owner.name, "a subscription was not made again: {e}");
                }
            });
        }
    }

    /// A session's subscriptions are decided for the caller of its latest request (a later token, say).
    pub fn renew_subscriber(&self, session: &str, caller: &crate::identity::Caller) {
        self.subscriptions.renew_caller(session, caller);
    }

    /// Decides an update for every subscriber of the resource, recording each decision.
    async fn deliver_update(&self, upstream: &Arc<str>, uri: &str) {
        let Some(owner) = self.catalog.upstream_named(upstream) else {
            return;
        };
        for (session, subscriber) in self.subscriptions.subscribers(upstream, uri) {
            let request_id = rmcp::model::RequestId::String("update".into());
            let call = CallContext::new(&subscriber.caller, &session, &request_id);
            let mut record = super::record::caller_record("notifications/resources/updated", &call);
            record.tool = Some(subscriber.exposed.clone());
            record.upstream = Some(upstream.to_string());
            let bundle = self.policy.current();
            record.policy_version = Some(bundle.version.clone());
            let item = Item {
                kind: ItemKind::Resource,
                exposed: subscriber.exposed.clone(),
                upstream: Arc::clone(&owner),
                original: uri.to_string(),
                definition: json!({"uri": subscriber.exposed}),
            };
            let caller = &subscriber.caller;
            let now = jsonwebtoken::get_current_timestamp() as i64;
            let refused = if now >= caller.expires_at {
                Some((
                    Reason::TokenExpired,
                    "the subscriber's token expired".to_string(),
                ))
            } else if let Err(e) = self.identity.revocations().check(caller) {
                Some((e.reason_id(), e.to_string()))
            } else {
                let who = CallerInput::new(caller, &session, "update");
                match Self::listable(&bundle, &who, caller, &item) {
                    Err(why) => Some((Reason::UnknownItem, why)),
                    Ok(()) => {
                        let decision =
                            bundle.decide(&item_input(&who, &bundle, &item, Action::Read, None));
                        match (&decision.error, decision.allow && !decision.escalate) {
                            (Some(error), _) => Some((error.reason_id(), error.to_string())),
                            (None, false) => {
                                Some((Reason::PolicyDenied, decision.reasons.join("; ")))
                            }
                            (None, true) => None,
                        }
                    }
                }
            };
            match refused {
                None => {
                    record.decision = "allow".into();
                    record.outcome = Reason::Allowed.into();
                    let _ = self.subscriptions.deliveries.send(Delivery {
                        session: Arc::clone(&session),
                        uri: subscriber.exposed.clone(),
                    });
                }
                Some((reason, why)) => {
                    record.decision = "deny".into();
                    record.outcome = reason.as_str().into();
                    record.reasons = vec![why, "the subscription ends".into()];
                    if let Some((upstream, original)) =
                        self.subscriptions.remove(&subscriber.exposed, &session)
                    {
                        self.unsubscribe_upstream(upstream, original);
                    }
                }
            }
            self.audit.append_detached(record);
        }
    }
}
