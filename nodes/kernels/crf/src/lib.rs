//! Fully connected 3-D CRF with mean-field inference (Kraehenbuehl & Koltun
//! 2011). The bilateral (x, y, z, intensity) kernel is filtered with a 4-D
//! permutohedral lattice (Adams et al. 2010), as in pydensecrf; the spatial
//! Gaussian kernel, which only depends on voxel positions, with an exact
//! separable Gaussian blur on the voxel grid (pydensecrf uses a 3-D lattice,
//! an approximation of the same kernel; labels agree on >= 99.86 % of the
//! voxels of the test volumes, see REPORT.md).
//!
//! The model and the update follow pydensecrf (densecrf 2.x) as used by the
//! oracle `crf3d.py`:
//!
//! * unary `U_i(l) = -ln(max(P_i(l), 1e-8))`;
//! * kernels `k_pos = exp(-|p_i - p_j|^2 / (2 sigma_pos^2))` and
//!   `k_bil = exp(-|p_i - p_j|^2 / (2 sigma_bil^2) - |I_i - I_j|^2 / (2 sigma_int^2))`,
//!   `p` = voxel position in mm, each normalised symmetrically
//!   (`K~ = D^-1/2 K D^-1/2`, `D = diag(K 1)`, `i = j` term included; the
//!   bilateral one lattice-approximated);
//! * Potts compatibility: `Q <- softmax(-U + w_pos K~_pos Q + w_bil K~_bil Q)`,
//!   starting from `Q = softmax(-U)`.
//!
//! Array convention: volumes are `(nk, nj, ni)` (C order), `spacing` is
//! `[dk, dj, di]` in mm. Feature order is (i, j, k[, I]) = NIfTI (x, y, z),
//! as in the oracle.

// Numerical loops index several arrays in step.
#![allow(clippy::needless_range_loop)]

mod gauss;
mod lattice;

use gauss::SeparableGauss;

use lattice::sum_buffers;
pub use lattice::{
    permutohedral_filter, vertex_reach, Features, Lattice, LatticeGraph, PointTable,
};

use std::ops::Range;

use ndarray::{Array3, Array4, ArrayView3, ArrayView4};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// CRF parameters in physical units.
///
/// Defaults are the authors' (Christ et al. 2017) values converted from
/// pixel / 8-bit units: they ran on slices resized to 388 x 388 px, i.e.
/// about 0.92 mm per pixel for a 512 px slice of 0.7 mm pixels
/// (512 * 0.7 / 388), with intensities scaled to 0..255 over the
/// [-100, 400] HU window (500 HU / 255 = 1.96 HU per level). Hence
/// * position std 1.5 px * 0.92 mm = ~1.4 mm, weight 3;
/// * bilateral position std 9 px * 0.92 mm = ~8.3 mm, weight 10;
/// * bilateral intensity std 20 levels * 500 / 255 = ~39 HU;
/// * 10 mean-field iterations.
///
/// `sigma_int` is in the intensity units of the `image` passed to
/// [`dense_crf`] (HU for a CT). The oracle clips the image to its HU window
/// first; clip before calling if you need the same behaviour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CrfParams {
    /// Weight of the spatial (Gaussian) kernel; 0 disables it.
    pub w_pos: f32,
    /// Std of the spatial kernel, mm.
    pub sigma_pos_mm: f32,
    /// Weight of the bilateral kernel; 0 disables it.
    pub w_bil: f32,
    /// Positional std of the bilateral kernel, mm.
    pub sigma_bil_mm: f32,
    /// Intensity std of the bilateral kernel, in image units.
    pub sigma_int: f32,
    /// Number of mean-field iterations.
    pub iterations: usize,
}

impl Default for CrfParams {
    fn default() -> Self {
        CrfParams {
            w_pos: 3.0,
            sigma_pos_mm: 1.4,
            w_bil: 10.0,
            sigma_bil_mm: 8.3,
            sigma_int: 39.0,
            iterations: 10,
        }
    }
}

