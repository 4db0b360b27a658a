//! The agent's speech engines: set, shown (key masked), cleared from the CLI; a stored
//! key never sent to a new URL without being typed again; sealed at rest on SQLite and
//! PostgreSQL; and the client against the OpenAI sandbox: speak → transcribe gives the
//! text back through a call's 8 kHz, errors name the endpoint and status, never the key.

mod common;

use common::{Be, Cli, KEY_B64};
use flametree::agents::speech::{SpeechConfig, open_key};
use flametree::agents::speech_client::SpeechClient;
use flametree::sandbox::openai::OpenAiSandbox;
use flametree::secrets::SecretString;

const SPEECH_KEY: &str = "sk-plantedSpeechKey0123456789abcdef";

fn cli(env: &common::ChannelsEnv) -> Cli {
    Cli::new(env.dir.path())
        .with_database(&env.url)
        .env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64)
}

const SET: [&str; 13] = [
    "agents",
    "edit",
    "Support",
    "--stt-url",
    "https://stt.example/v1",
    "--stt-model",
    "whisper-1",
    "--tts-url",
    "https://tts.example/v1",
    "--tts-model",
    "tts-1",
    "--tts-voice",
    "alloy",
];

async fn the_cli_sets_shows_and_clears_speech_engines(be: Be) {
    let env = common::channels_env_on(be).await;
    let cli = cli(&env);
    cli.ok(&["agents", "create", "--name", "Support"], None);
    let shown = cli.ok(&["agents", "show", "Support"], None);
    assert!(
        shown.contains("Speech:      none (SIP calls need them"),
        "{shown}"
    );

    let mut set = SET.to_vec();
    set.push("--speech-key-stdin");
    let out = cli.ok(&set, Some(&format!("{SPEECH_KEY}\n")));
    assert!(
        out.contains(
            "Speech:      speech-to-text whisper-1 at https://stt.example/v1/audio/transcriptions; \
             text-to-speech tts-1 (voice alloy) at https://tts.example/v1/audio/speech; key ••••••••"
        ),
        "{out}"
    );
    let json = cli.json(&["agents", "show", "Support"]);
    assert_eq!(
        json["speech"],
        serde_json::json!({
            "stt_url": "https://stt.example/v1", "stt_model": "whisper-1",
            "tts_url": "https://tts.example/v1", "tts_model": "tts-1",
            "tts_voice": "alloy", "key_set": true,
        })
    );
    let list = cli.json(&["agents", "list"]);
    let audit = cli.ok(&["audit"], None);
    for text in [out, json.to_string(), list.to_string(), audit.clone()] {
        assert!(!text.contains(SPEECH_KEY), "the key is never shown: {text}");
    }
    assert!(audit.contains("speech key (secret replaced)"), "{audit}");

    // Sealed at rest, under the speech key's own field; it opens to what was typed.
    let agent = env.channels.find_agent("Support").await.unwrap();
    assert!(!agent.speech.contains(SPEECH_KEY), "{}", agent.speech);
    assert!(agent.speech.contains("ciphertext"), "{}", agent.speech);
    let opened = open_key(&env.channels, &agent).unwrap().unwrap();
    assert_eq!(opened.expose(), SPEECH_KEY);
    assert!(!format!("{agent:?}").contains(SPEECH_KEY));

    // Pointing the stored key somewhere else needs the key again.
    let moved = cli.run(
        &[
            "agents",
            "edit",
            "Support",
            "--tts-url",
            "https://attacker.example/v1",
        ],
        None,
    );
    assert_ne!(moved.code(), 0, "{}", moved.all());
    assert!(
        moved.all().contains(
            "the speech URL changed to https://attacker.example/v1/audio/speech: the stored \
             speech key would be sent there. Enter the key again to confirm (--speech-key-stdin)"
        ),
        "{}",
        moved.all()
    );
    let json = cli.json(&["agents", "show", "Support"]);
    assert_eq!(
        json["speech"]["tts_url"], "https://tts.example/v1",
        "unchanged"
    );
    // A voice is no destination; a URL with the key typed again is accepted.
    cli.ok(&["agents", "edit", "Support", "--tts-voice", "nova"], None);
    cli.ok(
        &[
            "agents",
            "edit",
            "Support",
            "--tts-url",
            "https://tts2.example/v1",
            "--speech-key-stdin",
        ],
        Some(SPEECH_KEY),
    );
    let json = cli.json(&["agents", "show", "Support"]);
    assert_eq!(json["speech"]["tts_url"], "https://tts2.example/v1");
    assert_eq!(json["speech"]["tts_voice"], "nova");

    // Bad input: clear messages, nothing saved.
    for (args, says) in [
        (
            vec!["--stt-url", "file:///etc/passwd"],
            "--stt-url 'file:///etc/passwd' is not an http(s) URL",
        ),
        (
            vec!["--tts-model", ""],
            "--tts-model is required with --tts-url (e.g. tts-1)",
        ),
    ] {
        let mut all = vec!["agents", "edit", "Support"];
        all.extend(args);
        let r = cli.run(&all, None);
        assert_ne!(r.code(), 0, "{}", r.all());
        assert!(r.all().contains(says), "{}", r.all());
    }
    let r = cli.run(
        &[
            "agents",
            "edit",
            "Support",
            "--no-speech",
            "--stt-model",
            "x",
        ],
        None,
    );
    assert_ne!(r.code(), 0);
    assert!(r.stderr().contains("--no-speech"), "{}", r.all());

    // Cleared: settings and key gone.
    let out = cli.ok(&["agents", "edit", "Support", "--no-speech"], None);
    assert!(out.contains("Speech:      none"), "{out}");
    let json = cli.json(&["agents", "show", "Support"]);
    assert_eq!(json["speech"]["key_set"], false);
    assert_eq!(json["speech"]["stt_url"], "");
    let agent = env.channels.find_agent("Support").await.unwrap();
    assert!(!agent.speech.contains("ciphertext"), "{}", agent.speech);
}

