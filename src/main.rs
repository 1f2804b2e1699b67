//! The `voxflow` command-line program.

use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use voxflow_runtime::validate::parse_set_value;
use voxflow_runtime::{
    check_all_ways, execute, CheckOptions, GraphDoc, Plan, Registry, RunOptions, RunStats,
};

/// Caps single allocations where a parser asks (`voxflow_nodes::io::alloc_cap`).
#[global_allocator]
static GLOBAL: voxflow_nodes::io::alloc_cap::CappedAlloc =
    voxflow_nodes::io::alloc_cap::CappedAlloc;

mod batch;
mod cases;
mod crf_search;
mod docs;
mod eval;
mod runner;
mod schema;
mod segment;

#[derive(Parser)]
#[command(
    name = "voxflow",
    version,
    about = "Dataflow pipelines for medical image analysis"
)]
struct Cli {
    /// No progress bars, only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Load a node plugin library (repeatable; a bare name is looked up in VOXFLOW_PLUGIN_PATH).
    #[arg(long = "plugin", global = true, value_name = "PATH")]
    plugin: Vec<PathBuf>,
    /// Largest volume a reader may load, in voxels (sets VOXFLOW_MAX_VOXELS; default: what fits
    /// in half of the memory available to the process).
    #[arg(long, global = true, value_name = "N")]
    max_voxels: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Segment a CT (liver, lesions) or MR (liver) scan with the shipped graph, in one command.
    Segment(segment::SegmentArgs),
    /// Run a graph.
    Run(RunArgs),
    /// Validate a graph without running it; reports every error at once.
    Check(GraphArgs),
    /// List node kinds, or show one kind's ports, params and docs.
    Nodes {
        /// A node kind.
        kind: Option<String>,
        /// Print the whole node reference as Markdown (docs/NODES.md).
        #[arg(long)]
        markdown: bool,
    },
    /// Print a graph in Graphviz dot format.
    Graph {
        #[command(flatten)]
        graph: GraphArgs,
        /// Graphviz output (the only format for now).
        #[arg(long, default_value_t = true)]
        dot: bool,
    },
    /// Evaluate a segmentation graph (or existing predictions) over a manifest of cases.
    Eval(eval::EvalArgs),
    /// Random search over the dense_crf params on training cases with ground truth.
    CrfSearch(crf_search::CrfSearchArgs),
    /// Run a graph over a manifest of cases: resumable, parallel, sharded, on Slurm.
    Batch(batch::BatchArgs),
    /// Print the JSON Schema of graph files (docs/voxflow-graph.schema.json), for editors.
    Schema,
}

#[derive(Args)]
struct GraphArgs {
    /// Graph file (YAML).
    graph: PathBuf,
    /// Override a graph param: --set name=value (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    graph: GraphArgs,
    /// Write a JSON run report (per node: wall and busy time, slices, queue depth; peak RSS).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Messages each edge holds before its producer waits.
    #[arg(long, default_value_t = 4)]
    queue_depth: usize,
    /// Threads a node may use for its own parallel work (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn parse_sets(sets: &[String]) -> Result<Vec<(String, serde_json::Value)>, String> {
    sets.iter()
        .map(|s| {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| format!("--set {s}: expected NAME=VALUE"))?;
            Ok((k.trim().to_string(), parse_set_value(v)))
        })
        .collect()
}

fn load(args: &GraphArgs, reg: &Registry, require_values: bool) -> Result<Plan, String> {
    let doc = GraphDoc::load(&args.graph).map_err(|d| d.to_string())?;
    let opts = CheckOptions {
        set: parse_sets(&args.set)?,
        cwd: std::env::current_dir().map_err(|e| e.to_string())?,
        require_values,
    };
    let plan = if require_values {
        voxflow_runtime::check(&doc, reg, &opts)
    } else {
        check_all_ways(&doc, reg, &opts)
    };
    plan.map_err(|d| d.to_string())
}

/// The signal (SIGINT, SIGTERM, SIGHUP) that asked `voxflow run` to stop; 0 while none.
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop_signal(sig: libc::c_int) {
    // A second signal ends the process at once (the next run removes its temporaries).
    if STOP_SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
}

/// Lets SIGINT, SIGTERM and SIGHUP cancel a run like a node error does (`RunOptions::stop`).
fn catch_stop_signals() -> Result<(), String> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only touches an atomic and calls _exit; the struct is zeroed
        // and then filled as sigaction(2) requires.
        let r = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if r != 0 {
            return Err(format!(
                "cannot install a handler for signal {sig}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.max_voxels {
        // Before any thread starts; child processes (batch, Slurm) inherit it.
        std::env::set_var(voxflow_nodes::io::budget::MAX_VOXELS_VAR, n.to_string());
    }
    let filter = if cli.quiet { "error" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VOXFLOW_LOG")
                .unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    let mut reg = voxflow_nodes::registry();
    if let Err(e) = load_plugins(&cli, &mut reg) {
        eprintln!(
            "{}",
            if e.starts_with("error") {
                e
            } else {
                format!("error: {e}")
            }
        );
        return ExitCode::FAILURE;
    }
    match run(cli, &reg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "{}",
                if e.starts_with("error") {
                    e
                } else {
                    format!("error: {e}")
                }
            );
            // 128 + the signal, as a shell reports a process the signal ended.
            match STOP_SIGNAL.load(Ordering::SeqCst) {
                0 => ExitCode::FAILURE,
                sig => ExitCode::from(128 + sig as u8),
            }
        }
    }
}

