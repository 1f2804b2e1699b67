//! Exact squared Euclidean distance transform (Felzenszwalb & Huttenlocher 2012),
//! separable over the three axes, anisotropic spacing, multi-threaded with rayon.

use ndarray::{Array3, ArrayView3, ArrayViewMut2, Axis};
use rayon::prelude::*;

/// Squared Euclidean distance (mm²) from every voxel to the nearest `true` voxel of
/// `features`, measured between voxel centres with voxel size `spacing` (mm, array-axis
/// order `[dk, dj, di]`).
///
/// Feature voxels get 0. If `features` has no `true` voxel, every value is `f64::INFINITY`.
/// The result is exact up to floating-point rounding (same values as
/// `scipy.ndimage.distance_transform_edt(~features, sampling=spacing) ** 2`).
///
/// Work is split over slices (axes 2 and 1) and then over rows (axis 0) with rayon.
/// To evaluate at a few voxels only, [`edt_squared_at`] is cheaper.
pub fn edt_squared(features: ArrayView3<bool>, spacing: [f64; 3]) -> Array3<f64> {
    let w2 = spacing.map(|s| s * s);
    let mut out = slice_edt(features, w2);
    // Pass 3 (axis 0): one (nk, ni) plane per j.
    let nk = out.dim().0;
    let planes: Vec<_> = out.axis_iter_mut(Axis(1)).collect();
    planes.into_par_iter().for_each_init(
        || Scratch::new(nk),
        |scratch, mut plane| fh_along_axis0(&mut plane, w2[0], scratch),
    );
    out
}

/// Squared distances (mm²) to the nearest `true` voxel of `features`, evaluated only at
/// the `true` voxels of `queries` (same shape), in raster order. Same values as
/// `edt_squared(features, spacing)` at those voxels; infinite if `features` is empty.
///
/// Passes along axes 2 and 1 run on the whole grid; along axis 0 each query searches
/// outwards slice by slice and stops once `(dk * r)²` exceeds the best value found, which
/// is much cheaper than a full pass when queries are sparse (e.g. surfaces). Worst case
/// (far-apart or empty slices) is `O(queries * nk)`.
///
/// # Panics
/// If `features` and `queries` have different shapes.
pub fn edt_squared_at(
    features: ArrayView3<bool>,
    queries: ArrayView3<bool>,
    spacing: [f64; 3],
) -> Vec<f64> {
    assert_eq!(
        features.dim(),
        queries.dim(),
        "features and queries must have the same shape"
    );
    let w2 = spacing.map(|s| s * s);
    let g = slice_edt(features, w2);
    let (nk, nj, ni) = g.dim();
    let gs = g.as_slice().expect("standard layout");
    let plane = nj * ni;
    let qs: Vec<_> = queries.axis_iter(Axis(0)).collect();
    let per_slice: Vec<Vec<f64>> = qs
        .into_par_iter()
        .enumerate()
        .map(|(k, qslice)| {
            let mut out = Vec::new();
            for (j, row) in qslice.outer_iter().enumerate() {
                for (i, &q) in row.iter().enumerate() {
                    if !q {
                        continue;
                    }
                    let col = j * ni + i;
                    let mut best = gs[k * plane + col];
                    for r in 1..nk {
                        let dr = r as f64;
                        let add = w2[0] * dr * dr;
                        if add >= best || (r > k && k + r >= nk) {
                            break;
                        }
                        if r <= k {
                            best = best.min(gs[(k - r) * plane + col] + add);
                        }
                        if k + r < nk {
                            best = best.min(gs[(k + r) * plane + col] + add);
                        }
                    }
                    out.push(best);
                }
            }
            out
        })
        .collect();
    per_slice.concat()
}