/// The agent "Support" with speech engines on the sandbox, its key stored sealed.
async fn speaking_agent(env: &common::ChannelsEnv, sandbox: &OpenAiSandbox) -> SpeechClient {
    let url = sandbox.url();
    let edit = flametree::agents::service::AgentEdit {
        speech: Some(flametree::agents::speech::SpeechEdit {
            stt_url: Some(url.clone()),
            stt_model: Some("whisper-1".into()),
            tts_url: Some(format!("{url}/audio/speech")),
            tts_model: Some("tts-1".into()),
            tts_voice: Some("alloy".into()),
            key: Some(SecretString::new(SPEECH_KEY)),
            clear: false,
        }),
        ..Default::default()
    };
    let agent = env.channels.create_agent("Support", edit).await.unwrap();
    SpeechClient::for_agent(&env.channels, &agent, reqwest::Client::new()).unwrap()
}

fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

async fn speech_round_trips_through_the_sandbox(be: Be) {
    let env = common::channels_env_on(be).await;
    let sandbox = OpenAiSandbox::start(Some(SPEECH_KEY)).await.unwrap();
    let client = speaking_agent(&env, &sandbox).await;
    assert!(!format!("{client:?}").contains(SPEECH_KEY));

    let said = "Hello! Your order 1234 ships on Monday — danke schön.";
    let audio = client.speak(said).await.unwrap();
    // Audible and as long as the tune: 8 kHz, two 50 ms tones a byte, 200 ms silence.
    let expected = (said.len() * 100 + 200) * 8;
    assert!(
        audio.len().abs_diff(expected) < 80,
        "{} samples, expected about {expected}",
        audio.len()
    );
    assert!(
        rms(&audio) > 3000.0,
        "a real signal, not silence: {}",
        rms(&audio)
    );
    let heard = client.transcribe(&audio).await.unwrap();
    assert_eq!(heard, said);

    let requests = sandbox.requests();
    assert_eq!(requests[0]["model"], "tts-1");
    assert_eq!(requests[0]["voice"], "alloy");
    assert_eq!(requests[0]["response_format"], "wav");
    assert_eq!(requests[0]["input"], said);
    assert_eq!(requests[1]["model"], "whisper-1");
    // A 16-bit WAV of the call's audio: 44 header bytes and two bytes a sample.
    assert_eq!(requests[1]["file_bytes"], audio.len() * 2 + 44);

    // Audio that is not the sandbox's tune gets a fixed note, not a guess.
    let hum: Vec<i16> = (0..8000).map(|i| ((i % 80) as i16 - 40) * 300).collect();
    let heard = client.transcribe(&hum).await.unwrap();
    assert_eq!(heard, "(sandbox: 1.0 s of audio that is not its tone code)");
}

