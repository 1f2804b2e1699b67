//! `voxflow batch`: one graph over a manifest of cases (the case runner, src/runner/), resumable,
//! several cases at a time, sharded, and as a Slurm job array; each case's output, status and
//! report in DIR/ID/, and the summaries over all cases.

mod collect;
mod slurm;

use crate::cases::{read_manifest, Case};
use crate::runner::{absolute, threads_per_case, OutputRule, Runner, Spec};
use clap::Args;
use std::path::PathBuf;
use voxflow_runtime::Registry;

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
    case: crate::runner::CaseArgs,
}

/// Names under DIR that are not case folders.
const RESERVED: [&str; 1] = ["slurm"];

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

pub fn run(a: BatchArgs, reg: &Registry, quiet: bool, plugins: &[PathBuf]) -> Result<(), String> {
    if let Some(dir) = &a.collect {
        return collect::run(dir, quiet);
    }
    let (Some(graph), Some(manifest), Some(out)) = (&a.graph, &a.manifest, &a.out) else {
        unreachable!("clap requires them without --collect");
    };
    let (graph, manifest, out) = (absolute(graph)?, absolute(manifest)?, absolute(out)?);
    let threads = threads_per_case(a.jobs, a.threads)?;
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
    let runner = Runner::new(
        reg,
        Spec {
            command: "batch",
            graph: &graph,
            manifest: &manifest,
            columns: &cols,
            cases_dir: out.clone(),
            output_param: "output",
            output: OutputRule::CellOrCaseFolder,
            case: &a.case,
            threads,
            shard: a.shard.clone(),
            plugins,
        },
    )?;
    let class_names: Vec<String> = runner.classes().iter().map(|c| c.name.clone()).collect();
    let has_truth = cols.contains(&a.case.truth_column);
    collect::write_batch_info(
        &out,
        &graph,
        &manifest,
        &cases,
        has_truth.then_some(class_names.as_slice()),
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
    let ran = runner.run(&mine, cases.len(), a.jobs, a.retry_failed, quiet)?;
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
    if ran.failed > 0 {
        return Err(format!(
            "{} of {} cases of this shard failed (see DIR/ID/status.json)",
            ran.failed,
            mine.len()
        ));
    }
    Ok(())
}
