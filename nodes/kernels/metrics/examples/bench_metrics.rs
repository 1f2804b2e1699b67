//! Benchmark: liver (label >= 1) and lesion (label == 2) metrics on a label-map pair.
//!
//! usage: cargo run --release --example bench_metrics -p voxflow-metrics -- DIR [REPEATS]
//!
//! DIR holds `gt.u8`, `pred.u8` (raw uint8 labels, C order (k, j, i)) and `meta.json`
//! (`{"shape": [nk, nj, ni], "spacing": [dk, dj, di]}`), as written by `bench.sh`.
//! Prints one JSON object: the metrics and the best / median wall time of each step.

use ndarray::Array3;
use serde_json::{json, Value};
use std::time::Instant;
use voxflow_metrics::{binary_metrics, detection};
use voxflow_volume::{label_components, largest_component, Connectivity};

fn read(dir: &str, name: &str, shape: (usize, usize, usize)) -> Array3<u8> {
    let bytes = std::fs::read(format!("{dir}/{name}")).expect("read volume");
    Array3::from_shape_vec(shape, bytes).expect("size matches meta.json shape")
}

/// Runs `f` `reps` times; returns the last result and (best, median) seconds.
fn timed<T>(reps: usize, mut f: impl FnMut() -> T) -> (T, f64, f64) {
    let mut times = Vec::new();
    let mut out = None;
    for _ in 0..reps {
        let t0 = Instant::now();
        out = Some(f());
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (out.unwrap(), times[0], times[times.len() / 2])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("/tmp/metrics-bench");
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/meta.json")).unwrap())
            .unwrap();
    let v = |k: &str, i: usize| meta[k][i].as_f64().unwrap();
    let shape = (
        v("shape", 0) as usize,
        v("shape", 1) as usize,
        v("shape", 2) as usize,
    );
    let spacing = [v("spacing", 0), v("spacing", 1), v("spacing", 2)];

    let t0 = Instant::now();
    let gt = read(dir, "gt.u8", shape);
    let pred = read(dir, "pred.u8", shape);
    let t_read = t0.elapsed().as_secs_f64();

    let mut out = json!({"shape": [shape.0, shape.1, shape.2], "spacing": spacing,
                         "threads": rayon::current_num_threads(), "repeats": reps,
                         "read_s": t_read});
    for (name, sel) in [
        ("liver", (|l: u8| l >= 1) as fn(u8) -> bool),
        ("lesion", |l: u8| l == 2),
    ] {
        let t1 = Instant::now();
        let g = gt.mapv(sel);
        let p = pred.mapv(sel);
        let t_mask = t1.elapsed().as_secs_f64();
        let (m, best, med) = timed(reps, || binary_metrics(p.view(), g.view(), spacing));
        out[name] = m.to_json();
        out[format!("{name}_seconds")] =
            json!({"mask": t_mask, "metrics_best": best, "metrics_median": med});
        if name == "lesion" {
            let (d, best, med) = timed(reps, || detection(p.view(), g.view(), spacing));
            let mut dj = d.to_json();
            dj.as_object_mut().unwrap().remove("lesions");
            out["lesion_detection"] = dj;
            out["lesion_detection_seconds"] = json!({"best": best, "median": med});
        } else {
            let (n, best, med) = timed(reps, || {
                label_components(p.view(), Connectivity::TwentySix).1
            });
            out["liver_pred_components"] = json!(n);
            out["label_components_26_seconds"] = json!({"best": best, "median": med});
            let (lc, best, med) = timed(reps, || largest_component(p.view()));
            out["liver_largest_component_voxels"] = json!(lc.iter().filter(|&&b| b).count());
            out["largest_component_seconds"] = json!({"best": best, "median": med});
        }
    }
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
