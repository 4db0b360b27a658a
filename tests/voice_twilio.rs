//! Twilio Voice through the ingress against the Twilio sandbox, on SQLite and
//! PostgreSQL: signed webhooks, whole calls answered by the agent, retries, escaping,
//! silence, the reply budget, the credential check, the number's voice URL, and
//! `flametree call`.

mod common;

use common::Be;
use common::hooks::{Host, draft, host, wait_status};
use common::runtime::log_text;
use flametree::agents::responder::OpenAi;
use flametree::agents::service::AgentEdit;
use flametree::agents::{ResponderConfig, Rule, Rules};
use flametree::model::{Connection, Status};
use flametree::sandbox::openai::OpenAiSandbox;
use flametree::sandbox::twilio::{Callee, Transcript, Turn, TwilioSandbox};
use flametree::store::LedgerState;
use std::time::Duration;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const WRONG_TOKEN: &str = "fedcba9876543210fedcba9876543210";
const NUMBER: &str = "+14155550100";
const CALLER: &str = "+14155550199";
/// What the number did before flametree took it over.
const BEFORE: &str = "https://demo.twilio.com/welcome/voice/";

const GREETING: &str = "Hello, this is the bakery. How can I help?";
const HOURS: &str = "We are open from 8 to 6.";
const CAKE: &str = "Our cakes start at 20 euros.";

fn bakery() -> AgentEdit {
    AgentEdit {
        responder: Some(ResponderConfig::Rules(Rules {
            greeting: GREETING.into(),
            rules: vec![
                Rule {
                    keyword: "opening hours".into(),
                    reply: HOURS.into(),
                },
                Rule {
                    keyword: "cake".into(),
                    reply: CAKE.into(),
                },
            ],
            fallback: "You said: {text}".into(),
        })),
        ..AgentEdit::default()
    }
}

struct Line {
    env: common::ChannelsEnv,
    host: Host,
    sandbox: TwilioSandbox,
    c: Connection,
}

impl Line {
    fn url(&self) -> String {
        self.host.url(&self.c)
    }

    async fn log(&self, until: &str) -> String {
        log_text(&self.env, &self.c.name, until).await
    }

    async fn stop(self) {
        self.host.shutdown().await;
    }
}

/// A Twilio connection on the sandbox, attached to a new agent (Inbound as given) that
/// is started, which starts the connection with it.
async fn line(
    be: Be,
    agent: AgentEdit,
    inbound: bool,
    token: &str,
    env_vars: &[(&str, String)],
) -> Line {
    let sandbox = TwilioSandbox::start(SID, TOKEN, "Bakery", &[(NUMBER, BEFORE)])
        .await
        .unwrap();
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    let mut vars = vec![("TWILIO_API_URL", sandbox.url())];
    vars.extend(env_vars.iter().cloned());
    let d = draft(
        "twilio",
        "Shop line",
        &[("account_sid", SID), ("phone_number", NUMBER)],
        &[("auth_token", token)],
        &vars,
    );
    let c = env.channels.add(&d).await.unwrap().connection;
    let a = env.channels.create_agent("Bakery", agent).await.unwrap();
    env.channels
        .attach_connection(&a, &c, inbound)
        .await
        .unwrap();
    env.channels.run_agent(&a, true).await.unwrap();
    Line {
        env,
        host,
        sandbox,
        c,
    }
}

async fn running_line(be: Be, agent: AgentEdit, env_vars: &[(&str, String)]) -> Line {
    let l = line(be, agent, true, TOKEN, env_vars).await;
    let c = wait_status(&l.env, "Shop line", Status::Running).await;
    assert!(
        c.status_message.contains("answering +14155550100"),
        "{}",
        c.status_message
    );
    Line { c, ..l }
}

