//! Region of interest: bounding-box crop and fixed-bin-width discretisation.

use crate::{RadiomicsError, Settings};
use ndarray::{s, ArrayView3};

/// Marks a voxel outside the mask in [`Roi::plvl`].
pub(crate) const OUTSIDE: u32 = u32::MAX;

/// The region cropped to its bounding box (C order, axes k, j, i).
pub(crate) struct Roi {
    /// Bounding-box size `[nk, nj, ni]`.
    pub dims: [usize; 3],
    /// Raw intensities of the mask voxels, in C order.
    pub values: Vec<f64>,
    /// Size of the bounding box padded by one voxel on each side.
    pub pdims: [usize; 3],
    /// Per padded-box voxel: index into `gray_levels`, or [`OUTSIDE`] (always on the
    /// padding), so neighbours can be read without bounds checks.
    pub plvl: Vec<u32>,
    /// Padded-box indices of the mask voxels, in C order.
    pub vox: Vec<usize>,
    /// Discretised gray levels present in the region, ascending (values >= 1).
    pub gray_levels: Vec<u32>,
    /// Largest gray level (PyRadiomics `Ng`).
    pub ng: u32,
}

impl Roi {
    pub fn new(
        image: ArrayView3<f32>,
        mask: ArrayView3<bool>,
        settings: &Settings,
    ) -> Result<Roi, RadiomicsError> {
        let sh = mask.shape();
        let mut lo = [usize::MAX; 3];
        let mut hi = [0usize; 3];
        let mut n = 0usize;
        for (k, plane) in mask.outer_iter().enumerate() {
            for (j, row) in plane.outer_iter().enumerate() {
                let (first, last, cnt) = match row.as_slice() {
                    Some(r) => match r.iter().position(|&m| m) {
                        None => continue,
                        Some(f) => {
                            let l = r.iter().rposition(|&m| m).unwrap();
                            (f, l, r[f..=l].iter().filter(|&&m| m).count())
                        }
                    },
                    None => {
                        let idx: Vec<usize> = row
                            .iter()
                            .enumerate()
                            .filter(|(_, &m)| m)
                            .map(|(i, _)| i)
                            .collect();
                        if idx.is_empty() {
                            continue;
                        }
                        (idx[0], *idx.last().unwrap(), idx.len())
                    }
                };
                n += cnt;
                lo = [lo[0].min(k), lo[1].min(j), lo[2].min(first)];
                hi = [hi[0].max(k), hi[1].max(j), hi[2].max(last)];
            }
        }
        if n == 0 {
            return Err(RadiomicsError::EmptyMask);
        }
        let dims = [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1];
        let ndims = dims.iter().filter(|&&d| d > 1).count();
        if ndims == 0 {
            return Err(RadiomicsError::SingleVoxel);
        }
        if ndims < settings.minimum_roi_dimensions {
            return Err(RadiomicsError::TooFewDimensions {
                found: ndims,
                required: settings.minimum_roi_dimensions,
            });
        }
        if let Some(min) = settings.minimum_roi_size {
            if n <= min {
                return Err(RadiomicsError::RoiTooSmall {
                    voxels: n,
                    minimum: min,
                });
            }
        }
        debug_assert!(sh.len() == 3);
        let pdims = [dims[0] + 2, dims[1] + 2, dims[2] + 2];
        let mut plvl = vec![OUTSIDE; pdims[0] * pdims[1] * pdims[2]];
        let mut vox = Vec::with_capacity(n);
        let mut values = Vec::with_capacity(n);
        for k in lo[0]..=hi[0] {
            for j in lo[1]..=hi[1] {
                let q0 = ((k - lo[0] + 1) * pdims[1] + j - lo[1] + 1) * pdims[2] + 1;
                let mrow = mask.slice(s![k, j, lo[2]..=hi[2]]);
                let irow = image.slice(s![k, j, lo[2]..=hi[2]]);
                for (i, (&m, &v)) in mrow.iter().zip(irow.iter()).enumerate() {
                    if m {
                        let v = v as f64;
                        if !v.is_finite() {
                            return Err(RadiomicsError::NonFiniteIntensity);
                        }
                        values.push(v);
                        vox.push(q0 + i);
                    }
                }
            }
        }
        let levels = discretize(&values, settings.bin_width);
        let ng = *levels.iter().max().unwrap();
        let mut present = vec![false; ng as usize + 1];
        for &l in &levels {
            present[l as usize] = true;
        }
        let gray_levels: Vec<u32> = (1..=ng).filter(|&l| present[l as usize]).collect();
        let mut index = vec![OUTSIDE; ng as usize + 1];
        for (ix, &l) in gray_levels.iter().enumerate() {
            index[l as usize] = ix as u32;
        }
        for (&q, &l) in vox.iter().zip(&levels) {
            plvl[q] = index[l as usize];
        }
        Ok(Roi {
            dims,
            values,
            pdims,
            plvl,
            vox,
            gray_levels,
            ng,
        })
    }

