//! Executor behaviour: fan-out, fan-in, backpressure, cancellation, atomic outputs.

use ndarray::Array2;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use voxflow_runtime::decl::{ParamType, PortType};
use voxflow_runtime::stream::{Header, SliceData, StreamType};
use voxflow_runtime::validate::CheckOptions;
use voxflow_runtime::{
    check, execute, BuildEnv, GraphDoc, Node, NodeCtx, NodeDecl, NodeError, NodeKind, Params,
    Registry, RunOptions, RunStats, Slice,
};

const IMG: PortType = PortType::Fixed(StreamType::Image);

/// Emits `n` slices of 4x4 filled with the slice index; counts how many it has sent.
struct Source(Arc<AtomicUsize>);
impl NodeKind for Source {
    fn decl(&self) -> NodeDecl {
        NodeDecl::new("source", "test source")
            .output("out", IMG, "")
            .param(
                "n",
                ParamType::Int {
                    min: Some(1),
                    max: None,
                },
                10,
                "",
            )
            .param(
                "fail_at",
                ParamType::Int {
                    min: None,
                    max: None,
                },
                -1,
                "",
            )
    }
    fn build(&self, p: &Params, _: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(SourceNode {
            n: p.usize("n")?,
            fail_at: p.i64("fail_at")?,
            sent: self.0.clone(),
        }))
    }
}
struct SourceNode {
    n: usize,
    fail_at: i64,
    sent: Arc<AtomicUsize>,
}
impl Node for SourceNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        ctx.send_header(
            "out",
            Header::new(StreamType::Image, [self.n, 4, 4], [1.0; 3]),
        )?;
        for k in 0..self.n {
            if k as i64 == self.fail_at {
                return Err(NodeError::msg(format!("broken slice {k}")));
            }
            ctx.send_slice(
                "out",
                Slice::new(k, SliceData::Image(Array2::from_elem((4, 4), k as f32))),
            )?;
            self.sent.fetch_add(1, Ordering::SeqCst);
        }
        ctx.end("out")
    }
}

/// Adds a constant to every pixel.
struct AddKind;
impl NodeKind for AddKind {
    fn decl(&self) -> NodeDecl {
        NodeDecl::new("add", "")
            .input("in", IMG, "")
            .output("out", IMG, "")
            .param(
                "v",
                ParamType::Float {
                    min: None,
                    max: None,
                    min_exclusive: false,
                    max_exclusive: false,
                },
                1.0,
                "",
            )
    }
    fn build(&self, p: &Params, _: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(Add(p.f64("v")? as f32)))
    }
}
struct Add(f32);
impl Node for Add {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let h = ctx.header("in")?;
        ctx.send_header("out", (*h).clone())?;
        while let Some(s) = ctx.next_slice("in")? {
            let a = s.data.image().unwrap() + self.0;
            ctx.send_slice("out", Slice::new(s.index, SliceData::Image(a)))?;
        }
        ctx.end("out")
    }
}

/// Sums two streams slice by slice (fan-in) after gathering both.
struct SumKind;
impl NodeKind for SumKind {
    fn decl(&self) -> NodeDecl {
        NodeDecl::new("sum", "")
            .input("a", IMG, "")
            .input("b", IMG, "")
            .output("out", IMG, "")
    }
    fn build(&self, _: &Params, _: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(Sum))
    }
}
struct Sum;
impl Node for Sum {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let v = ctx.gather_many(&["a", "b"])?;
        let mut out = v[0].clone();
        if let (voxflow_runtime::VolumeData::Image(x), Some(y)) = (&mut out.data, v[1].image()) {
            *x += y;
        }
        ctx.emit_volume("out", &out)
    }
}

