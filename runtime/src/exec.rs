//! Runs a plan: one thread per node, bounded channels on edges, first error cancels all.

use crate::graph::Pos;
use crate::node::{BuildEnv, InPort, Node, NodeCtx, NodeError, NodeStats, PendingFile, RunInfo};
use crate::registry::Registry;
use crate::validate::Plan;
use crossbeam_channel::{bounded, Receiver, Sender};
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Messages an edge holds before its producer waits.
    pub queue_depth: usize,
    /// Threads a node may use for its own parallel work.
    pub threads: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            queue_depth: 4,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
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

/// A failed run: which node, where it is in the graph file, why.
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
        file: plan.file.clone(),
        pos: plan.nodes[n].pos,
        message,
    };
    let env = BuildEnv {
        threads: opts.threads.max(1),
    };
    let mut built: Vec<Box<dyn Node>> = Vec::new();
    for (n, pn) in plan.nodes.iter().enumerate() {
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
    let pending: Arc<Mutex<Vec<PendingFile>>> = Arc::default();
    let run = Arc::new(RunInfo {
        graph: plan.graph.clone(),
        file: plan.file.clone(),
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
    let started = Instant::now();
    let mut walls = vec![0.0; plan.nodes.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = built
            .into_iter()
            .zip(ctxs)
            .enumerate()
            .map(|(n, (mut node, mut ctx))| {
                let first_error = &first_error;
                let cancel_tx = &cancel_tx;
                let err_at = &err_at;
                std::thread::Builder::new()
                    .name(format!("node-{}", plan.nodes[n].id))
                    .spawn_scoped(scope, move || {
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
                            let mut fe = first_error.lock().expect("lock");
                            if fe.is_none() {
                                *fe = Some(err_at(n, m));
                            }
                            cancel_tx.lock().expect("lock").take();
                        }
                        let wall = t.elapsed();
                        ctx.stats
                            .wall_ns
                            .store(wall.as_nanos() as u64, Ordering::Relaxed);
                        ctx.stats.finished.store(true, Ordering::Release);
                        drop(ctx);
                        wall.as_secs_f64() * 1000.0
                    })
                    .expect("spawn node thread")
            })
            .collect();
        for (n, h) in handles.into_iter().enumerate() {
            walls[n] = h.join().unwrap_or(0.0);
        }
    });
    let files = std::mem::take(&mut *pending.lock().expect("lock"));
    if let Some(e) = first_error.into_inner().expect("lock") {
        for f in &files {
            let _ = std::fs::remove_file(&f.tmp);
        }
        return Err(e);
    }
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
