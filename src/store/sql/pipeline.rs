//! The inbound pipeline's writes, applied by the group-commit writer many at a time,
//! and the reads the pipeline and the webhook ingress need.

use super::receive::Receiving;
use super::rows::{self, connection_columns};
use super::rowset::{PAIR_COLUMNS, Pair, fixed_sql, json, rowset, ts_from_ms};
use super::{BACKEND, Db, SqlStore, Tx, classify, ms, ts};
use crate::model::{Connection, LogLine, now_millis};
use crate::store::{
    Backend, Fence, LedgerEntry, LedgerState, OutboundRecord, StoreResult, WriteOp, WriteResult,
};
use rand::RngCore;
use sqlx::{Pool, Row};

/// 128 random bits, hex: the unguessable path of a webhook URL.
pub(super) fn new_hook_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Connections created before webhook paths existed get one at start.
pub(super) async fn fill_hook_ids(pool: &Pool<Db>) -> StoreResult<()> {
    let missing: Vec<i64> = sqlx::query_scalar("SELECT id FROM connections WHERE hook_id IS NULL")
        .fetch_all(pool)
        .await
        .map_err(classify)?;
    for id in missing {
        sqlx::query("UPDATE connections SET hook_id = $1 WHERE id = $2 AND hook_id IS NULL")
            .bind(new_hook_id())
            .bind(id)
            .execute(pool)
            .await
            .map_err(classify)?;
    }
    Ok(())
}

/// Whether something is done on the strength of this batch once it commits: the
/// provider told "received" (`Receive`), a reply sent (`Claim`). Those must be on disk
/// first. Nobody acts on marks, outbound records and log lines, so on PostgreSQL a
/// batch of only those commits without waiting for the WAL flush: visible at once, on
/// disk within a few hundred ms (PostgreSQL's `wal_writer_delay`), and on disk at the
/// latest with the next batch that waits. Only a crash of the database server in
/// between loses them, as a power cut can on SQLite (`synchronous=NORMAL`). In a steady
/// load those batches were half of the commits, each a `fdatasync` the writer, and the
/// claims queued behind it, waited for.
fn acted_on(ops: &[WriteOp]) -> bool {
    ops.iter()
        .any(|op| matches!(op, WriteOp::Receive { .. } | WriteOp::Claim { .. }))
}

