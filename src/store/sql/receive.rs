//! `Receive` ops of a whole group-commit batch applied together: every connection's new
//! ledger rows in one INSERT, the states of the ones already known in one
//! SELECT, and the cursors in one upsert. One statement per message (and per cursor)
//! was the largest cost of a burst on PostgreSQL, where each is a round trip.

use super::pipeline::pairs_json;
use super::rowset::{PAIR_COLUMNS, fixed_sql, json, rowset};
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
    if !rows.is_empty() {
        inserted.extend(insert_rows(tx, &rows, now).await?);
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
    if !known.is_empty() {
        states.extend(states_of(tx, &known).await?);
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

/// The rows of one statement are cut at about this much text. A burst's batch carried
/// every message's raw payload in one JSON parameter of several MiB, built, then copied
/// into the driver's buffer (which PostgreSQL's connection keeps at its largest size):
/// the largest allocation of a burst.
const CHUNK_BYTES: usize = 256 * 1024;

/// Inserts the rows not known yet; returns the ones it inserted.
async fn insert_rows(
    tx: &mut Tx<'_>,
    rows: &[(i64, &LedgerEntry)],
    now: Ts,
) -> crate::store::StoreResult<Vec<(i64, String)>> {
    let mut inserted = Vec::with_capacity(rows.len());
    let mut start = 0;
    let mut size = 0;
    for (i, (_, e)) in rows.iter().enumerate() {
        // JSON escaping can grow a payload; the cut need not be exact.
        size += 64
            + e.key.len()
            + e.account.len()
            + e.customer.len()
            + e.display_name.len()
            + e.text.len()
            + e.raw.len();
        if size >= CHUNK_BYTES || i + 1 == rows.len() {
            inserted.extend(insert_chunk(tx, &rows[start..=i], now).await?);
            start = i + 1;
            size = 0;
        }
    }
    Ok(inserted)
}

async fn insert_chunk(
    tx: &mut Tx<'_>,
    rows: &[(i64, &LedgerEntry)],
    now: Ts,
) -> crate::store::StoreResult<Vec<(i64, String)>> {
    #[derive(serde::Serialize)]
    struct New<'a> {
        c: i64,
        k: &'a str,
        a: &'a str,
        u: &'a str,
        n: &'a str,
        b: &'a str,
        w: &'a str,
    }
    let list: Vec<New<'_>> = rows
        .iter()
        .map(|(c, e)| New {
            c: *c,
            k: &e.key,
            a: &e.account,
            u: &e.customer,
            n: &e.display_name,
            b: &e.text,
            w: &e.raw,
        })
        .collect();
    // `WHERE true`: SQLite reads `ON CONFLICT` after a bare `FROM …` as a join clause.
    let sql = fixed_sql!(format!(
        "INSERT INTO inbound_ledger (connection_id, provider_id, state, received_at, \
         updated_at, account, customer, display_name, body, raw) \
         SELECT r.c, r.k, 'received', $1, $1, r.a, r.u, r.n, r.b, r.w FROM {} AS r WHERE true \
         ON CONFLICT (connection_id, provider_id) DO NOTHING \
         RETURNING connection_id, provider_id",
        rowset(
            2,
            &[
                ("c", "bigint"),
                ("k", "text"),
                ("a", "text"),
                ("u", "text"),
                ("n", "text"),
                ("b", "text"),
                ("w", "text")
            ]
        )
    ));
    let found = sqlx::query(sql)
        .bind(now)
        .bind(json(&list))
        .fetch_all(&mut **tx)
        .await
        .map_err(classify)?;
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
    let sql = fixed_sql!(format!(
        "SELECT l.connection_id, l.provider_id, l.state FROM {} AS r \
         JOIN inbound_ledger l ON l.connection_id = r.c AND l.provider_id = r.k",
        rowset(1, PAIR_COLUMNS)
    ));
    let found = sqlx::query(sql)
        .bind(pairs_json(pairs))
        .fetch_all(&mut **tx)
        .await
        .map_err(classify)?;
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
    if latest.is_empty() {
        return Ok(());
    }
    #[derive(serde::Serialize)]
    struct Cursor<'a> {
        c: i64,
        v: &'a str,
    }
    let rows: Vec<Cursor<'_>> = latest.iter().map(|(c, v)| Cursor { c: *c, v }).collect();
    let sql = fixed_sql!(format!(
        "INSERT INTO connection_cursors (connection_id, cursor, updated_at) \
         SELECT r.c, r.v, $1 FROM {} AS r WHERE true \
         ON CONFLICT (connection_id) DO UPDATE SET cursor = excluded.cursor, \
         updated_at = excluded.updated_at",
        rowset(2, &[("c", "bigint"), ("v", "text")])
    ));
    sqlx::query(sql)
        .bind(now)
        .bind(json(&rows))
        .execute(&mut **tx)
        .await
        .map_err(classify)?;
    Ok(())
}
