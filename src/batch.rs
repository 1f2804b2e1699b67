//! `voxflow batch`: one graph over a manifest of cases, resumable, several cases at a time,
//! sharded, and as a Slurm job array.
//!
//! Each case runs in a child process (`voxflow run`), not inside the batch process: a node
//! that crashes, aborts or exhausts memory takes down its case only, each case's peak memory
//! is its own (the run report's `peak_rss_bytes`), and killing the batch kills its running
//! cases with it (`PR_SET_PDEATHSIG`) while their outputs are still temporary files. Starting a
//! process is small against the seconds to minutes a case takes.
//!
//! A case is finished when its `status.json` is (atomically) written; a later run skips done
//! cases whose graph, models, inputs and output path are unchanged (docs/SCALE.md).

mod collect;
mod slurm;
mod status;

use crate::cases::{read_manifest, Case};
use crate::eval::{class_specs, score_files};
use clap::Args;
use serde_json::{json, Value};
use status::{
    digest, input_checksum, known_digests, remove_stale_temps, write_atomic, CaseLock, FileDigest,
    Fingerprint, GraphVersion, InputDigest, State, Status, Timings,
};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use voxflow_nodes::eval::metrics::{to_json, ClassSpec};
use voxflow_runtime::exec::path_uses;
use voxflow_runtime::validate::{has_scheme, parse_set_value};
use voxflow_runtime::{check, CheckOptions, GraphDoc, Plan, Registry};

#[derive(Args)]
pub struct BatchArgs {
    /// Graph file (YAML).
    #[arg(required_unless_present = "collect")]
    pub(crate) graph: Option<PathBuf>,
    /// CSV with a header line: `id` and graph param names (e.g. `id,input,truth`). Relative
    /// paths in it (and in --set) resolve against the manifest's folder; an empty cell keeps
    /// the graph's default.
    #[arg(long, value_name = "CSV", required_unless_present = "collect")]
    manifest: Option<PathBuf>,
    /// Output folder: DIR/ID/ per case (its output, status.json, report.json), and
    /// summary.csv, summary.md, metrics.csv over all cases.
    #[arg(long, value_name = "DIR", required_unless_present = "collect")]
    out: Option<PathBuf>,
    /// Cases run at a time.
    #[arg(short = 'j', long = "jobs", default_value_t = 1, value_name = "N")]
    jobs: usize,
    /// Threads each case's nodes may use (default: the cores, or inside a Slurm job the CPUs it
    /// was given, divided by -j).
    #[arg(long)]
    threads: Option<usize>,
    /// Run cases that failed before again (they are skipped otherwise, unless their graph or
    /// inputs changed).
    #[arg(long)]
    retry_failed: bool,
    /// Only the cases at positions I, I+N, I+2N, ... of the manifest (0-based).
    #[arg(long, value_name = "I/N", conflicts_with = "slurm")]
    shard: Option<String>,
    /// Write a Slurm array job of N tasks, each running one shard, to DIR/slurm/batch.sh.
    #[arg(long, value_name = "N")]
    slurm: Option<usize>,
    /// With --slurm: submit the script with sbatch.
    #[arg(long, requires = "slurm")]
    submit: bool,
    /// With --slurm: an extra `#SBATCH` option, e.g. --sbatch=--time=24:00:00 (repeatable).
    #[arg(
        long,
        value_name = "OPTION",
        requires = "slurm",
        allow_hyphen_values = true
    )]
    sbatch: Vec<String>,
    /// Merge the status.json of every case under DIR into summary.csv, summary.md and
    /// metrics.csv (after sharded or Slurm runs).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["graph", "manifest", "out", "slurm", "shard"])]
    collect: Option<PathBuf>,
    #[command(flatten)]
    case: crate::eval::CaseArgs,
}

/// The graph param that receives each case's output file.
const OUTPUT: &str = "output";
/// Names under DIR that are not case folders.
const RESERVED: [&str; 1] = ["slurm"];