/// Passes 1 (axis 2, exact 1-D distance of a binary row) and 2 (axis 1, FH): squared
/// distance to the nearest feature in the same k-slice. One k-slice per task.
fn slice_edt(features: ArrayView3<bool>, w2: [f64; 3]) -> Array3<f64> {
    let (nk, nj, ni) = features.dim();
    let mut out = Array3::<f64>::zeros((nk, nj, ni));
    let slices: Vec<_> = out.axis_iter_mut(Axis(0)).collect();
    let feats: Vec<_> = features.axis_iter(Axis(0)).collect();
    slices
        .into_par_iter()
        .zip(feats.into_par_iter())
        .for_each_init(
            || Scratch::new(nj.max(ni)),
            |scratch, (mut slice, feat)| {
                let mut any = false;
                for (mut row, frow) in slice.outer_iter_mut().zip(feat.outer_iter()) {
                    any |= binary_row(
                        frow.iter().copied(),
                        row.as_slice_mut().expect("contiguous"),
                        w2[2],
                    );
                }
                // A slice without features stays infinite after pass 2 as well.
                if any {
                    fh_along_axis0(&mut slice, w2[1], scratch);
                }
            },
        );
    out
}

/// Exact squared distance along one binary row: (w * |i - nearest feature|)², or inf.
/// Returns whether the row has a feature.
fn binary_row(feat: impl Iterator<Item = bool>, out: &mut [f64], w2: f64) -> bool {
    let n = out.len();
    // Forward scan stores the distance to the last feature on the left (as index count).
    let mut last: Option<usize> = None;
    for (i, f) in feat.enumerate() {
        if f {
            last = Some(i);
        }
        out[i] = match last {
            Some(l) => (i - l) as f64,
            None => f64::INFINITY,
        };
    }
    let mut next: Option<usize> = None;
    for i in (0..n).rev() {
        if out[i] == 0.0 {
            next = Some(i);
        }
        if let Some(nx) = next {
            let d = (nx - i) as f64;
            if d < out[i] {
                out[i] = d;
            }
        }
        out[i] = out[i] * out[i] * w2;
    }
    last.is_some()
}

struct Scratch {
    res: Vec<f64>,
    v: Vec<usize>,
    z: Vec<f64>,
    block: Vec<f64>,
}

impl Scratch {
    fn new(n: usize) -> Self {
        Scratch {
            res: vec![0.0; n],
            v: vec![0; n],
            z: vec![0.0; n + 1],
            block: Vec::new(),
        }
    }
}

/// Runs the 1-D FH transform along axis 0 of a 2-D view, for every column.
/// The view is copied into a column-major block first so each column is contiguous.
fn fh_along_axis0(view: &mut ArrayViewMut2<f64>, w2: f64, s: &mut Scratch) {
    let (n, m) = view.dim();
    s.block.resize(n * m, 0.0);
    if s.res.len() < n {
        *s = Scratch::new(n);
    }
    for (r, row) in view.outer_iter().enumerate() {
        for (c, &x) in row.iter().enumerate() {
            s.block[c * n + r] = x;
        }
    }
    for c in 0..m {
        let col = &s.block[c * n..(c + 1) * n];
        // Columns with no finite value stay infinite: skip the work.
        if col.iter().all(|x| x.is_infinite()) {
            continue;
        }
        fh_1d(col, &mut s.res[..n], w2, &mut s.v, &mut s.z);
        s.block[c * n..(c + 1) * n].copy_from_slice(&s.res[..n]);
    }
    for (r, mut row) in view.outer_iter_mut().enumerate() {
        for (c, x) in row.iter_mut().enumerate() {
            *x = s.block[c * n + r];
        }
    }
}