/// Exact `n / d` for `n < 2^32` with one multiplication (Lemire et al.).
#[derive(Clone, Copy)]
struct FastDiv {
    m: u64,
    d: u64,
}

impl FastDiv {
    fn new(d: usize) -> Self {
        assert!(d > 0 && d <= u32::MAX as usize);
        FastDiv {
            // d == 1 would overflow; handled in divrem
            m: if d == 1 { 0 } else { u64::MAX / d as u64 + 1 },
            d: d as u64,
        }
    }
    #[inline(always)]
    fn divrem(&self, n: usize) -> (usize, usize) {
        if self.d == 1 {
            return (n, 0);
        }
        let q = ((self.m as u128 * n as u128) >> 64) as u64;
        (q as usize, (n as u64 - q * self.d) as usize)
    }
}

/// Spatial features `(i*di, j*dj, k*dk) / sigma`, per-axis tables computed in
/// f32 as the oracle does (`(index * spacing) / sigma`).
struct PosFeat {
    di: FastDiv,
    dj: FastDiv,
    tab: [Vec<f32>; 3], // i, j, k
}

impl PosFeat {
    fn new(shape: (usize, usize, usize), spacing: [f64; 3], sigma: f32) -> Self {
        let (nk, nj, ni) = shape;
        let t = |n: usize, s: f64| {
            (0..n)
                .map(|x| (x as f32 * s as f32) / sigma)
                .collect::<Vec<f32>>()
        };
        PosFeat {
            di: FastDiv::new(ni),
            dj: FastDiv::new(nj),
            tab: [t(ni, spacing[2]), t(nj, spacing[1]), t(nk, spacing[0])],
        }
    }
    #[inline(always)]
    fn pos(&self, n: usize) -> [f32; 3] {
        let (r, i) = self.di.divrem(n);
        let (k, j) = self.dj.divrem(r);
        [self.tab[0][i], self.tab[1][j], self.tab[2][k]]
    }
}

/// Bilateral features `(position / sigma_bil, I / sigma_int)`.
struct BilFeat<'a> {
    pos: PosFeat,
    image: &'a [f32],
    sigma_int: f32,
}

impl Features<4> for BilFeat<'_> {
    #[inline(always)]
    fn get(&self, n: usize) -> [f32; 4] {
        let p = self.pos.pos(n);
        [p[0], p[1], p[2], self.image[n] / self.sigma_int]
    }
}

/// The bilateral kernel: lattice graph, every voxel's vertices and
/// barycentric weights with the weights multiplied by the voxel's
/// normalisation `1 / sqrt(K 1)` (so that a splat adds `D^-1/2 q` and a slice
/// returns `D^-1/2 K D^-1/2 q`), the z-slab groups for a parallel splat, and
/// the weight.
struct BilKernel {
    graph: LatticeGraph<4>,
    pts: PointTable<4>,
    groups: Vec<Vec<Range<usize>>>,
    w: f32,
}

