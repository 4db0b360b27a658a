//! RTP (RFC 3550) packets, a small reordering jitter buffer for what arrives, and
//! RFC 4733 telephone events.

use std::collections::BTreeMap;

/// One G.711 frame: 20 ms at 8 kHz.
pub const FRAME: usize = 160;

#[derive(Debug, PartialEq, Eq)]
pub struct Packet {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

impl Packet {
    /// The bytes on the wire (version 2, no padding, extension or CSRCs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(12 + self.payload.len());
        b.push(0x80);
        b.push(u8::from(self.marker) << 7 | (self.payload_type & 0x7F));
        b.extend_from_slice(&self.seq.to_be_bytes());
        b.extend_from_slice(&self.timestamp.to_be_bytes());
        b.extend_from_slice(&self.ssrc.to_be_bytes());
        b.extend_from_slice(&self.payload);
        b
    }

    /// None for anything that is not an RTP version 2 packet (RTCP on the wrong port,
    /// stray datagrams).
    pub fn parse(b: &[u8]) -> Option<Packet> {
        if b.len() < 12 || b[0] >> 6 != 2 {
            return None;
        }
        let csrcs = usize::from(b[0] & 0x0F);
        let mut start = 12 + 4 * csrcs;
        if b[0] & 0x10 != 0 {
            let ext = b.get(start + 2..start + 4)?;
            start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
        }
        let mut end = b.len();
        if b[0] & 0x20 != 0 {
            end = end.checked_sub(usize::from(*b.last()?))?;
        }
        let payload_type = b[1] & 0x7F;
        // 72–76 are RTCP packet types arriving on the RTP port (RFC 5761).
        if (72..=76).contains(&payload_type) || start > end {
            return None;
        }
        Some(Packet {
            marker: b[1] & 0x80 != 0,
            payload_type,
            seq: u16::from_be_bytes([b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            payload: b[start..end].to_vec(),
        })
    }
}

/// Puts received packets back in sequence order: holds up to `depth` of them waiting
/// for a missing one, then gives up on it; late and duplicate packets are dropped.
pub struct Jitter {
    depth: usize,
    /// The extended (wrap-free) sequence number expected next.
    next: Option<u64>,
    held: BTreeMap<u64, Packet>,
    pub dropped: u64,
}

impl Jitter {
    pub fn new(depth: usize) -> Jitter {
        Jitter {
            depth,
            next: None,
            held: BTreeMap::new(),
            dropped: 0,
        }
    }

    pub fn push(&mut self, p: Packet) {
        // Start high so sequence numbers a little before the first stay positive.
        let next = *self.next.get_or_insert(u64::from(p.seq) + (1 << 32));
        let offset = i64::from(p.seq.wrapping_sub(next as u16) as i16);
        let ext = next.wrapping_add_signed(offset);
        if offset < 0 || self.held.contains_key(&ext) {
            self.dropped += 1;
            return;
        }
        self.held.insert(ext, p);
    }

    /// The next packet in order, if it is here or waiting for it is over.
    pub fn pop(&mut self) -> Option<Packet> {
        let next = self.next?;
        let (&first, _) = self.held.first_key_value()?;
        if first != next && self.held.len() <= self.depth {
            return None;
        }
        let p = self.held.remove(&first)?;
        self.next = Some(first + 1);
        Some(p)
    }
}

/// RFC 4733 §3.2: one telephone event (a DTMF key) and whether it has ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Tone {
    pub key: char,
    pub end: bool,
}

pub fn telephone_event(payload: &[u8]) -> Option<Tone> {
    let event = *payload.first()?;
    let flags = *payload.get(1)?;
    let key = match event {
        0..=9 => char::from(b'0' + event),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + event - 12),
        _ => return None,
    };
    Some(Tone {
        key,
        end: flags & 0x80 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16) -> Packet {
        Packet {
            marker: false,
            payload_type: 0,
            seq,
            timestamp: u32::from(seq) * 160,
            ssrc: 0x1234_5678,
            payload: vec![0xFF; FRAME],
        }
    }

    #[test]
    fn packets_round_trip_through_bytes() {
        let p = Packet {
            marker: true,
            ..pkt(65_535)
        };
        let b = p.to_bytes();
        assert_eq!(&b[..4], &[0x80, 0x80, 0xFF, 0xFF]);
        assert_eq!(b.len(), 172);
        assert_eq!(Packet::parse(&b), Some(p));
        assert_eq!(Packet::parse(&[0x40; 20]), None, "not version 2");
        assert_eq!(Packet::parse(&[0x80, 0xC8, 0, 0]), None, "too short");
    }

    #[test]
    fn the_jitter_buffer_reorders_and_drops_late_and_duplicates() {
        let mut j = Jitter::new(3);
        for seq in [65_534, 0, 65_535, 0, 1] {
            j.push(pkt(seq));
        }
        let order: Vec<u16> = std::iter::from_fn(|| j.pop()).map(|p| p.seq).collect();
        assert_eq!(order, [65_534, 65_535, 0, 1], "across the wrap");
        j.push(pkt(65_535));
        assert_eq!(j.pop(), None, "late");
        assert_eq!(j.dropped, 2, "one duplicate, one late");
    }

    #[test]
    fn a_lost_packet_is_waited_for_only_up_to_the_depth() {
        let mut j = Jitter::new(2);
        j.push(pkt(10));
        assert_eq!(j.pop().map(|p| p.seq), Some(10));
        j.push(pkt(12));
        j.push(pkt(13));
        assert_eq!(j.pop(), None, "11 may still come");
        j.push(pkt(14));
        assert_eq!(j.pop().map(|p| p.seq), Some(12), "11 given up");
        j.push(pkt(11));
        assert_eq!(j.pop().map(|p| p.seq), Some(13), "11 came too late");
        assert_eq!(j.dropped, 1);
    }

    #[test]
    fn telephone_events_name_their_key() {
        assert_eq!(
            telephone_event(&[11, 0x8A, 0x03, 0x20]),
            Some(Tone {
                key: '#',
                end: true
            })
        );
        assert_eq!(
            telephone_event(&[5, 0x0A, 0, 160]),
            Some(Tone {
                key: '5',
                end: false
            })
        );
        assert_eq!(telephone_event(&[42, 0x80, 0, 0]), None);
    }
}
