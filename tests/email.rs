//! The Email connector against real servers the tests start on 127.0.0.1: Dovecot for
//! IMAP (two mailboxes in one connection) and aiosmtpd for SMTP, over STARTTLS, TLS or
//! plain, with certificates from a throwaway CA.

mod common;

use common::mail::{Ca, Dovecot, Smtp};
use common::{Be, KEY_B64};
use flametree::model::{Connection, DesiredState, EnvVar, Status};
use flametree::runtime::Runtime;
use std::time::{Duration, Instant};

type Env = common::ChannelsEnv;

const ALICE: (&str, &str) = ("alice@example.com", "alice-pw-1");
const BOB: (&str, &str) = ("bob@example.com", "bob-pw-2");

/// Everything one scenario needs: servers, a store, and the CA's file.
struct Mail {
    env: Env,
    ca: Ca,
    dovecot: Dovecot,
    smtp: Smtp,
}

async fn servers(be: Be, smtp_mode: &str) -> Mail {
    let env = common::channels_env_on(be).await;
    let ca = Ca::new(env.dir.path());
    let dovecot = Dovecot::start(env.dir.path(), &ca, &[ALICE, BOB]);
    let smtp = Smtp::start(env.dir.path(), &ca, smtp_mode, &[ALICE, BOB]);
    Mail {
        env,
        ca,
        dovecot,
        smtp,
    }
}

/// An Email connection over both mailboxes; `imap` is "starttls", "ssl/tls" or "none".
fn draft(
    m: &Mail,
    imap: &str,
    smtp: &str,
    extra_env: &[(&str, &str)],
) -> flametree::channels::Draft {
    let imap_port = if imap == "ssl/tls" {
        m.dovecot.imaps_port
    } else {
        m.dovecot.imap_port
    };
    let mut d = flametree::channels::Draft {
        type_key: "email".into(),
        name: "Support mail".into(),
        ..Default::default()
    };
    let both = |v: &str| format!("{v},{v}");
    d.fields.insert("imap_hosts".into(), both("localhost"));
    d.fields
        .insert("imap_ports".into(), both(&imap_port.to_string()));
    d.fields.insert("imap_security".into(), both(imap));
    d.fields
        .insert("logins".into(), format!("{},{}", ALICE.0, BOB.0));
    d.fields.insert("smtp_hosts".into(), both("localhost"));
    d.fields
        .insert("smtp_ports".into(), both(&m.smtp.port.to_string()));
    d.fields.insert("smtp_security".into(), both(smtp));
    d.secrets.insert(
        "passwords".into(),
        flametree::secrets::SecretString::new(format!("{},{}", ALICE.1, BOB.1)),
    );
    d.env.push(EnvVar {
        name: "EMAIL_CA_CERT".into(),
        value: m.ca.ca_pem.display().to_string(),
    });
    // Only IDLE can deliver quickly: a poll would wait an hour.
    d.env.push(EnvVar {
        name: "EMAIL_POLL_INTERVAL".into(),
        value: "3600".into(),
    });
    for (k, v) in extra_env {
        d.env.retain(|e| e.name != *k);
        d.env.push(EnvVar {
            name: k.to_string(),
            value: v.to_string(),
        });
    }
    d
}

async fn add(env: &Env, draft: &flametree::channels::Draft) -> Connection {
    common::hooks::add_answered(env, draft).await
}

async fn set(env: &Env, desired: DesiredState) {
    let c = env.channels.find("Support mail").await.unwrap();
    env.channels.set_desired(&c, desired).await.unwrap();
}

async fn wait_status(env: &Env, status: Status) -> Connection {
    common::hooks::wait_status(env, "Support mail", status).await
}

