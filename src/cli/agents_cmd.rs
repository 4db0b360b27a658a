//! `flametree agents …` and `flametree send`.

use super::view::{print_json, table};
use super::{AgentArgs, AgentsCmd, Failure, ResponderArgs, SpeechArgs};
use crate::agents::responder::OpenAi;
use crate::agents::service::AgentEdit;
use crate::agents::speech::{SpeechConfig, SpeechEdit};
use crate::agents::{ResponderConfig, Rule, Rules};
use crate::catalog::Catalog;
use crate::channels::ServiceError;
use crate::context::Context;
use crate::model::Agent;
use crate::secrets::SecretString;
use serde_json::json;
use std::io::Read;
use tracing::Instrument;

pub async fn run(ctx: &Context, cmd: AgentsCmd, json: bool) -> Result<(), Failure> {
    let ch = &ctx.channels;
    match cmd {
        AgentsCmd::List => {
            let agents = ch.agents().await?;
            if json {
                let mut out = Vec::new();
                for a in &agents {
                    out.push(agent_json(ctx, a).await?);
                }
                print_json(&out);
                return Ok(());
            }
            let mut rows = Vec::new();
            for a in &agents {
                let channels = ch.agent_connections(a).await?;
                let live = channels.iter().filter(|(_, c)| !c.detached).count();
                rows.push(vec![
                    a.name.clone(),
                    a.status.to_string(),
                    if a.restart_pending() {
                        "restart pending".into()
                    } else {
                        String::new()
                    },
                    format!("{live} channel(s)"),
                    responder_summary(a),
                ]);
            }
            say!(
                "{}",
                table(&["NAME", "STATUS", "", "CHANNELS", "RESPONDER"], &rows)
            );
            Ok(())
        }
        AgentsCmd::Create(args) => {
            let edit = edit_from(&args, true)?;
            let a = ch
                .create_agent(&args.name.clone().unwrap_or_default(), edit)
                .await?;
            print_agent(ctx, &a, json, "Created").await
        }
        AgentsCmd::Show { name } => {
            let a = ch.find_agent(&name).await?;
            print_agent(ctx, &a, json, "").await
        }
        AgentsCmd::Edit { agent, args } => {
            let a = ch.find_agent(&agent).await?;
            let mut edit = edit_from(&args, false)?;
            edit.widget = edit.widget.map(|w| merge_widget(&a, w));
            let replaced = crate::agents::service::responder_replacement(&a, &edit);
            let a = ch.edit_agent(&a, edit).await?;
            if let Some(r) = replaced {
                esay!("warning: {r}");
            }
            print_agent(ctx, &a, json, "Saved").await
        }
        AgentsCmd::Delete { name, yes } => {
            let a = ch.find_agent(&name).await?;
            if !yes {
                return Err(Failure::invalid(format!(
                    "'{}' was not deleted: pass --yes to delete the agent",
                    a.name
                )));
            }
            ch.delete_agent(&a).await?;
            say!("Deleted agent '{}'.", a.name);
            Ok(())
        }
        AgentsCmd::Start { name } => run_agent(ctx, &name, true, json).await,
        AgentsCmd::Stop { name } => run_agent(ctx, &name, false, json).await,
        AgentsCmd::Attach {
            name,
            connection,
            inbound,
        } => {
            let a = ch.find_agent(&name).await?;
            let c = ch.find(&connection).await?;
            let warnings = ch.attach_connection(&a, &c, inbound).await?;
            for w in warnings {
                esay!("warning: {w}");
            }
            say!(
                "Attached '{}' to agent '{}' with Inbound {}. Restart the agent (stop, then start) for it to apply.",
                c.name,
                a.name,
                if inbound { "on" } else { "off" }
            );
            Ok(())
        }
        AgentsCmd::Detach { name, connection } => {
            let a = ch.find_agent(&name).await?;
            let c = ch.find(&connection).await?;
            ch.detach_connection(&a, &c).await?;
            say!(
                "Detached '{}' from agent '{}'. Restart the agent for it to apply.",
                c.name,
                a.name
            );
            Ok(())
        }
    }
}

async fn run_agent(ctx: &Context, name: &str, start: bool, json: bool) -> Result<(), Failure> {
    let a = ctx.channels.find_agent(name).await?;
    let a = ctx.channels.run_agent(&a, start).await?;
    print_agent(ctx, &a, json, if start { "Started" } else { "Stopped" }).await
}

fn responder_summary(a: &Agent) -> String {
    match serde_json::from_str::<ResponderConfig>(&a.responder) {
        Ok(ResponderConfig::Rules(r)) => format!("rules ({} keyword rule(s))", r.rules.len()),
        Ok(ResponderConfig::OpenAi(o)) => {
            format!("OpenAI-compatible: {} at {}", o.model, o.base_url)
        }
        Err(_) => "rules (built-in defaults)".into(),
    }
}