    /// Number of voxels in the region.
    pub fn n_voxels(&self) -> usize {
        self.values.len()
    }

    /// Offset in the padded box for a neighbour step `d = (dk, dj, di)`.
    pub fn offset(&self, d: [isize; 3]) -> isize {
        (d[0] * self.pdims[1] as isize + d[1]) * self.pdims[2] as isize + d[2]
    }

    /// Padded-box coordinates of padded index `q`.
    pub fn coords(&self, q: usize) -> [usize; 3] {
        let p = self.pdims;
        [q / (p[1] * p[2]), (q / p[2]) % p[1], q % p[2]]
    }

    /// Number of gray levels present.
    pub fn n_levels(&self) -> usize {
        self.gray_levels.len()
    }
}

/// Python's float `%` (result has the sign of the divisor), as numpy's `remainder`.
fn py_mod(a: f64, b: f64) -> f64 {
    let mut m = a % b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        m += b;
    }
    m
}

/// PyRadiomics `binImage` with a fixed bin width: `np.digitize(x, edges)` with
/// `edges = np.arange(min - min % w, max + 2w, w)`.
pub(crate) fn discretize(values: &[f64], w: f64) -> Vec<u32> {
    let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let low = min - py_mod(min, w);
    let high = max + 2.0 * w;
    let n_edges = ((high - low) / w).ceil().max(1.0) as usize;
    // Edge e is low + e*w, as np.arange computes it.
    let edge = |e: usize| low + e as f64 * w;
    // np.digitize(x, edges) = number of edges <= x (edges increasing).
    values
        .iter()
        .map(|&x| {
            let guess = (((x - low) / w).floor() as isize + 1).clamp(0, n_edges as isize) as usize;
            let mut b = guess;
            while b > 0 && edge(b - 1) > x {
                b -= 1;
            }
            while b < n_edges && edge(b) <= x {
                b += 1;
            }
            b as u32
        })
        .collect()
}

/// The 13 unique neighbour offsets `(dk, dj, di)` at distance 1 (one of each +/- pair).
pub(crate) fn directions13() -> Vec<[isize; 3]> {
    let mut out = Vec::with_capacity(13);
    for dk in -1isize..=1 {
        for dj in -1isize..=1 {
            for di in -1isize..=1 {
                let o = [dk, dj, di];
                // Keep the offset whose first non-zero component is positive.
                if let Some(&f) = o.iter().find(|&&c| c != 0) {
                    if f > 0 {
                        out.push(o);
                    }
                }
            }
        }
    }
    out
}

/// All 26 neighbour offsets.
pub(crate) fn directions26() -> Vec<[isize; 3]> {
    let mut out = Vec::with_capacity(26);
    for d in directions13() {
        out.push(d);
        out.push([-d[0], -d[1], -d[2]]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discretize_matches_pyradiomics_formula() {
        // floor(x/25) - floor(min/25) + 1
        let v = [-40.0, -26.0, -25.0, -1.0, 0.0, 24.0, 25.0, 76.0];
        let got = discretize(&v, 25.0);
        let want: Vec<u32> = v
            .iter()
            .map(|x: &f64| ((x / 25.0).floor() - (-40.0f64 / 25.0).floor() + 1.0) as u32)
            .collect();
        assert_eq!(got, want);
        assert_eq!(got[0], 1);
    }

    #[test]
    fn thirteen_directions() {
        let d = directions13();
        assert_eq!(d.len(), 13);
        let all = directions26();
        assert_eq!(all.len(), 26);
        for (a, x) in all.iter().enumerate() {
            for y in &all[a + 1..] {
                assert_ne!(x, y);
            }
        }
    }
}
