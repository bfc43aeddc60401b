//! Calls held for human approval: stored, decided once, consumed once.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::sqlite::Sqlite;

pub(super) const APPROVAL_COLUMNS: &str = "id, status, issuer, subject, chain, tool, pin, arguments_hash, reasons, policy_version, created_at, expires_at, decided_by, decided_at, used_at, details";

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for an approver.
    Pending,
    /// Granted: the caller's next identical call goes through, once.
    Approved,
    Denied,
    /// Granted and consumed by a call.
    Used,
    /// Not decided or not used in time.
    Expired,
}

impl ApprovalStatus {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Used => "used",
            Self::Expired => "expired",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "used" => Self::Used,
            "expired" => Self::Expired,
            other => return Err(StoreError(format!("unknown approval status `{other}`"))),
        })
    }
}

/// A call held for human approval, bound to its exact caller, chain, tool (and pin) and arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub status: ApprovalStatus,
    pub issuer: String,
    pub subject: String,
    /// Agents, oldest first.
    pub chain: Vec<String>,
    pub tool: String,
    pub pin: Option<String>,
    /// SHA-256 of the arguments' canonical JSON (RFC 8785).
    pub arguments_hash: String,
    pub reasons: Vec<String>,
    pub policy_version: String,
    pub created_at: i64,
    /// Pending: until when an approver may decide. Approved: until when the call may be made.
    pub expires_at: i64,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub used_at: Option<i64>,
    /// What the approver is shown: the arguments as the caller sent them (bounded; shown redacted to the
    /// approver's clearance) and the facts the decision used. Kept until the approval is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
}

/// What a held call carried, for its approver.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Held {
    pub arguments: Option<serde_json::Value>,
    pub facts: Option<serde_json::Value>,
}

/// What an escalated call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Escalation {
    /// A granted approval matched and was consumed.
    Granted(String),
    /// The call waits for this approval (new, or the same call asked before).
    Pending { id: String, expires_at: i64 },
    /// An approver refused this very call; it is not held again until the refusal expires.
    Denied { id: String, expires_at: i64 },
    /// The caller already has this many calls waiting for an approver; this one is not held.
    Limited(usize),
}

fn approval_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Approval, String, String, String)> {
    let held: Option<String> = row.get(15)?;
    Ok((
        Approval {
            id: row.get(0)?,
            status: ApprovalStatus::Pending,
            issuer: row.get(2)?,
            subject: row.get(3)?,
            chain: Vec::new(),
            tool: row.get(5)?,
            pin: row.get(6)?,
            arguments_hash: row.get(7)?,
            reasons: Vec::new(),
            policy_version: row.get(9)?,
            created_at: row.get(10)?,
            expires_at: row.get(11)?,
            decided_by: row.get(12)?,
            decided_at: row.get(13)?,
            used_at: row.get(14)?,
            // A row whose details cannot be read shows none rather than failing the listing.
            held: held.and_then(|h| serde_json::from_str(&h).ok()),
        },
        row.get(1)?,
        row.get(4)?,
        row.get(8)?,
    ))
}

pub(super) fn finish_approval(
    (mut approval, status, chain, reasons): (Approval, String, String, String),
    now: i64,
) -> Result<Approval, StoreError> {
    approval.status = ApprovalStatus::parse(&status)?;
    if matches!(
        approval.status,
        ApprovalStatus::Pending | ApprovalStatus::Approved
    ) && approval.expires_at <= now
    {
        approval.status = ApprovalStatus::Expired;
    }
    approval.chain = serde_json::from_str(&chain).map_err(|e| StoreError(e.to_string()))?;
    approval.reasons = serde_json::from_str(&reasons).map_err(|e| StoreError(e.to_string()))?;
    Ok(approval)
}

