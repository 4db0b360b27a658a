//! Outbound call requests: queued by `flametree call`, claimed by the process that
//! holds the connection's lease, moved along as the call goes. Times are the
//! database's clock, so a request's age means the same to every process.

use super::leases::{HELD_SQL, with_now};
use super::{DbRow, SqlStore, Ts, classify, ms};
use crate::model::{CallProgress, CallRequest, CallState};
use crate::store::{StoreError, StoreResult};
use sqlx::Row;

const COLUMNS: &str = "id, connection_id, callee, opening, requested_by, state, reason, \
     call_id, duration_secs, claimed_by, requested_at, updated_at, answered_at, ended_at";

/// States a request leaves no more (kept as SQL for the statements below).
const ENDED: &str = "('completed', 'busy', 'no-answer', 'failed', 'canceled')";

/// A claimed call still going, as far as the row says.
const IN_PROGRESS: &str = "('dialing', 'ringing', 'answered')";

/// Ends a call whose claimer is gone. The claimer is named from the row itself, so
/// the statement that finds the orphans also words their reason.
const ORPHANED: &str = "SET state = 'failed', reason = 'the process that placed the call (' \
     || claimed_by || ') stopped during the call', updated_at = {now}, ended_at = {now}";

fn request(row: &DbRow) -> StoreResult<CallRequest> {
    let state: String = row.try_get("state").map_err(classify)?;
    let time = |col: &str| -> StoreResult<Option<i64>> {
        Ok(row.try_get::<Option<Ts>, _>(col).map_err(classify)?.map(ms))
    };
    Ok(CallRequest {
        id: row.try_get("id").map_err(classify)?,
        connection_id: row.try_get("connection_id").map_err(classify)?,
        callee: row.try_get("callee").map_err(classify)?,
        opening: row.try_get("opening").map_err(classify)?,
        requested_by: row.try_get("requested_by").map_err(classify)?,
        state: CallState::parse(&state).ok_or_else(|| {
            StoreError::Other(format!("stored call state cannot be read: {state}"))
        })?,
        reason: row.try_get("reason").map_err(classify)?,
        call_id: row.try_get("call_id").map_err(classify)?,
        duration_secs: row.try_get("duration_secs").map_err(classify)?,
        claimed_by: row.try_get("claimed_by").map_err(classify)?,
        requested_at: time("requested_at")?.unwrap_or_default(),
        updated_at: time("updated_at")?.unwrap_or_default(),
        answered_at: time("answered_at")?,
        ended_at: time("ended_at")?,
    })
}

impl SqlStore {
    pub(super) async fn request_call_(
        &self,
        connection_id: i64,
        callee: &str,
        opening: Option<&str>,
        requested_by: &str,
    ) -> StoreResult<i64> {
        let sql = with_now(
            "INSERT INTO call_requests (connection_id, callee, opening, requested_by, \
             requested_at, updated_at) VALUES ($1, $2, $3, $4, {now}, {now}) RETURNING id",
        );
        sqlx::query_scalar(sql)
            .bind(connection_id)
            .bind(callee)
            .bind(opening)
            .bind(requested_by)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)
    }

    pub(super) async fn call_request_(&self, id: i64) -> StoreResult<Option<CallRequest>> {
        let sql = format!("SELECT {COLUMNS} FROM call_requests WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref().map(request).transpose()
    }

    pub(super) async fn queued_call_connections_(&self) -> StoreResult<Vec<i64>> {
        sqlx::query_scalar(
            "SELECT DISTINCT connection_id FROM call_requests WHERE state = 'queued'",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(classify)
    }

    pub(super) async fn claim_call_(
        &self,
        connection_id: i64,
        owner: &str,
        max_age_ms: i64,
    ) -> StoreResult<Option<CallRequest>> {
        // A request nobody dialed in time is not dialed at all: a call placed long after
        // it was asked for would surprise both sides.
        let stale = with_now(
            "UPDATE call_requests SET state = 'canceled', reason = $3, updated_at = {now}, \
             ended_at = {now} WHERE connection_id = $1 AND state = 'queued' \
             AND requested_at < {now+$2}",
        );
        sqlx::query(stale)
            .bind(connection_id)
            .bind(-max_age_ms)
            .bind(format!(
                "not dialed within {} s: no process ran the connection",
                max_age_ms / 1000
            ))
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        // One statement: the state is checked again on the row it updates, so of two
        // claimers only one gets it; and only the lease holder may claim.
        let sql = with_now(&format!(
            "UPDATE call_requests SET state = 'dialing', claimed_by = $2, updated_at = {{now}} \
             WHERE id = (SELECT id FROM call_requests WHERE connection_id = $1 \
             AND state = 'queued' ORDER BY id LIMIT 1) AND state = 'queued' \
             AND EXISTS (SELECT 1 FROM connection_leases l WHERE l.connection_id = $1 \
             AND l.owner = $2 AND {HELD_SQL}) RETURNING {COLUMNS}"
        ));
        let row = sqlx::query(sql)
            .bind(connection_id)
            .bind(owner)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref().map(request).transpose()
    }

    pub(super) async fn update_call_(&self, id: i64, p: &CallProgress) -> StoreResult<()> {
        let sql = with_now(&format!(
            "UPDATE call_requests SET state = $2, \
             reason = CASE WHEN $3 = '' THEN reason ELSE $3 END, \
             call_id = CASE WHEN $4 = '' THEN call_id ELSE $4 END, \
             duration_secs = COALESCE($5, duration_secs), updated_at = {{now}}, \
             answered_at = CASE WHEN $6 THEN {{now}} ELSE answered_at END, \
             ended_at = CASE WHEN $7 THEN {{now}} ELSE ended_at END \
             WHERE id = $1 AND state NOT IN {ENDED}"
        ));
        sqlx::query(sql)
            .bind(id)
            .bind(p.state.as_str())
            .bind(&p.reason)
            .bind(&p.call_id)
            .bind(p.duration_secs)
            .bind(p.state == CallState::Answered)
            .bind(p.state.ended())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    pub(super) async fn end_orphaned_calls_(
        &self,
        connection_id: i64,
        owner: &str,
    ) -> StoreResult<Vec<CallRequest>> {
        // Only the lease holder may say the others are gone: it runs the line now.
        let sql = with_now(&format!(
            "UPDATE call_requests {ORPHANED} WHERE connection_id = $1 \
             AND state IN {IN_PROGRESS} AND claimed_by <> $2 \
             AND EXISTS (SELECT 1 FROM connection_leases l WHERE l.connection_id = $1 \
             AND l.owner = $2 AND {HELD_SQL}) RETURNING {COLUMNS}"
        ));
        let rows = sqlx::query(sql)
            .bind(connection_id)
            .bind(owner)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter().map(request).collect()
    }

    pub(super) async fn end_abandoned_call_(&self, id: i64, claimer: &str) -> StoreResult<bool> {
        let sql = with_now(&format!(
            "UPDATE call_requests {ORPHANED} WHERE id = $1 AND claimed_by = $2 \
             AND state IN {IN_PROGRESS}"
        ));
        let done = sqlx::query(sql)
            .bind(id)
            .bind(claimer)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn cancel_queued_call_(&self, id: i64, reason: &str) -> StoreResult<bool> {
        let sql = with_now(
            "UPDATE call_requests SET state = 'canceled', reason = $2, updated_at = {now}, \
             ended_at = {now} WHERE id = $1 AND state = 'queued'",
        );
        let done = sqlx::query(sql)
            .bind(id)
            .bind(reason)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }
}
