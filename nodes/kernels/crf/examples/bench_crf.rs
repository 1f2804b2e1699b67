//! Benchmark of `dense_crf` on raw inputs written by `bench/to_raw.py`.
//!
//! usage: bench PREFIX [--iters 5 --w-pos 3 --sigma-pos 1 --w-bil 5 --sigma-bil 10
//!        --sigma-int 20] [--ref ORACLE_LABELS.u8] [--out LABELS.u8]
//!
//! Defaults are crf3d.py's (the oracle baseline). Reads PREFIX.json,
//! PREFIX.image.f32, PREFIX.prob.f32; prints one JSON line with timings,
//! label counts and, with `--ref`, the label agreement.

use ndarray::{Array3, Array4};
use std::time::Instant;
use voxflow_crf::{argmax_labels, dense_crf, CrfParams};

fn read_f32(path: &str) -> Vec<f32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let prefix = args.first().expect("usage: bench PREFIX [options]").clone();
    let mut p = CrfParams {
        w_pos: 3.0,
        sigma_pos_mm: 1.0,
        w_bil: 5.0,
        sigma_bil_mm: 10.0,
        sigma_int: 20.0,
        iterations: 5,
    };
    let (mut refp, mut outp) = (None, None);
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let mut v = || {
            it.next()
                .unwrap_or_else(|| panic!("{a} needs a value"))
                .clone()
        };
        match a.as_str() {
            "--iters" => p.iterations = v().parse().unwrap(),
            "--w-pos" => p.w_pos = v().parse().unwrap(),
            "--sigma-pos" => p.sigma_pos_mm = v().parse().unwrap(),
            "--w-bil" => p.w_bil = v().parse().unwrap(),
            "--sigma-bil" => p.sigma_bil_mm = v().parse().unwrap(),
            "--sigma-int" => p.sigma_int = v().parse().unwrap(),
            "--ref" => refp = Some(v()),
            "--out" => outp = Some(v()),
            _ => panic!("unknown option {a}"),
        }
    }
    let t0 = Instant::now();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{prefix}.json")).unwrap()).unwrap();
    let sh: Vec<usize> = meta["shape_kji"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let sp: Vec<f64> = meta["spacing_kji"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let c = meta["classes"].as_u64().unwrap() as usize;
    let image = Array3::from_shape_vec(
        (sh[0], sh[1], sh[2]),
        read_f32(&format!("{prefix}.image.f32")),
    )
    .unwrap();
    let prob = Array4::from_shape_vec(
        (sh[0], sh[1], sh[2], c),
        read_f32(&format!("{prefix}.prob.f32")),
    )
    .unwrap();
    let t1 = Instant::now();
    let q = dense_crf(image.view(), prob.view(), [sp[0], sp[1], sp[2]], &p);
    let t2 = Instant::now();
    let lab = argmax_labels(q.view());
    let am = argmax_labels(prob.view());
    let mut counts = vec![0usize; c];
    lab.iter().for_each(|&l| counts[l as usize] += 1);
    let changed = lab.iter().zip(am.iter()).filter(|(a, b)| a != b).count();
    let mut res = serde_json::json!({
        "shape_kji": sh, "spacing_kji": sp, "params": p, "threads": rayon::current_num_threads(),
        "load_s": (t1 - t0).as_secs_f64(), "crf_s": (t2 - t1).as_secs_f64(),
        "label_counts": counts, "changed_vs_argmax": changed,
    });
    if let Some(r) = refp {
        let want = std::fs::read(&r).unwrap();
        assert_eq!(want.len(), lab.len());
        let same = lab.iter().zip(&want).filter(|(a, b)| *a == *b).count();
        res["agreement_vs_ref"] = serde_json::json!(same as f64 / lab.len() as f64);
        res["differing_voxels"] = serde_json::json!(lab.len() - same);
    }
    if let Some(o) = outp {
        std::fs::write(o, lab.as_slice().unwrap()).unwrap();
    }
    println!("{res}");
}