/// Everything shared by the cases of one run.
struct Setup<'a> {
    reg: &'a Registry,
    doc: GraphDoc,
    graph: PathBuf,
    out: PathBuf,
    /// The manifest's folder: relative paths resolve against it.
    base: PathBuf,
    sets: Vec<String>,
    version: GraphVersion,
    /// File name of the graph's default output, for cases without an `output` cell.
    output_name: Option<String>,
    truth_column: Option<String>,
    truth_to_graph: bool,
    classes: Vec<ClassSpec>,
    class_rules: Vec<String>,
    detect: Vec<String>,
    threads: usize,
    shard: Option<String>,
    plugins: Vec<PathBuf>,
    models: Mutex<HashMap<PathBuf, FileDigest>>,
}

/// A case's graph params (as `--set` strings), output and truth files.
struct Prepared {
    sets: Vec<(String, String)>,
    output: PathBuf,
    truth: Option<PathBuf>,
}

fn absolute(p: &Path) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `I/N` with I < N.
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--shard {s}: expected I/N with 0 <= I < N, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// Cores this process may use: Slurm's allocation inside a job, else the machine's.
fn cores() -> usize {
    ["SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"]
        .iter()
        .find_map(|k| {
            std::env::var(k)
                .ok()?
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
        })
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

fn slurm_job() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        (Some(j), Some(t)) => Some(format!("{j}_{t}")),
        _ => var("SLURM_JOB_ID"),
    }
}

impl Setup<'_> {
    fn prepare(&self, case: &Case) -> Result<Prepared, String> {
        let mut sets = Vec::new();
        let mut output = None;
        let mut truth = None;
        for (c, v) in &case.values {
            if v.is_empty() {
                continue;
            }
            if Some(c) == self.truth_column.as_ref() {
                truth = Some(self.base.join(v));
                if !self.truth_to_graph {
                    continue;
                }
            }
            if c == OUTPUT {
                output = Some(self.base.join(v));
            }
            sets.push((c.clone(), v.clone()));
        }
        let output = match (output, &self.output_name) {
            (Some(o), _) => o,
            (None, Some(name)) => {
                let o = self.out.join(&case.id).join(name);
                sets.push((OUTPUT.into(), o.to_string_lossy().into()));
                o
            }
            (None, None) => {
                return Err(format!(
                    "no `{OUTPUT}` cell, and the graph's `{OUTPUT}` param has no default file name"
                ))
            }
        };
        Ok(Prepared {
            sets,
            output,
            truth,
        })
    }

    /// The versions a case depends on, and the graph check's error if it does not validate.
    fn fingerprint(
        &self,
        case: &Case,
        prep: &Prepared,
        known: &HashMap<PathBuf, FileDigest>,
    ) -> Result<(Fingerprint, Option<String>), String> {
        let mut inputs = Vec::new();
        let mut input_files = Vec::new();
        for (c, v) in &case.values {
            if c == OUTPUT || v.is_empty() {
                continue;
            }
            let p = self.base.join(v);
            if let Ok(canonical) = p.canonicalize() {
                input_files.push(canonical);
            }
            let file = if !has_scheme(v) && p.exists() {
                Some(digest_or_note(&p, known.get(&p)))
            } else {
                None
            };
            inputs.push(InputDigest {
                column: c.clone(),
                value: v.clone(),
                file,
            });
        }
        let mut set: Vec<(String, Value)> = crate::parse_sets(&self.sets)?;
        set.extend(
            prep.sets
                .iter()
                .map(|(k, v)| (k.clone(), parse_set_value(v))),
        );
        let opts = CheckOptions {
            set,
            cwd: self.base.clone(),
            require_values: true,
        };
        let (error, models) = match check(&self.doc, self.reg, &opts) {
            Ok(plan) => (
                None,
                read_files(&plan, self.reg, &input_files)
                    .iter()
                    .map(|path| self.model_digest(path, known))
                    .collect(),
            ),
            Err(d) => (Some(d.to_string()), Vec::new()),
        };
        let classes = if prep.truth.is_some() {
            self.class_rules.clone()
        } else {
            Vec::new()
        };
        Ok((
            Fingerprint {
                graph: self.version.clone(),
                models,
                input_checksum: input_checksum(&inputs),
                inputs,
                output: prep.output.clone(),
                classes,
            },
            error,
        ))
    }

    /// Models are shared by all cases: each is hashed once per run.
    fn model_digest(&self, path: &Path, known: &HashMap<PathBuf, FileDigest>) -> FileDigest {
        if let Some(d) = self.models.lock().expect("lock").get(path) {
            return d.clone();
        }
        let d = digest_or_note(path, known.get(path));
        self.models
            .lock()
            .expect("lock")
            .insert(path.to_path_buf(), d.clone());
        d
    }
}

