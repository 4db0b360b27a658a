//! SDP (RFC 4566) as much as a G.711 call needs: read the caller's offer (where to
//! send audio, which payload types it accepts) and write the answer.

use super::g711::Codec;
use std::net::{IpAddr, SocketAddr};

/// What the caller offered, reduced to what this user agent can use.
#[derive(Debug, PartialEq, Eq)]
pub struct Offer {
    /// Where the caller wants its audio.
    pub remote: SocketAddr,
    pub codec: Codec,
    /// The caller's RFC 4733 payload type, when it offered telephone-event.
    pub dtmf: Option<u8>,
}

/// Why an offer cannot be answered: each becomes a 488 with this reason.
pub fn read_offer(body: &str) -> Result<Offer, String> {
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut audio: Option<(u16, Vec<u8>)> = None;
    let mut rtpmap: Vec<(u8, String)> = Vec::new();
    let mut in_audio = false;
    for line in body.lines().map(str::trim) {
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        match kind {
            "m" => {
                let mut parts = value.split_whitespace();
                let media = parts.next().unwrap_or("");
                let port = parts.next().and_then(|p| p.split('/').next()?.parse().ok());
                let proto = parts.next().unwrap_or("");
                in_audio = media == "audio" && audio.is_none() && proto == "RTP/AVP";
                if in_audio {
                    let pts = parts.filter_map(|p| p.parse().ok()).collect();
                    audio = Some((port.unwrap_or(0), pts));
                }
            }
            "c" => {
                let ip = value
                    .split_whitespace()
                    .nth(2)
                    .and_then(|a| a.split('/').next()?.parse().ok());
                if audio.is_none() {
                    session_ip = ip;
                } else if in_audio {
                    media_ip = ip;
                }
            }
            "a" if in_audio => {
                if let Some(map) = value.strip_prefix("rtpmap:")
                    && let Some((pt, name)) = map.split_once(' ')
                    && let Ok(pt) = pt.trim().parse()
                {
                    rtpmap.push((pt, name.trim().to_ascii_lowercase()));
                }
            }
            _ => {}
        }
    }
    let Some((port, pts)) = audio else {
        return Err("the offer has no RTP/AVP audio stream".into());
    };
    let named = |pt: u8| {
        rtpmap
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, n)| n.as_str())
    };
    let codec = pts.iter().find_map(|&pt| match (pt, named(pt)) {
        (0, None) => Some(Codec::Pcmu),
        (8, None) => Some(Codec::Pcma),
        (_, Some(n)) if n.starts_with("pcmu/8000") => Some(Codec::Pcmu),
        (_, Some(n)) if n.starts_with("pcma/8000") => Some(Codec::Pcma),
        _ => None,
    });
    let Some(codec) = codec else {
        return Err("the offer has neither PCMU nor PCMA".into());
    };
    let dtmf = pts
        .iter()
        .copied()
        .find(|&pt| named(pt).is_some_and(|n| n.starts_with("telephone-event/8000")));
    let Some(ip) = media_ip.or(session_ip) else {
        return Err("the offer has no connection address (c=)".into());
    };
    if port == 0 {
        return Err("the offer's audio stream is disabled (port 0)".into());
    }
    Ok(Offer {
        remote: SocketAddr::new(ip, port),
        codec,
        dtmf,
    })
}

/// The answer: our address and port, the one codec chosen, telephone-event when the
/// caller offered it (on its payload type, as RFC 3264 asks).
pub fn answer(local: SocketAddr, offer: &Offer, session: u64) -> String {
    let pt = offer.codec.payload_type();
    let mut formats = pt.to_string();
    let mut attrs = format!("a=rtpmap:{pt} {}/8000\r\n", offer.codec.name());
    if let Some(te) = offer.dtmf {
        formats.push_str(&format!(" {te}"));
        attrs.push_str(&format!(
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\n"
        ));
    }
    description(local, session, &formats, &attrs)
}

/// The telephone-event payload type of our own offers.
const OUR_DTMF: u8 = 101;

/// Our offer on an outbound call: PCMU, then PCMA, and telephone-event; the callee's
/// answer (read with `read_offer`: it has the same shape) says which one it took.
pub fn offer(local: SocketAddr, session: u64) -> String {
    let attrs = format!(
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:{OUR_DTMF} telephone-event/8000\r\na=fmtp:{OUR_DTMF} 0-15\r\n"
    );
    description(local, session, &format!("0 8 {OUR_DTMF}"), &attrs)
}

/// A session with one audio stream at `local`.
fn description(local: SocketAddr, session: u64, formats: &str, attrs: &str) -> String {
    let family = if local.is_ipv4() { "IP4" } else { "IP6" };
    let ip = local.ip();
    format!(
        "v=0\r\no=flametree {session} {session} IN {family} {ip}\r\ns=flametree\r\n\
         c=IN {family} {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP {formats}\r\n{attrs}\
         a=ptime:20\r\na=sendrecv\r\n",
        local.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
        c=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\n\
        a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

    #[test]
    fn the_callers_first_g711_codec_is_chosen_with_its_dtmf_type() {
        let o = read_offer(OFFER).unwrap();
        assert_eq!(o.codec, Codec::Pcma);
        assert_eq!(o.dtmf, Some(101));
        assert_eq!(o.remote, "10.0.0.5:6000".parse().unwrap());
        let a = answer("192.168.1.2:10002".parse().unwrap(), &o, 7);
        assert!(a.contains("m=audio 10002 RTP/AVP 8 101\r\n"), "{a}");
        assert!(a.contains("c=IN IP4 192.168.1.2\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:8 PCMA/8000\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:101 telephone-event/8000\r\n"), "{a}");
    }

    #[test]
    fn static_types_need_no_rtpmap_and_media_c_wins() {
        let o = read_offer(
            "v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 4000 RTP/AVP 18 0\r\nc=IN IP4 2.2.2.2\r\n",
        )
        .unwrap();
        assert_eq!(o.codec, Codec::Pcmu);
        assert_eq!(o.dtmf, None);
        assert_eq!(o.remote, "2.2.2.2:4000".parse().unwrap());
        let a = answer("1.2.3.4:10000".parse().unwrap(), &o, 1);
        assert!(a.contains("m=audio 10000 RTP/AVP 0\r\n"), "{a}");
        assert!(!a.contains("telephone-event"), "{a}");
    }

    #[test]
    fn our_offer_lists_both_g711_codecs_and_reads_back() {
        let o = offer("192.168.1.2:10002".parse().unwrap(), 9);
        assert!(o.contains("m=audio 10002 RTP/AVP 0 8 101\r\n"), "{o}");
        assert!(o.contains("a=rtpmap:8 PCMA/8000\r\n"), "{o}");
        let read = read_offer(&o).unwrap();
        assert_eq!(read.codec, Codec::Pcmu);
        assert_eq!(read.dtmf, Some(101));
        assert_eq!(read.remote, "192.168.1.2:10002".parse().unwrap());
    }

    #[test]
    fn offers_without_g711_are_refused_with_a_reason() {
        let e = read_offer("v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 4000 RTP/AVP 18 9\r\n");
        assert_eq!(e.unwrap_err(), "the offer has neither PCMU nor PCMA");
        let e = read_offer("v=0\r\nc=IN IP4 1.1.1.1\r\nm=video 4000 RTP/AVP 96\r\n");
        assert_eq!(e.unwrap_err(), "the offer has no RTP/AVP audio stream");
        assert!(read_offer("").is_err());
    }
}
