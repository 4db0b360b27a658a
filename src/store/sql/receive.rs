//! `Receive` ops of a whole group-commit batch applied together: every connection's new
//! ledger rows in a few multi-row INSERTs, the states of the ones already known in one
//! SELECT, and the cursors in one upsert. One statement per message (and per cursor)
//! was the largest cost of a burst on PostgreSQL, where each is a round trip.

use super::pipeline::{PAIRS_PER_STATEMENT, pairs_condition};
use super::{Ts, Tx, classify, ts};
use crate::model::now_millis;
use crate::store::{LedgerEntry, LedgerState, WriteResult};
use sqlx::Row;
use std::collections::{HashMap, HashSet};

/// One `Receive` op of the batch (its fence already checked).
pub(super) struct Receiving<'a> {
    pub connection_id: i64,
    pub entries: &'a [LedgerEntry],
    pub cursor: Option<&'a str>,
}

/// Parameter bytes per INSERT: kept under ~16 KiB for the reason `PAIRS_PER_STATEMENT`
/// gives (a raw Telegram update is a few hundred bytes).
const BYTES_PER_INSERT: usize = 12_000;

/// Applies every `Receive` of the batch; one result per op, in order.
pub(super) async fn receive_many(
    tx: &mut Tx<'_>,
    ops: &[Receiving<'_>],
) -> crate::store::StoreResult<Vec<WriteResult>> {
    let now = ts(now_millis());
    let rows: Vec<(i64, &LedgerEntry)> = ops
        .iter()
        .flat_map(|op| op.entries.iter().map(move |e| (op.connection_id, e)))
        .collect();
    let mut inserted: HashSet<(i64, String)> = HashSet::new();
    for chunk in chunks(&rows) {
        inserted.extend(insert_rows(tx, chunk, now).await?);
    }
    // The others were known already: their states, in one look.
    let mut known: Vec<(i64, &str)> = rows
        .iter()
        .map(|(c, e)| (*c, e.key.as_str()))
        .filter(|(c, k)| !inserted.contains(&(*c, k.to_string())))
        .collect();
    known.sort_unstable();
    known.dedup();
    let mut states: HashMap<(i64, String), LedgerState> = HashMap::new();
    for chunk in known.chunks(PAIRS_PER_STATEMENT) {
        states.extend(states_of(tx, chunk).await?);
    }
    upsert_cursors(tx, ops, now).await?;
    Ok(ops
        .iter()
        .map(|op| {
            let per_entry = op
                .entries
                .iter()
                .map(|e| {
                    let id = (op.connection_id, e.key.clone());
                    // Only the first of two equal keys in one batch is the new one.
                    if inserted.remove(&id) {
                        (LedgerState::Received, true)
                    } else {
                        (
                            states.get(&id).copied().unwrap_or(LedgerState::Received),
                            false,
                        )
                    }
                })
                .collect();
            WriteResult::Received(per_entry)
        })
        .collect())
}

/// Rows split so that no statement has more than `PAIRS_PER_STATEMENT` rows or about
/// `BYTES_PER_INSERT` bytes of text.
fn chunks<'r, 'e>(rows: &'r [(i64, &'e LedgerEntry)]) -> Vec<&'r [(i64, &'e LedgerEntry)]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (_, e)) in rows.iter().enumerate() {
        let size = e.key.len()
            + e.account.len()
            + e.customer.len()
            + e.display_name.len()
            + e.text.len()
            + e.raw.len()
            + 40;
        if i > start && (i - start >= PAIRS_PER_STATEMENT || bytes + size > BYTES_PER_INSERT) {
            out.push(&rows[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

/// Inserts the rows not known yet; returns the ones it inserted.
async fn insert_rows(
    tx: &mut Tx<'_>,
    rows: &[(i64, &LedgerEntry)],
    now: Ts,
) -> crate::store::StoreResult<Vec<(i64, String)>> {
    let values: Vec<String> = (0..rows.len())
        .map(|i| {
            let n = 2 + i * 7;
            format!(
                "(${}, ${}, 'received', $1, $1, ${}, ${}, ${}, ${}, ${})",
                n,
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO inbound_ledger (connection_id, provider_id, state, received_at, \
         updated_at, account, customer, display_name, body, raw) VALUES {} \
         ON CONFLICT (connection_id, provider_id) DO NOTHING \
         RETURNING connection_id, provider_id",
        values.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
    for (c, e) in rows {
        q = q
            .bind(c)
            .bind(&e.key)
            .bind(&e.account)
            .bind(&e.customer)
            .bind(&e.display_name)
            .bind(&e.text)
            .bind(&e.raw);
    }
    let found = q.fetch_all(&mut **tx).await.map_err(classify)?;
    found
        .iter()
        .map(|r| {
            Ok((
                r.try_get::<i64, _>("connection_id").map_err(classify)?,
                r.try_get::<String, _>("provider_id").map_err(classify)?,
            ))
        })
        .collect()
}

async fn states_of(
    tx: &mut Tx<'_>,
    pairs: &[(i64, &str)],
) -> crate::store::StoreResult<Vec<((i64, String), LedgerState)>> {
    let sql = format!(
        "SELECT connection_id, provider_id, state FROM inbound_ledger WHERE {}",
        pairs_condition(pairs.len(), 1)
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (c, k) in pairs {
        q = q.bind(c).bind(*k);
    }
    let found = q.fetch_all(&mut **tx).await.map_err(classify)?;
    found
        .iter()
        .map(|r| {
            Ok((
                (
                    r.try_get::<i64, _>("connection_id").map_err(classify)?,
                    r.try_get::<String, _>("provider_id").map_err(classify)?,
                ),
                LedgerState::parse(&r.try_get::<String, _>("state").map_err(classify)?),
            ))
        })
        .collect()
}

/// Each connection's newest cursor of the batch, many per statement (a statement may
/// not update one row twice, so a connection appears once).
async fn upsert_cursors(
    tx: &mut Tx<'_>,
    ops: &[Receiving<'_>],
    now: Ts,
) -> crate::store::StoreResult<()> {
    let mut latest: Vec<(i64, &str)> = Vec::new();
    let mut at: HashMap<i64, usize> = HashMap::new();
    for op in ops {
        if let Some(cursor) = op.cursor {
            match at.get(&op.connection_id) {
                Some(&i) => latest[i].1 = cursor,
                None => {
                    at.insert(op.connection_id, latest.len());
                    latest.push((op.connection_id, cursor));
                }
            }
        }
    }
    for chunk in latest.chunks(PAIRS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${}, $1)", 2 + 2 * i, 3 + 2 * i))
            .collect();
        let sql = format!(
            "INSERT INTO connection_cursors (connection_id, cursor, updated_at) VALUES {} \
             ON CONFLICT (connection_id) DO UPDATE SET cursor = excluded.cursor, \
             updated_at = excluded.updated_at",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
        for (c, cursor) in chunk {
            q = q.bind(c).bind(*cursor);
        }
        q.execute(&mut **tx).await.map_err(classify)?;
    }
    Ok(())
}
