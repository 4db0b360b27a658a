//! Agent operations as the operator performs them: permission, validation, audit, and
//! the one-inbound-agent rule with its warning for the types that allow more.

use super::responder::ResponderConfig;
use crate::catalog::{Catalog, Lifecycle};
use crate::channels::{Channels, ServiceError};
use crate::model::inputs;
use crate::model::validation::{FieldError, Report};
use crate::model::{Agent, AgentChannel, Attachment, Connection, DesiredState};
use crate::secrets::SecretString;
use crate::store::AuditNote;

/// What can change on an agent; `None` keeps the stored value.
#[derive(Debug, Default)]
pub struct AgentEdit {
    pub name: Option<String>,
    pub description: Option<String>,
    pub responder: Option<ResponderConfig>,
    /// A new API key for an OpenAI-compatible responder.
    pub api_key: Option<SecretString>,
    pub widget: Option<serde_json::Value>,
    /// Speech engines (SIP calls need them).
    pub speech: Option<super::speech::SpeechEdit>,
}

fn invalid(field: &str, message: String) -> ServiceError {
    ServiceError::Invalid(Report {
        errors: vec![FieldError {
            field: field.into(),
            message,
        }],
        warnings: Vec::new(),
    })
}

fn check_name(name: &str) -> Result<(), ServiceError> {
    match inputs::name_problem(name) {
        Some(problem) => Err(invalid("name", problem)),
        None => Ok(()),
    }
}

fn responder_kind(r: &ResponderConfig) -> &'static str {
    match r {
        ResponderConfig::Rules(_) => "rules",
        ResponderConfig::OpenAi(_) => "OpenAI-compatible",
    }
}

/// When an edit replaces the responder with one of another kind, what that does, said
/// plainly: "responder replaced: OpenAI-compatible → rules (its stored API key is
/// dropped)". For the audit trail and as a warning before the edit is made.
pub fn responder_replacement(agent: &Agent, edit: &AgentEdit) -> Option<String> {
    let new = edit.responder.as_ref()?;
    let old: ResponderConfig = serde_json::from_str(&agent.responder).unwrap_or_default();
    if responder_kind(&old) == responder_kind(new) {
        return None;
    }
    let dropped = match (&old, new) {
        (ResponderConfig::OpenAi(o), ResponderConfig::Rules(_)) if o.api_key.is_some() => {
            " (its stored API key is dropped)"
        }
        _ => "",
    };
    Some(format!(
        "responder replaced: {} → {}{dropped}",
        responder_kind(&old),
        responder_kind(new)
    ))
}

impl Channels {
    pub async fn agents(&self) -> Result<Vec<Agent>, ServiceError> {
        Ok(self.store().list_agents(self.tenant().id).await?)
    }

