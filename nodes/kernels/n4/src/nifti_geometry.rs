//! The image geometry SimpleITK reads from a NIfTI-1 header (ITK 5.4 `NiftiImageIO`).
//!
//! N4's shrink sampling phase ([`crate::itk_shrink_offsets`]) can hinge on the last bits of the
//! origin and direction (a rounding tie), so matching SimpleITK needs its exact geometry. ITK
//! converts the header with nifti1_io (matrices in float32) and then picks one of the two
//! transforms (`SetImageIOOrientationFromNIfTI`):
//! - neither code set: origin 0, identity direction;
//! - the sform when it is an affine whose columns are orthonormal to 1e-4 and either its code is
//!   `SCANNER_ANAT` (1) or the qform code is unknown; with another sform code and a known qform
//!   only when the two are "very similar" (within 1e-4);
//! - otherwise the qform (the sform when they agree element by element), else an error.
//!
//! Origin = `(-m03, -m13, m23)` (RAS to LPS), direction = the matrix columns with the first two
//! rows negated, normalised in double; spacing = `pixdim[1..4]` (0 or not finite read as 1).
//! Origin and spacing are scaled to mm by `xyzt_units` (metre, micron).
//!
//! Not reproduced: ITK's "very similar" test compares the two matrices' left singular vectors
//! from an SVD, whose column signs are an artefact of the SVD routine; here the normalised
//! rotations are compared directly. Where sform and qform agree to float precision and the sform
//! code is 2..4, SimpleITK took the qform in 3 of 12 synthetic cases where this takes the sform
//! (geometries within 1e-6 of each other; `tests/nifti_geometry.rs`). The
//! `ITK_NIFTI_SFORM_PERMISSIVE` mode (off by default) is not supported.

use serde::{Deserialize, Serialize};

/// The orientation fields of a NIfTI-1 header, as stored in the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NiftiXform {
    pub qform_code: i16,
    pub sform_code: i16,
    /// `quatern_b, quatern_c, quatern_d`
    pub quatern: [f32; 3],
    /// `qoffset_x, qoffset_y, qoffset_z`
    pub qoffset: [f32; 3],
    /// `srow_x, srow_y, srow_z`
    pub srow: [[f32; 4]; 3],
    /// `pixdim[0..4]` (`pixdim[0]` is qfac)
    pub pixdim: [f32; 4],
    pub xyzt_units: u8,
}

/// An image geometry in SimpleITK's conventions (LPS, index order i, j, k).
#[derive(Clone, Debug, PartialEq)]
pub struct ItkGeometry {
    /// `GetOrigin()`: physical (x, y, z) of voxel 0.
    pub origin: [f64; 3],
    /// `GetDirection()`: row-major 3x3, columns = index axes i, j, k.
    pub direction: [f64; 9],
    /// `GetSpacing()`: (i, j, k).
    pub spacing: [f64; 3],
}

type M44 = [[f32; 4]; 4];

impl NiftiXform {
    /// The origin, direction and spacing SimpleITK reads from this header; `Err` where ITK
    /// refuses the file (no usable orthonormal transform).
    pub fn itk_geometry(&self) -> Result<ItkGeometry, String> {
        let d: [f32; 3] = std::array::from_fn(|a| match self.pixdim[a + 1] {
            p if p == 0.0 || !p.is_finite() => 1.0,
            p => p,
        });
        let scale = match self.xyzt_units & 0x07 {
            1 => 1e3,
            3 => 1e-3,
            _ => 1.0,
        };
        let spacing = d.map(|x| x as f64 * scale);
        let (qcode, scode) = (self.qform_code.max(0), self.sform_code.max(0));
        if qcode == 0 && scode == 0 {
            return Ok(ItkGeometry {
                origin: [0.0; 3],
                direction: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                spacing,
            });
        }
        let q = self.qto_xyz(d);
        let s = self.sto_xyz();
        let mut prefer_sform = similar(&s, &q);
        if (!prefer_sform || scode != 0) && decomposable(&s) {
            if (qcode == 0 && scode != 0) || scode == 1 {
                prefer_sform = true;
            } else if qcode != 0 && scode != 0 {
                prefer_sform = very_similar(&s, &q);
            }
        }
        let m = if prefer_sform {
            s
        } else if qcode != 0 {
            q
        } else {
            return Err("no orthonormal transform in the NIfTI header (ITK refuses it)".into());
        };
        let origin = [
            -(m[0][3] as f64) * scale,
            -(m[1][3] as f64) * scale,
            m[2][3] as f64 * scale,
        ];
        let mut direction = [0.0; 9];
        for c in 0..3 {
            let v: [f64; 3] = std::array::from_fn(|r| {
                let x = m[r][c] as f64;
                if r < 2 {
                    -x
                } else {
                    x
                }
            });
            let sum = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
            let norm = if sum == 0.0 { 1.0 } else { sum.sqrt() };
            for r in 0..3 {
                direction[r * 3 + c] = v[r] / norm;
            }
        }
        Ok(ItkGeometry {
            origin,
            direction,
            spacing,
        })
    }

