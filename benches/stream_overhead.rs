//! Streaming overhead: a chain of cheap nodes through the runtime vs plain loops over the same
//! slices, and peak RSS as the chain grows. Run with `cargo bench --bench stream_overhead`.
//!
//! Each measurement runs in a child process so that peak RSS (VmHWM) and CPU time are its own.

use ndarray::Array2;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;
use voxflow_nodes::preprocess::hu_window::Window;
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::{Header, SliceData, StreamType};
use voxflow_runtime::validate::CheckOptions;
use voxflow_runtime::{
    check, execute, BuildEnv, GraphDoc, Node, NodeCtx, NodeDecl, NodeError, NodeKind, Params,
    RunOptions, RunStats, Slice,
};

const SHAPE: (usize, usize, usize) = (129, 512, 512);

/// Slice k of the synthetic volume; the graph and the loops all call this one function.
#[inline(never)]
fn gen_slice(k: usize) -> Array2<f32> {
    let (_, nj, ni) = SHAPE;
    Array2::from_shape_fn((nj, ni), |(j, i)| {
        ((k * 31 + j * 7 + i * 13) % 1400) as f32 - 1000.0
    })
}

/// The window of chain step `c`, as the graph's `hu_window` nodes are configured.
fn window(c: usize) -> Window {
    Window {
        min: -100.0 - c as f32,
        max: 400.0,
        zero_above: None,
        unit: false,
    }
}

/// Streams the synthetic volume.
struct Gen;
impl NodeKind for Gen {
    fn decl(&self) -> NodeDecl {
        NodeDecl::new("gen", "").output("out", PortType::Fixed(StreamType::Image), "")
    }
    fn build(&self, _: &Params, _: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(GenNode))
    }
}
struct GenNode;
impl Node for GenNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let (nk, nj, ni) = SHAPE;
        ctx.send_header(
            "out",
            Header::new(StreamType::Image, [nk, nj, ni], [1.6, 0.57, 0.57]),
        )?;
        for k in 0..nk {
            ctx.send_slice("out", Slice::new(k, SliceData::Image(gen_slice(k))))?;
        }
        ctx.end("out")
    }
}

/// Reads what arrives and drops it.
struct Drain;
impl NodeKind for Drain {
    fn decl(&self) -> NodeDecl {
        NodeDecl::new("drain", "").input("in", PortType::Fixed(StreamType::Image), "")
    }
    fn build(&self, _: &Params, _: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(DrainNode))
    }
}
struct DrainNode;
impl Node for DrainNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        ctx.header("in")?;
        let mut acc = 0.0f64;
        while let Some(s) = ctx.next_slice("in")? {
            acc += s.data.image().expect("image")[[0, 0]] as f64;
        }
        std::hint::black_box(acc);
        Ok(())
    }
}

fn run_chain(n: usize, depth: usize) -> f64 {
    let mut reg = voxflow_nodes::registry();
    reg.add(Arc::new(Gen), "bench").unwrap();
    reg.add(Arc::new(Drain), "bench").unwrap();
    let mut g = String::from("graph: chain\nnodes:\n  src: { kind: gen }\n");
    let mut prev = "src".to_string();
    for c in 0..n {
        let w = window(c);
        g += &format!(
            "  w{c}: {{ kind: hu_window, in: {prev}, min: {}, max: {} }}\n",
            w.min, w.max
        );
        prev = format!("w{c}");
    }
    g += &format!("  sink: {{ kind: drain, in: {prev} }}\n");
    let doc = GraphDoc::parse(&g, Path::new("chain.yaml")).unwrap();
    let plan = check(&doc, &reg, &CheckOptions::default()).unwrap();
    let opts = RunOptions {
        queue_depth: depth,
        ..RunOptions::default()
    };
    let t = Instant::now();
    let report = execute(&plan, &reg, &opts, &RunStats::new(&plan)).unwrap();
    let secs = t.elapsed().as_secs_f64();
    // Every window node saw every slice.
    assert!(report
        .nodes
        .iter()
        .filter(|r| r.kind == "hu_window")
        .all(|r| r.slices == SHAPE.0));
    secs
}