impl BilKernel {
    fn new(image: &[f32], shape: (usize, usize, usize), spacing: [f64; 3], p: &CrfParams) -> Self {
        assert!(
            p.sigma_bil_mm > 0.0 && p.sigma_int > 0.0,
            "bilateral sigmas must be positive"
        );
        let (nk, nj, ni) = shape;
        let n = nk * nj * ni;
        let feat = BilFeat {
            pos: PosFeat::new(shape, spacing, p.sigma_bil_mm),
            image,
            sigma_int: p.sigma_int,
        };
        // z-slabs of `s` slices: a voxel's vertices lie within vertex_reach
        // of it and lattice edges are shorter than that, so with
        // (s + 1) z_step > 3 reach a slab shares vertices and neighbours only
        // with adjacent slabs (parallel build), and slabs two apart share no
        // vertex (parallel splat: even slabs, then odd ones).
        let z_step = spacing[0] as f32 / p.sigma_bil_mm;
        let s = ((3.0 * vertex_reach(4) / z_step).ceil() as usize + 1).clamp(1, nk.max(1));
        let slabs: Vec<Range<usize>> = (0..nk.div_ceil(s).max(1))
            .map(|t| (t * s * nj * ni).min(n)..(((t + 1) * s).min(nk) * nj * ni))
            .collect();
        let t0 = std::time::Instant::now();
        let (graph, mut pts) = Lattice::with_slabs(n, feat, &slabs).into_parts();
        let groups = if slabs.len() < 3 {
            vec![vec![0..n]]
        } else {
            vec![
                slabs.iter().step_by(2).cloned().collect(),
                slabs.iter().skip(1).step_by(2).cloned().collect(),
            ]
        };
        let mut vals = graph.new_values(1);
        pts.splat_into(&mut vals, 1, &groups, |_, o| o[0] = 1.0);
        graph.blur(&mut vals, 1);
        let norm: Vec<f32> = (0..n)
            .into_par_iter()
            .map(|i| {
                let mut o = [0f32; 1];
                pts.slice(i, &vals, 1, &mut o);
                // densecrf NORMALIZE_SYMMETRIC
                1.0 / (o[0] + 1e-20).sqrt()
            })
            .collect();
        pts.scale_weights(|i| norm[i]);
        if std::env::var_os("VOXFLOW_CRF_DEBUG").is_some() {
            eprintln!(
                "bilateral lattice: {} vertices, built and normalised in {:?}",
                graph.num_vertices(),
                t0.elapsed()
            );
        }
        BilKernel {
            graph,
            pts,
            groups,
            w: p.w_bil,
        }
    }

    /// Splats `D^-1/2 q` into `vals` and blurs.
    fn filter_vertices(&self, q: &[f32], c: usize, vals: &mut [f32]) {
        self.pts.splat_into(vals, c, &self.groups, |i, o| {
            o.copy_from_slice(&q[i * c..(i + 1) * c])
        });
        self.graph.blur(vals, c);
    }
}

/// The two normalised kernels of the CRF on one volume.
struct Kernels {
    /// Spatial kernel (exact separable Gaussian) and its weight.
    pos: Option<(SeparableGauss, f32)>,
    bil: Option<BilKernel>,
    di: FastDiv,
    dj: FastDiv,
}

impl Kernels {
    fn new(image: &[f32], shape: (usize, usize, usize), spacing: [f64; 3], p: &CrfParams) -> Self {
        let (nk, nj, ni) = shape;
        assert!(nk * nj * ni < u32::MAX as usize, "volume too large");
        assert!(spacing.iter().all(|&s| s > 0.0), "spacing must be positive");
        let pos = (p.w_pos > 0.0).then(|| {
            assert!(p.sigma_pos_mm > 0.0, "sigma_pos_mm must be positive");
            (SeparableGauss::new(shape, spacing, p.sigma_pos_mm), p.w_pos)
        });
        let bil = (p.w_bil > 0.0).then(|| BilKernel::new(image, shape, spacing, p));
        Kernels {
            pos,
            bil,
            di: FastDiv::new(ni.max(1)),
            dj: FastDiv::new(nj.max(1)),
        }
    }

    /// `w_pos D^-1/2` of the spatial kernel at voxel `i`.
    #[inline(always)]
    fn pos_factor(&self, g: &SeparableGauss, w: f32, i: usize) -> f32 {
        let (r, x) = self.di.divrem(i);
        let (k, j) = self.dj.divrem(r);
        w * (g.norm(0)[k] * g.norm(1)[j] * g.norm(2)[x])
    }
}

fn check_shapes(image: &ArrayView3<f32>, prob: &ArrayView4<f32>) -> usize {
    let (nk, nj, ni, c) = prob.dim();
    assert_eq!(image.dim(), (nk, nj, ni), "image and prob shapes differ");
    assert!((1..=16).contains(&c), "prob needs 1..=16 classes");
    c
}

/// Unary `-ln(max(p, 1e-8))` (p also clipped to 1, as the oracle).
#[inline(always)]
fn unary(p: f32) -> f32 {
    -p.clamp(1e-8, 1.0).ln()
}