/// Gathers the whole volume, then emits the slices whose index is a multiple of `every`, in
/// increasing order or (`reverse: 1`) decreasing order: a branch that buffers everything.
struct HoldKind;
impl NodeKind for HoldKind {
    fn decl(&self) -> NodeDecl {
        let int = ParamType::Int {
            min: Some(0),
            max: None,
        };
        NodeDecl::new("hold", "")
            .input("in", IMG, "")
            .output("out", IMG, "")
            .param("every", int.clone(), 1, "")
            .param("reverse", int, 0, "")
    }
    fn build(&self, p: &Params, _: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(Hold {
            every: p.usize("every")?.max(1),
            reverse: p.usize("reverse")? == 1,
        }))
    }
}
struct Hold {
    every: usize,
    reverse: bool,
}
impl Node for Hold {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let v = ctx.gather("in")?;
        ctx.send_header("out", v.header.clone())?;
        let mut ks: Vec<usize> = (0..v.header.num_slices())
            .filter(|k| k % self.every == 0)
            .collect();
        if self.reverse {
            ks.reverse();
        }
        for k in ks {
            ctx.send_slice("out", Slice::new(k, v.slice(k)))?;
        }
        ctx.end("out")
    }
}

/// Sums two streams slice by slice as they arrive (`NodeCtx::zip`); a missing slice counts 0.
/// `drain: 1` (or 2) reads input `a` (or `b`) whole first (`NodeCtx::drain_input`).
struct ZipSumKind;
impl NodeKind for ZipSumKind {
    fn decl(&self) -> NodeDecl {
        NodeDecl::new("zipsum", "")
            .input("a", IMG, "")
            .input("b", IMG, "")
            .output("out", IMG, "")
            .param(
                "drain",
                ParamType::Int {
                    min: Some(0),
                    max: Some(2),
                },
                0,
                "",
            )
    }
    fn build(&self, p: &Params, _: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(ZipSum {
            drain: p.usize("drain")?.checked_sub(1),
        }))
    }
}
struct ZipSum {
    drain: Option<usize>,
}
impl Node for ZipSum {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let mut zip = ctx.zip(&["a", "b"])?;
        let mut drained = std::collections::BTreeMap::new();
        if let Some(n) = self.drain {
            ctx.drain_input(&mut zip, n, |s| {
                drained.insert(s.index, s.data.image().unwrap().clone());
                Ok(())
            })?;
        }
        ctx.send_header("out", (**zip.header(0)).clone())?;
        let mut last = None;
        while let Some(al) = ctx.next_aligned(&mut zip)? {
            assert!(last.is_none_or(|l| al.index > l), "indices out of order");
            last = Some(al.index);
            let mut sum = drained
                .remove(&al.index)
                .unwrap_or_else(|| Array2::<f32>::zeros((4, 4)));
            for (n, s) in al.slices.iter().enumerate() {
                let Some(s) = s else { continue };
                assert_ne!(Some(n), self.drain, "a drained input yields nothing more");
                assert_eq!(s.index, al.index);
                sum += s.data.image().unwrap();
            }
            ctx.send_slice("out", Slice::new(al.index, SliceData::Image(sum)))?;
        }
        assert!(drained.is_empty(), "slices only the drained input had");
        ctx.end("out")
    }
}

/// Writes the sum of all pixels to a file (through the runtime's atomic output), slowly.
struct SinkKind(Arc<AtomicUsize>);
impl NodeKind for SinkKind {
    fn decl(&self) -> NodeDecl {
        NodeDecl::new("sink", "")
            .input("in", IMG, "")
            .required("path", ParamType::Path, "")
            .param(
                "delay_ms",
                ParamType::Int {
                    min: Some(0),
                    max: None,
                },
                0,
                "",
            )
    }
    fn build(&self, p: &Params, _: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(Sink {
            path: p.path("path")?,
            delay: Duration::from_millis(p.usize("delay_ms")? as u64),
            producer_sent: self.0.clone(),
            max_lead: 0,
        }))
    }
}
struct Sink {
    path: std::path::PathBuf,
    delay: Duration,
    producer_sent: Arc<AtomicUsize>,
    max_lead: usize,
}
impl Node for Sink {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        ctx.header("in")?;
        let tmp = ctx.output_file(&self.path)?;
        let mut total = 0.0f64;
        let mut seen = 0usize;
        while let Some(s) = ctx.next_slice("in")? {
            seen += 1;
            let lead = self
                .producer_sent
                .load(Ordering::SeqCst)
                .saturating_sub(seen);
            self.max_lead = self.max_lead.max(lead);
            total += s.data.image().unwrap().sum() as f64;
            std::fs::write(&tmp, format!("partial {total}")).unwrap();
            std::thread::sleep(self.delay);
        }
        std::fs::write(&tmp, format!("{total} {}", self.max_lead)).unwrap();
        Ok(())
    }
}

