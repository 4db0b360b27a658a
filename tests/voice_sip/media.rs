//! The caller's side of a call test: SIPp dialling with `caller.xml`, a pcap of the
//! caller's RTP (written here byte by byte), and a socket that hears the line's RTP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Rtp {
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

/// The first `n` RTP packets arriving on `ear`, with when each came (10 s at most).
pub async fn listen(ear: &tokio::net::UdpSocket, n: usize) -> Vec<(Instant, Rtp)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < n {
        let Ok(Ok(len)) = tokio::time::timeout_at(deadline, ear.recv(&mut buf)).await else {
            break;
        };
        let b = &buf[..len];
        assert!(len >= 12 && b[0] >> 6 == 2, "RTP version 2");
        got.push((
            Instant::now(),
            Rtp {
                payload_type: b[1] & 0x7F,
                seq: u16::from_be_bytes([b[2], b[3]]),
                timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
                payload: b[12..].to_vec(),
            },
        ));
    }
    got
}

pub fn ulaw_decode(b: u8) -> i16 {
    flametree::connectors::sip::g711::ulaw_decode(b)
}

fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0x80, (u8::from(marker) << 7) | pt];
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&0x0BAD_CAFEu32.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// A libpcap file (Ethernet / IPv4 / UDP) of `packets`, each `(ms from the start,
/// RTP bytes)`: what SIPp's `play_pcap_audio` replays, at the recorded pace.
fn pcap(packets: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65_535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (ms, rtp) in packets {
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        let sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = !(((sum & 0xFFFF) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&6000u16.to_be_bytes());
        frame.extend_from_slice(&6002u16.to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(rtp);
        f.extend_from_slice(&(ms / 1000).to_le_bytes());
        f.extend_from_slice(&((ms % 1000) * 1000).to_le_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.extend_from_slice(&frame);
    }
    f
}

/// The caller's RTP: half a second of μ-law silence, then each key as an RFC 4733
/// event (three updates, the end packet three times, as phones send it), then more
/// silence.
pub fn caller_pcap(keys: &[char]) -> Vec<u8> {
    let mut packets = Vec::new();
    let (mut seq, mut ts, mut ms) = (100u16, 8_000u32, 0u32);
    let silence =
        |packets: &mut Vec<(u32, Vec<u8>)>, seq: &mut u16, ts: &mut u32, ms: &mut u32, n| {
            for _ in 0..n {
                packets.push((*ms, rtp(0, false, *seq, *ts, &[0xFF; 160])));
                *seq = seq.wrapping_add(1);
                *ts += 160;
                *ms += 20;
            }
        };
    silence(&mut packets, &mut seq, &mut ts, &mut ms, 25);
    for key in keys {
        let event = match key {
            '0'..='9' => *key as u8 - b'0',
            '*' => 10,
            '#' => 11,
            _ => panic!("not a key: {key}"),
        };
        for (i, end) in [false, false, false, true, true, true]
            .into_iter()
            .enumerate()
        {
            let duration = 160 * (i as u16 + 1).min(4);
            let mut payload = vec![event, if end { 0x8A } else { 0x0A }];
            payload.extend_from_slice(&duration.to_be_bytes());
            packets.push((ms, rtp(101, i == 0, seq, ts, &payload)));
            seq = seq.wrapping_add(1);
            ms += 20;
        }
        ts += 640;
        silence(&mut packets, &mut seq, &mut ts, &mut ms, 10);
    }
    silence(&mut packets, &mut seq, &mut ts, &mut ms, 10);
    pcap(&packets)
}

/// The caller saying `text` in the OpenAI sandbox's tone code (which its transcription
/// reads back), as μ-law RTP after a second of silence, then 1.5 s of silence.
pub fn caller_saying(text: &str) -> Vec<u8> {
    let mut pcm = vec![0i16; 8_000];
    pcm.extend(flametree::sandbox::speech::encode(text, 8_000));
    pcm.extend(vec![0i16; 12_000]);
    let packets = pcm
        .chunks(160)
        .enumerate()
        .map(|(i, frame)| {
            let mut frame = frame.to_vec();
            frame.resize(160, 0);
            let payload: Vec<u8> = frame
                .iter()
                .map(|&s| flametree::connectors::sip::g711::ulaw_encode(s))
                .collect();
            let i = i as u32;
            (
                i * 20,
                rtp(0, i == 0, 500 + i as u16, 1_000 + i * 160, &payload),
            )
        })
        .collect::<Vec<_>>();
    pcap(&packets)
}

/// SIPp calling the line at 127.0.0.1:`line` with audio to 127.0.0.1:`ear`.
pub struct Caller {
    dir: PathBuf,
    line: u16,
    ear: u16,
    pcap: PathBuf,
    formats: String,
    hold_ms: u64,
    scenario: &'static str,
}

pub struct Running {
    child: Child,
    messages: PathBuf,
}

/// A free UDP port on 127.0.0.1 (free when asked; SIPp and flametree bind it next).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Caller {
    pub fn dial(dir: &Path, line: u16, ear: u16) -> Caller {
        Caller {
            dir: dir.to_path_buf(),
            line,
            ear,
            pcap: PathBuf::new(),
            formats: "0 101".into(),
            hold_ms: 1000,
            scenario: "caller.xml",
        }
    }

    pub fn pcap(mut self, pcap: &Path) -> Caller {
        self.pcap = pcap.to_path_buf();
        self
    }

    pub fn formats(mut self, formats: &str) -> Caller {
        self.formats = formats.into();
        self
    }

    /// The caller waits for the line's BYE instead of hanging up itself.
    pub fn until_hung_up(mut self) -> Caller {
        self.scenario = "hung_up_on.xml";
        self
    }

    pub fn hold_ms(mut self, ms: u64) -> Caller {
        self.hold_ms = ms;
        self
    }

    pub fn start(self) -> Running {
        let port = free_udp_port();
        let messages = self.dir.join(format!("caller-{port}-messages.log"));
        let scenario = format!(
            "{}/tests/fixtures/sipp/{}",
            env!("CARGO_MANIFEST_DIR"),
            self.scenario
        );
        let child = Command::new("sipp")
            .args(["-sf", &scenario, &format!("127.0.0.1:{}", self.line)])
            .args(["-s", "flametree-bot", "-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-mp", &free_udp_port().to_string()])
            .args(["-m", "1", "-timeout", "30", "-nostdin", "-trace_msg"])
            .arg("-message_file")
            .arg(&messages)
            .args(["-key", "audio_port", &self.ear.to_string()])
            .args(["-key", "formats", &self.formats])
            .args(["-d", &self.hold_ms.to_string()])
            .arg("-key")
            .arg("pcap")
            .arg(&self.pcap)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join(format!("caller-{port}.err"))).unwrap())
            .spawn()
            .expect("sipp runs (Debian package sip-tester)");
        Running { child, messages }
    }
}

impl Running {
    pub fn messages(&self) -> String {
        let err = self
            .messages
            .to_string_lossy()
            .replace("-messages.log", ".err");
        std::fs::read_to_string(&self.messages).unwrap_or_default()
            + &std::fs::read_to_string(err).unwrap_or_default()
    }

    /// SIPp's message log once it has exited (killed after `secs`).
    pub async fn finish(mut self, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        std::fs::read_to_string(&self.messages).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