/// Calls `f::<C>(args)` with the const `C` equal to `c` (1..=16).
macro_rules! with_classes {
    ($c:expr, $f:ident($($a:expr),*)) => {
        match $c {
            1 => $f::<1>($($a),*),
            2 => $f::<2>($($a),*),
            3 => $f::<3>($($a),*),
            4 => $f::<4>($($a),*),
            5 => $f::<5>($($a),*),
            6 => $f::<6>($($a),*),
            7 => $f::<7>($($a),*),
            8 => $f::<8>($($a),*),
            9 => $f::<9>($($a),*),
            10 => $f::<10>($($a),*),
            11 => $f::<11>($($a),*),
            12 => $f::<12>($($a),*),
            13 => $f::<13>($($a),*),
            14 => $f::<14>($($a),*),
            15 => $f::<15>($($a),*),
            16 => $f::<16>($($a),*),
            _ => unreachable!("1..=16 classes"),
        }
    };
}

/// Mean-field update of the voxels `start..start + ch.len() / C`: on entry
/// `ch` holds `K_pos D^-1/2 Q` (or anything without a spatial kernel), on
/// exit the new Q; with `splat`, the new Q is also splatted into that
/// bilateral buffer.
fn update_chunk<const C: usize>(
    ker: &Kernels,
    vb: &[f32],
    pr: &[f32],
    start: usize,
    ch: &mut [f32],
    mut splat: Option<&mut [f32]>,
) {
    let mut s = [0f32; C];
    for (o, qv) in ch.chunks_exact_mut(C).enumerate() {
        let i = start + o;
        let qv: &mut [f32; C] = qv.try_into().expect("C values");
        let pv: &[f32; C] = pr[i * C..][..C].try_into().expect("C values");
        // pairwise term sum_k w_k K~_k Q, into qv
        match &ker.pos {
            Some((g, w)) => {
                let f = ker.pos_factor(g, *w, i);
                qv.iter_mut().for_each(|x| *x *= f);
            }
            None => *qv = [0.0; C],
        }
        if let Some(k) = &ker.bil {
            k.pts.slice(i, vb, C, &mut s);
            for j in 0..C {
                qv[j] += k.w * s[j];
            }
        }
        // softmax(-U + P) = p e^P / sum(p e^P), computed without ln
        let mx = qv.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for k in 0..C {
            qv[k] = pv[k].clamp(1e-8, 1.0) * (qv[k] - mx).exp();
            sum += qv[k];
        }
        let inv = 1.0 / sum;
        qv.iter_mut().for_each(|x| *x *= inv);
        if let (Some(buf), Some(k)) = (splat.as_deref_mut(), &ker.bil) {
            k.pts.splat(i, buf, C, qv);
        }
    }
}

