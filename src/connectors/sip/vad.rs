//! Voice activity by energy: an utterance starts after a few loud frames and ends after
//! a hangover of quiet ones, so the pauses between words do not cut it.

use std::collections::VecDeque;

/// RMS above this (about −40 dBFS) counts as voice.
const THRESHOLD: f64 = 330.0;
/// 3 loud frames (60 ms) start an utterance: a click does not.
const START_FRAMES: usize = 3;
/// 35 quiet frames (700 ms) end it.
const END_FRAMES: usize = 35;
/// Frames kept from before the start, so the first syllable is not clipped.
const PREROLL: usize = 10;
/// An utterance is cut at 30 s (1500 frames) even if the caller goes on.
const MAX_FRAMES: usize = 1500;

#[derive(Default)]
pub struct Vad {
    loud_run: usize,
    quiet_run: usize,
    speaking: bool,
    before: VecDeque<Vec<i16>>,
    utterance: Vec<Vec<i16>>,
}

fn rms(frame: &[i16]) -> f64 {
    if frame.is_empty() {
        return 0.0;
    }
    let sum: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / frame.len() as f64).sqrt()
}

impl Vad {
    /// One 20 ms frame; a finished utterance when this frame ends one.
    pub fn push(&mut self, frame: Vec<i16>) -> Option<Vec<i16>> {
        let loud = rms(&frame) > THRESHOLD;
        if !self.speaking {
            self.loud_run = if loud { self.loud_run + 1 } else { 0 };
            self.before.push_back(frame);
            if self.before.len() > PREROLL + START_FRAMES {
                self.before.pop_front();
            }
            if self.loud_run >= START_FRAMES {
                self.speaking = true;
                self.quiet_run = 0;
                self.utterance = self.before.drain(..).collect();
            }
            return None;
        }
        self.quiet_run = if loud { 0 } else { self.quiet_run + 1 };
        self.utterance.push(frame);
        if self.quiet_run >= END_FRAMES || self.utterance.len() >= MAX_FRAMES {
            self.speaking = false;
            self.loud_run = 0;
            return Some(std::mem::take(&mut self.utterance).concat());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize) -> Vec<Vec<i16>> {
        (0..n)
            .map(|f| {
                (0..160)
                    .map(|i| ((((f * 160 + i) as f64) * 0.3).sin() * 4000.0) as i16)
                    .collect()
            })
            .collect()
    }

    fn quiet(n: usize) -> Vec<Vec<i16>> {
        vec![vec![12; 160]; n]
    }

    #[test]
    fn an_utterance_ends_after_the_hangover_and_keeps_short_pauses() {
        let mut vad = Vad::default();
        let frames = [quiet(20), tone(10), quiet(10), tone(10), quiet(40)].concat();
        let done: Vec<Vec<i16>> = frames.into_iter().filter_map(|f| vad.push(f)).collect();
        assert_eq!(done.len(), 1, "the 200 ms pause did not split it");
        // Pre-roll + 10 + 10 + 10 loud/quiet + 35 quiet frames of hangover.
        assert_eq!(done[0].len(), (PREROLL + 10 + 10 + 10 + END_FRAMES) * 160);
    }

    #[test]
    fn clicks_and_quiet_lines_are_not_utterances() {
        let mut vad = Vad::default();
        let frames = [quiet(50), tone(2), quiet(100)].concat();
        assert!(frames.into_iter().all(|f| vad.push(f).is_none()));
    }
}