impl Sqlite {
    /// For an escalated call: consumes a granted, unexpired approval of this exact request if there is one (once
    /// only, atomically); otherwise returns the pending approval of the same request, or stores `request` as a new
    /// pending one.
    pub async fn escalate(
        &self,
        request: Approval,
        now: i64,
        max_pending: usize,
    ) -> Result<Escalation, StoreError> {
        self.with(move |conn| {
            let chain = serde_json::to_string(&request.chain).map_err(|e| StoreError(e.to_string()))?;
            let matching = "issuer = ?1 AND subject = ?2 AND chain = ?3 AND tool = ?4 AND arguments_hash = ?5
                 AND pin IS ?6 AND expires_at > ?7";
            let used: Option<String> = conn
                .query_row(
                    &format!(
                        "UPDATE approvals SET status = 'used', used_at = ?7, details = NULL WHERE id = (
                            SELECT id FROM approvals WHERE status = 'approved' AND {matching}
                            ORDER BY decided_at LIMIT 1) RETURNING id"
                    ),
                    params![request.issuer, request.subject, chain, request.tool, request.arguments_hash, request.pin, now],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(id) = used {
                return Ok(Escalation::Granted(id));
            }
            let pending: Option<(String, i64)> = conn
                .query_row(
                    &format!(
                        "SELECT id, expires_at FROM approvals WHERE status = 'pending' AND {matching}
                         ORDER BY created_at LIMIT 1"
                    ),
                    params![request.issuer, request.subject, chain, request.tool, request.arguments_hash, request.pin, now],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            if let Some((id, expires_at)) = pending {
                return Ok(Escalation::Pending { id, expires_at });
            }
            // A refusal stands for its lifetime: asking again does not reach an approver again.
            let denied: Option<(String, i64)> = conn
                .query_row(
                    &format!(
                        "SELECT id, expires_at FROM approvals WHERE status = 'denied' AND {matching}
                         ORDER BY decided_at DESC LIMIT 1"
                    ),
                    params![request.issuer, request.subject, chain, request.tool, request.arguments_hash, request.pin, now],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            if let Some((id, expires_at)) = denied {
                return Ok(Escalation::Denied { id, expires_at });
            }
            // A new pending approval, unless the caller has its share waiting already.
            let waiting: i64 = conn.query_row(
                "SELECT count(*) FROM approvals WHERE status = 'pending' AND issuer = ?1 AND subject = ?2
                 AND expires_at > ?3",
                params![request.issuer, request.subject, now],
                |row| row.get(0),
            )?;
            if usize::try_from(waiting).unwrap_or(usize::MAX) >= max_pending {
                return Ok(Escalation::Limited(max_pending));
            }
            let reasons = serde_json::to_string(&request.reasons).map_err(|e| StoreError(e.to_string()))?;
            let held = request
                .held
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| StoreError(e.to_string()))?;
            conn.execute(
                &format!("INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES (?1, 'pending', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, NULL, NULL, NULL, ?12)"),
                params![
                    request.id, request.issuer, request.subject, chain, request.tool, request.pin,
                    request.arguments_hash, reasons, request.policy_version, request.created_at, request.expires_at,
                    held
                ],
            )?;
            Ok(Escalation::Pending { id: request.id, expires_at: request.expires_at })
        })
        .await
    }

    /// Approvals, newest first (at most 1,000), optionally of one status.
    pub async fn approvals(
        &self,
        status: Option<ApprovalStatus>,
        now: i64,
    ) -> Result<Vec<Approval>, StoreError> {
        self.with(move |conn| {
            // Pending and approved rows past their time are expired: the filter is applied in SQL so that the
            // limit never hides what was asked for.
            let filter = match status {
                None => "1",
                Some(ApprovalStatus::Pending) => "status = 'pending' AND expires_at > ?1",
                Some(ApprovalStatus::Approved) => "status = 'approved' AND expires_at > ?1",
                Some(ApprovalStatus::Expired) => {
                    "(status = 'expired' OR (status IN ('pending', 'approved') AND expires_at <= ?1))"
                }
                Some(ApprovalStatus::Denied) => "status = 'denied'",
                Some(ApprovalStatus::Used) => "status = 'used'",
            };
            let mut statement = conn.prepare(&format!(
                "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE {filter} AND ?1 = ?1
                 ORDER BY created_at DESC, id DESC LIMIT 1000"
            ))?;
            let rows = statement.query_map(params![now], approval_row)?;
            rows.map(|row| finish_approval(row?, now)).collect()
        })
        .await
    }

    pub async fn approval(&self, id: String, now: i64) -> Result<Option<Approval>, StoreError> {
        self.with(move |conn| {
            let row = conn
                .query_row(
                    &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1"),
                    params![id],
                    approval_row,
                )
                .optional()?;
            row.map(|r| finish_approval(r, now)).transpose()
        })
        .await
    }

    /// Approves (usable until `usable_until`) or denies (the refusal standing until then) a pending, unexpired
    /// approval. `None` when there is no
    /// such pending approval.
    pub async fn decide_approval(
        &self,
        id: String,
        approve: bool,
        by: String,
        now: i64,
        usable_until: i64,
    ) -> Result<Option<Approval>, StoreError> {
        let store = self.clone();
        let changed = self
            .with({
                let id = id.clone();
                move |conn| {
                    let status = if approve { ApprovalStatus::Approved } else { ApprovalStatus::Denied };
                    // Granted: usable until then. Denied: the refusal stands until then.
                    let expires = usable_until;
                    Ok(conn.execute(
                        "UPDATE approvals SET status = ?1, decided_by = ?2, decided_at = ?3, expires_at = ?4
                         WHERE id = ?5 AND status = 'pending' AND expires_at > ?3",
                        params![status.as_str(), by, now, expires, id],
                    )?)
                }
            })
            .await?;
        if changed == 0 {
            return Ok(None);
        }
        store.approval(id, now).await
    }
}
