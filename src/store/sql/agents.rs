//! Agents, their Communication channels, conversation history and unanswered messages.

use super::rows::{self, agent_columns};
use super::{SqlStore, Tx, classify, is_unique_violation, ms, name_key, ts};
use crate::model::{Agent, AgentChannel, Millis, now_millis};
use crate::store::{AuditNote, StoreError, StoreResult};
use sqlx::Row;
use sqlx::types::Json;

/// A JSON setting of the agent as its column holds it (JSONB on PostgreSQL).
fn json_column(what: &str, text: &str) -> StoreResult<Json<serde_json::Value>> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    serde_json::from_str(text)
        .map(Json)
        .map_err(|e| StoreError::Other(format!("the agent's {what} is not valid JSON: {e}")))
}

const CHANNEL_COLUMNS: &str = "agent_id, connection_id, inbound, applied_inbound, detached";

impl SqlStore {
    pub(super) async fn create_agent_(
        &self,
        tenant_id: i64,
        name: &str,
        note: &AuditNote,
    ) -> StoreResult<Agent> {
        let now = now_millis();
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let inserted = sqlx::query(
            "INSERT INTO agents (tenant_id, name, name_key, status_since, created_at, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $4, $4, $5) RETURNING id",
        )
        .bind(tenant_id)
        .bind(name.trim())
        .bind(name_key(name))
        .bind(ts(now))
        .bind(&note.actor)
        .fetch_one(&mut *tx)
        .await;
        let id: i64 = match inserted {
            Ok(row) => row.try_get("id").map_err(classify)?,
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Duplicate {
                    kind: "agent",
                    name: name.trim().to_string(),
                });
            }
            Err(e) => return Err(classify(e)),
        };
        Self::audit(&mut tx, tenant_id, note, "agent", id, name.trim()).await?;
        tx.commit().await.map_err(classify)?;
        self.agent_(id).await?.ok_or(StoreError::NotFound {
            kind: "agent",
            name: name.to_string(),
        })
    }

    pub(super) async fn list_agents_(&self, tenant_id: i64) -> StoreResult<Vec<Agent>> {
        let sql = concat!(
            "SELECT ",
            agent_columns!(),
            " FROM agents WHERE tenant_id = $1 ORDER BY name_key"
        );
        let found = sqlx::query(sql)
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        found.iter().map(rows::agent).collect()
    }

    pub(super) async fn agent_(&self, id: i64) -> StoreResult<Option<Agent>> {
        let sql = concat!("SELECT ", agent_columns!(), " FROM agents WHERE id = $1");
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref().map(rows::agent).transpose()
    }

    pub(super) async fn agent_by_name_(
        &self,
        tenant_id: i64,
        name: &str,
    ) -> StoreResult<Option<Agent>> {
        let sql = concat!(
            "SELECT ",
            agent_columns!(),
            " FROM agents WHERE tenant_id = $1 AND name_key = $2"
        );
        let row = sqlx::query(sql)
            .bind(tenant_id)
            .bind(name_key(name))
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref().map(rows::agent).transpose()
    }

    pub(super) async fn update_agent_(&self, a: &Agent, note: &AuditNote) -> StoreResult<Agent> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let done = sqlx::query(
            "UPDATE agents SET name = $1, name_key = $2, description = $3, responder = $4, widget = $5, \
             speech = $6, version = version + 1, updated_at = $7, updated_by = $8 \
             WHERE id = $9 AND version = $10",
        )
        .bind(a.name.trim())
        .bind(name_key(&a.name))
        .bind(&a.description)
        .bind(json_column("responder", &a.responder)?)
        .bind(json_column("widget", &a.widget)?)
        .bind(json_column("speech", &a.speech)?)
        .bind(ts(now_millis()))
        .bind(&note.actor)
        .bind(a.id)
        .bind(a.version)
        .execute(&mut *tx)
        .await;
        match done {
            Ok(r) if r.rows_affected() == 1 => {}
            Ok(_) => {
                drop(tx);
                return Err(match self.agent_(a.id).await? {
                    Some(cur) => StoreError::Conflict {
                        name: cur.name,
                        by: cur.updated_by,
                        at: "a moment ago".into(),
                    },
                    None => StoreError::NotFound {
                        kind: "agent",
                        name: a.name.clone(),
                    },
                });
            }
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Duplicate {
                    kind: "agent",
                    name: a.name.trim().to_string(),
                });
            }
            Err(e) => return Err(classify(e)),
        }
        Self::audit(&mut tx, a.tenant_id, note, "agent", a.id, a.name.trim()).await?;
        tx.commit().await.map_err(classify)?;
        self.agent_(a.id).await?.ok_or(StoreError::NotFound {
            kind: "agent",
            name: a.name.clone(),
        })
    }

    pub(super) async fn delete_agent_(&self, id: i64, note: &AuditNote) -> StoreResult<()> {
        let Some(a) = self.agent_(id).await? else {
            return Err(StoreError::NotFound {
                kind: "agent",
                name: format!("#{id}"),
            });
        };
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("DELETE FROM agents WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        Self::audit(&mut tx, a.tenant_id, note, "agent", id, &a.name).await?;
        tx.commit().await.map_err(classify)
    }

    /// Start agent: its saved channels become the ones it uses, and it answers.
    pub(super) async fn start_agent_(&self, id: i64, note: &AuditNote) -> StoreResult<Agent> {
        self.set_agent_running(id, true, note).await
    }

    pub(super) async fn stop_agent_(&self, id: i64, note: &AuditNote) -> StoreResult<Agent> {
        self.set_agent_running(id, false, note).await
    }

    async fn set_agent_running(&self, id: i64, run: bool, note: &AuditNote) -> StoreResult<Agent> {
        let Some(a) = self.agent_(id).await? else {
            return Err(StoreError::NotFound {
                kind: "agent",
                name: format!("#{id}"),
            });
        };
        let now = now_millis();
        let mut tx = self.pool.begin().await.map_err(classify)?;
        if run {
            sqlx::query("DELETE FROM agent_channels WHERE agent_id = $1 AND detached")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            sqlx::query("UPDATE agent_channels SET applied_inbound = inbound WHERE agent_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        let (state, running) = if run {
            ("RUNNING", Some(a.version))
        } else {
            ("STOPPED", None)
        };
        sqlx::query(
            "UPDATE agents SET desired_state = $1, status = $1, status_since = $2, running_version = $3 \
             WHERE id = $4",
        )
        .bind(state)
        .bind(ts(now))
        .bind(running)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        Self::audit(&mut tx, a.tenant_id, note, "agent", id, &a.name).await?;
        tx.commit().await.map_err(classify)?;
        self.agent_(id).await?.ok_or(StoreError::NotFound {
            kind: "agent",
            name: a.name,
        })
    }

    /// Attaches (or changes) a connection on an agent's card; the agent's version moves,
    /// so it shows "restart pending". For exclusive types the database refuses a
    /// second inbound agent.
    pub(super) async fn attach_(
        &self,
        agent_id: i64,
        connection_id: i64,
        inbound: bool,
        exclusive_inbound: bool,
        note: &AuditNote,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let done = sqlx::query(
            "INSERT INTO agent_channels (agent_id, connection_id, inbound, exclusive_inbound, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (agent_id, connection_id) \
             DO UPDATE SET inbound = excluded.inbound, exclusive_inbound = excluded.exclusive_inbound, detached = FALSE",
        )
        .bind(agent_id)
        .bind(connection_id)
        .bind(inbound)
        .bind(exclusive_inbound)
        .bind(ts(now_millis()))
        .execute(&mut *tx)
        .await;
        if let Err(e) = done {
            if !is_unique_violation(&e) {
                return Err(classify(e));
            }
            drop(tx);
            return Err(self.inbound_taken(connection_id).await);
        }
        self.bump_agent(&mut tx, agent_id, note).await?;
        tx.commit().await.map_err(classify)
    }

    /// Detaches at once for the card; the running agent keeps the channel until it restarts.
    pub(super) async fn detach_(
        &self,
        agent_id: i64,
        connection_id: i64,
        note: &AuditNote,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("UPDATE agent_channels SET detached = TRUE, inbound = FALSE WHERE agent_id = $1 AND connection_id = $2")
            .bind(agent_id)
            .bind(connection_id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        self.bump_agent(&mut tx, agent_id, note).await?;
        tx.commit().await.map_err(classify)
    }

    async fn bump_agent(
        &self,
        tx: &mut Tx<'_>,
        agent_id: i64,
        note: &AuditNote,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE agents SET version = version + 1, updated_at = $1, updated_by = $2 WHERE id = $3")
            .bind(ts(now_millis()))
            .bind(&note.actor)
            .bind(agent_id)
            .execute(&mut **tx)
            .await
            .map_err(classify)?;
        let row = sqlx::query("SELECT tenant_id, name FROM agents WHERE id = $1")
            .bind(agent_id)
            .fetch_one(&mut **tx)
            .await
            .map_err(classify)?;
        let tenant_id: i64 = row.try_get("tenant_id").map_err(classify)?;
        let name: String = row.try_get("name").map_err(classify)?;
        Self::audit(tx, tenant_id, note, "agent", agent_id, &name).await
    }

    pub(super) async fn inbound_taken(&self, connection_id: i64) -> StoreError {
        let found = sqlx::query(
            "SELECT a.name AS agent, c.name AS connection, c.type_key AS type_key FROM agent_channels ac \
             JOIN agents a ON a.id = ac.agent_id JOIN connections c ON c.id = ac.connection_id \
             WHERE ac.connection_id = $1 AND ac.inbound AND ac.exclusive_inbound",
        )
        .bind(connection_id)
        .fetch_optional(&self.pool)
        .await;
        match found {
            Ok(Some(row)) => {
                let type_key: String = row.try_get("type_key").unwrap_or_default();
                StoreError::InboundTaken {
                    connection: row.try_get("connection").unwrap_or_default(),
                    agent: row.try_get("agent").unwrap_or_default(),
                    type_name: crate::catalog::Catalog::get()
                        .find(&type_key)
                        .map(|t| t.name.clone())
                        .unwrap_or(type_key),
                }
            }
            Ok(None) => StoreError::Other("inbound attachment refused by the database".into()),
            Err(e) => classify(e),
        }
    }

    pub(super) async fn agent_channels_(&self, agent_id: i64) -> StoreResult<Vec<AgentChannel>> {
        let sql = format!(
            "SELECT {CHANNEL_COLUMNS} FROM agent_channels WHERE agent_id = $1 ORDER BY connection_id"
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(agent_id)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        found.iter().map(rows::agent_channel).collect()
    }

    pub(super) async fn connection_agents_(
        &self,
        connection_id: i64,
    ) -> StoreResult<Vec<(Agent, AgentChannel)>> {
        let sql = format!(
            "SELECT {CHANNEL_COLUMNS} FROM agent_channels WHERE connection_id = $1 ORDER BY created_at"
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(connection_id)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        let mut out = Vec::new();
        for row in &found {
            let ch = rows::agent_channel(row)?;
            if let Some(a) = self.agent_(ch.agent_id).await? {
                out.push((a, ch));
            }
        }
        Ok(out)
    }

    /// `connection_agents_` for many connections in two statements, whatever their
    /// number: a burst's first message on each of 1,000 connections looked up its agent
    /// with a query of its own, and then each agent with another.
    pub(super) async fn connection_agents_many_(
        &self,
        connection_ids: &[i64],
    ) -> StoreResult<std::collections::HashMap<i64, Vec<(Agent, AgentChannel)>>> {
        use super::rowset::{fixed_sql, id_in, json};
        let mut out: std::collections::HashMap<i64, Vec<(Agent, AgentChannel)>> =
            connection_ids.iter().map(|id| (*id, Vec::new())).collect();
        if connection_ids.is_empty() {
            return Ok(out);
        }
        let sql = fixed_sql!(format!(
            "SELECT {CHANNEL_COLUMNS} FROM agent_channels WHERE {} ORDER BY created_at",
            id_in("connection_id", 1)
        ));
        let found = sqlx::query(sql)
            .bind(json(connection_ids))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        let channels: Vec<AgentChannel> = found
            .iter()
            .map(rows::agent_channel)
            .collect::<StoreResult<_>>()?;
        let mut agent_ids: Vec<i64> = channels.iter().map(|ch| ch.agent_id).collect();
        agent_ids.sort_unstable();
        agent_ids.dedup();
        let sql = fixed_sql!(format!(
            "SELECT {} FROM agents WHERE {}",
            agent_columns!(),
            id_in("id", 1)
        ));
        let agents: std::collections::HashMap<i64, Agent> = sqlx::query(sql)
            .bind(json(&agent_ids))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?
            .iter()
            .map(|r| rows::agent(r).map(|a| (a.id, a)))
            .collect::<StoreResult<_>>()?;
        for ch in channels {
            if let Some(a) = agents.get(&ch.agent_id) {
                out.entry(ch.connection_id)
                    .or_default()
                    .push((a.clone(), ch));
            }
        }
        Ok(out)
    }

    pub(super) async fn add_turn_(
        &self,
        agent_id: i64,
        connection_id: i64,
        customer: &str,
        role: &str,
        content: &str,
        keep: u32,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query(
            "INSERT INTO conversation_turns (agent_id, connection_id, customer, role, content, at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(agent_id)
        .bind(connection_id)
        .bind(customer)
        .bind(role)
        .bind(content)
        .bind(ts(now_millis()))
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        sqlx::query(
            "DELETE FROM conversation_turns WHERE agent_id = $1 AND connection_id = $2 AND customer = $3 \
             AND id < (SELECT MIN(id) FROM (SELECT id FROM conversation_turns WHERE agent_id = $1 \
             AND connection_id = $2 AND customer = $3 ORDER BY id DESC LIMIT $4) AS newest)",
        )
        .bind(agent_id)
        .bind(connection_id)
        .bind(customer)
        .bind(i64::from(keep.max(1)))
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    /// The customer's last `limit` turns with this agent on this connection, oldest first.
    pub(super) async fn turns_(
        &self,
        agent_id: i64,
        connection_id: i64,
        customer: &str,
        limit: u32,
    ) -> StoreResult<Vec<(String, String)>> {
        let found = sqlx::query(
            "SELECT role, content FROM conversation_turns WHERE agent_id = $1 AND connection_id = $2 \
             AND customer = $3 ORDER BY id DESC LIMIT $4",
        )
        .bind(agent_id)
        .bind(connection_id)
        .bind(customer)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let mut turns: Vec<(String, String)> = found
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("role").map_err(classify)?,
                    r.try_get("content").map_err(classify)?,
                ))
            })
            .collect::<StoreResult<_>>()?;
        turns.reverse();
        Ok(turns)
    }

    pub(super) async fn record_unanswered_(
        &self,
        connection_id: i64,
        customer: &str,
        text: &str,
        reason: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO unanswered_messages (connection_id, customer, text, reason, at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(connection_id)
        .bind(customer)
        .bind(text)
        .bind(reason)
        .bind(ts(now_millis()))
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    pub(super) async fn unanswered_(
        &self,
        connection_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<(Millis, String, String, String)>> {
        let found = sqlx::query(
            "SELECT at, customer, text, reason FROM unanswered_messages WHERE connection_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(connection_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        found
            .iter()
            .map(|r| {
                Ok((
                    ms(r.try_get("at").map_err(classify)?),
                    r.try_get("customer").map_err(classify)?,
                    r.try_get("text").map_err(classify)?,
                    r.try_get("reason").map_err(classify)?,
                ))
            })
            .collect()
    }
}
