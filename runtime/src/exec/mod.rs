//! Runs a plan: one thread per node, bounded channels on edges, first error cancels all.

use crate::graph::Pos;
use crate::node::{BuildEnv, InPort, Node, NodeCtx, NodeError, NodeStats, RunInfo};
use crate::output::Pending;
use crate::registry::Registry;
use crate::validate::Plan;
use crossbeam_channel::{bounded, Receiver, Sender};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod paths;
pub use paths::{check_paths, path_uses, PathUse};

#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Messages an edge holds before its producer waits.
    pub queue_depth: usize,
    /// Threads a node may use for its own parallel work.
    pub threads: usize,
    /// A signal handler stores the signal's number here (0 while none): the run then stops like
    /// on a node error, and its temporary files are removed.
    pub stop: Option<&'static AtomicI32>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            queue_depth: 4,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            stop: None,
        }
    }
}

/// Live counters of a run; share it with a progress display.
pub struct RunStats {
    pub nodes: Vec<(String, Arc<NodeStats>)>,
}

impl RunStats {
    pub fn new(plan: &Plan) -> Arc<Self> {
        Arc::new(RunStats {
            nodes: plan
                .nodes
                .iter()
                .map(|n| (n.id.clone(), Arc::new(NodeStats::default())))
                .collect(),
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeReport {
    pub id: String,
    pub kind: String,
    pub wall_ms: f64,
    pub busy_ms: f64,
    pub slices: usize,
    pub max_queue_depth: usize,
    /// What the node reported about how it ran (e.g. `device`, `provider` of `fcn`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub graph: String,
    pub file: PathBuf,
    pub wall_ms: f64,
    pub peak_rss_bytes: Option<u64>,
    pub nodes: Vec<NodeReport>,
    pub outputs: Vec<PathBuf>,
    pub disabled: Vec<String>,
}

/// A failed run: which node, where it is in the graph file, why. `node` is empty for errors of
/// the whole run (a signal, moving outputs into place).
#[derive(Clone, Debug)]
pub struct RunError {
    pub node: String,
    pub kind: String,
    pub file: PathBuf,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.node.is_empty() {
            return write!(f, "{}: {}", self.file.display(), self.message);
        }
        write!(
            f,
            "node `{}` ({}) at {}:{}: {}",
            self.node,
            self.kind,
            self.file.display(),
            self.pos.line,
            self.message
        )
    }
}

/// The usual name of a stop signal.
pub fn signal_name(sig: i32) -> String {
    match sig {
        1 => "SIGHUP".into(),
        2 => "SIGINT".into(),
        15 => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

impl std::error::Error for RunError {}

/// Peak resident set size of this process (Linux), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Per plan node, the nodes it reads from directly or indirectly (ascending).
fn upstream(plan: &Plan) -> Vec<Vec<usize>> {
    (0..plan.nodes.len())
        .map(|n| {
            let mut seen = vec![false; plan.nodes.len()];
            let mut todo = vec![n];
            while let Some(m) = todo.pop() {
                for (src, _) in plan.nodes[m].inputs.iter().flatten() {
                    if !seen[*src] {
                        seen[*src] = true;
                        todo.push(*src);
                    }
                }
            }
            (0..seen.len()).filter(|&m| seen[m]).collect()
        })
        .collect()
}

/// Builds every node, runs the graph, and commits output files only if all nodes succeed.
pub fn execute(
    plan: &Plan,
    reg: &Registry,
    opts: &RunOptions,
    stats: &RunStats,
) -> Result<RunReport, RunError> {
    let err_at = |n: usize, message: String| RunError {
        node: plan.nodes[n].id.clone(),
        kind: plan.nodes[n].kind.clone(),
        file: plan.nodes[n].file.clone(),
        pos: plan.nodes[n].pos,
        message,
    };
    let stopped = || {
        let sig = opts.stop.map_or(0, |s| s.load(Ordering::SeqCst));
        (sig != 0).then(|| RunError {
            node: String::new(),
            kind: String::new(),
            file: plan.file.clone(),
            pos: Pos::default(),
            message: format!(
                "interrupted by {}: all nodes stopped, nothing written at the outputs",
                signal_name(sig)
            ),
        })
    };
    check_paths(plan, reg)?;
    let env = BuildEnv {
        threads: opts.threads.max(1),
    };
    let mut built: Vec<Box<dyn Node>> = Vec::new();
    for (n, pn) in plan.nodes.iter().enumerate() {
        if let Some(e) = stopped() {
            return Err(e);
        }
        let entry = reg
            .get(&pn.kind)
            .ok_or_else(|| err_at(n, format!("node kind `{}` is not registered", pn.kind)))?;
        match entry.kind.build(&pn.params, &env) {
            Ok(b) => built.push(b),
            Err(e) => return Err(err_at(n, e.to_string())),
        }
    }

    let (cancel_tx, cancel_rx) = bounded::<()>(0);
    let cancel_tx: Mutex<Option<Sender<()>>> = Mutex::new(Some(cancel_tx));
    let pending: Arc<Mutex<Pending>> = Arc::default();
    let run = Arc::new(RunInfo {
        graph: plan.graph.clone(),
        file: plan.file.clone(),
        includes: plan.includes.clone(),
        nodes: plan
            .nodes
            .iter()
            .zip(&stats.nodes)
            .map(|(pn, (_, s))| (pn.id.clone(), pn.kind.clone(), s.clone()))
            .collect(),
        upstream: upstream(plan),
    });
    let mut ctxs: Vec<NodeCtx> = plan
        .nodes
        .iter()
        .enumerate()
        .map(|(n, pn)| {
            let decl = &reg.get(&pn.kind).expect("kind").decl;
            NodeCtx {
                id: pn.id.clone(),
                inputs: (0..decl.inputs.len()).map(|_| None).collect(),
                input_names: decl.inputs.iter().map(|p| p.name.clone()).collect(),
                outputs: vec![Vec::new(); decl.outputs.len()],
                output_names: decl.outputs.iter().map(|p| p.name.clone()).collect(),
                cancel: cancel_rx.clone(),
                stats: stats.nodes[n].1.clone(),
                pending: pending.clone(),
                threads: env.threads,
                index: n,
                run: run.clone(),
            }
        })
        .collect();
    for (dst, pn) in plan.nodes.iter().enumerate() {
        for (port, input) in pn.inputs.iter().enumerate() {
            if let Some((src, out)) = input {
                let (tx, rx): (Sender<_>, Receiver<_>) = bounded(opts.queue_depth.max(1));
                ctxs[*src].outputs[*out].push(tx);
                ctxs[dst].inputs[port] = Some(InPort { rx, ended: false });
            }
        }
    }
    drop(cancel_rx);

    let first_error: Mutex<Option<RunError>> = Mutex::new(None);
    let fail = |e: RunError| {
        first_error.lock().expect("lock").get_or_insert(e);
        cancel_tx.lock().expect("lock").take();
    };
    let started = Instant::now();
    let mut walls = vec![0.0; plan.nodes.len()];
    let all_ended = AtomicBool::new(false);
    // Every node thread waits here until all are started: if one cannot be started (memory or
    // thread limits), the others leave without running, so none of them allocates into the
    // exhausted memory and aborts the process.
    let gate = Gate::default();
    std::thread::scope(|scope| {
        // Turns a stop signal into a cancellation of every node.
        if opts.stop.is_some() {
            let watcher = std::thread::Builder::new()
                .name("stop-signal".into())
                .spawn_scoped(scope, || {
                    while !all_ended.load(Ordering::Acquire) {
                        if let Some(e) = stopped() {
                            fail(e);
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                });
            if let Err(e) = watcher {
                fail(RunError {
                    node: String::new(),
                    kind: String::new(),
                    file: plan.file.clone(),
                    pos: Pos::default(),
                    message: format!("cannot start a thread to watch for signals: {e}"),
                });
            }
        }
        let n_nodes = plan.nodes.len();
        // The address space of every node thread's stack, checked before any thread starts:
        // under a memory limit (`ulimit -v`) a graph too large then fails here, instead of a
        // small allocation failing (an abort) while the threads use up the limit.
        let stacks = n_nodes
            .saturating_mul(THREAD_STACK_BYTES)
            .saturating_add(SPAWN_HEADROOM_BYTES);
        if Vec::<u8>::new().try_reserve_exact(stacks).is_err() {
            fail(RunError {
                node: String::new(),
                kind: String::new(),
                file: plan.file.clone(),
                pos: Pos::default(),
                message: format!(
                    "cannot start the node threads: voxflow runs each of the graph's {n_nodes} nodes \
                     on its own thread, and the {} MiB of address space their stacks need is not \
                     available (raise the memory limit, e.g. `ulimit -v`, or split the graph)",
                    stacks >> 20
                ),
            });
        }
        let mut handles = Vec::new();
        for (n, (mut node, mut ctx)) in built.into_iter().zip(ctxs).enumerate() {
            if first_error.lock().expect("lock").is_some() {
                break;
            }
            let fail = &fail;
            let err_at = &err_at;
            let gate = &gate;
            let spawned = std::thread::Builder::new()
                .name(format!("node-{}", plan.nodes[n].id))
                .spawn_scoped(scope, move || {
                    if !gate.wait() {
                        return 0.0;
                    }
                    let t = Instant::now();
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        node.run(&mut ctx)
                    }));
                    let failure = match r {
                        Ok(Ok(())) => None,
                        Ok(Err(NodeError::Cancelled)) => None,
                        Ok(Err(NodeError::Failed(m))) => Some(m),
                        Err(p) => Some(format!("panicked: {}", panic_message(p))),
                    };
                    if let Some(m) = failure {
                        fail(err_at(n, m));
                    }
                    let wall = t.elapsed();
                    ctx.stats
                        .wall_ns
                        .store(wall.as_nanos() as u64, Ordering::Relaxed);
                    ctx.stats.finished.store(true, Ordering::Release);
                    drop(ctx);
                    wall.as_secs_f64() * 1000.0
                });
            match spawned {
                Ok(h) => handles.push((n, h)),
                Err(e) => {
                    // The nodes not started yet are dropped with their channels after the
                    // cancellation, so the started ones stop rather than see a normal end.
                    fail(err_at(
                        n,
                        format!(
                            "cannot start this node's thread ({e}): voxflow runs each of the \
                             graph's {n_nodes} nodes on its own thread and the system refused \
                             thread {} (raise the limit on threads or memory, e.g. `ulimit -u` / \
                             `ulimit -v`, or split the graph)",
                            n + 1
                        ),
                    ));
                    break;
                }
            }
        }
        gate.open(first_error.lock().expect("lock").is_none());
        for (n, h) in handles {
            walls[n] = h.join().unwrap_or(0.0);
        }
        all_ended.store(true, Ordering::Release);
    });
    let pending = std::mem::take(&mut *pending.lock().expect("lock"));
    if let Some(e) = first_error.into_inner().expect("lock").or_else(stopped) {
        pending.discard();
        return Err(e);
    }
    let files = pending.files;
    let mut outputs = Vec::new();
    for f in &files {
        if let Err(e) = std::fs::rename(&f.tmp, &f.dest) {
            for g in &files {
                let _ = std::fs::remove_file(&g.tmp);
            }
            return Err(RunError {
                node: String::new(),
                kind: String::new(),
                file: plan.file.clone(),
                pos: Pos::default(),
                message: format!("cannot move output into place at {}: {e}", f.dest.display()),
            });
        }
        outputs.push(f.dest.clone());
    }
    let nodes = plan
        .nodes
        .iter()
        .enumerate()
        .map(|(n, pn)| {
            let s = &stats.nodes[n].1;
            let wait = s.wait_ns.load(Ordering::Relaxed) as f64 / 1e6;
            NodeReport {
                id: pn.id.clone(),
                kind: pn.kind.clone(),
                wall_ms: walls[n],
                busy_ms: (walls[n] - wait).max(0.0),
                slices: s.slices_done.load(Ordering::Relaxed),
                max_queue_depth: s.max_queue.load(Ordering::Relaxed),
                facts: s.facts(),
            }
        })
        .collect();
    Ok(RunReport {
        graph: plan.graph.clone(),
        file: plan.file.clone(),
        wall_ms: started.elapsed().as_secs_f64() * 1000.0,
        peak_rss_bytes: peak_rss_bytes(),
        nodes,
        outputs,
        disabled: plan.disabled.clone(),
    })
}

/// Rust's default stack for a spawned thread (the node threads use it).
const THREAD_STACK_BYTES: usize = 2 << 20;
/// Address space kept free beyond the stacks for starting the threads and reporting an error.
const SPAWN_HEADROOM_BYTES: usize = 64 << 20;

/// Holds node threads until every one is started; then lets them run, or tells them to leave.
#[derive(Default)]
struct Gate {
    run: Mutex<Option<bool>>,
    opened: std::sync::Condvar,
}

impl Gate {
    fn open(&self, run: bool) {
        *self.run.lock().expect("lock") = Some(run);
        self.opened.notify_all();
    }

    /// Whether the thread is to run its node.
    fn wait(&self) -> bool {
        let mut run = self.run.lock().expect("lock");
        loop {
            if let Some(r) = *run {
                return r;
            }
            run = self.opened.wait(run).expect("lock");
        }
    }
}
