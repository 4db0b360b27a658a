//! The little audio handling the speech engines need: 16-bit PCM WAV in and out, and
//! resampling to and from the telephone rate (8 kHz) that a SIP call carries.

/// What a telephone call carries (G.711 PCMU/PCMA).
pub const CALL_RATE: u32 = 8_000;

/// Mono 16-bit PCM WAV of `samples` at `rate`.
pub fn wav(samples: &[i16], rate: u32) -> Vec<u8> {
    let data = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// The samples (channels mixed down) and rate of a 16-bit PCM WAV. Streaming encoders
/// (OpenAI's among them) write 0xFFFFFFFF as the data length: the data then runs to
/// the end of the file.
pub fn read_wav(bytes: &[u8]) -> Result<(Vec<i16>, u32), String> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a WAV file".into());
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut at = 12;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32_at(at + 4) as usize;
        let body = at + 8;
        if id == b"fmt " {
            if body + 16 > bytes.len() {
                return Err("the WAV format chunk is cut short".into());
            }
            format = Some((
                u16_at(body),
                u16_at(body + 2),
                u32_at(body + 4),
                u16_at(body + 14),
            ));
        } else if id == b"data" {
            let (kind, channels, rate, bits) =
                format.ok_or("the WAV data comes before its format")?;
            // 0xFFFE is WAVE_FORMAT_EXTENSIBLE, which 16-bit PCM may also be written as.
            if !(kind == 1 || kind == 0xFFFE) || bits != 16 || channels == 0 {
                return Err(format!(
                    "the WAV is not 16-bit PCM (format {kind}, {bits} bits, {channels} channels)"
                ));
            }
            let end = body.saturating_add(len).min(bytes.len());
            let frame = 2 * channels as usize;
            let samples = bytes[body..end]
                .chunks_exact(frame)
                .map(|f| {
                    let sum: i32 = f
                        .chunks_exact(2)
                        .map(|s| i32::from(i16::from_le_bytes([s[0], s[1]])))
                        .sum();
                    (sum / i32::from(channels)) as i16
                })
                .collect();
            return Ok((samples, rate));
        }
        // Chunks are padded to an even length.
        at = body.saturating_add(len + (len & 1));
    }
    Err("the WAV has no audio data".into())
}

/// `samples` at `from` Hz, at `to` Hz. Going down, each output sample is the mean of
/// the input samples it covers (a box filter: enough to keep what is above the new
/// Nyquist frequency from folding back as noise in speech); going up, linear
/// interpolation.
pub fn resample(samples: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || samples.is_empty() || from == 0 || to == 0 {
        return samples.to_vec();
    }
    let n = (samples.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let ratio = f64::from(from) / f64::from(to);
    (0..n)
        .map(|i| {
            if from > to {
                let start = (i as f64 * ratio) as usize;
                let end = (((i + 1) as f64 * ratio) as usize).clamp(start + 1, samples.len());
                let sum: i64 = samples[start..end].iter().map(|&s| i64::from(s)).sum();
                (sum / (end - start) as i64) as i16
            } else {
                let x = i as f64 * ratio;
                let j = x as usize;
                let frac = x - j as f64;
                let a = f64::from(samples[j]);
                let b = f64::from(*samples.get(j + 1).unwrap_or(&samples[j]));
                (a + (b - a) * frac).round() as i16
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_round_trips_and_streaming_lengths_are_read_to_the_end() {
        let samples: Vec<i16> = (0..800).map(|i| ((i * 97) % 2000 - 1000) as i16).collect();
        let bytes = wav(&samples, 8000);
        assert_eq!(read_wav(&bytes).unwrap(), (samples.clone(), 8000));
        let mut streamed = bytes.clone();
        streamed[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read_wav(&streamed).unwrap().0, samples);
        assert!(read_wav(b"ID3\x04 not a wav").is_err());
    }

    #[test]
    fn resampling_keeps_the_duration_and_the_level() {
        let tone: Vec<i16> = (0..24_000)
            .map(|i| (8000.0 * (i as f64 * 440.0 * std::f64::consts::TAU / 24_000.0).sin()) as i16)
            .collect();
        let down = resample(&tone, 24_000, 8_000);
        assert_eq!(down.len(), 8_000);
        let peak = down.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(
            (7000..=8000).contains(&peak),
            "a 440 Hz tone keeps its level: {peak}"
        );
        assert_eq!(resample(&down, 8_000, 16_000).len(), 16_000);
    }
}