/// The responder as scripts see it: the API key only as set / not set.
fn responder_json(a: &Agent) -> serde_json::Value {
    match serde_json::from_str::<ResponderConfig>(&a.responder) {
        Ok(ResponderConfig::OpenAi(o)) => json!({
            "kind": "open_ai", "base_url": o.base_url, "model": o.model,
            "api_key": o.api_key.as_ref().map(|_| crate::secrets::MASK),
            "system_prompt": o.system_prompt, "history": o.history,
            "timeout_secs": o.timeout_secs, "fallback": o.fallback,
        }),
        Ok(r) => serde_json::to_value(r).unwrap_or_default(),
        Err(_) => serde_json::to_value(ResponderConfig::default()).unwrap_or_default(),
    }
}

async fn agent_json(ctx: &Context, a: &Agent) -> Result<serde_json::Value, ServiceError> {
    let channels = ctx.channels.agent_connections(a).await?;
    let list: Vec<_> = channels
        .iter()
        .map(|(c, ch)| {
            json!({
                "connection": c.name, "type": c.type_key, "inbound": ch.inbound,
                "applied_inbound": ch.applied_inbound, "detached": ch.detached,
            })
        })
        .collect();
    Ok(json!({
        "name": a.name, "description": a.description, "status": a.status.as_str(),
        "restart_pending": a.restart_pending(), "version": a.version,
        "responder": responder_json(a),
        "widget": widget_json(ctx, a).await?,
        "speech": SpeechConfig::parse(&a.speech).to_json(),
        "channels": list,
    }))
}

async fn print_agent(ctx: &Context, a: &Agent, json: bool, verb: &str) -> Result<(), Failure> {
    if json {
        print_json(&agent_json(ctx, a).await?);
        return Ok(());
    }
    if !verb.is_empty() {
        say!("{verb} agent '{}'.", a.name);
    }
    say!("Name:        {}", a.name);
    say!("Description: {}", a.description);
    say!(
        "Status:      {}{}",
        a.status,
        if a.restart_pending() {
            " — restart pending: Stop agent, then Start agent, for saved changes to apply"
        } else {
            ""
        }
    );
    say!("Responder:   {}", responder_summary(a));
    say!("Speech:      {}", SpeechConfig::parse(&a.speech).summary());
    say!("Communication channels:");
    let channels = ctx.channels.agent_connections(a).await?;
    if channels.is_empty() {
        say!(
            "  none: `flametree agents attach \"{}\" --connection NAME --inbound`",
            a.name
        );
    }
    for (c, ch) in channels {
        let ty = Catalog::get()
            .find(&c.type_key)
            .map(|t| t.display_name())
            .unwrap_or_default();
        let mut state = format!("Inbound {}", if ch.inbound { "on" } else { "off" });
        if ch.detached {
            state = "detached (until the agent restarts)".into();
        } else if ch.inbound != ch.applied_inbound && a.status == crate::model::Status::Running {
            state.push_str(" (applies at restart)");
        }
        say!("  {} · {ty} · {state} · {}", c.name, c.status);
    }
    print_widget(ctx, a).await
}

/// The public base the widget's URLs live under (`http.public_url`, or the listen address).
fn public_base(ctx: &Context) -> String {
    ctx.loaded.config.http.public_base(None)
}

/// The settings as stored, plus where the widget is served once it is on.
async fn widget_json(ctx: &Context, a: &Agent) -> Result<serde_json::Value, ServiceError> {
    let mut w = serde_json::from_str::<serde_json::Value>(&a.widget).unwrap_or_default();
    if !w.is_object() {
        w = json!({});
    }
    let enabled = crate::widget::Settings::of(a).enabled();
    w["enabled"] = json!(enabled);
    if let Some(c) = crate::widget::connection_of(&ctx.channels, a).await?
        && enabled
    {
        let base = public_base(ctx);
        w["script_url"] = json!(crate::widget::script_url(&base, &c.hook_id));
        w["chat_url"] = json!(crate::widget::chat_url(&base, &c.hook_id));
        w["snippet"] = json!(crate::widget::snippet(&base, &c.hook_id));
        w["connection"] = json!(c.name);
    }
    Ok(w)
}