    pub async fn find_agent(&self, name: &str) -> Result<Agent, ServiceError> {
        self.store()
            .agent_by_name(self.tenant().id, name)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "no agent named '{name}' in tenant '{}': `flametree agents list` shows them",
                    self.tenant().name
                ))
            })
    }

    pub async fn create_agent(&self, name: &str, edit: AgentEdit) -> Result<Agent, ServiceError> {
        self.operator()
            .require_editor(&format!("create agent '{}'", name.trim()))?;
        check_name(name)?;
        let note = AuditNote::new(&self.operator().name, "create", "");
        let created = self
            .store()
            .create_agent(self.tenant().id, &inputs::normalize_name(name), &note)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Duplicate { .. } => invalid("name", e.to_string()),
                other => ServiceError::Store(other),
            })?;
        let edit = AgentEdit {
            responder: Some(edit.responder.unwrap_or_default()),
            ..edit
        };
        self.edit_agent(&created, edit).await
    }

    pub async fn edit_agent(&self, agent: &Agent, edit: AgentEdit) -> Result<Agent, ServiceError> {
        self.operator()
            .require_editor(&format!("change agent '{}'", agent.name))?;
        let mut a = agent.clone();
        let mut changed = Vec::new();
        let replaced = responder_replacement(agent, &edit);
        if let Some(n) = edit.name {
            check_name(&n)?;
            a.name = inputs::normalize_name(&n);
            changed.push("name");
        }
        if let Some(d) = edit.description {
            if let Some(problem) = inputs::description_problem(d.trim()) {
                return Err(invalid("description", problem));
            }
            a.description = d.trim().to_string();
            changed.push("description");
        }
        let mut responder = match edit.responder {
            Some(r) => {
                changed.push("responder");
                r
            }
            None => serde_json::from_str(&a.responder).unwrap_or_default(),
        };
        if let ResponderConfig::OpenAi(o) = &mut responder {
            if !inputs::is_web_url(&o.base_url) {
                return Err(invalid(
                    "base_url",
                    format!(
                        "'{}' is not an http(s) URL: use e.g. https://api.openai.com/v1",
                        o.base_url.escape_debug()
                    ),
                ));
            }
            if o.model.trim().is_empty() {
                return Err(invalid(
                    "model",
                    "Model is required (e.g. gpt-4o-mini)".into(),
                ));
            }
            let old_key = serde_json::from_str::<ResponderConfig>(&agent.responder)
                .ok()
                .and_then(|r| match r {
                    ResponderConfig::OpenAi(old) => old.api_key,
                    _ => None,
                });
            let old_url = serde_json::from_str::<ResponderConfig>(&agent.responder)
                .ok()
                .and_then(|r| match r {
                    ResponderConfig::OpenAi(old) => Some(old.base_url),
                    _ => None,
                });
            let retyped = edit.api_key.as_ref().is_some_and(|k| !k.is_empty());
            let stored_key = o.api_key.is_some() || old_key.is_some();
            if stored_key
                && !retyped
                && old_url.as_deref().map(str::trim) != Some(o.base_url.trim())
            {
                return Err(invalid(
                    "api_key",
                    format!(
                        "the model URL changed to {}: the stored API key would be sent there. \
                         Enter the API key again to confirm (--api-key-stdin), or keep the old URL",
                        o.base_url.trim()
                    ),
                ));
            }
            o.api_key = match &edit.api_key {
                Some(k) if !k.is_empty() => {
                    changed.push("api_key (secret replaced)");
                    let key = self.sealing_key().await?;
                    Some(key.seal("agent.api_key", k, 1))
                }
                _ => o.api_key.clone().or(old_key),
            };
        }
        a.responder = serde_json::to_string(&responder).expect("responder config serializes");
        if let Some(problem) =
            inputs::size_problem("The responder's settings", a.responder.len(), false)
        {
            return Err(invalid("responder", problem));
        }
        if let Some(w) = edit.widget {
            crate::widget::settings::validate(&w).map_err(|why| invalid("widget", why))?;
            a.widget = w.to_string();
            changed.push("web widget");
        }
        if let Some(s) = &edit.speech {
            let old = super::speech::SpeechConfig::parse(&agent.speech);
            let mut new =
                super::speech::apply(&old, s).map_err(|(field, why)| invalid(field, why))?;
            if s.clear {
                changed.push("speech engines cleared");
            }
            if new != old && !s.clear {
                changed.push("speech engines");
            }
            if let Some(k) = s.key.as_ref().filter(|k| !k.is_empty()) {
                if new.stt_url.is_empty() && new.tts_url.is_empty() {
                    return Err(invalid(
                        "speech_key",
                        "a speech key needs an engine to go to: set --stt-url and --tts-url too"
                            .into(),
                    ));
                }
                if let Some(problem) =
                    inputs::size_problem("The speech key", k.expose().len(), true)
                {
                    return Err(invalid("speech_key", problem));
                }
                let key = self.sealing_key().await?;
                new.api_key = Some(key.seal(super::speech::KEY_FIELD, k, 1));
                changed.push("speech key (secret replaced)");
            }
            a.speech = serde_json::to_string(&new).expect("speech settings serialize");
            if let Some(problem) =
                inputs::size_problem("The speech settings", a.speech.len(), false)
            {
                return Err(invalid("speech", problem));
            }
        }
        let sealed_a_key = changed.contains(&"api_key (secret replaced)")
            || changed.contains(&"speech key (secret replaced)");
        let mut details = format!("changed: {}", changed.join(", "));
        if let Some(r) = replaced {
            details.push_str(&format!("; {r}"));
        }
        let note = AuditNote::new(&self.operator().name, "update", details);
        let saved = self
            .store()
            .update_agent(&a, &note)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Duplicate { .. } => invalid("name", e.to_string()),
                other => ServiceError::Store(other),
            })?;
        if sealed_a_key {
            self.note_key_id().await?;
        }
        // Turning the widget on attaches its connection, which moves the agent's version on.
        if crate::widget::sync(self, &saved).await?.is_some() {
            return Ok(self.store().agent(saved.id).await?.unwrap_or(saved));
        }
        Ok(saved)
    }

    pub async fn delete_agent(&self, agent: &Agent) -> Result<(), ServiceError> {
        self.operator()
            .require_editor(&format!("delete agent '{}'", agent.name))?;
        crate::widget::remove(self, agent).await?;
        let note = AuditNote::new(&self.operator().name, "delete", "");
        Ok(self.store().delete_agent(agent.id, &note).await?)
    }

    /// Start agent / Stop agent. Voice connections attached to it (SIP, Twilio) have no
    /// Start/Stop of their own: they follow their agent.
    pub async fn run_agent(&self, agent: &Agent, run: bool) -> Result<Agent, ServiceError> {
        let verb = if run { "start" } else { "stop" };
        self.operator()
            .require_editor(&format!("{verb} agent '{}'", agent.name))?;
        // An agent whose widget was set before widgets were served gets its connection now.
        crate::widget::sync(self, agent).await?;
        let note = AuditNote::new(&self.operator().name, verb, "");
        let updated = if run {
            self.store().start_agent(agent.id, &note).await?
        } else {
            self.store().stop_agent(agent.id, &note).await?
        };
        for (c, ch) in self.agent_connections(&updated).await? {
            let voice = Catalog::get()
                .find(&c.type_key)
                .is_some_and(|t| t.lifecycle == Lifecycle::WithAgent);
            if voice && !ch.detached {
                let desired = if run {
                    DesiredState::Running
                } else {
                    DesiredState::Stopped
                };
                let note = AuditNote::new(
                    &self.operator().name,
                    verb,
                    format!("with agent '{}'", agent.name),
                );
                self.store().set_desired_state(c.id, desired, &note).await?;
            }
            let word = if run { "started" } else { "stopped" };
            self.log(
                c.id,
                "INFO",
                format!("Agent '{}' {word} by {}", agent.name, self.operator().name),
            )
            .await;
        }
        self.wake_handle().notify_one();
        Ok(updated)
    }

    /// Puts a connection on the agent's card. Returns warnings (several inbound agents
    /// on a type that allows it would each answer the same customer).
    pub async fn attach_connection(
        &self,
        agent: &Agent,
        c: &Connection,
        inbound: bool,
    ) -> Result<Vec<String>, ServiceError> {
        self.operator()
            .require_editor(&format!("attach '{}' to agent '{}'", c.name, agent.name))?;
        let ty = crate::channels::channel_type(&c.type_key)?;
        if !ty.listed {
            return Err(invalid(
                "connection",
                format!(
                    "{} is configured on the agent's page, not attached",
                    ty.name
                ),
            ));
        }
        let note = AuditNote::new(
            &self.operator().name,
            "attach",
            format!(
                "'{}' inbound {}",
                c.name,
                if inbound { "on" } else { "off" }
            ),
        );
        let att = Attachment {
            agent_id: agent.id,
            connection_id: c.id,
            inbound,
        };
        self.store()
            .attach(&att, ty.exclusive_inbound, &note)
            .await?;
        let mut warnings = Vec::new();
        if inbound && !ty.exclusive_inbound {
            let others: Vec<String> = self
                .store()
                .connection_agents(c.id)
                .await?
                .into_iter()
                .filter(|(a, ch)| a.id != agent.id && ch.inbound && !ch.detached)
                .map(|(a, _)| format!("'{}'", a.name))
                .collect();
            if !others.is_empty() {
                warnings.push(format!(
                    "agent {} also answers '{}': several agents would each answer the same customer",
                    others.join(", "),
                    c.name
                ));
            }
        }
        self.log(
            c.id,
            "INFO",
            format!(
                "Attached to agent '{}' (Inbound {}) by {}; applies when the agent restarts",
                agent.name,
                if inbound { "on" } else { "off" },
                self.operator().name
            ),
        )
        .await;
        Ok(warnings)
    }

    pub async fn detach_connection(
        &self,
        agent: &Agent,
        c: &Connection,
    ) -> Result<(), ServiceError> {
        self.operator()
            .require_editor(&format!("detach '{}' from agent '{}'", c.name, agent.name))?;
        let note = AuditNote::new(&self.operator().name, "detach", format!("'{}'", c.name));
        self.store().detach(agent.id, c.id, &note).await?;
        self.log(
            c.id,
            "INFO",
            format!(
                "Detached from agent '{}' by {}; applies when the agent restarts",
                agent.name,
                self.operator().name
            ),
        )
        .await;
        Ok(())
    }

    /// The agent's Communication channels card: each connection with its attachment.
    pub async fn agent_connections(
        &self,
        agent: &Agent,
    ) -> Result<Vec<(Connection, AgentChannel)>, ServiceError> {
        let mut out = Vec::new();
        for ch in self.store().agent_channels(agent.id).await? {
            if let Some(c) = self.store().connection(ch.connection_id).await? {
                out.push((c, ch));
            }
        }
        Ok(out)
    }

    /// Why a connection's messages get, or do not get, an answer.
    pub async fn reply_diagnosis(&self, connection_id: i64) -> Result<String, ServiceError> {
        let list = self.store().connection_agents(connection_id).await?;
        Ok(super::diagnosis(&list))
    }
}
