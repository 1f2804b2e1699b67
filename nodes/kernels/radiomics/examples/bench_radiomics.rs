//! Benchmark / CLI: features of one region read from raw files.
//!
//! usage: bench DIR [--repeat N] [--bin-width W] [--json OUT]
//! DIR holds image.f32 (little-endian float32, C order (k, j, i)), mask.u8 (0/1) and
//! meta.json {"shape": [nk, nj, ni], "spacing": [dk, dj, di]}, as written by
//! scripts/nifti_to_raw.py. Prints the time per extraction; --json writes the features
//! as {"features": {name: value}, "seconds": best}.

use ndarray::Array3;
use std::time::Instant;
use voxflow_radiomics::{features, Settings};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .expect("usage: bench DIR [--repeat N] [--bin-width W] [--json OUT]");
    let mut repeat = 5usize;
    let mut json_out = None;
    let mut bin_width: Option<f64> = None;
    let mut k = 1;
    while k < args.len() {
        match args[k].as_str() {
            "--repeat" => {
                repeat = args[k + 1].parse().unwrap();
                k += 2;
            }
            "--bin-width" => {
                bin_width = Some(args[k + 1].parse().unwrap());
                k += 2;
            }
            "--json" => {
                json_out = Some(args[k + 1].clone());
                k += 2;
            }
            a => panic!("unknown argument {a}"),
        }
    }
    let t_load = Instant::now();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{dir}/meta.json")).unwrap()).unwrap();
    let shape: Vec<usize> = meta["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let sp: Vec<f64> = meta["spacing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let raw = std::fs::read(format!("{dir}/image.f32")).unwrap();
    let img: Vec<f32> = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let msk: Vec<bool> = std::fs::read(format!("{dir}/mask.u8"))
        .unwrap()
        .iter()
        .map(|&b| b != 0)
        .collect();
    let dims = (shape[0], shape[1], shape[2]);
    let image = Array3::from_shape_vec(dims, img).unwrap();
    let mask = Array3::from_shape_vec(dims, msk).unwrap();
    let spacing = [sp[0], sp[1], sp[2]];
    let load_s = t_load.elapsed().as_secs_f64();
    let mut settings = Settings::default();
    if let Some(w) = bin_width {
        settings.bin_width = w;
    }
    let mut best = f64::INFINITY;
    let mut out = Vec::new();
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        out = features(image.view(), mask.view(), spacing, &settings).expect("features");
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "shape {:?} voxels {} load {:.3} s, features best of {}: {:.4} s ({} threads)",
        shape,
        mask.iter().filter(|&&m| m).count(),
        load_s,
        repeat.max(1),
        best,
        rayon::current_num_threads()
    );
    if let Some(path) = json_out {
        // Keep PyRadiomics' order (serde_json::Map would sort the keys).
        let body: Vec<String> = out
            .iter()
            .map(|(k, v)| format!("    {}: {}", serde_json::json!(k), serde_json::json!(v)))
            .collect();
        let doc = format!(
            "{{\n  \"seconds\": {best},\n  \"features\": {{\n{}\n  }}\n}}\n",
            body.join(",\n")
        );
        std::fs::write(path, doc).unwrap();
    }
}
