//! The case runner of `voxflow batch` and `voxflow eval`: one graph over the cases of a
//! manifest, resumable, several cases at a time, each scored when it has truth.
//!
//! Each case runs in a child process (`voxflow run`), not inside the runner's process: a node
//! that crashes, aborts or exhausts memory takes down its case only, each case's peak memory
//! is its own (the run report's `peak_rss_bytes`), and killing the runner kills its running
//! cases with it (`PR_SET_PDEATHSIG`) while their outputs are still temporary files. Starting a
//! process is small against the seconds to minutes a case takes.
//!
//! A case is finished when its `status.json` is (atomically) written; a later run skips done
//! cases whose graph, models, inputs and output path are unchanged (docs/SCALE.md).

mod child;
mod progress;
pub mod scores;
pub mod status;

use crate::cases::Case;
use child::{run_child, Stop, LOG_FILE};
use progress::Progress;
use scores::class_specs;
use serde_json::Value;
use status::{
    digest, input_checksum, known_digests, remove_stale_temps, write_atomic, CaseLock, FileDigest,
    Fingerprint, GraphVersion, InputDigest, State, Status, Timings,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use voxflow_nodes::eval::metrics::ClassSpec;
use voxflow_runtime::exec::path_uses;
use voxflow_runtime::validate::{has_scheme, parse_set_value};
use voxflow_runtime::{check, CheckOptions, GraphDoc, Plan, Registry};

/// The per-case options `eval` and `batch` share: scoring and graph params.
#[derive(clap::Args, Debug, Clone)]
pub struct CaseArgs {
    /// Manifest column holding the ground-truth label file; when present, each case is scored
    /// (also passed to the graph when it declares a param of that name).
    #[arg(long, default_value = "truth", value_name = "NAME")]
    pub truth_column: String,
    /// A class as NAME:RULE (repeatable; default liver:>=1 and lesion:==2).
    #[arg(long = "class", value_name = "NAME:RULE")]
    pub classes: Vec<String>,
    /// Class with per-lesion detection counts (repeatable; default lesion, if it is a class).
    #[arg(long = "detect", value_name = "NAME")]
    pub detect: Vec<String>,
    /// Override a graph param for every case: --set name=value (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
}

/// Where a case's output file goes.
pub enum OutputRule {
    /// The case's manifest cell of the output param, else DIR/ID/NAME (NAME: the file name of
    /// the param's default), as `voxflow batch` does.
    CellOrCaseFolder,
    /// Always FOLDER/ID.nii.gz, as `voxflow eval` writes its predictions.
    Folder(PathBuf),
}

/// What one run of the runner is: which graph over which cases, and where things go.
pub struct Spec<'a> {
    /// `batch` or `eval`: the progress lines' prefix.
    pub command: &'static str,
    pub graph: &'a Path,
    pub manifest: &'a Path,
    /// The manifest's columns (`read_manifest`).
    pub columns: &'a [String],
    /// DIR: each case's status.json, report.json and run.log go to DIR/ID/.
    pub cases_dir: PathBuf,
    /// The graph param that receives each case's output file.
    pub output_param: &'a str,
    pub output: OutputRule,
    pub case: &'a CaseArgs,
    /// Node threads per case.
    pub threads: usize,
    pub shard: Option<String>,
    pub plugins: &'a [PathBuf],
}

/// Everything shared by the cases of one run.
pub struct Runner<'a> {
    command: &'static str,
    reg: &'a Registry,
    doc: GraphDoc,
    graph: PathBuf,
    cases_dir: PathBuf,
    /// The manifest's folder: relative paths resolve against it.
    base: PathBuf,
    sets: Vec<String>,
    version: GraphVersion,
    output_param: String,
    output: OutputRule,
    /// File name of the graph's default output, for cases without an output cell.
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

