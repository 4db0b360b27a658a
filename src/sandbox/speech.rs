//! The OpenAI sandbox's speech endpoints, and the tone code that makes them honest
//! without a speech model: `/audio/speech` says the text as a tune — each UTF-8 byte
//! as two tones, one per half-byte, 40 ms each with 10 ms between, at 600 + 180·n Hz
//! (n = 0…15: 600–3300 Hz, inside the telephone band) after 100 ms of silence — and
//! `/audio/transcriptions` listens for that tune (Goertzel filters on the 16
//! frequencies) and writes back the text. So speak → transcribe returns the text, also
//! after the audio went through 8 kHz, as a call carries it; audio that is not the tone
//! code (a real voice) transcribes to a fixed note saying so, with its duration.

const LEAD_MS: u32 = 100;
const TONE_MS: u32 = 40;
const STEP_MS: u32 = 50;
const RAMP_MS: u32 = 5;
const AMPLITUDE: f64 = 12_000.0;

fn frequency(nibble: u8) -> f64 {
    600.0 + 180.0 * f64::from(nibble)
}

/// `text` as the tone code, at `rate` Hz.
pub fn encode(text: &str, rate: u32) -> Vec<i16> {
    let per_ms = rate as usize / 1000;
    let mut out = vec![0i16; LEAD_MS as usize * per_ms];
    let tone_len = TONE_MS as usize * per_ms;
    let ramp = RAMP_MS as usize * per_ms;
    for byte in text.bytes() {
        for nibble in [byte >> 4, byte & 0x0F] {
            let f = frequency(nibble);
            for i in 0..tone_len {
                // Faded in and out: no clicks between tones.
                let edge = i.min(tone_len - 1 - i);
                let gain = (edge as f64 / ramp as f64).min(1.0);
                let phase = std::f64::consts::TAU * f * i as f64 / f64::from(rate);
                out.push((AMPLITUDE * gain * phase.sin()) as i16);
            }
            out.extend(std::iter::repeat_n(
                0,
                (STEP_MS - TONE_MS) as usize * per_ms,
            ));
        }
    }
    out.extend(std::iter::repeat_n(0, LEAD_MS as usize * per_ms));
    out
}

/// The power of `f` in `window` (Goertzel).
fn power(window: &[i16], f: f64, rate: u32) -> f64 {
    let k = 2.0 * (std::f64::consts::TAU * f / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in window {
        let s = f64::from(x) + k * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - k * s1 * s2
}

/// The text the tone code in `samples` carries; `None` when it is not the tone code.
pub fn decode(samples: &[i16], rate: u32) -> Option<String> {
    let per_ms = (rate / 1000) as usize;
    if per_ms == 0 {
        return None;
    }
    let loud = 2_000;
    let Some(start) = samples.iter().position(|s| s.unsigned_abs() > loud) else {
        return Some(String::new());
    };
    let mut nibbles = Vec::new();
    let mut at = start;
    // Listen to the middle of each tone: the onset found may be a ramp's few ms late.
    while at + (TONE_MS as usize - 5) * per_ms <= samples.len() {
        let window = &samples[at + 2 * per_ms..at + (TONE_MS as usize - 8) * per_ms];
        let energy: f64 = window.iter().map(|&s| f64::from(s).powi(2)).sum();
        if energy / (window.len() as f64) < f64::from(loud).powi(2) / 4.0 {
            break;
        }
        let mut powers: Vec<(f64, u8)> = (0..16u8)
            .map(|n| (power(window, frequency(n), rate), n))
            .collect();
        powers.sort_by(|a, b| b.0.total_cmp(&a.0));
        // One clear tone, or this is not the code.
        if powers[0].0 < 8.0 * powers[1].0 {
            return None;
        }
        nibbles.push(powers[0].1);
        at += STEP_MS as usize * per_ms;
    }
    // Anything loud after the code ended is not the code either.
    if nibbles.len() % 2 == 1
        || samples[at.min(samples.len())..]
            .iter()
            .any(|s| s.unsigned_abs() > loud)
    {
        return None;
    }
    let bytes: Vec<u8> = nibbles
        .chunks_exact(2)
        .map(|p| (p[0] << 4) | p[1])
        .collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// What the sandbox transcribes `samples` to.
pub fn transcribe(samples: &[i16], rate: u32) -> String {
    decode(samples, rate).unwrap_or_else(|| {
        format!(
            "(sandbox: {:.1} s of audio that is not its tone code)",
            samples.len() as f64 / f64::from(rate.max(1))
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::audio::resample;

    #[test]
    fn the_tone_code_survives_the_telephone_rate() {
        for text in ["Hello, I'd like to order 12 roses.", "Grüße, 価格?", ""] {
            let spoken = encode(text, 24_000);
            assert_eq!(decode(&spoken, 24_000).as_deref(), Some(text));
            let call = resample(&spoken, 24_000, 8_000);
            assert_eq!(decode(&call, 8_000).as_deref(), Some(text));
        }
    }

    #[test]
    fn other_audio_is_not_taken_for_the_code() {
        // A chord of two of the code's own frequencies: no single clear tone.
        let chord: Vec<i16> = (0..8000)
            .map(|i| {
                let t = i as f64 / 8000.0;
                (6000.0
                    * ((t * 780.0 * std::f64::consts::TAU).sin()
                        + (t * 1500.0 * std::f64::consts::TAU).sin())) as i16
            })
            .collect();
        assert_eq!(decode(&chord, 8000), None);
        assert!(transcribe(&chord, 8000).contains("1.0 s of audio"));
    }
}