/// The ledger state of `key` once it is `want`, or as it is after 10 s.
async fn ledger_state(l: &Line, key: &str, want: LedgerState) -> Option<LedgerState> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state = l
            .env
            .channels
            .store()
            .ledger_state(l.c.id, key)
            .await
            .unwrap();
        if state == Some(want) || std::time::Instant::now() > deadline {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn say(words: &str) -> Turn {
    Turn::Say(words.into())
}

fn start_params(call_sid: &str) -> Vec<(&str, &str)> {
    vec![
        ("AccountSid", SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("From", CALLER),
        ("To", NUMBER),
    ]
}

async fn every_request_must_carry_twilio_s_signature(be: Be) {
    let l = running_line(be, bakery(), &[]).await;
    let url = l.url();
    let (status, body) = l
        .sandbox
        .post_form(&url, &start_params("CA01"), Some(TOKEN))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<Gather input=\"speech\""), "{body}");
    assert!(body.contains(GREETING), "{body}");

    let (status, body) = l
        .sandbox
        .post_form(&url, &start_params("CA02"), Some(WRONG_TOKEN))
        .await;
    assert_eq!(status, 403, "signed with another token: {body}");
    let (status, _) = l.sandbox.post_form(&url, &start_params("CA03"), None).await;
    assert_eq!(status, 403, "unsigned");
    let log = l.log("without X-Twilio-Signature").await;
    assert!(log.contains("WARN webhook refused (403)"), "{log}");
    assert!(log.contains("X-Twilio-Signature does not match"), "{log}");
    // Refused requests are never calls.
    assert!(!log.contains("call CA02"), "{log}");
    l.stop().await;
}

async fn a_whole_call_is_held_by_the_agent(be: Be) {
    let l = running_line(
        be,
        bakery(),
        &[
            ("TWILIO_VOICE", "Polly.Amy".into()),
            ("TWILIO_SPEECH_LANGUAGE", "en-GB".into()),
            ("TWILIO_SPEECH_TIMEOUT", "3".into()),
        ],
    )
    .await;
    let t = l
        .sandbox
        .call_in(
            CALLER,
            NUMBER,
            vec![
                say("What are your opening hours?"),
                say("Do you have a cake for Sunday?"),
                say("Great, thanks. Goodbye!"),
            ],
        )
        .await;
    assert_eq!(
        t.heard,
        vec![GREETING, HOURS, CAKE, "Thank you for calling. Goodbye."],
        "{t:?}"
    );
    assert_eq!(t.ended, "hangup", "{t:?}");
    assert!(
        t.voices
            .iter()
            .all(|v| *v == (Some("Polly.Amy".into()), Some("en-GB".into()))),
        "{t:?}"
    );
    assert!(
        t.gathers
            .iter()
            .all(|g| *g == (Some("en-GB".into()), Some("3".into()))),
        "{t:?}"
    );
    // Each turn is in the ledger by CallSid and turn (marked answered right after the
    // reply left, so it may take a moment to be written).
    for turn in 0..3 {
        let key = format!("{}:{turn}", t.sid);
        assert_eq!(
            ledger_state(&l, &key, LedgerState::Answered).await,
            Some(LedgerState::Answered),
            "turn {turn}"
        );
    }
    assert_eq!(
        ledger_state(&l, &format!("{}:3", t.sid), LedgerState::Answered).await,
        None,
        "a goodbye is not a message to the agent"
    );
    let log = l.log("ended after").await;
    for line in [
        format!("call {} from {CALLER} to {NUMBER}", t.sid),
        format!(
            "call {}, turn 1: the caller said \"What are your opening hours?\"",
            t.sid
        ),
        format!("call {}, turn 1: the agent says \"{HOURS}\"", t.sid),
        format!("call {}, turn 2: the agent says \"{CAKE}\"", t.sid),
        format!(
            "call {}, turn 3: the caller said \"Great, thanks. Goodbye!\"; saying goodbye",
            t.sid
        ),
        format!("call {} from {CALLER} to {NUMBER} ended after", t.sid),
    ] {
        assert!(log.contains(&line), "missing '{line}' in:\n{log}");
    }
    l.stop().await;
}

async fn a_retried_turn_is_answered_once(be: Be) {
    let l = running_line(be, bakery(), &[]).await;
    let t = l
        .sandbox
        .call_in(
            CALLER,
            NUMBER,
            vec![Turn::SayTwice("opening hours please".into()), say("bye")],
        )
        .await;
    assert_eq!(t.retries_same, vec![true], "{t:?}");
    assert_eq!(
        t.heard,
        vec![GREETING, HOURS, "Thank you for calling. Goodbye."],
        "{t:?}"
    );
    let log = l.log("ended after").await;
    let said = format!("call {}, turn 1: the agent says", t.sid);
    assert_eq!(log.matches(&said).count(), 1, "{log}");
    l.stop().await;
}

