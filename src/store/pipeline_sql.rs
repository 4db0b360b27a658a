//! The inbound pipeline's writes, applied by the group-commit writer many at a time,
//! and the reads the pipeline and the webhook ingress need.

use super::rows::{self, connection_columns};
use super::sql::classify;
use super::{
    Fence, LedgerEntry, LedgerState, OutboundRecord, SqlStore, Store, StoreResult, WriteOp,
    WriteResult,
};
use crate::model::{Connection, LogLine, now_millis};
use rand::RngCore;
use sqlx::{Any, AnyPool, Row, Transaction};

/// 128 random bits, hex: the unguessable path of a webhook URL.
pub(super) fn new_hook_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Connections created before webhook paths existed get one at start.
pub(super) async fn fill_hook_ids(pool: &AnyPool) -> StoreResult<()> {
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

type Tx<'a> = Transaction<'a, Any>;

impl SqlStore {
    pub(super) async fn write_batch_(
        &self,
        ops: &[WriteOp],
        log_keep: u32,
    ) -> StoreResult<Vec<WriteResult>> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let mut results = Vec::with_capacity(ops.len());
        let mut lines: Vec<&LogLine> = Vec::new();
        for op in ops {
            results.push(apply(&mut tx, self.backend(), op, &mut lines, log_keep).await?);
        }
        for chunk in lines.chunks(LOG_ROWS_PER_INSERT) {
            insert_logs(&mut tx, chunk).await?;
        }
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
                sent_at: r.try_get("sent_at").map_err(classify)?,
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

/// Whether the fence's lease is still the writer's: same owner, same generation, not
/// expired on the database's clock.
async fn holds(
    tx: &mut Tx<'_>,
    backend: super::Backend,
    connection_id: i64,
    fence: Option<&Fence>,
) -> StoreResult<bool> {
    let Some(f) = fence else { return Ok(true) };
    let found: Option<i64> = sqlx::query_scalar(super::leases_sql::with_now(
        backend,
        "SELECT 1 FROM connection_leases WHERE connection_id = $1 AND owner = $2 \
         AND generation = $3 AND expires_at >= {now}",
    ))
    .bind(connection_id)
    .bind(&f.owner)
    .bind(f.generation)
    .fetch_optional(&mut **tx)
    .await
    .map_err(classify)?;
    Ok(found.is_some())
}

async fn apply<'o>(
    tx: &mut Tx<'_>,
    backend: super::Backend,
    op: &'o WriteOp,
    lines: &mut Vec<&'o LogLine>,
    log_keep: u32,
) -> StoreResult<WriteResult> {
    let now = now_millis();
    match op {
        WriteOp::Receive {
            connection_id,
            entries,
            cursor,
            fence,
        } => {
            if !holds(tx, backend, *connection_id, fence.as_ref()).await? {
                return Ok(WriteResult::Fenced);
            }
            let mut states = Vec::with_capacity(entries.len());
            for e in entries {
                let inserted = sqlx::query(
                    "INSERT INTO inbound_ledger (connection_id, provider_id, state, received_at, \
                     updated_at, account, customer, display_name, body, raw) \
                     VALUES ($1, $2, 'received', $3, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (connection_id, provider_id) DO NOTHING",
                )
                .bind(connection_id)
                .bind(&e.key)
                .bind(now)
                .bind(&e.account)
                .bind(&e.customer)
                .bind(&e.display_name)
                .bind(&e.text)
                .bind(&e.raw)
                .execute(&mut **tx)
                .await
                .map_err(classify)?;
                if inserted.rows_affected() == 1 {
                    states.push((LedgerState::Received, true));
                } else {
                    let state: String = sqlx::query_scalar(
                        "SELECT state FROM inbound_ledger WHERE connection_id = $1 AND provider_id = $2",
                    )
                    .bind(connection_id)
                    .bind(&e.key)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(classify)?;
                    states.push((LedgerState::parse(&state), false));
                }
            }
            if let Some(cursor) = cursor {
                sqlx::query(
                    "INSERT INTO connection_cursors (connection_id, cursor, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (connection_id) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                )
                .bind(connection_id)
                .bind(cursor)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(classify)?;
            }
            Ok(WriteResult::Received(states))
        }
        WriteOp::Claim {
            connection_id,
            key,
            fence,
        } => {
            if !holds(tx, backend, *connection_id, fence.as_ref()).await? {
                return Ok(WriteResult::Fenced);
            }
            let done = sqlx::query(
                "UPDATE inbound_ledger SET state = 'sending', updated_at = $1 \
                 WHERE connection_id = $2 AND provider_id = $3 AND state = 'received'",
            )
            .bind(now)
            .bind(connection_id)
            .bind(key)
            .execute(&mut **tx)
            .await
            .map_err(classify)?;
            Ok(WriteResult::Claimed(done.rows_affected() == 1))
        }
        WriteOp::Mark {
            connection_id,
            key,
            state,
        } => {
            sqlx::query(
                "UPDATE inbound_ledger SET state = $1, updated_at = $2 \
                 WHERE connection_id = $3 AND provider_id = $4",
            )
            .bind(state.as_str())
            .bind(now)
            .bind(connection_id)
            .bind(key)
            .execute(&mut **tx)
            .await
            .map_err(classify)?;
            Ok(WriteResult::Done)
        }
        WriteOp::Outbound {
            connection_id,
            provider_id,
            account,
            customer,
            in_reply_to,
        } => {
            // A deleted connection's late record is dropped rather than failing the batch.
            sqlx::query(
                "INSERT INTO outbound_messages (connection_id, provider_id, account, customer, \
                 in_reply_to, sent_at) SELECT $1, $2, $3, $4, $5, $6 \
                 WHERE EXISTS (SELECT 1 FROM connections WHERE id = $1) \
                 ON CONFLICT (connection_id, provider_id) DO NOTHING",
            )
            .bind(connection_id)
            .bind(provider_id)
            .bind(account)
            .bind(customer)
            .bind(in_reply_to)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(classify)?;
            Ok(WriteResult::Done)
        }
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

/// Rows per INSERT statement: 4 parameters each, well under SQLite's and PostgreSQL's
/// limits.
const LOG_ROWS_PER_INSERT: usize = 250;

/// Many lines in one statement; lines of a connection deleted meanwhile are dropped.
async fn insert_logs(tx: &mut Tx<'_>, lines: &[&LogLine]) -> StoreResult<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut sql = String::from(
        "INSERT INTO connection_logs (connection_id, at, level, message) \
         SELECT column1, column2, column3, column4 FROM (VALUES ",
    );
    for i in 0..lines.len() {
        let n = i * 4;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4));
    }
    sql.push_str(") AS v WHERE EXISTS (SELECT 1 FROM connections c WHERE c.id = v.column1)");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for l in lines {
        q = q
            .bind(l.connection_id)
            .bind(l.at)
            .bind(&l.level)
            .bind(&l.message);
    }
    q.execute(&mut **tx).await.map_err(classify)?;
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