/// Waits until both accounts have said they watch their folder.
async fn wait_watching(env: &Env, mode: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = common::runtime::log_text(env, "Support mail", "").await;
        let both = logs.contains(&format!("account 1 (alice@example.com): {mode}"))
            && logs.contains(&format!("account 2 (bob@example.com): {mode}"));
        if both {
            return logs;
        }
        assert!(Instant::now() < deadline, "accounts not watching:\n{logs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn mail(from: &str, to: &str, subject: &str, id: &str, extra: &str, body: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!("{extra}\n")
    };
    format!(
        "From: {from}\nTo: {to}\nSubject: {subject}\nMessage-ID: <{id}>\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0000\n{extra}\n{body}\n"
    )
}

async fn running(m: &Mail, imap: &str, smtp: &str, extra_env: &[(&str, &str)]) -> Runtime {
    add(&m.env, &draft(m, imap, smtp, extra_env)).await;
    let runtime = Runtime::launch(m.env.channels.clone(), 1000);
    set(&m.env, DesiredState::Running).await;
    wait_status(&m.env, Status::Running).await;
    runtime
}

async fn each_account_answers_from_its_own_address(be: Be) {
    let m = servers(be, "starttls").await;
    // Mail that is there before the first start is history, not a question.
    m.dovecot.deliver(
        ALICE.0,
        "INBOX",
        &mail(
            "old@example.org",
            ALICE.0,
            "Old",
            "old-1@example.org",
            "",
            "from last year",
        ),
    );
    let runtime = running(&m, "starttls", "starttls", &[("EMAIL_SENT_FOLDER", "Sent")]).await;
    let logs = wait_watching(&m.env, "IDLE on INBOX").await;
    assert!(
        logs.contains("first start: only mail arriving in INBOX from now on"),
        "{logs}"
    );
    let c = m.env.channels.find("Support mail").await.unwrap();
    assert!(
        c.status_message.contains("2 mailboxes"),
        "{}",
        c.status_message
    );

    m.dovecot.deliver(
        ALICE.0,
        "INBOX",
        &mail(
            "Carol <carol@example.org>",
            ALICE.0,
            "Order 42",
            "q1@example.org",
            "References: <earlier@example.org>",
            "Where is my order?",
        ),
    );
    m.dovecot.deliver(
        BOB.0,
        "INBOX",
        &mail(
            "dave@example.org",
            BOB.0,
            "Re: Invoice",
            "q2@example.org",
            "Reply-To: billing@example.net",
            "Please resend it",
        ),
    );
    let sent = m.smtp.wait_sent(2).await;
    assert_eq!(sent.len(), 2, "both mails answered");
    let to_carol = sent
        .iter()
        .find(|s| s.rcpt_tos == ["carol@example.org"])
        .expect("Carol answered");
    assert_eq!(to_carol.mail_from, ALICE.0);
    assert_eq!(
        to_carol.login.as_deref(),
        Some(ALICE.0),
        "sent over Alice's own SMTP login"
    );
    assert_eq!(to_carol.header("Subject").as_deref(), Some("Re: Order 42"));
    assert_eq!(
        to_carol.header("In-Reply-To").as_deref(),
        Some("<q1@example.org>")
    );
    assert_eq!(
        to_carol.header("References").as_deref(),
        Some("<earlier@example.org> <q1@example.org>")
    );
    assert!(
        to_carol
            .header("Message-ID")
            .unwrap()
            .ends_with("@example.com>")
    );
    assert_eq!(
        to_carol.header("Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert!(
        to_carol.body().contains("You said: Where is my order?"),
        "{}",
        to_carol.raw
    );

    let to_dave = sent
        .iter()
        .find(|s| s.mail_from == BOB.0)
        .expect("Bob's mail answered");
    assert_eq!(
        to_dave.rcpt_tos,
        ["billing@example.net"],
        "Reply-To is honoured"
    );
    assert_eq!(
        to_dave.header("Subject").as_deref(),
        Some("Re: Invoice"),
        "one Re: only"
    );
    assert_eq!(to_dave.login.as_deref(), Some(BOB.0));

    // Recorded first, then flagged on the server; the replies kept in Sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.dovecot.count(BOB.0, "Sent") < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(m.dovecot.count(ALICE.0, "Sent"), 1);
    assert_eq!(m.dovecot.count(BOB.0, "Sent"), 1);
    let flags = m.dovecot.flags(ALICE.0, "INBOX");
    let q1 = flags
        .split("flags:")
        .find(|b| b.contains("q1@example.org"))
        .unwrap();
    assert!(q1.contains("\\Seen"), "{flags}");
    let old = flags
        .split("flags:")
        .find(|b| b.contains("old-1@example.org"))
        .unwrap();
    assert!(
        !old.contains("\\Seen"),
        "mail before the first start untouched: {flags}"
    );
    assert_eq!(m.smtp.sent().len(), 2, "the old mail was not answered");

    let logs = common::runtime::log_text(&m.env, "Support mail", "replied to dave").await;
    assert!(logs.contains("replied to billing@example.net"), "{logs}");
    for pw in [ALICE.1, BOB.1] {
        assert!(!logs.contains(pw), "a password reached the log:\n{logs}");
    }
    runtime.shutdown().await;
}

async fn automatic_list_bounce_and_own_mail_are_not_answered(be: Be) {
    let m = servers(be, "starttls").await;
    let runtime = running(&m, "starttls", "starttls", &[]).await;
    wait_watching(&m.env, "IDLE on INBOX").await;
    let to = ALICE.0;
    let skip = [
        mail(
            "holiday@example.org",
            to,
            "Out of office",
            "a1@x",
            "Auto-Submitted: auto-replied",
            "away",
        ),
        mail(
            "news@example.org",
            to,
            "Weekly",
            "a2@x",
            "List-Id: <weekly.example.org>",
            "news",
        ),
        mail(
            "MAILER-DAEMON@example.org",
            to,
            "Undelivered",
            "a3@x",
            "",
            "bounce",
        ),
        mail(
            "bulk@example.org",
            to,
            "Offer",
            "a4@x",
            "Precedence: bulk",
            "buy",
        ),
        mail(
            BOB.0,
            to,
            "Hi Alice",
            "a5@x",
            "",
            "from our own other mailbox",
        ),
    ];
    for s in &skip {
        m.dovecot.deliver(ALICE.0, "INBOX", s);
    }
    m.dovecot.deliver(
        ALICE.0,
        "INBOX",
        &mail("erin@example.org", to, "Question", "a6@x", "", "hello"),
    );
    let sent = m.smtp.wait_sent(1).await;
    // Mails are recorded in UID order in one batch: the skipped ones came first.
    let logs = common::runtime::log_text(&m.env, "Support mail", "replied to erin").await;
    assert_eq!(sent.len(), 1, "{logs}");
    assert_eq!(sent[0].rcpt_tos, ["erin@example.org"]);
    for why in [
        "holiday@example.org (\"Out of office\") not answered: an automatic message (Auto-Submitted: auto-replied)",
        "news@example.org (\"Weekly\") not answered: a mailing list",
        "not answered: a delivery report (bounce)",
        "not answered: bulk mail (Precedence: bulk)",
        "bob@example.com (\"Hi Alice\") not answered: it was sent from this connection's own address",
    ] {
        assert!(logs.contains(why), "missing {why:?} in\n{logs}");
    }
    runtime.shutdown().await;
}

async fn mail_arriving_while_stopped_is_answered_once_after_start(be: Be) {
    let m = servers(be, "starttls").await;
    let runtime = running(&m, "starttls", "starttls", &[]).await;
    wait_watching(&m.env, "IDLE on INBOX").await;
    set(&m.env, DesiredState::Stopped).await;
    wait_status(&m.env, Status::Stopped).await;

    m.dovecot.deliver(
        BOB.0,
        "INBOX",
        &mail(
            "fay@example.org",
            BOB.0,
            "While away",
            "s1@x",
            "",
            "are you there?",
        ),
    );
    assert!(m.smtp.sent().is_empty());
    set(&m.env, DesiredState::Running).await;
    let sent = m.smtp.wait_sent(1).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].rcpt_tos, ["fay@example.org"]);

    // Stop and start again: the cursor moved on, the ledger remembers: nothing twice.
    set(&m.env, DesiredState::Stopped).await;
    wait_status(&m.env, Status::Stopped).await;
    set(&m.env, DesiredState::Running).await;
    wait_status(&m.env, Status::Running).await;
    m.dovecot.deliver(
        BOB.0,
        "INBOX",
        &mail("fay@example.org", BOB.0, "Again", "s2@x", "", "second"),
    );
    let sent = m.smtp.wait_sent(2).await;
    assert_eq!(sent.len(), 2);
    let ids: Vec<_> = sent
        .iter()
        .filter_map(|s| s.header("In-Reply-To"))
        .collect();
    assert_eq!(ids, ["<s1@x>", "<s2@x>"]);
    runtime.shutdown().await;
}

