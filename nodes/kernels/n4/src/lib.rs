//! N4 bias field correction (Tustison et al. 2010), following ITK's
//! `N4BiasFieldCorrectionImageFilter` as SimpleITK 2.5 runs it with the usual recipe
//! (`Shrink` image and mask, fit, then `GetLogBiasFieldAsImage` on the full grid).
//!
//! Volumes are `(nk, nj, ni)` arrays in C order. Algorithm:
//! 1. shrink image and mask by subsampling (ITK `ShrinkImageFilter`: every `shrink`-th voxel,
//!    grid centres aligned; where the centred start is a half integer ITK's choice depends on
//!    the image geometry, see [`itk_shrink_offsets`] and [`n4_with_offsets`]);
//! 2. in the log domain over the mask, per iteration: sharpen the histogram
//!    ([`sharpen::sharpen`]), fit the residual `log - sharpened` with a one-level B-spline
//!    ([`bspline::fit`]) on the current control lattice, add the lattice to the total and
//!    re-evaluate the log bias; stop when the coefficient of variation of
//!    `exp(old - new log bias)` over the mask is <= `convergence`;
//! 3. between levels the lattice is refined (`c -> 2c - order` control points per axis);
//! 4. the final lattice is evaluated on the full-resolution grid, index based: its first and
//!    last voxels map to the ends of the parametric domain, as in SimpleITK's
//!    `GetLogBiasFieldAsImage` (so the shrunk and full grids cover slightly different extents).
//!
//! The fit is index based, so voxel spacing does not change the result (as in ITK).
//!
//! ```
//! use ndarray::Array3;
//! use voxflow_n4::{n4, otsu_mask, N4Params};
//!
//! // a bright block on a dark background, times a ramp along i
//! let image = Array3::from_shape_fn((16, 32, 32), |(k, j, i)| {
//!     let inside = (4..12).contains(&k) && (8..24).contains(&j) && (8..24).contains(&i);
//!     (if inside { 300.0 } else { 5.0 }) * (1.0 + 0.02 * i as f32)
//! });
//! let mask = otsu_mask(image.view(), 200);
//! let params = N4Params { shrink: 2, ..N4Params::default() };
//! let out = n4(image.view(), mask.view(), [3.0, 1.5, 1.5], &params).unwrap();
//! assert_eq!(out.bias.dim(), image.dim());
//! assert_eq!(out.iterations_run.len(), 4);
//! ```

pub mod bspline;
pub mod nifti_geometry;
pub mod otsu;
pub mod sharpen;

use ndarray::{Array3, ArrayView3, Zip};
use rayon::prelude::*;
use std::fmt;

pub use nifti_geometry::{ItkGeometry, NiftiXform};
pub use otsu::{otsu_mask, otsu_threshold};

/// N4 parameters (defaults = SimpleITK's / the issue's). Deserialises from JSON with missing
/// fields taking their defaults.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct N4Params {
    /// Subsampling factor of the fitting grid (1 = full resolution).
    pub shrink: usize,
    /// Maximum iterations per fitting level; its length is the number of levels.
    pub iterations: Vec<usize>,
    /// Convergence threshold on the coefficient of variation of the bias change.
    pub convergence: f64,
    /// Control points per axis of the first level (>= spline_order + 1).
    pub control_points: usize,
    /// B-spline order (1..=5).
    pub spline_order: usize,
    /// Histogram bins of the sharpening step.
    pub bins: usize,
    /// FWHM of the Gaussian bias-field model (log-intensity units).
    pub fwhm: f64,
    /// Wiener filter noise.
    pub wiener_noise: f64,
}

impl Default for N4Params {
    fn default() -> Self {
        N4Params {
            shrink: 4,
            iterations: vec![50, 50, 50, 50],
            convergence: 0.001,
            control_points: 4,
            spline_order: 3,
            bins: 200,
            fwhm: 0.15,
            wiener_noise: 0.01,
        }
    }
}

/// Result of [`n4`].
#[derive(Clone, Debug)]
pub struct N4Output {
    /// `image / bias` inside the mask; the input value outside it.
    pub corrected: Array3<f32>,
    /// Multiplicative bias field on the whole grid (`exp` of the log bias).
    pub bias: Array3<f32>,
    /// Iterations run per level (ITK's `GetElapsedIterations()` reports one more).
    pub iterations_run: Vec<usize>,
    /// Last convergence measure per level.
    pub final_convergence: Vec<f64>,
}

/// Errors of [`n4`].
#[derive(Clone, Debug, PartialEq)]
pub enum N4Error {
    /// Image and mask shapes differ.
    ShapeMismatch { image: [usize; 3], mask: [usize; 3] },
    /// The mask (or the shrunk mask) selects no voxel.
    EmptyMask { shrunk: bool },
    /// A voxel inside the mask is <= 0 or not finite (N4 works on log intensities).
    NonPositive { index: [usize; 3], value: f32 },
    /// All voxels inside the (shrunk) mask have the same value.
    ConstantImage { value: f32 },
    /// A parameter is out of range.
    InvalidParam(String),
}

