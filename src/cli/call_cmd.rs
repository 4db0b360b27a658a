//! `flametree call`: an outbound voice call, held by the connection's agent like an
//! inbound one. Through Twilio this command places it itself (Twilio fetches the
//! call's TwiML from the connection's webhook). Through SIP it queues a request: the
//! line's user agent (its registration and socket) lives in whichever process runs the
//! connection, which dials it. Either way the call is audited like `send` and the
//! command waits for how it went, reporting both alike.

use super::Failure;
use super::agents_cmd::open_line;
use super::view::print_json;
use crate::channels::ServiceError;
use crate::connectors::{self, Family, twilio};
use crate::context::Context;
use crate::model::{CallState, Connection, DesiredState};
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

/// How a call stands, as either path reads it (Twilio's status words).
#[derive(Default)]
struct Standing {
    status: String,
    duration_secs: Option<u64>,
    /// The provider's words for how it ended ("486 Busy Here"), when it gives them.
    reason: String,
    /// It was answered (an end other than completed cut a conversation off).
    answered: bool,
}

impl Standing {
    fn ended(&self) -> bool {
        CallState::parse(&self.status).is_some_and(CallState::ended)
    }
}

/// A call placed (Twilio) or queued (SIP), to be looked at until it ends.
enum Placed {
    Twilio {
        line: Box<twilio::Twilio>,
        sid: String,
    },
    Sip {
        store: std::sync::Arc<dyn crate::store::Store>,
        request: i64,
        /// SIP's Call-ID, once the process running the line dialed it.
        call_id: String,
        /// When the claimer's liveness was last looked at.
        checked: Option<Instant>,
    },
}

impl Placed {
    /// What the call's id is known as so far.
    fn id(&self) -> &str {
        match self {
            Placed::Twilio { sid, .. } => sid,
            Placed::Sip { call_id, .. } => call_id,
        }
    }

    /// How often its state is looked at.
    fn pace(&self) -> Duration {
        match self {
            // Twilio's REST API is the source of the outcome; once a second is its pace.
            Placed::Twilio { .. } => Duration::from_secs(1),
            // A row in our own database: cheap, and the outcome shows without delay.
            Placed::Sip { .. } => Duration::from_millis(200),
        }
    }

    /// The call as it stands now; `None` when it could not be read this time.
    async fn look(&mut self) -> Result<Option<Standing>, Failure> {
        match self {
            Placed::Twilio { line, sid } => match line.call_state(sid).await {
                Ok(s) => Ok(Some(Standing {
                    status: s.status,
                    duration_secs: s.duration_secs,
                    ..Standing::default()
                })),
                Err(connectors::ConnectorError::Transient { .. }) => Ok(None),
                Err(e) => Err(fail(e.to_string())),
            },
            Placed::Sip {
                store,
                request,
                call_id,
                checked,
            } => {
                let mut r = read_request(store.as_ref(), *request).await?;
                let claimer = r.claimed_by.clone().filter(|_| !r.state.ended());
                if let Some(claimer) = claimer
                    && checked.is_none_or(|at| at.elapsed() >= CLAIMER_CHECK)
                {
                    *checked = Some(Instant::now());
                    if claimer_gone(store.as_ref(), &claimer).await?
                        && store
                            .end_abandoned_call(*request, &claimer)
                            .await
                            .map_err(ServiceError::from)?
                    {
                        r = read_request(store.as_ref(), *request).await?;
                    }
                }
                call_id.clone_from(&r.call_id);
                Ok(Some(Standing {
                    status: r.state.as_str().to_string(),
                    duration_secs: r.duration_secs.and_then(|d| u64::try_from(d).ok()),
                    reason: r.reason,
                    answered: r.answered_at.is_some(),
                }))
            }
        }
    }
}

async fn read_request(
    store: &dyn crate::store::Store,
    id: i64,
) -> Result<crate::model::CallRequest, Failure> {
    match store.call_request(id).await.map_err(ServiceError::from)? {
        Some(r) => Ok(r),
        None => Err(fail(format!(
            "call request {id} is gone (the connection was deleted?)"
        ))),
    }
}