async fn a_renumbered_folder_answers_nothing_twice(be: Be) {
    let m = servers(be, "starttls").await;
    let runtime = running(&m, "starttls", "starttls", &[]).await;
    wait_watching(&m.env, "IDLE on INBOX").await;
    for i in 0..2 {
        m.dovecot.deliver(
            ALICE.0,
            "INBOX",
            &mail("gil@example.org", ALICE.0, "Q", &format!("r{i}@x"), "", "q"),
        );
    }
    assert_eq!(m.smtp.wait_sent(2).await.len(), 2);
    set(&m.env, DesiredState::Stopped).await;
    wait_status(&m.env, Status::Stopped).await;
    m.dovecot.renumber(ALICE.0, "INBOX");
    set(&m.env, DesiredState::Running).await;
    wait_status(&m.env, Status::Running).await;
    m.dovecot.deliver(
        ALICE.0,
        "INBOX",
        &mail("gil@example.org", ALICE.0, "Q", "r2@x", "", "new one"),
    );
    let sent = m.smtp.wait_sent(3).await;
    let logs = common::runtime::log_text(&m.env, "Support mail", "was renumbered").await;
    assert!(
        logs.contains("INBOX was renumbered by the server (UIDVALIDITY"),
        "{logs}"
    );
    // The rescan read r0 and r1 again; the ledger knew them by their Message-ID.
    let _ = common::runtime::log_text(
        &m.env,
        "Support mail",
        "replied to gil@example.org (to alice@example.com) (message",
    )
    .await;
    let ids: Vec<_> = m
        .smtp
        .sent()
        .iter()
        .filter_map(|s| s.header("In-Reply-To"))
        .collect();
    assert_eq!(ids, ["<r0@x>", "<r1@x>", "<r2@x>"], "{} sent", sent.len());
    runtime.shutdown().await;
}