pub fn absolute(p: &Path) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Node threads per case with `jobs` cases at a time: `threads` if given, else the cores shared.
pub fn threads_per_case(jobs: usize, threads: Option<usize>) -> Result<usize, String> {
    if jobs == 0 {
        return Err("-j must be at least 1".into());
    }
    Ok(threads.unwrap_or(cores() / jobs).max(1))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
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

impl Runner<'_> {
    fn case_dir(&self, id: &str) -> PathBuf {
        self.cases_dir.join(id)
    }

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
            if *c == self.output_param {
                if let OutputRule::Folder(_) = self.output {
                    continue;
                }
                output = Some(self.base.join(v));
            }
            sets.push((c.clone(), v.clone()));
        }
        let out = &self.output_param;
        let output = match (output, &self.output, &self.output_name) {
            (Some(o), _, _) => o,
            (None, OutputRule::Folder(folder), _) => folder.join(format!("{}.nii.gz", case.id)),
            (None, OutputRule::CellOrCaseFolder, Some(name)) => self.case_dir(&case.id).join(name),
            (None, OutputRule::CellOrCaseFolder, None) => {
                return Err(format!(
                    "no `{out}` cell, and the graph's `{out}` param has no default file name"
                ))
            }
        };
        if !sets.iter().any(|(c, _)| c == out) {
            sets.push((out.clone(), output.to_string_lossy().into()));
        }
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
            if *c == self.output_param || v.is_empty() {
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

enum Outcome {
    Ended(Box<Status>),
    /// Another process holds the case's lock.
    Busy,
    Interrupted,
}

fn run_case(
    s: &Runner,
    case: &Case,
    pre: Option<Box<(Fingerprint, Option<String>)>>,
) -> Result<Outcome, String> {
    let dir = s.case_dir(&case.id);
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

fn decide(s: &Runner, case: &Case, retry_failed: bool) -> Result<Decision, String> {
    let Some(prev) = Status::read(&s.case_dir(&case.id)) else {
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

impl<'a> Runner<'a> {
    /// Loads the graph and checks the manifest's columns against its params: every column but
    /// `id` and the truth column must be a param.
    pub fn new(reg: &'a Registry, spec: Spec) -> Result<Runner<'a>, String> {
        let (classes, detect) = class_specs(&spec.case.classes, &spec.case.detect)?;
        let doc = GraphDoc::load(spec.graph).map_err(|d| d.to_string())?;
        let params: Vec<&str> = doc.params.iter().map(|p| p.name.as_str()).collect();
        let truth_column = spec
            .columns
            .iter()
            .find(|c| **c == spec.case.truth_column)
            .cloned();
        let truth_to_graph = params.contains(&spec.case.truth_column.as_str());
        for c in spec.columns {
            if c != "id" && Some(c) != truth_column.as_ref() && !params.contains(&c.as_str()) {
                return Err(format!(
                    "manifest {}: column `{c}` is not a param of graph {} (params: {})",
                    spec.manifest.display(),
                    spec.graph.display(),
                    params.join(", ")
                ));
            }
        }
        let out = spec.output_param;
        let Some(out_param) = doc.params.iter().find(|p| p.name == out) else {
            return Err(format!(
                "graph {} has no param `{out}` to receive each case's output file (params: {})",
                spec.graph.display(),
                params.join(", ")
            ));
        };
        let output_name = out_param
            .default
            .as_ref()
            .and_then(|v| v.as_str())
            .and_then(|s| Path::new(s).file_name())
            .map(|n| n.to_string_lossy().to_string());
        if matches!(spec.output, OutputRule::CellOrCaseFolder)
            && output_name.is_none()
            && !spec.columns.iter().any(|c| c == out)
        {
            return Err(format!(
                "graph {}: param `{out}` has no default file name; add an `{out}` column to the manifest",
                spec.graph.display()
            ));
        }
        let base = spec
            .manifest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Ok(Runner {
            command: spec.command,
            reg,
            version: GraphVersion {
                file: spec.graph.to_path_buf(),
                sha256: graph_sha256(&doc)?,
                set: spec.case.set.clone(),
            },
            graph: spec.graph.to_path_buf(),
            cases_dir: spec.cases_dir,
            base,
            sets: spec.case.set.clone(),
            output_param: out.to_string(),
            output: spec.output,
            output_name,
            truth_column,
            truth_to_graph,
            classes,
            class_rules: spec.case.classes.clone(),
            detect,
            threads: spec.threads,
            shard: spec.shard,
            plugins: spec
                .plugins
                .iter()
                .map(|p| absolute(p))
                .collect::<Result<_, _>>()?,
            doc,
            models: Mutex::default(),
        })
    }

    /// The classes each case with truth is scored on.
    pub fn classes(&self) -> &[ClassSpec] {
        &self.classes
    }

    /// The status of case `id` as its last run left it.
    pub fn status(&self, id: &str) -> Option<Status> {
        Status::read(&self.case_dir(id))
    }

    /// Runs `cases` (of `total` in the manifest), `jobs` at a time; cases done before with the
    /// same versions are skipped, and those that failed before unless `retry_failed`.
    pub fn run(
        &self,
        cases: &[&Case],
        total: usize,
        jobs: usize,
        retry_failed: bool,
        quiet: bool,
    ) -> Result<Ran, String> {
        let mut todo = Vec::new();
        let (mut skipped_done, mut skipped_failed) = (0, 0);
        let mut reasons: Vec<(&str, usize)> = Vec::new();
        for c in cases {
            match decide(self, c, retry_failed)? {
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
            let which = match &self.shard {
                Some(sh) => format!("shard {sh}: {} of {total} cases", cases.len()),
                None => format!("{total} cases"),
            };
            let why: Vec<String> = reasons.iter().map(|(w, n)| format!("{n} {w}")).collect();
            eprintln!(
                "{}: {which}; {skipped_done} done before, {skipped_failed} failed before{}; running {}{} \
                 ({} at a time, {} node threads each, {} cores)",
                self.command,
                if retry_failed || skipped_failed == 0 {
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
                jobs.min(todo.len().max(1)),
                self.threads,
                cores(),
            );
        }

        let progress = Progress::new(self.command, todo.len(), quiet);
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let busy = AtomicUsize::new(0);
        let failed_now = AtomicUsize::new(0);
        let fatal: Mutex<Option<String>> = Mutex::new(None);
        std::thread::scope(|sc| {
            for _ in 0..jobs.min(todo.len()) {
                sc.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((case, pre)) = todo.get(i) else {
                            break;
                        };
                        let pre = pre.lock().expect("lock").take();
                        match run_case(self, case, pre) {
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
        let ran = Ran {
            failed: failed_now.load(Ordering::Relaxed) + skipped_failed,
            busy: busy.load(Ordering::Relaxed),
        };
        if !quiet {
            eprintln!(
                "{}: {} run in {:.1} s, {} failed{}",
                self.command,
                todo.len() - ran.busy,
                progress.started.elapsed().as_secs_f64(),
                failed_now.load(Ordering::Relaxed),
                if ran.busy > 0 {
                    format!(", {} left to other processes", ran.busy)
                } else {
                    String::new()
                }
            );
        }
        Ok(ran)
    }
}

/// What a run of the runner left.
pub struct Ran {
    /// Cases failed now or before (and not retried).
    pub failed: usize,
    /// Cases another process was running.
    pub busy: usize,
}
