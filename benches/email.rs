//! Email benchmark: `cargo bench --bench email`. One connection with BENCH_MAILBOXES (10)
//! mailboxes on a local Dovecot, replies through a local aiosmtpd, the echo agent
//! answering every mail: how long until BENCH_MAILS (1,000) mails dropped into the
//! mailboxes at once are all answered, and how soon one mail is answered over IDLE.
//! BENCH_BACKEND=sqlite|postgres (default sqlite). Needs dovecot-imapd and aiosmtpd.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use common::mail::{Ca, Dovecot, Smtp};
use flametree::model::{DesiredState, EnvVar, Status};
use std::time::{Duration, Instant};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mail(to: &str, id: &str) -> String {
    format!(
        "From: customer@example.org\nTo: {to}\nSubject: Question {id}\nMessage-ID: <{id}@bench>\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0000\n\nHello, this is mail {id}.\n"
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mailboxes = env_num("BENCH_MAILBOXES", 10);
    let mails = env_num("BENCH_MAILS", 1000);
    let be = match std::env::var("BENCH_BACKEND").as_deref() {
        Ok("postgres") => common::Be::Postgres,
        _ => common::Be::Sqlite,
    };
    let env = common::channels_env_on(be).await;
    let ca = Ca::new(env.dir.path());
    let users: Vec<(String, String)> = (0..mailboxes)
        .map(|i| (format!("box{i}@example.com"), format!("pw-{i}-secret")))
        .collect();
    let pairs: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    let dovecot = Dovecot::start(env.dir.path(), &ca, &pairs);
    let smtp = Smtp::start(env.dir.path(), &ca, "starttls", &pairs);

    let n = |v: String| vec![v; mailboxes].join(",");
    let mut d = flametree::channels::Draft {
        type_key: "email".into(),
        name: "Bench mail".into(),
        ..Default::default()
    };
    d.fields.insert("imap_hosts".into(), n("localhost".into()));
    d.fields
        .insert("imap_ports".into(), n(dovecot.imap_port.to_string()));
    d.fields
        .insert("imap_security".into(), n("starttls".into()));
    d.fields.insert("smtp_hosts".into(), n("localhost".into()));
    d.fields
        .insert("smtp_ports".into(), n(smtp.port.to_string()));
    d.fields
        .insert("smtp_security".into(), n("starttls".into()));
    d.fields.insert(
        "logins".into(),
        users
            .iter()
            .map(|(u, _)| u.as_str())
            .collect::<Vec<_>>()
            .join(","),
    );
    d.secrets.insert(
        "passwords".into(),
        flametree::secrets::SecretString::new(
            users
                .iter()
                .map(|(_, p)| p.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
    );
    d.env.push(EnvVar {
        name: "EMAIL_CA_CERT".into(),
        value: ca.ca_pem.display().to_string(),
    });
    let c = env.channels.add(&d).await.unwrap().connection;
    let echo = common::runtime::echo_agent(&env).await;
    env.channels
        .attach_connection(&echo, &c, true)
        .await
        .unwrap();
    env.channels.run_agent(&echo, true).await.unwrap();

    let runtime = flametree::runtime::Runtime::launch(env.channels.clone(), 1000);
    let began = Instant::now();
    env.channels
        .set_desired(&c, DesiredState::Running)
        .await
        .unwrap();
    loop {
        let now = env.channels.find("Bench mail").await.unwrap();
        if now.status == Status::Running {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "not RUNNING: {}",
            now.status_message
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = began.elapsed();

    // One mail at a time: delivery → reply over IDLE.
    let mut single = Vec::new();
    for i in 0..20 {
        let before = smtp.sent().len();
        let t = Instant::now();
        dovecot.drop_in(
            &users[i % mailboxes].0,
            &mail(&users[i % mailboxes].0, &format!("one{i}")),
        );
        while smtp.sent().len() <= before {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        single.push(t.elapsed());
    }
    single.sort();

    let base = smtp.sent().len();
    let t = Instant::now();
    for i in 0..mails {
        let (user, _) = &users[i % mailboxes];
        dovecot.drop_in(user, &mail(user, &format!("m{i}")));
    }
    let dropped = t.elapsed();
    let mut last_count = 0;
    let mut stalled = Instant::now();
    loop {
        let count = smtp.sent().len() - base;
        if count >= mails {
            break;
        }
        if count != last_count {
            last_count = count;
            stalled = Instant::now();
        }
        assert!(
            stalled.elapsed() < Duration::from_secs(60),
            "stalled at {count} of {mails}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = t.elapsed();
    runtime.shutdown().await;

    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    println!("backend: {be:?}; {mailboxes} mailboxes in one connection; STARTTLS on both sides");
    println!(
        "start to RUNNING (IMAP login + SMTP auth for every mailbox): {}",
        ms(started)
    );
    println!(
        "one mail, delivery to reply over IDLE (20 mails): p50 {} · max {}",
        ms(single[single.len() / 2]),
        ms(*single.last().unwrap())
    );
    println!(
        "{mails} mails dropped in {} across {mailboxes} mailboxes: all answered after {} ({:.0} mails/s)",
        ms(dropped),
        ms(all),
        mails as f64 / all.as_secs_f64()
    );
}
