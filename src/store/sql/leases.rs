//! Leases and process heartbeats on the database's clock.

use super::{NOW, SqlStore, Ts, classify, ms, ms_between, plus_ms, ts};
use crate::model::Millis;
use crate::store::{LeaseInfo, LeaseRead, PresenceRound, ProcessInfo, StoreResult};
use sqlx::{Executor, Row};

/// A process's leases live as long as its row in `lease_owners` (migration 0016 on
/// PostgreSQL, 0015 on SQLite): a renewal writes that one row, not one per connection
/// (10,000 running bots made it 3,300 row updates a second, most of an idle PostgreSQL
/// server's work). A connection's own row says who holds it and since which generation;
/// it is `HELD` until given back or lost. A lease is held while both rows say so
/// (`HELD_SQL`, for a lease row named `l`).
pub(super) const HELD_SQL: &str = "l.expires_at >= {now} AND EXISTS (SELECT 1 FROM \
     lease_owners o WHERE o.owner = l.owner AND o.expires_at >= {now})";

/// A connection row's expiry while its lease is held (the year 3000): its owner's row
/// decides.
const HELD: Millis = 32_503_680_000_000;

/// The connections whose leases `$1` holds.
const HELD_BY_OWNER: &str = "FROM connection_leases l WHERE l.owner = $1 AND l.expires_at >= {now}";

/// `sql` in the backend's dialect of time: `{now}` is the database's clock,
/// `{now+PARAM}` that clock plus PARAM milliseconds, `{ms:A-B}` the milliseconds
/// from B to A as a BIGINT.
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
        let take = with_now(
            "INSERT INTO connection_leases (connection_id, owner, expires_at, generation) \
             VALUES ($1, $2, $3, 1) ON CONFLICT (connection_id) DO UPDATE SET \
             generation = connection_leases.generation + \
               CASE WHEN connection_leases.owner = excluded.owner THEN 0 ELSE 1 END, \
             owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE connection_leases.owner = excluded.owner \
               OR connection_leases.expires_at < {now} \
               OR NOT EXISTS (SELECT 1 FROM lease_owners o \
                 WHERE o.owner = connection_leases.owner AND o.expires_at >= {now}) \
             RETURNING generation",
        );
        let mut tx = self.pool.begin().await.map_err(classify)?;
        // The owner's row first (never shortened): the lease is valid as it is taken.
        keep_owner(&mut tx, owner, ttl_ms, true).await?;
        let generation = sqlx::query_scalar(take)
            .bind(connection_id)
            .bind(owner)
            .bind(ts(HELD))
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(generation)
    }

    pub(super) async fn renew_leases_(
        &self,
        owner: &str,
        ttl_ms: i64,
    ) -> StoreResult<Vec<(i64, i64)>> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        keep_owner(&mut tx, owner, ttl_ms, false).await?;
        let sql = with_now(&format!(
            "SELECT l.connection_id, l.generation {HELD_BY_OWNER}"
        ));
        let rows = sqlx::query(sql)
            .bind(owner)
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
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
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let n = renew_counted_on(&mut tx, owner, ttl_ms).await?;
        tx.commit().await.map_err(classify)?;
        Ok(n)
    }

    /// The connections' rows too, not only the owner's: should that process still be
    /// alive after all, its next renewal must not give it back what it was said to lose.
    pub(super) async fn expire_leases_of_(&self, owner: &str) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let done = sqlx::query("UPDATE connection_leases SET expires_at = $2 WHERE owner = $1")
            .bind(owner)
            .bind(ts(0))
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query("UPDATE lease_owners SET expires_at = $2 WHERE owner = $1")
            .bind(owner)
            .bind(ts(0))
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
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
            Some(ttl) => Some(renew_counted_on(&mut tx, &me.id, ttl).await?),
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

    /// With its lease row, and the rows of owners whose leases lapsed a day ago (crashed
    /// processes) once no lease row names them as holding: a held lease's end is its
    /// owner's, and the console says since when nobody runs a connection from it.
    pub(super) async fn forget_process_(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM flametree_processes WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        sqlx::query(with_now(
            "DELETE FROM lease_owners WHERE (owner = $1 OR expires_at < {now+$2}) \
             AND NOT EXISTS (SELECT 1 FROM connection_leases l \
               WHERE l.owner = lease_owners.owner AND l.expires_at >= {now})",
        ))
        .bind(id)
        .bind(-86_400_000_i64)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }
}

/// Extends the owner's row to now + `ttl_ms` (`never_shorten`: or leaves it if later).
/// An owner whose row lapsed (or that has none) loses the leases it held: they are
/// expired on their own rows before its row lives again, so a late renewal never gives
/// a process back what another may have taken meanwhile, as with a lease per row.
async fn keep_owner(
    tx: &mut super::Tx<'_>,
    owner: &str,
    ttl_ms: i64,
    never_shorten: bool,
) -> StoreResult<()> {
    let until = match never_shorten {
        true => "CASE WHEN expires_at < {now+$2} THEN {now+$2} ELSE expires_at END",
        false => "{now+$2}",
    };
    let extended = sqlx::query(with_now(&format!(
        "UPDATE lease_owners SET expires_at = {until} WHERE owner = $1 AND expires_at >= {{now}}"
    )))
    .bind(owner)
    .bind(ttl_ms)
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    if extended.rows_affected() > 0 {
        return Ok(());
    }
    sqlx::query(with_now(
        "UPDATE connection_leases SET expires_at = $2 WHERE owner = $1 AND expires_at >= {now}",
    ))
    .bind(owner)
    .bind(ts(0))
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    sqlx::query(with_now(
        "INSERT INTO lease_owners (owner, expires_at) VALUES ($1, {now+$2}) \
         ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at",
    ))
    .bind(owner)
    .bind(ttl_ms)
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    Ok(())
}

async fn renew_counted_on(tx: &mut super::Tx<'_>, owner: &str, ttl_ms: i64) -> StoreResult<u64> {
    keep_owner(tx, owner, ttl_ms, false).await?;
    let n: i64 = sqlx::query_scalar(with_now(&format!("SELECT COUNT(*) {HELD_BY_OWNER}")))
        .bind(owner)
        .fetch_one(&mut **tx)
        .await
        .map_err(classify)?;
    Ok(n as u64)
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
        // A lease ends with its own row or its owner's, whichever comes first.
        "SELECT l.connection_id, l.owner, l.generation, \
         CASE WHEN o.expires_at IS NULL OR l.expires_at < o.expires_at \
           THEN l.expires_at ELSE o.expires_at END AS ends, \
         CASE WHEN o.expires_at IS NULL THEN -1 WHEN l.expires_at < o.expires_at \
           THEN {ms:l.expires_at-now} ELSE {ms:o.expires_at-now} END AS expires_in \
         FROM connection_leases l LEFT JOIN lease_owners o ON o.owner = l.owner \
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
                expires_at: ms(r.try_get("ends").map_err(classify)?),
                expires_in_ms: r.try_get("expires_in").map_err(classify)?,
            })
        })
        .collect()
}

/// The owners holding an unexpired lease, of any tenant (a dead process's leases are
/// given back whole): few rows, one per process.
async fn lease_holders_on<'c, E: Executor<'c, Database = super::Db>>(
    ex: E,
) -> StoreResult<Vec<String>> {
    let sql = with_now(
        "SELECT o.owner FROM lease_owners o WHERE o.expires_at >= {now} AND EXISTS \
           (SELECT 1 FROM connection_leases l WHERE l.owner = o.owner AND l.expires_at >= {now}) \
         ORDER BY o.owner",
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
