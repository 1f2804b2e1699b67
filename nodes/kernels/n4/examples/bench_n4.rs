//! N4 benchmark / driver on a raw volume.
//!
//! usage: cargo run --release --example bench_n4 -p voxflow-n4 -- IN.f32 NK,NJ,NI [options]
//!   IN.f32            raw little-endian f32, C order (k, j, i)
//!   --spacing DK,DJ,DI   (default 1,1,1; does not change the result)
//!   --mask FILE.u8|otsu  (default otsu = SimpleITK OtsuThreshold(image, 0, 1, 200))
//!   --shrink S --iters 50,50,50,50 --conv 0.001 --control-points 4 --spline-order 3
//!   --bins 200 --fwhm 0.15 --wiener 0.01 --threads N
//!   --out-corrected FILE.f32 --out-log-bias FILE.f32 --out-mask FILE.u8
//!   --correct-all        divide outside the mask too (as n4.py writes its output)
//!   --origin X,Y,Z --direction D0,..,D8   ITK geometry (sitk GetOrigin/GetDirection): shrink
//!                        with SimpleITK's sampling phase (itk_shrink_offsets); default centred
//! Prints one JSON line with timings and iterations.

use ndarray::{Array3, Zip};
use std::time::Instant;
use voxflow_n4::{itk_shrink_offsets, n4_with_offsets, otsu_mask, shrink_axis, N4Params};

fn parse_list<T: std::str::FromStr>(s: &str) -> Vec<T>
where
    T::Err: std::fmt::Debug,
{
    s.split(',').map(|x| x.trim().parse().unwrap()).collect()
}

fn read_f32(path: &str) -> Vec<f32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn write_f32(path: &str, a: &Array3<f32>) {
    let mut b = Vec::with_capacity(a.len() * 4);
    for v in a.iter() {
        b.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: bench IN.f32 NK,NJ,NI [options] (see source)");
        std::process::exit(2);
    }
    let shape: Vec<usize> = parse_list(&args[1]);
    let mut p = N4Params::default();
    let mut spacing = [1.0f64; 3];
    let mut mask_arg = "otsu".to_string();
    let (mut out_c, mut out_b, mut out_m) = (None, None, None);
    let mut correct_all = false;
    let mut origin: Option<Vec<f64>> = None;
    let mut direction: Option<Vec<f64>> = None;
    let mut i = 2;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--spacing" => {
                let s: Vec<f64> = parse_list(&v);
                spacing = [s[0], s[1], s[2]];
            }
            "--mask" => mask_arg = v,
            "--origin" => origin = Some(parse_list(&v)),
            "--direction" => direction = Some(parse_list(&v)),
            "--shrink" => p.shrink = v.parse().unwrap(),
            "--iters" => p.iterations = parse_list(&v),
            "--conv" => p.convergence = v.parse().unwrap(),
            "--control-points" => p.control_points = v.parse().unwrap(),
            "--spline-order" => p.spline_order = v.parse().unwrap(),
            "--bins" => p.bins = v.parse().unwrap(),
            "--fwhm" => p.fwhm = v.parse().unwrap(),
            "--wiener" => p.wiener_noise = v.parse().unwrap(),
            "--threads" => {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(v.parse().unwrap())
                    .build_global()
                    .unwrap();
            }
            "--out-corrected" => out_c = Some(v),
            "--out-log-bias" => out_b = Some(v),
            "--out-mask" => out_m = Some(v),
            "--correct-all" => {
                correct_all = true;
                i += 1;
                continue;
            }
            a => panic!("unknown option {a}"),
        }
        i += 2;
    }
    let t0 = Instant::now();
    let data = read_f32(&args[0]);
    let image = Array3::from_shape_vec((shape[0], shape[1], shape[2]), data).expect("shape");
    let t1 = Instant::now();
    let mask = if mask_arg == "otsu" {
        otsu_mask(image.view(), 200)
    } else {
        let b = std::fs::read(&mask_arg).unwrap();
        Array3::from_shape_vec(image.raw_dim(), b.iter().map(|&x| x != 0).collect()).unwrap()
    };
    let t2 = Instant::now();
    let dims = [shape[0], shape[1], shape[2]];
    let offsets = match (&origin, &direction) {
        (Some(o), Some(d)) => itk_shrink_offsets(
            dims,
            p.shrink,
            spacing,
            [o[0], o[1], o[2]],
            std::array::from_fn(|x| d[x]),
        ),
        _ => dims.map(|n| shrink_axis(n, p.shrink.max(1)).1),
    };
    let out = match n4_with_offsets(image.view(), mask.view(), spacing, &p, offsets) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let t3 = Instant::now();
    let mut corrected = out.corrected;
    if correct_all {
        Zip::from(&mut corrected)
            .and(&image)
            .and(&out.bias)
            .for_each(|c, &x, &b| *c = x / b);
    }
    if let Some(f) = out_c {
        write_f32(&f, &corrected);
    }
    if let Some(f) = out_b {
        write_f32(&f, &out.bias.mapv(|b| b.ln()));
    }
    if let Some(f) = out_m {
        std::fs::write(&f, mask.iter().map(|&m| m as u8).collect::<Vec<u8>>()).unwrap();
    }
    let t4 = Instant::now();
    println!(
        "{{\"shape\": {:?}, \"mask_voxels\": {}, \"read_s\": {:.3}, \"otsu_s\": {:.3}, \"n4_s\": {:.3}, \"write_s\": {:.3}, \"total_s\": {:.3}, \"iterations_run\": {:?}, \"final_convergence\": {:?}, \"threads\": {}, \"shrink_offsets\": {:?}}}",
        shape,
        mask.iter().filter(|&&m| m).count(),
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        (t3 - t2).as_secs_f64(),
        (t4 - t3).as_secs_f64(),
        (t4 - t0).as_secs_f64(),
        out.iterations_run,
        out.final_convergence,
        rayon::current_num_threads(),
        offsets
    );
}
