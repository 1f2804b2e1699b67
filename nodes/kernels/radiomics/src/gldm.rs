//! Gray level dependence matrix features, as PyRadiomics `gldm`: for each mask voxel,
//! the number of 26-neighbours in the mask whose level differs by at most `gldm_a`.

use crate::roi::{directions26, Roi, OUTSIDE};
use crate::EPS;

pub(crate) const NAMES: &[&str] = &[
    "DependenceEntropy",
    "DependenceNonUniformity",
    "DependenceNonUniformityNormalized",
    "DependenceVariance",
    "GrayLevelNonUniformity",
    "GrayLevelVariance",
    "HighGrayLevelEmphasis",
    "LargeDependenceEmphasis",
    "LargeDependenceHighGrayLevelEmphasis",
    "LargeDependenceLowGrayLevelEmphasis",
    "LowGrayLevelEmphasis",
    "SmallDependenceEmphasis",
    "SmallDependenceHighGrayLevelEmphasis",
    "SmallDependenceLowGrayLevelEmphasis",
];

/// Calls `f(level index, neighbour level indices)` for every mask voxel, with its
/// in-mask 26-neighbours.
pub(crate) fn for_each_neighbourhood(roi: &Roi, mut f: impl FnMut(u32, &[u32])) {
    let offs: Vec<isize> = directions26().into_iter().map(|d| roi.offset(d)).collect();
    let mut nb = Vec::with_capacity(26);
    for &q in &roi.vox {
        nb.clear();
        for &o in &offs {
            let m = roi.plvl[(q as isize + o) as usize];
            if m != OUTSIDE {
                nb.push(m);
            }
        }
        f(roi.plvl[q], &nb);
    }
}

pub(crate) fn compute(roi: &Roi, alpha: u32) -> Vec<f64> {
    let n = roi.n_levels();
    let gl: Vec<f64> = roi.gray_levels.iter().map(|&g| g as f64).collect();
    let mut p = vec![0f64; n * 27];
    for_each_neighbourhood(roi, |l, nb| {
        let g = roi.gray_levels[l as usize] as i64;
        let dep = nb
            .iter()
            .filter(|&&m| (roi.gray_levels[m as usize] as i64 - g).unsigned_abs() <= alpha as u64)
            .count();
        p[l as usize * 27 + dep] += 1.0;
    });
    let nzv = roi.n_voxels() as f64;
    let mut pg = vec![0f64; n];
    let mut pd = [0f64; 27];
    let (mut ent, mut sdlgle, mut sdhgle, mut ldlgle, mut ldhgle) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for i in 0..n {
        let g2 = gl[i] * gl[i];
        for d in 0..27 {
            let v = p[i * 27 + d];
            if v == 0.0 {
                continue;
            }
            let j2 = ((d + 1) as f64).powi(2);
            pg[i] += v;
            pd[d] += v;
            sdlgle += v / (g2 * j2);
            sdhgle += v * g2 / j2;
            ldlgle += v * j2 / g2;
            ldhgle += v * j2 * g2;
            let q = v / nzv;
            ent -= q * (q + EPS).log2();
        }
    }
    let (mut gln, mut lgle, mut hgle, mut ui) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..n {
        gln += pg[i] * pg[i];
        lgle += pg[i] / (gl[i] * gl[i]);
        hgle += pg[i] * gl[i] * gl[i];
        ui += pg[i] / nzv * gl[i];
    }
    let glv: f64 = (0..n).map(|i| pg[i] / nzv * (gl[i] - ui).powi(2)).sum();
    let (mut sde, mut lde, mut dn, mut uj) = (0.0, 0.0, 0.0, 0.0);
    for (d, &v) in pd.iter().enumerate() {
        let j = (d + 1) as f64;
        sde += v / (j * j);
        lde += v * j * j;
        dn += v * v;
        uj += v / nzv * j;
    }
    let dv: f64 = pd
        .iter()
        .enumerate()
        .map(|(d, &v)| v / nzv * ((d + 1) as f64 - uj).powi(2))
        .sum();
    vec![
        ent,
        dn / nzv,
        dn / (nzv * nzv),
        dv,
        gln / nzv,
        glv,
        hgle / nzv,
        lde / nzv,
        ldhgle / nzv,
        ldlgle / nzv,
        lgle / nzv,
        sde / nzv,
        sdhgle / nzv,
        sdlgle / nzv,
    ]
}