fn registry(sent: &Arc<AtomicUsize>) -> Registry {
    let mut r = Registry::new();
    r.add(Arc::new(Source(sent.clone())), "test").unwrap();
    r.add(Arc::new(AddKind), "test").unwrap();
    r.add(Arc::new(SumKind), "test").unwrap();
    r.add(Arc::new(SinkKind(sent.clone())), "test").unwrap();
    r.add(Arc::new(HoldKind), "test").unwrap();
    r.add(Arc::new(ZipSumKind), "test").unwrap();
    r
}

fn run(
    text: &str,
    depth: usize,
) -> (
    Result<voxflow_runtime::RunReport, voxflow_runtime::RunError>,
    Arc<AtomicUsize>,
) {
    let sent = Arc::new(AtomicUsize::new(0));
    let reg = registry(&sent);
    let doc = GraphDoc::parse(text, Path::new("/t/g.yaml")).unwrap();
    let plan = check(&doc, &reg, &CheckOptions::default()).unwrap();
    let stats = RunStats::new(&plan);
    let opts = RunOptions {
        queue_depth: depth,
        threads: 1,
        stop: None,
    };
    (execute(&plan, &reg, &opts, &stats), sent)
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("voxflow-rt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn fan_out_and_fan_in() {
    let d = tmp("fan");
    let out = d.join("sum.txt");
    // src -> a (+1) and src -> b (+10) -> sum -> sink: each slice k gives 2k + 11 per pixel.
    let g = format!(
        "graph: fan\nnodes:\n  src: {{ kind: source, n: 10 }}\n  a: {{ kind: add, in: src, v: 1 }}\n  b: {{ kind: add, in: src, v: 10 }}\n  s: {{ kind: sum, a: a, b: b }}\n  out: {{ kind: sink, in: s, path: {} }}\n",
        out.display()
    );
    let (r, _) = run(&g, 1);
    let r = r.unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let total: f64 = text.split(' ').next().unwrap().parse().unwrap();
    let expect: f64 = (0..10).map(|k| 16.0 * (2.0 * k as f64 + 11.0)).sum();
    assert_eq!(total, expect);
    assert_eq!(r.outputs, vec![out]);
    assert_eq!(r.nodes.len(), 5);
}

#[test]
fn zip_reads_a_diamond_whose_branch_holds_the_whole_volume() {
    // src -> hold (emits only after its input ended) -> a; src -> b directly; queues of depth 1.
    // A reader that waited on `a` first would leave src blocked on `b`'s full queue forever.
    let d = tmp("zip");
    let out = d.join("sum.txt");
    // `drain` reads one input whole first, the held one or the direct one, while queueing the
    // other: no order of reading may leave src blocked.
    for (ports, n) in [
        ("a: h, b: src", 200),
        ("a: src, b: h", 200),
        ("a: h, b: src, drain: 1", 200),
        ("a: h, b: src, drain: 2", 200),
    ] {
        let g = format!(
            "graph: z\nnodes:\n  src: {{ kind: source, n: {n} }}\n  h: {{ kind: hold, in: src }}\n  s: {{ kind: zipsum, {ports} }}\n  out: {{ kind: sink, in: s, path: {} }}\n",
            out.display()
        );
        // A deadlock never returns: wait for the run on another thread, with a generous limit.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(run(&g, 1).0.map(|_| ()).map_err(|e| e.to_string())));
        rx.recv_timeout(Duration::from_secs(120))
            .expect("the zip diamond deadlocked")
            .unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let total: f64 = text.split(' ').next().unwrap().parse().unwrap();
        let expect: f64 = (0..n).map(|k| 16.0 * 2.0 * k as f64).sum();
        assert_eq!(total, expect, "{ports}");
    }
}

#[test]
fn zip_aligns_a_sparse_input_and_refuses_slices_out_of_order() {
    let d = tmp("zip_sparse");
    let out = d.join("sum.txt");
    // `h` keeps every third slice: slice k sums to 2k where k % 3 == 0, else k.
    let g = format!(
        "graph: z\nnodes:\n  src: {{ kind: source, n: 30 }}\n  h: {{ kind: hold, in: src, every: 3 }}\n  s: {{ kind: zipsum, a: h, b: src }}\n  out: {{ kind: sink, in: s, path: {} }}\n",
        out.display()
    );
    let (r, _) = run(&g, 1);
    r.unwrap();
    let total: f64 = std::fs::read_to_string(&out)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let expect: f64 = (0..30)
        .map(|k| 16.0 * if k % 3 == 0 { 2.0 } else { 1.0 } * k as f64)
        .sum();
    assert_eq!(total, expect);

    let g = format!(
        "graph: z\nnodes:\n  src: {{ kind: source, n: 5 }}\n  h: {{ kind: hold, in: src, reverse: 1 }}\n  s: {{ kind: zipsum, a: src, b: h }}\n  out: {{ kind: sink, in: s, path: {} }}\n",
        d.join("rev.txt").display()
    );
    let e = run(&g, 1).0.unwrap_err();
    assert_eq!(e.node, "s");
    assert!(
        e.message.contains("input `b` sent slice 3 after slice 4")
            && e.message.contains("increasing order"),
        "{e}"
    );
    assert!(!d.join("rev.txt").exists());
}

#[test]
fn slow_consumer_bounds_the_producer_lead() {
    let d = tmp("bp");
    let out = d.join("o.txt");
    let g = format!(
        "graph: bp\nnodes:\n  src: {{ kind: source, n: 40 }}\n  a: {{ kind: add, in: src }}\n  out: {{ kind: sink, in: a, path: {}, delay_ms: 5 }}\n",
        out.display()
    );
    let (r, _) = run(&g, 2);
    r.unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let lead: usize = text.split(' ').nth(1).unwrap().parse().unwrap();
    // Two edges of depth 2 plus one message in each node's hands: never more than ~7 ahead.
    assert!(
        lead <= 8,
        "producer ran {lead} slices ahead of a slow consumer"
    );
    assert!(lead >= 2, "the producer should run ahead a little ({lead})");
}

#[test]
fn first_error_cancels_everything_and_writes_nothing() {
    let d = tmp("cancel");
    let out = d.join("o.txt");
    let g = format!(
        "graph: c\nnodes:\n  src: {{ kind: source, n: 100000, fail_at: 30 }}\n  a: {{ kind: add, in: src }}\n  out: {{ kind: sink, in: a, path: {}, delay_ms: 1 }}\n",
        out.display()
    );
    let t = Instant::now();
    let (r, _) = run(&g, 2);
    let e = r.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10), "cancellation hung");
    assert_eq!(e.node, "src");
    assert_eq!(e.pos.line, 3);
    assert!(e.to_string().contains("broken slice 30"), "{e}");
    assert!(e.to_string().contains("/t/g.yaml:3"), "{e}");
    assert!(!out.exists(), "a failed run left an output");
    assert_eq!(
        std::fs::read_dir(&d).unwrap().count(),
        0,
        "temporary files left behind"
    );
}