impl fmt::Display for N4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            N4Error::ShapeMismatch { image, mask } => {
                write!(
                    f,
                    "n4: image shape {image:?} and mask shape {mask:?} differ"
                )
            }
            N4Error::EmptyMask { shrunk: false } => write!(f, "n4: the mask is empty"),
            N4Error::EmptyMask { shrunk: true } => write!(
                f,
                "n4: the mask is empty after shrinking; use a smaller shrink factor"
            ),
            N4Error::NonPositive { index, value } => write!(
                f,
                "n4: value {value} at voxel {index:?} (k, j, i) inside the mask is not > 0; \
                 N4 needs positive intensities in the mask (shift the image or mask these voxels)"
            ),
            N4Error::ConstantImage { value } => write!(
                f,
                "n4: the image is constant ({value}) inside the mask; there is no bias to estimate"
            ),
            N4Error::InvalidParam(s) => write!(f, "n4: invalid parameter: {s}"),
        }
    }
}

impl std::error::Error for N4Error {}

fn check_params(p: &N4Params, spacing: [f64; 3]) -> Result<(), N4Error> {
    let bad = |s: String| Err(N4Error::InvalidParam(s));
    if p.shrink == 0 {
        return bad("shrink must be >= 1".into());
    }
    if p.iterations.is_empty() || p.iterations.contains(&0) {
        return bad(format!(
            "iterations must be a non-empty list of counts >= 1, got {:?}",
            p.iterations
        ));
    }
    if !(1..=5).contains(&p.spline_order) {
        return bad(format!(
            "spline_order must be in 1..=5, got {}",
            p.spline_order
        ));
    }
    if p.control_points < p.spline_order + 1 {
        return bad(format!(
            "control_points ({}) must be >= spline_order + 1 ({})",
            p.control_points,
            p.spline_order + 1
        ));
    }
    if p.bins < 2 {
        return bad(format!("bins must be >= 2, got {}", p.bins));
    }
    if !(p.fwhm > 0.0 && p.fwhm.is_finite()) {
        return bad(format!("fwhm must be > 0, got {}", p.fwhm));
    }
    if !(p.wiener_noise >= 0.0 && p.wiener_noise.is_finite()) {
        return bad(format!("wiener_noise must be >= 0, got {}", p.wiener_noise));
    }
    if p.convergence.is_nan() {
        return bad("convergence is NaN".into());
    }
    if spacing.iter().any(|s| !(*s > 0.0 && s.is_finite())) {
        return bad(format!("spacing must be positive, got {spacing:?}"));
    }
    Ok(())
}

/// Size of the shrunk axis and index of its first sample (ITK `ShrinkImageFilter`: output
/// size `floor(n / f)`, centres aligned, `input = output * f + offset`).
pub fn shrink_axis(n: usize, f: usize) -> (usize, usize) {
    let m = (n / f).max(1);
    let x = (n as f64 - 1.0) / 2.0 - (m as f64 - 1.0) / 2.0 * f as f64;
    let off = (x + 0.5).floor().max(0.0) as usize;
    (m, off)
}

/// Coefficient of variation of `exp(a - b)` (ITK's Welford loop).
fn convergence_measure(a: &[f64], b: &[f64]) -> f64 {
    let (mut mu, mut sigma, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let v = (x - y).exp();
        n += 1.0;
        if n > 1.0 {
            sigma += (v - mu) * (v - mu) * (n - 1.0) / n;
        }
        mu = mu * (1.0 - 1.0 / n) + v / n;
    }
    (sigma / (n - 1.0)).sqrt() / mu
}

