//! Case progress of a runner's run.

use super::status::{State, Status};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

/// Case progress: a bar on a terminal, else one line per case.
pub(super) struct Progress {
    pub(super) bar: indicatif::ProgressBar,
    lines: bool,
    quiet: bool,
    pub(super) started: Instant,
    counts: Mutex<(usize, usize)>,
}

impl Progress {
    pub(super) fn new(command: &str, total: usize, quiet: bool) -> Progress {
        let tty = !quiet && std::io::stderr().is_terminal();
        let bar = if tty {
            indicatif::ProgressBar::new(total as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_length(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} cases {msg} ETA {eta}",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        bar.set_prefix(command.to_string());
        Progress {
            bar,
            lines: !tty,
            quiet,
            started: Instant::now(),
            counts: Mutex::new((0, 0)),
        }
    }

    pub(super) fn ended(&self, st: &Status) {
        let mut c = self.counts.lock().expect("lock");
        match st.state {
            State::Done => c.0 += 1,
            State::Failed => c.1 += 1,
        }
        let (done, failed) = *c;
        let per_hour =
            (done + failed) as f64 * 3600.0 / self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar.inc(1);
        self.bar.set_message(format!(
            "({done} done, {failed} failed, {per_hour:.1} cases/h)"
        ));
        let (n, len) = (self.bar.position(), self.bar.length().unwrap_or(0));
        drop(c);
        let line = match (&st.state, &st.error) {
            (State::Failed, Some(e)) => Some(format!("case {} failed: {e}", st.id)),
            _ if self.lines && !self.quiet => Some(format!(
                "case {} done in {:.1} s [{n}/{len}]",
                st.id, st.timings.total_s
            )),
            _ => None,
        };
        if let Some(l) = line {
            self.bar.suspend(|| eprintln!("{l}"));
        }
    }

    pub(super) fn busy(&self, id: &str) {
        let c = self.counts.lock().expect("lock");
        self.bar.inc(1);
        drop(c);
        self.bar
            .suspend(|| eprintln!("case {id} is running in another process; skipped"));
    }
}
