//! Progress bars: `indicatif` on a terminal, wired into rustic_core's progress traits; hidden otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustic_core::{Progress, ProgressBars, ProgressType, RusticProgress};

/// Creates bars for rustic_core when stderr is a terminal and output is not quiet.
#[derive(Debug, Clone, Copy)]
pub struct Bars {
    visible: bool,
}

impl Bars {
    pub fn new(quiet: bool) -> Self {
        Self {
            visible: !quiet && std::io::stderr().is_terminal(),
        }
    }
}

impl ProgressBars for Bars {
    fn progress(&self, progress_type: ProgressType, prefix: &str) -> Progress {
        if !self.visible {
            return Progress::hidden();
        }
        let template = match progress_type {
            ProgressType::Spinner => "{spinner} {prefix:30} [{elapsed_precise}]",
            ProgressType::Counter => "{spinner} {prefix:30} [{elapsed_precise}] {wide_bar} {pos:>10}/{len:10}",
            ProgressType::Bytes => {
                "{spinner} {prefix:30} [{elapsed_precise}] {wide_bar} {bytes:>10}/{total_bytes:10} {bytes_per_sec:12}"
            }
        };
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_prefix(prefix.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress::new(Bar(bar))
    }
}

/// A spinner for one piece of long work, such as a runbook step, on a terminal only.
pub fn spinner(label: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.set_message(label.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

#[derive(Debug)]
struct Bar(ProgressBar);

impl RusticProgress for Bar {
    fn is_hidden(&self) -> bool {
        false
    }
    fn set_length(&self, len: u64) {
        self.0.set_length(len);
    }
    fn set_title(&self, title: &str) {
        self.0.set_prefix(title.to_string());
    }
    fn inc(&self, inc: u64) {
        self.0.inc(inc);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