impl SqlStore {
    pub(super) async fn write_batch_(
        &self,
        ops: &[WriteOp],
        log_keep: u32,
    ) -> StoreResult<Vec<WriteResult>> {
        // SQLite: take the write lock up front. A deferred transaction that reads the
        // leases first is refused at once ("database is locked", no busy wait) when
        // another connection commits before it writes.
        let mut tx = match BACKEND {
            Backend::Sqlite => self.writer_pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.writer_pool.begin().await,
        }
        .map_err(classify)?;
        if BACKEND == Backend::Postgres && !acted_on(ops) {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        let leases = fences_held(&mut tx, ops).await?;
        let mut results = Vec::with_capacity(ops.len());
        let mut lines: Vec<&LogLine> = Vec::new();
        // Claims, marks and outbound records are applied many per statement, after the
        // loop; their results are filled in then.
        let mut claims: Vec<(usize, i64, &str)> = Vec::new();
        let mut marks: Vec<(LedgerState, i64, &str)> = Vec::new();
        let mut outbound: Vec<&WriteOp> = Vec::new();
        // So are the `Receive`s, first: nothing else in a batch can depend on them.
        let mut receives: Vec<(usize, Receiving<'_>)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let fenced = |id: i64, f: &Option<Fence>| {
                f.as_ref().is_some_and(|f| {
                    leases
                        .get(&id)
                        .is_none_or(|(o, g)| **o != *f.owner || *g != f.generation)
                })
            };
            match op {
                WriteOp::Receive {
                    connection_id,
                    fence,
                    ..
                } if fenced(*connection_id, fence) => {
                    results.push(WriteResult::Fenced);
                }
                WriteOp::Receive {
                    connection_id,
                    entries,
                    cursor,
                    ..
                } => {
                    let r = Receiving {
                        connection_id: *connection_id,
                        entries,
                        cursor: cursor.as_deref(),
                    };
                    receives.push((i, r));
                    results.push(WriteResult::Done);
                }
                WriteOp::Claim {
                    connection_id,
                    fence,
                    ..
                } if fenced(*connection_id, fence) => {
                    results.push(WriteResult::Fenced);
                }
                WriteOp::Claim {
                    connection_id, key, ..
                } => {
                    claims.push((i, *connection_id, key.as_str()));
                    results.push(WriteResult::Claimed(false));
                }
                WriteOp::Mark {
                    connection_id,
                    key,
                    state,
                } => {
                    marks.push((*state, *connection_id, key.as_str()));
                    results.push(WriteResult::Done);
                }
                WriteOp::Outbound(_) => {
                    outbound.push(op);
                    results.push(WriteResult::Done);
                }
                _ => results.push(apply(&mut tx, op, &mut lines, log_keep).await?),
            }
        }
        if !receives.is_empty() {
            let (at, list): (Vec<usize>, Vec<Receiving<'_>>) = receives.into_iter().unzip();
            let received = super::receive::receive_many(&mut tx, &list).await?;
            for (i, r) in at.into_iter().zip(received) {
                results[i] = r;
            }
        }
        if !claims.is_empty() {
            let pairs: Vec<(i64, &str)> = claims.iter().map(|(_, c, k)| (*c, *k)).collect();
            let claimed = claim_many(&mut tx, &pairs).await?;
            for (i, c, k) in &claims {
                if claimed.contains(&(*c, k.to_string())) {
                    results[*i] = WriteResult::Claimed(true);
                }
            }
        }
        for state in [
            LedgerState::Answered,
            LedgerState::Ignored,
            LedgerState::Sending,
            LedgerState::Received,
        ] {
            let pairs: Vec<(i64, &str)> = marks
                .iter()
                .filter(|(s, _, _)| *s == state)
                .map(|(_, c, k)| (*c, *k))
                .collect();
            if !pairs.is_empty() {
                mark_many(&mut tx, state, &pairs).await?;
            }
        }
        if !outbound.is_empty() {
            insert_outbound(&mut tx, &outbound).await?;
        }
        insert_logs(&mut tx, &lines).await?;
        tx.commit().await.map_err(classify)?;
        Ok(results)
    }

    pub(super) async fn waiting_inbound_(
        &self,
        limit: u32,
    ) -> StoreResult<Vec<(i64, LedgerEntry)>> {
        let rows = sqlx::query(
            "SELECT connection_id, provider_id, account, customer, display_name, body, raw \
             FROM inbound_ledger WHERE state = 'received' ORDER BY received_at LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("connection_id").map_err(classify)?,
                    LedgerEntry {
                        key: r.try_get("provider_id").map_err(classify)?,
                        account: r.try_get("account").map_err(classify)?,
                        customer: r.try_get("customer").map_err(classify)?,
                        display_name: r.try_get("display_name").map_err(classify)?,
                        text: r.try_get("body").map_err(classify)?,
                        raw: r.try_get("raw").map_err(classify)?,
                    },
                ))
            })
            .collect()
    }

    pub(super) async fn settle_interrupted_(
        &self,
        connection_id: i64,
        retry: bool,
    ) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "UPDATE inbound_ledger SET state = $3, updated_at = $2 \
             WHERE connection_id = $1 AND state = 'sending' RETURNING provider_id, customer",
        )
        .bind(connection_id)
        .bind(ts(now_millis()))
        .bind(if retry { "received" } else { "ignored" })
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("provider_id").map_err(classify)?,
                    r.try_get("customer").map_err(classify)?,
                ))
            })
            .collect()
    }

    pub(super) async fn ledger_state_(
        &self,
        connection_id: i64,
        key: &str,
    ) -> StoreResult<Option<LedgerState>> {
        let state: Option<String> = sqlx::query_scalar(
            "SELECT state FROM inbound_ledger WHERE connection_id = $1 AND provider_id = $2",
        )
        .bind(connection_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        Ok(state.map(|s| LedgerState::parse(&s)))
    }

    pub(super) async fn outbound_(
        &self,
        connection_id: i64,
        provider_id: &str,
    ) -> StoreResult<Option<OutboundRecord>> {
        let row = sqlx::query(
            "SELECT account, customer, in_reply_to, sent_at FROM outbound_messages \
             WHERE connection_id = $1 AND provider_id = $2",
        )
        .bind(connection_id)
        .bind(provider_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.map(|r| {
            Ok(OutboundRecord {
                account: r.try_get("account").map_err(classify)?,
                customer: r.try_get("customer").map_err(classify)?,
                in_reply_to: r.try_get("in_reply_to").map_err(classify)?,
                sent_at: ms(r.try_get("sent_at").map_err(classify)?),
            })
        })
        .transpose()
    }

    pub(super) async fn connection_by_hook_(
        &self,
        hook_id: &str,
    ) -> StoreResult<Option<Connection>> {
        let sql = concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE hook_id = $1"
        );
        let row = sqlx::query(sql)
            .bind(hook_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref().map(rows::connection).transpose()
    }
}

/// The unexpired leases (owner, generation) of the connections the batch's fenced ops
/// write for, read once for the whole batch.
async fn fences_held(
    tx: &mut Tx<'_>,
    ops: &[WriteOp],
) -> StoreResult<std::collections::HashMap<i64, (String, i64)>> {
    let mut ids: Vec<i64> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Receive {
                connection_id,
                fence: Some(_),
                ..
            }
            | WriteOp::Claim {
                connection_id,
                fence: Some(_),
                ..
            } => Some(*connection_id),
            _ => None,
        })
        .collect();
    let mut held = std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(held);
    }
    ids.sort_unstable();
    ids.dedup();
    let sql = fixed_sql!(
        super::leases::with_now(&format!(
            "SELECT l.connection_id, l.owner, l.generation FROM connection_leases l \
             WHERE {} AND {}",
            super::leases::HELD_SQL,
            super::rowset::id_in("l.connection_id", 1)
        ))
        .0
    );
    for r in sqlx::query(sql)
        .bind(json(&ids))
        .fetch_all(&mut **tx)
        .await
        .map_err(classify)?
    {
        held.insert(
            r.try_get::<i64, _>("connection_id").map_err(classify)?,
            (
                r.try_get::<String, _>("owner").map_err(classify)?,
                r.try_get::<i64, _>("generation").map_err(classify)?,
            ),
        );
    }
    Ok(held)
}