/// The same work as a plain loop: generate each slice, apply the n windows (a new array each,
/// as the nodes do), drop it.
fn run_loop(n: usize) -> f64 {
    let t = Instant::now();
    let mut acc = 0.0f64;
    for k in 0..SHAPE.0 {
        let mut s = gen_slice(k);
        for c in 0..n {
            let w = window(c);
            s = s.mapv(|v| w.apply(v));
        }
        acc += s[[0, 0]] as f64;
    }
    std::hint::black_box(acc);
    t.elapsed().as_secs_f64()
}

/// The fastest plain loop: one buffer per slice, windows applied in place.
fn run_loop_in_place(n: usize) -> f64 {
    let t = Instant::now();
    let mut acc = 0.0f64;
    for k in 0..SHAPE.0 {
        let mut s = gen_slice(k);
        for c in 0..n {
            let w = window(c);
            s.mapv_inplace(|v| w.apply(v));
        }
        acc += s[[0, 0]] as f64;
    }
    std::hint::black_box(acc);
    t.elapsed().as_secs_f64()
}

fn peak_rss_mb() -> f64 {
    voxflow_runtime::exec::peak_rss_bytes().unwrap_or(0) as f64 / 1048576.0
}

/// User + system CPU seconds of this process, all threads (Linux, 10 ms resolution).
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (field(11) + field(12)) / 100.0
}

fn child(mode: &str, n: usize, depth: usize) -> (f64, f64, f64) {
    let exe = std::env::current_exe().unwrap();
    let o = Command::new(exe)
        .args(["--child", mode, &n.to_string(), &depth.to_string()])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    let v: Vec<f64> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
    (v[0], v[1], v[2])
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(p) = args.iter().position(|a| a == "--child") {
        let n: usize = args[p + 2].parse().unwrap();
        let depth: usize = args[p + 3].parse().unwrap();
        let secs = match args[p + 1].as_str() {
            "graph" => run_chain(n, depth),
            "inplace" => run_loop_in_place(n),
            _ => run_loop(n),
        };
        println!("{secs} {} {}", cpu_seconds(), peak_rss_mb());
        return;
    }
    println!(
        "streaming overhead: generated 512x512x129 float32 volume -> N hu_window nodes -> drain"
    );
    println!(
        "median of 5 runs each, each in a fresh process; CPU = user + system seconds, all threads"
    );
    println!("| chain N | queue depth | loop wall s | in-place loop wall s | graph wall s | graph / loop | graph / in-place | loop CPU s | in-place CPU s | graph CPU s | loop peak RSS MB | graph peak RSS MB |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (n, depth) in [(1usize, 4usize), (5, 4), (10, 4), (20, 4), (5, 1), (20, 1)] {
        let mut runs: Vec<[(f64, f64, f64); 3]> = Vec::new();
        for _ in 0..5 {
            runs.push([
                child("loop", n, depth),
                child("inplace", n, depth),
                child("graph", n, depth),
            ]);
        }
        let col = |m: usize, f: fn(&(f64, f64, f64)) -> f64| {
            median(runs.iter().map(|r| f(&r[m])).collect())
        };
        let (lw, iw, gw) = (col(0, |r| r.0), col(1, |r| r.0), col(2, |r| r.0));
        let (lc, ic, gc) = (col(0, |r| r.1), col(1, |r| r.1), col(2, |r| r.1));
        let (lr, gr) = (col(0, |r| r.2), col(2, |r| r.2));
        println!(
            "| {n} | {depth} | {lw:.3} | {iw:.3} | {gw:.3} | {:.2} | {:.2} | {lc:.2} | {ic:.2} | {gc:.2} | {lr:.0} | {gr:.0} |",
            gw / lw,
            gw / iw
        );
    }
}