#[test]
fn error_in_a_branch_cancels_a_blocked_diamond() {
    // `b` fails while `sum` waits on both branches and the source is blocked on full queues.
    struct FailKind;
    impl NodeKind for FailKind {
        fn decl(&self) -> NodeDecl {
            NodeDecl::new("fail", "")
                .input("in", IMG, "")
                .output("out", IMG, "")
        }
        fn build(&self, _: &Params, _: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
            Ok(Box::new(Fail))
        }
    }
    struct Fail;
    impl Node for Fail {
        fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
            ctx.header("in")?;
            ctx.next_slice("in")?;
            std::thread::sleep(Duration::from_millis(50));
            panic!("boom in a plugin-like node")
        }
    }
    let sent = Arc::new(AtomicUsize::new(0));
    let mut reg = registry(&sent);
    reg.add(Arc::new(FailKind), "test").unwrap();
    let d = tmp("diamond");
    let g = format!(
        "graph: d\nnodes:\n  src: {{ kind: source, n: 100000 }}\n  a: {{ kind: add, in: src }}\n  b: {{ kind: fail, in: src }}\n  s: {{ kind: sum, a: a, b: b }}\n  out: {{ kind: sink, in: s, path: {} }}\n",
        d.join("o.txt").display()
    );
    let doc = GraphDoc::parse(&g, Path::new("g.yaml")).unwrap();
    let plan = check(&doc, &reg, &CheckOptions::default()).unwrap();
    let t = Instant::now();
    let e = execute(
        &plan,
        &reg,
        &RunOptions {
            queue_depth: 1,
            threads: 1,
            stop: None,
        },
        &RunStats::new(&plan),
    )
    .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(e.node, "b");
    assert!(e.message.contains("panicked: boom"), "{e}");
    assert!(!d.join("o.txt").exists());
}