/// [`dense_crf`] that gives up, returning `None`, as soon as `stop` returns true (it is asked
/// after the set-up and before each iteration): a cancelled run stops within one iteration.
/// `prob` must be standard layout.
pub fn dense_crf_until(
    image: ArrayView3<f32>,
    prob: ArrayView4<f32>,
    spacing: [f64; 3],
    params: &CrfParams,
    stop: &(dyn Fn() -> bool + Sync),
) -> Option<Array4<f32>> {
    let c = check_shapes(&image, &prob);
    let (nk, nj, ni, _) = prob.dim();
    let n = nk * nj * ni;
    if n == 0 {
        return Some(Array4::zeros((nk, nj, ni, c)));
    }
    let img = image.as_standard_layout();
    let pr = prob.as_standard_layout();
    let img = img.as_slice().expect("standard layout");
    let pr = pr.as_slice().expect("standard layout");
    let dbg = std::env::var_os("VOXFLOW_CRF_DEBUG").is_some();
    let t0 = std::time::Instant::now();
    let ker = Kernels::new(img, (nk, nj, ni), spacing, params);
    // Q = softmax(-U) = p / sum(p) (p clipped to [1e-8, 1])
    let mut q = vec![0f32; pr.len()];
    q.par_chunks_mut(c)
        .zip(pr.par_chunks(c))
        .for_each(|(qv, pv)| {
            let mut s = 0f32;
            for k in 0..c {
                qv[k] = pv[k].clamp(1e-8, 1.0);
                s += qv[k];
            }
            qv.iter_mut().for_each(|x| *x /= s);
        });
    if dbg {
        eprintln!("crf setup {:?}", t0.elapsed());
    }
    let mut vb = ker
        .bil
        .as_ref()
        .map_or(Vec::new(), |k| k.graph.new_values(c));
    let threads = rayon::current_num_threads();
    // Small bilateral lattice: splat the new Q into it while updating (with
    // private buffers per part of the volume) instead of in a separate pass.
    let fuse = ker
        .bil
        .as_ref()
        .is_some_and(|k| k.graph.num_vertices() * threads * 8 <= n);
    if let (Some(k), true) = (&ker.bil, fuse && params.iterations > 0) {
        k.filter_vertices(&q, c, &mut vb);
    }
    const CH: usize = 2048;
    for it in 0..params.iterations {
        if stop() {
            return None;
        }
        let t0 = std::time::Instant::now();
        if let (Some(k), false) = (&ker.bil, fuse) {
            k.filter_vertices(&q, c, &mut vb);
        }
        let t1 = std::time::Instant::now();
        // q <- K_pos D^-1/2 q: q is not needed any more (the bilateral
        // lattice already holds it)
        if let Some((g, _)) = &ker.pos {
            g.filter_in_place(&mut q, c);
        }
        let t2 = std::time::Instant::now();
        if fuse && it + 1 < params.iterations {
            // update and splat the new Q: private bilateral buffers per part
            // of the volume, summed in part order (deterministic)
            let part = n.div_ceil(threads * 4);
            let bufs: Vec<Vec<f32>> = q
                .par_chunks_mut(part * c)
                .enumerate()
                .map(|(pi, ch)| {
                    let mut buf = vec![0f32; vb.len()];
                    with_classes!(
                        c,
                        update_chunk(&ker, &vb, pr, pi * part, ch, Some(&mut buf))
                    );
                    buf
                })
                .collect();
            sum_buffers(&bufs, &mut vb);
            if let Some(k) = &ker.bil {
                k.graph.blur(&mut vb, c);
            }
        } else {
            q.par_chunks_mut(CH * c).enumerate().for_each(|(ci, ch)| {
                with_classes!(c, update_chunk(&ker, &vb, pr, ci * CH, ch, None));
            });
        }
        let t3 = std::time::Instant::now();
        if dbg {
            eprintln!(
                "iteration {it}: bilateral splat {:?}, spatial filter {:?}, update (+ splat, blur) {:?}",
                t1 - t0,
                t2 - t1,
                t3 - t2
            );
        }
    }
    Some(Array4::from_shape_vec((nk, nj, ni, c), q).expect("shape"))
}

/// Dense CRF mean-field inference.
///
/// * `image`: intensities `(nk, nj, ni)`;
/// * `prob`: class probabilities `(nk, nj, ni, C)`, class last;
/// * `spacing`: voxel size in mm, `[dk, dj, di]`.
///
/// Returns the refined marginals `Q` with the layout of `prob`. With both
/// weights 0 (or 0 iterations) this is `prob` clipped to `[1e-8, 1]` and
/// renormalised; `prob` itself need not be normalised.
///
/// Memory besides the inputs: the output (`4 C` bytes per voxel, also the
/// spatial filter's buffer), the bilateral lattice's vertex ids and weights
/// (40 bytes per voxel) and per lattice vertex `20 + 4 C + 1` bytes
/// (neighbours, values, flags; CT volumes have ~1 vertex per 30-200 voxels),
/// plus, while it is built, per-slab hash tables (~24 bytes per vertex) and
/// the normalisation (4 bytes per voxel).
///
/// Panics if shapes differ, `C` is not in 1..=16, a sigma or spacing is not
/// positive, or the volume has 2^32 voxels or more.
pub fn dense_crf(
    image: ArrayView3<f32>,
    prob: ArrayView4<f32>,
    spacing: [f64; 3],
    params: &CrfParams,
) -> Array4<f32> {
    dense_crf_until(image, prob, spacing, params, &|| false).expect("never stopped")
}

