//! `toolgate audit verify`: recomputes the whole chain with the key, checks the indexed columns against each
//! record's sealed content, and compares the end of the chain with the last published head. Names the first
//! record that was altered, removed, inserted or cut off.

use serde::Serialize;

use super::Records;
use super::store::{RawRow, principal_key};
use super::{ChainHead, ChainKey, DecisionRecord};
use crate::config::StorageConfig;

/// What is wrong with the chain, first problem only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The record's content or indexed columns no longer match its MAC.
    Altered { seq: i64, id: String },
    /// Records with these sequence numbers are missing.
    Removed { first: i64, last: i64 },
    /// A record that was never written by toolgate sits at this place.
    Inserted { seq: i64, id: String },
    /// The last record does not verify: altered, or appended by someone else.
    AlteredOrInserted { seq: i64, id: String },
    /// The chain ends before the published head: its tail was cut off.
    CutOff { last_seq: i64, head_seq: i64 },
    /// The chain does not pass through the published head.
    HeadMismatch { head_seq: i64 },
    /// Records after the published head (or, with no head, every record): nothing shows whether the chain's
    /// tail was cut off.
    Uncovered {
        head_seq: Option<i64>,
        last_seq: i64,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Altered { seq, id } => write!(f, "record {seq} ({id}) was altered"),
            Self::Removed { first, last } if first == last => {
                write!(f, "record {first} was removed")
            }
            Self::Removed { first, last } => write!(f, "records {first} to {last} were removed"),
            Self::Inserted { seq, id } => write!(f, "record {seq} ({id}) was inserted"),
            Self::AlteredOrInserted { seq, id } => {
                write!(
                    f,
                    "record {seq} ({id}) does not verify: altered or inserted"
                )
            }
            Self::CutOff { last_seq, head_seq } => write!(
                f,
                "the chain ends at record {last_seq} but the published head is record {head_seq}: records after {last_seq} were cut off"
            ),
            Self::HeadMismatch { head_seq } => write!(
                f,
                "record {head_seq} is not the one the published head names: the chain was rewritten"
            ),
            Self::Uncovered { head_seq, last_seq } => {
                match head_seq {
                    Some(head) => write!(
                        f,
                        "records {} to {last_seq} come after the published head (record {head})",
                        head + 1
                    )?,
                    None => write!(f, "no head has been published for records 1 to {last_seq}")?,
                }
                write!(
                    f,
                    ": whether the chain's tail was cut off cannot be checked. Verify once the gateway has \
                     published its head (every audit.flush_interval, and at shutdown), or pass --no-head to \
                     accept an unverifiable tail"
                )
            }
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub records: usize,
    pub verified: usize,
    pub head: Option<ChainHead>,
    pub problem: Option<Problem>,
    /// With `--no-head`: the records after the published head (first and last sequence numbers), verified link by
    /// link but not against cut-off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unverifiable_tail: Option<(i64, i64)>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// Whether one row's seal holds: its MAC is the one its content and the MAC before it (`previous`) give, and its
/// indexed columns say what its content says. Whether rows around it were removed or inserted takes the whole
/// chain ([`verify`]).
pub fn seal_holds(key: &ChainKey, row: &RawRow, previous: &str) -> bool {
    let expected = key.seal(previous, row.seq, &row.body);
    bool::from(subtle::ConstantTimeEq::ct_eq(
        expected.as_bytes(),
        row.mac.as_bytes(),
    )) && columns_match(row)
}

/// Whether a row's indexed columns say what its sealed content says.
fn columns_match(row: &RawRow) -> bool {
    let Ok(record) = serde_json::from_str::<DecisionRecord>(&row.body) else {
        return false;
    };
    record.id == row.id
        && record.time_ms == row.time_ms
        && record.kind == row.kind
        && record.tool == row.tool
        && principal_key(&record) == row.principal
        && record.agent == row.agent
        && record.decision == row.decision
        && record.outcome == row.outcome
}

/// One chain's verification.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    /// The chain (a replica's, with PostgreSQL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    #[serde(flatten)]
    pub report: Report,
}

/// Verifies every chain of the store with `key`, each against its published head among `heads` (the one of the
/// same chain). Blocks: call it off the async runtime.
pub fn verify(
    storage: &StorageConfig,
    key: &ChainKey,
    heads: &[ChainHead],
    require_head: bool,
) -> Result<Vec<ChainReport>, crate::store::StoreError> {
    let mut store = Records::open(storage)?;
    let mut chains = store.chains()?;
    // A chain a published head names but the store no longer has was removed whole: checked as an empty chain,
    // it is cut off before its head.
    for head in heads {
        if head.chain.is_some() && !chains.iter().any(|(chain, _)| *chain == head.chain) {
            chains.push((head.chain.clone(), Vec::new()));
        }
    }
    Ok(chains
        .into_iter()
        .map(|(chain, rows)| {
            let head = heads.iter().find(|h| h.chain == chain);
            ChainReport {
                report: check(&rows, key, chain.as_deref(), head, require_head),
                chain,
            }
        })
        .collect())
}

fn check(
    rows: &[RawRow],
    key: &ChainKey,
    chain: Option<&str>,
    head: Option<&ChainHead>,
    require_head: bool,
) -> Report {
    let report = |verified: usize, problem: Option<Problem>| Report {
        records: rows.len(),
        verified,
        head: head.cloned(),
        problem,
        unverifiable_tail: None,
    };
    let mut previous = super::chain::genesis(chain);
    let mut expected = 1i64;
    for (i, row) in rows.iter().enumerate() {
        if row.seq != expected {
            return report(
                i,
                Some(Problem::Removed {
                    first: expected,
                    last: row.seq - 1,
                }),
            );
        }
        let sealed = key.seal(&previous, row.seq, &row.body) == row.mac;
        if sealed && columns_match(row) {
            previous.clone_from(&row.mac);
            expected += 1;
            continue;
        }
        // A row slipped in (and the rest renumbered): the next row still chains to the previous MAC with its
        // original number.
        let problem = match rows.get(i + 1) {
            Some(next) if key.seal(&previous, next.seq - 1, &next.body) == next.mac => {
                Problem::Inserted {
                    seq: row.seq,
                    id: row.id.clone(),
                }
            }
            None if !sealed => Problem::AlteredOrInserted {
                seq: row.seq,
                id: row.id.clone(),
            },
            _ => Problem::Altered {
                seq: row.seq,
                id: row.id.clone(),
            },
        };
        return report(i, Some(problem));
    }
    let last = expected - 1;
    if let Some(head) = head {
        if head.seq > last {
            return report(
                rows.len(),
                Some(Problem::CutOff {
                    last_seq: last,
                    head_seq: head.seq,
                }),
            );
        }
        let at_head = usize::try_from(head.seq - 1).ok().and_then(|i| rows.get(i));
        if head.seq > 0 && at_head.is_none_or(|row| row.mac != head.mac || row.id != head.id) {
            return report(
                rows.len(),
                Some(Problem::HeadMismatch { head_seq: head.seq }),
            );
        }
    }
    // Records the head does not cover: nothing shows whether more followed them.
    let covered = head.map_or(0, |h| h.seq);
    if last > covered {
        if require_head {
            return report(
                rows.len(),
                Some(Problem::Uncovered {
                    head_seq: head.map(|h| h.seq),
                    last_seq: last,
                }),
            );
        }
        let mut unverifiable = report(rows.len(), None);
        unverifiable.unverifiable_tail = Some((covered + 1, last));
        return unverifiable;
    }
    report(rows.len(), None)
}
