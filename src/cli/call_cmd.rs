//! `flametree call`: an outbound voice call through a Twilio connection. Twilio fetches
//! the call's TwiML from the connection's webhook, so the agent holds the same
//! conversation as on an inbound call; this command places the call, audits it like
//! `send`, and waits for how it went.

use super::Failure;
use super::agents_cmd::open_line;
use super::view::print_json;
use crate::channels::ServiceError;
use crate::connectors::{self, Family, twilio};
use crate::context::Context;
use crate::model::DesiredState;
use crate::store::WriteOp;
use serde_json::json;
use std::time::{Duration, Instant};

pub struct CallArgs<'a> {
    pub connection: &'a str,
    pub to: &'a str,
    pub text: Option<&'a str>,
    /// Seconds to wait for the outcome; 0: only place the call.
    pub wait: u64,
}

pub async fn call(ctx: &Context, args: CallArgs<'_>, json: bool) -> Result<(), Failure> {
    let ch = &ctx.channels;
    let c = ch.find(args.connection).await?;
    let ty = crate::channels::channel_type(&c.type_key)?;
    if Family::of_type(&c.type_key) != Some(Family::Twilio) {
        return Err(Failure::invalid(format!(
            "'{}' is a {} connection: `flametree call` places calls through Twilio connections",
            c.name, ty.name
        )));
    }
    ch.operator()
        .require_editor(&format!("call through '{}'", c.name))
        .map_err(ServiceError::from)?;
    if c.desired != DesiredState::Running {
        return Err(Failure::invalid(format!(
            "'{}' runs with its agent and no running agent has it, so nobody would talk on \
             the call: attach it to an agent (Inbound off is enough for outbound calls) and \
             start the agent",
            c.name
        )));
    }
    let fail = |message: String| Failure {
        code: super::exit::FAILURE,
        message,
    };
    let (pipe, cfg) = open_line(ctx, ch, &c).map_err(fail)?;
    let line = twilio::open_twilio(cfg).map_err(|e| fail(e.to_string()))?;
    let to = args.to.trim();
    connectors::phone_recipient(to).map_err(|why| Failure::invalid(format!("--to: {why}")))?;
    let placed = line.place_call(to, args.text).await;
    // Who called whom through which connection: never the words.
    let outcome = match &placed {
        Ok(sid) => format!("to {to} (call {sid})"),
        Err(_) => format!("to {to} (failed)"),
    };
    let note = crate::store::AuditNote::new(&ch.operator().name, "call", outcome);
    let audited = ch
        .store()
        .record_audit(ch.tenant().id, &note, "connection", c.id, &c.name)
        .await;
    let sid = match placed {
        Ok(sid) => sid,
        Err(e) => {
            pipe.log(c.id, "WARN", format!("outbound call to {to} failed: {e}"));
            pipe.flush().await;
            return Err(fail(e.to_string()));
        }
    };
    audited.map_err(ServiceError::from)?;
    // Recorded like a sent message, so the call's status callback is matched to it.
    pipe.writer.submit(WriteOp::Outbound {
        connection_id: c.id,
        provider_id: sid.clone(),
        account: String::new(),
        customer: to.to_string(),
        in_reply_to: String::new(),
    });
    pipe.log(
        c.id,
        "INFO",
        format!(
            "outbound call to {to} placed by {} (call {sid})",
            ch.operator().name
        ),
    );
    pipe.flush().await;
    if !json {
        say!("Calling {to} through '{}' (call {sid}).", c.name);
    }
    let mut state = None;
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    while args.wait > 0 && Instant::now() < deadline {
        match line.call_state(&sid).await {
            Ok(s) if s.ended() => {
                state = Some(s);
                break;
            }
            Ok(s) => state = Some(s),
            Err(crate::connectors::ConnectorError::Transient { .. }) => {}
            Err(e) => return Err(fail(e.to_string())),
        }
        // Twilio's REST API is the source of the outcome; once a second is its pace.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let status = state.as_ref().map(|s| s.status.clone()).unwrap_or_default();
    let duration = state.as_ref().and_then(|s| s.duration_secs);
    if json {
        print_json(&json!({
            "connection": c.name,
            "to": to,
            "call_sid": sid,
            "status": if status.is_empty() { "queued" } else { status.as_str() },
            "duration_secs": duration,
        }));
    }
    match status.as_str() {
        "completed" => {
            if !json {
                say!("The call to {to} ended after {} s.", duration.unwrap_or(0));
            }
            Ok(())
        }
        s @ ("busy" | "no-answer" | "failed" | "canceled") => Err(fail(format!(
            "the call to {to} did not connect ({s}): {}",
            twilio::outcome_words(s)
        ))),
        _ if args.wait == 0 => Ok(()),
        other => {
            if !json {
                say!(
                    "The call is {} after {} s; its outcome will be in the connection's log \
                     (flametree channels logs \"{}\").",
                    if other.is_empty() { "queued" } else { other },
                    args.wait,
                    c.name
                );
            }
            Ok(())
        }
    }
}