async fn a_wrong_password_names_the_account_and_the_field(be: Be) {
    let m = servers(be, "starttls").await;
    let mut d = draft(&m, "starttls", "starttls", &[]);
    d.secrets.insert(
        "passwords".into(),
        flametree::secrets::SecretString::new(format!("{},not-bobs-password", ALICE.1)),
    );
    add(&m.env, &d).await;
    let runtime = Runtime::launch(m.env.channels.clone(), 1000);
    set(&m.env, DesiredState::Running).await;
    let c = wait_status(&m.env, Status::Error).await;
    assert!(
        c.status_message
            .starts_with("account 2 (bob@example.com): IMAP login failed")
            && c.status_message.contains("value 2 of Logins and Passwords"),
        "{}",
        c.status_message
    );
    assert!(!c.status_message.contains("not-bobs-password"));
    runtime.shutdown().await;
}

async fn implicit_tls_needs_a_trusted_certificate(be: Be) {
    let m = servers(be, "ssl/tls").await;
    // Without the private CA the server's certificate is not trusted: a setting to fix.
    let mut d = draft(&m, "ssl/tls", "ssl/tls", &[]);
    d.env.retain(|e| e.name != "EMAIL_CA_CERT");
    let c = add(&m.env, &d).await;
    let runtime = Runtime::launch(m.env.channels.clone(), 1000);
    set(&m.env, DesiredState::Running).await;
    let failed = wait_status(&m.env, Status::Error).await;
    assert!(
        failed.status_message.contains("certificate is not trusted")
            && failed.status_message.contains("EMAIL_CA_CERT"),
        "{}",
        failed.status_message
    );
    // With it, both sides run over TLS.
    let mut fixed = flametree::channels::Draft::from_connection(&c);
    fixed.env.push(EnvVar {
        name: "EMAIL_CA_CERT".into(),
        value: m.ca.ca_pem.display().to_string(),
    });
    m.env.channels.edit(&c, &fixed).await.unwrap();
    set(&m.env, DesiredState::Running).await;
    wait_status(&m.env, Status::Running).await;
    wait_watching(&m.env, "IDLE on INBOX").await;
    m.dovecot.deliver(
        ALICE.0,
        "INBOX",
        &mail("hal@example.org", ALICE.0, "TLS", "t1@x", "", "secure?"),
    );
    let sent = m.smtp.wait_sent(1).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].rcpt_tos, ["hal@example.org"]);
    runtime.shutdown().await;
}

