//! Calls held for approval, in PostgreSQL: the same rules as the embedded store's, with each caller's escalations
//! serialised by a transaction-scoped lock, so that a granted approval is consumed once across every replica.

use super::{Postgres, StoreError};
use crate::store::approvals::{APPROVAL_COLUMNS, finish_approval};
use crate::store::{Approval, ApprovalStatus, Escalation};

type Row = (Approval, String, String, String);

fn approval_row(row: &tokio_postgres::Row) -> Row {
    let held: Option<String> = row.get(15);
    (
        Approval {
            id: row.get(0),
            status: ApprovalStatus::Pending,
            issuer: row.get(2),
            subject: row.get(3),
            chain: Vec::new(),
            tool: row.get(5),
            pin: row.get(6),
            arguments_hash: row.get(7),
            reasons: Vec::new(),
            policy_version: row.get(9),
            created_at: row.get(10),
            expires_at: row.get(11),
            decided_by: row.get(12),
            decided_at: row.get(13),
            used_at: row.get(14),
            held: held.and_then(|h| serde_json::from_str(&h).ok()),
        },
        row.get(1),
        row.get(4),
        row.get(8),
    )
}

fn json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError(e.to_string()))
}

impl Postgres {
    /// As [`crate::store::Store::escalate`].
    pub async fn escalate(
        &self,
        request: Approval,
        now: i64,
        max_pending: usize,
    ) -> Result<Escalation, StoreError> {
        let chain = json(&request.chain)?;
        let mut client = self.pooled().await?;
        let tx = client.transaction().await?;
        // One caller's escalations one at a time, on every replica.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 7))",
            &[&request.issuer, &request.subject],
        )
        .await?;
        let matching =
            "issuer = $1 AND subject = $2 AND chain = $3 AND tool = $4 AND arguments_hash = $5
             AND pin IS NOT DISTINCT FROM $6 AND expires_at > $7";
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
            &request.issuer,
            &request.subject,
            &chain,
            &request.tool,
            &request.arguments_hash,
            &request.pin,
            &now,
        ];
        let used = tx
            .query_opt(
                &format!(
                    "UPDATE approvals SET status = 'used', used_at = $7, details = NULL
                     WHERE status = 'approved' AND id = (
                        SELECT id FROM approvals WHERE status = 'approved' AND {matching}
                        ORDER BY decided_at LIMIT 1) RETURNING id"
                ),
                &params,
            )
            .await?;
        if let Some(row) = used {
            tx.commit().await?;
            return Ok(Escalation::Granted(row.get(0)));
        }
        let pending = tx
            .query_opt(
                &format!(
                    "SELECT id, expires_at FROM approvals WHERE status = 'pending' AND {matching}
                     ORDER BY created_at LIMIT 1"
                ),
                &params,
            )
            .await?;
        if let Some(row) = pending {
            return Ok(Escalation::Pending {
                id: row.get(0),
                expires_at: row.get(1),
            });
        }
        let denied = tx
            .query_opt(
                &format!(
                    "SELECT id, expires_at FROM approvals WHERE status = 'denied' AND {matching}
                     ORDER BY decided_at DESC LIMIT 1"
                ),
                &params,
            )
            .await?;
        if let Some(row) = denied {
            return Ok(Escalation::Denied {
                id: row.get(0),
                expires_at: row.get(1),
            });
        }
        let waiting: i64 = tx
            .query_one(
                "SELECT count(*) FROM approvals WHERE status = 'pending' AND issuer = $1 AND subject = $2
                 AND expires_at > $3",
                &[&request.issuer, &request.subject, &now],
            )
            .await?
            .get(0);
        if usize::try_from(waiting).unwrap_or(usize::MAX) >= max_pending {
            return Ok(Escalation::Limited(max_pending));
        }
        let reasons = json(&request.reasons)?;
        let held = request.held.as_ref().map(json).transpose()?;
        tx.execute(
            &format!(
                "INSERT INTO approvals ({APPROVAL_COLUMNS})
                 VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, NULL, $12)"
            ),
            &[
                &request.id,
                &request.issuer,
                &request.subject,
                &chain,
                &request.tool,
                &request.pin,
                &request.arguments_hash,
                &reasons,
                &request.policy_version,
                &request.created_at,
                &request.expires_at,
                &held,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(Escalation::Pending {
            id: request.id,
            expires_at: request.expires_at,
        })
    }

    pub async fn approvals(
        &self,
        status: Option<ApprovalStatus>,
        now: i64,
    ) -> Result<Vec<Approval>, StoreError> {
        let filter = match status {
            None => "TRUE",
            Some(ApprovalStatus::Pending) => "status = 'pending' AND expires_at > $1",
            Some(ApprovalStatus::Approved) => "status = 'approved' AND expires_at > $1",
            Some(ApprovalStatus::Expired) => {
                "(status = 'expired' OR (status IN ('pending', 'approved') AND expires_at <= $1))"
            }
            Some(ApprovalStatus::Denied) => "status = 'denied'",
            Some(ApprovalStatus::Used) => "status = 'used'",
        };
        let client = self.pooled().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE {filter} AND $1::BIGINT = $1::BIGINT
                     ORDER BY created_at DESC, id DESC LIMIT 1000"
                ),
                &[&now],
            )
            .await?;
        rows.iter()
            .map(|row| finish_approval(approval_row(row), now))
            .collect()
    }

    pub async fn approval(&self, id: String, now: i64) -> Result<Option<Approval>, StoreError> {
        let client = self.pooled().await?;
        let row = client
            .query_opt(
                &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1"),
                &[&id],
            )
            .await?;
        row.map(|r| finish_approval(approval_row(&r), now))
            .transpose()
    }

    pub async fn decide_approval(
        &self,
        id: String,
        approve: bool,
        by: String,
        now: i64,
        usable_until: i64,
    ) -> Result<Option<Approval>, StoreError> {
        let status = if approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Denied
        };
        let changed = {
            let client = self.pooled().await?;
            client
                .execute(
                    "UPDATE approvals SET status = $1, decided_by = $2, decided_at = $3, expires_at = $4
                     WHERE id = $5 AND status = 'pending' AND expires_at > $3",
                    &[&status.as_str(), &by, &now, &usable_until, &id],
                )
                .await?
        };
        if changed == 0 {
            return Ok(None);
        }
        self.approval(id, now).await
    }
}