    /// nifti1_io's `qto_xyz` (`nifti_quatern_to_mat44`: double arithmetic, float result), or
    /// `diag(dx, dy, dz)` without a qform.
    fn qto_xyz(&self, d: [f32; 3]) -> M44 {
        let mut r = [[0.0f32; 4]; 4];
        r[3][3] = 1.0;
        if self.qform_code <= 0 {
            for (a, &x) in d.iter().enumerate() {
                r[a][a] = x;
            }
            return r;
        }
        let fixed = |x: f32| if x.is_finite() { x } else { 0.0 };
        let [b, c, dd] = self.quatern.map(|x| fixed(x) as f64);
        let (mut b, mut c, mut dd) = (b, c, dd);
        let mut a = 1.0 - (b * b + c * c + dd * dd);
        if a < 1.0e-7 {
            a = 1.0 / (b * b + c * c + dd * dd).sqrt();
            b *= a;
            c *= a;
            dd *= a;
            a = 0.0;
        } else {
            a = a.sqrt();
        }
        let pos = |x: f32| if x > 0.0 { x as f64 } else { 1.0 };
        let (xd, yd) = (pos(d[0]), pos(d[1]));
        let zd = if self.pixdim[0] < 0.0 {
            -pos(d[2])
        } else {
            pos(d[2])
        };
        let m = [
            [
                (a * a + b * b - c * c - dd * dd) * xd,
                2.0 * (b * c - a * dd) * yd,
                2.0 * (b * dd + a * c) * zd,
            ],
            [
                2.0 * (b * c + a * dd) * xd,
                (a * a + c * c - b * b - dd * dd) * yd,
                2.0 * (c * dd - a * b) * zd,
            ],
            [
                2.0 * (b * dd - a * c) * xd,
                2.0 * (c * dd + a * b) * yd,
                (a * a + dd * dd - c * c - b * b) * zd,
            ],
        ];
        for i in 0..3 {
            for j in 0..3 {
                r[i][j] = m[i][j] as f32;
            }
            r[i][3] = fixed(self.qoffset[i]);
        }
        r
    }

    /// nifti1_io's `sto_xyz`: the srows with a `(0, 0, 0, 1)` bottom row, all zero without an
    /// sform.
    fn sto_xyz(&self) -> M44 {
        let mut s = [[0.0f32; 4]; 4];
        if self.sform_code > 0 {
            s[..3].copy_from_slice(&self.srow);
            s[3][3] = 1.0;
        }
        s
    }
}

/// ITK's first test: the 3x3 parts agree to 1e-5 per element, translations and bottom rows
/// to 1e-7 (L1, in float).
fn similar(s: &M44, q: &M44) -> bool {
    let close3 = (0..3).all(|i| (0..3).all(|j| ((s[i][j] - q[i][j]).abs() as f64) <= 1e-5));
    let col: f32 = (0..4).map(|i| (s[i][3] - q[i][3]).abs()).sum();
    let row: f32 = (0..4).map(|j| (s[3][j] - q[3][j]).abs()).sum();
    close3 && col as f64 <= 1e-7 && row as f64 <= 1e-7
}

/// Columns of the 3x3 part normalised to unit length (a zero column stays zero).
fn rotation(m: &M44) -> [[f64; 3]; 3] {
    let mut r = [[0.0; 3]; 3];
    for c in 0..3 {
        let n = (0..3).map(|i| (m[i][c] as f64).powi(2)).sum::<f64>().sqrt();
        for i in 0..3 {
            r[i][c] = if n > 0.0 { m[i][c] as f64 / n } else { 0.0 };
        }
    }
    r
}

/// `a * b^T` is the identity within `tol` per element.
fn times_transpose_is_identity(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3], tol: f64) -> bool {
    (0..3).all(|i| {
        (0..3).all(|j| {
            let x: f64 = (0..3).map(|k| a[i][k] * b[j][k]).sum();
            (x - if i == j { 1.0 } else { 0.0 }).abs() <= tol
        })
    })
}

/// ITK's `sform_decomposable_without_skew`: an invertible affine (bottom row `(0, 0, 0, 1)`)
/// whose normalised columns are orthonormal to 1e-4.
fn decomposable(s: &M44) -> bool {
    let bottom = (s[3][3] - 1.0).abs() + s[3][0].abs() + s[3][1].abs() + s[3][2].abs();
    if bottom > f32::EPSILON {
        return false;
    }
    let m: [[f64; 3]; 3] = std::array::from_fn(|i| std::array::from_fn(|j| s[i][j] as f64));
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let norms: f64 = (0..3)
        .map(|c| (0..3).map(|i| m[i][c] * m[i][c]).sum::<f64>().sqrt())
        .product();
    // NaN (a non-finite srow) counts as singular
    if det.is_nan() || det.abs() <= f64::EPSILON * norms {
        return false;
    }
    let r = rotation(s);
    times_transpose_is_identity(&r, &r, 1e-4)
}

/// ITK's `sform_and_qform_are_very_similar` (approximated, see the module docs): same scales,
/// rotations, offsets and bottom rows within 1e-4.
fn very_similar(s: &M44, q: &M44) -> bool {
    let scales = |m: &M44| {
        let mut v: [f64; 3] =
            std::array::from_fn(|c| (0..3).map(|i| (m[i][c] as f64).powi(2)).sum::<f64>().sqrt());
        v.sort_by(|a, b| b.total_cmp(a));
        v
    };
    let (ss, qs) = (scales(s), scales(q));
    (0..3).all(|i| (ss[i] - qs[i]).abs() <= 1e-4)
        && times_transpose_is_identity(&rotation(s), &rotation(q), 1e-4)
        && (0..3).all(|i| ((s[i][3] - q[i][3]).abs() as f64) <= 1e-4)
        && (0..4).all(|j| ((s[3][j] - q[3][j]).abs() as f64) <= 1e-4)
}
