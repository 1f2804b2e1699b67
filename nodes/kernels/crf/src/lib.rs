//! Fully connected 3-D CRF with mean-field inference (Kraehenbuehl & Koltun
//! 2011), filtering with the permutohedral lattice (Adams et al. 2010): a 3-D
//! lattice for the spatial Gaussian kernel and a 4-D lattice for the
//! bilateral (x, y, z, intensity) kernel.
//!
//! The model and the update follow pydensecrf (densecrf 2.x) as used by the
//! oracle `crf3d.py`:
//!
//! * unary `U_i(l) = -ln(max(P_i(l), 1e-8))`;
//! * kernels `k_pos = exp(-|p_i - p_j|^2 / (2 sigma_pos^2))` and
//!   `k_bil = exp(-|p_i - p_j|^2 / (2 sigma_bil^2) - |I_i - I_j|^2 / (2 sigma_int^2))`,
//!   `p` = voxel position in mm, each normalised symmetrically
//!   (`K~ = D^-1/2 K D^-1/2`, `D = diag(K 1)`, lattice-approximated, `i = j`
//!   term included);
//! * Potts compatibility: `Q <- softmax(-U + w_pos K~_pos Q + w_bil K~_bil Q)`,
//!   starting from `Q = softmax(-U)`.
//!
//! Array convention: volumes are `(nk, nj, ni)` (C order), `spacing` is
//! `[dk, dj, di]` in mm. Feature order is (i, j, k[, I]) = NIfTI (x, y, z),
//! as in the oracle.

// Numerical loops index several arrays in step.
#![allow(clippy::needless_range_loop)]

mod lattice;

pub use lattice::{permutohedral_filter, vertex_reach, Features, Lattice};

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

impl Features<3> for PosFeat {
    #[inline(always)]
    fn get(&self, n: usize) -> [f32; 3] {
        self.pos(n)
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

/// One normalised kernel: lattice, `1 / sqrt(K 1)` per voxel, the z-slab
/// groups for the parallel splat, and the weight.
struct Kernel<const D: usize, F> {
    lat: Lattice<D, F>,
    norm: Vec<f32>,
    groups: Vec<Vec<Range<usize>>>,
    w: f32,
}

impl<const D: usize, F: Features<D>> Kernel<D, F> {
    /// `z_step`: feature-space distance between slices.
    fn new(feat: F, shape: (usize, usize, usize), z_step: f32, w: f32) -> Self {
        let (nk, nj, ni) = shape;
        let n = nk * nj * ni;
        // z-slabs of `s` slices: a voxel's vertices lie within vertex_reach(D)
        // of it and lattice edges are shorter than that, so with
        // (s + 1) z_step > 3 reach a slab shares vertices and neighbours only
        // with adjacent slabs (parallel build), and slabs two apart share no
        // vertex (parallel splat: even slabs, then odd ones).
        let s = ((3.0 * vertex_reach(D) / z_step).ceil() as usize + 1).clamp(1, nk.max(1));
        let slabs: Vec<Range<usize>> = (0..nk.div_ceil(s).max(1))
            .map(|t| (t * s * nj * ni).min(n)..(((t + 1) * s).min(nk) * nj * ni))
            .collect();
        let lat = Lattice::with_slabs(n, feat, &slabs);
        let groups = if slabs.len() < 3 {
            vec![vec![0..n]]
        } else {
            vec![
                slabs.iter().step_by(2).cloned().collect(),
                slabs.iter().skip(1).step_by(2).cloned().collect(),
            ]
        };
        let mut vals = lat.new_values(1);
        lat.splat_into(&mut vals, 1, Some(&groups), |_, o| o[0] = 1.0);
        lat.blur(&mut vals, 1);
        let mut norm = vec![0f32; n];
        norm.par_chunks_mut(4096).enumerate().for_each(|(ci, ch)| {
            let mut o = [0f32; 1];
            for (x, nv) in ch.iter_mut().enumerate() {
                lat.slice_point(ci * 4096 + x, &vals, 1, &mut o);
                // densecrf NORMALIZE_SYMMETRIC
                *nv = 1.0 / (o[0] + 1e-20).sqrt();
            }
        });
        Kernel {
            lat,
            norm,
            groups,
            w,
        }
    }

    /// Splats `norm * q` into `vals` and blurs.
    fn filter_vertices(&self, q: &[f32], c: usize, vals: &mut [f32]) {
        let norm = &self.norm;
        let t0 = std::time::Instant::now();
        self.lat.splat_into(vals, c, Some(&self.groups), |i, o| {
            for k in 0..c {
                o[k] = q[i * c + k] * norm[i];
            }
        });
        let t1 = std::time::Instant::now();
        self.lat.blur(vals, c);
        if std::env::var_os("VOXFLOW_CRF_DEBUG").is_some() {
            eprintln!("  d={D} splat {:?} blur {:?}", t1 - t0, t1.elapsed());
        }
    }

    /// `t += w * norm_i * slice_i` (written as densecrf: `t -= -w * (...)`).
    #[inline(always)]
    fn add_pairwise(&self, i: usize, vals: &[f32], c: usize, s: &mut [f32], t: &mut [f32]) {
        self.lat.slice_point(i, vals, c, s);
        for k in 0..c {
            t[k] -= -self.w * (s[k] * self.norm[i]);
        }
    }
}

/// The two normalised kernels of the CRF on one volume.
struct Kernels<'a> {
    pos: Option<Kernel<3, PosFeat>>,
    bil: Option<Kernel<4, BilFeat<'a>>>,
}

impl<'a> Kernels<'a> {
    fn new(
        image: &'a [f32],
        shape: (usize, usize, usize),
        spacing: [f64; 3],
        p: &CrfParams,
    ) -> Self {
        let (nk, nj, ni) = shape;
        let n = nk * nj * ni;
        assert!(n < u32::MAX as usize, "volume too large");
        assert!(spacing.iter().all(|&s| s > 0.0), "spacing must be positive");
        let zstep = |sigma: f32| (spacing[0] as f32) / sigma;
        let pos = (p.w_pos > 0.0).then(|| {
            assert!(p.sigma_pos_mm > 0.0, "sigma_pos_mm must be positive");
            Kernel::new(
                PosFeat::new(shape, spacing, p.sigma_pos_mm),
                shape,
                zstep(p.sigma_pos_mm),
                p.w_pos,
            )
        });
        let bil = (p.w_bil > 0.0).then(|| {
            assert!(
                p.sigma_bil_mm > 0.0 && p.sigma_int > 0.0,
                "bilateral sigmas must be positive"
            );
            let f = BilFeat {
                pos: PosFeat::new(shape, spacing, p.sigma_bil_mm),
                image,
                sigma_int: p.sigma_int,
            };
            Kernel::new(f, shape, zstep(p.sigma_bil_mm), p.w_bil)
        });
        if std::env::var_os("VOXFLOW_CRF_DEBUG").is_some() {
            eprintln!(
                "crf lattices: n {n}, pos vertices {:?}, bil vertices {:?}",
                pos.as_ref().map(|k| k.lat.num_vertices()),
                bil.as_ref().map(|k| k.lat.num_vertices())
            );
        }
        Kernels { pos, bil }
    }