/// The pairs as rows of a `rowset` parameter.
pub(super) fn pairs_json(pairs: &[(i64, &str)]) -> String {
    let rows: Vec<Pair<'_>> = pairs.iter().map(|(c, k)| Pair { c: *c, k }).collect();
    json(&rows)
}

/// received → sending for each pair still received; returns the ones claimed.
async fn claim_many(
    tx: &mut Tx<'_>,
    pairs: &[(i64, &str)],
) -> StoreResult<std::collections::HashSet<(i64, String)>> {
    let sql = fixed_sql!(format!(
        "UPDATE inbound_ledger AS l SET state = 'sending', updated_at = $1 FROM {} AS r \
         WHERE l.connection_id = r.c AND l.provider_id = r.k AND l.state = 'received' \
         RETURNING connection_id, provider_id",
        rowset(2, PAIR_COLUMNS)
    ));
    let rows = sqlx::query(sql)
        .bind(ts(now_millis()))
        .bind(pairs_json(pairs))
        .fetch_all(&mut **tx)
        .await
        .map_err(classify)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<i64, _>("connection_id").map_err(classify)?,
                r.try_get::<String, _>("provider_id").map_err(classify)?,
            ))
        })
        .collect()
}

async fn mark_many(tx: &mut Tx<'_>, state: LedgerState, pairs: &[(i64, &str)]) -> StoreResult<()> {
    let sql = fixed_sql!(format!(
        "UPDATE inbound_ledger AS l SET state = $1, updated_at = $2 FROM {} AS r \
         WHERE l.connection_id = r.c AND l.provider_id = r.k",
        rowset(3, PAIR_COLUMNS)
    ));
    sqlx::query(sql)
        .bind(state.as_str())
        .bind(ts(now_millis()))
        .bind(pairs_json(pairs))
        .execute(&mut **tx)
        .await
        .map_err(classify)?;
    Ok(())
}

/// The row's connection still exists. A correlated lookup by primary key: PostgreSQL
/// planned `EXISTS (…)` as a hash semi-join over a sequential scan of every connection,
/// once per statement (40 connection rows read per message in a burst of 1,000 bots).
const LIVE_CONNECTION: &str = "(SELECT x.id FROM connections x WHERE x.id = r.c) IS NOT NULL";

/// Records of sent messages, one statement for the batch; a deleted connection's are
/// dropped.
async fn insert_outbound(tx: &mut Tx<'_>, ops: &[&WriteOp]) -> StoreResult<()> {
    #[derive(serde::Serialize)]
    struct Sent<'a> {
        c: i64,
        k: &'a str,
        a: &'a str,
        u: &'a str,
        r: &'a str,
    }
    let rows: Vec<Sent<'_>> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Outbound(s) => Some(Sent {
                c: s.connection_id,
                k: &s.provider_id,
                a: &s.account,
                u: &s.customer,
                r: &s.in_reply_to,
            }),
            _ => None,
        })
        .collect();
    let sql = fixed_sql!(format!(
        "INSERT INTO outbound_messages (connection_id, provider_id, account, customer, \
         in_reply_to, sent_at) SELECT r.c, r.k, r.a, r.u, r.r, $1 FROM {} AS r \
         WHERE {LIVE_CONNECTION} ON CONFLICT (connection_id, provider_id) DO NOTHING",
        rowset(
            2,
            &[
                ("c", "bigint"),
                ("k", "text"),
                ("a", "text"),
                ("u", "text"),
                ("r", "text")
            ]
        )
    ));
    sqlx::query(sql)
        .bind(ts(now_millis()))
        .bind(json(&rows))
        .execute(&mut **tx)
        .await
        .map_err(classify)?;
    Ok(())
}

