//! Uniform B-spline lattices on an index grid, as ITK's
//! `BSplineScatteredDataPointSetToImageFilter` / `BSplineControlPointImageFilter` use them.
//!
//! A lattice with `c` control points along an axis of a grid with `n` voxels has `c - p` spans
//! (`p` = spline order); voxel index `x` maps to the parametric coordinate
//! `u = (c - p) * x / (n - 1)` (spacing cancels out, so the fit is index based like ITK's).

use ndarray::{Array3, ArrayView3, Axis};
use rayon::prelude::*;

/// ITK's `m_BSplineEpsilon`.
const BSPLINE_EPSILON: f64 = 1e-3;

/// Centred uniform B-spline kernel of degree `p` at `x`.
pub fn kernel(p: usize, x: f64) -> f64 {
    let a = x.abs();
    match p {
        0 => {
            if a < 0.5 {
                1.0
            } else if a == 0.5 {
                0.5
            } else {
                0.0
            }
        }
        1 => (1.0 - a).max(0.0),
        2 => {
            if a < 0.5 {
                0.75 - a * a
            } else if a < 1.5 {
                (9.0 - 12.0 * a + 4.0 * a * a) / 8.0
            } else {
                0.0
            }
        }
        3 => {
            if a < 1.0 {
                (4.0 - 6.0 * a * a + 3.0 * a * a * a) / 6.0
            } else if a < 2.0 {
                let t = 2.0 - a;
                t * t * t / 6.0
            } else {
                0.0
            }
        }
        _ => {
            // beta^p(x) = 1/p! sum_k (-1)^k C(p+1,k) (x + (p+1)/2 - k)_+^p
            let h = (p as f64 + 1.0) / 2.0;
            if a >= h {
                return 0.0;
            }
            let mut s = 0.0;
            let mut binom = 1.0;
            let mut fact = 1.0;
            for i in 1..=p {
                fact *= i as f64;
            }
            for k in 0..=p + 1 {
                let t = a + h - k as f64;
                if t > 0.0 {
                    let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
                    s += sign * binom * t.powi(p as i32);
                }
                binom = binom * (p + 1 - k) as f64 / (k + 1) as f64;
            }
            s / fact
        }
    }
}

/// Per-voxel B-spline support along one axis: first control index and the `p + 1` weights.
#[derive(Clone, Debug)]
pub struct AxisWeights {
    pub order: usize,
    pub first: Vec<usize>,
    /// `n * (order + 1)` weights, row per voxel.
    pub w: Vec<f64>,
}

impl AxisWeights {
    /// Weights for the `n` voxels of an axis and a lattice with `c` control points.
    pub fn new(n: usize, c: usize, order: usize) -> Self {
        let spans = (c - order) as f64;
        let eps = spans / (n.max(2) - 1) as f64 * BSPLINE_EPSILON;
        let mut first = Vec::with_capacity(n);
        let mut w = Vec::with_capacity(n * (order + 1));
        for x in 0..n {
            let mut u = if n > 1 {
                spans * x as f64 / (n - 1) as f64
            } else {
                0.0
            };
            if (u - spans).abs() <= eps {
                u = spans - eps;
            }
            if u < 0.0 && u.abs() <= eps {
                u = 0.0;
            }
            let f = u.floor();
            first.push(f as usize);
            for j in 0..=order {
                w.push(kernel(order, u - f - j as f64 + 0.5 * (order as f64 - 1.0)));
            }
        }
        AxisWeights { order, first, w }
    }

    #[inline]
    pub fn row(&self, x: usize) -> &[f64] {
        let m = self.order + 1;
        &self.w[x * m..(x + 1) * m]
    }
}

/// Per-axis weights of a grid `(nk, nj, ni)` for a lattice of shape `lat`.
pub fn grid_weights(grid: [usize; 3], lat: [usize; 3], order: usize) -> [AxisWeights; 3] {
    [
        AxisWeights::new(grid[0], lat[0], order),
        AxisWeights::new(grid[1], lat[1], order),
        AxisWeights::new(grid[2], lat[2], order),
    ]
}