async fn a_caller_saying_markup_cannot_end_the_call(be: Be) {
    let l = running_line(be, bakery(), &[]).await;
    let t = l
        .sandbox
        .call_in(
            CALLER,
            NUMBER,
            vec![say("<Hangup/>"), say("</Say><Hangup/><Say> & more")],
        )
        .await;
    assert_eq!(
        t.heard,
        vec![
            GREETING,
            "You said: <Hangup/>",
            "You said: </Say><Hangup/><Say> & more"
        ],
        "{t:?}"
    );
    assert_eq!(t.ended, "caller hung up", "{t:?}");
    l.stop().await;
}

async fn two_silent_turns_end_the_call_politely(be: Be) {
    let l = running_line(be, bakery(), &[]).await;
    let t = l
        .sandbox
        .call_in(
            CALLER,
            NUMBER,
            vec![Turn::Silence, say("cake?"), Turn::Silence, Turn::Silence],
        )
        .await;
    assert_eq!(
        t.heard,
        vec![
            GREETING,
            "Sorry, I did not catch that. Are you still there?",
            CAKE,
            "Sorry, I did not catch that. Are you still there?",
            "I cannot hear you, so I will end the call now. Goodbye.",
        ],
        "{t:?}"
    );
    assert_eq!(t.ended, "hangup");
    let log = l.log("hanging up politely").await;
    assert!(
        log.contains(&format!("call {}, turn 2: silence; asking again", t.sid)),
        "{log}"
    );
    l.stop().await;
}

async fn a_slow_agent_gets_a_filler_then_its_answer(be: Be) {
    let llm = OpenAiSandbox::start(None).await.unwrap();
    llm.set_delay(Duration::from_millis(2500));
    let agent = AgentEdit {
        responder: Some(ResponderConfig::OpenAi(OpenAi {
            base_url: llm.url(),
            model: "slow-model".into(),
            api_key: None,
            system_prompt: "You answer the bakery's phone.".into(),
            history: 10,
            timeout_secs: 10,
            fallback: "Sorry, I can't answer right now.".into(),
        })),
        ..AgentEdit::default()
    };
    let l = running_line(be, agent, &[("TWILIO_REPLY_BUDGET", "1".into())]).await;
    let t = l
        .sandbox
        .call_in(CALLER, NUMBER, vec![say("Where is my order?")])
        .await;
    let fillers = t
        .heard
        .iter()
        .filter(|h| *h == "One moment, please.")
        .count();
    assert!(
        fillers >= 2,
        "a filler for the greeting and the turn: {t:?}"
    );
    let answers: Vec<&String> = t
        .heard
        .iter()
        .filter(|h| h.starts_with("[slow-model] You asked:"))
        .collect();
    assert_eq!(answers.len(), 2, "{t:?}");
    assert!(answers[1].contains("Where is my order?"), "{t:?}");
    assert!(
        t.requests.iter().any(|(u, _)| u.ends_with("?t=1&w=1")),
        "the Redirect fetches the answer: {t:?}"
    );
    assert_eq!(llm.requests().len(), 2, "each turn asked once");
    assert_eq!(t.ended, "caller hung up");
    l.stop().await;
}

async fn simultaneous_calls_are_answered_side_by_side(be: Be) {
    let llm = OpenAiSandbox::start(None).await.unwrap();
    llm.set_delay(Duration::from_millis(1500));
    let agent = AgentEdit {
        responder: Some(ResponderConfig::OpenAi(OpenAi {
            base_url: llm.url(),
            model: "m".into(),
            api_key: None,
            system_prompt: String::new(),
            history: 10,
            timeout_secs: 10,
            fallback: "Sorry.".into(),
        })),
        ..AgentEdit::default()
    };
    let l = running_line(be, agent, &[]).await;
    let (a, b) = tokio::join!(
        l.sandbox
            .call_in("+14155550001", NUMBER, vec![say("Is the shop open?")]),
        l.sandbox
            .call_in("+14155550002", NUMBER, vec![say("Do you deliver?")]),
    );
    for t in [&a, &b] {
        assert_eq!(t.heard.len(), 2, "greeting and answer, no filler: {t:?}");
        assert_eq!(t.ended, "caller hung up", "{t:?}");
    }
    assert!(a.heard[1].contains("Is the shop open?"), "{a:?}");
    assert!(b.heard[1].contains("Do you deliver?"), "{b:?}");
    assert_eq!(
        llm.most_in_flight(),
        2,
        "the two callers' turns went to the model at the same time"
    );
    l.stop().await;
}