/// A file's digest; one that cannot be read gets the reason instead of a hash (its case then
/// fails when the graph reads it, and reruns once it can be read).
fn digest_or_note(path: &Path, known: Option<&FileDigest>) -> FileDigest {
    digest(path, known).unwrap_or_else(|e| FileDigest {
        path: path.to_path_buf(),
        sha256: format!("unreadable: {e}"),
        stat: String::new(),
    })
}

/// Why a case did not finish.
enum Stop {
    Failed(String),
    /// The case was interrupted by a signal meant for the whole batch: not recorded.
    Interrupted,
}

impl From<String> for Stop {
    fn from(m: String) -> Self {
        Stop::Failed(m)
    }
}

enum Outcome {
    Ended(Box<Status>),
    /// Another process holds the case's lock.
    Busy,
    Interrupted,
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
fn run_child(
    s: &Setup,
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
            // The batch died before the prctl took effect.
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
            "the graph ran but wrote no output at {} (is param `{OUTPUT}` the path of a write_volume node?)",
            prep.output.display()
        )
        .into());
    }
    if let Some(truth) = &prep.truth {
        let t = Instant::now();
        let r = score_files(&prep.output, truth, &s.classes, &s.detect)
            .map_err(|e| format!("scoring against {}: {e}", truth.display()))?;
        timings.score_s = Some(t.elapsed().as_secs_f64());
        status.metrics = Some(json!(r
            .iter()
            .map(
                |c| json!({ "class": c.name, "metrics": to_json(std::slice::from_ref(c))[&c.name] })
            )
            .collect::<Vec<_>>()));
    }
    Ok(())
}