async fn apply<'o>(
    tx: &mut Tx<'_>,
    op: &'o WriteOp,
    lines: &mut Vec<&'o LogLine>,
    log_keep: u32,
) -> StoreResult<WriteResult> {
    match op {
        // Applied many per statement by the caller.
        WriteOp::Receive { .. }
        | WriteOp::Claim { .. }
        | WriteOp::Mark { .. }
        | WriteOp::Outbound(_) => Ok(WriteResult::Done),
        WriteOp::Logs(batch) => {
            // Inserted together at the end of the transaction.
            lines.extend(batch.iter());
            Ok(WriteResult::Done)
        }
        WriteOp::TrimLogs(ids) => {
            for id in ids {
                trim_logs(tx, *id, log_keep).await?;
            }
            Ok(WriteResult::Done)
        }
    }
}

/// Every line of the batch in one statement; lines of a connection deleted meanwhile
/// are dropped. In the batch's order: a log is read by id.
async fn insert_logs(tx: &mut Tx<'_>, lines: &[&LogLine]) -> StoreResult<()> {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        i: usize,
        c: i64,
        t: i64,
        l: &'a str,
        m: &'a str,
    }
    if lines.is_empty() {
        return Ok(());
    }
    let rows: Vec<Line<'_>> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| Line {
            i,
            c: l.connection_id,
            t: l.at,
            l: &l.level,
            m: &l.message,
        })
        .collect();
    let sql = fixed_sql!(format!(
        "INSERT INTO connection_logs (connection_id, at, level, message) \
         SELECT r.c, {}, r.l, r.m FROM {} AS r WHERE {LIVE_CONNECTION} ORDER BY r.i",
        ts_from_ms("r.t"),
        rowset(
            1,
            &[
                ("i", "bigint"),
                ("c", "bigint"),
                ("t", "bigint"),
                ("l", "text"),
                ("m", "text")
            ]
        )
    ));
    sqlx::query(sql)
        .bind(json(&rows))
        .execute(&mut **tx)
        .await
        .map_err(classify)?;
    Ok(())
}

async fn trim_logs(tx: &mut Tx<'_>, connection_id: i64, keep: u32) -> StoreResult<()> {
    sqlx::query(
        "DELETE FROM connection_logs WHERE connection_id = $1 AND id < \
         (SELECT MIN(id) FROM (SELECT id FROM connection_logs WHERE connection_id = $1 \
         ORDER BY id DESC LIMIT $2) AS newest)",
    )
    .bind(connection_id)
    .bind(i64::from(keep.max(1)))
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LedgerState;

    fn mark() -> WriteOp {
        WriteOp::Mark {
            connection_id: 1,
            key: "1:1".into(),
            state: LedgerState::Answered,
        }
    }

    /// What PostgreSQL commits without waiting for the disk: only batches nobody acts
    /// on. One receive or claim among them makes the whole batch wait.
    #[test]
    fn only_batches_nobody_acts_on_skip_the_wait_for_the_disk() {
        let outbound = WriteOp::Outbound(Box::new(crate::store::SentRecord {
            connection_id: 1,
            provider_id: "9".into(),
            account: String::new(),
            customer: "42".into(),
            in_reply_to: "1:1".into(),
        }));
        let background = vec![
            mark(),
            outbound,
            WriteOp::Logs(Vec::new()),
            WriteOp::TrimLogs(vec![1]),
        ];
        assert!(!acted_on(&background));
        let claim = WriteOp::Claim {
            connection_id: 1,
            key: "1:2".into(),
            fence: None,
        };
        let receive = WriteOp::Receive {
            connection_id: 1,
            entries: Default::default(),
            cursor: Some("5".into()),
            fence: None,
        };
        for waited in [claim, receive] {
            let mut ops = vec![mark()];
            ops.push(waited);
            assert!(acted_on(&ops));
        }
    }
}
