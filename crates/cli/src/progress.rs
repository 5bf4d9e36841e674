//! Progress display: a spinner on stderr when it is a terminal, nothing otherwise;
//! with `--verbose`, one timed line per step instead.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Shows the current step of a long operation.
pub struct Spinner {
    bar: Option<ProgressBar>,
    /// Start time, when each step is logged.
    log: Option<Instant>,
}

impl Spinner {
    /// A spinner, shown only when stderr is a terminal and neither `--quiet` nor
    /// `--verbose` is given; `--verbose` logs each step instead.
    pub fn new(ctx: &crate::commands::Context) -> Self {
        let log = ctx.verbose.then(Instant::now);
        let show = !ctx.quiet && log.is_none() && std::io::stderr().is_terminal();
        let bar = show.then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Spinner { bar, log }
    }

    /// Clears the spinner.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl crmcube_ingest::Progress for Spinner {
    fn step(&self, message: &str) {
        if let Some(b) = &self.bar {
            b.set_message(message.to_string());
        }
        if let Some(t0) = self.log {
            eprintln!("[{:>8.2}s] {message}", t0.elapsed().as_secs_f64());
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.finish();
    }
}