/// How often a waiting command asks whether the process dialing its call still lives.
const CLAIMER_CHECK: Duration = Duration::from_secs(1);

/// Whether the process that claimed a call is gone (killed, or its host lost): then
/// nothing will move the request any more, and waiting on would only hide that.
async fn claimer_gone(store: &dyn crate::store::Store, claimer: &str) -> Result<bool, Failure> {
    let processes = store.processes().await.map_err(ServiceError::from)?;
    let host = whoami::hostname().unwrap_or_default();
    Ok(crate::runtime::presence::gone(claimer, &processes, &host))
}

fn fail(message: String) -> Failure {
    Failure {
        code: super::exit::FAILURE,
        message,
    }
}

pub async fn call(ctx: &Context, args: CallArgs<'_>, json: bool) -> Result<(), Failure> {
    let ch = &ctx.channels;
    let c = ch.find(args.connection).await?;
    let ty = crate::channels::channel_type(&c.type_key)?;
    let family = Family::of_type(&c.type_key);
    let callee: fn(&str) -> Result<(), String> = match family {
        Some(Family::Twilio) => connectors::phone_recipient,
        Some(Family::Sip) => connectors::sip::callee,
        _ => {
            return Err(Failure::invalid(format!(
                "'{}' is a {} connection: `flametree call` places calls through Twilio and \
                 SIP connections",
                c.name, ty.name
            )));
        }
    };
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
    let to = args.to.trim();
    callee(to).map_err(|why| Failure::invalid(format!("--to: {why}")))?;
    let mut placed = match family {
        Some(Family::Sip) => queue_sip(ctx, &c, to, args.text).await?,
        _ => place_twilio(ctx, &c, to, args.text).await?,
    };
    if !json {
        match &placed {
            Placed::Twilio { sid, .. } => {
                say!("Calling {to} through '{}' (call {sid}).", c.name)
            }
            Placed::Sip { request, .. } => {
                say!("Calling {to} through '{}' (request {request}).", c.name)
            }
        }
    }
    let mut standing = Standing::default();
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    while args.wait > 0 && Instant::now() < deadline {
        if let Some(now) = placed.look().await? {
            standing = now;
            if standing.ended() {
                break;
            }
        }
        tokio::time::sleep(placed.pace()).await;
    }
    if args.wait > 0 && !standing.ended() {
        nobody_took_it(&mut placed, &c, args.wait).await?;
    }
    report(&c, to, &placed, &standing, args.wait, json)
}

/// Twilio: the call is placed here, through the provider's REST API.
async fn place_twilio(
    ctx: &Context,
    c: &Connection,
    to: &str,
    text: Option<&str>,
) -> Result<Placed, Failure> {
    let ch = &ctx.channels;
    let (pipe, cfg) = open_line(ctx, ch, c).map_err(fail)?;
    let line = twilio::open_twilio(cfg).map_err(|e| fail(e.to_string()))?;
    let placed = line.place_call(to, text).await;
    let audited = audit(
        ctx,
        c,
        match &placed {
            Ok(sid) => format!("to {to} (call {sid})"),
            Err(_) => format!("to {to} (failed)"),
        },
    )
    .await;
    let sid = match placed {
        Ok(sid) => sid,
        Err(e) => {
            pipe.log(c.id, "WARN", format!("outbound call to {to} failed: {e}"));
            pipe.flush().await;
            return Err(fail(e.to_string()));
        }
    };
    audited?;
    // Recorded like a sent message, so the call's status callback is matched to it.
    pipe.writer
        .submit(WriteOp::Outbound(Box::new(crate::store::SentRecord {
            connection_id: c.id,
            provider_id: sid.clone(),
            account: String::new(),
            customer: to.to_string(),
            in_reply_to: String::new(),
        })));
    pipe.log(
        c.id,
        "INFO",
        format!(
            "outbound call to {to} placed by {} (call {sid})",
            ch.operator().name
        ),
    );
    pipe.flush().await;
    Ok(Placed::Twilio {
        line: Box::new(line),
        sid,
    })
}

