//! The slices' shared grid (size, orientation, pixel spacing) and the spacing along the
//! slice normal.

use super::*;

/// Row and column direction cosines of unit length (to 1e-3) and perpendicular.
pub(super) fn orthonormal(v: &[f64]) -> bool {
    let (r, c) = (&v[0..3], &v[3..6]);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    v.iter().all(|x| x.is_finite())
        && (dot(r, r) - 1.0).abs() < 1e-3
        && (dot(c, c) - 1.0).abs() < 1e-3
        && dot(r, c).abs() < 1e-3
}

pub(super) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub(super) fn dot3(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// The in-plane grid all slices share.
pub(super) struct Grid {
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) orientation: [f64; 6],
    pub(super) row: [f64; 3],
    pub(super) col: [f64; 3],
    pub(super) normal: [f64; 3],
}

impl Grid {
    /// The grid of the first file, after checking every other file has the same size,
    /// orientation and pixel spacing.
    pub(super) fn agreed(slices: &[SliceFile]) -> Result<Grid, String> {
        let first = &slices[0].info;
        for s in &slices[1..] {
            let s = &s.info;
            let differs = |what: &str, this: String, that: String| {
                format!(
                    "{}: {what} {this}, but {} has {that}",
                    s.path.display(),
                    first.path.display()
                )
            };
            if (s.rows, s.cols) != (first.rows, first.cols) {
                return Err(differs(
                    "Rows x Columns",
                    format!("{}x{}", s.rows, s.cols),
                    format!("{}x{}", first.rows, first.cols),
                ));
            }
            if !close(&s.orientation, &first.orientation, 1e-4) {
                return Err(differs(
                    "ImageOrientationPatient",
                    format!("{:?}", s.orientation),
                    format!("{:?}", first.orientation),
                ));
            }
            if !close(&s.pixel_spacing, &first.pixel_spacing, 1e-4) {
                return Err(differs(
                    "PixelSpacing",
                    format!("{:?}", s.pixel_spacing),
                    format!("{:?}", first.pixel_spacing),
                ));
            }
        }
        let o = first.orientation;
        let (row, col) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
        Ok(Grid {
            rows: first.rows,
            cols: first.cols,
            orientation: o,
            row,
            col,
            normal: cross(row, col),
        })
    }

    /// Position along the slice normal, in mm.
    pub(super) fn along_normal(&self, p: [f64; 3]) -> f64 {
        dot3(p, self.normal)
    }
}

pub(super) fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

/// Refuses two slices at one position and gaps that differ from the mean step, naming the files.
pub(super) fn check_spacing(kept: &[SliceInfo], grid: &Grid) -> Result<(), String> {
    let n = kept.len();
    if n == 1 {
        // One slice: its thickness (if given) is the slice spacing.
        return match kept[0].slice_thickness {
            Some(t) if !(t.is_finite() && t > 0.0) => Err(format!(
                "{}: SliceThickness {t} of a one-slice series is not a positive spacing",
                kept[0].path.display()
            )),
            _ => Ok(()),
        };
    }
    let proj: Vec<f64> = kept.iter().map(|s| grid.along_normal(s.position)).collect();
    let step = (proj[n - 1] - proj[0]) / (n - 1) as f64;
    for (w, pair) in proj.windows(2).zip(kept.windows(2)) {
        let d = w[1] - w[0];
        let (a, b) = (pair[0].path.display(), pair[1].path.display());
        if d.abs() < 1e-6 {
            return Err(format!(
                "{a} and {b} are at the same position ({:.3} mm along the slice normal)",
                w[0]
            ));
        }
        if (d - step).abs() > 0.01 * step.abs().max(1e-3) + 1e-3 {
            return Err(format!(
                "slice spacing is not uniform: {a} and {b} are {d:.4} mm apart, the series' mean step \
                 is {step:.4} mm (a missing or extra slice?)"
            ));
        }
    }
    Ok(())
}
