//! The dense CRF on a whole probability volume (what `dense_crf` runs when it iterates, and
//! `voxflow crf-search`): the region it runs on, the input checks, the kernel call.

use crate::inference::argmax::argmax_at;
use crate::refine::dense_crf::{CrfConfig, CrfRoi, MAX_CLASSES};
use ndarray::{s, Array3, Array4, ArrayView3, ArrayView4, Axis};
use std::ops::Range;

/// Per axis `[k, j, i]`, the box the CRF runs on.
pub type Bounds = [Range<usize>; 3];

/// The box of `roi` for probabilities `(nk, C, nj, ni)`: `None` when `roi: liver` finds no
/// foreground voxel.
pub fn roi_bounds(prob: ArrayView4<f32>, spacing: [f64; 3], roi: CrfRoi) -> Option<Bounds> {
    let (nk, _, nj, ni) = prob.dim();
    let margin_mm = match roi {
        CrfRoi::Full => return Some([0..nk, 0..nj, 0..ni]),
        CrfRoi::Liver { margin_mm } => margin_mm,
    };
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    for k in 0..nk {
        let pk = prob.index_axis(Axis(0), k);
        for j in 0..nj {
            for i in 0..ni {
                if argmax_at(pk, j, i) != 0 {
                    for (a, v) in [k, j, i].into_iter().enumerate() {
                        lo[a] = lo[a].min(v);
                        hi[a] = hi[a].max(v + 1);
                    }
                }
            }
        }
    }
    if lo[0] == usize::MAX {
        return None;
    }
    let n = [nk, nj, ni];
    Some(std::array::from_fn(|a| {
        let m = (margin_mm / spacing[a]).ceil() as usize;
        lo[a].saturating_sub(m)..(hi[a] + m).min(n[a])
    }))
}

/// Argmax labels `(nk, nj, ni)` of probabilities `(nk, C, nj, ni)`.
pub fn argmax_prob(prob: ArrayView4<f32>) -> Array3<u8> {
    let (nk, _, nj, ni) = prob.dim();
    let mut out = Array3::zeros((nk, nj, ni));
    for k in 0..nk {
        let pk = prob.index_axis(Axis(0), k);
        for j in 0..nj {
            for i in 0..ni {
                out[[k, j, i]] = argmax_at(pk, j, i);
            }
        }
    }
    out
}

/// Checks what the kernel would panic on: shapes, class count, finite values, spacing.
pub fn check_inputs(
    image: ArrayView3<f32>,
    prob: ArrayView4<f32>,
    spacing: [f64; 3],
) -> Result<(), String> {
    let (nk, c, nj, ni) = prob.dim();
    if image.dim() != (nk, nj, ni) {
        return Err(format!(
            "`image` is {:?} (k, j, i) but `prob` is {:?}: they must be on the same grid",
            image.dim(),
            (nk, nj, ni)
        ));
    }
    if c == 0 || c > MAX_CLASSES {
        return Err(format!(
            "`prob` has {c} classes; dense_crf handles 1 to {MAX_CLASSES}"
        ));
    }
    if (nk as u64) * (nj as u64) * (ni as u64) >= 1 << 32 {
        return Err(format!(
            "volume of {nk}x{nj}x{ni} voxels is too large (2^32 or more)"
        ));
    }
    if spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(format!("voxel spacing {spacing:?} mm must be positive"));
    }
    if let Some(((k, j, i), v)) = image.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(format!(
            "`image` has the non-finite value {v} at voxel (i, j, k) = ({i}, {j}, {k})"
        ));
    }
    if let Some(((k, c, j, i), v)) = prob
        .indexed_iter()
        .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
    {
        return Err(format!(
            "`prob` has the value {v} (class {c}) at voxel (i, j, k) = ({i}, {j}, {k}); probabilities must be finite and >= 0"
        ));
    }
    Ok(())
}

/// Result of [`refine`].
pub struct Refined {
    /// `(nk, nj, ni)`.
    pub label: Array3<u8>,
    /// `(nk, C, nj, ni)`.
    pub prob: Array4<f32>,
    /// Where the CRF ran (`None`: nowhere, no foreground).
    pub bounds: Option<Bounds>,
}

/// Runs the CRF on `prob` `(nk, C, nj, ni)` with `image` `(nk, nj, ni)` and spacing
/// `[dk, dj, di]` mm, inside the box of `config.roi`; the rest is passed on unchanged.
/// Uses the current rayon pool.
pub fn refine(
    image: ArrayView3<f32>,
    prob: ArrayView4<f32>,
    spacing: [f64; 3],
    config: &CrfConfig,
) -> Result<Refined, String> {
    refine_until(image, prob, spacing, config, &|| false).map(|r| r.expect("never stopped"))
}

/// [`refine`] that returns `Ok(None)` once `stop` returns true (asked between CRF iterations).
pub fn refine_until(
    image: ArrayView3<f32>,
    prob: ArrayView4<f32>,
    spacing: [f64; 3],
    config: &CrfConfig,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Option<Refined>, String> {
    config.check()?;
    check_inputs(image, prob, spacing)?;
    let mut out = prob.to_owned();
    let mut label = argmax_prob(prob);
    let bounds = roi_bounds(prob, spacing, config.roi);
    if let Some([rk, rj, ri]) = bounds.clone() {
        let img = image
            .slice(s![rk.clone(), rj.clone(), ri.clone()])
            .as_standard_layout()
            .into_owned();
        // (k, C, j, i) -> (k, j, i, C) on the box only
        let p = prob
            .slice(s![rk.clone(), .., rj.clone(), ri.clone()])
            .permuted_axes([0, 2, 3, 1])
            .as_standard_layout()
            .into_owned();
        let Some(q) =
            voxflow_crf::dense_crf_until(img.view(), p.view(), spacing, &config.params, stop)
        else {
            return Ok(None);
        };
        drop(p);
        label
            .slice_mut(s![rk.clone(), rj.clone(), ri.clone()])
            .assign(&voxflow_crf::argmax_labels(q.view()));
        out.slice_mut(s![rk, .., rj, ri])
            .assign(&q.view().permuted_axes([0, 3, 1, 2]));
    }
    Ok(Some(Refined {
        label,
        prob: out,
        bounds,
    }))
}