async fn plain_text_servers_and_polling_work(be: Be) {
    let m = servers(be, "none").await;
    let runtime = running(
        &m,
        "none",
        "none",
        &[
            ("EMAIL_USE_IDLE", "false"),
            ("EMAIL_POLL_INTERVAL", "1"),
            ("EMAIL_MARK_AS_READ", "false"),
            ("EMAIL_DELETE_AFTER_READ", "true"),
        ],
    )
    .await;
    wait_watching(&m.env, "checking every 1 s on INBOX").await;
    m.dovecot.deliver(
        BOB.0,
        "INBOX",
        &mail("ida@example.org", BOB.0, "Plain", "p1@x", "", "hello"),
    );
    let sent = m.smtp.wait_sent(1).await;
    assert_eq!(sent.len(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.dovecot.count(BOB.0, "INBOX") > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        m.dovecot.count(BOB.0, "INBOX"),
        0,
        "EMAIL_DELETE_AFTER_READ deleted it"
    );
    runtime.shutdown().await;
}

async fn a_refused_reply_is_logged_against_the_message_and_not_retried(be: Be) {
    let m = servers(be, "starttls").await;
    let runtime = running(&m, "starttls", "starttls", &[]).await;
    wait_watching(&m.env, "IDLE on INBOX").await;
    m.dovecot.deliver(
        ALICE.0,
        "INBOX",
        &mail(
            "x@example.org",
            ALICE.0,
            "Nope",
            "n1@x",
            "Reply-To: ghost@reject.example",
            "hi",
        ),
    );
    let logs = common::runtime::log_text(
        &m.env,
        "Support mail",
        "reply to ghost@reject.example was not sent",
    )
    .await;
    assert!(
        logs.contains("message alice@example.com/n1@x: the reply to ghost@reject.example (to alice@example.com) was not sent")
            && logs.contains("550"),
        "{logs}"
    );
    assert!(!logs.contains("retry 2"), "a 5xx is not retried:\n{logs}");
    m.dovecot.deliver(
        ALICE.0,
        "INBOX",
        &mail("jo@example.org", ALICE.0, "Yes", "n2@x", "", "hi"),
    );
    let sent = m.smtp.wait_sent(1).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].rcpt_tos, ["jo@example.org"]);
    runtime.shutdown().await;
}