fn run_case(
    s: &Setup,
    case: &Case,
    pre: Option<Box<(Fingerprint, Option<String>)>>,
) -> Result<Outcome, String> {
    let dir = s.out.join(&case.id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let Some(_lock) = CaseLock::try_lock(&dir)? else {
        return Ok(Outcome::Busy);
    };
    remove_stale_temps(&dir);
    // From here on the case is not done until its new status is written.
    let _ = std::fs::remove_file(dir.join(status::STATUS_FILE));
    let _ = std::fs::remove_file(dir.join(LOG_FILE));
    let t0 = Instant::now();
    let mut timings = Timings {
        started_unix: unix_now(),
        ..Timings::default()
    };
    let prep = s.prepare(case);
    let (fingerprint, check_error) = match (&prep, pre) {
        (_, Some(p)) => *p,
        (Ok(p), None) => s.fingerprint(case, p, &HashMap::new())?,
        (Err(_), None) => (
            Fingerprint {
                graph: s.version.clone(),
                models: vec![],
                inputs: vec![],
                input_checksum: String::new(),
                output: PathBuf::new(),
                classes: vec![],
            },
            None,
        ),
    };
    let mut status = Status {
        id: case.id.clone(),
        state: State::Failed,
        error: None,
        manifest_line: case.line,
        timings: Timings::default(),
        peak_rss_bytes: None,
        threads: s.threads,
        host: status::host(),
        shard: s.shard.clone(),
        slurm_job: slurm_job(),
        voxflow_version: env!("CARGO_PKG_VERSION").into(),
        fingerprint,
        metrics: None,
    };
    let result = match (&prep, check_error) {
        (Err(e), _) => Err(Stop::Failed(e.clone())),
        (Ok(_), Some(e)) => Err(Stop::Failed(e)),
        (Ok(p), None) => run_child(s, p, &dir, &mut timings, &mut status),
    };
    timings.total_s = t0.elapsed().as_secs_f64();
    status.timings = timings;
    match result {
        Ok(()) => status.state = State::Done,
        Err(Stop::Interrupted) => return Ok(Outcome::Interrupted),
        Err(Stop::Failed(e)) => {
            // One line for status.json and summary.csv; several errors go whole to the log.
            let mut lines = e.lines().filter(|l| !l.trim().is_empty());
            let first = lines.next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            let e = if lines.next().is_some() {
                write_atomic(&dir.join(LOG_FILE), &e)?;
                format!("{first} (and more in {LOG_FILE})")
            } else {
                first.to_string()
            };
            status.error = Some(format!("manifest line {}: {e}", case.line));
        }
    }
    status.write(&dir)?;
    Ok(Outcome::Ended(Box::new(status)))
}

/// The SHA-256 of the graph file; for a graph that includes others, of the files' hashes (the
/// graph's, then the included ones'), one line each.
fn graph_sha256(doc: &GraphDoc) -> Result<String, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    if doc.scopes.len() <= 1 {
        return Ok(status::sha256_bytes(&read(&doc.file)?));
    }
    let mut lines = String::new();
    for s in &doc.scopes {
        lines.push_str(&status::sha256_bytes(&read(&s.file)?));
        lines.push('\n');
    }
    Ok(status::sha256_bytes(lines.as_bytes()))
}

