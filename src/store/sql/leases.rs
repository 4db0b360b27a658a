//! Leases and process heartbeats on the database's clock.

use super::{NOW, SqlStore, Ts, classify, ms, ms_between, plus_ms, ts};
use crate::model::Millis;
use crate::store::{LeaseInfo, LeaseRead, PresenceRound, ProcessInfo, StoreResult};
use sqlx::{Executor, Row};

/// `sql` in the backend's dialect of time: `{now}` is the database's clock,
/// `{now+PARAM}` that clock plus PARAM milliseconds, `{ms:A-B}` the milliseconds
/// from B to A as a BIGINT.
/// Extends the owner's unexpired leases by `$2` ms (`renew_leases_`, `renew_leases_counted_`).
const RENEW: &str = "UPDATE connection_leases SET expires_at = {now+$2} \
                     WHERE owner = $1 AND expires_at >= {now}";

pub(super) fn with_now(sql: &str) -> sqlx::AssertSqlSafe<String> {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = open
            + rest[open..]
                .find('}')
                .expect("a closed {…} in the template");
        let token = &rest[open + 1..close];
        match token.split_once(':') {
            _ if token == "now" => out.push_str(NOW),
            Some(("ms", diff)) => {
                let (a, b) = diff.split_once('-').expect("{ms:A-B}");
                out.push_str(&ms_between(&expand(a), &expand(b)));
            }
            _ => match token.strip_prefix("now+") {
                Some(param) => out.push_str(&plus_ms(NOW, param)),
                None => panic!("unknown token {{{token}}} in a time template"),
            },
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    sqlx::AssertSqlSafe(out)
}

fn expand(term: &str) -> String {
    if term == "now" {
        NOW.to_string()
    } else {
        term.to_string()
    }
}

impl SqlStore {
    pub(super) async fn db_now_(&self) -> StoreResult<Millis> {
        db_now_on(&self.pool).await
    }

    pub(super) async fn acquire_lease_(
        &self,
        connection_id: i64,
        owner: &str,
        ttl_ms: i64,
    ) -> StoreResult<Option<i64>> {
        let sql = with_now(
            "INSERT INTO connection_leases (connection_id, owner, expires_at, generation) \
             VALUES ($1, $2, {now+$3}, 1) ON CONFLICT (connection_id) DO UPDATE SET \
             generation = connection_leases.generation + \
               CASE WHEN connection_leases.owner = excluded.owner THEN 0 ELSE 1 END, \
             owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE connection_leases.owner = excluded.owner OR connection_leases.expires_at < {now} \
             RETURNING generation",
        );
        sqlx::query_scalar(sql)
            .bind(connection_id)
            .bind(owner)
            .bind(ttl_ms)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)
    }

    pub(super) async fn renew_leases_(
        &self,
        owner: &str,
        ttl_ms: i64,
    ) -> StoreResult<Vec<(i64, i64)>> {
        let sql = with_now(&format!("{RENEW} RETURNING connection_id, generation"));
        let rows = sqlx::query(sql)
            .bind(owner)
            .bind(ttl_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("connection_id").map_err(classify)?,
                    r.try_get("generation").map_err(classify)?,
                ))
            })
            .collect()
    }

    pub(super) async fn renew_leases_counted_(&self, owner: &str, ttl_ms: i64) -> StoreResult<u64> {
        renew_counted_on(&self.pool, owner, ttl_ms).await
    }

    pub(super) async fn expire_leases_of_(&self, owner: &str) -> StoreResult<u64> {
        let done = sqlx::query("UPDATE connection_leases SET expires_at = $2 WHERE owner = $1")
            .bind(owner)
            .bind(ts(0))
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }

    pub(super) async fn leases_(&self, tenant_id: i64) -> StoreResult<Vec<LeaseInfo>> {
        leases_on(&self.pool, tenant_id).await
    }

    pub(super) async fn lease_holders_(&self) -> StoreResult<Vec<String>> {
        lease_holders_on(&self.pool).await
    }

    pub(super) async fn heartbeat_(&self, p: &ProcessInfo) -> StoreResult<()> {
        heartbeat_on(&self.pool, p).await
    }

    pub(super) async fn processes_(&self) -> StoreResult<Vec<ProcessInfo>> {
        processes_on(&self.pool).await
    }

    /// The heartbeat, the renewal and the look at the others in one transaction: a
    /// process at idle costs the database one commit every few seconds, not five. The
    /// heartbeat comes first, so on SQLite the transaction takes the write lock before
    /// it reads anything (a read first could not be upgraded once another process had
    /// written).
    pub(super) async fn presence_round_(
        &self,
        me: &ProcessInfo,
        tenant_id: i64,
        want: LeaseRead,
        renew_ttl_ms: Option<i64>,
    ) -> StoreResult<PresenceRound> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        heartbeat_on(&mut *tx, me).await?;
        let renewed = match renew_ttl_ms {
            Some(ttl) => Some(renew_counted_on(&mut *tx, &me.id, ttl).await?),
            None => None,
        };
        let processes = processes_on(&mut *tx).await?;
        let (leases, holders) = match want {
            LeaseRead::All => (leases_on(&mut *tx, tenant_id).await?, Vec::new()),
            LeaseRead::Holders => (Vec::new(), lease_holders_on(&mut *tx).await?),
            LeaseRead::Nothing => (Vec::new(), Vec::new()),
        };
        let db_now = db_now_on(&mut *tx).await?;
        tx.commit().await.map_err(classify)?;
        Ok(PresenceRound {
            renewed,
            processes,
            leases,
            holders,
            db_now,
        })
    }

    pub(super) async fn forget_process_(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM flametree_processes WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }
}

