//! Throughput of an ONNX model through `FcnSession`: slices/s at a batch size and thread count.
//!
//! cargo run --release --example bench_onnx -p voxflow-onnx -- MODEL [--batch 8] [--threads 2]
//!     [--slices 64] [--device cpu|auto|cuda] [--input FILE.f32]
//!
//! Input: `--input` = raw little-endian f32 slices at the model's input size (e.g. written by
//! bench/bench_ort.py), cycled; else seeded pseudo-random values in [0, 1].
//! Prints one JSON line (load time, warm-up, slices/s, sum of the class-1 probabilities as checksum).

use std::time::Instant;

use ndarray::{s, Array4};
use voxflow_onnx::{Device, FcnSession};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut model = None;
    let (mut batch, mut threads, mut slices) = (8usize, 2usize, 64usize);
    let mut device = Device::Cpu;
    let mut input: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
                .clone()
        };
        match a.as_str() {
            "--batch" => batch = val().parse().unwrap_or_else(|_| usage("bad --batch")),
            "--threads" => threads = val().parse().unwrap_or_else(|_| usage("bad --threads")),
            "--slices" => slices = val().parse().unwrap_or_else(|_| usage("bad --slices")),
            "--device" => device = val().parse().unwrap_or_else(|e: String| usage(&e)),
            "--input" => input = Some(val()),
            "-h" | "--help" => usage(""),
            m if model.is_none() && !m.starts_with("--") => model = Some(m.to_string()),
            other => usage(&format!("unexpected argument {other}")),
        }
    }
    let model = model.unwrap_or_else(|| usage("MODEL missing"));
    if batch == 0 || slices == 0 {
        usage("--batch and --slices must be > 0");
    }

    let t0 = Instant::now();
    let mut session = match FcnSession::new(&model, device, threads) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let load_s = t0.elapsed().as_secs_f64();
    let library = voxflow_onnx::init()
        .expect("loaded above")
        .display()
        .to_string();
    let (h, w) = session.info().input_size;
    let data: Vec<f32> = match &input {
        Some(p) => std::fs::read(p)
            .unwrap_or_else(|e| usage(&format!("{p}: {e}")))
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        None => {
            let mut state = 0x9E37_79B9_7F4A_7C15u64;
            (0..slices.min(16) * h * w)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 24) as f32
                })
                .collect()
        }
    };
    let have = data.len() / (h * w);
    if have == 0 {
        usage("input holds less than one slice at the model's input size");
    }
    let pool = Array4::from_shape_vec((have, 1, h, w), data[..have * h * w].to_vec()).unwrap();
    let make_batch = |start: usize, n: usize| {
        let mut b = Array4::<f32>::zeros((n, 1, h, w));
        for i in 0..n {
            b.slice_mut(s![i, .., .., ..])
                .assign(&pool.slice(s![(start + i) % have, .., .., ..]));
        }
        b
    };

    let t1 = Instant::now();
    session
        .run(make_batch(0, batch.min(slices)).view())
        .unwrap();
    let warmup_s = t1.elapsed().as_secs_f64();

    let mut checksum = 0f64;
    let mut done = 0;
    let t2 = Instant::now();
    while done < slices {
        let n = batch.min(slices - done);
        let b = make_batch(done, n);
        let p = session.run(b.view()).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(1)
        });
        checksum += p
            .slice(s![.., 1, .., ..])
            .iter()
            .map(|&v| v as f64)
            .sum::<f64>();
        done += n;
    }
    let run_s = t2.elapsed().as_secs_f64();
    println!(
        "{{\"impl\":\"rust-ort\",\"model\":\"{model}\",\"device\":\"{:?}\",\"input_size\":[{h},{w}],\"padding\":{},\"batch\":{batch},\"threads\":{threads},\"slices\":{slices},\"load_s\":{load_s:.3},\"warmup_s\":{warmup_s:.3},\"run_s\":{run_s:.3},\"slices_per_s\":{:.2},\"checksum\":{checksum:.3},\"library\":\"{library}\"}}",
        session.device(),
        session.info().padding,
        slices as f64 / run_s
    );
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("error: {msg}");
    }
    eprintln!("usage: bench MODEL [--batch 8] [--threads 2] [--slices 64] [--device cpu|auto|cuda] [--input FILE.f32]");
    std::process::exit(2)
}