/// The files the case's checked plan reads besides the case's own inputs (the models, and any
/// other file a node is given): each existing path of a node's path params that the node does
/// not write, once, in plan order.
fn read_files(plan: &Plan, reg: &Registry, inputs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for u in path_uses(plan, reg) {
        if u.writes || u.path.is_empty() || has_scheme(u.path) {
            continue;
        }
        if let Ok(p) = Path::new(u.path).canonicalize() {
            if !out.contains(&p) && !inputs.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// What the run found for one case before running anything.
enum Decision {
    /// With the fingerprint when it was computed, and why the case runs.
    Run(Option<Box<(Fingerprint, Option<String>)>>, &'static str),
    SkipDone,
    SkipFailed,
}

fn decide(s: &Setup, case: &Case, retry_failed: bool) -> Result<Decision, String> {
    let Some(prev) = Status::read(&s.out.join(&case.id)) else {
        return Ok(Decision::Run(None, "new"));
    };
    let Ok(prep) = s.prepare(case) else {
        return Ok(Decision::Run(None, "new"));
    };
    let (fp, err) = s.fingerprint(case, &prep, &known_digests(Some(&prev)))?;
    let same = fp.same(&prev.fingerprint);
    let why = if !same {
        fp.change(&prev.fingerprint)
    } else if prev.state == State::Failed {
        "failed before"
    } else {
        "output missing"
    };
    Ok(match prev.state {
        State::Done if same && prev.fingerprint.output.exists() => Decision::SkipDone,
        State::Failed if same && !retry_failed => Decision::SkipFailed,
        _ => Decision::Run(Some(Box::new((fp, err))), why),
    })
}

/// Case progress: a bar on a terminal, else one line per case.
struct Progress {
    bar: indicatif::ProgressBar,
    lines: bool,
    quiet: bool,
    started: Instant,
    counts: Mutex<(usize, usize)>,
}

impl Progress {
    fn new(total: usize, quiet: bool) -> Progress {
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
        bar.set_prefix("batch");
        Progress {
            bar,
            lines: !tty,
            quiet,
            started: Instant::now(),
            counts: Mutex::new((0, 0)),
        }
    }

    fn ended(&self, st: &Status) {
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

    fn busy(&self, id: &str) {
        let c = self.counts.lock().expect("lock");
        self.bar.inc(1);
        drop(c);
        self.bar
            .suspend(|| eprintln!("case {id} is running in another process; skipped"));
    }
}

pub fn run(a: BatchArgs, reg: &Registry, quiet: bool, plugins: &[PathBuf]) -> Result<(), String> {
    if let Some(dir) = &a.collect {
        return collect::run(dir, quiet);
    }
    let (Some(graph), Some(manifest), Some(out)) = (&a.graph, &a.manifest, &a.out) else {
        unreachable!("clap requires them without --collect");
    };
    let (graph, manifest, out) = (absolute(graph)?, absolute(manifest)?, absolute(out)?);
    if a.jobs == 0 {
        return Err("-j must be at least 1".into());
    }
    let (classes, detect) = class_specs(&a.case.classes, &a.case.detect)?;
    let (cols, cases) = read_manifest(&manifest)?;
    for c in &cases {
        if RESERVED.contains(&c.id.as_str()) {
            return Err(format!(
                "{}:{}: case id `{}` is reserved (DIR/{} holds the Slurm files)",
                manifest.display(),
                c.line,
                c.id,
                c.id
            ));
        }
    }
    let doc = GraphDoc::load(&graph).map_err(|d| d.to_string())?;
    let params: Vec<&str> = doc.params.iter().map(|p| p.name.as_str()).collect();
    let truth_column = cols.iter().find(|c| **c == a.case.truth_column).cloned();
    let truth_to_graph = params.contains(&a.case.truth_column.as_str());
    for c in &cols {
        if c != "id" && Some(c) != truth_column.as_ref() && !params.contains(&c.as_str()) {
            return Err(format!(
                "manifest {}: column `{c}` is not a param of graph {} (params: {})",
                manifest.display(),
                graph.display(),
                params.join(", ")
            ));
        }
    }
    let Some(out_param) = doc.params.iter().find(|p| p.name == OUTPUT) else {
        return Err(format!(
            "graph {} has no `{OUTPUT}` param; batch gives each case its own output through it (params: {})",
            graph.display(),
            params.join(", ")
        ));
    };
    let output_name = out_param
        .default
        .as_ref()
        .and_then(|v| v.as_str())
        .and_then(|s| Path::new(s).file_name())
        .map(|n| n.to_string_lossy().to_string());
    if output_name.is_none() && !cols.iter().any(|c| c == OUTPUT) {
        return Err(format!(
            "graph {}: param `{OUTPUT}` has no default file name; add an `{OUTPUT}` column to the manifest",
            graph.display()
        ));
    }
    let class_names: Vec<String> = classes.iter().map(|c| c.name.clone()).collect();
    collect::write_batch_info(
        &out,
        &graph,
        &manifest,
        &cases,
        truth_column.is_some().then_some(class_names.as_slice()),
    )?;
    if let Some(n) = a.slurm {
        return slurm::write(&a, n, &graph, &manifest, &out, plugins, quiet);
    }

    let shard = a.shard.as_deref().map(parse_shard).transpose()?;
    let mine: Vec<&Case> = cases
        .iter()
        .enumerate()
        .filter(|(i, _)| shard.is_none_or(|(k, n)| i % n == k))
        .map(|(_, c)| c)
        .collect();
    let cores = cores();
    let threads = a.threads.unwrap_or(cores / a.jobs).max(1);
    let base = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
    let graph_sha256 = graph_sha256(&doc)?;
    let setup = Setup {
        reg,
        version: GraphVersion {
            file: graph.clone(),
            sha256: graph_sha256,
            set: a.case.set.clone(),
        },
        graph,
        out: out.clone(),
        base,
        sets: a.case.set.clone(),
        output_name,
        truth_column,
        truth_to_graph,
        classes,
        class_rules: a.case.classes.clone(),
        detect,
        threads,
        shard: a.shard.clone(),
        plugins: plugins
            .iter()
            .map(|p| absolute(p))
            .collect::<Result<_, _>>()?,
        doc,
        models: Mutex::default(),
    };

    let mut todo = Vec::new();
    let (mut skipped_done, mut skipped_failed) = (0, 0);
    let mut reasons: Vec<(&str, usize)> = Vec::new();
    for c in &mine {
        match decide(&setup, c, a.retry_failed)? {
            Decision::Run(pre, why) => {
                match reasons.iter_mut().find(|(w, _)| *w == why) {
                    Some((_, n)) => *n += 1,
                    None => reasons.push((why, 1)),
                }
                todo.push((*c, Mutex::new(pre)));
            }
            Decision::SkipDone => skipped_done += 1,
            Decision::SkipFailed => skipped_failed += 1,
        }
    }
    if !quiet {
        let which = match &a.shard {
            Some(sh) => format!("shard {sh}: {} of {} cases", mine.len(), cases.len()),
            None => format!("{} cases", cases.len()),
        };
        let why: Vec<String> = reasons.iter().map(|(w, n)| format!("{n} {w}")).collect();
        eprintln!(
            "batch: {which}; {skipped_done} done before, {skipped_failed} failed before{}; running {}{} \
             ({} at a time, {threads} node threads each, {cores} cores)",
            if a.retry_failed || skipped_failed == 0 {
                ""
            } else {
                " (--retry-failed reruns them)"
            },
            todo.len(),
            if why.is_empty() {
                String::new()
            } else {
                format!(": {}", why.join(", "))
            },
            a.jobs.min(todo.len().max(1)),
        );
    }

    let progress = Progress::new(todo.len(), quiet);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let busy = AtomicUsize::new(0);
    let failed_now = AtomicUsize::new(0);
    let fatal: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|sc| {
        for _ in 0..a.jobs.min(todo.len()) {
            sc.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((case, pre)) = todo.get(i) else {
                        break;
                    };
                    let pre = pre.lock().expect("lock").take();
                    match run_case(&setup, case, pre) {
                        Ok(Outcome::Ended(st)) => {
                            if st.state == State::Failed {
                                failed_now.fetch_add(1, Ordering::Relaxed);
                            }
                            progress.ended(&st);
                        }
                        Ok(Outcome::Busy) => {
                            busy.fetch_add(1, Ordering::Relaxed);
                            progress.busy(&case.id);
                        }
                        Ok(Outcome::Interrupted) => stop.store(true, Ordering::Relaxed),
                        Err(e) => {
                            fatal.lock().expect("lock").get_or_insert(e);
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    progress.bar.finish_and_clear();
    if let Some(e) = fatal.into_inner().expect("lock") {
        return Err(e);
    }
    if stop.load(Ordering::Relaxed) {
        return Err("interrupted; run the same command again to resume".into());
    }
    let failed = failed_now.load(Ordering::Relaxed) + skipped_failed;
    let busy = busy.load(Ordering::Relaxed);
    if !quiet {
        eprintln!(
            "batch: {} run in {:.1} s, {} failed{}",
            todo.len() - busy,
            progress.started.elapsed().as_secs_f64(),
            failed_now.load(Ordering::Relaxed),
            if busy > 0 {
                format!(", {busy} left to other processes")
            } else {
                String::new()
            }
        );
    }
    if shard.is_none() {
        return collect::run(&out, quiet);
    }
    if !quiet {
        eprintln!(
            "shard {} ended; when all shards have, merge them with `voxflow batch --collect {}`",
            a.shard.as_deref().unwrap_or_default(),
            out.display()
        );
    }
    if failed > 0 {
        return Err(format!(
            "{failed} of {} cases of this shard failed (see DIR/ID/status.json)",
            mine.len()
        ));
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