/// Client errors name the endpoint and the HTTP status; the key appears nowhere.
#[tokio::test]
async fn engine_errors_name_the_url_and_status_never_the_key() {
    let sandbox = OpenAiSandbox::start(Some("sk-the-right-key"))
        .await
        .unwrap();
    let url = sandbox.url();
    let config = SpeechConfig {
        stt_url: url.clone(),
        stt_model: "whisper-1".into(),
        tts_url: url.clone(),
        tts_model: "tts-1".into(),
        tts_voice: "alloy".into(),
        api_key: None,
    };
    let wrong = SpeechClient::new(
        config.clone(),
        Some(SecretString::new(SPEECH_KEY)),
        reqwest::Client::new(),
    );
    let e = wrong.speak("hello").await.unwrap_err();
    assert_eq!(
        e,
        format!(
            "the text-to-speech engine at {url}/audio/speech refused the speech key \
             (401 Unauthorized): set it again with `agents edit … --speech-key-stdin`"
        )
    );
    let e = wrong.transcribe(&[0; 800]).await.unwrap_err();
    assert!(
        e.starts_with(&format!(
            "the speech-to-text engine at {url}/audio/transcriptions refused the speech key (401"
        )),
        "{e}"
    );

    let right = SpeechClient::new(
        config.clone(),
        Some(SecretString::new("sk-the-right-key")),
        reqwest::Client::new(),
    );
    sandbox.fail_next(1);
    let e = right.speak("hello").await.unwrap_err();
    assert!(
        e.starts_with(&format!(
            "the text-to-speech engine at {url}/audio/speech answered 500 Internal Server Error: "
        )),
        "{e}"
    );
    assert!(!e.contains("sk-the-right-key"), "{e}");

    drop(sandbox);
    let gone = SpeechClient::new(
        SpeechConfig {
            tts_url: "http://127.0.0.1:9/v1".into(),
            ..config
        },
        Some(SecretString::new(SPEECH_KEY)),
        reqwest::Client::new(),
    );
    let e = gone.speak("hello").await.unwrap_err();
    assert!(
        e.starts_with(
            "cannot reach the text-to-speech engine at http://127.0.0.1:9/v1/audio/speech"
        ),
        "{e}"
    );
    assert!(!e.contains(SPEECH_KEY), "{e}");
}

/// `secrets rotate` re-seals the speech key with the rest; it opens afterwards.
async fn the_speech_key_is_rotated_with_every_secret(be: Be) {
    let env = common::channels_env_on(be).await;
    // The key in a file of the data directory (rotation rewrites it).
    let cli = Cli::new(env.dir.path()).with_database(&env.url);
    cli.ok(&["agents", "create", "--name", "Support"], None);
    let mut set = SET.to_vec();
    set.push("--speech-key-stdin");
    cli.ok(&set, Some(SPEECH_KEY));
    let before = cli.json(&["secrets", "status"]);
    assert_eq!(before["keys"][0]["secrets"], 1, "{before}");
    let out = cli.ok(&["secrets", "rotate"], None);
    assert!(out.contains("Re-sealed 1 secret(s)"), "{out}");
    let after = cli.json(&["secrets", "status"]);
    assert_ne!(after["key_in_use"], before["key_in_use"]);
    assert_eq!(after["keys"][0]["secrets"], 1, "{after}");
    let info = cli.run(&["info"], None).all();
    assert!(!info.contains("cannot decrypt"), "{info}");
    assert!(!info.contains("speech key of agent"), "{info}");
}

on_both!(
    the_speech_key_is_rotated_with_every_secret,
    the_cli_sets_shows_and_clears_speech_engines,
    speech_round_trips_through_the_sandbox,
);
