//! The node API: a kind declares itself and builds nodes; a node runs on its own thread and
//! talks to its neighbours through `NodeCtx`.

use crate::decl::{NodeDecl, Params};
use crate::output::{self, Pending, PendingFile};
use crate::stream::{Header, Message, Slice, StreamType};
use crossbeam_channel::{Receiver, Select, Sender};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A node kind: its declaration plus a constructor.
pub trait NodeKind: Send + Sync {
    fn decl(&self) -> NodeDecl;
    /// Extra checks across params, run by `voxflow check`; `(param, message)` pairs.
    fn check(&self, _params: &Params) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Builds a node from checked params. Runs before any node starts, so a failure here
    /// (e.g. a missing model file) stops the graph with nothing written.
    fn build(&self, params: &Params, env: &BuildEnv) -> Result<Box<dyn Node>, NodeError>;
}

/// What a node may know about the run when it is built.
#[derive(Clone, Debug, Default)]
pub struct BuildEnv {
    /// Threads this node may use for its own parallel work.
    pub threads: usize,
}

/// A running node.
pub trait Node: Send {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError>;
}

/// A node failure (or a cancellation caused by another node's failure).
#[derive(Debug, Clone, PartialEq)]
pub enum NodeError {
    Failed(String),
    Cancelled,
}