async fn a_server_restart_is_ridden_out(be: Be) {
    let mut m = servers(be, "starttls").await;
    let runtime = running(&m, "starttls", "starttls", &[]).await;
    wait_watching(&m.env, "IDLE on INBOX").await;
    m.dovecot.restart();
    // A session the shutdown reached says so and reconnects by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = common::runtime::log_text(&m.env, "Support mail", "").await;
        if logs.contains("): IMAP connection to localhost") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no session noticed the restart:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    m.dovecot.deliver(
        ALICE.0,
        "INBOX",
        &mail(
            "kim@example.org",
            ALICE.0,
            "After",
            "k1@x",
            "",
            "still there?",
        ),
    );
    m.dovecot.deliver(
        BOB.0,
        "INBOX",
        &mail(
            "kim@example.org",
            BOB.0,
            "After",
            "k2@x",
            "",
            "still there?",
        ),
    );
    let sent = m.smtp.wait_sent(2).await;
    assert_eq!(
        sent.len(),
        2,
        "both accounts answer after the server came back"
    );
    let c = m.env.channels.find("Support mail").await.unwrap();
    assert_eq!(c.status, Status::Running);
    assert_eq!(c.desired, DesiredState::Running);
    runtime.shutdown().await;
}

async fn a_kill_mid_batch_loses_nothing_and_answers_each_mail_as_one_message(be: Be) {
    let env = common::channels_env_on(be).await;
    let ca = Ca::new(env.dir.path());
    let dovecot = Dovecot::start(env.dir.path(), &ca, &[ALICE, BOB]);
    // Each reply takes a quarter second, so the kill lands in the middle of the batch.
    let smtp = Smtp::start_slow(env.dir.path(), &ca, "starttls", &[ALICE, BOB], 250);
    let m = Mail {
        env,
        ca,
        dovecot,
        smtp,
    };
    add(&m.env, &draft(&m, "starttls", "starttls", &[])).await;
    set(&m.env, DesiredState::Running).await;
    let mut first = common::runtime::serve(&m.env, "serve", false);
    wait_status(&m.env, Status::Running).await;
    wait_watching(&m.env, "IDLE on INBOX").await;
    const N: usize = 12;
    for i in 0..N {
        m.dovecot.deliver(
            ALICE.0,
            "INBOX",
            &mail(
                "lee@example.org",
                ALICE.0,
                "Batch",
                &format!("b{i}@x"),
                "",
                &format!("batch {i}"),
            ),
        );
    }
    m.smtp.wait_sent(3).await;
    first.kill().unwrap();
    let _ = first.wait();
    let before = m.smtp.sent().len();
    assert!(before < N, "the kill landed mid-batch ({before} answered)");

    let mut second = common::runtime::serve(&m.env, "serve", false);
    // Every mail ends answered. A reply the kill caught in its SMTP transaction is sent
    // again with the same Message-ID, which servers and clients take for one message.
    let deadline = Instant::now() + Duration::from_secs(60);
    let replies = loop {
        let mut replies: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        for s in m.smtp.sent() {
            if let (Some(to), Some(id)) = (s.header("In-Reply-To"), s.header("Message-ID")) {
                replies.entry(to).or_default().insert(id);
            }
        }
        if replies.len() >= N || Instant::now() > deadline {
            break replies;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(replies.len(), N, "every mail answered: {replies:?}");
    for (to, ids) in &replies {
        assert_eq!(
            ids.len(),
            1,
            "the answer to {to} went out as one message: {ids:?}"
        );
    }
    let logs = common::runtime::log_text(&m.env, "Support mail", "").await;
    assert!(!logs.contains("may have no answer"), "{logs}");
    common::runtime::signal(&second, "-TERM");
    let _ = second.wait();
}

async fn an_oversized_mail_is_noted_and_skipped(be: Be) {
    let m = servers(be, "starttls").await;
    let runtime = running(
        &m,
        "starttls",
        "starttls",
        &[("EMAIL_MAX_ATTACHMENT_MB", "1")],
    )
    .await;
    wait_watching(&m.env, "IDLE on INBOX").await;
    let big = "A".repeat(76);
    let lines: String = (0..20_000).map(|_| format!("{big}\n")).collect();
    let attached = |id: &str, name: &str, payload: &str| {
        mail(
            "max@example.org",
            ALICE.0,
            "Files",
            id,
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"XX\"",
            &format!(
                "--XX\nContent-Type: text/plain\n\nsee attached\n--XX\nContent-Type: application/octet-stream\n\
                 Content-Disposition: attachment; filename=\"{name}\"\nContent-Transfer-Encoding: base64\n\n{payload}--XX--"
            ),
        )
    };
    m.dovecot
        .deliver(ALICE.0, "INBOX", &attached("big@x", "huge.bin", &lines));
    m.dovecot.deliver(
        ALICE.0,
        "INBOX",
        &attached("small@x", "note.txt", "aGVsbG8=\n"),
    );
    let sent = m.smtp.wait_sent(1).await;
    let logs = common::runtime::log_text(&m.env, "Support mail", "replied to max").await;
    assert_eq!(sent.len(), 1, "{logs}");
    assert_eq!(sent[0].header("In-Reply-To").as_deref(), Some("<small@x>"));
    assert!(
        logs.contains("mail from max@example.org (\"Files\") is 1.5 MB, over EMAIL_MAX_ATTACHMENT_MB (1 MB); skipped, not answered"),
        "{logs}"
    );
    assert!(
        logs.contains("has an attachment 'note.txt' (1 KB)"),
        "{logs}"
    );
    runtime.shutdown().await;
}

async fn flametree_send_goes_out_from_the_chosen_account(be: Be) {
    let m = servers(be, "starttls").await;
    add(&m.env, &draft(&m, "starttls", "starttls", &[])).await;
    let cli = common::Cli::new(m.env.dir.path())
        .with_database(&m.env.url)
        .env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64);
    let r = cli.run(
        &[
            "send",
            "--connection",
            "Support mail",
            "--account",
            BOB.0,
            "--to",
            "nia@example.org",
            "--text",
            "Your parcel left today",
        ],
        None,
    );
    assert_eq!(r.code(), 0, "{}", r.all());
    let sent = m.smtp.wait_sent(1).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].mail_from, BOB.0);
    assert_eq!(
        sent[0].header("Subject").as_deref(),
        Some("Your parcel left today")
    );
    let r = cli.run(
        &[
            "send",
            "--connection",
            "Support mail",
            "--to",
            "not an address",
            "--text",
            "x",
        ],
        None,
    );
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(r.stderr().contains("is not a mail address"), "{}", r.all());
    let r = cli.run(
        &[
            "send",
            "--connection",
            "Support mail",
            "--account",
            "zoe@example.com",
            "--to",
            "nia@example.org",
            "--text",
            "x",
        ],
        None,
    );
    assert_ne!(r.code(), 0);
    assert!(
        r.all().contains(
            "no mail account 'zoe@example.com': its accounts are alice@example.com, bob@example.com"
        ),
        "{}",
        r.all()
    );
    for pw in [ALICE.1, BOB.1] {
        assert!(!r.all().contains(pw));
    }
}

on_both!(
    each_account_answers_from_its_own_address,
    automatic_list_bounce_and_own_mail_are_not_answered,
    mail_arriving_while_stopped_is_answered_once_after_start,
    a_renumbered_folder_answers_nothing_twice,
    a_wrong_password_names_the_account_and_the_field,
    implicit_tls_needs_a_trusted_certificate,
    plain_text_servers_and_polling_work,
    a_refused_reply_is_logged_against_the_message_and_not_retried,
    a_server_restart_is_ridden_out,
    a_kill_mid_batch_loses_nothing_and_answers_each_mail_as_one_message,
    an_oversized_mail_is_noted_and_skipped,
    flametree_send_goes_out_from_the_chosen_account,
);