async fn wrong_credentials_are_an_error_naming_them(be: Be) {
    let l = line(be, bakery(), true, WRONG_TOKEN, &[]).await;
    let c = wait_status(&l.env, "Shop line", Status::Error).await;
    assert!(
        c.status_message.contains("Account SID / Auth token") && c.status_message.contains("20003"),
        "{}",
        c.status_message
    );
    assert_eq!(l.sandbox.voice_url(NUMBER).as_deref(), Some(BEFORE));
    // Nobody would talk on a call through it: `flametree call` says so instead.
    let r = cli(&l).run(
        &["call", "--connection", "Shop line", "--to", "+14155550111"],
        None,
    );
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(
        r.stderr()
            .contains("runs with its agent and no running agent has it"),
        "{}",
        r.all()
    );

    // Right credentials, a number the account does not have.
    let d = draft(
        "twilio",
        "Other line",
        &[("account_sid", SID), ("phone_number", "+14155550177")],
        &[("auth_token", TOKEN)],
        &[("TWILIO_API_URL", l.sandbox.url())],
    );
    let other = l.env.channels.add(&d).await.unwrap().connection;
    let a = l
        .env
        .channels
        .create_agent("Second", bakery())
        .await
        .unwrap();
    l.env
        .channels
        .attach_connection(&a, &other, true)
        .await
        .unwrap();
    l.env.channels.run_agent(&a, true).await.unwrap();
    let c = wait_status(&l.env, "Other line", Status::Error).await;
    assert!(
        c.status_message
            .contains("Phone number +14155550177 is not a number of the Twilio account 'Bakery'"),
        "{}",
        c.status_message
    );
    l.stop().await;
}

async fn the_voice_url_follows_the_agent(be: Be) {
    let l = running_line(be, bakery(), &[]).await;
    assert_eq!(l.sandbox.voice_url(NUMBER), Some(l.url()));
    let log = l.log("now points at this connection").await;
    assert!(
        log.contains(&format!("the voice URL of {NUMBER} was {BEFORE}")),
        "{log}"
    );
    let agent = l.env.channels.find_agent("Bakery").await.unwrap();
    l.env.channels.run_agent(&agent, false).await.unwrap();
    wait_status(&l.env, "Shop line", Status::Stopped).await;
    assert_eq!(l.sandbox.voice_url(NUMBER).as_deref(), Some(BEFORE));
    let log = l.log("is back to").await;
    assert!(
        log.contains(&format!("the voice URL of {NUMBER} is back to {BEFORE}")),
        "{log}"
    );
    assert_eq!(
        l.sandbox.voice_url_changes(),
        vec![
            (NUMBER.to_string(), l.url()),
            (NUMBER.to_string(), BEFORE.to_string())
        ]
    );

    // A process killed while running never put the URL back: the number still points
    // here at the next start. What it pointed at before is remembered all the same.
    l.sandbox.set_voice_url(NUMBER, &l.url());
    let agent = l.env.channels.find_agent("Bakery").await.unwrap();
    l.env.channels.run_agent(&agent, true).await.unwrap();
    wait_status(&l.env, "Shop line", Status::Running).await;
    let agent = l.env.channels.find_agent("Bakery").await.unwrap();
    l.env.channels.run_agent(&agent, false).await.unwrap();
    wait_status(&l.env, "Shop line", Status::Stopped).await;
    assert_eq!(l.sandbox.voice_url(NUMBER).as_deref(), Some(BEFORE));
    l.stop().await;
}

async fn behind_a_proxy_the_public_url_is_what_counts(be: Be) {
    let l = running_line(
        be,
        bakery(),
        &[(
            "TWILIO_WEBHOOK_BASE_URL",
            "https://voice.example.com/".into(),
        )],
    )
    .await;
    let public = format!("https://voice.example.com/hooks/{}", l.c.hook_id);
    assert_eq!(l.sandbox.voice_url(NUMBER), Some(public.clone()));
    // Twilio signs the public URL; the proxy delivers to the ingress.
    let (status, body) = l
        .sandbox
        .post_form_through(&public, &l.url(), &start_params("CA10"), TOKEN)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("action=\"{public}?t=1\"")),
        "the next requests go to the public URL too: {body}"
    );
    // A signature over the local address is not Twilio's.
    let (status, _) = l
        .sandbox
        .post_form(&l.url(), &start_params("CA11"), Some(TOKEN))
        .await;
    assert_eq!(status, 403);
    l.stop().await;
}

fn cli(l: &Line) -> common::Cli {
    common::Cli::new(l.env.dir.path())
        .with_database(&l.env.url)
        .env("FLAMETREE_SECRETS_MASTER_KEY", common::KEY_B64)
        .env("FLAMETREE_HTTP_PUBLIC_URL", &l.host.ingress.public_base)
}