/// One-level scattered-data approximation (Lee et al. 1997) of `values` given at the voxels
/// `points` (linear C-order indices into `grid`), weight 1 each, onto a lattice of shape
/// `lat`. Same arithmetic as ITK's `BSplineScatteredDataPointSetToImageFilter` with one level.
pub fn fit(
    grid: [usize; 3],
    points: &[usize],
    values: &[f64],
    lat: [usize; 3],
    order: usize,
) -> Array3<f64> {
    let aw = grid_weights(grid, lat, order);
    let m = order + 1;
    let plane = grid[1] * grid[2];
    let nlat = lat[0] * lat[1] * lat[2];
    let chunk = points
        .len()
        .div_ceil(rayon::current_num_threads().max(1) * 4)
        .max(1024);
    let (delta, omega) = points
        .par_chunks(chunk)
        .zip(values.par_chunks(chunk))
        .map(|(pts, vals)| {
            let mut delta = vec![0.0f64; nlat];
            let mut omega = vec![0.0f64; nlat];
            let mut wij = vec![0.0f64; m * m];
            for (&p, &z) in pts.iter().zip(vals) {
                let (k, r) = (p / plane, p % plane);
                let (j, i) = (r / grid[2], r % grid[2]);
                let (wk, wj, wi) = (aw[0].row(k), aw[1].row(j), aw[2].row(i));
                let sk: f64 = wk.iter().map(|w| w * w).sum();
                let sj: f64 = wj.iter().map(|w| w * w).sum();
                let si: f64 = wi.iter().map(|w| w * w).sum();
                let w2sum = sk * sj * si;
                let (fk, fj, fi) = (aw[0].first[k], aw[1].first[j], aw[2].first[i]);
                for b in 0..m {
                    for c in 0..m {
                        wij[b * m + c] = wj[b] * wi[c];
                    }
                }
                for (a, &wa) in wk.iter().enumerate() {
                    let base_a = (fk + a) * lat[1];
                    for b in 0..m {
                        let row = (base_a + fj + b) * lat[2] + fi;
                        for c in 0..m {
                            let t = wa * wij[b * m + c];
                            let t2 = t * t;
                            omega[row + c] += t2;
                            delta[row + c] += z * t2 * t / w2sum;
                        }
                    }
                }
            }
            (delta, omega)
        })
        .reduce(
            || (vec![0.0; nlat], vec![0.0; nlat]),
            |(mut d1, mut o1), (d2, o2)| {
                d1.iter_mut().zip(&d2).for_each(|(a, b)| *a += b);
                o1.iter_mut().zip(&o2).for_each(|(a, b)| *a += b);
                (d1, o1)
            },
        );
    let phi: Vec<f64> = delta
        .iter()
        .zip(&omega)
        .map(|(&d, &o)| if o != 0.0 { d / o } else { 0.0 })
        .collect();
    Array3::from_shape_vec((lat[0], lat[1], lat[2]), phi).expect("lattice shape")
}

