//! Executor behaviour: fan-out, fan-in, backpressure, cancellation, atomic outputs.

mod nodes;

use nodes::{AddKind, HoldKind, SinkKind, Source, SumKind, ZipSumKind, IMG};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use voxflow_runtime::validate::CheckOptions;
use voxflow_runtime::{
    check, execute, BuildEnv, GraphDoc, Node, NodeCtx, NodeDecl, NodeError, NodeKind, Params,
    Registry, RunOptions, RunStats,
};

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
