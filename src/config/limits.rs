//! Time, size and count limits.

use std::time::Duration;

use serde::Deserialize;

/// Time limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Longest a `tools/call` may wait for its upstream.
    #[serde(with = "humantime_serde")]
    pub call: Duration,
    /// Longest connecting to an upstream (spawn or connect, initialize and `tools/list`) may take.
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
    /// Sessions idle for longer are closed.
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    /// First delay before reconnecting to a failed upstream; doubles up to `reconnect_max`.
    #[serde(with = "humantime_serde")]
    pub reconnect_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub reconnect_max: Duration,
    /// On SIGTERM, how long `/readyz` answers unready while everything is still served, so that load balancers
    /// stop sending new work before the listener closes.
    #[serde(with = "humantime_serde")]
    pub unready: Duration,
    /// Then, how long calls in flight may take to finish before they are cancelled.
    #[serde(with = "humantime_serde")]
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            call: Duration::from_secs(60),
            connect: Duration::from_secs(20),
            session_idle: Duration::from_secs(30 * 60),
            reconnect_initial: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(30),
            unready: Duration::from_secs(2),
            drain: Duration::from_secs(30),
        }
    }
}

/// Size and count limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body accepted on `/mcp` (and largest stdio line); larger bodies are refused before parsing.
    pub max_request_bytes: usize,
    /// Largest answer accepted from an upstream for one call.
    pub max_response_bytes: usize,
    /// Most downstream sessions open at once.
    pub max_sessions: usize,
    /// Most sessions one caller (`iss`, `sub`) may hold open.
    pub max_sessions_per_subject: usize,
    /// Most sessions open through one agent (the current actor), whoever it acts for.
    pub max_sessions_per_agent: usize,
    /// Most GET streams one caller may hold open (each session has at most one).
    pub max_streams_per_subject: usize,
    /// Tools per `tools/list` page.
    pub page_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 1024 * 1024,
            max_response_bytes: 8 * 1024 * 1024,
            max_sessions: 10_000,
            max_sessions_per_subject: 1_024,
            max_sessions_per_agent: 4_096,
            max_streams_per_subject: 1_024,
            page_size: 200,
        }
    }
}

impl Limits {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.page_size == 0 {
            return Err("limits.page_size must be at least 1".into());
        }
        if self.max_request_bytes < 1024 {
            return Err("limits.max_request_bytes must be at least 1024".into());
        }
        if self.max_response_bytes < 1024 {
            return Err("limits.max_response_bytes must be at least 1024".into());
        }
        if [
            self.max_sessions,
            self.max_sessions_per_subject,
            self.max_sessions_per_agent,
            self.max_streams_per_subject,
        ]
        .contains(&0)
        {
            return Err(
                "limits.max_sessions, max_sessions_per_subject, max_sessions_per_agent and \
                 max_streams_per_subject must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }
}

impl Timeouts {
    pub(super) fn validate(&self) -> Result<(), String> {
        if [
            self.call,
            self.connect,
            self.session_idle,
            self.reconnect_initial,
            self.reconnect_max,
        ]
        .iter()
        .any(Duration::is_zero)
        {
            return Err("timeouts must be greater than zero".into());
        }
        if self.reconnect_max < self.reconnect_initial {
            return Err(
                "timeouts.reconnect_max must not be below timeouts.reconnect_initial".into(),
            );
        }
        Ok(())
    }
}