/// Index of the first voxel `sitk.Shrink` samples on each axis, `(k, j, i)`, reproducing ITK's
/// `ShrinkImageFilter` arithmetic: it maps the shrunk image's origin back through the input's
/// physical geometry and rounds half up. For an axis where the centred offset is a half
/// integer (`(n - 1) / 2 - (m - 1) / 2 * f`, e.g. 1.5 for n = 256, f = 4), the rounding error of
/// that double arithmetic decides between the two neighbours, so oblique images (direction not
/// identity) may sample one voxel earlier than [`shrink_axis`]. N4's result depends on this
/// sampling phase, so matching SimpleITK on such images needs these offsets
/// ([`n4_with_offsets`]).
///
/// `shape` and `spacing` are in array order `(k, j, i)`; `origin` is the physical position
/// `(x, y, z)` of voxel 0 and `direction` ITK's 3x3 direction matrix, row-major (rows =
/// physical x, y, z; columns = index axes i, j, k), as `sitk.Image.GetDirection()` returns it.
pub fn itk_shrink_offsets(
    shape: [usize; 3],
    shrink: usize,
    spacing: [f64; 3],
    origin: [f64; 3],
    direction: [f64; 9],
) -> [usize; 3] {
    // ITK index order (i, j, k)
    let size = [shape[2], shape[1], shape[0]];
    let sp = [spacing[2], spacing[1], spacing[0]];
    let f = shrink.max(1);
    let d = |r: usize, c: usize| direction[r * 3 + c];
    let m_in: [[f64; 3]; 3] = std::array::from_fn(|r| std::array::from_fn(|c| d(r, c) * sp[c]));
    let m_out: [[f64; 3]; 3] =
        std::array::from_fn(|r| std::array::from_fn(|c| d(r, c) * (sp[c] * f as f64)));
    let in_c: [f64; 3] = std::array::from_fn(|a| (size[a] as f64 - 1.0) / 2.0);
    let out_c: [f64; 3] = std::array::from_fn(|a| ((size[a] / f).max(1) as f64 - 1.0) / 2.0);
    // TransformContinuousIndexToPhysicalPoint (both with the input origin)
    let to_phys = |m: &[[f64; 3]; 3], idx: &[f64; 3]| -> [f64; 3] {
        std::array::from_fn(|r| {
            let mut s = 0.0;
            for c in 0..3 {
                s += m[r][c] * idx[c];
            }
            s + origin[r]
        })
    };
    let pin = to_phys(&m_in, &in_c);
    let pout = to_phys(&m_out, &out_c);
    let out_origin: [f64; 3] = std::array::from_fn(|r| origin[r] + (pin[r] - pout[r]));
    let inv = inverse3(&m_in);
    let mut off = [0usize; 3];
    for a in 0..3 {
        let mut s = 0.0;
        for c in 0..3 {
            s += inv[a][c] * (out_origin[c] - origin[c]);
        }
        // RoundHalfIntegerUp, then clamped at 0 as ITK does
        off[a] = (s + 0.5).floor().max(0.0) as usize;
    }
    [off[2], off[1], off[0]]
}

fn inverse3(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let [[a, b, c], [d, e, f], [g, h, i]] = *m;
    let (ca, cb, cc) = (e * i - f * h, -(d * i - f * g), d * h - e * g);
    let det = a * ca + b * cb + c * cc;
    [
        [ca / det, -(b * i - c * h) / det, (b * f - c * e) / det],
        [cb / det, (a * i - c * g) / det, -(a * f - c * d) / det],
        [cc / det, -(a * h - b * g) / det, (a * e - b * d) / det],
    ]
}

/// Runs N4 on `image` over `mask` (both full resolution), shrinking with the centred sampling
/// phase of [`shrink_axis`] (= SimpleITK's for images with an identity direction). `spacing`
/// (`[dk, dj, di]` mm) is validated only: the algorithm is index based, as ITK's.
pub fn n4(
    image: ArrayView3<f32>,
    mask: ArrayView3<bool>,
    spacing: [f64; 3],
    params: &N4Params,
) -> Result<N4Output, N4Error> {
    let (nk, nj, ni) = image.dim();
    let s = params.shrink.max(1);
    let offsets = [
        shrink_axis(nk, s).1,
        shrink_axis(nj, s).1,
        shrink_axis(ni, s).1,
    ];
    n4_with_offsets(image, mask, spacing, params, offsets)
}