/// Plugins (docs/PLUGINS.md): VOXFLOW_PLUGIN_PATH, `--plugin`, then the `plugins:` of the
/// command's graph file, all before any validation.
fn load_plugins(cli: &Cli, reg: &mut Registry) -> Result<(), String> {
    voxflow_plugin_host::load_startup(reg, &cli.plugin)?;
    let graph = match &cli.command {
        Command::Run(a) => Some(&a.graph.graph),
        Command::Check(g) | Command::Graph { graph: g, .. } => Some(&g.graph),
        Command::Eval(a) => a.graph.as_ref(),
        Command::Batch(a) => a.graph.as_ref(),
        _ => None,
    };
    graph.map_or(Ok(()), |g| voxflow_plugin_host::load_graph_plugins(reg, g))
}

fn run(cli: Cli, reg: &Registry) -> Result<(), String> {
    match cli.command {
        Command::Check(g) => {
            let plan = load(&g, reg, false)?;
            if !cli.quiet {
                println!(
                    "{}: ok ({} nodes)",
                    g.graph.display(),
                    plan.nodes.len() + plan.disabled.len()
                );
            }
            Ok(())
        }
        Command::Nodes { kind, markdown } => {
            if markdown {
                print!("{}", docs::markdown(reg));
                return Ok(());
            }
            match kind {
                None => {
                    for e in reg.entries() {
                        let from = if e.origin == "built-in" {
                            String::new()
                        } else {
                            format!(" [plugin {}]", e.origin)
                        };
                        println!("{:<20} {}{from}", e.decl.kind, e.decl.about);
                    }
                    Ok(())
                }
                Some(k) => {
                    let e = reg.get(&k).ok_or_else(|| {
                        format!(
                            "unknown node kind `{k}`{}",
                            voxflow_runtime::decl::did_you_mean(&k, reg.names())
                        )
                    })?;
                    print!("{}", docs::kind_text(&e.decl));
                    Ok(())
                }
            }
        }
        Command::Graph { graph, .. } => {
            let plan = load(&graph, reg, false)?;
            print!("{}", docs::dot(&plan, reg));
            Ok(())
        }
        Command::Run(a) => run_graph(a, reg, cli.quiet),
        Command::Segment(a) => segment::run(a, reg, cli.quiet),
        Command::Schema => {
            print!("{}", schema::text(reg));
            Ok(())
        }
        Command::Eval(a) => eval::run(a, reg, cli.quiet, &cli.plugin),
        Command::CrfSearch(a) => crf_search::run(a, cli.quiet),
        Command::Batch(a) => batch::run(a, reg, cli.quiet, &cli.plugin),
    }
}

fn run_graph(a: RunArgs, reg: &Registry, quiet: bool) -> Result<(), String> {
    let plan = load(&a.graph, reg, true)?;
    let mut opts = RunOptions {
        queue_depth: a.queue_depth,
        ..RunOptions::default()
    };
    if let Some(t) = a.threads {
        opts.threads = t.max(1);
    }
    let report = execute_stoppable(&plan, reg, opts, quiet)?;
    if let Some(path) = &a.report {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        voxflow_runtime::output::write_atomic(path, text.as_bytes())?;
    }
    if !quiet {
        for o in &report.outputs {
            eprintln!("wrote {}", o.display());
        }
        eprintln!(
            "{} finished in {:.1} s",
            plan.graph,
            report.wall_ms / 1000.0
        );
    }
    Ok(())
}

/// Runs a checked plan with progress bars (unless `quiet` or not a terminal); SIGINT, SIGTERM
/// and SIGHUP cancel it like a node error (`main` turns that into exit code 128 + signal).
fn execute_stoppable(
    plan: &Plan,
    reg: &Registry,
    opts: RunOptions,
    quiet: bool,
) -> Result<voxflow_runtime::RunReport, String> {
    catch_stop_signals()?;
    let opts = RunOptions {
        stop: Some(&STOP_SIGNAL),
        ..opts
    };
    let stats = RunStats::new(plan);
    let show = !quiet && std::io::stderr().is_terminal();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // No progress bars when the system has no thread to spare for them.
    let bars = show
        .then(|| spawn_progress(stats.clone(), done.clone()))
        .and_then(Result::ok);
    let result = execute(plan, reg, &opts, &stats);
    done.store(true, Ordering::Relaxed);
    if let Some(h) = bars {
        let _ = h.join();
    }
    result.map_err(|e| format!("error: {e}"))
}

fn spawn_progress(
    stats: Arc<RunStats>,
    done: Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().spawn(move || {
        let mp = indicatif::MultiProgress::new();
        let style = indicatif::ProgressStyle::with_template(
            "{prefix:>14} [{bar:30}] {pos}/{len} slices {msg}",
        )
        .expect("template")
        .progress_chars("=> ");
        let bars: Vec<_> = stats
            .nodes
            .iter()
            .map(|(id, _)| {
                let b = mp.add(indicatif::ProgressBar::new(0));
                b.set_style(style.clone());
                b.set_prefix(id.clone());
                b
            })
            .collect();
        loop {
            let finished = done.load(Ordering::Relaxed);
            for ((_, s), b) in stats.nodes.iter().zip(&bars) {
                let total = s.slices_total.load(Ordering::Relaxed) as u64;
                let n = s.slices_done.load(Ordering::Relaxed) as u64;
                b.set_length(total.max(n));
                b.set_position(n);
                if s.finished.load(Ordering::Relaxed) && !b.is_finished() {
                    b.finish_with_message("done");
                }
            }
            if finished {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = mp.clear();
    })
}