/// SIP: the call is queued for the process that runs the line, which dials it (its
/// log shows the call from there on).
async fn queue_sip(
    ctx: &Context,
    c: &Connection,
    to: &str,
    text: Option<&str>,
) -> Result<Placed, Failure> {
    let store = ctx.channels.store().clone();
    let text = text.map(str::trim).filter(|t| !t.is_empty());
    let request = store
        .request_call(c.id, to, text, &ctx.channels.operator().name)
        .await
        .map_err(ServiceError::from)?;
    audit(ctx, c, format!("to {to} (request {request})")).await?;
    Ok(Placed::Sip {
        store,
        request,
        call_id: String::new(),
        checked: None,
    })
}

/// Who called whom through which connection: never the words.
async fn audit(ctx: &Context, c: &Connection, outcome: String) -> Result<(), Failure> {
    let ch = &ctx.channels;
    let note = crate::store::AuditNote::new(&ch.operator().name, "call", outcome);
    ch.store()
        .record_audit(ch.tenant().id, &note, "connection", c.id, &c.name)
        .await
        .map_err(|e| ServiceError::from(e).into())
}

/// The wait ended before the call did. A SIP request nobody claimed means no process
/// runs the line: it is withdrawn (a call placed whenever one starts would surprise
/// both sides) and the command says so.
async fn nobody_took_it(placed: &mut Placed, c: &Connection, wait: u64) -> Result<(), Failure> {
    let Placed::Sip { store, request, .. } = placed else {
        return Ok(());
    };
    let why = format!("nobody picked it up within {wait} s");
    let withdrawn = store
        .cancel_queued_call(*request, &why)
        .await
        .map_err(ServiceError::from)?;
    if withdrawn {
        return Err(fail(format!(
            "the call was not placed: {why}, so no flametree process runs '{}' (its agent \
             runs in a console or `flametree serve` that is not running now, or on no host \
             that reaches this database). Start one, then call again",
            c.name
        )));
    }
    Ok(())
}

/// The outcome, alike for both paths.
fn report(
    c: &Connection,
    to: &str,
    placed: &Placed,
    standing: &Standing,
    wait: u64,
    json: bool,
) -> Result<(), Failure> {
    let status = match standing.status.as_str() {
        "" => "queued",
        s => s,
    };
    if json {
        print_json(&json!({
            "connection": c.name,
            "to": to,
            "call_sid": placed.id(),
            "status": status,
            "duration_secs": standing.duration_secs,
            "reason": standing.reason,
        }));
    }
    match status {
        "completed" => {
            if !json {
                let how = match standing.reason.as_str() {
                    "" => String::new(),
                    r => format!(" ({r})"),
                };
                say!(
                    "The call to {to} ended after {} s{how}.",
                    standing.duration_secs.unwrap_or(0)
                );
            }
            Ok(())
        }
        s @ ("busy" | "no-answer" | "failed" | "canceled") if standing.answered => Err(fail(
            format!("the call to {to} was cut off ({s}): {}", standing.reason),
        )),
        s @ ("busy" | "no-answer" | "failed" | "canceled") => {
            let words = match (s, placed) {
                ("failed", Placed::Sip { .. }) => "the call could not be placed",
                _ => twilio::outcome_words(s),
            };
            let reason = match standing.reason.as_str() {
                "" => String::new(),
                r => format!(" ({r})"),
            };
            Err(fail(format!(
                "the call to {to} did not connect ({s}): {words}{reason}"
            )))
        }
        _ if wait == 0 => Ok(()),
        other => {
            if !json {
                say!(
                    "The call is {other} after {wait} s; its outcome will be in the \
                     connection's log (flametree channels logs \"{}\").",
                    c.name
                );
            }
            Ok(())
        }
    }
}
