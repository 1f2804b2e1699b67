//! Comparison with SimpleITK 2.5.7 on the small synthetic fixtures of
//! `fixtures/make_fixtures.py` (rerun it to regenerate them).

use ndarray::{Array3, ArrayView3};
use voxflow_n4::{n4, otsu_mask, sharpen, N4Params};

const SHAPE: (usize, usize, usize) = (16, 32, 32);
const SPACING: [f64; 3] = [3.0, 1.5, 1.5];

fn fixture(name: &str) -> Vec<u8> {
    let p = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn f32_fixture(name: &str) -> Array3<f32> {
    let v: Vec<f32> = fixture(name)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Array3::from_shape_vec(SHAPE, v).unwrap()
}

fn mask_fixture() -> Array3<bool> {
    Array3::from_shape_vec(
        SHAPE,
        fixture("synth_otsu.u8").iter().map(|&x| x != 0).collect(),
    )
    .unwrap()
}

fn corr(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

fn masked(a: ArrayView3<f32>, m: &Array3<bool>, f: impl Fn(f32) -> f64) -> Vec<f64> {
    a.iter()
        .zip(m.iter())
        .filter(|(_, &m)| m)
        .map(|(&v, _)| f(v))
        .collect()
}

fn meta() -> serde_json::Value {
    serde_json::from_slice(&fixture("meta.json")).unwrap()
}

#[test]
fn otsu_matches_simpleitk() {
    let img = f32_fixture("synth_image.f32");
    let ours = otsu_mask(img.view(), 200);
    let theirs = mask_fixture();
    let n_fg = theirs.iter().filter(|&&m| m).count();
    assert!(
        n_fg > 1000 && n_fg < ours.len(),
        "fixture mask is not trivial"
    );
    let diff = ours
        .iter()
        .zip(theirs.iter())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(diff, 0, "{diff} voxels differ from SimpleITK's Otsu mask");
}

#[test]
fn default_params_shrink2_match_simpleitk() {
    let img = f32_fixture("synth_image.f32");
    let mask = mask_fixture();
    let sitk_lb = f32_fixture("synth_logbias_a.f32");
    let p = N4Params {
        shrink: 2,
        ..N4Params::default()
    };
    let out = n4(img.view(), mask.view(), SPACING, &p).unwrap();
    let lb = out.bias.mapv(|b| b.ln());
    let max_diff = lb
        .iter()
        .zip(sitk_lb.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff < 1e-3, "max |log bias - sitk| = {max_diff}");
    // corrected image as n4.py writes it (image / exp(log bias)), inside the mask
    let sitk_corr: Vec<f64> = img
        .iter()
        .zip(sitk_lb.iter())
        .zip(mask.iter())
        .filter(|(_, &m)| m)
        .map(|((&x, &l), _)| (x / l.exp()) as f64)
        .collect();
    let ours = masked(out.corrected.view(), &mask, |v| v as f64);
    let c = corr(&ours, &sitk_corr);
    assert!(c >= 0.999, "corr(corrected, sitk) = {c}");
    // outside the mask the input is kept
    for ((&o, &x), &m) in out.corrected.iter().zip(img.iter()).zip(mask.iter()) {
        if !m {
            assert_eq!(o, x);
        }
    }
    // last level: ITK's ElapsedIterations is one more than the iterations run
    let m = meta();
    let sitk_last = m["case_a"]["sitk_elapsed_iterations_last_level"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(out.iterations_run.len(), 4);
    assert_eq!(*out.iterations_run.last().unwrap() + 1, sitk_last);
    assert!(*out.final_convergence.last().unwrap() <= 0.001);
    // recovered vs true bias
    let tb = f32_fixture("synth_true_bias.f32");
    let c = corr(
        &masked(lb.view(), &mask, |v| v as f64),
        &masked(tb.view(), &mask, |v| (v as f64).ln()),
    );
    assert!(c >= 0.99, "corr(log bias, log true bias) = {c}");
}

#[test]
fn few_iterations_full_resolution_match_simpleitk_closely() {
    let img = f32_fixture("synth_image.f32");
    let mask = mask_fixture();
    let sitk_lb = f32_fixture("synth_logbias_b.f32");
    let p = N4Params {
        shrink: 1,
        iterations: vec![3, 2],
        convergence: 0.0,
        ..N4Params::default()
    };
    let out = n4(img.view(), mask.view(), SPACING, &p).unwrap();
    assert_eq!(out.iterations_run, vec![3, 2]);
    let max_diff = out
        .bias
        .iter()
        .zip(sitk_lb.iter())
        .map(|(b, s)| (b.ln() - s).abs())
        .fold(0.0f32, f32::max);
    let range = sitk_lb.iter().fold(0.0f32, |a, &b| a.max(b.abs()));
    assert!(range > 0.02, "fixture bias is not trivial ({range})");
    eprintln!("case b max diff {max_diff}");
    assert!(max_diff < 1e-4, "max |log bias - sitk| = {max_diff}");
}

#[test]
fn sharpening_matches_numpy_reimplementation() {
    let case: serde_json::Value = serde_json::from_slice(&fixture("sharpen_case.json")).unwrap();
    let vals: Vec<f64> = case["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let expect_e: Vec<f64> = case["mapping"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let expect: Vec<f64> = case["sharpened"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let p = sharpen::SharpenParams {
        bins: case["bins"].as_u64().unwrap() as usize,
        fwhm: case["fwhm"].as_f64().unwrap(),
        wiener_noise: case["wiener_noise"].as_f64().unwrap(),
    };
    let (_, _, e) = sharpen::mapping(&vals, &p);
    assert_eq!(e.len(), expect_e.len());
    for (a, b) in e.iter().zip(&expect_e) {
        assert!((a - b).abs() < 1e-9, "mapping {a} vs {b}");
    }
    let s = sharpen::sharpen(&vals, &p);
    for (a, b) in s.iter().zip(&expect) {
        assert!((a - b).abs() < 1e-9, "sharpened {a} vs {b}");
    }
    // sharpening narrows the distribution: std of the output < std of the input
    let sd = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
    };
    let mode_sd = |v: &[f64]| {
        let lo: Vec<f64> = v.iter().copied().filter(|&x| x < 5.3).collect();
        sd(&lo)
    };
    assert!(mode_sd(&s) < mode_sd(&vals));
}
