//! The rest of an upstream's surface beside its tools: resources, resource templates, prompts and completion,
//! asked of the upstream when a client asks, and the notifications that concern them. A listing serves for a
//! second (one request asks the upstream while others wait for its answer), less when the upstream says its lists
//! changed or a new session with it begins: what a client sees is what the upstream holds, give or take a second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{Catalog, Conn, Upstream, UpstreamError};

/// Most items one upstream may list for one method, over all its pages.
const MAX_ITEMS: usize = 100_000;
/// Most pages one listing may take.
const MAX_PAGES: usize = 1_000;

/// How long an upstream's listing serves before the upstream is asked again.
const LIST_FRESH: Duration = Duration::from_secs(1);

/// One listing: when it was taken, and its items.
type Listing = Option<(Instant, Arc<Vec<Value>>)>;

/// The upstreams' latest listings, by upstream and method; one lock per listing, so that one request asks the
/// upstream and the others wait for its answer.
#[derive(Default)]
pub(super) struct Lists {
    slots: DashMap<(Arc<str>, &'static str), Arc<tokio::sync::Mutex<Listing>>>,
}

impl Lists {
    /// Forgets an upstream's listings (its lists changed, or its session did).
    fn forget(&self, upstream: &str) {
        self.slots.retain(|(u, _), _| &**u != upstream);
    }
}

/// Something an upstream said of its resources or prompts, not tied to any call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SurfaceEvent {
    /// `notifications/resources/updated`: the resource at `uri` (the upstream's own URI) changed.
    ResourceUpdated { upstream: Arc<str>, uri: String },
    /// `notifications/resources/list_changed` or `notifications/prompts/list_changed`.
    ListChanged { upstream: Arc<str> },
    /// A new session with the upstream (after a start or a reconnection): it holds none of the last one's
    /// subscriptions.
    Connected { upstream: Arc<str> },
}

/// Where an upstream's connection reports surface events.
#[derive(Clone)]
pub struct SurfaceEvents {
    upstream: Arc<str>,
    tx: broadcast::Sender<SurfaceEvent>,
    lists: Arc<Lists>,
}

impl std::fmt::Debug for SurfaceEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SurfaceEvents")
            .field("upstream", &self.upstream)
            .finish()
    }
}

impl SurfaceEvents {
    pub(super) fn new(
        upstream: Arc<str>,
        tx: broadcast::Sender<SurfaceEvent>,
        lists: Arc<Lists>,
    ) -> Self {
        Self {
            upstream,
            tx,
            lists,
        }
    }

    /// The upstream says one of its resources changed.
    pub fn resource_updated(&self, uri: String) {
        let _ = self.tx.send(SurfaceEvent::ResourceUpdated {
            upstream: Arc::clone(&self.upstream),
            uri,
        });
    }

    /// A new session with the upstream began.
    pub fn connected(&self) {
        self.lists.forget(&self.upstream);
        let _ = self.tx.send(SurfaceEvent::Connected {
            upstream: Arc::clone(&self.upstream),
        });
    }

    /// The upstream says its resources or prompts changed.
    pub fn list_changed(&self) {
        self.lists.forget(&self.upstream);
        let _ = self.tx.send(SurfaceEvent::ListChanged {
            upstream: Arc::clone(&self.upstream),
        });
    }
}

impl Conn {
    async fn request(
        &self,
        method: &str,
        params: Value,
        cancel: &CancellationToken,
        timeout: std::time::Duration,
        max_bytes: usize,
    ) -> Result<Value, UpstreamError> {
        match self {
            Conn::Stdio(c) => c.request(method, params, cancel, timeout, max_bytes).await,
            Conn::Http(c) => c.request(method, params, cancel, timeout, max_bytes).await,
        }
    }
}

impl Catalog {
    /// Every upstream, in the order of the config (then those registered at run time).
    pub fn upstreams(&self) -> Arc<Vec<Arc<Upstream>>> {
        self.upstreams.load_full()
    }

    /// The upstream of that name.
    pub fn upstream_named(&self, name: &str) -> Option<Arc<Upstream>> {
        self.upstreams
            .load()
            .iter()
            .find(|u| &*u.name == name)
            .cloned()
    }

    /// What upstreams say of their resources and prompts.
    pub fn surface_events(&self) -> broadcast::Receiver<SurfaceEvent> {
        self.surface.subscribe()
    }

    /// Where an upstream's connection reports what it says of its resources and prompts.
    pub(super) fn events_of(&self, upstream: &Arc<str>) -> SurfaceEvents {
        SurfaceEvents::new(
            Arc::clone(upstream),
            self.surface.clone(),
            Arc::clone(&self.lists),
        )
    }

    /// Every item of a paginated list, as the upstream listed it at most a second ago (and not before it
    /// last said its lists changed); asked of the upstream otherwise, once for all who ask meanwhile. Failures are
    /// not kept.
    pub async fn list_fresh(
        &self,
        upstream: &Upstream,
        method: &'static str,
        field: &'static str,
    ) -> Result<Arc<Vec<Value>>, UpstreamError> {
        let slot = self
            .lists
            .slots
            .entry((Arc::clone(&upstream.name), method))
            .or_default()
            .clone();
        let mut listing = slot.lock().await;
        if let Some((taken, items)) = listing.as_ref()
            && taken.elapsed() < LIST_FRESH
        {
            return Ok(Arc::clone(items));
        }
        let items = Arc::new(self.list_every(upstream, method, field).await?);
        *listing = Some((Instant::now(), Arc::clone(&items)));
        Ok(items)
    }

    /// Sends one request to an upstream and returns its result, within the call timeout and the size limit.
    pub async fn request(
        &self,
        upstream: &Upstream,
        method: &str,
        params: Value,
        cancel: &CancellationToken,
    ) -> Result<Value, UpstreamError> {
        let conn = upstream
            .conn
            .load_full()
            .ok_or(UpstreamError::Unavailable)?;
        conn.request(
            method,
            params,
            cancel,
            self.timeouts.call,
            self.limits.max_response_bytes,
        )
        .await
    }

    /// Every item of a paginated list (`field` of each page), following the upstream's cursors, bounded.
    async fn list_every(
        &self,
        upstream: &Upstream,
        method: &str,
        field: &str,
    ) -> Result<Vec<Value>, UpstreamError> {
        let never = CancellationToken::new();
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let mut page = self.request(upstream, method, params, &never).await?;
            match page.get_mut(field).map(Value::take) {
                Some(Value::Array(found)) => items.extend(found),
                _ => {
                    return Err(UpstreamError::Malformed(format!(
                        "{method} result has no `{field}` list"
                    )));
                }
            }
            if items.len() > MAX_ITEMS {
                return Err(UpstreamError::Malformed(format!(
                    "more than {MAX_ITEMS} items in {method}"
                )));
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => cursor = Some(next.to_string()),
                _ => return Ok(items),
            }
        }
        Err(UpstreamError::Malformed(format!(
            "more than {MAX_PAGES} pages in {method}"
        )))
    }
}