async fn print_widget(ctx: &Context, a: &Agent) -> Result<(), Failure> {
    let s = crate::widget::Settings::of(a);
    if !s.enabled() {
        say!(
            "Web Widget:  off (turn it on with `flametree agents edit \"{}\" --widget \
             allowed_origins=https://www.example.com`)",
            a.name
        );
        return Ok(());
    }
    say!(
        "Web Widget:  on for {} · title \"{}\" · {} · {}",
        s.origins.join(", "),
        s.title,
        s.colour,
        s.position
    );
    if !s.greeting.is_empty() {
        say!("  Greeting:  {}", s.greeting);
    }
    let Some(c) = crate::widget::connection_of(&ctx.channels, a).await? else {
        say!("  Start the agent to get the widget's snippet.");
        return Ok(());
    };
    let base = public_base(ctx);
    say!("  Paste into your site's pages:");
    say!("  {}", crate::widget::snippet(&base, &c.hook_id));
    say!(
        "  Chat endpoint: {}",
        crate::widget::chat_url(&base, &c.hook_id)
    );
    say!("  Its log: flametree channels logs \"{}\"", c.name);
    if a.status != crate::model::Status::Running {
        say!("  The widget says it is offline until the agent is started.");
    }
    Ok(())
}

/// Settings given on `agents edit` change only the named ones (an empty value clears one).
fn merge_widget(a: &Agent, given: serde_json::Value) -> serde_json::Value {
    let mut w = serde_json::from_str::<serde_json::Value>(&a.widget).unwrap_or_default();
    if !w.is_object() {
        w = json!({});
    }
    if let (Some(obj), Some(given)) = (w.as_object_mut(), given.as_object()) {
        for (k, v) in given {
            if v.as_str().is_some_and(|s| s.trim().is_empty()) {
                obj.remove(k);
            } else {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    w
}

/// Builds the change from the options; responder options replace the responder.
fn edit_from(args: &AgentArgs, creating: bool) -> Result<AgentEdit, Failure> {
    let mut edit = AgentEdit {
        name: if creating { None } else { args.name.clone() },
        description: args.description.clone(),
        ..AgentEdit::default()
    };
    if creating && args.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(Failure::invalid("--name is required: the agent's name"));
    }
    edit.responder = responder_from(&args.responder)?;
    if args.responder.api_key_stdin {
        let mut key = String::new();
        std::io::stdin().read_to_string(&mut key).map_err(|e| {
            Failure::invalid(format!("cannot read the API key from standard input: {e}"))
        })?;
        edit.api_key = Some(SecretString::new(key.trim()));
    }
    edit.speech = speech_from(&args.speech)?;
    if !args.widget.is_empty() {
        let spec = Catalog::get().find("web_widget");
        let mut obj = serde_json::Map::new();
        for raw in &args.widget {
            let (k, v) = raw
                .split_once('=')
                .ok_or_else(|| Failure::invalid(format!("--widget '{raw}' is not FIELD=VALUE")))?;
            if spec.is_some_and(|t| t.field(k.trim()).is_none()) {
                let keys: Vec<&str> = spec
                    .map(|t| t.fields.iter().map(|f| f.key.as_str()).collect())
                    .unwrap_or_default();
                return Err(Failure::invalid(format!(
                    "the Web Widget has no setting '{k}': its settings are {}",
                    keys.join(", ")
                )));
            }
            obj.insert(k.trim().to_string(), json!(v));
        }
        edit.widget = Some(serde_json::Value::Object(obj));
    }
    Ok(edit)
}

/// The speech options as an edit; none given: no change.
fn speech_from(s: &SpeechArgs) -> Result<Option<SpeechEdit>, Failure> {
    let edit = SpeechEdit {
        stt_url: s.stt_url.clone(),
        stt_model: s.stt_model.clone(),
        tts_url: s.tts_url.clone(),
        tts_model: s.tts_model.clone(),
        tts_voice: s.tts_voice.clone(),
        key: None,
        clear: s.no_speech,
    };
    let key = if s.speech_key_stdin {
        let mut key = String::new();
        std::io::stdin().read_to_string(&mut key).map_err(|e| {
            Failure::invalid(format!(
                "cannot read the speech key from standard input: {e}"
            ))
        })?;
        if key.trim().is_empty() {
            return Err(Failure::invalid(
                "--speech-key-stdin read an empty key: pipe the key in, e.g. `printenv OPENAI_API_KEY | flametree agents edit …`",
            ));
        }
        Some(SecretString::new(key.trim()))
    } else {
        None
    };
    let given = edit.stt_url.is_some()
        || edit.stt_model.is_some()
        || edit.tts_url.is_some()
        || edit.tts_model.is_some()
        || edit.tts_voice.is_some()
        || edit.clear
        || key.is_some();
    Ok(given.then_some(SpeechEdit { key, ..edit }))
}

fn responder_from(r: &ResponderArgs) -> Result<Option<ResponderConfig>, Failure> {
    if let Some(base) = &r.openai_base_url {
        let model = r.model.clone().ok_or_else(|| {
            Failure::invalid("--model is required with --openai-base-url (e.g. gpt-4o-mini)")
        })?;
        return Ok(Some(ResponderConfig::OpenAi(OpenAi {
            base_url: base.clone(),
            model,
            api_key: None,
            system_prompt: r.system_prompt.clone().unwrap_or_default(),
            history: r.history.unwrap_or(10),
            timeout_secs: r.timeout_secs.unwrap_or(20),
            fallback: r.fallback.clone().unwrap_or_default(),
        })));
    }
    if r.greeting.is_none() && r.rule.is_empty() && r.fallback.is_none() {
        return Ok(None);
    }
    let mut rules = Rules::default();
    if let Some(g) = &r.greeting {
        rules.greeting = g.clone();
    }
    if let Some(f) = &r.fallback {
        rules.fallback = f.clone();
    }
    for raw in &r.rule {
        let (k, v) = raw.split_once('=').ok_or_else(|| {
            Failure::invalid(format!(
                "--rule '{raw}' is not KEYWORD=REPLY (e.g. --rule 'price=See example.com/prices')"
            ))
        })?;
        rules.rules.push(Rule {
            keyword: k.trim().to_string(),
            reply: v.trim().to_string(),
        });
    }
    Ok(Some(ResponderConfig::Rules(rules)))
}

/// `flametree send`: one outbound message through a connection, on the path the
/// agents' replies take (the connector's send, the reply retry policy, the outbound
/// record that later delivery reports are matched to).
pub async fn send(
    ctx: &Context,
    connection: &str,
    to: &str,
    account: Option<&str>,
    text: &str,
    json: bool,
) -> Result<(), Failure> {
    let ch = &ctx.channels;
    let c = ch.find(connection).await?;
    let ty = crate::channels::channel_type(&c.type_key)?;
    if !crate::connectors::can_send(&c.type_key) {
        return Err(Failure::invalid(format!(
            "sending through {} is not part of this build yet",
            ty.name
        )));
    }
    ch.operator()
        .require_editor(&format!("send through '{}'", c.name))
        .map_err(ServiceError::from)?;
    let fail = |message: String| Failure {
        code: super::exit::FAILURE,
        message,
    };
    let (pipe, cfg) = open_line(ctx, ch, &c).map_err(fail)?;
    let connector = crate::connectors::open(cfg).map_err(|e| fail(e.to_string()))?;
    connector
        .check_recipient(to)
        .map_err(|why| Failure::invalid(format!("--to: {why}")))?;
    let out = crate::connectors::Outbound {
        account: account.unwrap_or(""),
        to: to.trim(),
        text,
        in_reply_to: None,
        context: None,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let sent = crate::runtime::pipeline::send(&pipe, c.id, connector.as_ref(), &out, &stop)
        .instrument(pipe.span(c.id))
        .await;
    // Who sent, through which connection, to whom: never the text.
    let outcome = match &sent {
        Ok(id) => format!("to {} (message {id})", out.to),
        Err(_) => format!("to {} (failed)", out.to),
    };
    let note = crate::store::AuditNote::new(&ch.operator().name, "send", outcome);
    let audited = ch
        .store()
        .record_audit(ch.tenant().id, &note, "connection", c.id, &c.name)
        .await;
    let message_id = match sent {
        Ok(id) => id,
        Err(e) => {
            pipe.flush().await;
            return Err(fail(e.to_string()));
        }
    };
    audited.map_err(ServiceError::from)?;
    pipe.log(
        c.id,
        "INFO",
        format!(
            "outbound message to {} sent by {} (message {message_id})",
            out.to,
            ch.operator().name
        ),
    );
    pipe.flush().await;
    if json {
        print_json(&json!({"connection": c.name, "to": out.to, "message_id": message_id}));
    } else {
        say!(
            "Sent to {} through '{}' (message {message_id}).",
            out.to,
            c.name
        );
    }
    Ok(())
}

/// A connection opened by a command that speaks through it (`send`, `call`): a log
/// pipeline of its own and the connection's configuration, every secret in it kept out
/// of this process's diagnostics.
pub(super) fn open_line(
    ctx: &Context,
    ch: &crate::channels::Channels,
    c: &crate::model::Connection,
) -> Result<
    (
        std::sync::Arc<crate::runtime::Pipeline>,
        crate::connectors::ConnConfig,
    ),
    String,
> {
    let pipe = crate::runtime::Pipeline::start(
        std::sync::Arc::new(ch.clone()),
        ctx.loaded.config.logs.keep_per_connection,
    );
    let public = ctx.loaded.config.http.public_base(None);
    let cfg = crate::runtime::open_config_with(&pipe, &public, c)?;
    for s in cfg.masked() {
        crate::runtime::logs::protect_in_diagnostics(s);
    }
    Ok((pipe, cfg))
}