/// [`n4`] with explicit first sampled voxel per axis `(k, j, i)` of the shrunk grid (voxel
/// `x` of the shrunk grid is input voxel `x * shrink + offset`); use [`itk_shrink_offsets`] to
/// reproduce SimpleITK on oblique images. The shrunk size stays `floor(n / shrink)`.
pub fn n4_with_offsets(
    image: ArrayView3<f32>,
    mask: ArrayView3<bool>,
    spacing: [f64; 3],
    params: &N4Params,
    offsets: [usize; 3],
) -> Result<N4Output, N4Error> {
    check_params(params, spacing)?;
    let (nk, nj, ni) = image.dim();
    if image.dim() != mask.dim() {
        let (a, b, c) = mask.dim();
        return Err(N4Error::ShapeMismatch {
            image: [nk, nj, ni],
            mask: [a, b, c],
        });
    }
    // full-resolution checks
    let mut any = false;
    let mut first: Option<f32> = None;
    let mut constant = true;
    for (((k, j, i), &v), &m) in image.indexed_iter().zip(mask.iter()) {
        if !m {
            continue;
        }
        any = true;
        if v.is_nan() || v <= 0.0 || v.is_infinite() {
            return Err(N4Error::NonPositive {
                index: [k, j, i],
                value: v,
            });
        }
        match first {
            None => first = Some(v),
            Some(f) if f != v => constant = false,
            _ => {}
        }
    }
    if !any {
        return Err(N4Error::EmptyMask { shrunk: false });
    }
    if constant {
        return Err(N4Error::ConstantImage {
            value: first.unwrap_or(0.0),
        });
    }

    // shrunk grid and the masked points on it (buffer order)
    let s = params.shrink;
    let ax = [
        (shrink_axis(nk, s).0, offsets[0]),
        (shrink_axis(nj, s).0, offsets[1]),
        (shrink_axis(ni, s).0, offsets[2]),
    ];
    let grid = [ax[0].0, ax[1].0, ax[2].0];
    for (a, &n) in [nk, nj, ni].iter().enumerate() {
        if ax[a].1 + (ax[a].0 - 1) * s >= n {
            return Err(N4Error::InvalidParam(format!(
                "shrink offset {} on axis {a} samples past the image ({n} voxels, shrink {s})",
                ax[a].1
            )));
        }
    }
    if grid.iter().any(|&g| g < 2) {
        return Err(N4Error::InvalidParam(format!(
            "the shrunk grid {grid:?} needs >= 2 voxels per axis; lower shrink ({s}) for \
             image {:?}",
            [nk, nj, ni]
        )));
    }
    let mut points = Vec::new();
    let mut log_in = Vec::new();
    for k in 0..grid[0] {
        let kk = k * s + ax[0].1;
        for j in 0..grid[1] {
            let jj = j * s + ax[1].1;
            for i in 0..grid[2] {
                let ii = i * s + ax[2].1;
                if mask[[kk, jj, ii]] {
                    points.push((k * grid[1] + j) * grid[2] + i);
                    log_in.push((image[[kk, jj, ii]] as f64).ln());
                }
            }
        }
    }
    if points.is_empty() {
        return Err(N4Error::EmptyMask { shrunk: true });
    }
    if log_in.iter().all(|&v| v == log_in[0]) {
        return Err(N4Error::ConstantImage {
            value: log_in[0].exp() as f32,
        });
    }

    let sp = sharpen::SharpenParams {
        bins: params.bins,
        fwhm: params.fwhm,
        wiener_noise: params.wiener_noise,
    };
    let order = params.spline_order;
    let levels = params.iterations.len();
    let c0 = params.control_points;
    let mut lattice = Array3::<f64>::zeros((c0, c0, c0));
    let mut log_bias = vec![0.0f64; points.len()];
    let mut iterations_run = Vec::with_capacity(levels);
    let mut final_convergence = Vec::with_capacity(levels);
    for (level, &max_it) in params.iterations.iter().enumerate() {
        let lat = {
            let d = lattice.dim();
            [d.0, d.1, d.2]
        };
        let mut it = 0;
        let mut conv = f32::MAX as f64;
        while it < max_it && conv > params.convergence {
            it += 1;
            let uncorrected: Vec<f64> = log_in.iter().zip(&log_bias).map(|(a, b)| a - b).collect();
            let sharpened = sharpen::sharpen(&uncorrected, &sp);
            let residual: Vec<f64> = uncorrected
                .iter()
                .zip(&sharpened)
                .map(|(a, b)| a - b)
                .collect();
            let phi = bspline::fit(grid, &points, &residual, lat, order);
            lattice += &phi;
            let field = bspline::evaluate(lattice.view(), grid, order);
            let fs = field.as_slice().expect("standard layout");
            let new_bias: Vec<f64> = points.iter().map(|&p| fs[p]).collect();
            conv = convergence_measure(&log_bias, &new_bias);
            log_bias = new_bias;
        }
        iterations_run.push(it);
        final_convergence.push(conv);
        if level + 1 < levels {
            lattice = bspline::refine(lattice.view(), order);
        }
    }

    // full-resolution field (float, as ITK's reconstructer) and correction
    let logb = bspline::evaluate(lattice.view(), [nk, nj, ni], order);
    let lb = logb.as_slice().expect("standard layout");
    let mut bias_v = vec![0.0f32; lb.len()];
    bias_v
        .par_chunks_mut(4096)
        .zip(lb.par_chunks(4096))
        .for_each(|(b, l)| {
            b.iter_mut()
                .zip(l)
                .for_each(|(b, &l)| *b = (l as f32).exp())
        });
    let bias = Array3::from_shape_vec((nk, nj, ni), bias_v).expect("shape");
    let mut corrected = image.to_owned();
    Zip::from(&mut corrected)
        .and(&bias)
        .and(&mask)
        .for_each(|c, &b, &m| {
            if m {
                *c /= b;
            }
        });
    Ok(N4Output {
        corrected,
        bias,
        iterations_run,
        final_convergence,
    })
}
