//! Gray level co-occurrence matrix features, as PyRadiomics `glcm`: distance 1,
//! 13 directions, symmetric matrix per direction, each feature averaged over the
//! directions whose matrix is not empty.

use crate::linalg::sym_eigenvalues;
use crate::roi::{directions13, Roi, OUTSIDE};
use crate::EPS;
use rayon::prelude::*;

pub(crate) const NAMES: &[&str] = &[
    "Autocorrelation",
    "ClusterProminence",
    "ClusterShade",
    "ClusterTendency",
    "Contrast",
    "Correlation",
    "DifferenceAverage",
    "DifferenceEntropy",
    "DifferenceVariance",
    "Id",
    "Idm",
    "Idmn",
    "Idn",
    "Imc1",
    "Imc2",
    "InverseVariance",
    "JointAverage",
    "JointEnergy",
    "JointEntropy",
    "MCC",
    "MaximumProbability",
    "SumAverage",
    "SumEntropy",
    "SumSquares",
];

/// Co-occurrence counts for one direction (not yet symmetric), `n x n` row-major.
pub(crate) fn cooccurrence(roi: &Roi, d: [isize; 3]) -> Vec<f64> {
    let n = roi.n_levels();
    let mut p = vec![0f64; n * n];
    let off = roi.offset(d);
    for &q in &roi.vox {
        let b = roi.plvl[(q as isize + off) as usize];
        if b != OUTSIDE {
            p[roi.plvl[q] as usize * n + b as usize] += 1.0;
        }
    }
    p
}

pub(crate) fn compute(roi: &Roi) -> Vec<f64> {
    let dirs = directions13();
    let per_dir: Vec<Option<Vec<f64>>> = dirs
        .par_iter()
        .map(|&d| {
            let c = cooccurrence(roi, d);
            let n = roi.n_levels();
            let mut p = vec![0f64; n * n];
            for i in 0..n {
                for j in 0..n {
                    p[i * n + j] = c[i * n + j] + c[j * n + i];
                }
            }
            let s: f64 = p.iter().sum();
            if s == 0.0 {
                return None;
            }
            p.iter_mut().for_each(|v| *v /= s);
            Some(features(&p, &roi.gray_levels, roi.ng))
        })
        .collect();
    let valid: Vec<&Vec<f64>> = per_dir.iter().flatten().collect();
    (0..NAMES.len())
        .map(|f| valid.iter().map(|v| v[f]).sum::<f64>() / valid.len() as f64)
        .collect()
}