async fn renew_counted_on<'c, E: Executor<'c, Database = super::Db>>(
    ex: E,
    owner: &str,
    ttl_ms: i64,
) -> StoreResult<u64> {
    let done = sqlx::query(with_now(RENEW))
        .bind(owner)
        .bind(ttl_ms)
        .execute(ex)
        .await
        .map_err(classify)?;
    Ok(done.rows_affected())
}

async fn db_now_on<'c, E: Executor<'c, Database = super::Db>>(ex: E) -> StoreResult<Millis> {
    sqlx::query_scalar::<_, Ts>(with_now("SELECT {now}"))
        .fetch_one(ex)
        .await
        .map(ms)
        .map_err(classify)
}

async fn leases_on<'c, E: Executor<'c, Database = super::Db>>(
    ex: E,
    tenant_id: i64,
) -> StoreResult<Vec<LeaseInfo>> {
    let sql = with_now(
        // The tenant's connection ids come from the (tenant_id, changed_at) index:
        // joining the table read every connection's whole row (configuration and
        // all) every few seconds, most of an idle process's work with 10,000 bots.
        "SELECT l.connection_id, l.owner, l.generation, l.expires_at, \
         {ms:l.expires_at-now} AS expires_in FROM connection_leases l \
         WHERE l.connection_id IN (SELECT id FROM connections WHERE tenant_id = $1)",
    );
    let rows = sqlx::query(sql)
        .bind(tenant_id)
        .fetch_all(ex)
        .await
        .map_err(classify)?;
    rows.iter()
        .map(|r| {
            Ok(LeaseInfo {
                connection_id: r.try_get("connection_id").map_err(classify)?,
                owner: r.try_get("owner").map_err(classify)?,
                generation: r.try_get("generation").map_err(classify)?,
                expires_at: ms(r.try_get("expires_at").map_err(classify)?),
                expires_in_ms: r.try_get("expires_in").map_err(classify)?,
            })
        })
        .collect()
}

/// The owners holding an unexpired lease, of any tenant (a dead process's leases are
/// given back whole). The distinct owners are walked through the owner index, one
/// step per owner, not read off every lease.
async fn lease_holders_on<'c, E: Executor<'c, Database = super::Db>>(
    ex: E,
) -> StoreResult<Vec<String>> {
    let sql = with_now(
        "WITH RECURSIVE owners (owner) AS ( \
           SELECT MIN(owner) FROM connection_leases \
           UNION ALL \
           SELECT (SELECT MIN(l.owner) FROM connection_leases l WHERE l.owner > o.owner) \
           FROM owners o WHERE o.owner IS NOT NULL) \
         SELECT o.owner FROM owners o WHERE o.owner IS NOT NULL AND EXISTS \
           (SELECT 1 FROM connection_leases l WHERE l.owner = o.owner AND l.expires_at >= {now})",
    );
    sqlx::query_scalar(sql)
        .fetch_all(ex)
        .await
        .map_err(classify)
}

async fn heartbeat_on<'c, E: Executor<'c, Database = super::Db>>(
    ex: E,
    p: &ProcessInfo,
) -> StoreResult<()> {
    let sql = with_now(
        "INSERT INTO flametree_processes (id, host, pid, role, tenant, runs_channels, \
         started_at, seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, {now}) \
         ON CONFLICT (id) DO UPDATE SET role = excluded.role, tenant = excluded.tenant, \
         runs_channels = excluded.runs_channels, seen_at = excluded.seen_at",
    );
    sqlx::query(sql)
        .bind(&p.id)
        .bind(&p.host)
        .bind(p.pid)
        .bind(&p.role)
        .bind(&p.tenant)
        .bind(p.runs_channels)
        .bind(ts(p.started_at))
        .execute(ex)
        .await
        .map_err(classify)?;
    Ok(())
}

async fn processes_on<'c, E: Executor<'c, Database = super::Db>>(
    ex: E,
) -> StoreResult<Vec<ProcessInfo>> {
    let sql = with_now(
        "SELECT id, host, pid, role, tenant, runs_channels, started_at, \
         {ms:now-seen_at} AS ago FROM flametree_processes ORDER BY started_at",
    );
    let rows = sqlx::query(sql).fetch_all(ex).await.map_err(classify)?;
    rows.iter()
        .map(|r| {
            Ok(ProcessInfo {
                id: r.try_get("id").map_err(classify)?,
                host: r.try_get("host").map_err(classify)?,
                pid: r.try_get("pid").map_err(classify)?,
                role: r.try_get("role").map_err(classify)?,
                tenant: r.try_get("tenant").map_err(classify)?,
                runs_channels: r.try_get("runs_channels").map_err(classify)?,
                started_at: ms(r.try_get("started_at").map_err(classify)?),
                seen_ms_ago: r.try_get("ago").map_err(classify)?,
            })
        })
        .collect()
}