/// 1-D lower envelope of parabolas `f[q] + w2 (p - q)²` (FH); infinite sites are skipped.
fn fh_1d(f: &[f64], d: &mut [f64], w2: f64, v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    let mut k = 0usize;
    let mut any = false;
    for q in 0..n {
        let fq = f[q];
        if fq.is_infinite() {
            continue;
        }
        if !any {
            any = true;
            v[0] = q;
            z[0] = f64::NEG_INFINITY;
            z[1] = f64::INFINITY;
            continue;
        }
        let qf = q as f64;
        let mut s;
        loop {
            let p = v[k];
            let pf = p as f64;
            s = (fq - f[p]) / (2.0 * w2 * (qf - pf)) + 0.5 * (qf + pf);
            if s <= z[k] {
                // z[0] = -inf, so k never underflows here.
                k -= 1;
            } else {
                break;
            }
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f64::INFINITY;
    }
    if !any {
        d.fill(f64::INFINITY);
        return;
    }
    k = 0;
    for (q, dq) in d.iter_mut().enumerate() {
        let qf = q as f64;
        while z[k + 1] < qf {
            k += 1;
        }
        let dv = qf - v[k] as f64;
        *dq = w2 * dv * dv + f[v[k]];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    /// Brute force: min over all features of the squared mm distance.
    fn brute(feat: &Array3<bool>, sp: [f64; 3]) -> Array3<f64> {
        let pts: Vec<(usize, usize, usize)> = feat
            .indexed_iter()
            .filter(|(_, &b)| b)
            .map(|(ix, _)| ix)
            .collect();
        Array3::from_shape_fn(feat.dim(), |(k, j, i)| {
            pts.iter()
                .map(|&(a, b, c)| {
                    let dk = (k as f64 - a as f64) * sp[0];
                    let dj = (j as f64 - b as f64) * sp[1];
                    let di = (i as f64 - c as f64) * sp[2];
                    dk * dk + dj * dj + di * di
                })
                .fold(f64::INFINITY, f64::min)
        })
    }

    #[test]
    fn matches_brute_force_on_random_sparse_features() {
        // Small LCG so the test needs no extra crate.
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut rnd = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        for &(shape, density, sp) in &[
            ((7, 9, 11), 0.02, [2.0, 0.7, 0.7]),
            ((5, 13, 4), 0.1, [1.0, 1.0, 1.0]),
            ((12, 3, 8), 0.005, [0.5, 3.0, 1.25]),
            ((1, 1, 6), 0.3, [1.0, 2.0, 3.0]),
        ] {
            let feat = Array3::from_shape_fn(shape, |_| rnd() < density);
            let got = edt_squared(feat.view(), sp);
            let want = brute(&feat, sp);
            // Evaluation at query voxels gives the same values.
            let queries = Array3::from_shape_fn(shape, |_| rnd() < 0.3);
            let at = edt_squared_at(feat.view(), queries.view(), sp);
            let full: Vec<f64> = got
                .iter()
                .zip(queries.iter())
                .filter(|(_, &q)| q)
                .map(|(&d, _)| d)
                .collect();
            assert_eq!(at.len(), full.len());
            for (a, b) in at.iter().zip(&full) {
                assert!(a == b || (a - b).abs() <= 1e-12 * b, "{a} vs {b}");
            }
            // A non-contiguous (transposed) input gives the transposed result.
            let t = edt_squared(feat.t(), [sp[2], sp[1], sp[0]]);
            assert!(t
                .t()
                .iter()
                .zip(got.iter())
                .all(|(a, b)| a == b || (a - b).abs() < 1e-9));
            for (g, w) in got.iter().zip(want.iter()) {
                if w.is_infinite() {
                    assert!(g.is_infinite());
                } else {
                    assert!((g - w).abs() <= 1e-9 * w.max(1.0), "{g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn empty_features_give_infinity_and_single_point_gives_exact_distances() {
        let feat = Array3::from_elem((3, 4, 5), false);
        assert!(edt_squared(feat.view(), [1.0; 3])
            .iter()
            .all(|x| x.is_infinite()));
        let mut feat = Array3::from_elem((3, 4, 5), false);
        feat[[0, 0, 0]] = true;
        let d = edt_squared(feat.view(), [2.0, 0.5, 1.0]);
        // (2 slices * 2 mm)^2 + (3 rows * 0.5 mm)^2 + (4 cols * 1 mm)^2
        assert!((d[[2, 3, 4]] - (16.0 + 2.25 + 16.0)).abs() < 1e-12);
        assert_eq!(d[[0, 0, 0]], 0.0);
    }
}
