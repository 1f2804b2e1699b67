//! Streaming overhead: a chain of cheap nodes through the runtime vs a plain loop over the same
//! arrays, and peak RSS as the chain grows. Run with `cargo bench --bench stream_overhead`.
//!
//! Each measurement runs in a child process so that peak RSS (VmHWM) is its own.

use ndarray::Array2;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::{Header, SliceData, StreamType};
use voxflow_runtime::validate::CheckOptions;
use voxflow_runtime::{
    check, execute, BuildEnv, GraphDoc, Node, NodeCtx, NodeDecl, NodeError, NodeKind, Params,
    RunOptions, RunStats, Slice,
};

const SHAPE: (usize, usize, usize) = (129, 512, 512);

/// Streams a volume generated slice by slice (the same values as `volume()`).
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
            let s = Array2::from_shape_fn((nj, ni), |(j, i)| {
                ((k * 31 + j * 7 + i * 13) % 1400) as f32 - 1000.0
            });
            ctx.send_slice("out", Slice::new(k, SliceData::Image(s)))?;
        }
        ctx.end("out")
    }
}

/// Sums what arrives and drops it.
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

/// The cheap node of the chain: a HU window, as the real `hu_window` node applies it.
fn window(v: f32, n: usize) -> f32 {
    let lo = -100.0 - n as f32;
    v.clamp(lo, 400.0)
}

fn run_chain(n: usize, depth: usize) -> f64 {
    let mut reg = voxflow_nodes::registry();
    reg.add(Arc::new(Gen), "bench").unwrap();
    reg.add(Arc::new(Drain), "bench").unwrap();
    let mut g = String::from("graph: chain\nnodes:\n  src: { kind: gen }\n");
    let mut prev = "src".to_string();
    for c in 0..n {
        g += &format!(
            "  w{c}: {{ kind: hu_window, in: {prev}, min: {}, max: 400 }}\n",
            -100.0 - c as f64
        );
        prev = format!("w{c}");
    }
    g += &format!("  sink: {{ kind: drain, in: {prev} }}\n");
    let doc = GraphDoc::parse(&g, Path::new("chain.yaml")).unwrap();
    let plan = check(&doc, &reg, &CheckOptions::default()).unwrap();
    let t = Instant::now();
    let opts = RunOptions {
        queue_depth: depth,
        ..RunOptions::default()
    };
    execute(&plan, &reg, &opts, &RunStats::new(&plan)).unwrap();
    t.elapsed().as_secs_f64()
}

/// The same work as a plain loop: generate each slice, apply the n windows, drain.
fn run_loop(n: usize) -> f64 {
    let (nk, nj, ni) = SHAPE;
    let t = Instant::now();
    let mut acc = 0.0f64;
    for k in 0..nk {
        let mut s = Array2::from_shape_fn((nj, ni), |(j, i)| {
            ((k * 31 + j * 7 + i * 13) % 1400) as f32 - 1000.0
        });
        for c in 0..n {
            s = s.mapv(|v| window(v, c));
        }
        acc += s[[0, 0]] as f64;
    }
    std::hint::black_box(acc);
    t.elapsed().as_secs_f64()
}

fn peak_rss_mb() -> f64 {
    voxflow_runtime::exec::peak_rss_bytes().unwrap_or(0) as f64 / 1048576.0
}

/// User + system CPU seconds of this process (Linux, 10 ms resolution).
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(p) = args.iter().position(|a| a == "--child") {
        let n: usize = args[p + 2].parse().unwrap();
        let depth: usize = args[p + 3].parse().unwrap();
        let secs = if args[p + 1] == "graph" {
            run_chain(n, depth)
        } else {
            run_loop(n)
        };
        println!("{secs} {} {}", cpu_seconds(), peak_rss_mb());
        return;
    }
    println!(
        "streaming overhead: generated 512x512x129 float32 volume -> N hu_window nodes -> drain"
    );
    println!("median of 5 runs each; CPU = user + system seconds of the whole process");
    println!("| chain | queue depth | loop wall s | graph wall s | wall ratio | loop CPU s | graph CPU s | CPU ratio | loop peak RSS MB | graph peak RSS MB |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (n, depth) in [(1usize, 4usize), (5, 4), (10, 4), (20, 4), (5, 1), (20, 1)] {
        let (mut lw, mut gw, mut lc, mut gc) = (vec![], vec![], vec![], vec![]);
        let (mut lr, mut gr) = (0.0f64, 0.0f64);
        for _ in 0..5 {
            let (w, c, r) = child("loop", n, depth);
            lw.push(w);
            lc.push(c);
            lr = lr.max(r);
            let (w, c, r) = child("graph", n, depth);
            gw.push(w);
            gc.push(c);
            gr = gr.max(r);
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[2]
        };
        let (lw, gw, lc, gc) = (med(&mut lw), med(&mut gw), med(&mut lc), med(&mut gc));
        println!(
            "| {n} | {depth} | {lw:.3} | {gw:.3} | {:.2} | {lc:.2} | {gc:.2} | {:.2} | {lr:.0} | {gr:.0} |",
            gw / lw,
            gc / lc
        );
    }
}
