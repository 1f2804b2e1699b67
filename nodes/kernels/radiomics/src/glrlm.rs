//! Gray level run length matrix features, as PyRadiomics `glrlm`: 13 directions,
//! runs of equal level inside the mask; a direction in which no line holds more than
//! one mask voxel is dropped; features averaged over the remaining directions.

use crate::roi::{directions13, Roi, OUTSIDE};
use crate::EPS;
use rayon::prelude::*;

pub(crate) const NAMES: &[&str] = &[
    "GrayLevelNonUniformity",
    "GrayLevelNonUniformityNormalized",
    "GrayLevelVariance",
    "HighGrayLevelRunEmphasis",
    "LongRunEmphasis",
    "LongRunHighGrayLevelEmphasis",
    "LongRunLowGrayLevelEmphasis",
    "LowGrayLevelRunEmphasis",
    "RunEntropy",
    "RunLengthNonUniformity",
    "RunLengthNonUniformityNormalized",
    "RunPercentage",
    "RunVariance",
    "ShortRunEmphasis",
    "ShortRunHighGrayLevelEmphasis",
    "ShortRunLowGrayLevelEmphasis",
];

/// Run-length counts for one direction: `n_levels x max_len`, row-major
/// (column r = run length r + 1), or None if no line holds two mask voxels
/// (PyRadiomics then drops the direction).
fn run_lengths(roi: &Roi, d: [isize; 3]) -> Option<(Vec<f64>, usize)> {
    let maxlen = *roi.dims.iter().max().unwrap();
    let n = roi.n_levels();
    let mut p = vec![0f64; n * maxlen];
    let off = roi.offset(d);
    let lv = &roi.plvl;
    let mut longest = 0usize;
    let mut adjacent = false;
    for &q in &roi.vox {
        let l = lv[q];
        let prev = lv[(q as isize - off) as usize];
        if prev == l {
            continue; // not the start of a run
        }
        adjacent |= prev != OUTSIDE;
        let mut len = 1usize;
        let mut r = (q as isize + off) as usize;
        while lv[r] == l {
            len += 1;
            r = (r as isize + off) as usize;
        }
        longest = longest.max(len);
        p[l as usize * maxlen + len - 1] += 1.0;
    }
    if longest > 1 || adjacent || line_with_two_voxels(roi, d) {
        Some((p, maxlen))
    } else {
        None
    }
}

/// Whether some line along `d` holds two (non-adjacent) mask voxels.
fn line_with_two_voxels(roi: &Roi, d: [isize; 3]) -> bool {
    let mut starts = std::collections::HashSet::new();
    for &q in &roi.vox {
        let c = roi.coords(q);
        // Step back to the line's first position inside the padded box.
        let t = (0..3)
            .filter(|&a| d[a] != 0)
            .map(|a| {
                if d[a] > 0 {
                    c[a]
                } else {
                    roi.pdims[a] - 1 - c[a]
                }
            })
            .min()
            .unwrap();
        let s: Vec<isize> = (0..3).map(|a| c[a] as isize - t as isize * d[a]).collect();
        if !starts.insert(s) {
            return true;
        }
    }
    false
}

pub(crate) fn compute(roi: &Roi) -> Vec<f64> {
    let dirs = directions13();
    let per_dir: Vec<Option<Vec<f64>>> = dirs
        .par_iter()
        .map(|&d| run_lengths(roi, d).map(|(p, m)| features(&p, m, &roi.gray_levels)))
        .collect();
    let valid: Vec<&Vec<f64>> = per_dir.iter().flatten().collect();
    (0..NAMES.len())
        .map(|f| valid.iter().map(|v| v[f]).sum::<f64>() / valid.len() as f64)
        .collect()
}

fn features(p: &[f64], maxlen: usize, gl: &[u32]) -> Vec<f64> {
    let n = gl.len();
    let nr: f64 = p.iter().sum();
    let mut pg = vec![0f64; n];
    let mut pr = vec![0f64; maxlen];
    let (mut lglre, mut hglre, mut srlgle, mut srhgle, mut lrlgle, mut lrhgle, mut ent) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for i in 0..n {
        let g2 = (gl[i] as f64).powi(2);
        for r in 0..maxlen {
            let v = p[i * maxlen + r];
            if v == 0.0 {
                continue;
            }
            let j2 = ((r + 1) as f64).powi(2);
            pg[i] += v;
            pr[r] += v;
            srlgle += v / (g2 * j2);
            srhgle += v * g2 / j2;
            lrlgle += v * j2 / g2;
            lrhgle += v * j2 * g2;
            let q = v / nr;
            ent -= q * (q + EPS).log2();
        }
    }
    let (mut gln, mut ui) = (0.0, 0.0);
    for i in 0..n {
        let g = gl[i] as f64;
        gln += pg[i] * pg[i];
        lglre += pg[i] / (g * g);
        hglre += pg[i] * g * g;
        ui += pg[i] / nr * g;
    }
    let glv: f64 = (0..n)
        .map(|i| pg[i] / nr * (gl[i] as f64 - ui).powi(2))
        .sum();
    let (mut sre, mut lre, mut rln, mut np, mut uj) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (r, &v) in pr.iter().enumerate() {
        let j = (r + 1) as f64;
        sre += v / (j * j);
        lre += v * j * j;
        rln += v * v;
        np += v * j;
        uj += v / nr * j;
    }
    let rv: f64 = pr
        .iter()
        .enumerate()
        .map(|(r, &v)| v / nr * ((r + 1) as f64 - uj).powi(2))
        .sum();
    vec![
        gln / nr,
        gln / (nr * nr),
        glv,
        hglre / nr,
        lre / nr,
        lrhgle / nr,
        lrlgle / nr,
        lglre / nr,
        ent,
        rln / nr,
        rln / (nr * nr),
        nr / np,
        rv,
        sre / nr,
        srhgle / nr,
        srlgle / nr,
    ]
}
