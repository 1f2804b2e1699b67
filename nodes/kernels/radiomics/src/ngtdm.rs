//! Neighbouring gray tone difference matrix features, as PyRadiomics `ngtdm`:
//! `s_i = sum |i - mean of in-mask 26-neighbours|` over voxels of level `i`; a voxel
//! without neighbours counts in `n_i` with difference 0 (as PyRadiomics does).

use crate::gldm::for_each_neighbourhood;
use crate::roi::Roi;

pub(crate) const NAMES: &[&str] = &[
    "Busyness",
    "Coarseness",
    "Complexity",
    "Contrast",
    "Strength",
];

pub(crate) fn compute(roi: &Roi) -> Vec<f64> {
    let n = roi.n_levels();
    let gl: Vec<f64> = roi.gray_levels.iter().map(|&g| g as f64).collect();
    let mut cnt = vec![0f64; n];
    let mut s = vec![0f64; n];
    for_each_neighbourhood(roi, |l, nb| {
        let diff = if nb.is_empty() {
            0.0
        } else {
            let sum: f64 = nb.iter().map(|&m| gl[m as usize]).sum();
            (gl[l as usize] - sum / nb.len() as f64).abs()
        };
        cnt[l as usize] += 1.0;
        s[l as usize] += diff;
    });
    let nvp: f64 = cnt.iter().sum();
    let p: Vec<f64> = cnt.iter().map(|c| c / nvp).collect();
    let ngp = n as f64; // every present level has n_i > 0
    let sum_s: f64 = s.iter().sum();
    let pisi: f64 = (0..n).map(|i| p[i] * s[i]).sum();
    let coarseness = if pisi != 0.0 { 1.0 / pisi } else { 1e6 };
    let (mut c1, mut absdiff, mut complexity, mut strength) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..n {
        for j in 0..n {
            let dg = gl[i] - gl[j];
            c1 += p[i] * p[j] * dg * dg;
            absdiff += (gl[i] * p[i] - gl[j] * p[j]).abs();
            let div = p[i] + p[j];
            let div = if div == 0.0 { 1.0 } else { div };
            complexity += dg.abs() * (p[i] * s[i] + p[j] * s[j]) / div;
            strength += (p[i] + p[j]) * dg * dg;
        }
    }
    let div = ngp * (ngp - 1.0);
    let contrast = if div != 0.0 {
        c1 * sum_s / nvp / div
    } else {
        0.0
    };
    let busyness = if absdiff != 0.0 { pisi / absdiff } else { 0.0 };
    let strength = if sum_s != 0.0 { strength / sum_s } else { 0.0 };
    vec![busyness, coarseness, complexity / nvp, contrast, strength]
}