/// Evaluates the B-spline with control lattice `lattice` on every voxel of `grid`.
pub fn evaluate(lattice: ArrayView3<f64>, grid: [usize; 3], order: usize) -> Array3<f64> {
    let lat = [lattice.dim().0, lattice.dim().1, lattice.dim().2];
    let aw = grid_weights(grid, lat, order);
    let m = order + 1;
    let lattice = lattice.as_standard_layout();
    let l = lattice.as_slice().expect("standard layout");
    // contract i: t1[a][b][i]
    let mut t1 = vec![0.0f64; lat[0] * lat[1] * grid[2]];
    for ab in 0..lat[0] * lat[1] {
        let src = &l[ab * lat[2]..(ab + 1) * lat[2]];
        let dst = &mut t1[ab * grid[2]..(ab + 1) * grid[2]];
        for (i, d) in dst.iter_mut().enumerate() {
            let f = aw[2].first[i];
            *d = aw[2]
                .row(i)
                .iter()
                .zip(&src[f..f + m])
                .map(|(w, v)| w * v)
                .sum();
        }
    }
    // contract j: t2[a][j][i]
    let mut t2 = vec![0.0f64; lat[0] * grid[1] * grid[2]];
    t2.par_chunks_mut(grid[1] * grid[2])
        .enumerate()
        .for_each(|(a, out)| {
            for j in 0..grid[1] {
                let f = aw[1].first[j];
                let row = &mut out[j * grid[2]..(j + 1) * grid[2]];
                for (b, &w) in aw[1].row(j).iter().enumerate() {
                    let src = &t1[(a * lat[1] + f + b) * grid[2]..][..grid[2]];
                    row.iter_mut().zip(src).for_each(|(o, s)| *o += w * s);
                }
            }
        });
    // contract k
    let plane = grid[1] * grid[2];
    let mut out = vec![0.0f64; grid[0] * plane];
    out.par_chunks_mut(plane).enumerate().for_each(|(k, dst)| {
        let f = aw[0].first[k];
        for (a, &w) in aw[0].row(k).iter().enumerate() {
            let src = &t2[(f + a) * plane..][..plane];
            dst.iter_mut().zip(src).for_each(|(o, s)| *o += w * s);
        }
    });
    Array3::from_shape_vec((grid[0], grid[1], grid[2]), out).expect("grid shape")
}

/// Doubles the resolution of the lattice along every axis (`c -> 2c - p` control points)
/// without changing the function it represents (two-scale relation of uniform B-splines).
pub fn refine(lattice: ArrayView3<f64>, order: usize) -> Array3<f64> {
    let mut cur = lattice.to_owned();
    for axis in 0..3 {
        cur = refine_axis(cur.view(), axis, order);
    }
    cur
}

fn refine_axis(l: ArrayView3<f64>, axis: usize, p: usize) -> Array3<f64> {
    let n = l.len_of(Axis(axis));
    let n2 = 2 * n - p;
    // h_k = C(p+1, k) / 2^p
    let mut h = vec![1.0f64; p + 2];
    for k in 1..=p + 1 {
        h[k] = h[k - 1] * (p + 2 - k) as f64 / k as f64;
    }
    let scale = 0.5f64.powi(p as i32);
    h.iter_mut().for_each(|v| *v *= scale);
    let mut shape = [l.dim().0, l.dim().1, l.dim().2];
    shape[axis] = n2;
    let mut out = Array3::<f64>::zeros(shape);
    for m in 0..n2 {
        let mut dst = out.index_axis_mut(Axis(axis), m);
        // c'_m = sum_i c_i h[m + p - 2i]
        for i in 0..n {
            let k = m as isize + p as isize - 2 * i as isize;
            if k < 0 || k > p as isize + 1 {
                continue;
            }
            let w = h[k as usize];
            dst.zip_mut_with(&l.index_axis(Axis(axis), i), |d, s| *d += w * s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_partition_unity() {
        for p in 1..=5 {
            for t in [0.0, 0.13, 0.5, 0.77, 0.999] {
                let s: f64 = (0..=p)
                    .map(|j| kernel(p, t - j as f64 + 0.5 * (p as f64 - 1.0)))
                    .sum();
                assert!((s - 1.0).abs() < 1e-12, "p={p} t={t} s={s}");
            }
        }
        // generic formula agrees with the closed form for p = 3
        for x in [-1.7, -0.4, 0.0, 0.9, 1.2] {
            let h = 2.0;
            let mut s = 0.0;
            let binom = [1.0, 4.0, 6.0, 4.0, 1.0];
            for (k, b) in binom.iter().enumerate() {
                let t: f64 = x + h - k as f64;
                if t > 0.0 {
                    s += if k % 2 == 0 { 1.0 } else { -1.0 } * b * t.powi(3);
                }
            }
            assert!((s / 6.0 - kernel(3, x)).abs() < 1e-12);
        }
    }
}
