//! One case's graph run in a child process (`voxflow run`), killed with the runner, and its
//! error output made one line.

use super::scores::{self, score_files};
use super::status::{write_atomic, Status, Timings};
use super::Prepared;
use super::Runner;
use serde_json::Value;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Why a case did not finish.
pub(super) enum Stop {
    Failed(String),
    /// The case was interrupted by a signal meant for the whole run: not recorded.
    Interrupted,
}

impl From<String> for Stop {
    fn from(m: String) -> Self {
        Stop::Failed(m)
    }
}

/// Name of the file in a case folder that keeps a failed run's whole error output.
pub const LOG_FILE: &str = "run.log";

/// One line for a failed child: its last `error:` line (else its last line), or how it ended.
fn child_error(stderr: &[u8], status: std::process::ExitStatus) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let msg = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("error: "))
        .or(lines.last())
        .map(|l| l.trim())
        .unwrap_or_default();
    let how = match (status.code(), status.signal()) {
        (_, Some(9)) => "killed by signal 9 (SIGKILL; out of memory?)".to_string(),
        (_, Some(s)) => format!("killed by signal {s}"),
        (Some(c), None) => format!("exit status {c}"),
        (None, None) => "ended abnormally".to_string(),
    };
    let msg = msg.strip_prefix("error: ").unwrap_or(msg);
    let more = if lines.len() > 1 {
        format!(" (whole output in {LOG_FILE})")
    } else {
        String::new()
    };
    if msg.is_empty() {
        format!("`voxflow run` {how}")
    } else if status.signal().is_some() {
        format!("{msg} (`voxflow run` {how}){more}")
    } else {
        format!("{msg}{more}")
    }
}

/// Runs the graph of one case in a child process, then scores it when truth is given.
pub(super) fn run_child(
    s: &Runner,
    prep: &Prepared,
    dir: &Path,
    timings: &mut Timings,
    status: &mut Status,
) -> Result<(), Stop> {
    let report = dir.join("report.json");
    // Results of an earlier run must not pass for this one's.
    let _ = std::fs::remove_file(&report);
    let _ = std::fs::remove_file(&prep.output);
    let exe = std::env::current_exe().map_err(|e| format!("cannot find voxflow itself: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("-q");
    for p in &s.plugins {
        cmd.arg("--plugin").arg(p);
    }
    cmd.arg("run").arg(&s.graph);
    for v in s
        .sets
        .iter()
        .cloned()
        .chain(prep.sets.iter().map(|(k, v)| format!("{k}={v}")))
    {
        cmd.arg("--set").arg(v);
    }
    cmd.arg("--report")
        .arg(&report)
        .arg("--threads")
        .arg(s.threads.to_string())
        .env("RAYON_NUM_THREADS", s.threads.to_string())
        .current_dir(&s.base)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The runner died before the prctl took effect.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start `voxflow run`: {e}"))?;
    if !out.status.success() {
        // `voxflow run` ends with 128 + the signal after cleaning up; or the signal ended it.
        let stop_signals = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
        if out
            .status
            .signal()
            .is_some_and(|s| stop_signals.contains(&s))
            || out
                .status
                .code()
                .is_some_and(|c| stop_signals.iter().any(|s| c == 128 + s))
        {
            return Err(Stop::Interrupted);
        }
        write_atomic(&dir.join(LOG_FILE), &out.stderr)?;
        return Err(child_error(&out.stderr, out.status).into());
    }
    if let Ok(text) = std::fs::read_to_string(&report) {
        if let Ok(r) = serde_json::from_str::<Value>(&text) {
            timings.graph_s = r["wall_ms"].as_f64().map(|ms| ms / 1000.0);
            status.peak_rss_bytes = r["peak_rss_bytes"].as_u64();
        }
    }
    if !prep.output.exists() {
        return Err(format!(
            "the graph ran but wrote no output at {} (is param `{}` the path of a write_volume node?)",
            prep.output.display(),
            s.output_param
        )
        .into());
    }
    if let Some(truth) = &prep.truth {
        let t = Instant::now();
        let r = score_files(&prep.output, truth, &s.classes, &s.detect)
            .map_err(|e| format!("scoring against {}: {e}", truth.display()))?;
        timings.score_s = Some(t.elapsed().as_secs_f64());
        status.metrics = Some(scores::to_status(&r));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    #[test]
    fn a_panic_with_backtrace_is_one_line() {
        let stderr = "thread 'node-crf' panicked at nodes/src/refine/dense_crf.rs:12:5:\n\
                      index out of bounds\nstack backtrace:\n   0: rust_begin_unwind\n   \
                      1: core::panicking::panic_fmt\n\n\
                      error: node `crf` (dense_crf) at g.yaml:9: panicked: index out of bounds\n";
        let e = child_error(stderr.as_bytes(), ExitStatus::from_raw(1 << 8));
        assert_eq!(
            e,
            "node `crf` (dense_crf) at g.yaml:9: panicked: index out of bounds \
             (whole output in run.log)"
        );
        // Killed without a word: how it ended.
        let e = child_error(b"", ExitStatus::from_raw(9));
        assert_eq!(
            e,
            "`voxflow run` killed by signal 9 (SIGKILL; out of memory?)"
        );
    }
}