    fn buffers(&self, c: usize) -> (Vec<f32>, Vec<f32>) {
        (
            self.pos
                .as_ref()
                .map_or(Vec::new(), |k| k.lat.new_values(c)),
            self.bil
                .as_ref()
                .map_or(Vec::new(), |k| k.lat.new_values(c)),
        )
    }

    fn filter_vertices(&self, q: &[f32], c: usize, vp: &mut [f32], vb: &mut [f32]) {
        if let Some(k) = &self.pos {
            k.filter_vertices(q, c, vp);
        }
        if let Some(k) = &self.bil {
            k.filter_vertices(q, c, vb);
        }
    }

    /// `t += sum_k w_k K~_k Q` at voxel `i`.
    #[inline(always)]
    fn add_pairwise(
        &self,
        i: usize,
        vp: &[f32],
        vb: &[f32],
        c: usize,
        s: &mut [f32],
        t: &mut [f32],
    ) {
        if let Some(k) = &self.pos {
            k.add_pairwise(i, vp, c, s, t);
        }
        if let Some(k) = &self.bil {
            k.add_pairwise(i, vb, c, s, t);
        }
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

/// `out = softmax(t)` in place (max-subtracted, as densecrf's expAndNormalize).
#[inline(always)]
fn softmax(t: &mut [f32]) {
    let mx = t.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0f32;
    for x in t.iter_mut() {
        *x = (*x - mx).exp();
        s += *x;
    }
    for x in t.iter_mut() {
        *x /= s;
    }
}

/// Runs mean-field inference; `prob` must be standard layout.
fn mean_field(
    image: ArrayView3<f32>,
    prob: ArrayView4<f32>,
    spacing: [f64; 3],
    params: &CrfParams,
) -> Array4<f32> {
    let c = check_shapes(&image, &prob);
    let (nk, nj, ni, _) = prob.dim();
    if nk * nj * ni == 0 {
        return Array4::zeros((nk, nj, ni, c));
    }
    let img = image.as_standard_layout();
    let pr = prob.as_standard_layout();
    let img = img.as_slice().expect("standard layout");
    let pr = pr.as_slice().expect("standard layout");
    let ker = Kernels::new(img, (nk, nj, ni), spacing, params);

    let mut q = vec![0f32; pr.len()];
    q.par_chunks_mut(c)
        .zip(pr.par_chunks(c))
        .for_each(|(qv, pv)| {
            for k in 0..c {
                qv[k] = -unary(pv[k]);
            }
            softmax(qv);
        });
    let dbg = std::env::var_os("VOXFLOW_CRF_DEBUG").is_some();
    let (mut vp, mut vb) = ker.buffers(c);
    let n = nk * nj * ni;
    let threads = rayon::current_num_threads();
    // Small bilateral lattice: splat the new Q into it while slicing (same
    // vertices and weights), with private buffers per task.
    let fuse = ker
        .bil
        .as_ref()
        .is_some_and(|k| k.lat.num_vertices() * threads * 8 <= n);
    if fuse && params.iterations > 0 {
        ker.bil.as_ref().unwrap().filter_vertices(&q, c, &mut vb);
    }
    const CH: usize = 2048;
    for it in 0..params.iterations {
        let t0 = std::time::Instant::now();
        if let Some(k) = &ker.pos {
            k.filter_vertices(&q, c, &mut vp);
        }
        if let (Some(k), false) = (&ker.bil, fuse) {
            k.filter_vertices(&q, c, &mut vb);
        }
        let t1 = std::time::Instant::now();
        let splat_next = fuse && it + 1 < params.iterations;
        let mb = if splat_next { vb.len() } else { 0 };
        let next = q
            .par_chunks_mut(c * CH)
            .enumerate()
            // few tasks: each allocates and sums a private bilateral buffer
            .with_min_len(n.div_ceil(CH * threads * 4).max(1))
            .fold(
                || vec![0f32; mb],
                |mut buf, (ci, ch)| {
                    let mut s = [0f32; 16];
                    let mut tmp = [0f32; 16];
                    for (o, qv) in ch.chunks_exact_mut(c).enumerate() {
                        let i = ci * CH + o;
                        let pv = &pr[i * c..(i + 1) * c];
                        qv.iter_mut().for_each(|x| *x = 0.0);
                        if let Some(k) = &ker.pos {
                            k.add_pairwise(i, &vp, c, &mut s, qv);
                        }
                        let loc = match &ker.bil {
                            Some(k) if fuse => {
                                let loc = k.lat.locate(i);
                                k.lat.slice_located(&loc, &vb, c, &mut s);
                                for j in 0..c {
                                    qv[j] -= -k.w * (s[j] * k.norm[i]);
                                }
                                Some(loc)
                            }
                            Some(k) => {
                                k.add_pairwise(i, &vb, c, &mut s, qv);
                                None
                            }
                            None => None,
                        };
                        // softmax(-U + P) = p e^P / sum(p e^P), computed without ln
                        let mx = qv.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let mut sum = 0f32;
                        for k in 0..c {
                            qv[k] = pv[k].clamp(1e-8, 1.0) * (qv[k] - mx).exp();
                            sum += qv[k];
                        }
                        qv.iter_mut().for_each(|x| *x /= sum);
                        if let (true, Some(loc), Some(k)) = (splat_next, loc, &ker.bil) {
                            for j in 0..c {
                                tmp[j] = qv[j] * k.norm[i];
                            }
                            k.lat.splat_located(&loc, &mut buf, c, &tmp[..c]);
                        }
                    }
                    buf
                },
            )
            .reduce_with(|mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += *y);
                a
            });
        if let (true, Some(nb), Some(k)) = (splat_next, next, &ker.bil) {
            vb = nb;
            k.lat.blur(&mut vb, c);
        }
        if dbg {
            eprintln!(
                "iteration: splat+blur {:?} slice {:?}",
                t1 - t0,
                t1.elapsed()
            );
        }
    }
    Array4::from_shape_vec((nk, nj, ni, c), q).expect("shape")
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
/// Memory besides the inputs: the output (`4 C` bytes per voxel), per kernel
/// 8 bytes per voxel (vertex index, normalisation) and per lattice vertex
/// `4 (D + 1) + 4 C + 1` bytes (neighbours, values, flags). On CT grids the
/// spatial lattice has about one vertex per voxel, the bilateral one few.
/// The build also holds per-slab hash tables (~24 bytes per vertex).
///
/// Panics if shapes differ, `C` is not in 1..=16, a sigma or spacing is not
/// positive, or the volume has 2^32 voxels or more.
pub fn dense_crf(
    image: ArrayView3<f32>,
    prob: ArrayView4<f32>,
    spacing: [f64; 3],
    params: &CrfParams,
) -> Array4<f32> {
    mean_field(image, prob, spacing, params)
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
    let (mut vp, mut vb) = ker.buffers(c);
    ker.filter_vertices(qs, c, &mut vp, &mut vb);
    (0..nk * nj * ni)
        .into_par_iter()
        .map(|i| {
            let mut s = vec![0f32; c];
            let mut t = vec![0f32; c];
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
            // t = sum_k w_k K~_k Q at i
            ker.add_pairwise(i, &vp, &vb, c, &mut s, &mut t);
            for k in 0..c {
                e -= 0.5 * qv[k] as f64 * t[k] as f64;
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