#[test]
fn report_counts_slices_and_queue_depth() {
    let d = tmp("report");
    let g = format!(
        "graph: r\nnodes:\n  src: {{ kind: source, n: 25 }}\n  out: {{ kind: sink, in: src, path: {}, delay_ms: 2 }}\n",
        d.join("o.txt").display()
    );
    let (r, _) = run(&g, 3);
    let r = r.unwrap();
    let sink = r.nodes.iter().find(|n| n.id == "out").unwrap();
    assert!(
        sink.max_queue_depth >= 1 && sink.max_queue_depth <= 3,
        "{sink:?}"
    );
    assert!(sink.wall_ms >= 25.0 * 2.0);
    assert!(r.peak_rss_bytes.unwrap() > 0);
}

#[test]
fn a_stop_signal_cancels_the_run_and_removes_its_files_and_folders() {
    static STOP: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
    let d = tmp("stop");
    let out = d.join("new/deeper/o.txt");
    let g = format!(
        "graph: s\nnodes:\n  src: {{ kind: source, n: 100000 }}\n  out: {{ kind: sink, in: src, path: {}, delay_ms: 1 }}\n",
        out.display()
    );
    let sent = Arc::new(AtomicUsize::new(0));
    let reg = registry(&sent);
    let doc = GraphDoc::parse(&g, Path::new("/t/g.yaml")).unwrap();
    let plan = check(&doc, &reg, &CheckOptions::default()).unwrap();
    let opts = RunOptions {
        queue_depth: 2,
        threads: 1,
        stop: Some(&STOP),
    };
    let signal = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(200));
        STOP.store(2, Ordering::SeqCst);
    });
    let t = Instant::now();
    let e = execute(&plan, &reg, &opts, &RunStats::new(&plan)).unwrap_err();
    signal.join().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "the stop hung");
    assert!(sent.load(Ordering::SeqCst) > 0, "stopped before it started");
    assert!(
        e.to_string()
            .starts_with("/t/g.yaml: interrupted by SIGINT"),
        "{e}"
    );
    // The sink had made new/deeper/ and a temporary there: all gone.
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
}
