//! Progress on stderr: indicatif bars on a terminal, periodic plain log lines otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fineo_batch::progress::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// Picks bars or log lines depending on whether stderr is a terminal.
pub fn for_stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(Bars(Mutex::new(None)))
    } else {
        Box::new(Lines(Mutex::new(LineState::default())))
    }
}

/// The current bar and the bytes it has read.
struct Bars(Mutex<Option<(ProgressBar, u64)>>);

impl Progress for Bars {
    fn start(&self, phase: &str, total: Option<u64>) {
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len} {msg} {elapsed}")
                    .expect("template")
                    .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner(),
        };
        bar.set_prefix(phase.to_string());
        *self.0.lock().expect("progress lock") = Some((bar, 0));
    }

    fn advance(&self, units: u64, bytes: u64) {
        if let Some((bar, read)) = self.0.lock().expect("progress lock").as_mut() {
            bar.inc(units);
            if bytes > 0 {
                *read += bytes;
                bar.set_message(indicatif::HumanBytes(*read).to_string());
            }
        }
    }

    fn finish(&self) {
        if let Some((bar, _)) = self.0.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
    }
}

#[derive(Default)]
struct LineState {
    phase: String,
    total: Option<u64>,
    done: u64,
    bytes: u64,
    started: Option<Instant>,
    last: Option<Instant>,
}

struct Lines(Mutex<LineState>);

impl Progress for Lines {
    fn start(&self, phase: &str, total: Option<u64>) {
        let mut s = self.0.lock().expect("progress lock");
        *s = LineState {
            phase: phase.into(),
            total,
            started: Some(Instant::now()),
            last: Some(Instant::now()),
            ..Default::default()
        };
        tracing::info!(phase, total, "phase started");
    }

    fn advance(&self, units: u64, bytes: u64) {
        let mut s = self.0.lock().expect("progress lock");
        s.done += units;
        s.bytes += bytes;
        if s.last
            .is_some_and(|l| l.elapsed() >= Duration::from_secs(10))
        {
            s.last = Some(Instant::now());
            tracing::info!(phase = %s.phase, done = s.done, total = s.total, bytes = s.bytes, "progress");
        }
    }

    fn finish(&self) {
        let s = self.0.lock().expect("progress lock");
        let secs = s.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        tracing::info!(phase = %s.phase, done = s.done, bytes = s.bytes, seconds = secs, "phase done");
    }
}