/// Features of one normalised symmetric matrix `p` over the present gray levels `gl`.
fn features(p: &[f64], gl: &[u32], ng: u32) -> Vec<f64> {
    let n = gl.len();
    let g: Vec<f64> = gl.iter().map(|&v| v as f64).collect();
    let ngf = ng as f64;
    let px: Vec<f64> = (0..n).map(|i| p[i * n..(i + 1) * n].iter().sum()).collect();
    let py: Vec<f64> = (0..n).map(|j| (0..n).map(|i| p[i * n + j]).sum()).collect();
    let (mut ux, mut uy) = (0.0, 0.0);
    for i in 0..n {
        for j in 0..n {
            ux += g[i] * p[i * n + j];
            uy += g[j] * p[i * n + j];
        }
    }
    // p_{x+y}(k), k = 2..2Ng and p_{x-y}(k), k = 0..Ng-1, indexed by level values.
    let mut padd = vec![0f64; 2 * ng as usize + 1];
    let mut psub = vec![0f64; ng as usize];
    let (mut ac, mut cp, mut cs, mut ct, mut cont) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sx2, mut sy2, mut corm) = (0.0, 0.0, 0.0);
    let (mut ene, mut hxy, mut hxy1, mut hxy2, mut maxp, mut ss) =
        (0.0, 0.0, 0.0, 0.0, 0.0f64, 0.0);
    for i in 0..n {
        for j in 0..n {
            let v = p[i * n + j];
            let (a, b) = (g[i], g[j]);
            padd[gl[i] as usize + gl[j] as usize] += v;
            psub[(gl[i] as i64 - gl[j] as i64).unsigned_abs() as usize] += v;
            ac += v * a * b;
            let t = a + b - ux - uy;
            let t2 = t * t;
            ct += v * t2;
            cs += v * t2 * t;
            cp += v * t2 * t2;
            cont += v * (a - b) * (a - b);
            sx2 += v * (a - ux) * (a - ux);
            sy2 += v * (b - uy) * (b - uy);
            corm += v * (a - ux) * (b - uy);
            ene += v * v;
            hxy -= v * (v + EPS).log2();
            let pxy = px[i] * py[j];
            hxy1 -= v * (pxy + EPS).log2();
            hxy2 -= pxy * (pxy + EPS).log2();
            maxp = maxp.max(v);
            ss += v * (a - ux) * (a - ux);
        }
    }
    let (sigx, sigy) = (sx2.sqrt(), sy2.sqrt());
    let corr = if sigx * sigy == 0.0 {
        1.0
    } else {
        corm / (sigx * sigy + EPS)
    };
    let (mut davg, mut dent, mut idm, mut idmn, mut id, mut idn, mut inv) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (k, &v) in psub.iter().enumerate() {
        let kf = k as f64;
        davg += kf * v;
        dent -= v * (v + EPS).log2();
        idm += v / (1.0 + kf * kf);
        idmn += v / (1.0 + kf * kf / (ngf * ngf));
        id += v / (1.0 + kf);
        idn += v / (1.0 + kf / ngf);
        if k > 0 {
            inv += v / (kf * kf);
        }
    }
    let dvar: f64 = psub
        .iter()
        .enumerate()
        .map(|(k, &v)| v * (k as f64 - davg) * (k as f64 - davg))
        .sum();
    let (mut savg, mut sent) = (0.0, 0.0);
    for (k, &v) in padd.iter().enumerate().skip(2) {
        savg += k as f64 * v;
        sent -= v * (v + EPS).log2();
    }
    let hx: f64 = px.iter().map(|&v| -v * (v + EPS).log2()).sum();
    let hy: f64 = py.iter().map(|&v| -v * (v + EPS).log2()).sum();
    let div = hx.max(hy);
    let imc1 = if div != 0.0 { (hxy - hxy1) / div } else { 0.0 };
    let imc2 = if hxy2 == hxy {
        0.0
    } else {
        (1.0 - (-2.0 * (hxy2 - hxy)).exp()).sqrt()
    };
    vec![
        ac,
        cp,
        cs,
        ct,
        cont,
        corr,
        davg,
        dent,
        dvar,
        id,
        idm,
        idmn,
        idn,
        imc1,
        imc2,
        inv,
        ux,
        ene,
        hxy,
        mcc(p, &px, &py),
        maxp,
        savg,
        sent,
        ss,
    ]
}

/// Maximal correlation coefficient: sqrt of the second largest eigenvalue of
/// `Q_ij = sum_k p_ik p_jk / (px_i py_k)`. For symmetric `p` (px = py), `Q` is similar to
/// `M^2` with `M = D^-1/2 p D^-1/2`, so we take the symmetric route.
fn mcc(p: &[f64], px: &[f64], py: &[f64]) -> f64 {
    let n = px.len();
    if n < 2 {
        return 1.0;
    }
    let mut m = vec![0f64; n * n];
    for i in 0..n {
        for k in 0..n {
            let d = px[i] * py[k];
            if d > 0.0 {
                m[i * n + k] = p[i * n + k] / d.sqrt();
            }
        }
    }
    let ev = sym_eigenvalues(m, n);
    let mut sq: Vec<f64> = ev.iter().map(|v| v * v).collect();
    sq.sort_by(|a, b| a.partial_cmp(b).unwrap());
    sq[n - 2].sqrt()
}
