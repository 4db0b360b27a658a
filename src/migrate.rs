//! Migrating a deprecated connection to the type that replaces it: a draft of the new
//! type carrying what fits, then — only once it is saved — its agents' attachments
//! moved across (Inbound kept) and the old connection stopped, left in Deprecated
//! Channels for the operator to delete.

use crate::channels::{Channels, Draft, Saved, ServiceError, channel_type};
use crate::model::{Connection, DesiredState};

pub struct Migrated {
    pub saved: Saved,
    /// The agents whose cards now show the new connection.
    pub agents: Vec<String>,
}

fn invalid(message: String) -> ServiceError {
    use crate::model::validation::{FieldError, Report};
    ServiceError::Invalid(Report {
        errors: vec![FieldError {
            field: "type".into(),
            message,
        }],
        warnings: Vec::new(),
    })
}

/// The new type's form, prefilled: the name with a suffix, the description, the fields
/// and variables both types have. Secrets are not carried: the new platform has
/// credentials of its own. Err says why there is nothing to migrate to.
pub fn draft_for(old: &Connection) -> Result<Draft, String> {
    let from = channel_type(&old.type_key).map_err(|e| e.to_string())?;
    let Some(target) = from.migrates_to.as_deref() else {
        return Err(format!(
            "'{}' is a {} connection, which is not deprecated: there is nothing to migrate to",
            old.name, from.name
        ));
    };
    let to = channel_type(target).map_err(|e| e.to_string())?;
    let mut draft = Draft {
        type_key: to.key.clone(),
        name: format!("{} ({})", old.name, to.name),
        description: old.description.clone(),
        ..Draft::default()
    };
    for (k, v) in &old.fields {
        if to.field(k).is_some_and(|f| !f.secret) {
            draft.fields.insert(k.clone(), v.clone());
        }
    }
    draft.env = old
        .env
        .iter()
        .filter(|e| to.env_var(&e.name).is_some())
        .cloned()
        .collect();
    // A value the new type would refuse (another platform's id format) is left out,
    // not carried into an error.
    let report = crate::model::validation::validate(
        to,
        &crate::model::validation::Form {
            name: &draft.name,
            description: &draft.description,
            fields: &draft.fields,
            secrets: Default::default(),
            env: &draft.env,
        },
    );
    for e in &report.errors {
        draft.fields.remove(&e.field);
    }
    Ok(draft)
}

impl Channels {
    pub fn migration_draft(&self, old: &Connection) -> Result<Draft, ServiceError> {
        draft_for(old).map_err(invalid)
    }

    /// Saves the new connection, then moves the old one's attachments to it and stops
    /// the old one. A draft that does not validate changes nothing.
    pub async fn migrate(&self, old: &Connection, draft: &Draft) -> Result<Migrated, ServiceError> {
        let from = channel_type(&old.type_key)?;
        if from.migrates_to.as_deref() != Some(draft.type_key.as_str()) {
            return Err(invalid(format!(
                "'{}' migrates to {}, not to {}",
                old.name,
                from.migrates_to.as_deref().unwrap_or("nothing"),
                draft.type_key
            )));
        }
        let saved = self.add(draft).await?;
        let new = &saved.connection;
        let mut agents = Vec::new();
        for (agent, ch) in self.store().connection_agents(old.id).await? {
            if ch.detached {
                continue;
            }
            self.attach_connection(&agent, new, ch.inbound).await?;
            self.detach_connection(&agent, old).await?;
            agents.push(agent.name.clone());
        }
        if old.desired == DesiredState::Running {
            self.set_desired(old, DesiredState::Stopped).await?;
        }
        let moved = if agents.is_empty() {
            "it was attached to no agent".to_string()
        } else {
            format!(
                "agent(s) {} now use it (restart them to apply)",
                agents
                    .iter()
                    .map(|a| format!("'{a}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        self.log(
            old.id,
            "INFO",
            format!(
                "Migrated to '{}' by {}: {moved}; this connection is stopped and stays in \
                 Deprecated Channels until you delete it",
                new.name,
                self.operator().name
            ),
        )
        .await;
        self.log(
            new.id,
            "INFO",
            format!("Migrated from '{}' ({}): {moved}", old.name, from.name),
        )
        .await;
        Ok(Migrated { saved, agents })
    }
}