impl NodeError {
    pub fn msg(m: impl Into<String>) -> Self {
        NodeError::Failed(m.into())
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Failed(m) => f.write_str(m),
            NodeError::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl std::error::Error for NodeError {}

impl From<String> for NodeError {
    fn from(m: String) -> Self {
        NodeError::Failed(m)
    }
}

/// Live counters of one node, read by progress bars and the run report.
#[derive(Debug, Default)]
pub struct NodeStats {
    pub slices_done: AtomicUsize,
    pub slices_total: AtomicUsize,
    /// Nanoseconds spent blocked on channels.
    pub wait_ns: AtomicU64,
    pub max_queue: AtomicUsize,
    /// Wall time of the node's `run`, set just before `finished`.
    pub wall_ns: AtomicU64,
    pub finished: AtomicBool,
    /// What the node reported about how it ran ([`NodeCtx::set_fact`]), by name.
    pub facts: Mutex<BTreeMap<String, String>>,
}

impl NodeStats {
    /// A copy of the node's facts.
    pub fn facts(&self) -> BTreeMap<String, String> {
        self.facts.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

/// The run as a node sees it: the graph and every node's counters.
pub(crate) struct RunInfo {
    pub graph: String,
    pub file: PathBuf,
    pub includes: Vec<PathBuf>,
    /// Per plan node: id, kind, counters.
    pub nodes: Vec<(String, String, Arc<NodeStats>)>,
    /// Per plan node: the plan nodes it reads from, directly or indirectly.
    pub upstream: Vec<Vec<usize>>,
}

/// Timing of a finished node (as in the run report).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeTiming {
    pub id: String,
    pub kind: String,
    pub wall_ms: f64,
    /// Wall time minus time spent waiting on channels.
    pub busy_ms: f64,
    pub slices: usize,
    /// What the node reported about how it ran (e.g. the device a model ran on).
    pub facts: BTreeMap<String, String>,
}

pub(crate) struct InPort {
    pub rx: Receiver<Message>,
    pub ended: bool,
}

/// The edges and services of one running node.
pub struct NodeCtx {
    pub(crate) id: String,
    pub(crate) inputs: Vec<Option<InPort>>,
    pub(crate) input_names: Vec<String>,
    pub(crate) outputs: Vec<Vec<Sender<Message>>>,
    pub(crate) output_names: Vec<String>,
    pub(crate) cancel: Receiver<()>,
    pub(crate) stats: Arc<NodeStats>,
    pub(crate) pending: Arc<Mutex<Pending>>,
    pub(crate) threads: usize,
    pub(crate) index: usize,
    pub(crate) run: Arc<RunInfo>,
}

impl NodeCtx {
    /// The node id as written in the graph.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Threads this node may use.
    pub fn threads(&self) -> usize {
        self.threads
    }
    /// Name of the running graph.
    pub fn graph_name(&self) -> &str {
        &self.run.graph
    }
    /// The graph file.
    pub fn graph_file(&self) -> &Path {
        &self.run.file
    }
    /// The graph files the graph includes, each once.
    pub fn graph_includes(&self) -> &[PathBuf] {
        &self.run.includes
    }

    /// Timings of the nodes that have finished, in graph order. First waits until every node
    /// upstream of this one has finished, so call it after reading all inputs to their end
    /// (from a node whose outputs nobody upstream waits for).
    pub fn finished_nodes(&self) -> Result<Vec<NodeTiming>, NodeError> {
        let run = &self.run;
        while !run.upstream[self.index]
            .iter()
            .all(|&n| run.nodes[n].2.finished.load(Ordering::Acquire))
        {
            match self.cancel.recv_timeout(Duration::from_millis(2)) {
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                _ => return Err(NodeError::Cancelled),
            }
        }
        Ok(run
            .nodes
            .iter()
            .filter(|(_, _, s)| s.finished.load(Ordering::Acquire))
            .map(|(id, kind, s)| {
                let wall_ms = s.wall_ns.load(Ordering::Relaxed) as f64 / 1e6;
                let wait_ms = s.wait_ns.load(Ordering::Relaxed) as f64 / 1e6;
                NodeTiming {
                    id: id.clone(),
                    kind: kind.clone(),
                    wall_ms,
                    busy_ms: (wall_ms - wait_ms).max(0.0),
                    slices: s.slices_done.load(Ordering::Relaxed),
                    facts: s.facts(),
                }
            })
            .collect())
    }
    pub(crate) fn in_index(&self, port: &str) -> usize {
        self.input_names
            .iter()
            .position(|p| p == port)
            .unwrap_or_else(|| panic!("node has no input port `{port}`"))
    }
    fn out_index(&self, port: &str) -> usize {
        self.output_names
            .iter()
            .position(|p| p == port)
            .unwrap_or_else(|| panic!("node has no output port `{port}`"))
    }
    /// Records a fact about how this node ran (`name: value`, replacing an earlier value), for
    /// the run report and the nodes that list finished nodes.
    pub fn set_fact(&self, name: &str, value: impl Into<String>) {
        if let Ok(mut f) = self.stats.facts.lock() {
            f.insert(name.to_string(), value.into());
        }
    }
    /// Whether an (optional) input port is connected.
    pub fn has_input(&self, port: &str) -> bool {
        self.inputs[self.in_index(port)].is_some()
    }
    /// Whether any consumer reads this output.
    pub fn output_used(&self, port: &str) -> bool {
        !self.outputs[self.out_index(port)].is_empty()
    }

    /// Tells a long computation that neither sends nor receives whether the run was cancelled
    /// (check it between steps; on `true` return [`NodeError::Cancelled`]).
    pub fn cancel_token(&self) -> CancelToken {
        CancelToken(self.cancel.clone())
    }

    pub(crate) fn check_cancel(&self) -> Result<(), NodeError> {
        match self.cancel.try_recv() {
            Err(crossbeam_channel::TryRecvError::Empty) => Ok(()),
            _ => Err(NodeError::Cancelled),
        }
    }

    pub(crate) fn recv_index(&mut self, i: usize) -> Result<Message, NodeError> {
        let port = self.inputs[i].as_mut().expect("input connected");
        if port.ended {
            return Ok(Message::End);
        }
        let depth = port.rx.len();
        self.stats.max_queue.fetch_max(depth, Ordering::Relaxed);
        let t = Instant::now();
        let r = crossbeam_channel::select! {
            recv(port.rx) -> m => m.ok(),
            recv(self.cancel) -> _ => return Err(NodeError::Cancelled),
        };
        self.stats
            .wait_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match r {
            Some(Message::End) | None => {
                port.ended = true;
                Ok(Message::End)
            }
            Some(m) => Ok(m),
        }
    }

    /// Receives the stream header of an input.
    pub fn header(&mut self, port: &str) -> Result<Arc<Header>, NodeError> {
        let i = self.in_index(port);
        match self.recv_index(i)? {
            Message::Header(h) => Ok(h),
            Message::End => Err(NodeError::msg(format!(
                "input `{port}` ended before its header"
            ))),
            Message::Slice(_) => Err(NodeError::msg(format!(
                "input `{port}` sent a slice before its header"
            ))),
        }
    }

    /// Receives the header and checks its stream type.
    pub fn header_of(&mut self, port: &str, ty: StreamType) -> Result<Arc<Header>, NodeError> {
        let h = self.header(port)?;
        if h.stream_type != ty {
            return Err(NodeError::msg(format!(
                "input `{port}` carries a {} stream, this node needs {ty}",
                h.stream_type
            )));
        }
        Ok(h)
    }

    /// The next slice of an input, `None` at the end of the stream.
    pub fn next_slice(&mut self, port: &str) -> Result<Option<Arc<Slice>>, NodeError> {
        let i = self.in_index(port);
        match self.recv_index(i)? {
            Message::Slice(s) => Ok(Some(s)),
            Message::End => Ok(None),
            Message::Header(_) => Err(NodeError::msg(format!(
                "input `{port}` sent a second header"
            ))),
        }
    }

    fn send_index(&mut self, i: usize, msg: Message) -> Result<(), NodeError> {
        let t = Instant::now();
        let mut gone = Vec::new();
        for (n, tx) in self.outputs[i].iter().enumerate() {
            crossbeam_channel::select! {
                send(tx, msg.clone()) -> r => if r.is_err() { gone.push(n) },
                recv(self.cancel) -> _ => return Err(NodeError::Cancelled),
            }
        }
        // A consumer that stopped reading no longer gets messages.
        for n in gone.into_iter().rev() {
            self.outputs[i].remove(n);
        }
        self.stats
            .wait_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(())
    }

    pub fn send_header(&mut self, port: &str, h: Header) -> Result<(), NodeError> {
        let i = self.out_index(port);
        self.send_index(i, Message::Header(Arc::new(h)))
    }
    pub fn send_slice(&mut self, port: &str, s: Slice) -> Result<(), NodeError> {
        self.check_cancel()?;
        let i = self.out_index(port);
        self.send_index(i, Message::Slice(Arc::new(s)))
    }
    /// Passes a received slice on without copying it.
    pub fn forward_slice(&mut self, port: &str, s: Arc<Slice>) -> Result<(), NodeError> {
        self.check_cancel()?;
        let i = self.out_index(port);
        self.send_index(i, Message::Slice(s))
    }
    pub fn end(&mut self, port: &str) -> Result<(), NodeError> {
        let i = self.out_index(port);
        self.send_index(i, Message::End)
    }

    /// Sets the number of slices this node expects to process (progress bars).
    pub fn set_total(&self, n: usize) {
        self.stats.slices_total.store(n, Ordering::Relaxed);
    }
    /// Counts one processed slice.
    pub fn tick(&self) {
        self.stats.slices_done.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits until one of the inputs at positions `inputs` has a message (or the run is
    /// cancelled); returns its index in `inputs`.
    pub(crate) fn wait_any(&mut self, inputs: &[usize]) -> Result<usize, NodeError> {
        let mut sel = Select::new();
        for &i in inputs {
            sel.recv(&self.inputs[i].as_ref().expect("connected").rx);
        }
        let cancel_op = sel.recv(&self.cancel);
        let t = Instant::now();
        let ready = sel.ready();
        self.stats
            .wait_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        if ready == cancel_op {
            return Err(NodeError::Cancelled);
        }
        Ok(ready)
    }

    /// A temporary path beside `dest` to write to; the runtime renames it to `dest` when the
    /// whole graph has succeeded and deletes it otherwise (with the folders made for it). Stale
    /// temporaries of `dest` from killed runs are removed first.
    pub fn output_file(&self, dest: &Path) -> Result<PathBuf, NodeError> {
        let (dir, name) = output::folder_and_name(dest).map_err(NodeError::msg)?;
        let mut missing = Vec::new();
        let mut d = dir;
        while !d.exists() {
            missing.push(d.to_path_buf());
            match d.parent() {
                Some(p) if !p.as_os_str().is_empty() => d = p,
                _ => break,
            }
        }
        let created = std::fs::create_dir_all(dir);
        // Recorded even after a failure: some of them may exist now.
        self.pending
            .lock()
            .expect("pending lock")
            .dirs
            .extend(missing);
        created.map_err(|e| {
            NodeError::msg(format!("cannot create the folder {}: {e}", dir.display()))
        })?;
        let tmp = output::temp_beside(dir, &name);
        self.pending
            .lock()
            .expect("pending lock")
            .files
            .push(PendingFile {
                tmp: tmp.clone(),
                dest: dest.to_path_buf(),
            });
        Ok(tmp)
    }
}

/// Whether the run a node belongs to was cancelled (another node failed, or a stop signal).
#[derive(Clone)]
pub struct CancelToken(Receiver<()>);

impl CancelToken {
    pub fn is_cancelled(&self) -> bool {
        !matches!(
            self.0.try_recv(),
            Err(crossbeam_channel::TryRecvError::Empty)
        )
    }
}

/// Checks that a slice fits the stream its header announced.
pub fn check_slice(h: &Header, s: &Slice, port: &str) -> Result<(), NodeError> {
    if s.index >= h.shape[0] {
        return Err(NodeError::msg(format!(
            "input `{port}`: slice index {} outside 0..{}",
            s.index, h.shape[0]
        )));
    }
    if s.data.stream_type() != h.stream_type || s.data.dims() != (h.shape[1], h.shape[2]) {
        return Err(NodeError::msg(format!(
            "input `{port}`: slice {} does not match the stream header ({} {}x{})",
            s.index, h.stream_type, h.shape[1], h.shape[2]
        )));
    }
    if let crate::stream::SliceData::Prob(p) = &s.data {
        if p.shape()[0] != h.channels {
            return Err(NodeError::msg(format!(
                "input `{port}`: slice {} has {} channels, header says {}",
                s.index,
                p.shape()[0],
                h.channels
            )));
        }
    }
    Ok(())
}

/// Time spent since `t` in whole milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
