//! The overview: each upstream's health, the policy in force, decisions per minute, and what waits for a human.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::session::Signed;
use super::{Frame, forms, render};
use crate::admin::AdminState;
use crate::catalog::UpstreamStatus;
use crate::catalog::pins::PinStatus;
use crate::policy::PolicyStatus;
use crate::report::chart::{self, Counts, OUTCOMES};
use crate::store::ApprovalStatus;

/// Minutes the chart covers.
const MINUTES: i64 = 60;

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    frame: Frame,
    upstreams: Vec<UpstreamStatus>,
    policy: PolicyStatus,
    loaded_at: String,
    pending: Option<usize>,
    quarantined: usize,
    chart: Option<String>,
}

impl Overview {
    fn plural(n: &usize, one: &str, many: &str) -> String {
        format!("{n} {}", if *n == 1 { one } else { many })
    }
}

pub(in crate::admin) async fn page(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
) -> Response {
    let gateway = &state.gateway;
    let now = crate::clock::unix_now();
    let pending = gateway
        .store
        .approvals(Some(ApprovalStatus::Pending), now)
        .await
        .ok()
        .map(|list| list.len());
    let quarantined = gateway
        .pins
        .list()
        .iter()
        .filter(|p| p.status == PinStatus::Quarantined)
        .count();
    let storage = gateway.config.storage.clone();
    let since = (crate::clock::now_ms() / 60_000 - MINUTES + 1) * 60_000;
    let counts = tokio::task::spawn_blocking(move || {
        crate::audit::Records::open(&storage).and_then(|mut r| r.per_minute(since))
    })
    .await;
    let chart = match counts {
        Ok(Ok(counts)) => Some(per_minute(since, &counts)),
        Ok(Err(e)) => {
            tracing::error!("console overview: decision records cannot be read: {e}");
            None
        }
        Err(e) => {
            tracing::error!("console overview: {e}");
            None
        }
    };
    let policy = gateway.policy.status();
    render(&Overview {
        frame: Frame::new(&state, &signed, "/console/overview", "Overview".into()),
        upstreams: forms::statuses(&state),
        loaded_at: forms::time_s(i64::try_from(policy.loaded_at).unwrap_or(0)),
        policy,
        pending,
        quarantined,
        chart,
    })
}

/// The chart of the last hour's records per minute, by outcome.
fn per_minute(since_ms: i64, counts: &[(i64, String, u64)]) -> String {
    let first = since_ms / 60_000;
    let mut minutes: Vec<(String, Counts)> = (0..MINUTES)
        .map(|i| {
            let label = forms::time((first + i) * 60_000);
            let hhmm = label.get(11..16).unwrap_or_default().to_string();
            (hhmm, [0; 4])
        })
        .collect();
    for (minute, decision, n) in counts {
        let Ok(i) = usize::try_from(minute - first) else {
            continue;
        };
        let k = OUTCOMES.iter().position(|o| o == decision).unwrap_or(3);
        if let Some((_, column)) = minutes.get_mut(i) {
            column[k] += n;
        }
    }
    chart::columns("Decisions per minute, last hour", &minutes, 10)
}