fn call_sid(stdout: &str) -> String {
    let at = stdout.find("(call CA").expect("a call sid") + "(call ".len();
    stdout[at..at + 34].to_string()
}

async fn outbound_calls_with_inbound_off(be: Be) {
    let l = line(be, bakery(), false, TOKEN, &[]).await;
    wait_status(&l.env, "Shop line", Status::Running).await;
    let cli = cli(&l);

    let r = cli.run(
        &["call", "--connection", "Shop line", "--to", "the baker"],
        None,
    );
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(
        r.stderr()
            .contains("--to: 'the baker' is not a phone number"),
        "{}",
        r.all()
    );
    l.sandbox.callee("+14155550111", Callee::Busy);
    let r = cli.run(
        &["call", "--connection", "Shop line", "--to", "+14155550111"],
        None,
    );
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(
        r.stderr()
            .contains("the call to +14155550111 did not connect (busy): the line was busy"),
        "{}",
        r.all()
    );
    l.sandbox.callee("+14155550122", Callee::NoAnswer);
    let r = cli.run(
        &[
            "call",
            "--connection",
            "Shop line",
            "--to",
            "+14155550122",
            "--json",
        ],
        None,
    );
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(
        r.stderr().contains("(no-answer): nobody answered"),
        "{}",
        r.all()
    );
    let out: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(out["status"], "no-answer", "{out}");
    assert!(out["call_sid"].as_str().unwrap().starts_with("CA"), "{out}");
    // A text message is not what a voice line sends.
    let r = cli.run(
        &[
            "send",
            "--connection",
            "Shop line",
            "--to",
            "+14155550122",
            "--text",
            "hi",
        ],
        None,
    );
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(r.stderr().contains("flametree call"), "{}", r.all());
    // Twilio's status callback gives the reason in the connection's log.
    let log = l.log("nobody answered (SIP 487)").await;
    assert!(
        log.contains("did not connect: the line was busy (SIP 486)"),
        "{log}"
    );

    // Answered: the agent opens with the given words, then holds the conversation.
    l.sandbox.callee(
        "+14155550133",
        Callee::Answers(vec![say("What are your opening hours?"), say("bye")]),
    );
    let out = cli.ok(
        &[
            "call",
            "--connection",
            "Shop line",
            "--to",
            "+14155550133",
            "--text",
            "Hi, the bakery here: your cake is ready.",
        ],
        None,
    );
    assert!(
        out.contains("The call to +14155550133 ended after"),
        "{out}"
    );
    let t: Transcript = l
        .sandbox
        .wait_call(&call_sid(&out), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        t.heard,
        vec![
            "Hi, the bakery here: your cake is ready.",
            HOURS,
            "Thank you for calling. Goodbye."
        ],
        "{t:?}"
    );

    // Inbound is off: a caller is told nobody takes calls, and the log says why.
    let t = l.sandbox.call_in(CALLER, NUMBER, vec![say("hello?")]).await;
    assert_eq!(
        t.heard,
        vec!["Sorry, nobody can take your call right now. Please try again later. Goodbye."],
        "{t:?}"
    );
    let log = l.log("Inbound is off").await;
    assert!(log.contains("not answered: Inbound is off"), "{log}");

    let trail = l
        .env
        .channels
        .store()
        .audit_trail(l.env.channels.tenant().id, 50)
        .await
        .unwrap();
    let calls: Vec<&str> = trail
        .iter()
        .filter(|e| e.action == "call")
        .map(|e| e.details.as_str())
        .collect();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(
        calls
            .iter()
            .any(|d| d.starts_with("to +14155550111 (call CA")),
        "{calls:?}"
    );
    assert!(
        trail.iter().all(|e| !e.details.contains("cake is ready")),
        "the words are not audited"
    );
    l.stop().await;
}

on_both!(
    every_request_must_carry_twilio_s_signature,
    a_whole_call_is_held_by_the_agent,
    a_retried_turn_is_answered_once,
    a_caller_saying_markup_cannot_end_the_call,
    two_silent_turns_end_the_call_politely,
    a_slow_agent_gets_a_filler_then_its_answer,
    simultaneous_calls_are_answered_side_by_side,
    wrong_credentials_are_an_error_naming_them,
    the_voice_url_follows_the_agent,
    behind_a_proxy_the_public_url_is_what_counts,
    outbound_calls_with_inbound_off,
);