/// Label of the largest probability per voxel (first one on ties).
pub fn argmax_labels(q: ArrayView4<f32>) -> Array3<u8> {
    let (nk, nj, ni, c) = q.dim();
    assert!(c <= 256, "at most 256 classes");
    let q = q.as_standard_layout();
    let qs = q.as_slice().expect("standard layout");
    let labels: Vec<u8> = qs
        .par_chunks(c)
        .map(|v| {
            let mut best = 0;
            for k in 1..c {
                if v[k] > v[best] {
                    best = k;
                }
            }
            best as u8
        })
        .collect();
    Array3::from_shape_vec((nk, nj, ni), labels).expect("shape")
}

/// Mean-field objective (KL divergence up to a constant) of marginals `q`:
/// `sum Q ln Q + sum Q U - 1/2 sum_k w_k sum_l Q_l . (K~_k Q_l)`, with the
/// same lattice-approximated, symmetrically normalised kernels as
/// [`dense_crf`]. The mean-field update does not increase it (up to the
/// lattice's asymmetry), so it is used to check convergence.
pub fn mean_field_energy(
    image: ArrayView3<f32>,
    prob: ArrayView4<f32>,
    q: ArrayView4<f32>,
    spacing: [f64; 3],
    params: &CrfParams,
) -> f64 {
    let c = check_shapes(&image, &prob);
    assert_eq!(q.dim(), prob.dim(), "q and prob shapes differ");
    let (nk, nj, ni, _) = prob.dim();
    if nk * nj * ni == 0 {
        return 0.0;
    }
    let img = image.as_standard_layout();
    let pr = prob.as_standard_layout();
    let qa = q.as_standard_layout();
    let img = img.as_slice().expect("standard layout");
    let pr = pr.as_slice().expect("standard layout");
    let qs = qa.as_slice().expect("standard layout");
    let ker = Kernels::new(img, (nk, nj, ni), spacing, params);
    let mut tp = Vec::new();
    if let Some((g, _)) = &ker.pos {
        tp = qs.to_vec();
        g.filter_in_place(&mut tp, c);
    }
    let mut vb = Vec::new();
    if let Some(k) = &ker.bil {
        vb = k.graph.new_values(c);
        k.filter_vertices(qs, c, &mut vb);
    }
    (0..nk * nj * ni)
        .into_par_iter()
        .map(|i| {
            let mut s = [0f32; 16];
            let qv = &qs[i * c..(i + 1) * c];
            let pv = &pr[i * c..(i + 1) * c];
            let mut e = 0f64;
            for k in 0..c {
                let qk = qv[k] as f64;
                if qk > 0.0 {
                    e += qk * qk.ln();
                }
                e += qk * unary(pv[k]) as f64;
            }
            // - 1/2 Q . sum_k w_k K~_k Q at i
            if let Some((g, w)) = &ker.pos {
                let f = ker.pos_factor(g, *w, i) as f64;
                for k in 0..c {
                    e -= 0.5 * qv[k] as f64 * f * tp[i * c + k] as f64;
                }
            }
            if let Some(kb) = &ker.bil {
                kb.pts.slice(i, &vb, c, &mut s);
                for k in 0..c {
                    e -= 0.5 * qv[k] as f64 * kb.w as f64 * s[k] as f64;
                }
            }
            e
        })
        .sum()
}

/// Fraction of equal labels between two label volumes of the same shape.
pub fn label_agreement(a: &Array3<u8>, b: &Array3<u8>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    let same = a.iter().zip(b.iter()).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::FastDiv;

    #[test]
    fn fast_div_is_exact() {
        for d in [1usize, 2, 3, 7, 200, 512, 65535, 1 << 20, 4_000_037] {
            let f = FastDiv::new(d);
            let probe =
                (0..20_000usize).chain([u32::MAX as usize - 1, u32::MAX as usize - d, 123_456_789]);
            for n in probe {
                assert_eq!(f.divrem(n), (n / d, n % d), "n {n} d {d}");
            }
        }
    }
}
